package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node/api"
	"github.com/flarechain/flare-node/tx"
)

// fastLocalSpec is the local chain (alice, bob, charlie, dave) with 200 ms
// slots and checkpoints every 2 blocks.
func fastLocalSpec(t *testing.T) string { return writeSpec(t, "local", "fast_local", 200, 2) }

type testNet struct {
	t      *testing.T
	spec   string
	bases  []string
	nodes  []*Node
	cancel []context.CancelFunc
	wait   []func() error
	boot   string
	// metrics: nodes serve metrics and the API on 127.0.0.1:0.
	metrics bool
}

var localNames = []string{"alice", "bob", "charlie", "dave"}

func (tn *testNet) start(i int) {
	tn.t.Helper()
	cfg := testConfig(tn.t, tn.spec, tn.bases[i], true)
	cfg.KeyName = localNames[i]
	if tn.metrics {
		cfg.Metrics.Addr = "127.0.0.1:0"
	}
	if tn.boot != "" && i != 0 {
		cfg.P2P.Bootnodes = []string{tn.boot}
	}
	n, err := New(context.Background(), cfg, zap.NewNop().Named(localNames[i]))
	require.NoError(tn.t, err)
	if i == 0 && tn.boot == "" {
		tn.boot = n.net.Addrs()[0].String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn.nodes[i], tn.cancel[i], tn.wait[i] = n, cancel, runNode(ctx, n)
}

func (tn *testNet) stop(i int) {
	tn.t.Helper()
	tn.cancel[i]()
	require.NoError(tn.t, tn.wait[i]())
	tn.nodes[i] = nil
}

func newTestNet(t *testing.T, n int) *testNet { return newTestNetWith(t, n, false) }

func newTestNetWith(t *testing.T, n int, metrics bool) *testNet {
	tn := &testNet{t: t, spec: fastLocalSpec(t), nodes: make([]*Node, n), cancel: make([]context.CancelFunc, n), wait: make([]func() error, n), metrics: metrics}
	for i := 0; i < n; i++ {
		tn.bases = append(tn.bases, t.TempDir())
	}
	for i := 0; i < n; i++ {
		tn.start(i)
	}
	t.Cleanup(func() {
		for i, nd := range tn.nodes {
			if nd != nil {
				tn.cancel[i]()
				_ = tn.wait[i]()
			}
		}
	})
	return tn
}

func (tn *testNet) finalized(i int) checkpoint.Checkpoint {
	return tn.nodes[i].gadget.LatestFinalized()
}

// waitAll waits until every running node finalized at least cp.
func (tn *testNet) waitAll(cp uint64, timeout time.Duration) {
	tn.t.Helper()
	require.Eventually(tn.t, func() bool {
		for i, nd := range tn.nodes {
			if nd != nil && tn.finalized(i).Number < cp {
				return false
			}
		}
		return true
	}, timeout, 20*time.Millisecond, "not every node finalized checkpoint %d", cp)
}

// requireSameFinalizedChain checks that running nodes agree on the
// certificates of every finalized checkpoint they share.
func (tn *testNet) requireSameFinalizedChain() {
	tn.t.Helper()
	ctx := context.Background()
	var ref map[uint64]checkpoint.Hash
	for _, nd := range tn.nodes {
		if nd == nil {
			continue
		}
		f := nd.gadget.LatestFinalized().Number
		certs, err := nd.cpdb.Certificates(ctx, 1, f, int(f))
		require.NoError(tn.t, err)
		got := map[uint64]checkpoint.Hash{}
		for _, c := range certs {
			if c.Finalizes() {
				got[c.Source.Number] = c.Source.Hash
			}
		}
		if ref == nil {
			ref = got
			continue
		}
		for num, h := range got {
			if r, ok := ref[num]; ok {
				require.Equal(tn.t, r, h, "nodes finalized different hashes at checkpoint %d", num)
			}
		}
	}
}

// TestFourValidatorsFinalizeAndSurviveKills: four validators over libp2p on
// 127.0.0.1 finalize the same checkpoints; with one stopped (3 of 4) finality
// continues; with two stopped it halts; a node that comes back catches up and
// finality resumes.
func TestFourValidatorsFinalizeAndSurviveKills(t *testing.T) {
	if testing.Short() {
		t.Skip("network test")
	}
	tn := newTestNet(t, 4)
	tn.waitAll(3, 60*time.Second)
	tn.requireSameFinalizedChain()

	// One validator down: quorum 3 of 4 still finalizes.
	tn.stop(3)
	f := tn.finalized(0).Number
	tn.waitAll(f+3, 60*time.Second)

	// Two down: finality halts.
	tn.stop(2)
	time.Sleep(500 * time.Millisecond) // let in-flight certificates land
	halted := tn.finalized(0).Number
	time.Sleep(3 * time.Second)
	require.LessOrEqual(t, tn.finalized(0).Number, halted+1, "finality advanced without a quorum")

	// One comes back (restored from its DB, catches up): finality resumes.
	tn.start(2)
	tn.waitAll(halted+3, 90*time.Second)
	tn.requireSameFinalizedChain()
}

// TestTransferGossipedToFinality: a transfer submitted to POST /tx of a full
// node (which produces no blocks) reaches the validators over the
// transactions topic, is included by one of their blocks and reaches
// status finalized on every node's GET /tx/{hash}; the balances agree.
func TestTransferGossipedToFinality(t *testing.T) {
	if testing.Short() {
		t.Skip("network test")
	}
	o := loadOpenAPI(t)
	tn := newTestNetWith(t, 4, true)
	cfg := testConfig(t, tn.spec, t.TempDir(), false)
	cfg.Metrics.Addr = "127.0.0.1:0"
	cfg.P2P.Bootnodes = []string{tn.boot}
	full, err := New(context.Background(), cfg, zap.NewNop().Named("full"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runNode(ctx, full)
	t.Cleanup(func() {
		cancel()
		_ = wait()
	})
	// The full node follows the chain (it is connected and meshed).
	require.Eventually(t, func() bool { return full.gadget.LatestFinalized().Number >= 2 }, 30*time.Second, 20*time.Millisecond)

	ferdie, _ := devAddr(t, "ferdie")
	_, eveAddr := devAddr(t, "eve")
	x := &tx.Tx{Genesis: GenesisHash(full.spec), To: eveAddr, Amount: 42, Fee: 3}
	x.Sign(ferdie)
	body, err := json.Marshal(api.TxSubmit{Tx: "0x" + hex.EncodeToString(x.Encode())})
	require.NoError(t, err)
	fullURL := httpBase(full, "metrics")
	code, out := o.post(t, fullURL+"/tx", "application/json", body)
	require.Equal(t, http.StatusOK, code, "%s", out)

	urls := []string{fullURL}
	for _, nd := range tn.nodes {
		urls = append(urls, httpBase(nd, "metrics"))
	}
	start := time.Now()
	final := make([]api.TxStatus, len(urls))
	require.Eventually(t, func() bool {
		for i, u := range urls {
			if final[i].Status == api.TxFinalized {
				continue
			}
			// 404 until the transaction reached the node.
			status, body := o.fetch(t, u+"/tx/"+x.Hash().String(), nil)
			if status == http.StatusNotFound {
				continue
			}
			var s api.TxStatus
			if status != http.StatusOK || json.Unmarshal(body, &s) != nil {
				return false
			}
			final[i] = s
		}
		for _, s := range final {
			if s.Status != api.TxFinalized {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "not finalized everywhere")
	t.Logf("finalized on all 5 nodes %v after the submission", time.Since(start).Round(time.Millisecond))
	for _, s := range final[1:] {
		require.Equal(t, final[0].BlockHash, s.BlockHash, "nodes disagree on the including block")
	}
	var blk api.Block
	o.fetchJSON(t, fmt.Sprintf("%s/blocks/%d", urls[1], *final[0].Block), http.StatusOK, &blk, nil)
	require.Less(t, blk.Proposer, uint32(4), "included by a validator's block")
	require.Equal(t, x.Hash().String(), blk.Transactions[*final[0].Index].Hash)
	for _, u := range urls {
		var a api.Account
		o.fetchJSON(t, u+"/accounts/"+eveAddr.String()+"?at=finalized", http.StatusOK, &a, nil)
		require.Equal(t, strconv.FormatUint(chainspec.DevBalance+42, 10), a.Balance)
	}
}

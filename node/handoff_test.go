package node

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node/engine"
)

// handOffSpec is the fast local chain (alice, bob, charlie, dave; 200 ms
// slots, checkpoints every 2 blocks) with eve joining at hand-off 4 and
// alice leaving at hand-off 10.
func handOffSpec(t *testing.T) string {
	t.Helper()
	spec, err := chainspec.Builtin("local")
	require.NoError(t, err)
	spec.Name, spec.ID, spec.SlotDurationMs, spec.CheckpointInterval = "handoff_local", "handoff_local", 200, 2
	key := func(name string) string {
		k, err := chainspec.DevKey(name)
		require.NoError(t, err)
		return hex.EncodeToString(k.Public().(ed25519.PublicKey))
	}
	raw, err := json.Marshal(spec)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	doc["authority_changes"] = []map[string]any{
		{"set_id": spec.SetID + 1, "hand_off": 4, "authorities": []string{key("alice"), key("bob"), key("charlie"), key("dave"), key("eve")}},
		{"set_id": spec.SetID + 2, "hand_off": 10, "authorities": []string{key("bob"), key("charlie"), key("dave"), key("eve")}},
	}
	raw, err = json.Marshal(doc)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "spec.json")
	require.NoError(t, os.WriteFile(path, raw, 0o600))
	return path
}

// TestHandOffsOnALiveNetwork: on four validators plus eve (in no set at
// genesis), finality advances through both hand-offs with the quorum of
// each set (3 of 4, then 4 of 5, then 3 of 4); eve votes only after the
// first, alice never after the second; with alice stopped finality goes
// on; a full node started from genesis afterwards reaches the network's
// finalized checkpoint in the last set.
func TestHandOffsOnALiveNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("network test")
	}
	tn := &testNet{t: t, spec: handOffSpec(t), nodes: make([]*Node, 5), cancel: make([]context.CancelFunc, 5), wait: make([]func() error, 5),
		names: []string{"alice", "bob", "charlie", "dave", "eve"}}
	for range 5 {
		tn.bases = append(tn.bases, t.TempDir())
	}
	for i := range 5 {
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
	require.False(t, tn.nodes[4].gadget.Authorities().Voter, "eve is in no set at genesis")
	tn.waitAll(14, 90*time.Second)
	for i, nd := range tn.nodes {
		st := nd.gadget.Authorities()
		require.Equal(t, uint64(2), st.Set.SetID, "node %d", i)
		require.Equal(t, i != 0, st.Voter, "node %d", i)
		require.NotNil(t, st.HandOff)
	}
	p, ok := tn.nodes[1].gadget.FinalityProof()
	require.True(t, ok)
	require.Len(t, p.HandOffs, 2)
	require.Equal(t, uint64(0), p.HandOffs[0].SetID)
	require.GreaterOrEqual(t, p.HandOffs[0].Source.Number, uint64(4))
	require.GreaterOrEqual(t, len(p.HandOffs[0].Signatures), 3)
	require.GreaterOrEqual(t, p.HandOffs[1].Source.Number, uint64(10))
	require.GreaterOrEqual(t, len(p.HandOffs[1].Signatures), 4, "set 1 has five keys: quorum 4")
	sched := authoritySchedule(tn.nodes[1].spec)
	_, _, set, err := sched.VerifyFinalityProof(p)
	require.NoError(t, err)
	require.Equal(t, uint64(2), set)
	for i, nd := range tn.nodes {
		require.Equal(t, p.HandOffs[1].Vote(), nd.gadget.Authorities().HandOff.Vote(), "node %d hands off at the same link", i)
	}
	// eve voted (from set 1 on), alice stopped with set 1.
	record := func(i int, name string) checkpoint.SignerRecord {
		k, err := chainspec.DevKey(name)
		require.NoError(t, err)
		rec, found, err := tn.nodes[i].cpdb.LoadSignerRecord(context.Background(), k.Public().(ed25519.PublicKey))
		require.NoError(t, err)
		require.True(t, found, name)
		require.NotNil(t, rec.Last, name)
		return rec
	}
	require.Greater(t, tn.nodes[4].gadget.Metrics().OwnVotes, uint64(0))
	require.Equal(t, uint64(2), record(4, "eve").Last.SetID)
	require.Equal(t, uint64(1), record(0, "alice").Last.SetID, "alice's last vote is of set 1")
	require.True(t, sched.IsHandOffLink(1, record(0, "alice").Last.Vote), "alice's last vote is her hand-off vote")

	// Without alice, the last set (bob, charlie, dave, eve; quorum 3)
	// goes on.
	tn.stop(0)
	top := tn.finalized(1).Number
	tn.waitAll(top+4, 60*time.Second)

	// A full node from genesis ends in set 2 at the network's finality.
	tn.boot = tn.nodes[1].net.Addrs()[0].String()
	joiner := tn.startFullNode("joiner")
	target := tn.finalized(1)
	require.Eventually(t, func() bool { return joiner.gadget.LatestFinalized().Number >= target.Number }, 60*time.Second, 50*time.Millisecond)
	require.Equal(t, uint64(2), joiner.gadget.Authorities().Set.SetID)
	require.Equal(t, p.HandOffs[1].Vote(), joiner.gadget.Authorities().HandOff.Vote())
}

// TestCheckpointSyncMismatch: a node whose finalized chain does not hold
// the --checkpoint-sync checkpoint stops with ErrTrustedCheckpoint once it
// finalizes past it; with the right checkpoint it runs on.
func TestCheckpointSyncMismatch(t *testing.T) {
	specPath := fastSpec(t)
	// The right checkpoint 2, from a first run (blocks carry their slot
	// times: another run builds another chain).
	base := t.TempDir()
	cfg := testConfig(t, specPath, base, true)
	n, err := New(context.Background(), cfg, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runNode(ctx, n)
	waitFinalized(t, n, 3)
	h, ok := n.chain.CanonicalHash(2 * n.spec.CheckpointInterval)
	require.True(t, ok)
	cancel()
	require.NoError(t, wait())

	for _, tc := range []struct {
		name string
		base string
		hash checkpoint.Hash
		ok   bool
	}{{"trusted checkpoint held", base, h, true}, {"another block trusted", t.TempDir(), checkpoint.HashOf([]byte("not this chain")), false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, specPath, tc.base, true)
			cfg.CheckpointSync = fmt.Sprintf("2:%s", tc.hash)
			require.NoError(t, cfg.Validate())
			n, err := New(context.Background(), cfg, zap.NewNop())
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wait := runNode(ctx, n)
			if tc.ok {
				waitFinalized(t, n, 6)
				cancel()
				require.NoError(t, wait())
				return
			}
			err = wait()
			require.ErrorIs(t, err, engine.ErrTrustedCheckpoint)
		})
	}
}

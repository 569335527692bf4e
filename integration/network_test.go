package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/node"
	"github.com/flarechain/flare-node/p2p"
)

var (
	reJustified = regexp.MustCompile(`^Checkpoint justified`)
	reSynced    = regexp.MustCompile(`^Sync round complete`)
)

// localNet is a network of flare-node subprocesses on 127.0.0.1 with fixed
// ports and persistent node keys, so that any node can be killed and
// restarted at the same address.
type localNet struct {
	t         *testing.T
	specPath  string
	spec      *chainspec.Spec
	bases     []string
	ports     []int
	addrs     []string // full multiaddrs with /p2p/
	procs     []*proc
	names     []string
	votes     map[string][]ownVote // every vote each validator released, across runs
	runs      map[string]int
	validator []bool
	metrics   []int // --metrics-addr ports
	// soleBootnode: node 0 has no bootnode and is every other node's only
	// bootnode (the others are found by discovery).
	soleBootnode bool
	// extra arguments of every node.
	extra []string
	// keyFiles: a validator's --key-file instead of its dev key flag.
	keyFiles map[int]string
}

// fastLocalSpec writes the builtin local chain with short slots and
// checkpoint interval.
func fastLocalSpec(t *testing.T, slotMs, interval uint64) (string, *chainspec.Spec) {
	t.Helper()
	spec, err := chainspec.Builtin("local")
	require.NoError(t, err)
	spec.Name, spec.ID = "fast-local", "fast_local"
	spec.SlotDurationMs, spec.CheckpointInterval = slotMs, interval
	b, err := json.MarshalIndent(spec, "", "  ")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "fast-local.json")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path, spec
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newLocalNet prepares base paths, ports and node keys for the four local
// validators plus `observers` non-validator nodes.
func newLocalNet(t *testing.T, slotMs, interval uint64, observers int) *localNet {
	path, spec := fastLocalSpec(t, slotMs, interval)
	return newLocalNetOn(t, path, spec, observers)
}

// newLocalNetOn is newLocalNet on a given chain (builtin name or spec file).
func newLocalNetOn(t *testing.T, path string, spec *chainspec.Spec, observers int) *localNet {
	ln := &localNet{t: t, specPath: path, spec: spec, votes: map[string][]ownVote{}, runs: map[string]int{}}
	names := []string{"alice", "bob", "charlie", "dave"}
	for i := 0; i < observers; i++ {
		names = append(names, fmt.Sprintf("observer%d", i))
	}
	for i, name := range names {
		base := t.TempDir()
		cfg := config.Default()
		cfg.Chain, cfg.BasePath = path, base
		require.NoError(t, cfg.Validate())
		require.NoError(t, os.MkdirAll(filepath.Dir(cfg.NodeKeyPath()), 0o700))
		_, err := p2p.LoadOrCreateNodeKey(cfg.NodeKeyPath())
		require.NoError(t, err)
		id, err := p2p.PeerIDFromKeyFile(cfg.NodeKeyPath())
		require.NoError(t, err)
		if i < 4 {
			require.NoError(t, node.DeclareFreshSignerRecord(&cfg))
		}
		port := freePort(t)
		ln.names = append(ln.names, name)
		ln.bases = append(ln.bases, base)
		ln.ports = append(ln.ports, port)
		ln.addrs = append(ln.addrs, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, id))
		ln.validator = append(ln.validator, i < 4)
		ln.metrics = append(ln.metrics, freePort(t))
	}
	ln.procs = make([]*proc, len(names))
	return ln
}

func (ln *localNet) start(i int) *proc {
	ln.t.Helper()
	args := []string{"--chain", ln.specPath, "--enable-asf", "--base-path", ln.bases[i],
		"--listen-addr", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ln.ports[i]), "--name", ln.names[i],
		"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", ln.metrics[i])}
	switch {
	case ln.keyFiles[i] != "":
		args = append(args, "--validator", "--key-file", ln.keyFiles[i])
	case ln.validator[i]:
		args = append(args, "--"+ln.names[i])
	}
	args = append(args, ln.extra...)
	for j, a := range ln.addrs {
		if ln.soleBootnode && (i == 0 || j != 0) {
			continue
		}
		if j != i && j < 4 {
			args = append(args, "--bootnodes", a)
		}
	}
	ln.runs[ln.names[i]]++
	p := startNode(ln.t, fmt.Sprintf("%s#%d", ln.names[i], ln.runs[ln.names[i]]), args...)
	ln.procs[i] = p
	return p
}

// collect records the votes a process released before it is stopped.
func (ln *localNet) collect(i int) {
	ln.votes[ln.names[i]] = append(ln.votes[ln.names[i]], ownVotes(ln.t, ln.procs[i])...)
}

func (ln *localNet) kill(i int) {
	ln.t.Helper()
	ln.procs[i].stop(syscall.SIGKILL, 10*time.Second)
	ln.collect(i)
	ln.procs[i] = nil
}

func (ln *localNet) stop(i int) {
	ln.t.Helper()
	require.Equal(ln.t, 0, ln.procs[i].stop(syscall.SIGINT, 30*time.Second))
	ln.collect(i)
	ln.procs[i] = nil
}

// finalized returns the highest finalized checkpoint a process logged.
func finalizedOf(t *testing.T, p *proc) uint64 {
	var f uint64
	for _, l := range p.all(reFinality) {
		f = max(f, number(t, l.Msg))
	}
	for _, l := range p.all(reRestored) {
		f = max(f, number(t, l.Msg))
	}
	return f
}

// finalizedHashes maps checkpoint number to the hash a process finalized.
func finalizedHashes(p *proc) map[uint64]string {
	out := map[uint64]string{}
	for _, l := range p.all(reFinality) {
		num, _ := l.Fields["checkpoint"].(float64)
		h, _ := l.Fields["hash"].(string)
		out[uint64(num)] = h
	}
	return out
}

// waitFinalized waits until every running node in idx logged finality of at
// least cp.
func (ln *localNet) waitFinalized(cp uint64, timeout time.Duration, idx ...int) {
	ln.t.Helper()
	deadline := time.Now().Add(timeout)
	for _, i := range idx {
		p := ln.procs[i]
		for finalizedOf(ln.t, p) < cp {
			left := time.Until(deadline)
			if left <= 0 {
				ln.t.Fatalf("%s did not finalize checkpoint %d (at %d); last lines:\n%s", p.name, cp, finalizedOf(ln.t, p), p.tail(20))
			}
			p.waitLog(reFinality, p.lineCount(), left)
		}
	}
}

func (ln *localNet) maxFinalized(idx ...int) uint64 {
	var f uint64
	for _, i := range idx {
		f = max(f, finalizedOf(ln.t, ln.procs[i]))
	}
	return f
}

// requireAgreement: no two processes ever finalized different hashes for
// one checkpoint number.
func (ln *localNet) requireAgreement(all []*proc) {
	ln.t.Helper()
	ref := map[uint64]string{}
	for _, p := range all {
		for num, h := range finalizedHashes(p) {
			if r, ok := ref[num]; ok {
				require.Equal(ln.t, r, h, "conflicting finality at checkpoint %d (%s)", num, p.name)
			}
			ref[num] = h
		}
	}
}

// TestLocalNetworkFinalityAndRecovery runs the four local validators (and a
// late non-validator) as real processes over libp2p on 127.0.0.1 and walks
// through the failure cases: one validator killed, two killed, a kill -9'd
// validator rejoining after the network moved on, all four killed -9 and
// restarted, a late observer syncing, and a hostile peer.
func TestLocalNetworkFinalityAndRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	ln := newLocalNet(t, 250, 2, 1)
	var history []*proc
	for i := 0; i < 4; i++ {
		history = append(history, ln.start(i))
	}
	all := []int{0, 1, 2, 3}
	ln.waitFinalized(3, 90*time.Second, all...)

	t.Run("hostile peer is rejected and honest nodes keep finalizing", func(t *testing.T) {
		f := ln.maxFinalized(all...)
		sendHostileTraffic(t, ln)
		ln.waitFinalized(f+3, 60*time.Second, all...)
	})

	t.Run("one validator killed: finality continues", func(t *testing.T) {
		ln.kill(3)
		f := ln.maxFinalized(0, 1, 2)
		ln.waitFinalized(f+3, 60*time.Second, 0, 1, 2)
	})

	t.Run("kill -9'd validator rejoins after the network moved on", func(t *testing.T) {
		f := ln.maxFinalized(0, 1, 2)
		p := ln.start(3)
		history = append(history, p)
		l, _ := p.waitLog(reRestored, 0, 30*time.Second)
		require.Less(t, number(t, l.Msg), f+1)
		// Back at the tip and voting again within a few checkpoint intervals.
		p.waitLog(reOwnVote, 0, 30*time.Second)
		ln.waitFinalized(f+3, 60*time.Second, 0, 1, 2, 3)
	})

	t.Run("two validators killed: finality stops; one back: it resumes", func(t *testing.T) {
		ln.kill(2)
		ln.kill(3)
		settle := time.Now().Add(2 * time.Second)
		for time.Now().Before(settle) {
			ln.procs[0].waitLog(regexp.MustCompile(`.`), ln.procs[0].lineCount(), 10*time.Second)
		}
		halted := ln.maxFinalized(0, 1)
		// Four more checkpoint intervals without a quorum.
		quiet := time.Now().Add(4 * 2 * 250 * time.Millisecond)
		for time.Now().Before(quiet) {
			ln.procs[0].waitLog(regexp.MustCompile(`.`), ln.procs[0].lineCount(), 10*time.Second)
		}
		require.LessOrEqual(t, ln.maxFinalized(0, 1), halted, "finality advanced with 2 of 4 validators")
		history = append(history, ln.start(2))
		ln.waitFinalized(halted+2, 90*time.Second, 0, 1, 2)
		history = append(history, ln.start(3))
		ln.waitFinalized(halted+4, 90*time.Second, all...)
	})

	t.Run("all four killed -9 and restarted: finality resumes where it was", func(t *testing.T) {
		before := ln.maxFinalized(all...)
		for _, i := range all {
			ln.kill(i)
		}
		for _, i := range all {
			history = append(history, ln.start(i))
		}
		for _, i := range all {
			l, _ := ln.procs[i].waitLog(reRestored, 0, 30*time.Second)
			require.GreaterOrEqual(t, number(t, l.Msg), before-1, "%s lost finality it had", ln.names[i])
		}
		ln.waitFinalized(before+2, 90*time.Second, all...)
	})

	t.Run("late non-validator syncs the finalized chain and follows it", func(t *testing.T) {
		target := ln.maxFinalized(all...)
		p := ln.start(4)
		history = append(history, p)
		ln.waitFinalized(target, 60*time.Second, 4)
		ln.waitFinalized(target+2, 60*time.Second, 4)
		require.Empty(t, p.all(reOwnVote), "a non-validator never votes")
	})

	for i := range ln.procs {
		if ln.procs[i] != nil {
			ln.stop(i)
		}
	}
	ln.requireAgreement(history)
	for name, votes := range ln.votes {
		t.Logf("%s released %d votes", name, len(votes))
		requireNoConflicts(t, votes)
	}
	require.True(t, strings.HasPrefix(ln.addrs[0], "/ip4/127.0.0.1/"))
}

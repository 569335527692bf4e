package integration

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/p2p"
)

var (
	reMarkWait   = regexp.MustCompile(`^The chain and checkpoint databases lack the finalized checkpoint of the high-water mark`)
	reMarkResume = regexp.MustCompile(`^The chain holds the high-water mark's finalized checkpoint again`)
)

// copyTree copies the directory src to dst (regular files and directories).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	}))
}

// errorLines returns the "Error: " lines of p.
func errorLines(p *proc) []string {
	var out []string
	for _, l := range p.all(regexp.MustCompile(`.`)) {
		if strings.HasPrefix(l.Raw, "Error: ") {
			out = append(out, l.Raw)
		}
	}
	return out
}

// TestBothDatabasesLostMarkKept: a lone dev validator loses both its chain
// and its checkpoint database while checkpoints.hwm, which recorded its
// finalized checkpoint, survives. It used to restore finality 0 (exit 0)
// and author a new chain from genesis, a fork of its own finalized
// checkpoint. Now:
//
//  1. without bootnodes it refuses with exit 2 and one Error line naming
//     --bootnodes, and creates nothing;
//  2. with a bootnode that is not reachable it warns and authors nothing;
//     the directories that start created do not make a later start
//     without bootnodes pass: it is refused again;
//  3. with a bootnode that holds the chain (a full node on a copy of the
//     lost databases) it syncs, resumes authoring once the chain holds
//     the mark's finalized checkpoint and finalizes beyond it, without a
//     vote that conflicts with an earlier one.
func TestBothDatabasesLostMarkKept(t *testing.T) {
	d := newDevValidator(t)
	d.runUntil(4, syscall.SIGINT, 60*time.Second)
	mark := d.lastSeen

	// A peer for step 3: a full node with its own node key, on a copy of
	// both databases about to be lost (as a peer of a real network holds
	// the chain and its certificates; the high-water mark is not copied).
	peerBase := t.TempDir()
	pcfg := config.Default()
	pcfg.Chain, pcfg.BasePath = d.spec, peerBase
	require.NoError(t, pcfg.Validate())
	require.NoError(t, os.MkdirAll(filepath.Dir(pcfg.NodeKeyPath()), 0o700))
	_, err := p2p.LoadOrCreateNodeKey(pcfg.NodeKeyPath())
	require.NoError(t, err)
	peerID, err := p2p.PeerIDFromKeyFile(pcfg.NodeKeyPath())
	require.NoError(t, err)
	peerPort := freePort(t)
	peerAddr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", peerPort, peerID)
	copyTree(t, d.chainDir(), pcfg.ChainDBPath())
	copyTree(t, d.checkpointsDir(), pcfg.CheckpointDBPath())

	require.NoError(t, os.RemoveAll(d.chainDir()))
	require.NoError(t, os.RemoveAll(d.checkpointsDir()))
	_, err = os.Stat(d.checkpointsDir() + ".hwm")
	require.NoError(t, err, "the high-water mark survives")

	refused := func(step string) {
		t.Helper()
		p := d.start()
		require.Equal(t, 2, p.wait(20*time.Second), "%s: %s", step, p.tail(5))
		lines := errorLines(p)
		require.Len(t, lines, 1, "%s: %s", step, p.tail(5))
		t.Log(lines[0])
		require.Regexp(t, `lacks the finalized checkpoint of the high-water mark: the high-water mark \S+checkpoints\.hwm records finalized checkpoint \d+ .*--bootnodes so it syncs the missing chain from peers`, lines[0], step)
		require.Empty(t, p.all(reAuthored), step)
		require.Empty(t, ownVotes(t, p), step)
	}

	// 1. No bootnodes: refused before anything is created.
	refused("no bootnodes")
	for _, dir := range []string{d.chainDir(), d.checkpointsDir()} {
		_, err := os.Stat(dir)
		require.ErrorIs(t, err, os.ErrNotExist, "the refused start creates nothing: %s", dir)
	}

	// 2. A bootnode that does not answer: the node waits, authoring
	//    nothing (100 ms slots: 30 of them).
	p := d.start("--bootnodes", peerAddr)
	_, _ = p.waitLog(reMarkWait, 0, 20*time.Second)
	time.Sleep(3 * time.Second) // observing an external process for a while
	d.stop(p, syscall.SIGINT)
	require.Empty(t, p.all(reAuthored), "no block authored on a chain without the mark's finalized checkpoint")
	require.Empty(t, ownVotes(t, p))
	// ... and the directories it created do not let a start without
	// bootnodes through.
	refused("no bootnodes after a start with bootnodes created the directories")

	// 3. The bootnode holds the chain: sync, resume, finalize beyond it.
	peer := startNode(t, "peer", "--chain", d.spec, "--enable-asf", "--base-path", peerBase,
		"--listen-addr", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", peerPort))
	_, _ = peer.waitLog(reOpened, 0, 20*time.Second)
	p = d.start("--bootnodes", peerAddr)
	_, i := p.waitLog(reMarkWait, 0, 20*time.Second)
	_, j := p.waitLog(reMarkResume, i, 60*time.Second)
	l, k := p.waitLog(reAuthored, 0, 30*time.Second)
	require.Greater(t, k, j, "the first block is authored after production resumed: %s", l.Raw)
	authored, err := strconv.ParseUint(regexp.MustCompile(`#(\d+)`).FindStringSubmatch(l.Msg)[1], 10, 64)
	require.NoError(t, err)
	require.Greater(t, authored, 2*mark, "authored above the mark's finalized block")
	waitFinality(t, p, mark+2, 60*time.Second)
	d.stop(p, syscall.SIGINT)
	require.Equal(t, 0, peer.stop(syscall.SIGINT, 20*time.Second), "%s", peer.tail(5))
}

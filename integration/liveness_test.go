package integration

import (
	"encoding/json"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var reCaughtUpByProof = regexp.MustCompile(`^Caught up finality from a peer's finality proof`)

// bestOf reads node i's best block number from its /status.
func (ln *localNet) bestOf(i int) uint64 {
	ln.t.Helper()
	body, err := httpGet(ln.t, fmt.Sprintf("http://127.0.0.1:%d/status", ln.metrics[i]))
	require.NoError(ln.t, err)
	var st struct {
		Best uint64 `json:"best"`
	}
	require.NoError(ln.t, json.Unmarshal([]byte(body), &st))
	return st.Best
}

// TestFinalityRecoversFromTheField runs issue 8's field events with the real
// binary on a fast chain (100 ms slots, a checkpoint every block, retention
// 20, a prune every 2 s), one after the other on one network:
//
//  1. two of four validators are down for 70 s (more than 256 checkpoints
//     of the two others) and restarted: finality advances by at least 20
//     checkpoints within 30 s;
//  2. a fresh --enable-asf full node joins after every peer pruned the
//     certificates it would replay: it reaches the network's finalized
//     checkpoint within 30 s (finality proof);
//  3. a validator is stopped, purge-chain -y'd and restarted: it votes again
//     within 30 s;
//
// and no validator ever releases a conflicting vote.
func TestFinalityRecoversFromTheField(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	ln := newLocalNet(t, 100, 1, 1)
	ln.extra = []string{"--checkpoint-retention", "20", "--checkpoint-prune-interval", "2s"}
	var history []*proc
	all := []int{0, 1, 2, 3}
	for _, i := range all {
		history = append(history, ln.start(i))
	}
	ln.waitFinalized(10, 60*time.Second, all...)

	// 1. Two of four down for 70 s.
	ln.kill(1)
	ln.kill(2)
	down := time.Now()
	time.Sleep(70 * time.Second)
	stalled := ln.maxFinalized(0, 3)
	best := ln.bestOf(0)
	t.Logf("after %s with two validators down: finalized %d, best block #%d", time.Since(down).Round(time.Second), stalled, best)
	require.Greater(t, best, stalled+256, "the outage must outlast the 256-checkpoint window")
	restart := time.Now()
	for _, i := range []int{1, 2} {
		history = append(history, ln.start(i))
	}
	ln.waitFinalized(stalled+20, 30*time.Second, all...)
	t.Logf("finality %d -> %d within %s of the restart", stalled, ln.maxFinalized(all...), time.Since(restart).Round(time.Millisecond))
	for _, i := range []int{1, 2} {
		ln.procs[i].waitLog(reOwnVote, 0, 10*time.Second)
	}

	// 2. A fresh full node joins after every peer pruned (retention 20, a
	//    prune every 2 s, more than 300 checkpoints finalized since
	//    genesis): let two prune intervals pass.
	time.Sleep(5 * time.Second)
	target := ln.maxFinalized(all...)
	require.Greater(t, target, uint64(40))
	joined := time.Now()
	observer := ln.start(4)
	history = append(history, observer)
	ln.waitFinalized(target, 30*time.Second, 4)
	t.Logf("fresh full node reached finalized %d in %s", target, time.Since(joined).Round(time.Millisecond))
	// It caught up through a finality proof (the line follows the
	// finality it reports).
	observer.waitLog(reCaughtUpByProof, 0, 5*time.Second)
	require.Empty(t, observer.all(reOwnVote), "a full node never votes")

	// 3. A validator purge-chain'd and restarted votes again.
	ln.stop(3)
	out, errOut, code := runCLI(t, "purge-chain", "-y", "--chain", ln.specPath, "--base-path", ln.bases[3])
	require.Equal(t, 0, code, "purge-chain: %s %s", out, errOut)
	purged := time.Now()
	p := ln.start(3)
	history = append(history, p)
	p.waitLog(reOwnVote, 0, 30*time.Second)
	t.Logf("purged validator voted again %s after its restart", time.Since(purged).Round(time.Millisecond))
	ln.waitFinalized(ln.maxFinalized(0, 1, 2)+3, 30*time.Second, all...)

	for i := range ln.procs {
		if ln.procs[i] != nil {
			ln.stop(i)
		}
	}
	ln.requireAgreement(history)
	for name, votes := range ln.votes {
		requireNoConflicts(t, votes)
		t.Logf("%s released %d votes", name, len(votes))
	}
}

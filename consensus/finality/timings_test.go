package finality_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// recordingTimings records what the gadget reports to its Timings.
type recordingTimings struct {
	mu        sync.Mutex
	persisted int
	justified []time.Duration
	pruned    []int
}

func (r *recordingTimings) CertificatePersisted(time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.persisted++
}

func (r *recordingTimings) OwnVoteJustified(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.justified = append(r.justified, d)
}

func (r *recordingTimings) Pruned(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruned = append(r.pruned, n)
}

// TestTimingsAndSigners: the gadget reports the time from an own vote to
// the justification of its target (by its clock), one persist duration per
// stored certificate and each prune; Signers names the validators behind
// each level.
func TestTimingsAndSigners(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	tm := &recordingTimings{}
	nd := net.newNode(0, withTimings(tm), withPersistence(finality.CheckpointPersistenceConfig{
		Enabled: true, RetentionCheckpoints: 1, FlushInterval: time.Hour, PruneInterval: time.Minute,
	}))
	defer nd.close()
	g0 := net.genesis()
	c1 := net.chain.Next()

	require.NoError(t, nd.g.OnCheckpointBlock(ctx, c1)) // own vote g0 -> c1
	require.Equal(t, []checkpoint.ValidatorIndex{0}, nd.g.Signers(1))
	net.clock.Advance(3 * time.Second)
	nd.mustVote(net.vote(2, g0, c1), finality.VerdictAccept)
	require.Equal(t, []checkpoint.ValidatorIndex{0, 2}, nd.g.Signers(1), "ascending")
	require.Empty(t, tm.justified)
	net.clock.Advance(2 * time.Second)
	nd.mustVote(net.vote(1, g0, c1), finality.VerdictAccept) // quorum 3 of 4
	require.Equal(t, c1, nd.g.LatestJustified())
	require.Equal(t, []time.Duration{5 * time.Second}, tm.justified)
	require.Equal(t, 1, tm.persisted)
	require.Equal(t, []checkpoint.ValidatorIndex{0, 1, 2}, nd.g.Signers(1))
	require.Empty(t, nd.g.Signers(2), "nothing known at 2")

	// A certificate from the network justifying c2 (the node voted for c2
	// too: the wait is reported once) and one finalizing c2 by c3.
	c2 := net.chain.Next()
	require.NoError(t, nd.g.OnCheckpointBlock(ctx, c2))
	net.clock.Advance(time.Second)
	nd.mustCert(net.cert(c1, c2, 1, 2, 3), finality.VerdictAccept)
	require.Equal(t, []time.Duration{5 * time.Second, time.Second}, tm.justified)
	require.Equal(t, []checkpoint.ValidatorIndex{1, 2, 3}, nd.g.Signers(2), "the certificate's signers")
	c3 := net.chain.Next()
	nd.mustCert(net.cert(c2, c3, 0, 1, 2), finality.VerdictAccept)
	require.Equal(t, c2, nd.g.LatestFinalized())
	require.Equal(t, 3, tm.persisted)
	require.Len(t, tm.justified, 2, "no own vote for c3 was signed before its certificate")

	net.clock.Advance(time.Minute)
	require.NoError(t, nd.g.PerformPeriodicMaintenance(ctx))
	require.Equal(t, []int{1}, tm.pruned, "retention 1 at finalized 2 removes checkpoint 1")
	net.clock.Advance(time.Minute)
	require.NoError(t, nd.g.PerformPeriodicMaintenance(ctx))
	require.Equal(t, []int{1, 0}, tm.pruned, "every run is reported")
}

package finality_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

func TestMaintenanceByClock(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	nd := net.newNode(-1, withPersistence(finality.CheckpointPersistenceConfig{
		Enabled: true, RetentionCheckpoints: 2, FlushInterval: 5 * time.Second, PruneInterval: 60 * time.Second,
	}))
	defer nd.close()
	cps := []checkpoint.Checkpoint{net.genesis()}
	for i := 1; i <= 9; i++ {
		cps = append(cps, net.chain.Next())
		nd.mustCert(net.cert(cps[i-1], cps[i], 0, 1, 2), finality.VerdictAccept)
	}
	require.Equal(t, cps[8], nd.g.LatestFinalized())

	steps := []struct {
		advance        time.Duration
		flush, prune   int
		prunedLogLines int
	}{
		{0, 0, 0, 0},
		{4 * time.Second, 0, 0, 0},
		{time.Second, 1, 0, 0},      // 5 s
		{time.Second, 1, 0, 0},      // 6 s
		{4 * time.Second, 2, 0, 0},  // 10 s
		{49 * time.Second, 3, 0, 0}, // 59 s
		{time.Second, 3, 1, 1},      // 60 s: prune
		{59 * time.Second, 4, 1, 1}, // 119 s
		{time.Second, 4, 2, 1},      // 120 s: prune, nothing left to remove
	}
	for i, s := range steps {
		net.clock.Advance(s.advance)
		require.NoError(t, nd.g.PerformPeriodicMaintenance(ctx))
		flushes, prunes := nd.store.Counts()
		require.Equal(t, s.flush, flushes, "step %d flushes", i)
		require.Equal(t, s.prune, prunes, "step %d prunes", i)
		require.Equal(t, s.prunedLogLines, nd.logs.FilterMessageSnippet("old checkpoints").Len(), "step %d", i)
		require.Equal(t, s.prune, nd.logged("Auto-pruning old checkpoint data"), "step %d", i)
	}
	require.Equal(t, 4, nd.logged("Auto-flushing checkpoint database"))
	// Retention 2 at finalized 8 keeps 7 and 8: 1..6 went (genesis has no
	// certificate stored).
	require.Equal(t, 1, nd.logged("Pruned 6 old checkpoints"))
	_, ok := nd.g.Certificate(7)
	require.False(t, ok, "memory below finalized dropped")
	_, ok = nd.g.Certificate(8)
	require.True(t, ok)
}

func TestMaintenanceReturnsStorageErrors(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	nd := net.newNode(-1)
	defer nd.close()
	nd.store.flushErr = errInjected
	require.NoError(t, nd.g.PerformPeriodicMaintenance(ctx), "nothing due yet")
	net.clock.Advance(finality.TestnetPersistenceConfig().FlushInterval)
	err := nd.g.PerformPeriodicMaintenance(ctx)
	require.ErrorIs(t, err, errInjected)
	// Still due: the next call tries again.
	require.ErrorIs(t, nd.g.PerformPeriodicMaintenance(ctx), errInjected)
	nd.store.mu.Lock()
	nd.store.flushErr = nil
	nd.store.mu.Unlock()
	require.NoError(t, nd.g.PerformPeriodicMaintenance(ctx))
	flushes, _ := nd.store.Counts()
	require.Equal(t, 3, flushes)
	require.NoError(t, nd.g.PerformPeriodicMaintenance(ctx))
	flushes, _ = nd.store.Counts()
	require.Equal(t, 3, flushes, "flushed: not due again")
}

func TestTickRebroadcastsWhenFinalityStalls(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	nodes := net.newNodes(4)
	simulate(t, net, nodes, nodes, 3, 1, deliveryPolicy{})
	require.Equal(t, uint64(2), nodes[0].g.LatestFinalized().Number)

	// Round 4: every vote is lost.
	c4 := net.chain.Next()
	for _, nd := range nodes {
		require.NoError(t, nd.g.OnCheckpointBlock(ctx, c4))
	}
	pump(t, net.bus, nodes, deliveryPolicy{drop: func(message, int) bool { return true }})
	tick := func() int {
		n := len(net.bus.Sent())
		for _, nd := range nodes {
			require.NoError(t, nd.g.Tick(ctx))
		}
		return len(net.bus.Sent()) - n
	}
	net.clock.Advance(9 * time.Second)
	require.Zero(t, tick(), "finality advanced less than RebroadcastAfter ago")
	net.clock.Advance(time.Second)
	require.Equal(t, 8, tick(), "each node re-sends its vote and its latest certificate")
	require.Zero(t, tick(), "at most once per RebroadcastAfter")
	pump(t, net.bus, nodes, deliveryPolicy{})
	for _, nd := range nodes {
		require.Equal(t, c4, nd.g.LatestJustified())
		require.Equal(t, uint64(3), nd.g.LatestFinalized().Number)
		require.Equal(t, 1, nd.logged("Finality stalled: re-broadcasting latest vote and certificate"))
	}
	net.clock.Advance(5 * time.Second)
	require.Zero(t, tick(), "finality just advanced")
}

package finality_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

func TestRestartContinues(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	nodes := net.newNodes(4)
	simulate(t, net, nodes, nodes, 5, 1, deliveryPolicy{})
	n0 := nodes[0]
	c5 := n0.g.LatestJustified()
	require.Equal(t, uint64(5), c5.Number)
	require.Equal(t, uint64(4), n0.g.LatestFinalized().Number)

	// Checkpoint 6: node 0 votes and hears validator 1; nothing else is
	// delivered before the restart.
	c6 := net.chain.Next()
	require.NoError(t, n0.g.OnCheckpointBlock(ctx, c6))
	sent := net.bus.Sent()
	ownVote := *sent[len(sent)-1].vote
	require.Equal(t, checkpoint.ValidatorIndex(0), ownVote.Validator)
	n0.mustVote(net.vote(1, c5, c6), finality.VerdictAccept)
	net.bus.queue = nil

	before := struct {
		j, f   checkpoint.Checkpoint
		s5, s6 finality.CheckpointStatus
		cert5  checkpoint.Certificate
	}{j: n0.g.LatestJustified(), f: n0.g.LatestFinalized(), s5: n0.g.Status(5), s6: n0.g.Status(6)}
	var ok bool
	before.cert5, ok = n0.g.Certificate(5)
	require.True(t, ok)
	require.Equal(t, 2, before.s6.Weight)

	n0.restart()
	require.Equal(t, 1, n0.logged("Restoring checkpoint state from storage"))
	require.Equal(t, 1, n0.logged("Last finalized checkpoint: 4"))
	require.Equal(t, 1, n0.logged("Checkpoint state restored successfully: last_finalized=4"))
	require.Equal(t, before.j, n0.g.LatestJustified())
	require.Equal(t, before.f, n0.g.LatestFinalized())
	require.Equal(t, before.s5, n0.g.Status(5))
	require.Equal(t, before.s6, n0.g.Status(6), "votes re-tallied")
	cert5, ok := n0.g.Certificate(5)
	require.True(t, ok)
	require.Equal(t, before.cert5, cert5)
	require.False(t, n0.g.Halted())

	// Asked again, it re-votes the identical vote.
	require.NoError(t, n0.g.OnCheckpointBlock(ctx, c6))
	sent = net.bus.Sent()
	require.Equal(t, ownVote, *sent[len(sent)-1].vote, "identical vote, identical signature")
	require.Equal(t, 2, n0.g.Status(6).Weight, "not counted twice")

	// A conflicting vote (other block at 6) and a lower one are refused.
	x6 := net.chain.Extend(c5, 'x')
	n := len(net.bus.Sent())
	require.NoError(t, n0.g.OnCheckpointBlock(ctx, x6))
	require.Len(t, net.bus.Sent(), n, "no conflicting vote after the restart")

	// The echo of our own vote is recognized as ours.
	n0.mustVote(ownVote, finality.VerdictIgnore)
	require.False(t, n0.g.Halted())

	// It continues: the remaining votes for 6 arrive.
	net.bus.queue = nil
	n0.mustVote(net.vote(2, c5, c6), finality.VerdictAccept)
	require.Equal(t, c6, n0.g.LatestJustified())
	require.Equal(t, c5, n0.g.LatestFinalized())
}

func TestRestartKeepsPendingCertificatesAndEvidence(t *testing.T) {
	net := newTestNet(t, 4)
	nd := net.newNode(-1)
	defer nd.close()
	g0 := net.genesis()
	c1, c2, c3 := net.chain.Next(), net.chain.Next(), net.chain.Next()
	nd.mustCert(net.cert(g0, c1, 0, 1, 2), finality.VerdictAccept)
	nd.mustCert(net.cert(c2, c3, 0, 1, 2), finality.VerdictAccept) // pending: 2 not justified
	x4 := checkpoint.Checkpoint{Number: 4, Hash: checkpoint.HashOf([]byte("x4"))}
	y4 := checkpoint.Checkpoint{Number: 4, Hash: checkpoint.HashOf([]byte("y4"))}
	nd.mustVote(net.vote(3, c3, x4), finality.VerdictAccept)
	nd.mustVote(net.vote(3, c3, y4), finality.VerdictIgnore) // double vote: evidence
	require.Len(t, nd.store.Evidence(), 1)

	nd.restart()
	require.Equal(t, c1, nd.g.LatestJustified())
	require.Equal(t, g0, nd.g.LatestFinalized())
	require.Equal(t, finality.LevelPreCommitment, nd.g.Status(3).Level, "still pending after the restart")
	// The offender was recorded: a third vote adds no evidence.
	nd.mustVote(net.vote(3, c3, checkpoint.Checkpoint{Number: 4, Hash: checkpoint.HashOf([]byte("z4"))}), finality.VerdictIgnore)
	require.Empty(t, nd.store.Evidence())
	require.Equal(t, 1, nd.g.Status(4).Weight)

	nd.mustCert(net.cert(c1, c2, 1, 2, 3), finality.VerdictAccept)
	require.Equal(t, c3, nd.g.LatestJustified(), "the restored pending certificate applied")
	require.Equal(t, c2, nd.g.LatestFinalized())
}

func TestRestoreWithoutStoredState(t *testing.T) {
	net := newTestNet(t, 4)
	nd := net.newNode(1)
	defer nd.close()
	require.Equal(t, net.genesis(), nd.g.LatestFinalized())
	require.Equal(t, net.genesis(), nd.g.LatestJustified())
	require.Equal(t, 1, nd.logged("Checkpoint state restored successfully: last_finalized=0"))
}

func TestRestoreCompletesInterruptedCertificate(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	nd := net.newNode(-1)
	defer nd.close()
	g0 := net.genesis()
	c1 := net.chain.Next()
	// A quorum of votes reached the database but the certificate write did
	// not happen (crash in between).
	for i := range 3 {
		require.NoError(t, nd.db.StoreVote(ctx, net.vote(i, g0, c1)))
	}
	require.NoError(t, nd.db.Flush(ctx))
	nd.restart()
	require.Equal(t, c1, nd.g.LatestJustified(), "the re-tallied votes justify")
	st, err := nd.db.Restore(ctx)
	require.NoError(t, err)
	require.NotNil(t, st.Justified)
	require.Equal(t, c1, *st.Justified, "and the certificate is persisted with its pointer")
	require.Len(t, st.Certificates, 1)
	require.NoError(t, net.auth.VerifyCertificate(st.Certificates[0]))
}

// reentrantObserver calls back into the gadget from its notifications.
type reentrantObserver struct {
	g         func() *finality.CheckpointFinality
	finalized []checkpoint.Checkpoint
}

func (o *reentrantObserver) Justified(cp checkpoint.Checkpoint) { _ = o.g().Status(cp.Number) }
func (o *reentrantObserver) Finalized(cp checkpoint.Checkpoint) {
	o.finalized = append(o.finalized, o.g().LatestFinalized())
}

func TestObserverMayCallBack(t *testing.T) {
	net := newTestNet(t, 4)
	var g *finality.CheckpointFinality
	obs := &reentrantObserver{g: func() *finality.CheckpointFinality { return g }}
	g, err := finality.New(finality.Config{Authorities: net.auth}, finality.Deps{Observer: obs, Clock: net.clock})
	require.NoError(t, err)
	cps := []checkpoint.Checkpoint{net.genesis()}
	for i := 1; i <= 3; i++ {
		cps = append(cps, net.chain.Next())
		verdict, err := g.OnCertificate(context.Background(), net.cert(cps[i-1], cps[i], 0, 1, 2))
		require.NoError(t, err)
		require.Equal(t, finality.VerdictAccept, verdict)
	}
	require.Equal(t, []checkpoint.Checkpoint{cps[1], cps[2]}, obs.finalized)
}

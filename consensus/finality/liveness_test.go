package finality_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// TestLongStallResumes: two of four validators vote alone for far more
// checkpoints than the future window (no quorum, finality stays at
// genesis); when the other two come back, the next checkpoint is justified
// and the one after it finalizes, however far the head is above finality.
func TestLongStallResumes(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	nodes := net.newNodes(4)
	online := nodes[:2]
	const stalled = 600 // > DefaultFutureWindow
	simulate(t, net, online, online, stalled, 1, deliveryPolicy{})
	for _, nd := range nodes {
		require.Equal(t, net.genesis(), nd.g.LatestFinalized())
		sz := nd.g.Sizes()
		require.LessOrEqual(t, sz.Votes, 4*finality.DefaultVotesPerValidator, "memory stays bounded during the stall")
	}
	// The two others are back (their chain is the same tree).
	before := net.chain.tip.Number
	for round := 1; round <= 2; round++ {
		cp := net.chain.Next()
		for _, nd := range nodes {
			require.NoError(t, nd.g.OnCheckpointBlock(ctx, cp))
		}
		pump(t, net.bus, nodes, deliveryPolicy{})
	}
	for _, nd := range nodes {
		require.Equal(t, before+2, nd.g.LatestJustified().Number)
		require.Equal(t, before+1, nd.g.LatestFinalized().Number, "finality resumed two checkpoints after the quorum is back")
		require.False(t, nd.g.Halted())
	}
}

// TestCertificateJumpingOverFinalityAlarms: a verified certificate whose
// link jumps over the finalized checkpoint F surrounds (or double-votes
// against) the link (F, F+1) that finalized F: at least a third of the
// validators equivocated. It halts instead of being silently ignored.
func TestCertificateJumpingOverFinalityAlarms(t *testing.T) {
	tests := []struct {
		name string
		cert func(net *testNet, g0, c1, c2, c3 checkpoint.Checkpoint) checkpoint.Certificate
		halt bool
	}{
		{"surrounds the finalizing link", func(net *testNet, g0, c1, c2, c3 checkpoint.Checkpoint) checkpoint.Certificate {
			return net.cert(g0, net.chain.Extend(c2, 'x'), 1, 2, 3)
		}, true},
		{"surrounds it on the same chain", func(net *testNet, g0, c1, c2, c3 checkpoint.Checkpoint) checkpoint.Certificate {
			return net.cert(g0, c3, 1, 2, 3)
		}, true},
		{"double vote against the finalizing link", func(net *testNet, g0, c1, c2, c3 checkpoint.Checkpoint) checkpoint.Certificate {
			return net.cert(g0, c2, 1, 2, 3)
		}, true},
		{"old link below finality is only stale", func(net *testNet, g0, c1, c2, c3 checkpoint.Checkpoint) checkpoint.Certificate {
			return net.cert(g0, c1, 0, 1, 3)
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			net := newTestNet(t, 4)
			nd := net.newNode(-1)
			defer nd.close()
			g0 := net.genesis()
			c1 := net.chain.Next()
			c2 := net.chain.Next()
			c3 := net.chain.Next()
			nd.mustCert(net.cert(g0, c1, 0, 1, 2), finality.VerdictAccept)
			nd.mustCert(net.cert(c1, c2, 0, 1, 2), finality.VerdictAccept)
			require.Equal(t, c1, nd.g.LatestFinalized())
			nd.mustCert(tc.cert(net, g0, c1, c2, c3), finality.VerdictIgnore)
			require.Equal(t, tc.halt, nd.g.Halted())
			require.Equal(t, c1, nd.g.LatestFinalized(), "finality never moves on a conflicting certificate")
			if tc.halt {
				require.Equal(t, 1, nd.logged("Conflicting finality: a valid certificate contradicts the finalized chain; voting stopped until an operator clears the alarm"))
				halts := nd.g.Halts()
				require.Len(t, halts, 1)
				require.Equal(t, checkpoint.HaltConflictingFinality, halts[0].Reason)
			}
		})
	}
}

// TestFinalityProofJump: a node far behind (its peers pruned the
// certificates it would replay) jumps to a verified proof and follows from
// there; bad proofs are refused, a conflicting one halts.
func TestFinalityProofJump(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	nd := net.newNode(-1)
	defer nd.close()
	var cps []checkpoint.Checkpoint
	for range 13 {
		cps = append(cps, net.chain.Next())
	}
	at := func(n int) checkpoint.Checkpoint { return cps[n-1] }
	proof := checkpoint.FinalityProof{Finalizing: net.cert(at(10), at(11), 0, 1, 2)}
	j := net.cert(at(11), at(12), 1, 2, 3)
	proof.Justified = &j

	bad := []struct {
		name  string
		proof func() checkpoint.FinalityProof
	}{
		{"not consecutive", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: net.cert(at(9), at(11), 0, 1, 2)}
		}},
		{"below quorum", func() checkpoint.FinalityProof {
			return checkpoint.FinalityProof{Finalizing: net.cert(at(10), at(11), 0, 1)}
		}},
		{"bad signature", func() checkpoint.FinalityProof {
			p := checkpoint.FinalityProof{Finalizing: net.cert(at(10), at(11), 0, 1, 2)}
			p.Finalizing.Signatures[1].Signature[5] ^= 1
			return p
		}},
		{"justified below finalized", func() checkpoint.FinalityProof {
			p := checkpoint.FinalityProof{Finalizing: net.cert(at(10), at(11), 0, 1, 2)}
			jj := net.cert(at(8), at(9), 0, 1, 2)
			p.Justified = &jj
			return p
		}},
	}
	for _, b := range bad {
		_, err := nd.g.ApplyFinalityProof(ctx, b.proof())
		require.ErrorIs(t, err, finality.ErrBadProof, b.name)
	}
	require.Zero(t, nd.g.LatestFinalized().Number)

	moved, err := nd.g.ApplyFinalityProof(ctx, proof)
	require.NoError(t, err)
	require.True(t, moved)
	// The justified certificate (11, 12) is itself a link to the next
	// checkpoint: it finalizes 11 on top of the proof's 10.
	require.Equal(t, at(11), nd.g.LatestFinalized())
	require.Equal(t, at(12), nd.g.LatestJustified())
	got, ok := nd.g.FinalityProof()
	require.True(t, ok)
	require.Equal(t, j, got.Finalizing, "it can serve a proof of its own finalized checkpoint")
	require.Equal(t, []checkpoint.Checkpoint{at(10), at(11)}, nd.obs.Finalizations())

	// It follows from there with ordinary votes.
	for i := range 3 {
		nd.mustVote(net.vote(i, at(12), at(13)), finality.VerdictAccept)
	}
	require.Equal(t, at(12), nd.g.LatestFinalized())

	// Replaying the proof is a no-op; a proof conflicting with finality
	// halts.
	moved, err = nd.g.ApplyFinalityProof(ctx, proof)
	require.NoError(t, err)
	require.False(t, moved)
	other := net.chain.Extend(at(9), 'x')
	conflicting := checkpoint.FinalityProof{Finalizing: net.cert(at(9), other, 0, 1, 2)}
	_, err = nd.g.ApplyFinalityProof(ctx, conflicting)
	require.NoError(t, err)
	require.True(t, nd.g.Halted(), "a proof finalizing another block at a finalized number halts")
	require.Equal(t, at(12), nd.g.LatestFinalized())
}

// TestSignerInitListening: while a fresh signer record is initialised, votes
// signed with the local key up to the mark are history (remembered), one
// above it is another live instance: halt.
func TestSignerInitListening(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	nd := net.newNode(0)
	defer nd.close()
	g0 := net.genesis()
	var cps []checkpoint.Checkpoint
	for range 8 {
		cps = append(cps, net.chain.Next())
	}
	require.NoError(t, nd.g.BeginSignerInit(ctx, 5))
	require.NoError(t, nd.g.OnCheckpointBlock(ctx, cps[5]))
	require.Zero(t, nd.g.Metrics().OwnVotes, "no vote while listening")
	nd.mustVote(net.vote(0, g0, cps[2]), finality.VerdictAccept)
	nd.mustVote(net.vote(0, g0, cps[4]), finality.VerdictAccept)
	seen := nd.g.OwnSeen()
	require.Equal(t, 2, seen.Votes)
	require.Equal(t, uint64(5), seen.MaxTarget)
	require.False(t, nd.g.Halted())
	nd.mustVote(net.vote(0, g0, cps[6]), finality.VerdictIgnore)
	require.True(t, nd.g.Halted(), "our key signing above the mark while we listen: a doppelganger")
	require.Equal(t, 1, nd.logged("found conflicting vote from ourselves"))
	halts := nd.g.Halts()
	require.Len(t, halts, 1)
	require.Equal(t, checkpoint.HaltDoppelganger, halts[0].Reason)
}

// TestOneBroadcasterPerCheckpoint: by default each validator forms the
// certificate of a checkpoint from the votes, but only validator
// (target mod n) broadcasts it; an observer never does.
func TestOneBroadcasterPerCheckpoint(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	var nodes []*node
	for i := range 4 {
		nd := net.newNode(i, func(nd *node) { nd.cfg.BroadcastAllFormed = false })
		defer nd.close()
		nodes = append(nodes, nd)
	}
	obs := net.newNode(-1, func(nd *node) { nd.cfg.BroadcastAllFormed = false })
	defer obs.close()
	all := append(append([]*node(nil), nodes...), obs)
	for range 6 {
		cp := net.chain.Next()
		for _, nd := range nodes {
			require.NoError(t, nd.g.OnCheckpointBlock(ctx, cp))
		}
		pump(t, net.bus, all, deliveryPolicy{})
	}
	validatorOf := map[int]int{}
	for _, nd := range all {
		validatorOf[nd.id] = nd.idx
	}
	byTarget := map[uint64][]int{}
	for _, m := range net.bus.Sent() {
		if m.cert != nil {
			byTarget[m.cert.Target.Number] = append(byTarget[m.cert.Target.Number], validatorOf[m.from])
		}
	}
	require.NotEmpty(t, byTarget)
	for target, from := range byTarget {
		require.Equal(t, []int{int(target % 4)}, from, "checkpoint %d: one broadcaster, validator target mod n", target)
	}
	for _, nd := range all {
		require.Equal(t, uint64(5), nd.g.LatestFinalized().Number)
	}
}

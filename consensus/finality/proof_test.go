package finality_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// TestProofVerifierIsTheAuthoritySets: the gadget verifies finality proofs
// with checkpoint.AuthoritySet.VerifyFinalityProof, the verifier the chain
// database stores and reopens proofs with. Proofs the core's former checks
// let through (the justified certificate only had to link from F's number or
// above and target F+1's number or above) but that contradict themselves
// are refused with ErrBadProof and change nothing; a pair of proofs that each
// verify but contradict each other (at least a third of the validators
// signed both) is applied, then alarmed on, as before.
func TestProofVerifierIsTheAuthoritySets(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	var cps []checkpoint.Checkpoint
	for range 13 {
		cps = append(cps, net.chain.Next())
	}
	at := func(n int) checkpoint.Checkpoint { return cps[n-1] }
	x10 := net.chain.Extend(at(9), 'x') // another block at number 10
	x11 := net.chain.Extend(x10, 'x')   // and at 11
	withJustified := func(f, j checkpoint.Certificate) checkpoint.FinalityProof {
		return checkpoint.FinalityProof{Finalizing: f, Justified: &j}
	}
	fin := net.cert(at(10), at(11), 0, 1, 2)

	bad := []struct {
		name  string
		proof checkpoint.FinalityProof
	}{
		{"justified source at F's number is another block", withJustified(fin, net.cert(x10, at(12), 1, 2, 3))},
		{"justified target at F+1's number is another block", withJustified(fin, net.cert(at(10), x11, 1, 2, 3))},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			nd := net.newNode(-1)
			defer nd.close()
			_, _, err := net.auth.VerifyFinalityProof(b.proof)
			require.ErrorIs(t, err, checkpoint.ErrBadProof, "the authority set's verifier refuses it")
			fc, jc := b.proof.Finalizing, b.proof.Justified
			require.True(t, fc.Finalizes() && jc.Source.Number >= fc.Source.Number && jc.Target.Number >= fc.Target.Number,
				"the former core checks let it through")

			require.ErrorIs(t, nd.g.VerifyFinalityProof(b.proof), finality.ErrBadProof)
			moved, err := nd.g.ApplyFinalityProof(ctx, b.proof)
			require.ErrorIs(t, err, finality.ErrBadProof)
			require.ErrorIs(t, err, checkpoint.ErrBadProof)
			require.False(t, moved)
			require.Zero(t, nd.g.LatestFinalized().Number)
			require.False(t, nd.g.Halted())
			_, ok := nd.g.FinalityProof()
			require.False(t, ok)
		})
	}

	t.Run("contradicting pair that verifies", func(t *testing.T) {
		nd := net.newNode(-1)
		defer nd.close()
		p := checkpoint.FinalityProof{Finalizing: fin}
		q := checkpoint.FinalityProof{Finalizing: net.cert(x10, x11, 1, 2, 3)} // 1 and 2 signed both
		for _, pr := range []checkpoint.FinalityProof{p, q} {
			_, _, err := net.auth.VerifyFinalityProof(pr)
			require.NoError(t, err)
			require.NoError(t, nd.g.VerifyFinalityProof(pr))
		}
		moved, err := nd.g.ApplyFinalityProof(ctx, p)
		require.NoError(t, err)
		require.True(t, moved)
		require.Equal(t, at(10), nd.g.LatestFinalized())

		moved, err = nd.g.ApplyFinalityProof(ctx, q)
		require.NoError(t, err)
		require.False(t, moved)
		require.True(t, nd.g.Halted())
		require.Equal(t, at(10), nd.g.LatestFinalized(), "finality never moves on a conflicting proof")
		halts := nd.g.Halts()
		require.Len(t, halts, 1)
		require.Equal(t, checkpoint.HaltConflictingFinality, halts[0].Reason)
		require.NotNil(t, halts[0].Evidence)
		require.Equal(t, checkpoint.EvidenceConflictingFinality, halts[0].Evidence.Kind)
		require.Equal(t, q.Finalizing, *halts[0].Evidence.Certificate)
		require.Len(t, nd.store.Evidence(), 1)
	})
}

// TestOwnFinalityProofVerifies: with at least a third of the validators
// surround voting, the latest justified checkpoint can be justified from
// below the finalized one; the gadget's own proof then leaves that
// certificate out, so the proof it hands the chain database (and serves)
// passes the authority set's verifier.
func TestOwnFinalityProofVerifies(t *testing.T) {
	net := newTestNet(t, 4)
	nd := net.newNode(-1)
	defer nd.close()
	g0 := net.genesis()
	c1, c2, c3, c4 := net.chain.Next(), net.chain.Next(), net.chain.Next(), net.chain.Next()
	nd.mustCert(net.cert(g0, c1, 0, 1, 2), finality.VerdictAccept)
	nd.mustCert(net.cert(c1, c4, 0, 1, 2), finality.VerdictAccept) // 1, 2: surrounds c2 -> c3
	nd.mustCert(net.cert(c1, c2, 1, 2, 3), finality.VerdictAccept)
	nd.mustCert(net.cert(c2, c3, 1, 2, 3), finality.VerdictAccept)
	require.Equal(t, c2, nd.g.LatestFinalized())
	require.Equal(t, c4, nd.g.LatestJustified())

	p, ok := nd.g.FinalityProof()
	require.True(t, ok)
	require.Equal(t, net.cert(c2, c3, 1, 2, 3), p.Finalizing)
	require.Nil(t, p.Justified, "the certificate c1 -> c4 links from below the finalized checkpoint")
	f, j, err := net.auth.VerifyFinalityProof(p)
	require.NoError(t, err)
	require.Equal(t, c2, f)
	require.Equal(t, c3, j)
	require.NoError(t, nd.g.VerifyFinalityProof(p))
}

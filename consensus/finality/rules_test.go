package finality_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

func TestQuorumJustifiesAndFinalizes(t *testing.T) {
	for _, n := range []int{1, 4, 21, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			net := newTestNet(t, n)
			nd := net.newNode(-1)
			defer nd.close()
			q := checkpoint.Quorum(n)
			require.Equal(t, 2*n/3+1, q)
			g0 := net.genesis()
			c1 := net.chain.Next()
			c2 := net.chain.Next()

			// Every certificate is durable (with its pointer) when it is
			// broadcast.
			nd.ep.check = func(m message) {
				if m.cert == nil {
					return
				}
				st, err := nd.db.Restore(context.Background())
				require.NoError(t, err)
				require.NotNil(t, st.Justified)
				require.GreaterOrEqual(t, st.Justified.Number, m.cert.Target.Number)
			}

			for i := range q - 1 {
				nd.mustVote(net.vote(i, g0, c1), finality.VerdictAccept)
			}
			st := nd.g.Status(1)
			require.Equal(t, q-1, st.Weight)
			require.Equal(t, q, st.Quorum)
			if q > 1 {
				require.Equal(t, finality.LevelPreCommitment, st.Level, st.Level.String())
				require.Equal(t, c1.Hash, st.Hash)
			} else {
				require.Equal(t, finality.LevelNone, st.Level, st.Level.String())
			}
			require.Equal(t, g0, nd.g.LatestJustified())
			_, ok := nd.g.Certificate(1)
			require.False(t, ok)

			nd.mustVote(net.vote(q-1, g0, c1), finality.VerdictAccept)
			require.Equal(t, c1, nd.g.LatestJustified())
			require.Equal(t, g0, nd.g.LatestFinalized())
			st = nd.g.Status(1)
			require.Equal(t, finality.LevelCommitment, st.Level)
			require.Equal(t, q, st.Weight)
			cert, ok := nd.g.Certificate(1)
			require.True(t, ok)
			require.Len(t, cert.Signatures, q)
			require.NoError(t, net.auth.VerifyCertificate(cert), "the certificate is re-verifiable by anyone")

			// Votes past the quorum still count but form no second certificate.
			if q < n {
				nd.mustVote(net.vote(q, g0, c1), finality.VerdictAccept)
				require.Equal(t, q+1, nd.g.Status(1).Weight)
			}

			for i := range q {
				nd.mustVote(net.vote(i, c1, c2), finality.VerdictAccept)
			}
			require.Equal(t, c2, nd.g.LatestJustified())
			require.Equal(t, c1, nd.g.LatestFinalized())
			require.Equal(t, finality.LevelFinality, nd.g.Status(1).Level)
			require.Equal(t, c1.Hash, nd.g.Status(1).Hash)
			require.Equal(t, finality.LevelFinality, nd.g.Status(0).Level)
			require.Equal(t, []checkpoint.Checkpoint{c1}, nd.obs.Finalizations())
			require.Equal(t, uint64(2), nd.g.Metrics().CertificatesFormed)

			var certs int
			for _, m := range net.bus.Sent() {
				if m.cert != nil {
					certs++
				}
			}
			require.Equal(t, 2, certs, "each formed certificate is broadcast once")

			st2, err := nd.db.Restore(context.Background())
			require.NoError(t, err)
			require.Equal(t, c1, *st2.Finalized)
			require.Equal(t, c2, *st2.Justified)
		})
	}
}

func TestSplitVotesDoNotJustify(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		split [2]int // votes for fork A, fork B
	}{
		{"n=4 two and two", 4, [2]int{2, 2}},
		{"n=4 two and one", 4, [2]int{2, 1}},
		{"n=21 fourteen and seven", 21, [2]int{14, 7}},
		{"n=100 sixty-six and thirty-four", 100, [2]int{66, 34}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			net := newTestNet(t, tc.n)
			nd := net.newNode(-1)
			defer nd.close()
			g0 := net.genesis()
			a := net.chain.Extend(g0, 'a')
			b := net.chain.Extend(g0, 'b')
			for i := range tc.split[0] {
				nd.mustVote(net.vote(i, g0, a), finality.VerdictAccept)
			}
			for i := range tc.split[1] {
				nd.mustVote(net.vote(tc.split[0]+i, g0, b), finality.VerdictAccept)
			}
			require.Equal(t, g0, nd.g.LatestJustified())
			st := nd.g.Status(1)
			require.Equal(t, finality.LevelPreCommitment, st.Level)
			require.Equal(t, max(tc.split[0], tc.split[1]), st.Weight)
			require.Zero(t, nd.g.Metrics().CertificatesFormed)
		})
	}
}

func TestVoteVerdicts(t *testing.T) {
	type setup struct {
		net *testNet
		nd  *node
		g0  checkpoint.Checkpoint
		c1  checkpoint.Checkpoint
	}
	tests := []struct {
		name string
		// prepare runs first (its verdicts are checked by mustVote); vote
		// builds the vote under test.
		prepare   func(s setup)
		vote      func(s setup) checkpoint.SignedVote
		want      finality.Verdict
		sigWork   bool // whether the signature must have been checked
		window    uint64
		wantCount uint64 // counted votes after the vote (Status weight)
	}{
		{name: "valid", vote: func(s setup) checkpoint.SignedVote { return s.net.vote(0, s.g0, s.c1) }, want: finality.VerdictAccept, sigWork: true, wantCount: 1},
		{
			name:    "duplicate",
			prepare: func(s setup) { s.nd.mustVote(s.net.vote(0, s.g0, s.c1), finality.VerdictAccept) },
			vote:    func(s setup) checkpoint.SignedVote { return s.net.vote(0, s.g0, s.c1) },
			want:    finality.VerdictIgnore, wantCount: 1,
		},
		{
			name: "wrong chain",
			vote: func(s setup) checkpoint.SignedVote {
				v := s.net.vote(0, s.g0, s.c1)
				v.Genesis[0] ^= 1
				return v
			},
			want: finality.VerdictReject,
		},
		{
			name: "wrong set id",
			vote: func(s setup) checkpoint.SignedVote {
				v := s.net.vote(0, s.g0, s.c1)
				v.SetID++
				return v
			},
			want: finality.VerdictIgnore,
		},
		{name: "bad link (target = source)", vote: func(s setup) checkpoint.SignedVote { return s.net.vote(0, s.c1, s.c1) }, want: finality.VerdictReject},
		{name: "bad link (target below source)", vote: func(s setup) checkpoint.SignedVote { return s.net.vote(0, s.c1, s.g0) }, want: finality.VerdictReject},
		{
			name: "validator index out of range",
			vote: func(s setup) checkpoint.SignedVote {
				v := s.net.vote(0, s.g0, s.c1)
				v.Validator = 4
				return v
			},
			want: finality.VerdictReject,
		},
		{
			name: "bad signature",
			vote: func(s setup) checkpoint.SignedVote {
				v := s.net.vote(0, s.g0, s.c1)
				v.Signature[10] ^= 0x40
				return v
			},
			want: finality.VerdictReject, sigWork: true,
		},
		{
			name: "signed by another validator",
			vote: func(s setup) checkpoint.SignedVote {
				v := s.net.vote(1, s.g0, s.c1)
				v.Validator = 0
				return v
			},
			want: finality.VerdictReject, sigWork: true,
		},
		{
			name: "old target (at finalized)",
			prepare: func(s setup) {
				c2 := s.net.chain.Next()
				s.nd.mustCert(s.net.cert(s.g0, s.c1, 0, 1, 2), finality.VerdictAccept)
				s.nd.mustCert(s.net.cert(s.c1, c2, 0, 1, 2), finality.VerdictAccept)
				require.Equal(t, s.c1, s.nd.g.LatestFinalized())
			},
			vote: func(s setup) checkpoint.SignedVote { return s.net.vote(3, s.g0, s.c1) },
			want: finality.VerdictIgnore,
		},
		{
			name:   "too far in the future",
			window: 8,
			vote: func(s setup) checkpoint.SignedVote {
				return s.net.vote(0, s.g0, checkpoint.Checkpoint{Number: 9, Hash: checkpoint.HashOf([]byte("far"))})
			},
			want: finality.VerdictIgnore,
		},
		{
			name:   "at the edge of the window",
			window: 8,
			vote: func(s setup) checkpoint.SignedVote {
				return s.net.vote(0, s.g0, checkpoint.Checkpoint{Number: 8, Hash: checkpoint.HashOf([]byte("edge"))})
			},
			want: finality.VerdictAccept, sigWork: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			net := newTestNet(t, 4)
			var opts []nodeOpt
			if tc.window > 0 {
				opts = append(opts, withWindow(tc.window))
			}
			nd := net.newNode(-1, opts...)
			defer nd.close()
			s := setup{net: net, nd: nd, g0: net.genesis(), c1: net.chain.Next()}
			if tc.prepare != nil {
				tc.prepare(s)
			}
			before := nd.g.Metrics()
			v := tc.vote(s)
			got, err := nd.g.OnVote(context.Background(), v)
			require.NoError(t, err)
			require.Equal(t, tc.want, got, got.String())
			after := nd.g.Metrics()
			if tc.sigWork {
				require.Equal(t, before.VoteSignatureChecks+1, after.VoteSignatureChecks)
			} else {
				require.Equal(t, before.VoteSignatureChecks, after.VoteSignatureChecks, "rejected or ignored before signature work")
			}
			switch tc.want {
			case finality.VerdictAccept:
				require.Equal(t, before.VotesAccepted+1, after.VotesAccepted)
			case finality.VerdictIgnore:
				require.Equal(t, before.VotesIgnored+1, after.VotesIgnored)
			case finality.VerdictReject:
				require.Equal(t, before.VotesRejected+1, after.VotesRejected)
			}
			if tc.wantCount > 0 {
				require.Equal(t, int(tc.wantCount), nd.g.Status(v.Target.Number).Weight)
			}
		})
	}
}

func TestEquivocationEvidence(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	nd := net.newNode(-1)
	defer nd.close()
	g0 := net.genesis()
	a1 := net.chain.Extend(g0, 'a')
	b1 := net.chain.Extend(g0, 'b')
	a2 := net.chain.Extend(a1, 'a')
	a3 := net.chain.Extend(a2, 'a')

	// Double vote: validator 0 votes for a1, then for b1.
	first := net.vote(0, g0, a1)
	nd.mustVote(first, finality.VerdictAccept)
	second := net.vote(0, g0, b1)
	nd.mustVote(second, finality.VerdictIgnore)
	ev := nd.store.Evidence()
	require.Len(t, ev, 1)
	require.Equal(t, checkpoint.EvidenceDoubleVote, ev[0].Kind)
	require.Equal(t, checkpoint.ValidatorIndex(0), ev[0].Validator)
	require.Equal(t, first, *ev[0].First)
	require.Equal(t, second, *ev[0].Second)
	require.Equal(t, uint64(1), ev[0].Checkpoint)

	// A third conflicting vote adds no evidence and needs no signature check.
	checks := nd.g.Metrics().VoteSignatureChecks
	nd.mustVote(net.vote(0, g0, net.chain.Extend(g0, 'c')), finality.VerdictIgnore)
	require.Len(t, nd.store.Evidence(), 1)
	require.Equal(t, checks, nd.g.Metrics().VoteSignatureChecks)

	// The offender is counted once (its first vote, for a1): b1 gets the
	// votes of 1, 2, 3 only and its certificate does not contain 0.
	nd.mustVote(net.vote(1, g0, b1), finality.VerdictAccept)
	nd.mustVote(net.vote(2, g0, b1), finality.VerdictAccept)
	require.Equal(t, g0, nd.g.LatestJustified(), "the double vote must not complete the quorum")
	nd.mustVote(net.vote(3, g0, b1), finality.VerdictAccept)
	require.Equal(t, b1, nd.g.LatestJustified())
	cert, ok := nd.g.Certificate(1)
	require.True(t, ok)
	for _, s := range cert.Signatures {
		require.NotEqual(t, checkpoint.ValidatorIndex(0), s.Validator)
	}

	// Surround vote: validator 1 votes a2 -> a3, then g0 -> a3's sibling
	// at 4 would be surrounding; use a1 -> ... with a wider link.
	a4 := net.chain.Extend(a3, 'a')
	inner := net.vote(2, a2, a3)
	nd.mustVote(inner, finality.VerdictAccept)
	outer := net.vote(2, a1, a4)
	nd.mustVote(outer, finality.VerdictIgnore)
	ev = nd.store.Evidence()
	require.Len(t, ev, 2)
	require.Equal(t, checkpoint.EvidenceSurroundVote, ev[1].Kind)
	require.Equal(t, inner, *ev[1].First)
	require.Equal(t, outer, *ev[1].Second)
	require.Zero(t, nd.g.Status(4).Weight, "a surround vote is not counted")
	require.Equal(t, uint64(2), nd.g.Metrics().Evidence)

	// The evidence is in the database.
	st, err := nd.db.Restore(ctx)
	require.NoError(t, err)
	require.Len(t, st.Evidence, 2)
}

func TestFinalityIsMonotonic(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	nd := net.newNode(-1)
	defer nd.close()
	cps := []checkpoint.Checkpoint{net.genesis()}
	for range 5 {
		cps = append(cps, net.chain.Next())
	}
	for i := 1; i <= 4; i++ {
		nd.mustCert(net.cert(cps[i-1], cps[i], 0, 1, 2), finality.VerdictAccept)
	}
	require.Equal(t, cps[3], nd.g.LatestFinalized())
	require.Equal(t, cps[4], nd.g.LatestJustified())

	// Older certificates never lower the pointers.
	for _, c := range []checkpoint.Certificate{
		net.cert(cps[1], cps[2], 1, 2, 3), // finalizes 1 (below 3)
		net.cert(cps[0], cps[1], 0, 1, 3),
		net.cert(cps[2], cps[3], 0, 2, 3), // target = finalized
	} {
		nd.mustCert(c, finality.VerdictIgnore)
		require.Equal(t, cps[3], nd.g.LatestFinalized())
		require.Equal(t, cps[4], nd.g.LatestJustified())
	}
	// A justification further ahead raises justified but not finalized.
	nd.mustCert(net.cert(cps[3], cps[5], 0, 1, 2), finality.VerdictAccept)
	require.Equal(t, cps[5], nd.g.LatestJustified())
	require.Equal(t, cps[3], nd.g.LatestFinalized())
	// 4 -> 5 finalizes 4 even though 5 is already justified (from 3).
	nd.mustCert(net.cert(cps[4], cps[5], 1, 2, 3), finality.VerdictAccept)
	require.Equal(t, cps[4], nd.g.LatestFinalized())
	require.Equal(t, cps[5], nd.g.LatestJustified())
	require.Equal(t, []checkpoint.Checkpoint{cps[1], cps[2], cps[3], cps[4]}, nd.obs.Finalizations())

	st, err := nd.db.Restore(ctx)
	require.NoError(t, err)
	require.Equal(t, cps[4], *st.Finalized)
	require.Equal(t, cps[5], *st.Justified)
	require.False(t, nd.g.Halted())
}

func TestPendingCertificateAppliedWhenSourceJustified(t *testing.T) {
	net := newTestNet(t, 4)
	nd := net.newNode(-1)
	defer nd.close()
	g0 := net.genesis()
	c1, c2, c3 := net.chain.Next(), net.chain.Next(), net.chain.Next()

	// Certificates arrive newest first, as during a catch-up out of order.
	nd.mustCert(net.cert(c2, c3, 1, 2, 3), finality.VerdictAccept)
	nd.mustCert(net.cert(c1, c2, 0, 1, 2), finality.VerdictAccept)
	require.Equal(t, g0, nd.g.LatestJustified(), "sources not justified yet")
	require.Equal(t, finality.LevelPreCommitment, nd.g.Status(2).Level)
	// A pending certificate is not accepted twice.
	nd.mustCert(net.cert(c1, c2, 0, 1, 3), finality.VerdictIgnore)

	nd.mustCert(net.cert(g0, c1, 0, 1, 3), finality.VerdictAccept)
	require.Equal(t, c3, nd.g.LatestJustified())
	require.Equal(t, c2, nd.g.LatestFinalized())
	require.Equal(t, []checkpoint.Checkpoint{c1, c2}, nd.obs.Finalizations())
	require.Equal(t, finality.LevelCommitment, nd.g.Status(3).Level)
	for n := uint64(2); n <= 3; n++ {
		_, ok := nd.g.Certificate(n)
		require.True(t, ok, "certificate %d in memory", n)
	}
}

func TestCertificateVerdicts(t *testing.T) {
	type setup struct {
		net    *testNet
		nd     *node
		g0, c1 checkpoint.Checkpoint
	}
	tests := []struct {
		name    string
		prepare func(s setup)
		cert    func(s setup) checkpoint.Certificate
		want    finality.Verdict
		verify  bool // full verification expected
	}{
		{name: "valid", cert: func(s setup) checkpoint.Certificate { return s.net.cert(s.g0, s.c1, 0, 1, 2) }, want: finality.VerdictAccept, verify: true},
		{
			name: "wrong chain",
			cert: func(s setup) checkpoint.Certificate {
				c := s.net.cert(s.g0, s.c1, 0, 1, 2)
				c.Genesis[3] ^= 1
				return c
			},
			want: finality.VerdictReject,
		},
		{
			name: "wrong set id",
			cert: func(s setup) checkpoint.Certificate {
				c := s.net.cert(s.g0, s.c1, 0, 1, 2)
				c.SetID = 99
				return c
			},
			want: finality.VerdictIgnore,
		},
		{name: "bad link", cert: func(s setup) checkpoint.Certificate { return s.net.cert(s.c1, s.c1, 0, 1, 2) }, want: finality.VerdictReject},
		{
			name: "below quorum with garbage signatures",
			cert: func(s setup) checkpoint.Certificate {
				c := s.net.cert(s.g0, s.c1, 0, 1)
				for i := range c.Signatures {
					c.Signatures[i].Signature = checkpoint.Signature{}
				}
				return c
			},
			want: finality.VerdictReject,
		},
		{
			name: "duplicate signer",
			cert: func(s setup) checkpoint.Certificate {
				c := s.net.cert(s.g0, s.c1, 0, 1, 2)
				c.Signatures[2] = c.Signatures[1]
				return c
			},
			want: finality.VerdictReject,
		},
		{
			name: "signers out of order",
			cert: func(s setup) checkpoint.Certificate {
				c := s.net.cert(s.g0, s.c1, 0, 1, 2)
				c.Signatures[0], c.Signatures[2] = c.Signatures[2], c.Signatures[0]
				return c
			},
			want: finality.VerdictReject,
		},
		{
			name: "signer out of range",
			cert: func(s setup) checkpoint.Certificate {
				c := s.net.cert(s.g0, s.c1, 0, 1, 2)
				c.Signatures[2].Validator = 9
				return c
			},
			want: finality.VerdictReject,
		},
		{
			name: "one bad signature",
			cert: func(s setup) checkpoint.Certificate {
				c := s.net.cert(s.g0, s.c1, 0, 1, 2)
				c.Signatures[1].Signature[0] ^= 1
				return c
			},
			want: finality.VerdictReject, verify: true,
		},
		{
			name:    "duplicate certificate",
			prepare: func(s setup) { s.nd.mustCert(s.net.cert(s.g0, s.c1, 0, 1, 2), finality.VerdictAccept) },
			cert:    func(s setup) checkpoint.Certificate { return s.net.cert(s.g0, s.c1, 1, 2, 3) },
			want:    finality.VerdictIgnore,
		},
		{
			// No horizon for certificates: a quorum proves the link however
			// far above the chain head it is (a node catching up needs it).
			name: "far in the future",
			cert: func(s setup) checkpoint.Certificate {
				return s.net.cert(s.g0, checkpoint.Checkpoint{Number: 300, Hash: checkpoint.HashOf([]byte("far"))}, 0, 1, 2)
			},
			want: finality.VerdictAccept, verify: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			net := newTestNet(t, 4)
			nd := net.newNode(-1)
			defer nd.close()
			s := setup{net: net, nd: nd, g0: net.genesis(), c1: net.chain.Next()}
			if tc.prepare != nil {
				tc.prepare(s)
			}
			before := nd.g.Metrics()
			got, err := nd.g.OnCertificate(context.Background(), tc.cert(s))
			require.NoError(t, err)
			require.Equal(t, tc.want, got, got.String())
			after := nd.g.Metrics()
			if tc.verify {
				require.Equal(t, before.CertificateChecks+1, after.CertificateChecks)
			} else {
				require.Equal(t, before.CertificateChecks, after.CertificateChecks, "decided before signature work")
			}
			if tc.want != finality.VerdictAccept {
				require.Equal(t, before.CertificatesAccepted, after.CertificatesAccepted)
			}
		})
	}
}

func TestConflictingFinalityHalts(t *testing.T) {
	tests := []struct {
		name string
		// conflicting builds a certificate that contradicts finalized c1.
		conflicting func(net *testNet, g0, c1, c2 checkpoint.Checkpoint) checkpoint.Certificate
		number      uint64
	}{
		{
			name: "other block justified at the finalized height",
			conflicting: func(net *testNet, g0, _, _ checkpoint.Checkpoint) checkpoint.Certificate {
				return net.cert(g0, net.chain.Extend(g0, 'x'), 1, 2, 3)
			},
			number: 1,
		},
		{
			name: "finalizing another block at the finalized height",
			conflicting: func(net *testNet, g0, _, _ checkpoint.Checkpoint) checkpoint.Certificate {
				x1 := net.chain.Extend(g0, 'x')
				return net.cert(x1, net.chain.Extend(x1, 'x'), 1, 2, 3)
			},
			number: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			net := newTestNet(t, 4)
			nd := net.newNode(0)
			defer nd.close()
			g0 := net.genesis()
			c1, c2 := net.chain.Next(), net.chain.Next()
			nd.mustCert(net.cert(g0, c1, 1, 2, 3), finality.VerdictAccept)
			nd.mustCert(net.cert(c1, c2, 1, 2, 3), finality.VerdictAccept)
			require.Equal(t, c1, nd.g.LatestFinalized())
			require.False(t, nd.g.Halted())

			bad := tc.conflicting(net, g0, c1, c2)
			// A forged copy is rejected and raises nothing.
			forged := bad
			forged.Signatures = append([]checkpoint.CertSignature(nil), bad.Signatures...)
			forged.Signatures[0].Signature[5] ^= 1
			nd.mustCert(forged, finality.VerdictReject)
			require.False(t, nd.g.Halted())

			nd.mustCert(bad, finality.VerdictIgnore)
			require.True(t, nd.g.Halted())
			ev := nd.store.Evidence()
			require.Len(t, ev, 1)
			require.Equal(t, checkpoint.EvidenceConflictingFinality, ev[0].Kind)
			require.Equal(t, tc.number, ev[0].Checkpoint)
			require.Equal(t, bad.Target, ev[0].Certificate.Target)
			require.Equal(t, 1, nd.logs.FilterLevelExact(zapcore.ErrorLevel).Len())
			require.Equal(t, c1, nd.g.LatestFinalized(), "finality unchanged")

			// Seen again: no second evidence.
			nd.mustCert(bad, finality.VerdictIgnore)
			require.Len(t, nd.store.Evidence(), 1)

			// Halted: no more own votes, also after a restart.
			c3 := net.chain.Next()
			require.NoError(t, nd.g.OnCheckpointBlock(ctx, c3))
			nd.restart()
			require.True(t, nd.g.Halted(), "the safety alarm survives a restart")
			require.NoError(t, nd.g.OnCheckpointBlock(ctx, c3))
			for _, m := range net.bus.Sent() {
				require.Nil(t, m.vote, "a halted validator does not vote")
			}
		})
	}
}

func TestDoppelgangerHalts(t *testing.T) {
	tests := []struct {
		name string
		// own votes through the gadget (targets), then the foreign vote.
		ownTargets int
		foreign    func(net *testNet, cps []checkpoint.Checkpoint) checkpoint.SignedVote
		halt       bool
	}{
		{
			name:       "same target, other block",
			ownTargets: 1,
			foreign: func(net *testNet, cps []checkpoint.Checkpoint) checkpoint.SignedVote {
				return net.vote(0, cps[0], net.chain.Extend(cps[0], 'x'))
			},
			halt: true,
		},
		{
			name:       "target we never signed",
			ownTargets: 1,
			foreign: func(net *testNet, cps []checkpoint.Checkpoint) checkpoint.SignedVote {
				return net.vote(0, cps[0], cps[3])
			},
			halt: true,
		},
		{
			name:       "key never signed on this node",
			ownTargets: 0,
			foreign: func(net *testNet, cps []checkpoint.Checkpoint) checkpoint.SignedVote {
				return net.vote(0, cps[0], cps[1])
			},
			halt: true,
		},
		{
			name:       "echo of our own last vote",
			ownTargets: 1,
			foreign: func(net *testNet, cps []checkpoint.Checkpoint) checkpoint.SignedVote {
				return net.vote(0, cps[0], cps[1])
			},
			halt: false,
		},
		{
			name:       "echo of an older own vote",
			ownTargets: 2,
			foreign: func(net *testNet, cps []checkpoint.Checkpoint) checkpoint.SignedVote {
				return net.vote(0, cps[0], cps[1])
			},
			halt: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			net := newTestNet(t, 4)
			nd := net.newNode(0)
			defer nd.close()
			cps := []checkpoint.Checkpoint{net.genesis()}
			for range 3 {
				cps = append(cps, net.chain.Next())
			}
			for i := 1; i <= tc.ownTargets; i++ {
				require.NoError(t, nd.g.OnCheckpointBlock(ctx, cps[i]))
			}
			require.Equal(t, uint64(tc.ownTargets), nd.g.Metrics().OwnVotes)
			v := tc.foreign(net, cps)
			nd.mustVote(v, finality.VerdictIgnore)
			require.Equal(t, tc.halt, nd.g.Halted())
			if tc.halt {
				require.Equal(t, 1, nd.logged("found conflicting vote from ourselves"))
				st := nd.g.Status(v.Target.Number)
				if st.Hash == v.Target.Hash {
					require.Equal(t, 1, st.Weight, "the foreign vote is not counted")
				}
				next := net.chain.Next()
				before := len(net.bus.Sent())
				require.NoError(t, nd.g.OnCheckpointBlock(ctx, next))
				require.Len(t, net.bus.Sent(), before, "no vote after the alarm")
			} else {
				require.Zero(t, nd.logged("found conflicting vote from ourselves"))
			}
		})
	}
}

func TestOwnVoteRecordedBeforeBroadcast(t *testing.T) {
	ctx := context.Background()
	net := newTestNet(t, 4)
	nd := net.newNode(2)
	defer nd.close()
	pub := net.keys[2].Public().(ed25519.PublicKey)
	var broadcasts int
	nd.ep.check = func(m message) {
		if m.vote == nil {
			return
		}
		broadcasts++
		rec, found, err := nd.db.LoadSignerRecord(ctx, pub)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, *m.vote, *rec.Last, "the signer record holds the vote before it is broadcast")
		st, err := nd.db.Restore(ctx)
		require.NoError(t, err)
		require.Contains(t, st.Votes, *m.vote, "the vote is stored before it is broadcast")
	}
	g0 := net.genesis()
	a1 := net.chain.Extend(g0, 'a')
	require.NoError(t, nd.g.OnCheckpointBlock(ctx, a1))
	require.Equal(t, 1, broadcasts)
	require.Equal(t, 1, nd.g.Status(1).Weight)

	// A sibling block at the same number: not even asked of the signer
	// (normal, no error, no broadcast).
	b1 := net.chain.Extend(g0, 'b')
	require.NoError(t, nd.g.OnCheckpointBlock(ctx, b1))
	require.Equal(t, 1, broadcasts)
	require.Equal(t, uint64(1), nd.g.Metrics().OwnVotes)

	// A block that does not descend from the latest justified checkpoint
	// is not voted for.
	nd.mustCert(net.cert(g0, a1, 0, 1, 3), finality.VerdictAccept)
	b2 := net.chain.Extend(b1, 'b')
	require.NoError(t, nd.g.OnCheckpointBlock(ctx, b2))
	require.Equal(t, 1, broadcasts)
	a2 := net.chain.Extend(a1, 'a')
	require.NoError(t, nd.g.OnCheckpointBlock(ctx, a2))
	require.Equal(t, 2, broadcasts)
	last := net.bus.Sent()[len(net.bus.Sent())-1]
	require.Equal(t, a1, last.vote.Source, "the source is the latest justified checkpoint")
	require.Equal(t, a2, last.vote.Target)
}

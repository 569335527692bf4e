package tally_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality/tally"
)

func cp(n uint64, tag byte) checkpoint.Checkpoint {
	return checkpoint.Checkpoint{Number: n, Hash: checkpoint.HashOf([]byte{tag, byte(n)})}
}

func vote(val checkpoint.ValidatorIndex, src, tgt checkpoint.Checkpoint) checkpoint.SignedVote {
	return checkpoint.SignedVote{Vote: checkpoint.Vote{SetID: 1, Source: src, Target: tgt}, Validator: val}
}

func TestClassify(t *testing.T) {
	a1, a2, a3, a5 := cp(1, 'a'), cp(2, 'a'), cp(3, 'a'), cp(5, 'a')
	b2 := cp(2, 'b')
	tests := []struct {
		name  string
		prior []checkpoint.SignedVote
		vote  checkpoint.SignedVote
		want  tally.Outcome
	}{
		{"first vote counts", nil, vote(0, a1, a2), tally.Counted},
		{"identical vote is a duplicate", []checkpoint.SignedVote{vote(0, a1, a2)}, vote(0, a1, a2), tally.Duplicate},
		{"same target number, other hash", []checkpoint.SignedVote{vote(0, a1, a2)}, vote(0, a1, b2), tally.DoubleVote},
		{"same target, other source", []checkpoint.SignedVote{vote(0, a1, a3)}, vote(0, a2, a3), tally.DoubleVote},
		{"new vote surrounds earlier", []checkpoint.SignedVote{vote(0, a2, a3)}, vote(0, a1, a5), tally.SurroundVote},
		{"new vote surrounded by earlier", []checkpoint.SignedVote{vote(0, a1, a5)}, vote(0, a2, a3), tally.SurroundVote},
		{"chained votes are fine", []checkpoint.SignedVote{vote(0, a1, a2)}, vote(0, a2, a3), tally.Counted},
		{"same source, higher target is fine", []checkpoint.SignedVote{vote(0, a1, a2)}, vote(0, a1, a3), tally.Counted},
		{"other validator is independent", []checkpoint.SignedVote{vote(0, a1, a2)}, vote(1, a1, b2), tally.Counted},
		{"target at floor is stale", nil, vote(0, checkpoint.Checkpoint{}, cp(0, 'a')), tally.Stale},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tl := tally.New(0)
			for _, p := range tc.prior {
				r, _ := tl.Add(p)
				require.Equal(t, tally.Counted, r.Outcome)
			}
			before := tl.Len()
			r := tl.Classify(tc.vote)
			require.Equal(t, tc.want, r.Outcome, r.Outcome.String())
			r2, _ := tl.Add(tc.vote)
			require.Equal(t, tc.want, r2.Outcome)
			if tc.want == tally.Counted {
				require.Equal(t, before+1, tl.Len())
			} else {
				require.Equal(t, before, tl.Len(), "a non-counted vote must not change the tally")
			}
			if tc.want == tally.DoubleVote || tc.want == tally.SurroundVote {
				require.Equal(t, tc.prior[0], r.Prior)
				require.NotEqual(t, checkpoint.EvidenceUnspecified, r.Outcome.EvidenceKind())
			}
		})
	}
}

func TestWeightBestAndVotes(t *testing.T) {
	a1, a2, b2 := cp(1, 'a'), cp(2, 'a'), cp(2, 'b')
	tl := tally.New(0)
	la := checkpoint.Link{Source: a1, Target: a2}
	lb := checkpoint.Link{Source: a1, Target: b2}
	for i := range 3 {
		_, w := tl.Add(vote(checkpoint.ValidatorIndex(i), a1, a2))
		require.Equal(t, i+1, w)
	}
	_, w := tl.Add(vote(3, a1, b2))
	require.Equal(t, 1, w)
	require.Equal(t, 3, tl.Weight(la))
	require.Equal(t, 1, tl.Weight(lb))
	best, bw, ok := tl.Best(2)
	require.True(t, ok)
	require.Equal(t, la, best)
	require.Equal(t, 3, bw)
	_, _, ok = tl.Best(7)
	require.False(t, ok)
	vs := tl.Votes(la)
	require.Len(t, vs, 3)
	for i, v := range vs {
		require.Equal(t, checkpoint.ValidatorIndex(i), v.Validator, "arrival order")
	}
	vs[0].Validator = 99 // a copy
	require.Equal(t, checkpoint.ValidatorIndex(0), tl.Votes(la)[0].Validator)
	// A double vote does not add weight to either link.
	r, w := tl.Add(vote(0, a1, b2))
	require.Equal(t, tally.DoubleVote, r.Outcome)
	require.Equal(t, 1, w)
	require.Equal(t, 3, tl.Weight(la))
}

func TestOffenderMarks(t *testing.T) {
	tl := tally.New(4)
	require.False(t, tl.MarkOffender(1, 4), "at the floor")
	require.True(t, tl.MarkOffender(1, 6))
	require.False(t, tl.MarkOffender(1, 6))
	require.True(t, tl.IsOffender(1, 6))
	require.False(t, tl.IsOffender(2, 6))
	require.True(t, tl.MarkOffender(2, 6))
	tl.Raise(6)
	require.False(t, tl.IsOffender(1, 6))
	require.Zero(t, tl.Numbers())
}

func TestRaiseDropsBelowFloor(t *testing.T) {
	tl := tally.New(0)
	for n := uint64(1); n <= 10; n++ {
		for v := range 4 {
			r, _ := tl.Add(vote(checkpoint.ValidatorIndex(v), cp(n-1, 'a'), cp(n, 'a')))
			require.Equal(t, tally.Counted, r.Outcome)
		}
	}
	require.Equal(t, 40, tl.Len())
	require.Equal(t, 0, tl.Raise(0), "a lower floor is ignored")
	require.Equal(t, 24, tl.Raise(6))
	require.Equal(t, 16, tl.Len())
	require.Equal(t, 4, tl.Numbers())
	require.Equal(t, uint64(6), tl.Floor())
	_, ok := tl.Lookup(0, 6)
	require.False(t, ok)
	_, ok = tl.Lookup(0, 7)
	require.True(t, ok)
	require.Equal(t, tally.Stale, tl.Classify(vote(9, cp(5, 'a'), cp(6, 'a'))).Outcome)
	// A vote surrounding a dropped vote is no longer detected (bounded
	// memory), but one surrounding a retained vote is.
	require.Equal(t, tally.SurroundVote, tl.Classify(vote(0, cp(6, 'a'), cp(12, 'a'))).Outcome)
	require.Equal(t, tally.Counted, tl.Classify(vote(0, cp(10, 'a'), cp(12, 'a'))).Outcome)
}

// naiveClassify is the definition: compare with every counted vote.
func naiveClassify(counted []checkpoint.SignedVote, floor uint64, v checkpoint.SignedVote) tally.Outcome {
	if v.Target.Number <= floor {
		return tally.Stale
	}
	for _, p := range counted {
		if p.Validator != v.Validator || p.Target.Number != v.Target.Number {
			continue
		}
		if p.Vote == v.Vote {
			return tally.Duplicate
		}
		return tally.DoubleVote
	}
	for _, p := range counted {
		if p.Validator == v.Validator && (v.Surrounds(p.Vote) || p.Surrounds(v.Vote)) {
			return tally.SurroundVote
		}
	}
	return tally.Counted
}

func TestClassifyMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		tl := tally.New(0)
		var counted []checkpoint.SignedVote
		floor := uint64(0)
		for range 60 {
			src := uint64(r.IntN(12))
			tgt := src + 1 + uint64(r.IntN(6))
			v := vote(checkpoint.ValidatorIndex(r.IntN(3)), cp(src, 'a'), cp(tgt, byte('a'+r.IntN(2))))
			want := naiveClassify(counted, floor, v)
			res, _ := tl.Add(v)
			require.Equal(t, want, res.Outcome, "round %d vote %d->%d", round, src, tgt)
			if want == tally.Counted {
				counted = append(counted, v)
				got, ok := tl.Lookup(v.Validator, tgt)
				require.True(t, ok)
				require.Equal(t, v, got)
			}
			if r.IntN(20) == 0 {
				floor += uint64(r.IntN(3))
				tl.Raise(floor)
				kept := counted[:0]
				for _, c := range counted {
					if c.Target.Number > floor {
						kept = append(kept, c)
					}
				}
				counted = kept
			}
			require.Equal(t, len(counted), tl.Len())
		}
	}
}

func TestBoundedPerValidator(t *testing.T) {
	const bound = 4
	tl := tally.NewBounded(0, bound)
	g := cp(0, 'g')
	// Validator 0 votes for 10 consecutive targets from genesis: only the
	// newest four stay counted, and the evicted links lose its weight.
	for n := uint64(1); n <= 10; n++ {
		r, w := tl.Add(vote(0, g, cp(n, 'a')))
		require.Equal(t, tally.Counted, r.Outcome)
		require.Equal(t, 1, w)
	}
	require.Equal(t, bound, tl.Len())
	require.Equal(t, 6, tl.Evicted())
	for n := uint64(1); n <= 10; n++ {
		want := 0
		if n > 10-bound {
			want = 1
		}
		require.Equal(t, want, tl.Weight(checkpoint.Link{Source: g, Target: cp(n, 'a')}), "target %d", n)
		_, ok := tl.Lookup(0, n)
		require.Equal(t, want == 1, ok)
	}
	require.Equal(t, bound, tl.Numbers(), "emptied targets are dropped")
	// A vote below every held vote of a full validator is stale...
	r, _ := tl.Add(vote(0, g, cp(3, 'a')))
	require.Equal(t, tally.Stale, r.Outcome)
	// ...unless it is a surround vote against a held one, which is still
	// reported.
	r, _ = tl.Add(vote(0, cp(8, 'a'), cp(9, 'b')))
	require.Equal(t, tally.DoubleVote, r.Outcome)
	tl2 := tally.NewBounded(0, 2)
	tl2.Add(vote(1, cp(1, 'a'), cp(10, 'a')))
	tl2.Add(vote(1, cp(1, 'a'), cp(11, 'a')))
	r, _ = tl2.Add(vote(1, cp(2, 'a'), cp(3, 'a')))
	require.Equal(t, tally.SurroundVote, r.Outcome, "surrounded by a held vote")
	// Other validators are independent of the bound.
	r, _ = tl.Add(vote(1, g, cp(1, 'a')))
	require.Equal(t, tally.Counted, r.Outcome)
}

func TestBoundedFarTargetsKeepMemoryFlat(t *testing.T) {
	tl := tally.NewBounded(0, 8)
	g := cp(0, 'g')
	for i := range 10000 {
		tl.Add(vote(checkpoint.ValidatorIndex(i%3), g, checkpoint.Checkpoint{Number: uint64(1 + i*1000003), Hash: checkpoint.HashOf([]byte{byte(i), byte(i >> 8)})}))
	}
	require.LessOrEqual(t, tl.Len(), 3*8)
	require.LessOrEqual(t, tl.Numbers(), 3*8)
}

package asf

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// requireTreeConsistent checks the invariants tip eviction must keep: every
// stored block is canonical or an ancestor of (or equal to) a tip, every tip
// is stored and has no stored child, and the tip keys match Tips().
func requireTreeConsistent(t *testing.T, c *Chain) {
	t.Helper()
	c.mu.RLock()
	defer c.mu.RUnlock()
	stored := map[checkpoint.Hash]Header{}
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagHeader}, UpperBound: []byte{tagHeader + 1}})
	require.NoError(t, err)
	for ok := it.First(); ok; ok = it.Next() {
		h, err := unmarshalHeader(it.Value())
		require.NoError(t, err)
		stored[checkpoint.Hash(it.Key()[1:])] = h
	}
	require.NoError(t, it.Close())
	reached := map[checkpoint.Hash]bool{}
	children := map[checkpoint.Hash]int{}
	for h, hdr := range stored {
		if hdr.Number > 0 {
			children[hdr.ParentHash]++
		}
		if canon, ok, err := c.canonical(c.db, hdr.Number); err == nil && ok && canon == h {
			reached[h] = true
		}
	}
	tipKeys := 0
	it, err = c.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagTip}, UpperBound: []byte{tagTip + 1}})
	require.NoError(t, err)
	for ok := it.First(); ok; ok = it.Next() {
		tipKeys++
		_, ok := c.tips[checkpoint.Hash(it.Key()[1:])]
		require.True(t, ok, "tip key %x not in memory", it.Key())
	}
	require.NoError(t, it.Close())
	require.Equal(t, len(c.tips), tipKeys)
	require.LessOrEqual(t, len(c.tips), MaxTips)
	for h := range c.tips {
		_, ok := stored[h]
		require.True(t, ok, "tip %s not stored", h.Short())
		require.Zero(t, children[h], "tip %s has children", h.Short())
		for cur := h; !reached[cur]; {
			reached[cur] = true
			cur = stored[cur].ParentHash
		}
	}
	for h, hdr := range stored {
		require.True(t, reached[h], "block #%d %s is on no tip's chain", hdr.Number, h.Short())
		if children[h] == 0 {
			_, ok := c.tips[h]
			require.True(t, ok, "childless block #%d %s is not a tip", hdr.Number, h.Short())
		}
	}
}

// sideSlots hands out unused slots for side blocks (above the main chain's).
type sideSlots struct{ next uint64 }

func (s *sideSlots) take() uint64 { s.next++; return s.next }

func TestTipLimitEvictsTheLeastWorthTips(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	a := e.extend(g, 1, 80, "a")                     // slots 1..80
	_, err := e.chain.SetJustified(ctx, cp(2, a[7])) // block #8
	require.NoError(t, err)
	slots := &sideSlots{next: 1000}
	side := func(parent Header, n int) []Block {
		out := e.extend(parent, slots.take(), 1, "side")
		for len(out) < n {
			out = append(out, e.extend(out[len(out)-1].Header, slots.take(), 1, "side")...)
		}
		return out
	}

	// Side tips: one long branch that does not contain the justified block
	// (forks at #7, reaches #30), one two-tip branch above the justified
	// block, and one-block branches above the justified block at #12...
	notJustified := side(a[5].Header, 24)
	shared := side(a[9].Header, 2) // #11, #12
	sharedTip2 := side(shared[0].Header, 1)[0]
	var singles []Block
	for i := 10; len(e.chain.Tips()) < MaxTips; i++ {
		singles = append(singles, side(a[i].Header, 1)[0])
	}
	require.Len(t, e.chain.Tips(), MaxTips)
	require.Equal(t, TipStats{Count: MaxTips}, e.chain.Stats().Tips)
	requireTreeConsistent(t, e.chain)

	// The 65th tip evicts the tip that does not contain the justified block,
	// although it is the highest side tip: the whole branch goes.
	n65 := side(a[60].Header, 1)[0]
	require.Len(t, e.chain.Tips(), MaxTips)
	for _, b := range notJustified {
		require.False(t, e.chain.HasBlock(b.Hash()))
	}
	require.True(t, e.chain.HasBlock(n65.Hash()))
	requireTreeConsistent(t, e.chain)

	// Then the lowest tips go, at equal height the one fork choice ranks
	// last (the latest slot) first: the single at #12, then sharedTip2 —
	// shared[0] stays, shared[1] still needs it — then shared[1] and with
	// it shared[0].
	side(a[61].Header, 1)
	require.False(t, e.chain.HasBlock(singles[0].Hash()))
	require.True(t, e.chain.HasBlock(sharedTip2.Hash()))
	side(a[62].Header, 1)
	require.False(t, e.chain.HasBlock(sharedTip2.Hash()))
	require.True(t, e.chain.HasBlock(shared[0].Hash()))
	require.True(t, e.chain.HasBlock(shared[1].Hash()))
	requireTreeConsistent(t, e.chain)
	side(a[63].Header, 1)
	require.False(t, e.chain.HasBlock(shared[1].Hash()))
	require.False(t, e.chain.HasBlock(shared[0].Hash()))
	require.True(t, e.chain.HasBlock(singles[1].Hash()))
	requireTreeConsistent(t, e.chain)

	// The best chain is never touched and keeps growing.
	require.Equal(t, a[79].Hash(), e.chain.BestHash())
	r := e.mustImport(e.block(a[79].Header, 81))
	require.True(t, r.NewBest)
	st := e.chain.Stats().Tips
	require.Equal(t, MaxTips, st.Count)
	require.Equal(t, uint64(4), st.Evicted)
	require.Zero(t, st.Refused)

	tips := e.chain.Tips()
	e.reopen()
	require.ElementsMatch(t, tips, e.chain.Tips())
	requireTreeConsistent(t, e.chain)
	requireCanonical(t, e.chain, append(a, Block{Header: e.chain.Best()}))
}

func TestTipLimitRefusesALowNewBranchUnlessSynced(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	a := e.extend(g, 1, 70, "a")
	slot := uint64(1000)
	var sides []Block
	for i := 5; len(e.chain.Tips()) < MaxTips; i++ {
		slot++
		sides = append(sides, e.extend(a[i].Header, slot, 1, "side")...)
	}
	before := e.chain.Tips()

	low := e.block(a[0].Header, 2000, []byte("low")) // #2: below every side tip
	res, err := e.chain.Import(ctx, low)
	require.ErrorIs(t, err, ErrTipLimit)
	require.NotErrorIs(t, err, ErrInvalidBlock)
	require.False(t, res.NewBest)
	require.False(t, e.chain.HasBlock(low.Hash()))
	require.ElementsMatch(t, before, e.chain.Tips())
	require.Equal(t, TipStats{Count: MaxTips, Refused: 1}, e.chain.Stats().Tips)
	// Nothing of it was written: not even its slot, so another block of
	// that slot is not an equivocation.
	_, indexed, err := e.chain.slotBlock(e.chain.db, 2000, ProposerOf(e.spec, 2000))
	require.NoError(t, err)
	require.False(t, indexed)

	// The second version of a side block's slot gets no room either: the
	// error names both reasons, and nothing of it is stored.
	lowSecond := e.block(a[0].Header, sides[1].Header.Slot, []byte("low second"))
	res, err = e.chain.Import(ctx, lowSecond)
	require.ErrorIs(t, err, ErrTipLimit)
	require.ErrorIs(t, err, ErrEquivocation)
	require.False(t, res.Equivocation)
	require.False(t, e.chain.HasBlock(lowSecond.Hash()))
	require.ElementsMatch(t, before, e.chain.Tips())
	require.Equal(t, TipStats{Count: MaxTips, Refused: 2}, e.chain.Stats().Tips)

	// Extending a side tip needs no room.
	e.mustImport(e.block(sides[10].Header, 2001))
	require.Len(t, e.chain.Tips(), MaxTips)

	// Sync imports it all the same, evicting the lowest side tip (#7).
	res, err = e.chain.ImportSynced(ctx, low)
	require.NoError(t, err)
	require.True(t, e.chain.HasBlock(low.Hash()))
	require.False(t, e.chain.HasBlock(sides[0].Hash()))
	require.Len(t, e.chain.Tips(), MaxTips)
	require.Equal(t, TipStats{Count: MaxTips, Evicted: 1, Refused: 2}, e.chain.Stats().Tips)
	requireTreeConsistent(t, e.chain)
	// An evicted block can come back (by sync) like any block.
	_, err = e.chain.ImportSynced(ctx, sides[0])
	require.NoError(t, err)
	require.True(t, e.chain.HasBlock(sides[0].Hash()))
	requireTreeConsistent(t, e.chain)
}

// TestHostileBranchFlood: one authority signs a block on every block of the
// chain in each of its slots (one per slot is all it gets through). Tips
// stay bounded, the best chain and finality are unaffected, and
// finalization prunes the hostile branches.
func TestHostileBranchFlood(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	honest := e.extend(g, 1, 3, "h")
	hostile := checkpoint.ValidatorIndex(2)
	next := uint64(4)
	refusedEquivocations := 0
	for len(honest) < 200 {
		parent := honest[len(honest)-1]
		if ProposerOf(e.spec, next) == hostile {
			// Many variants for its slot on many parents below the head
			// (side branches): two get in, the first and the second
			// version (reported as an equivocation all the same).
			accepted := 0
			for i := 1; i <= 20; i++ {
				p := honest[max(0, len(honest)-1-5*i)].Header
				res, err := e.chain.Import(ctx, e.block(p, next, []byte(fmt.Sprintf("hostile-%d", i))))
				switch {
				case err == nil:
					accepted++
				case errors.Is(err, ErrEquivocation) && res.Equivocation:
					accepted++
				case errors.Is(err, ErrEquivocation):
					refusedEquivocations++
				default:
					require.ErrorIs(t, err, ErrTipLimit)
				}
			}
			require.LessOrEqual(t, accepted, 2)
		} else {
			b := e.block(parent.Header, next, []byte("h"))
			e.mustImport(b)
			honest = append(honest, b)
		}
		next++
		require.LessOrEqual(t, len(e.chain.Tips()), MaxTips)
		require.Equal(t, honest[len(honest)-1].Hash(), e.chain.BestHash())
	}
	require.Greater(t, refusedEquivocations, 900)
	requireTreeConsistent(t, e.chain)
	st := e.chain.Stats()
	require.Equal(t, uint64(refusedEquivocations), st.Equivocations.Refused)
	require.Greater(t, st.Tips.Evicted, uint64(0))

	// Finality on the honest chain prunes every hostile branch below it.
	f := honest[len(honest)-1-(len(honest)%4)]
	require.Zero(t, f.Header.Number%4)
	require.NoError(t, e.chain.SetFinalized(ctx, cp(f.Header.Number/4, f)))
	require.LessOrEqual(t, len(e.chain.Tips()), 4)
	requireTreeConsistent(t, e.chain)
}

package asf

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

func hashes(bs []Block) []checkpoint.Hash {
	out := make([]checkpoint.Hash, len(bs))
	for i, b := range bs {
		out[i] = b.Hash()
	}
	return out
}

// requireCanonical checks that the canonical index is exactly chain (from
// block #1) on top of genesis.
func requireCanonical(t *testing.T, c *Chain, chain []Block) {
	t.Helper()
	g, ok := c.CanonicalHash(0)
	require.True(t, ok)
	require.Equal(t, c.Genesis().Hash(), g)
	for i, b := range chain {
		h, ok := c.CanonicalHash(uint64(i + 1))
		require.True(t, ok, "canonical #%d", i+1)
		require.Equal(t, b.Hash(), h, "canonical #%d", i+1)
	}
	_, ok = c.CanonicalHash(uint64(len(chain) + 1))
	require.False(t, ok)
	require.Equal(t, uint64(len(chain)), c.Best().Number)
	// And the database agrees with the index even above the best block.
	_, found, err := c.canonical(c.db, uint64(len(chain)+1))
	require.NoError(t, err)
	require.False(t, found)
}

func TestForkChoiceLongestAndTieBreak(t *testing.T) {
	e := newEnv(t, localSpec(t))
	g := e.chain.Genesis().Header
	a := e.extend(g, 10, 2, "a")
	require.Equal(t, a[1].Header, e.chain.Best())

	// A competing branch of the same length whose tip has a later slot loses.
	b1 := e.block(g, 5, []byte("b"))
	r := e.mustImport(b1)
	require.False(t, r.NewBest)
	b2 := e.block(b1.Header, 12, []byte("b"))
	r = e.mustImport(b2)
	require.False(t, r.NewBest)
	require.Equal(t, a[1].Hash(), e.chain.BestHash())

	// One whose tip has an earlier slot wins, whatever the hashes.
	c1 := e.block(g, 3, []byte("c"))
	e.mustImport(c1)
	c2 := e.block(c1.Header, 4, []byte("c"))
	r = e.mustImport(c2)
	require.True(t, r.NewBest)
	require.Equal(t, c2.Hash(), e.chain.BestHash())
	require.Len(t, e.chain.Tips(), 3)

	// Longer beats an earlier slot.
	a3 := e.block(a[1].Header, 13, []byte("a"))
	r = e.mustImport(a3)
	require.True(t, r.NewBest)
	requireCanonical(t, e.chain, append(a, a3))
}

// TestForkChoiceRule builds branches off genesis (each a list of slots),
// imports them in both orders and checks that the best block is the one the
// rule picks (longest, then lowest tip slot), that Import's incremental
// choice agrees with a full fork-choice run over all tips, and that both
// survive a reopen.
func TestForkChoiceRule(t *testing.T) {
	type branch struct {
		parent int // index of the branch it forks from, -1: genesis
		at     int // fork from block at of the parent branch
		slots  []uint64
	}
	tests := []struct {
		name     string
		branches []branch
		want     int // branch whose last block is best
	}{
		{"longer wins", []branch{{-1, 0, []uint64{1, 2, 3}}, {-1, 0, []uint64{4, 5}}}, 0},
		{"longer wins though later", []branch{{-1, 0, []uint64{1, 2}}, {-1, 0, []uint64{3, 4, 5}}}, 1},
		{"equal height: lower tip slot", []branch{{-1, 0, []uint64{10, 11}}, {-1, 0, []uint64{5, 12}}}, 0},
		{"equal height: lower tip slot though later first block", []branch{{-1, 0, []uint64{1, 12}}, {-1, 0, []uint64{7, 8}}}, 1},
		{"three branches", []branch{{-1, 0, []uint64{1, 9}}, {-1, 0, []uint64{2, 8}}, {-1, 0, []uint64{3, 7}}}, 2},
		{"fork of a fork", []branch{{-1, 0, []uint64{1, 2, 30}}, {0, 0, []uint64{5, 16}}, {1, 0, []uint64{9}}}, 2},
		{"side branch shorter", []branch{{-1, 0, []uint64{1, 2, 3, 4}}, {0, 1, []uint64{5}}}, 0},
	}
	for _, tc := range tests {
		for _, reversed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/reversed=%v", tc.name, reversed), func(t *testing.T) {
				e := newEnv(t, localSpec(t))
				g := e.chain.Genesis().Header
				built := make([][]Block, len(tc.branches))
				for i, br := range tc.branches {
					parent := g
					if br.parent >= 0 {
						parent = built[br.parent][br.at].Header
					}
					for _, slot := range br.slots {
						b := e.block(parent, slot, []byte(fmt.Sprintf("branch-%d", i)))
						built[i] = append(built[i], b)
						parent = b.Header
					}
				}
				order := make([]int, len(built))
				for i := range order {
					order[i] = i
				}
				if reversed {
					slices.Reverse(order)
				}
				imported := map[checkpoint.Hash]bool{}
				// A fork's parent branch may come later in reversed order:
				// its ancestors are imported first.
				var importUpTo func(i, upto int)
				importUpTo = func(i, upto int) {
					if p := tc.branches[i].parent; p >= 0 {
						importUpTo(p, tc.branches[i].at)
					}
					for _, b := range built[i][:upto+1] {
						if !imported[b.Hash()] {
							e.mustImport(b)
							imported[b.Hash()] = true
						}
					}
				}
				for _, i := range order {
					importUpTo(i, len(built[i])-1)
				}
				want := built[tc.want][len(built[tc.want])-1]
				require.Equal(t, want.Hash(), e.chain.BestHash())
				e.chain.mu.RLock()
				full, err := e.chain.forkChoice(e.chain.db, e.chain.tipList(), e.chain.justified)
				e.chain.mu.RUnlock()
				require.NoError(t, err)
				require.Equal(t, tipOf(want), full)
				e.reopen()
				require.Equal(t, want.Hash(), e.chain.BestHash())
			})
		}
	}
}

func TestReorgReturnsNewCheckpoints(t *testing.T) {
	e := newEnv(t, localSpec(t)) // checkpoint interval 4
	g := e.chain.Genesis().Header
	a := make([]Block, 0, 5)
	parent := g
	for i := range 5 {
		b := e.block(parent, uint64(1+i), []byte("a"))
		r := e.mustImport(b)
		require.True(t, r.NewBest)
		if b.Header.Number == 4 {
			require.Equal(t, []checkpoint.Checkpoint{cp(1, b)}, r.Checkpoints)
		} else {
			require.Empty(t, r.Checkpoints)
		}
		a = append(a, b)
		parent = b.Header
	}
	// A fork from a1 overtakes at height 6: blocks #2..#6 of the fork become
	// canonical, with checkpoint 1 (its block #4).
	var fork []Block
	parent = a[0].Header
	for i := range 8 {
		b := e.block(parent, uint64(20+i), []byte("fork"))
		r := e.mustImport(b)
		switch b.Header.Number {
		case 2, 3, 4, 5:
			require.False(t, r.NewBest, "#%d", b.Header.Number)
			require.Empty(t, r.Checkpoints)
		case 6:
			require.True(t, r.NewBest)
			require.Equal(t, []checkpoint.Checkpoint{cp(1, fork[2])}, r.Checkpoints)
		case 8:
			require.True(t, r.NewBest)
			require.Equal(t, []checkpoint.Checkpoint{cp(2, b)}, r.Checkpoints)
		default:
			require.True(t, r.NewBest)
			require.Empty(t, r.Checkpoints)
		}
		fork = append(fork, b)
		parent = b.Header
	}
	requireCanonical(t, e.chain, append([]Block{a[0]}, fork...))
	require.True(t, e.chain.IsDescendant(fork[7].Hash(), cp(1, fork[2])))
	require.False(t, e.chain.IsDescendant(fork[7].Hash(), cp(1, a[3])))
	require.True(t, e.chain.IsDescendant(a[4].Hash(), cp(1, a[3])))
}

func TestJustifiedConstrainsForkChoice(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	a := e.extend(g, 1, 8, "a")
	b := e.extend(g, 20, 10, "b")
	require.Equal(t, b[9].Hash(), e.chain.BestHash())

	// Justifying a's checkpoint 1 makes the shorter branch a the best chain.
	cps, err := e.chain.SetJustified(ctx, cp(1, a[3]))
	require.NoError(t, err)
	require.Equal(t, []checkpoint.Checkpoint{cp(1, a[3]), cp(2, a[7])}, cps)
	require.Equal(t, a[7].Hash(), e.chain.BestHash())
	require.Equal(t, cp(1, a[3]), e.chain.Justified())
	requireCanonical(t, e.chain, a)

	// Growing b does not help it any more; growing a does.
	r := e.mustImport(e.block(b[9].Header, 40, []byte("b")))
	require.False(t, r.NewBest)
	a9 := e.block(a[7].Header, 41, []byte("a"))
	r = e.mustImport(a9)
	require.True(t, r.NewBest)

	// Older or equal justifications are ignored; conflicting ones refused.
	cps, err = e.chain.SetJustified(ctx, cp(0, Block{Header: g}))
	require.NoError(t, err)
	require.Empty(t, cps)
	cps, err = e.chain.SetJustified(ctx, cp(1, a[3]))
	require.NoError(t, err)
	require.Empty(t, cps)
	_, err = e.chain.SetJustified(ctx, cp(1, b[3]))
	require.ErrorIs(t, err, ErrInvalidCheckpoint)
	_, err = e.chain.SetJustified(ctx, cp(2, a[6])) // block #7 is not checkpoint 2
	require.ErrorIs(t, err, ErrInvalidCheckpoint)
	require.Equal(t, a9.Hash(), e.chain.BestHash())

	// A later justification on b (possible only after a safety failure)
	// moves the best chain back to b.
	cps, err = e.chain.SetJustified(ctx, cp(2, b[7]))
	require.NoError(t, err)
	require.Equal(t, []checkpoint.Checkpoint{cp(1, b[3]), cp(2, b[7])}, cps)
	require.Equal(t, uint64(11), e.chain.Best().Number)

	// The justification survives a restart.
	best := e.chain.BestHash()
	e.reopen()
	require.Equal(t, cp(2, b[7]), e.chain.Justified())
	require.Equal(t, best, e.chain.BestHash())
}

func TestPendingJustification(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	e.extend(g, 1, 6, "long")
	// Branch c is built but not imported yet.
	c := make([]Block, 4)
	parent := g
	for i := range c {
		c[i] = e.block(parent, uint64(30+i), []byte("c"))
		parent = c[i].Header
	}
	cps, err := e.chain.SetJustified(ctx, cp(1, c[3]))
	require.NoError(t, err)
	require.Empty(t, cps)
	require.Equal(t, uint64(0), e.chain.Justified().Number)

	for i := range 3 {
		r := e.mustImport(c[i])
		require.False(t, r.NewBest)
	}
	r := e.mustImport(c[3])
	require.True(t, r.NewBest)
	require.Equal(t, []checkpoint.Checkpoint{cp(1, c[3])}, r.Checkpoints)
	require.Equal(t, cp(1, c[3]), e.chain.Justified())
	requireCanonical(t, e.chain, c)

	e.reopen()
	require.Equal(t, cp(1, c[3]), e.chain.Justified())
	require.Equal(t, c[3].Hash(), e.chain.BestHash())
}

func TestFinalizedNeverReverted(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	a := e.extend(g, 1, 8, "a")
	// Fork b leaves a at a2 and is longer.
	b := e.extend(a[1].Header, 20, 10, "b")
	require.Equal(t, b[9].Hash(), e.chain.BestHash())
	// Fork d descends from a5 (so from checkpoint 1 = a4).
	d := e.extend(a[4].Header, 50, 1, "d")

	require.NoError(t, e.chain.SetFinalized(ctx, cp(1, a[3])))
	require.Equal(t, cp(1, a[3]), e.chain.Finalized())
	require.Equal(t, cp(1, a[3]), e.chain.Justified())
	require.Equal(t, a[7].Hash(), e.chain.BestHash())
	requireCanonical(t, e.chain, a)

	// Fork b is pruned; fork d is kept.
	for _, blk := range b {
		require.False(t, e.chain.HasBlock(blk.Hash()))
		_, found, err := e.chain.BlockByHash(blk.Hash())
		require.NoError(t, err)
		require.False(t, found)
	}
	require.True(t, e.chain.HasBlock(d[0].Hash()))
	require.ElementsMatch(t, []checkpoint.Tip{tipOf(a[7]), tipOf(d[0])}, e.chain.Tips())

	check := func() {
		t.Helper()
		// Blocks at or below the finalized height on other branches.
		_, err := e.chain.Import(ctx, e.block(a[2].Header, 60, []byte("x")))
		require.ErrorIs(t, err, ErrConflictsFinalized)
		require.ErrorIs(t, err, ErrInvalidBlock)
		_, err = e.chain.Import(ctx, b[0]) // #3 on a2, was pruned
		require.ErrorIs(t, err, ErrConflictsFinalized)
		// Descendants of the pruned fork have no parent any more.
		_, err = e.chain.Import(ctx, e.block(b[9].Header, 61))
		require.ErrorIs(t, err, ErrUnknownParent)
		// Lower finality is ignored, conflicting finality refused.
		require.NoError(t, e.chain.SetFinalized(ctx, cp(0, Block{Header: g})))
		require.Equal(t, cp(1, a[3]), e.chain.Finalized())
		require.ErrorIs(t, e.chain.SetFinalized(ctx, checkpoint.Checkpoint{Number: 1, Hash: b[1].Hash()}), ErrConflictsFinalized)
		// A justification that does not descend from finality is refused.
		_, err = e.chain.SetJustified(ctx, checkpoint.Checkpoint{Number: 2, Hash: d[0].Hash()})
		require.ErrorIs(t, err, ErrInvalidCheckpoint)
		require.Equal(t, a[7].Hash(), e.chain.BestHash())
	}
	check()
	e.reopen()
	require.Equal(t, cp(1, a[3]), e.chain.Finalized())
	check()

	// Finality moves on along a; unknown blocks cannot be finalized.
	require.ErrorIs(t, e.chain.SetFinalized(ctx, checkpoint.Checkpoint{Number: 3, Hash: checkpoint.Hash{1}}), ErrUnknownBlock)
	require.NoError(t, e.chain.SetFinalized(ctx, cp(2, a[7])))
	require.Equal(t, cp(2, a[7]), e.chain.Finalized())
	require.False(t, e.chain.HasBlock(d[0].Hash()), "fork d does not descend from checkpoint 2")
	require.Len(t, e.chain.Tips(), 1)
	_, err := e.chain.Import(ctx, e.block(a[6].Header, 70))
	require.ErrorIs(t, err, ErrConflictsFinalized)
	e.mustImport(e.block(a[7].Header, 71))
}

func TestFinalizingAForkReorgs(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	a := e.extend(g, 1, 9, "a")
	b := e.extend(g, 20, 5, "b")
	require.Equal(t, a[8].Hash(), e.chain.BestHash())
	// Finalizing b's checkpoint 1 (the gadget saw a certificate for it)
	// must move the best chain onto b and prune a.
	require.NoError(t, e.chain.SetFinalized(ctx, cp(1, b[3])))
	require.Equal(t, b[4].Hash(), e.chain.BestHash())
	requireCanonical(t, e.chain, b)
	require.False(t, e.chain.HasBlock(a[0].Hash()))
	require.Equal(t, []checkpoint.Tip{tipOf(b[4])}, e.chain.Tips())
}

func TestIsDescendantAndCheckpointOf(t *testing.T) {
	e := newEnv(t, localSpec(t))
	g := e.chain.Genesis()
	a := e.extend(g.Header, 1, 9, "a")
	b := e.extend(a[4].Header, 30, 4, "b") // #6..#9 on a5, not best (tie broken by hash or shorter)

	gcp, ok := e.chain.CheckpointOf(g.Header)
	require.True(t, ok)
	require.Equal(t, checkpoint.Checkpoint{Number: 0, Hash: g.Hash()}, gcp)
	c2, ok := e.chain.CheckpointOf(a[7].Header)
	require.True(t, ok)
	require.Equal(t, cp(2, a[7]), c2)
	_, ok = e.chain.CheckpointOf(a[6].Header)
	require.False(t, ok)

	tests := []struct {
		name     string
		block    checkpoint.Hash
		ancestor checkpoint.Checkpoint
		want     bool
	}{
		{"genesis of itself", g.Hash(), gcp, true},
		{"tip of genesis", a[8].Hash(), gcp, true},
		{"checkpoint of itself", a[3].Hash(), cp(1, a[3]), true},
		{"canonical descendant", a[8].Hash(), cp(2, a[7]), true},
		{"fork descendant", b[3].Hash(), cp(1, a[3]), true},
		{"fork is not below a's checkpoint 2", b[3].Hash(), cp(2, a[7]), false},
		{"fork's own checkpoint 2", b[3].Hash(), cp(2, b[2]), true},
		{"canonical is not below fork's checkpoint", a[8].Hash(), cp(2, b[2]), false},
		{"ancestor above block", a[2].Hash(), cp(1, a[3]), false},
		{"wrong number for hash", a[8].Hash(), checkpoint.Checkpoint{Number: 1, Hash: a[7].Hash()}, false},
		{"unknown block", checkpoint.Hash{7}, gcp, false},
		{"checkpoint number overflow", a[8].Hash(), checkpoint.Checkpoint{Number: 1 << 63, Hash: a[7].Hash()}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, e.chain.IsDescendant(tc.block, tc.ancestor))
		})
	}
}

func TestBlocksByRange(t *testing.T) {
	e := newEnv(t, localSpec(t))
	g := e.chain.Genesis()
	var chain []Block
	parent := g.Header
	for i := range 10 {
		b := e.block(parent, uint64(i+1), []byte{byte(i)}, []byte("payload"))
		e.mustImport(b)
		chain = append(chain, b)
		parent = b.Header
	}
	all := append([]Block{g}, chain...)
	tests := []struct {
		start uint64
		count int
		want  []Block
	}{
		{0, 3, all[:3]},
		{4, 100, all[4:]},
		{10, 1, all[10:]},
		{11, 5, nil},
		{3, 0, nil},
		{3, -1, nil},
		{0, 11, all},
	}
	for _, tc := range tests {
		got, err := e.chain.BlocksByRange(tc.start, tc.count)
		require.NoError(t, err)
		require.Equal(t, hashes(tc.want), hashes(got), "start %d count %d", tc.start, tc.count)
		for i := range got {
			require.Equal(t, tc.want[i].Extrinsics, got[i].Extrinsics)
		}
	}
	b, found, err := e.chain.BlockByHash(chain[4].Hash())
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, chain[4].Header, b.Header)
	require.Equal(t, chain[4].Extrinsics, b.Extrinsics)
}

func TestPendingFinalization(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	long := e.extend(g, 1, 6, "long")
	c := make([]Block, 5)
	parent := g
	for i := range c {
		c[i] = e.block(parent, uint64(30+i), []byte("c"))
		parent = c[i].Header
	}
	err := e.chain.SetFinalized(ctx, cp(1, c[3]))
	require.ErrorIs(t, err, ErrUnknownBlock)
	require.Equal(t, uint64(0), e.chain.Finalized().Number)

	for i := range 3 {
		r := e.mustImport(c[i])
		require.False(t, r.NewBest)
	}
	r := e.mustImport(c[3])
	require.True(t, r.NewBest)
	require.Equal(t, []checkpoint.Checkpoint{cp(1, c[3])}, r.Checkpoints)
	require.Equal(t, cp(1, c[3]), e.chain.Finalized())
	require.Equal(t, cp(1, c[3]), e.chain.Justified())
	requireCanonical(t, e.chain, c[:4])
	for _, b := range long {
		require.False(t, e.chain.HasBlock(b.Hash()), "the long fork conflicts with finality")
	}
	_, err = e.chain.Import(ctx, e.block(long[5].Header, 60))
	require.ErrorIs(t, err, ErrUnknownParent)
	r = e.mustImport(c[4])
	require.True(t, r.NewBest)

	e.reopen()
	require.Equal(t, cp(1, c[3]), e.chain.Finalized())
	require.Equal(t, c[4].Hash(), e.chain.BestHash())
}

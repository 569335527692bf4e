package asf

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

func (e *env) pub(i checkpoint.ValidatorIndex) ed25519.PublicKey {
	return e.keys[i].Public().(ed25519.PublicKey)
}

// variant builds a block on parent at slot that differs from every other
// variant by its body.
func (e *env) variant(parent Header, slot uint64, i int) Block {
	return e.block(parent, slot, []byte(fmt.Sprintf("variant-%d", i)))
}

// observedEnv is newEnv with the chain logging into an observer.
func observedEnv(t *testing.T) (*env, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	e := newEnv(t, localSpec(t))
	require.NoError(t, e.chain.Close())
	e.opts.Logger = zap.New(core)
	e.open()
	return e, logs
}

func TestEquivocationRefusedAndRecordedOnce(t *testing.T) {
	e, logs := observedEnv(t)
	ctx := context.Background()
	g := e.chain.Genesis().Header
	a := e.extend(g, 1, 4, "a")                       // slots 1..4, proposers 1, 2, 3, 0
	first := e.block(a[3].Header, 5, []byte("first")) // slot 5: authority 1
	e.mustImport(first)
	best, tips := e.chain.BestHash(), e.chain.Tips()
	require.False(t, e.chain.Equivocated(1))

	// The second version (on a[2]: a side branch, it does not beat first)
	// is imported, reported with ErrEquivocation so that it is not relayed.
	second := e.variant(a[2].Header, 5, -1)
	res, err := e.chain.Import(ctx, second)
	require.ErrorIs(t, err, ErrEquivocation)
	require.NotErrorIs(t, err, ErrInvalidBlock)
	require.True(t, res.Equivocation)
	require.False(t, res.NewBest)
	require.True(t, e.chain.HasBlock(second.Hash()))
	require.Equal(t, best, e.chain.BestHash())
	require.ElementsMatch(t, append(tips, tipOf(second)), e.chain.Tips())
	best, tips = e.chain.BestHash(), e.chain.Tips()

	// 300 more blocks of authority 1 for slot 5, on every kind of parent:
	// the same parent, other parents above finality, an unknown parent.
	parents := []Header{a[3].Header, a[2].Header, a[1].Header, a[0].Header, g}
	const flood = 300
	for i := range flood {
		var b Block
		if i%50 == 49 {
			b = e.variant(e.block(g, 3, []byte("never imported")).Header, 5, i)
		} else {
			b = e.variant(parents[i%len(parents)], 5, i)
		}
		res, err := e.chain.Import(ctx, b)
		require.ErrorIs(t, err, ErrEquivocation, "variant %d", i)
		require.NotErrorIs(t, err, ErrInvalidBlock)
		require.NotErrorIs(t, err, ErrUnknownParent)
		require.False(t, res.NewBest)
		require.False(t, res.Equivocation)
		require.False(t, e.chain.HasBlock(b.Hash()))
	}
	require.Equal(t, best, e.chain.BestHash())
	require.ElementsMatch(t, tips, e.chain.Tips())
	require.Equal(t, EquivocationStats{Recorded: 1, Refused: flood, ImportedSecond: 1}, e.chain.Stats().Equivocations)
	require.True(t, e.chain.Equivocated(1))
	for _, honest := range []checkpoint.ValidatorIndex{0, 2, 3} {
		require.False(t, e.chain.Equivocated(honest))
	}

	warns := logs.FilterMessageSnippet("Proposer equivocation").All()
	require.Len(t, warns, 1)
	require.Equal(t, zap.WarnLevel, warns[0].Level)
	require.Equal(t, "chain", warns[0].LoggerName)
	require.Equal(t, uint64(5), warns[0].ContextMap()["slot"])
	require.Equal(t, uint32(1), warns[0].ContextMap()["proposer"])
	require.Equal(t, first.Hash().String(), warns[0].ContextMap()["first"])
	require.Equal(t, second.Hash().String(), warns[0].ContextMap()["second"])

	want := BlockEquivocation{Proposer: 1, Slot: 5, First: first.Header, Second: second.Header}
	ev, err := e.chain.BlockEvidence(0, 10)
	require.NoError(t, err)
	require.Equal(t, []BlockEquivocation{want}, ev)
	require.NoError(t, ev[0].Verify(e.pub(1)))
	require.ErrorIs(t, ev[0].Verify(e.pub(2)), checkpoint.ErrBadSignature)

	// The first block still imports children; the index and the evidence
	// survive a restart; later copies are refused and not recorded again.
	e.mustImport(e.block(first.Header, 6))
	e.reopen()
	require.True(t, e.chain.Equivocated(1), "known from the stored evidence after a restart")
	require.False(t, e.chain.Equivocated(0))
	_, err = e.chain.Import(ctx, e.variant(g, 5, 1000))
	require.ErrorIs(t, err, ErrEquivocation)
	require.Equal(t, EquivocationStats{Refused: 1}, e.chain.Stats().Equivocations)
	ev, err = e.chain.BlockEvidence(0, 10)
	require.NoError(t, err)
	require.Equal(t, []BlockEquivocation{want}, ev)
	require.Len(t, logs.FilterMessageSnippet("Proposer equivocation").All(), 1)
}

func TestEquivocationChecksOrder(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	a := e.extend(g, 1, 3, "a")

	// A block with a bad signature is invalid, never evidence.
	forged := e.variant(g, 2, 1)
	forged.Header.Sign(e.keys[0])
	_, err := e.chain.Import(ctx, forged)
	require.ErrorIs(t, err, ErrInvalidBlock)
	require.ErrorIs(t, err, checkpoint.ErrBadSignature)
	require.NotErrorIs(t, err, ErrEquivocation)

	// A validly signed second block for slot 2 that also breaks a parent
	// rule (slot not after its parent's) is invalid — and still evidence.
	bad := e.variant(a[2].Header, 2, 2)
	_, err = e.chain.Import(ctx, bad)
	require.ErrorIs(t, err, ErrInvalidBlock)
	require.NotErrorIs(t, err, ErrEquivocation)
	ev, err := e.chain.BlockEvidence(0, 10)
	require.NoError(t, err)
	require.Len(t, ev, 1)
	require.Equal(t, a[1].Header, ev[0].First)
	require.Equal(t, bad.Header, ev[0].Second)
	require.Equal(t, EquivocationStats{Recorded: 1}, e.chain.Stats().Equivocations)

	// Already known blocks are not equivocations.
	res, err := e.chain.Import(ctx, a[1])
	require.NoError(t, err)
	require.True(t, res.AlreadyKnown)
}

// TestGossipKeepsTheSecondVersion is seed 4503: an equivocating proposer
// showed this node x1 first and x2 second, and the next proposer builds on
// x2. Gossip keeps x2 as a side branch (stored, not to be relayed), so the
// child z1 attaches at once instead of stalling on a sync round; a third
// version is refused and not stored; the evidence is the first pair, once.
// A restart keeps all of it.
func TestGossipKeepsTheSecondVersion(t *testing.T) {
	e, logs := observedEnv(t)
	ctx := context.Background()
	g := e.chain.Genesis().Header
	a := e.extend(g, 1, 2, "a")
	x1 := e.variant(a[1].Header, 3, 1) // authority 3
	x2 := e.variant(a[1].Header, 3, 2)
	x3 := e.variant(a[1].Header, 3, 3)
	x4 := e.variant(a[0].Header, 3, 4)
	z1 := e.block(x2.Header, 4, []byte("z")) // authority 0 builds on x2
	z2 := e.block(z1.Header, 5, []byte("z"))
	e.mustImport(x1)

	res, err := e.chain.Import(ctx, x2)
	require.ErrorIs(t, err, ErrEquivocation, "reported so that it is not relayed")
	require.NotErrorIs(t, err, ErrInvalidBlock)
	require.NotErrorIs(t, err, ErrUnknownParent)
	require.Equal(t, x2.Hash(), res.Hash)
	require.Equal(t, uint64(3), res.Number)
	require.True(t, res.Equivocation)
	require.False(t, res.AlreadyKnown)
	// Equal height, equal slot: the lower hash is the best block.
	lower := x1
	if x2.Hash().Less(x1.Hash()) {
		lower = x2
	}
	require.Equal(t, lower.Hash(), e.chain.BestHash())
	require.Equal(t, lower.Hash() == x2.Hash(), res.NewBest)

	// The child of the second version imports by gossip at once.
	for _, b := range []Block{z1, z2} {
		res := e.mustImport(b)
		require.True(t, res.NewBest)
		require.False(t, res.Equivocation)
	}
	requireCanonical(t, e.chain, []Block{a[0], a[1], x2, z1, z2})

	check := func(when string) {
		t.Helper()
		for _, b := range []Block{x1, x2, z1, z2} {
			require.True(t, e.chain.HasBlock(b.Hash()), "%s: %s", when, b.Hash().Short())
		}
		// Third and later versions: refused, not stored, whatever the parent.
		for _, b := range []Block{x3, x4} {
			res, err := e.chain.Import(ctx, b)
			require.ErrorIs(t, err, ErrEquivocation, when)
			require.NotErrorIs(t, err, ErrUnknownParent, when)
			require.False(t, res.Equivocation, when)
			require.False(t, e.chain.HasBlock(b.Hash()), when)
		}
		// Both known versions are known blocks now.
		for _, b := range []Block{x1, x2} {
			res, err := e.chain.Import(ctx, b)
			require.NoError(t, err, when)
			require.True(t, res.AlreadyKnown, when)
		}
		ev, err := e.chain.BlockEvidence(0, 10)
		require.NoError(t, err)
		require.Equal(t, []BlockEquivocation{{Proposer: 3, Slot: 3, First: x1.Header, Second: x2.Header}}, ev, when)
		require.Equal(t, z2.Hash(), e.chain.BestHash(), when)
		require.True(t, e.chain.Equivocated(3), when)
		requireTreeConsistent(t, e.chain)
	}
	check("before restart")
	require.Equal(t, EquivocationStats{Recorded: 1, Refused: 2, ImportedSecond: 1}, e.chain.Stats().Equivocations)
	e.reopen()
	check("after restart")
	require.Equal(t, EquivocationStats{Refused: 2}, e.chain.Stats().Equivocations)
	requireCanonical(t, e.chain, []Block{a[0], a[1], x2, z1, z2})
	require.Len(t, logs.FilterMessageSnippet("Proposer equivocation").All(), 1)
}

// TestGossipSecondVersionOtherChecks: the second version is kept only when
// it passes every other check; failing one it is not stored. With an
// unknown parent its error names both the equivocation and the unknown
// parent (sync may fetch the parent; the same block imports afterwards);
// breaking a rule against its parent it is reported like any such block.
func TestGossipSecondVersionOtherChecks(t *testing.T) {
	tests := []struct {
		name string
		// build imports what the case needs on the chain a (slots 1..6,
		// checkpoint 1 = #4 finalized) and returns the second version of a
		// taken (proposer, slot), plus the parent it lacks, if any.
		build func(e *env, a []Block) (second Block, missing *Block)
		is    []error
		isNot []error
	}{
		{
			name: "unknown parent",
			build: func(e *env, a []Block) (Block, *Block) {
				e.mustImport(e.variant(a[5].Header, 7, 1))
				parent := e.variant(a[4].Header, 6, 99) // authority 2 equivocates too
				return e.variant(parent.Header, 7, 2), &parent
			},
			is:    []error{ErrEquivocation, ErrUnknownParent},
			isNot: []error{ErrInvalidBlock},
		},
		{
			name: "slot not after parent slot",
			build: func(e *env, a []Block) (Block, *Block) {
				return e.variant(a[5].Header, 6, 2), nil // a[5] holds slot 6
			},
			is:    []error{ErrInvalidBlock},
			isNot: []error{ErrEquivocation},
		},
		{
			name: "below finality",
			build: func(e *env, a []Block) (Block, *Block) {
				e.mustImport(e.variant(a[5].Header, 7, 1))
				return e.variant(a[1].Header, 7, 2), nil // #3 under finalized #4
			},
			is:    []error{ErrConflictsFinalized},
			isNot: []error{ErrEquivocation},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, localSpec(t))
			ctx := context.Background()
			a := e.extend(e.chain.Genesis().Header, 1, 6, "a")
			require.NoError(t, e.chain.SetFinalized(ctx, cp(1, a[3])))
			second, missing := tc.build(e, a)
			res, err := e.chain.Import(ctx, second)
			for _, is := range tc.is {
				require.ErrorIs(t, err, is)
			}
			for _, not := range tc.isNot {
				require.NotErrorIs(t, err, not)
			}
			require.False(t, res.Equivocation)
			require.False(t, e.chain.HasBlock(second.Hash()))
			ev, err := e.chain.BlockEvidence(0, 10)
			require.NoError(t, err)
			require.Len(t, ev, 1, "evidence all the same")
			require.Equal(t, second.Header, ev[0].Second)
			if missing != nil {
				_, err := e.chain.ImportSynced(ctx, *missing)
				require.NoError(t, err)
				res, err := e.chain.Import(ctx, second)
				require.ErrorIs(t, err, ErrEquivocation)
				require.True(t, res.Equivocation)
				require.True(t, e.chain.HasBlock(second.Hash()))
			}
		})
	}
}

// TestImportSyncedFollowsTheOtherHalf: an equivocating proposer showed this
// node x1 and x2, and the rest of the network x3, on which the network
// builds. Gossip refuses the third version x3 and its children cannot
// attach; sync (ImportSynced) imports x3 and the node follows the longer
// chain.
func TestImportSyncedFollowsTheOtherHalf(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	a := e.extend(g, 1, 2, "a")
	x1 := e.variant(a[1].Header, 3, 1) // authority 3
	x2 := e.variant(a[1].Header, 3, 2)
	x3 := e.variant(a[1].Header, 3, 3)
	e.mustImport(x1)
	_, err := e.chain.Import(ctx, x2)
	require.ErrorIs(t, err, ErrEquivocation)
	require.True(t, e.chain.HasBlock(x2.Hash()))
	best := e.chain.BestHash()
	z1 := e.block(x3.Header, 4, []byte("z")) // authority 0 builds on x3
	z2 := e.block(z1.Header, 5, []byte("z"))

	_, err = e.chain.Import(ctx, z1)
	require.ErrorIs(t, err, ErrUnknownParent)
	_, err = e.chain.Import(ctx, x3)
	require.ErrorIs(t, err, ErrEquivocation)
	require.False(t, e.chain.HasBlock(x3.Hash()))

	res, err := e.chain.ImportSynced(ctx, x3)
	require.NoError(t, err)
	require.False(t, res.AlreadyKnown)
	require.True(t, res.Equivocation)
	// Equal height, equal slot: the lowest hash is the best block.
	lowest := best
	if x3.Hash().Less(best) {
		lowest = x3.Hash()
	}
	require.Equal(t, lowest, e.chain.BestHash())
	require.Equal(t, lowest == x3.Hash(), res.NewBest)
	require.Equal(t, EquivocationStats{Recorded: 1, Refused: 1, ImportedSecond: 1, ImportedSynced: 1}, e.chain.Stats().Equivocations)

	for _, b := range []Block{z1, z2} {
		_, err := e.chain.ImportSynced(ctx, b)
		require.NoError(t, err)
	}
	require.Equal(t, z2.Hash(), e.chain.BestHash())
	requireCanonical(t, e.chain, []Block{a[0], a[1], x3, z1, z2})

	// The evidence is still the first pair; a fourth copy is refused by
	// gossip.
	_, err = e.chain.Import(ctx, e.variant(a[1].Header, 3, 4))
	require.ErrorIs(t, err, ErrEquivocation)
	ev, err := e.chain.BlockEvidence(0, 10)
	require.NoError(t, err)
	require.Equal(t, []BlockEquivocation{{Proposer: 3, Slot: 3, First: x1.Header, Second: x2.Header}}, ev)
	res, err = e.chain.ImportSynced(ctx, x3)
	require.NoError(t, err)
	require.True(t, res.AlreadyKnown)
}

// slotIndex lists the (slot, proposer) keys of the slot index.
func slotIndex(t *testing.T, c *Chain) [][2]uint64 {
	t.Helper()
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagSlot}, UpperBound: []byte{tagSlot + 1}})
	require.NoError(t, err)
	var out [][2]uint64
	for ok := it.First(); ok; ok = it.Next() {
		h, err := unmarshalHeader(it.Value())
		require.NoError(t, err)
		require.Equal(t, slotKey(tagSlot, h.Slot, h.Proposer), it.Key())
		out = append(out, [2]uint64{h.Slot, uint64(h.Proposer)})
	}
	require.NoError(t, it.Close())
	return out
}

func TestSlotIndexPrunedWithFinality(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	a := e.extend(g, 1, 9, "a")
	fork := e.extend(a[5].Header, 30, 2, "fork") // slots 30, 31 above checkpoint 1
	stale := e.extend(a[1].Header, 40, 1, "stale")
	_ = fork
	require.Len(t, slotIndex(t, e.chain), 12)

	require.NoError(t, e.chain.SetFinalized(ctx, cp(1, a[3]))) // block #4, slot 4
	// Slots up to 4 are dropped; the pruned stale block keeps its slot (40)
	// until finality passes it: its proposer signed it, so another block of
	// that slot would be an equivocation all the same.
	require.Equal(t, [][2]uint64{{5, 1}, {6, 2}, {7, 3}, {8, 0}, {9, 1}, {30, 2}, {31, 3}, {40, 0}}, slotIndex(t, e.chain))
	require.False(t, e.chain.HasBlock(stale[0].Hash()), "stale fork pruned")

	// Above finality the index still refuses a second block per slot.
	_, err := e.chain.Import(ctx, e.variant(a[5].Header, 31, 9))
	require.ErrorIs(t, err, ErrEquivocation)
	// At or below the finalized slot the finality rules answer instead.
	_, err = e.chain.Import(ctx, e.variant(a[1].Header, 3, 9))
	require.ErrorIs(t, err, ErrConflictsFinalized)
}

func TestProducerNeverSignsTwiceForOneSlot(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	a1 := e.extend(g, 1, 1, "a")[0]
	e.clock.Set(SlotStart(e.spec, 5).Add(100e6))
	p := NewProducer(e.chain, e.spec, e.keys[1], 1, e.clock, zap.New(core))
	own, _, err := p.Produce(ctx, 5)
	require.NoError(t, err)
	require.NotNil(t, own)
	require.Equal(t, a1.Hash(), own.Header.ParentHash)

	// Inside the same slot a longer branch with earlier slots arrives: the
	// best block is now at slot 4, but the producer does not sign a second
	// block for slot 5.
	b := e.extend(g, 2, 3, "b") // slots 2, 3, 4
	require.Equal(t, b[2].Hash(), e.chain.BestHash())
	again, res, err := p.Produce(ctx, 5)
	require.NoError(t, err)
	require.Nil(t, again)
	require.Equal(t, ImportResult{}, res)
	require.Len(t, logs.FilterMessageSnippet("Not authoring: a block of ours for this slot exists already").All(), 1)
	require.Equal(t, EquivocationStats{}, e.chain.Stats().Equivocations)
}

func TestBlockEvidencePaging(t *testing.T) {
	e := newEnv(t, localSpec(t))
	g := e.chain.Genesis().Header
	// Write MaxEvidenceList+5 records directly (each a real pair of signed
	// headers), as the import path would, then read them back in pages.
	const n = MaxEvidenceList + 5
	var want []BlockEquivocation
	require.NoError(t, e.chain.Close())
	rawDB(t, e.dir, func(db *pebble.DB) {
		b := db.NewBatch()
		for i := range n {
			slot := uint64(10 + 3*i)
			x, y := e.variant(g, slot, 1), e.variant(g, slot, 2)
			ev := BlockEquivocation{Proposer: x.Header.Proposer, Slot: slot, First: x.Header, Second: y.Header}
			require.NoError(t, b.Set(slotKey(tagEvidence, slot, ev.Proposer), marshalEvidence(ev), nil))
			want = append(want, ev)
		}
		require.NoError(t, b.Commit(pebble.Sync))
	})
	e.open()

	all, err := e.chain.BlockEvidence(0, 1<<30)
	require.NoError(t, err)
	require.Len(t, all, MaxEvidenceList, "one call is bounded")
	require.Equal(t, want[:MaxEvidenceList], all)
	for _, ev := range all {
		require.NoError(t, ev.Verify(e.pub(ev.Proposer)))
	}
	rest, err := e.chain.BlockEvidence(all[len(all)-1].Slot+1, 100)
	require.NoError(t, err)
	require.Equal(t, want[MaxEvidenceList:], rest)

	tests := []struct {
		from  uint64
		limit int
		want  []BlockEquivocation
	}{
		{0, 2, want[:2]},
		{10, 1, want[:1]},
		{11, 2, want[1:3]},
		{want[n-1].Slot, 5, want[n-1:]},
		{want[n-1].Slot + 1, 5, nil},
		{0, 0, nil},
		{0, -1, nil},
	}
	for _, tc := range tests {
		got, err := e.chain.BlockEvidence(tc.from, tc.limit)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "from %d limit %d", tc.from, tc.limit)
	}
}

func TestBlockEvidenceVerify(t *testing.T) {
	e := newEnv(t, localSpec(t))
	g := e.chain.Genesis().Header
	x, y := e.variant(g, 5, 1), e.variant(g, 5, 2)
	good := BlockEquivocation{Proposer: 1, Slot: 5, First: x.Header, Second: y.Header}
	require.NoError(t, good.Verify(e.pub(1)))
	tests := []struct {
		name   string
		mutate func(*BlockEquivocation)
		is     error
	}{
		{"same block twice", func(ev *BlockEquivocation) { ev.Second = ev.First }, checkpoint.ErrMalformed},
		{"other slot", func(ev *BlockEquivocation) { ev.Slot = 9 }, checkpoint.ErrMalformed},
		{"other proposer", func(ev *BlockEquivocation) { ev.Proposer = 2 }, checkpoint.ErrMalformed},
		{"second header of another slot", func(ev *BlockEquivocation) { ev.Second = e.variant(g, 9, 2).Header }, checkpoint.ErrMalformed},
		{"signature altered", func(ev *BlockEquivocation) { ev.Second.Signature[3] ^= 1 }, checkpoint.ErrBadSignature},
		{"body root altered after signing", func(ev *BlockEquivocation) { ev.First.BodyRoot[0] ^= 1 }, checkpoint.ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := good
			tc.mutate(&ev)
			require.ErrorIs(t, ev.Verify(e.pub(1)), tc.is)
		})
	}
}

func TestCorruptedSlotIndexAndEvidence(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	g := e.chain.Genesis().Header
	a := e.extend(g, 1, 3, "a")
	_, err := e.chain.Import(ctx, e.variant(g, 2, 1))
	require.ErrorIs(t, err, ErrEquivocation)
	require.NoError(t, e.chain.Close())
	e.chain = nil
	rawDB(t, e.dir, func(db *pebble.DB) {
		require.NoError(t, db.Set(slotKey(tagSlot, 3, 3), []byte("garbage"), pebble.Sync))
		// a[0]'s header under the key of another slot.
		require.NoError(t, db.Set(slotKey(tagSlot, 7, 3), marshalHeader(a[0].Header), pebble.Sync))
		v, closer, err := db.Get(slotKey(tagEvidence, 2, 2))
		require.NoError(t, err)
		bad := append([]byte(nil), v...)
		require.NoError(t, closer.Close())
		require.NoError(t, db.Set(slotKey(tagEvidence, 2, 2), bad[:len(bad)-1], pebble.Sync))
	})
	e.open()
	_, err = e.chain.Import(ctx, e.variant(a[2].Header, 7, 1))
	require.ErrorIs(t, err, ErrCorrupted)
	require.Contains(t, err.Error(), "slot index 7/3")
	_, err = e.chain.Import(ctx, e.variant(g, 3, 1))
	require.ErrorIs(t, err, ErrCorrupted)
	_, err = e.chain.BlockEvidence(0, 10)
	require.ErrorIs(t, err, ErrCorrupted)
	require.Contains(t, err.Error(), "block evidence 2/2")
}

package asf

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

func TestImportValidation(t *testing.T) {
	e := newEnv(t, localSpec(t))
	g := e.chain.Genesis()
	b1 := e.block(g.Header, 1)
	b2 := e.block(b1.Header, 2)
	e.mustImport(b1)
	e.mustImport(b2)
	orphanParent := e.block(g.Header, 7) // valid but never imported

	// build makes a block on parent at slot, lets mutate change the header
	// (before signing) and signs with the key of signer (-1: slot owner).
	build := func(parent Header, slot uint64, signer int, mutate func(b *Block)) Block {
		b := e.block(parent, slot)
		if mutate != nil {
			mutate(&b)
		}
		k := int(b.Header.Proposer)
		if signer >= 0 {
			k = signer
		}
		if k < len(e.keys) {
			b.Header.Sign(e.keys[k])
		}
		return b
	}
	future := SlotAt(e.spec, e.clock.Now()) + 3 // 3 s ahead, drift is 2 s
	tests := []struct {
		name  string
		block Block
		is    error
		sub   string
	}{
		{"unknown parent", build(orphanParent.Header, 8, -1, nil), ErrUnknownParent, "unknown parent"},
		{"number skips", build(b2.Header, 3, -1, func(b *Block) { b.Header.Number = 4 }), ErrInvalidBlock, "number 4, parent is #2"},
		{"number repeats", build(b2.Header, 3, -1, func(b *Block) { b.Header.Number = 2 }), ErrInvalidBlock, "number 2, parent is #2"},
		{"second genesis", build(b2.Header, 3, -1, func(b *Block) { b.Header.Number = 0 }), ErrInvalidBlock, "second genesis"},
		{"slot equals parent slot", build(b2.Header, 2, -1, nil), ErrInvalidBlock, "slot 2 not after parent slot 2"},
		{"slot before parent slot", build(b2.Header, 1, -1, nil), ErrInvalidBlock, "not after parent slot"},
		{"wrong proposer for slot", build(b2.Header, 3, 0, func(b *Block) { b.Header.Proposer = 0 }), ErrInvalidBlock, "proposer 0, slot 3 belongs to authority 3"},
		{"proposer outside the set", build(b2.Header, 3, 0, func(b *Block) { b.Header.Proposer = 9 }), ErrInvalidBlock, "belongs to authority 3"},
		{"timestamp not the slot start", build(b2.Header, 3, -1, func(b *Block) { b.Header.TimestampMs++ }), ErrInvalidBlock, "timestamp"},
		{"slot overflows the timestamp", build(b2.Header, math.MaxUint64-2, -1, nil), ErrInvalidBlock, "out of range"},
		{"timestamp in the future", build(b2.Header, future, -1, nil), ErrFutureBlock, "in the future"},
		{"body root mismatch", build(b2.Header, 3, -1, func(b *Block) { b.Extrinsics = [][]byte{[]byte("tx")} }), ErrInvalidBlock, "body root"},
		{"extrinsic swapped after signing", func() Block {
			b := build(b2.Header, 3, -1, func(b *Block) {
				b.Extrinsics = [][]byte{[]byte("pay 1")}
				b.Header.BodyRoot = BodyRoot(b.Extrinsics)
			})
			b.Extrinsics = [][]byte{[]byte("pay 9")}
			return b
		}(), ErrInvalidBlock, "body root"},
		{"too many extrinsics", build(b2.Header, 3, -1, func(b *Block) {
			b.Extrinsics = make([][]byte, MaxExtrinsics+1)
			b.Header.BodyRoot = BodyRoot(b.Extrinsics)
		}), ErrInvalidBlock, "at most"},
		{"signed by another authority", build(b2.Header, 3, 1, nil), checkpoint.ErrBadSignature, "bad proposer signature"},
		{"unsigned", func() Block { b := e.block(b2.Header, 3); b.Header.Signature = checkpoint.Signature{}; return b }(), ErrInvalidBlock, "signature"},
		{"signature of another header", func() Block {
			b := e.block(b2.Header, 3)
			b.Header.Signature = e.block(b1.Header, 3).Header.Signature
			return b
		}(), checkpoint.ErrBadSignature, "signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.chain.Best()
			res, err := e.chain.Import(context.Background(), tc.block)
			require.ErrorIs(t, err, tc.is)
			require.Contains(t, err.Error(), tc.sub)
			require.False(t, res.NewBest)
			require.False(t, e.chain.HasBlock(tc.block.Hash()))
			require.Equal(t, before, e.chain.Best())
			if tc.is != ErrUnknownParent {
				require.ErrorIs(t, err, ErrInvalidBlock)
			} else {
				require.NotErrorIs(t, err, ErrInvalidBlock)
			}
		})
	}

	// The valid block of slot 3 still imports, and a second import is a no-op.
	good := e.block(b2.Header, 3)
	res := e.mustImport(good)
	require.True(t, res.NewBest)
	again, err := e.chain.Import(context.Background(), good)
	require.NoError(t, err)
	require.True(t, again.AlreadyKnown)
	require.False(t, again.NewBest)
	require.Equal(t, good.Hash(), again.Hash)

	// The genesis block is known from the start.
	res, err = e.chain.Import(context.Background(), g)
	require.NoError(t, err)
	require.True(t, res.AlreadyKnown)

	// The orphan's parent arrives: now the orphan imports.
	e.mustImport(orphanParent)
	e.mustImport(build(orphanParent.Header, 8, -1, nil))
}

func TestImportFutureDriftBoundary(t *testing.T) {
	e := newEnv(t, localSpec(t))
	g := e.chain.Genesis()
	// Now is exactly 2 s (the default drift) before slot 10 starts.
	e.clock.Set(SlotStart(e.spec, 10).Add(-DefaultMaxFutureDrift))
	e.mustImport(e.block(g.Header, 10))
	_, err := e.chain.Import(context.Background(), e.block(g.Header, 11))
	require.ErrorIs(t, err, ErrFutureBlock)
	// Once the clock advances, the same block is accepted.
	e.clock.Set(SlotStart(e.spec, 11))
	e.mustImport(e.block(g.Header, 11))
}

func TestImportContextCancelled(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := e.block(e.chain.Genesis().Header, 1)
	_, err := e.chain.Import(ctx, b)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, e.chain.HasBlock(b.Hash()))
}

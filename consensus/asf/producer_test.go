package asf

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

func TestProducerSlotsAndProposers(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	producers := make([]*Producer, len(e.keys))
	for i, k := range e.keys {
		producers[i] = NewProducer(e.chain, e.spec, k, checkpoint.ValidatorIndex(i), e.clock, testLogger(t))
	}
	// Time is inside slot 5: 5 mod 4 = authority 1.
	e.clock.Set(SlotStart(e.spec, 5).Add(300e6))
	tests := []struct {
		name     string
		producer int
		slot     uint64
		produced bool
		err      error
	}{
		{"not our slot", 0, 5, false, nil},
		{"not our slot either", 2, 5, false, nil},
		{"future slot is refused", 2, 6, false, ErrSlotNotReached},
		{"our slot", 1, 5, true, nil},
		{"same slot again", 1, 5, false, nil},
		{"earlier slot after best", 0, 4, false, nil},
		{"past slot of another authority", 1, 1, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.chain.Best()
			b, res, err := producers[tc.producer].Produce(ctx, tc.slot)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
			} else {
				require.NoError(t, err)
			}
			if !tc.produced {
				require.Nil(t, b)
				require.Equal(t, before, e.chain.Best())
				return
			}
			require.NotNil(t, b)
			require.True(t, res.NewBest)
			require.Equal(t, b.Hash(), res.Hash)
			h := b.Header
			require.Equal(t, before.Hash(), h.ParentHash)
			require.Equal(t, before.Number+1, h.Number)
			require.Equal(t, tc.slot, h.Slot)
			require.Equal(t, checkpoint.ValidatorIndex(tc.producer), h.Proposer)
			require.Equal(t, uint64(SlotStart(e.spec, tc.slot).UnixMilli()), h.TimestampMs)
			require.Equal(t, BodyRoot(nil), h.BodyRoot)
			require.True(t, h.VerifySignature(e.keys[tc.producer].Public().(ed25519.PublicKey)))
			require.Equal(t, h, e.chain.Best())
		})
	}
}

func TestProducersRoundRobin(t *testing.T) {
	e := newEnv(t, localSpec(t))
	ctx := context.Background()
	producers := make([]*Producer, len(e.keys))
	for i, k := range e.keys {
		producers[i] = NewProducer(e.chain, e.spec, k, checkpoint.ValidatorIndex(i), e.clock, nil)
	}
	offline := map[uint64]bool{7: true, 13: true} // authorities 3 and 1 miss these slots
	var checkpoints []checkpoint.Checkpoint
	for slot := uint64(1); slot <= 18; slot++ {
		e.clock.Set(SlotStart(e.spec, slot))
		for i, p := range producers {
			if offline[slot] {
				continue
			}
			b, res, err := p.Produce(ctx, slot)
			require.NoError(t, err)
			require.Equal(t, uint64(i) == slot%4, b != nil, "slot %d producer %d", slot, i)
			checkpoints = append(checkpoints, res.Checkpoints...)
		}
	}
	best := e.chain.Best()
	require.Equal(t, uint64(16), best.Number) // 18 slots, 2 missed
	require.Equal(t, uint64(18), best.Slot)
	blocks, err := e.chain.BlocksByRange(1, 16)
	require.NoError(t, err)
	var slots []uint64
	for _, b := range blocks {
		slots = append(slots, b.Header.Slot)
		require.Equal(t, ProposerOf(e.spec, b.Header.Slot), b.Header.Proposer)
	}
	require.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18}, slots)
	require.Equal(t, []checkpoint.Checkpoint{cp(1, blocks[3]), cp(2, blocks[7]), cp(3, blocks[11]), cp(4, blocks[15])}, checkpoints)
}

func TestProducerWrongKey(t *testing.T) {
	e := newEnv(t, localSpec(t))
	p := NewProducer(e.chain, e.spec, e.keys[2], 1, e.clock, nil) // charlie's key as authority 1
	b, _, err := p.Produce(context.Background(), 1)
	require.Error(t, err)
	require.Nil(t, b)
	require.Contains(t, err.Error(), "not authority 1")
	require.Equal(t, uint64(0), e.chain.Best().Number)
}

func TestBlockLogs(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	e := newEnv(t, localSpec(t))
	require.NoError(t, e.chain.Close())
	e.opts.Logger = log
	e.open()
	e.clock.Set(SlotStart(e.spec, 2))
	p := NewProducer(e.chain, e.spec, e.keys[2], 2, e.clock, log)
	b, res, err := p.Produce(context.Background(), 2)
	require.NoError(t, err)
	require.NotNil(t, b)

	prepared := logs.FilterMessage("Prepared block for proposing at 1").All()
	require.Len(t, prepared, 1)
	require.Equal(t, zap.DebugLevel, prepared[0].Level, "per-block lines other than Authored are debug")
	require.Equal(t, "producer", prepared[0].LoggerName)
	require.Equal(t, uint64(1), prepared[0].ContextMap()["number"])

	authored := logs.FilterMessageSnippet("Authored block #1 (" + res.Hash.Short() + ")").All()
	require.Len(t, authored, 1)
	require.Equal(t, zap.InfoLevel, authored[0].Level)
	require.Equal(t, res.Hash.String(), authored[0].ContextMap()["hash"])

	imported := logs.FilterMessage("Imported block #1 (" + res.Hash.Short() + ")").All()
	require.Len(t, imported, 1)
	require.Equal(t, zap.DebugLevel, imported[0].Level)
	require.Equal(t, "chain", imported[0].LoggerName)
	require.Equal(t, uint64(2), imported[0].ContextMap()["slot"])
	require.Equal(t, true, imported[0].ContextMap()["best"])
}

func TestProducerOnClosedChain(t *testing.T) {
	e := newEnv(t, localSpec(t))
	e.clock.Set(SlotStart(e.spec, 1))
	p := NewProducer(e.chain, e.spec, e.keys[1], 1, e.clock, nil)
	require.NoError(t, e.chain.Close())
	b, _, err := p.Produce(context.Background(), 1)
	require.ErrorIs(t, err, ErrClosed)
	require.Nil(t, b)
}

package asf

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// ErrSlotNotReached is returned by Produce for a slot that has not started
// yet by the producer's clock.
var ErrSlotNotReached = errors.New("slot has not started yet")

// Producer authors blocks in the slots of one authority (PPFA: slot s
// belongs to authority s mod n) on top of the best block of a Chain.
type Producer struct {
	chain *Chain
	spec  *chainspec.Spec
	key   ed25519.PrivateKey
	index checkpoint.ValidatorIndex
	clock Clock
	log   *zap.Logger
	// builder fills the body (nil: empty blocks).
	builder BodyBuilder
}

// BuildFraction is the share of a slot the body builder may use, counted
// from the start of the slot: the block must still reach the other
// validators and be imported within the slot.
const BuildFraction = 3

// SetBuilder sets the body builder (nil: empty blocks). Call it before the
// first Produce.
func (p *Producer) SetBuilder(b BodyBuilder) { p.builder = b }

// NewProducer returns a producer that signs with key as authority index. A
// nil clock means the system clock, a nil logger no logs.
func NewProducer(chain *Chain, spec *chainspec.Spec, key ed25519.PrivateKey, index checkpoint.ValidatorIndex, clock Clock, log *zap.Logger) *Producer {
	if clock == nil {
		clock = SystemClock{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Producer{chain: chain, spec: spec, key: key, index: index, clock: clock, log: log.Named("producer")}
}

// Index returns the authority index the producer signs as.
func (p *Producer) Index() checkpoint.ValidatorIndex { return p.index }

// Produce authors, signs and imports the block of slot on top of the current
// best block. It returns a nil block (and no error) when the slot is not
// this authority's or the best block is already at or after the slot, and
// ErrSlotNotReached when the slot has not started by the clock. The returned
// block has already been imported (synced to disk) and can be gossiped.
func (p *Producer) Produce(ctx context.Context, slot uint64) (*Block, ImportResult, error) {
	if ProposerOf(p.spec, slot) != p.index {
		return nil, ImportResult{}, nil
	}
	if now := SlotAt(p.spec, p.clock.Now()); slot > now {
		return nil, ImportResult{}, fmt.Errorf("%w: slot %d, current slot %d", ErrSlotNotReached, slot, now)
	}
	if !p.keyMatches() {
		return nil, ImportResult{}, fmt.Errorf("producer key is not authority %d of chain %s", p.index, p.spec.ID)
	}
	p.chain.mu.RLock()
	parent, parentHash := p.chain.best, p.chain.bestHash
	p.chain.mu.RUnlock()
	if parent.Slot >= slot {
		return nil, ImportResult{}, nil
	}
	// Never sign a second block for one slot (after a restart or a reorg
	// inside the slot): the chain would refuse it as an equivocation.
	own, authored, err := p.chain.slotEntry(slot, p.index)
	if err != nil {
		return nil, ImportResult{}, err
	}
	if authored {
		p.log.Info("Not authoring: a block of ours for this slot exists already",
			zap.Uint64("slot", slot), zap.Stringer("block", own.Hash()), zap.Uint64("number", own.Number))
		return nil, ImportResult{}, nil
	}
	ts, ok := slotTimestampMs(p.spec, slot)
	if !ok {
		return nil, ImportResult{}, fmt.Errorf("%w: slot %d out of range", ErrInvalidBlock, slot)
	}
	// Per block: debug (the INFO line of a block is "Authored block").
	if ce := p.log.Check(zap.DebugLevel, fmt.Sprintf("Prepared block for proposing at %d", parent.Number+1)); ce != nil {
		ce.Write(zap.Uint64("number", parent.Number+1),
			zap.Uint64("slot", slot),
			zap.Stringer("parent", parentHash))
	}
	b := Block{Header: Header{
		ParentHash:  parentHash,
		Number:      parent.Number + 1,
		Slot:        slot,
		Proposer:    p.index,
		TimestampMs: ts,
		StateRoot:   parent.StateRoot,
	}}
	if p.builder != nil {
		slotLen := p.spec.SlotDuration()
		deadline := time.UnixMilli(int64(ts)).Add(slotLen / BuildFraction)
		if now := p.clock.Now(); !deadline.After(now) {
			deadline = now.Add(slotLen / (4 * BuildFraction)) // a late start still builds a little
		}
		body, root, err := p.builder.BuildBody(ctx, parent, b.Header, deadline)
		if err != nil {
			return nil, ImportResult{}, fmt.Errorf("build the body of block #%d: %w", b.Header.Number, err)
		}
		b.Extrinsics, b.Header.StateRoot = body, root
	}
	b.Header.BodyRoot = BodyRoot(b.Extrinsics)
	b.Header.Sign(p.key)
	res, err := p.chain.Import(ctx, b)
	if err != nil {
		return nil, res, fmt.Errorf("import own block #%d: %w", b.Header.Number, err)
	}
	p.log.Info(fmt.Sprintf("Authored block #%d (%s)", res.Number, res.Hash.Short()),
		zap.Uint64("number", res.Number),
		zap.Stringer("hash", res.Hash),
		zap.Uint64("slot", slot),
		zap.Int("extrinsics", len(b.Extrinsics)),
		zap.Bool("best", res.NewBest))
	return &b, res, nil
}

func (p *Producer) keyMatches() bool {
	if int(p.index) >= len(p.chain.keys) {
		return false
	}
	return p.chain.keys[p.index].Equal(p.key.Public())
}

package asf

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// ErrEquivocation is returned by Import for a validly signed block when a
// different block of the same proposer for the same slot was imported
// before: the proposer equivocated. The block must not be relayed. It does
// not wrap ErrInvalidBlock: the block is well formed and the peer that
// relayed it may be honest (it may have seen this block first), so the
// caller ignores it without penalizing the peer. The first time per
// (proposer, slot) both headers are stored as evidence (see
// Chain.BlockEvidence). The second version of a (proposer, slot) — the one
// the evidence names second — is nevertheless imported as a side branch
// when it passes every other check (ImportResult.Equivocation is then set
// next to this error); a third or later version is not stored.
var ErrEquivocation = errors.New("proposer equivocation: another block of this proposer for this slot was imported first")

// MaxEvidenceList bounds the records one BlockEvidence call returns.
const MaxEvidenceList = 256

// evidenceRecordSize is the length of a stored evidence record: two stored
// headers.
const evidenceRecordSize = 2 * headerStoredSize

// BlockEquivocation is the proof that Proposer signed two different blocks
// for Slot: both headers, each carrying the proposer's signature.
type BlockEquivocation struct {
	Proposer checkpoint.ValidatorIndex
	Slot     uint64
	// First is the header of the block imported first; Second the header of
	// the first different block seen afterwards.
	First  Header
	Second Header
}

// Verify checks that the evidence is a proof against the authority whose
// public key is pub: two different headers, both for Proposer and Slot, both
// validly signed by pub. Shape failures wrap checkpoint.ErrMalformed, a
// signature failure checkpoint.ErrBadSignature.
func (e BlockEquivocation) Verify(pub ed25519.PublicKey) error {
	for _, h := range []Header{e.First, e.Second} {
		if h.Proposer != e.Proposer || h.Slot != e.Slot {
			return fmt.Errorf("%w: block evidence header for proposer %d slot %d, evidence is about proposer %d slot %d",
				checkpoint.ErrMalformed, h.Proposer, h.Slot, e.Proposer, e.Slot)
		}
	}
	if e.First.Hash() == e.Second.Hash() {
		return fmt.Errorf("%w: block evidence names the same block twice", checkpoint.ErrMalformed)
	}
	for _, h := range []Header{e.First, e.Second} {
		if !h.VerifySignature(pub) {
			return fmt.Errorf("%w: block evidence header %s is not signed by proposer %d", checkpoint.ErrBadSignature, h.Hash().Short(), e.Proposer)
		}
	}
	return nil
}

func marshalEvidence(e BlockEquivocation) []byte {
	return append(marshalHeader(e.First), marshalHeader(e.Second)...)
}

// unmarshalEvidence parses a stored evidence record found under the key of
// (proposer, slot).
func unmarshalEvidence(slot uint64, proposer checkpoint.ValidatorIndex, v []byte) (BlockEquivocation, error) {
	e := BlockEquivocation{Proposer: proposer, Slot: slot}
	if len(v) != evidenceRecordSize {
		return e, fmt.Errorf("evidence record of %d bytes, want %d", len(v), evidenceRecordSize)
	}
	var err error
	if e.First, err = unmarshalHeader(v[:headerStoredSize]); err != nil {
		return e, err
	}
	if e.Second, err = unmarshalHeader(v[headerStoredSize:]); err != nil {
		return e, err
	}
	for _, h := range []Header{e.First, e.Second} {
		if h.Slot != slot || h.Proposer != proposer {
			return e, fmt.Errorf("evidence header for proposer %d slot %d under the key of proposer %d slot %d", h.Proposer, h.Slot, proposer, slot)
		}
	}
	if e.First.Hash() == e.Second.Hash() {
		return e, errors.New("evidence record names the same block twice")
	}
	return e, nil
}

// EquivocationStats counts proposer equivocations seen by this Chain since it
// was opened (for metrics).
type EquivocationStats struct {
	// Recorded is the number of (proposer, slot) pairs whose evidence this
	// process stored (one Warn line each).
	Recorded uint64
	// Refused is the number of equivocating blocks Import refused with
	// ErrEquivocation and did not store: third and later versions of a
	// (proposer, slot) (every copy counts).
	Refused uint64
	// ImportedSecond is the number of second versions Import imported as a
	// side branch (reported with ErrEquivocation all the same).
	ImportedSecond uint64
	// ImportedSynced is the number of equivocating blocks ImportSynced
	// imported all the same.
	ImportedSynced uint64
}

// slotBlock returns the stored header of the first block imported for
// (proposer, slot), if the slot index still holds it (it is pruned up to the
// finalized block's slot).
func (c *Chain) slotBlock(r pebble.Reader, slot uint64, proposer checkpoint.ValidatorIndex) (Header, bool, error) {
	v, ok, err := get(r, slotKey(tagSlot, slot, proposer))
	if err != nil {
		return Header{}, false, c.corrupted("read slot index %d/%d: %s", slot, proposer, oneLine(err))
	}
	if !ok {
		return Header{}, false, nil
	}
	h, err := unmarshalHeader(v)
	if err != nil {
		return Header{}, false, c.corrupted("slot index %d/%d: %s", slot, proposer, err)
	}
	if h.Slot != slot || h.Proposer != proposer {
		return Header{}, false, c.corrupted("slot index %d/%d holds a header of proposer %d slot %d", slot, proposer, h.Proposer, h.Slot)
	}
	return h, true, nil
}

// slotEntry is slotBlock for callers that do not hold c.mu.
func (c *Chain) slotEntry(slot uint64, proposer checkpoint.ValidatorIndex) (Header, bool, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return Header{}, false, ErrClosed
	}
	return c.slotBlock(c.db, slot, proposer)
}

// recordEquivocation stores first and second as the evidence of their
// (proposer, slot) with a synced write, unless evidence for that pair is
// stored already, and returns the pair's evidence record (the stored one, or
// the new one). It logs one Warn line per new record. c.mu is held.
func (c *Chain) recordEquivocation(first, second Header) (BlockEquivocation, error) {
	key := slotKey(tagEvidence, first.Slot, first.Proposer)
	if v, found, err := get(c.db, key); err != nil {
		return BlockEquivocation{}, c.corrupted("read block evidence %d/%d: %s", first.Slot, first.Proposer, oneLine(err))
	} else if found {
		ev, err := unmarshalEvidence(first.Slot, first.Proposer, v)
		if err != nil {
			return BlockEquivocation{}, c.corrupted("block evidence %d/%d: %s", first.Slot, first.Proposer, err)
		}
		return ev, nil
	}
	ev := BlockEquivocation{Proposer: first.Proposer, Slot: first.Slot, First: first, Second: second}
	b := c.db.NewBatch()
	defer b.Close()
	if err := b.Set(key, marshalEvidence(ev), nil); err != nil {
		return BlockEquivocation{}, err
	}
	if err := c.commit(b); err != nil {
		return BlockEquivocation{}, fmt.Errorf("store block evidence for proposer %d slot %d: %w", first.Proposer, first.Slot, err)
	}
	c.equiv.Recorded++
	c.equivocators[first.Proposer] = struct{}{}
	c.log.Warn("Proposer equivocation: two different blocks for one slot; evidence stored",
		zap.Uint32("proposer", uint32(first.Proposer)),
		zap.Uint64("slot", first.Slot),
		zap.Stringer("first", first.Hash()),
		zap.Uint64("first_number", first.Number),
		zap.Stringer("second", second.Hash()),
		zap.Uint64("second_number", second.Number))
	return ev, nil
}

// BlockEvidence returns the stored proposer equivocations with slot >=
// fromSlot, ascending by slot, at most limit of them (and at most
// MaxEvidenceList). Page on with fromSlot = last slot + 1. Evidence is never
// pruned.
func (c *Chain) BlockEvidence(fromSlot uint64, limit int) ([]BlockEquivocation, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, ErrClosed
	}
	limit = min(limit, MaxEvidenceList)
	if limit <= 0 {
		return nil, nil
	}
	it, err := c.db.NewIter(&pebble.IterOptions{
		LowerBound: slotKey(tagEvidence, fromSlot, 0),
		UpperBound: []byte{tagEvidence + 1},
	})
	if err != nil {
		return nil, c.corrupted("scan block evidence: %s", oneLine(err))
	}
	var out []BlockEquivocation
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		k := it.Key()
		if len(k) != 1+8+4 {
			_ = it.Close()
			return nil, c.corrupted("malformed block evidence key %x", k)
		}
		slot := binary.BigEndian.Uint64(k[1:])
		proposer := checkpoint.ValidatorIndex(binary.BigEndian.Uint32(k[9:]))
		ev, err := unmarshalEvidence(slot, proposer, it.Value())
		if err != nil {
			_ = it.Close()
			return nil, c.corrupted("block evidence %d/%d: %s", slot, proposer, err)
		}
		out = append(out, ev)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, c.corrupted("scan block evidence: %s", oneLine(err))
	}
	return out, nil
}

package asf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// forkChoice runs checkpoint.BestChain over tips with justified as the
// required block, reading through r.
func (c *Chain) forkChoice(r pebble.Reader, tips []checkpoint.Tip, justified checkpoint.Checkpoint) (checkpoint.Tip, error) {
	jh, ok := c.height(justified.Number)
	if !ok {
		return checkpoint.Tip{}, fmt.Errorf("%w: checkpoint %d out of range", ErrInvalidCheckpoint, justified.Number)
	}
	var walkErr error
	best, found := checkpoint.BestChain(tips, justified.Hash, func(t checkpoint.Tip, block checkpoint.Hash) bool {
		if walkErr != nil || t.Number < jh {
			return false
		}
		anc, ok, err := c.ancestorAt(r, t.Hash, jh)
		if err != nil {
			walkErr = err
			return false
		}
		return ok && anc == block
	})
	if walkErr != nil {
		return checkpoint.Tip{}, walkErr
	}
	if !found {
		return checkpoint.Tip{}, c.corrupted("no chain tip contains the justified block %s", justified)
	}
	return best, nil
}

// setBest writes into batch the canonical index and best pointer for the new
// best tip and returns its header and the checkpoints of the blocks that
// become canonical, ascending. c.mu is held; the batch's pending writes are
// visible through it.
func (c *Chain) setBest(batch *pebble.Batch, tip checkpoint.Tip) (Header, []checkpoint.Checkpoint, error) {
	type entry struct {
		hash   checkpoint.Hash
		number uint64
	}
	var branch []entry
	var tipHeader Header
	cur := tip.Hash
	for {
		hdr, ok, err := c.header(batch, cur)
		if err != nil {
			return Header{}, nil, err
		}
		if !ok {
			return Header{}, nil, c.corrupted("block %s on the new best chain missing", cur.Short())
		}
		if cur == tip.Hash {
			tipHeader = hdr
		}
		canon, ok, err := c.canonical(batch, hdr.Number)
		if err != nil {
			return Header{}, nil, err
		}
		if ok && canon == cur {
			break
		}
		branch = append(branch, entry{cur, hdr.Number})
		if hdr.Number == 0 {
			return Header{}, nil, c.corrupted("new best chain does not reach the canonical genesis")
		}
		cur = hdr.ParentHash
	}
	for n := tip.Number + 1; n <= c.best.Number; n++ {
		if err := batch.Delete(canonicalKey(n), nil); err != nil {
			return Header{}, nil, err
		}
	}
	var cps []checkpoint.Checkpoint
	for i := len(branch) - 1; i >= 0; i-- {
		e := branch[i]
		if err := batch.Set(canonicalKey(e.number), e.hash[:], nil); err != nil {
			return Header{}, nil, err
		}
		if e.number%c.interval == 0 {
			cps = append(cps, checkpoint.Checkpoint{Number: e.number / c.interval, Hash: e.hash})
		}
	}
	if err := batch.Set(keyBest, tip.Hash[:], nil); err != nil {
		return Header{}, nil, err
	}
	return tipHeader, cps, nil
}

// checkCheckpoint checks that cp names a stored block at the checkpoint
// height that descends from the finalized block. known is false when the
// block is not stored. c.mu is held.
func (c *Chain) checkCheckpoint(cp checkpoint.Checkpoint) (known bool, err error) {
	height, ok := c.height(cp.Number)
	if !ok {
		return false, fmt.Errorf("%w: checkpoint %d out of range", ErrInvalidCheckpoint, cp.Number)
	}
	hdr, ok, err := c.header(c.db, cp.Hash)
	if err != nil || !ok {
		return false, err
	}
	if hdr.Number != height {
		return true, fmt.Errorf("%w: checkpoint %s names block #%d, want #%d", ErrInvalidCheckpoint, cp, hdr.Number, height)
	}
	fh, _ := c.height(c.finalized.Number)
	anc, ok, err := c.ancestorAt(c.db, cp.Hash, fh)
	if err != nil {
		return true, err
	}
	if !ok || anc != c.finalized.Hash {
		return true, fmt.Errorf("%w: checkpoint %s does not descend from finalized %s", ErrConflictsFinalized, cp, c.finalized)
	}
	return true, nil
}

// SetJustified records cp as the latest justified checkpoint and re-runs
// fork choice. It returns the checkpoint blocks that became part of the best
// chain, ascending. A checkpoint not above the current justified one is
// ignored; one at the same number with another hash is ErrInvalidCheckpoint;
// one that does not descend from the finalized block is
// ErrConflictsFinalized. When cp's block is not known yet, cp is remembered
// (in memory) and applied when Import stores that block; nothing is returned
// now.
func (c *Chain) SetJustified(ctx context.Context, cp checkpoint.Checkpoint) ([]checkpoint.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.readOnly {
		return nil, ErrReadOnly
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	return c.setJustifiedLocked(cp)
}

func (c *Chain) setJustifiedLocked(cp checkpoint.Checkpoint) ([]checkpoint.Checkpoint, error) {
	switch {
	case cp.Number < c.justified.Number:
		return nil, nil
	case cp.Number == c.justified.Number && cp.Hash == c.justified.Hash:
		return nil, nil
	case cp.Number == c.justified.Number:
		return nil, fmt.Errorf("%w: %s conflicts with justified %s", ErrInvalidCheckpoint, cp, c.justified)
	}
	known, err := c.checkCheckpoint(cp)
	if err != nil {
		return nil, err
	}
	if !known {
		if c.pendingJustified == nil || cp.Number > c.pendingJustified.Number {
			c.pendingJustified = &cp
			c.log.Debug("Justified checkpoint block not imported yet", zap.Stringer("checkpoint", cp))
		}
		return nil, nil
	}
	batch := c.db.NewIndexedBatch()
	defer batch.Close()
	if err := batch.Set(keyJustified, marshalCheckpoint(cp), nil); err != nil {
		return nil, err
	}
	best, err := c.forkChoice(batch, c.tipList(), cp)
	if err != nil {
		return nil, err
	}
	var cps []checkpoint.Checkpoint
	var newBest Header
	if best.Hash != c.bestHash {
		if newBest, cps, err = c.setBest(batch, best); err != nil {
			return nil, err
		}
	}
	if err := c.commit(batch); err != nil {
		return nil, fmt.Errorf("store justified checkpoint %s: %w", cp, err)
	}
	c.justified = cp
	if p := c.pendingJustified; p != nil && p.Number <= cp.Number {
		c.pendingJustified = nil
	}
	if best.Hash != c.bestHash {
		c.best, c.bestHash = newBest, best.Hash
		c.log.Info("Best chain changed by justification",
			zap.Stringer("justified", cp), zap.Uint64("best", newBest.Number), zap.Stringer("best_hash", best.Hash))
	}
	return cps, nil
}

// SetFinalized marks cp final with a synced write. Finality never moves
// back: a checkpoint below the current finalized one is ignored, one at the
// same number with another hash, or not descending from it, is
// ErrConflictsFinalized. If the justified checkpoint does not descend from
// cp, cp becomes the justified checkpoint. Forks that do not descend from cp
// are pruned, and later imports conflicting with cp are rejected. When cp's
// block is not stored, SetFinalized returns ErrUnknownBlock and remembers cp
// (in memory): Import applies it when the block arrives.
func (c *Chain) SetFinalized(ctx context.Context, cp checkpoint.Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.readOnly {
		return ErrReadOnly
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	_, err := c.setFinalizedLocked(cp, nil)
	return err
}

// SetFinalizedWithProof is SetFinalized that also stores p, the finality
// proof of cp, in the same synced batch (one write instead of
// SetFinalized plus StoreFinalityProof). p is verified in full first with
// the verifier StoreFinalityProof and Open use
// (checkpoint.AuthoritySet.VerifyFinalityProof against the chain spec's
// authority set), and it must finalize cp: otherwise the error wraps
// checkpoint.ErrBadProof and nothing changes, so the chain never stores a
// proof its own Open would refuse. A proof that would lower the stored one
// is not written (the finalization is). When cp's block is not stored, both
// wait for it like SetFinalized.
func (c *Chain) SetFinalizedWithProof(ctx context.Context, cp checkpoint.Checkpoint, p checkpoint.FinalityProof) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.readOnly {
		return ErrReadOnly
	}
	fin, _, err := c.verifyProof(p)
	if err != nil {
		return err
	}
	if fin != cp {
		return fmt.Errorf("%w: proof finalizes %s, not %s", checkpoint.ErrBadProof, fin, cp)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	pc := cloneProof(p)
	_, err = c.setFinalizedLocked(cp, &pc)
	return err
}

// proofCheckpoints returns the checkpoints a verified proof finalizes and
// justifies (those checkpoint.AuthoritySet.VerifyFinalityProof returns).
func proofCheckpoints(p checkpoint.FinalityProof) (fin, just checkpoint.Checkpoint) {
	fin, just = p.Finalizing.Source, p.Finalizing.Target
	if j := p.Justified; j != nil && j.Target.Number > just.Number {
		just = j.Target
	}
	return fin, just
}

// setFinalizedLocked implements SetFinalized (and, with proof, stores the
// proof in the same batch) and returns the checkpoints that became
// canonical if finalization moved the best chain.
func (c *Chain) setFinalizedLocked(cp checkpoint.Checkpoint, proof *checkpoint.FinalityProof) ([]checkpoint.Checkpoint, error) {
	switch {
	case cp.Number < c.finalized.Number:
		return nil, nil
	case cp.Number == c.finalized.Number && cp.Hash == c.finalized.Hash:
		return nil, nil
	case cp.Number == c.finalized.Number:
		return nil, fmt.Errorf("%w: %s at the height of finalized %s", ErrConflictsFinalized, cp, c.finalized)
	}
	known, err := c.checkCheckpoint(cp)
	if err != nil {
		return nil, err
	}
	if !known {
		if c.pendingFinalized == nil || cp.Number > c.pendingFinalized.Number {
			c.pendingFinalized = &cp
			c.pendingProof = proof
		}
		return nil, fmt.Errorf("%w: finalized checkpoint %s (applied when the block is imported)", ErrUnknownBlock, cp)
	}
	fh, _ := c.height(cp.Number)
	justified := c.justified
	if justified.Number <= cp.Number {
		justified = cp
	} else if anc, ok, err := c.ancestorAt(c.db, justified.Hash, fh); err != nil {
		return nil, err
	} else if !ok || anc != cp.Hash {
		c.log.Warn("Justified checkpoint conflicts with the new finalized one; dropping it",
			zap.Stringer("justified", justified), zap.Stringer("finalized", cp))
		justified = cp
	}

	batch := c.db.NewIndexedBatch()
	defer batch.Close()
	if err := batch.Set(keyFinalized, marshalCheckpoint(cp), nil); err != nil {
		return nil, err
	}
	if err := batch.Set(keyJustified, marshalCheckpoint(justified), nil); err != nil {
		return nil, err
	}
	best, err := c.forkChoice(batch, c.tipList(), justified)
	if err != nil {
		return nil, err
	}
	var newBest Header
	var cps []checkpoint.Checkpoint
	if best.Hash != c.bestHash {
		if newBest, cps, err = c.setBest(batch, best); err != nil {
			return nil, err
		}
	}
	pruned, prunedTips, err := c.prune(batch, cp)
	if err != nil {
		return nil, err
	}
	if err := c.pruneSlotIndex(batch, cp); err != nil {
		return nil, err
	}
	statePrunedNext, err := c.pruneStates(batch, fh)
	if err != nil {
		return nil, err
	}
	var stored *storedProof
	if proof != nil {
		fin, just := proofCheckpoints(*proof)
		if s := c.proof; s == nil || fin.Number > s.finalized.Number || (fin == s.finalized && just.Number >= s.justified.Number) {
			enc, err := checkpoint.EncodeFinalityProof(*proof)
			if err != nil {
				return nil, err
			}
			if err := batch.Set(keyFinalProof, enc, nil); err != nil {
				return nil, err
			}
			stored = &storedProof{proof: *proof, finalized: fin, justified: just}
		}
	}
	if err := c.commit(batch); err != nil {
		return nil, fmt.Errorf("store finalized checkpoint %s: %w", cp, err)
	}
	if stored != nil {
		c.proof = stored
	}
	c.finalized, c.justified = cp, justified
	c.slotPruned = c.slotPrunedNext
	c.statePruned = statePrunedNext
	if p := c.pendingJustified; p != nil && p.Number <= justified.Number {
		c.pendingJustified = nil
	}
	if p := c.pendingFinalized; p != nil && p.Number <= cp.Number {
		c.pendingFinalized, c.pendingProof = nil, nil
	}
	if best.Hash != c.bestHash {
		c.best, c.bestHash = newBest, best.Hash
	}
	for _, h := range prunedTips {
		delete(c.tips, h)
	}
	for _, h := range pruned {
		c.headers.remove(h)
	}
	c.log.Debug("Finalized checkpoint",
		zap.Stringer("finalized", cp), zap.Uint64("block", fh), zap.Int("pruned_blocks", len(pruned)))
	return cps, nil
}

// prune deletes (in batch) every fork that does not descend from cp: from
// each such tip back to its first best-chain ancestor. The batch already
// holds the new canonical index.
func (c *Chain) prune(batch *pebble.Batch, cp checkpoint.Checkpoint) (pruned, prunedTips []checkpoint.Hash, err error) {
	fh, _ := c.height(cp.Number)
	for tip := range c.tips {
		anc, ok, err := c.ancestorAt(batch, tip, fh)
		if err != nil {
			return nil, nil, err
		}
		if ok && anc == cp.Hash {
			continue
		}
		prunedTips = append(prunedTips, tip)
		if err := batch.Delete(hashKey(tagTip, tip), nil); err != nil {
			return nil, nil, err
		}
		cur := tip
		for {
			hdr, ok, err := c.header(batch, cur)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				break // already deleted through another fork sharing blocks
			}
			canon, ok, err := c.canonical(batch, hdr.Number)
			if err != nil {
				return nil, nil, err
			}
			if ok && canon == cur {
				break
			}
			for _, tag := range []byte{tagHeader, tagBlock} {
				if err := batch.Delete(hashKey(tag, cur), nil); err != nil {
					return nil, nil, err
				}
			}
			if err := c.exec.Discard(batch, cur); err != nil {
				return nil, nil, fmt.Errorf("discard the state of pruned block %s: %w", cur.Short(), err)
			}
			pruned = append(pruned, cur)
			cur = hdr.ParentHash
		}
	}
	return pruned, prunedTips, nil
}

// pruneSlotIndex deletes (in batch) the slot index up to and including the
// slot of the finalized block cp: every block imported from now on descends
// from it, so its slot is higher.
func (c *Chain) pruneSlotIndex(batch *pebble.Batch, cp checkpoint.Checkpoint) error {
	hdr, ok, err := c.header(batch, cp.Hash)
	if err != nil {
		return err
	}
	if !ok {
		return c.corrupted("finalized block %s missing", cp.Hash.Short())
	}
	// Point deletes of the entries since the previous prune, not one range
	// tombstone per finalization: range tombstones piling up in the
	// memtable make every later read of the chain database slower (they are
	// fragmented on each read), point tombstones do not.
	lower := slotKey(tagSlot, c.slotPruned, 0)
	upper := []byte{tagSlot + 1}
	if hdr.Slot < ^uint64(0) {
		upper = slotKey(tagSlot, hdr.Slot+1, 0)
	}
	it, err := batch.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; valid = it.Next() {
		if err := batch.Delete(slices.Clone(it.Key()), nil); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return c.corrupted("scan slot index: %s", oneLine(err))
	}
	c.slotPrunedNext = hdr.Slot + 1
	return nil
}

// maxStatePrunesPerFinalization bounds the work (and the batch) of one
// finalization; a backlog is pruned over the next finalizations.
const maxStatePrunesPerFinalization = 512

// pruneStates adds (in batch) the pruning of the canonical states of the
// blocks below finalizedHeight - retention, from c.statePruned on, and
// returns the new mark. c.mu is held.
func (c *Chain) pruneStates(batch *pebble.Batch, finalizedHeight uint64) (uint64, error) {
	next := c.statePruned
	if finalizedHeight < c.retention {
		return next, nil
	}
	limit := finalizedHeight - c.retention
	for n := next; n < limit && n-c.statePruned < maxStatePrunesPerFinalization; n++ {
		h, ok, err := c.canonical(batch, n)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, c.corrupted("canonical block #%d below the finalized block missing", n)
		}
		if err := c.exec.Prune(batch, h); err != nil {
			return 0, fmt.Errorf("prune the state of block #%d %s: %w", n, h.Short(), err)
		}
		next = n + 1
	}
	if next != c.statePruned {
		if err := batch.Set(keyStatePruned, u64(next), nil); err != nil {
			return 0, err
		}
	}
	return next, nil
}

// loadStatePruned reads the state pruning mark.
func (c *Chain) loadStatePruned() error {
	v, found, err := get(c.db, keyStatePruned)
	if err != nil {
		return c.corrupted("read the state pruning mark: %s", oneLine(err))
	}
	if !found || len(v) != 8 {
		return c.corrupted("state pruning mark missing or malformed (%d bytes)", len(v))
	}
	c.statePruned = binary.BigEndian.Uint64(v)
	return nil
}

// StatePruned returns the number of the lowest canonical block whose state
// is complete (states below it were pruned).
func (c *Chain) StatePruned() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.statePruned
}

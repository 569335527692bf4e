package asf

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// ImportResult describes the outcome of Import.
type ImportResult struct {
	// Hash and Number identify the block.
	Hash   checkpoint.Hash
	Number uint64
	// NewBest is true when the block became the best block.
	NewBest bool
	// Checkpoints are the checkpoint blocks that became part of the best
	// chain with this import, ascending (after a reorg, all checkpoints of
	// the new branch).
	Checkpoints []checkpoint.Checkpoint
	// AlreadyKnown is true when the block was stored before; nothing changed.
	AlreadyKnown bool
	// Equivocation is true when the block was imported although a different
	// block of its proposer for its slot was imported before: the second
	// version kept by Import as a side branch (Import then also returns an
	// error wrapping ErrEquivocation), or any version imported by
	// ImportSynced (nil error). Such a block must not be relayed.
	Equivocation bool
}

// Import validates b against the chain and stores it with a synced write;
// once Import returns nil the block survives a crash (so does a block
// returned with ImportResult.Equivocation set, see below). The checks, in
// order: a known block returns AlreadyKnown; number >= 1, proposer ==
// authorities[slot mod n], timestamp == genesis + slot*slot_duration,
// timestamp <= now + MaxFutureDrift (ErrFutureBlock), size limits and body
// root, the proposer signature; then one block per authority per slot: when
// a different block of the same proposer and slot was imported before, the
// block equivocates and, the first time for that (proposer, slot), both
// headers are stored as evidence — whether or not the block passes the
// parent checks, since the two signed headers prove the equivocation on
// their own; then the parent must be known (ErrUnknownParent, so the caller
// can sync), number == parent+1, slot > parent slot, and the block must be
// above and descend from the finalized block (ErrConflictsFinalized); last,
// a block that starts a new branch while MaxTips tips exist makes room by
// evicting the tips worth least, or is refused with ErrTipLimit when it is
// worth least itself (see makeRoomForTip). Every rejection but
// ErrUnknownParent, ErrEquivocation and ErrTipLimit wraps ErrInvalidBlock;
// those three mean "ignore it, do not penalize the peer, do not relay".
//
// Import is the path of blocks received by gossip. For an equivocating block
// (proposer, slot) holds at most two versions:
//
//   - the first block imported for the pair is an ordinary block;
//   - the second version — the block named second in the pair's evidence
//     record — is kept as a side branch: when it passes every other check it
//     is stored and imported into the block tree like any block (fork choice
//     may pick it, its children import), and Import returns the filled-in
//     ImportResult with Equivocation set together with an error wrapping
//     ErrEquivocation, so that the caller does not relay it. When it fails a
//     check it is not stored and the error wraps ErrEquivocation as well as
//     ErrUnknownParent or ErrTipLimit (or is the ErrInvalidBlock /
//     ErrConflictsFinalized error alone, as for any block);
//   - a third or later version is refused with ErrEquivocation whatever its
//     parent (an unknown parent is not worth a sync) and not stored.
//
// So the next proposer's child of the second version attaches without a
// sync round. Blocks fetched from a peer's best chain by sync go through
// ImportSynced, which imports any number of versions.
func (c *Chain) Import(ctx context.Context, b Block) (ImportResult, error) {
	return c.importBlock(ctx, b, false)
}

// ImportSynced is Import for blocks fetched by the sync protocol from a
// peer's best chain. It differs in one rule: a block that equivocates
// against a stored block of the same (proposer, slot) is still imported
// (the evidence is stored and counted all the same). An equivocating
// proposer can show each half of the network a different block; the rest of
// the network may build, vote and finalize on the block this node saw
// second, and a node that refused it for good could never follow the chain
// again. The caller must not relay blocks imported this way. The number of
// tips stays bounded (MaxTips) whichever path imports a block.
func (c *Chain) ImportSynced(ctx context.Context, b Block) (ImportResult, error) {
	return c.importBlock(ctx, b, true)
}

func (c *Chain) importBlock(ctx context.Context, b Block, allowEquivocation bool) (ImportResult, error) {
	if err := ctx.Err(); err != nil {
		return ImportResult{}, err
	}
	if c.readOnly {
		return ImportResult{}, ErrReadOnly
	}
	hash := b.Header.Hash()
	res := ImportResult{Hash: hash, Number: b.Header.Number}
	if known, err := c.known(hash); err != nil || known {
		res.AlreadyKnown = known
		return res, err
	}
	if err := c.checkStateless(b); err != nil {
		return res, fmt.Errorf("block #%d %s: %w", b.Header.Number, hash.Short(), err)
	}
	enc, err := EncodeBlock(b)
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return res, ErrClosed
	}
	if _, ok, err := c.header(c.db, hash); err != nil || ok {
		res.AlreadyKnown = ok
		return res, err
	}
	// One block per authority per slot. The signature is verified, so the
	// two headers prove the equivocation whatever the parents are.
	first, indexed, err := c.slotBlock(c.db, b.Header.Slot, b.Header.Proposer)
	if err != nil {
		return res, err
	}
	equivocates := indexed && first.Hash() != hash
	// secondVersion: the block is the one the pair's evidence names second,
	// which the gossip path keeps as a side branch.
	secondVersion := false
	if equivocates {
		ev, err := c.recordEquivocation(first, b.Header)
		if err != nil {
			return res, err
		}
		secondVersion = ev.Second.Hash() == hash
	}
	refuse := equivocates && !allowEquivocation && !secondVersion
	// sideVersion: the second version imported by gossip; every error and
	// the success are reported wrapping ErrEquivocation (do not relay).
	sideVersion := equivocates && !allowEquivocation && secondVersion
	equivocationErr := func() error {
		return fmt.Errorf("block #%d %s: %w: proposer %d signed %s for slot %d",
			b.Header.Number, hash.Short(), ErrEquivocation, b.Header.Proposer, first.Hash().Short(), b.Header.Slot)
	}
	// A block that also breaks a rule against its parent is reported as
	// invalid (an honest peer never relays it); a third or later version
	// whose parent is unknown is not worth a sync.
	if err := c.checkParent(b.Header, hash); err != nil && !(refuse && errors.Is(err, ErrUnknownParent)) {
		if sideVersion && errors.Is(err, ErrUnknownParent) {
			return res, fmt.Errorf("%w: %w", equivocationErr(), err)
		}
		return res, fmt.Errorf("block #%d %s: %w", b.Header.Number, hash.Short(), err)
	}
	if refuse {
		c.equiv.Refused++
		return res, equivocationErr()
	}
	// Last and most expensive: execute the body on the parent's state.
	parentHeader, ok, err := c.header(c.db, b.Header.ParentHash)
	if err != nil {
		return res, err
	}
	if !ok {
		return res, fmt.Errorf("block #%d %s: %w", b.Header.Number, hash.Short(), ErrUnknownParent)
	}
	exec, err := c.exec.Execute(parentHeader, b)
	if err != nil {
		return res, fmt.Errorf("block #%d %s: execute: %w", b.Header.Number, hash.Short(), err)
	}
	if root := exec.Root(); root != b.Header.StateRoot {
		c.stateRootMismatches++
		return res, fmt.Errorf("block #%d %s: %w: the body produces %s, the header says %s",
			b.Header.Number, hash.Short(), ErrBadStateRoot, root.Short(), b.Header.StateRoot.Short())
	}

	batch := c.db.NewIndexedBatch()
	defer batch.Close()
	if err := exec.Write(batch, hash); err != nil {
		return res, fmt.Errorf("block #%d %s: write state: %w", b.Header.Number, hash.Short(), err)
	}
	if err := batch.Set(hashKey(tagHeader, hash), marshalHeader(b.Header), nil); err != nil {
		return res, err
	}
	if err := batch.Set(hashKey(tagBlock, hash), enc, nil); err != nil {
		return res, err
	}
	if !indexed {
		if err := batch.Set(slotKey(tagSlot, b.Header.Slot, b.Header.Proposer), marshalHeader(b.Header), nil); err != nil {
			return res, err
		}
	}
	parent := b.Header.ParentHash
	_, parentIsTip := c.tips[parent]
	if parentIsTip {
		if err := batch.Delete(hashKey(tagTip, parent), nil); err != nil {
			return res, err
		}
	}
	if err := batch.Set(hashKey(tagTip, hash), u64(b.Header.Number), nil); err != nil {
		return res, err
	}
	newTip := checkpoint.Tip{Hash: hash, Number: b.Header.Number, Slot: b.Header.Slot}

	// Fork choice over the tips changes only by the new tip: it is the new
	// best block when it extends the best block, or when it beats the best
	// tip (checkpoint.Tip.Beats) and contains the justified block.
	best := c.bestTip()
	switch {
	case parent == c.bestHash:
		best = newTip
	case newTip.Beats(best):
		jh, _ := c.height(c.justified.Number)
		if anc, ok, err := c.ancestorAt(batch, hash, jh); err != nil {
			return res, err
		} else if ok && anc == c.justified.Hash {
			best = newTip
		}
	}
	var newBest Header
	if best.Hash != c.bestHash {
		if newBest, res.Checkpoints, err = c.setBest(batch, best); err != nil {
			return res, err
		}
		res.NewBest = best.Hash == hash
	}
	// A new branch while MaxTips tips exist: evict the tips worth least, or
	// refuse the block if it is one of them.
	var victims []checkpoint.Tip
	var evicted []checkpoint.Hash
	if !parentIsTip {
		var refuseTip bool
		victims, refuseTip, err = c.makeRoomForTip(batch, newTip, best, allowEquivocation)
		if err != nil {
			return res, err
		}
		if refuseTip {
			c.tipRefused++
			err := fmt.Errorf("block #%d %s: %w (%d tips)", b.Header.Number, hash.Short(), ErrTipLimit, len(c.tips))
			if sideVersion {
				err = fmt.Errorf("%w: %w", equivocationErr(), err)
			}
			return ImportResult{Hash: hash, Number: b.Header.Number}, err
		}
		if len(victims) > 0 {
			keep := []checkpoint.Tip{newTip}
			for _, t := range c.tips {
				if !slices.Contains(victims, t) {
					keep = append(keep, t)
				}
			}
			if evicted, err = c.evictBranches(batch, victims, keep); err != nil {
				return res, err
			}
		}
	}
	if err := c.commit(batch); err != nil {
		return res, fmt.Errorf("store block #%d %s: %w", b.Header.Number, hash.Short(), err)
	}

	// Committed: update the in-memory state.
	if equivocates {
		res.Equivocation = true
		if sideVersion {
			c.equiv.ImportedSecond++
		} else {
			c.equiv.ImportedSynced++
		}
	}
	c.headers.put(hash, b.Header)
	if parentIsTip {
		delete(c.tips, parent)
	}
	c.tips[hash] = newTip
	for _, v := range victims {
		delete(c.tips, v.Hash)
	}
	for _, h := range evicted {
		c.headers.remove(h)
	}
	if len(victims) > 0 {
		c.tipsEvicted += uint64(len(victims))
		c.log.Debug("Evicted chain tips",
			zap.Int("tips", len(victims)), zap.Int("blocks", len(evicted)), zap.Int("remaining", len(c.tips)))
	}
	reorg := false
	if best.Hash != c.bestHash {
		reorg = newBest.ParentHash != c.bestHash
		c.best, c.bestHash = newBest, best.Hash
	}
	if ce := c.log.Check(zap.DebugLevel, fmt.Sprintf("Imported block #%d (%s)", b.Header.Number, hash.Short())); ce != nil {
		ce.Write(
			zap.Uint64("number", b.Header.Number),
			zap.Stringer("hash", hash),
			zap.Uint64("slot", b.Header.Slot),
			zap.Uint32("proposer", uint32(b.Header.Proposer)),
			zap.Int("extrinsics", len(b.Extrinsics)),
			zap.Bool("best", res.NewBest))
	}
	if reorg {
		c.log.Info("Reorganized best chain",
			zap.Uint64("best", c.best.Number), zap.Stringer("best_hash", c.bestHash),
			zap.Int("new_checkpoints", len(res.Checkpoints)))
	}
	if err := c.applyPending(hash, &res); err != nil {
		// The block is stored; only the deferred checkpoint failed.
		c.log.Warn("Applying a deferred checkpoint failed", zap.Stringer("block", hash), zap.Error(err))
	}
	if sideVersion {
		return res, equivocationErr()
	}
	return res, nil
}

// applyPending applies a justified or finalized checkpoint that was set
// before its block (hash) was imported, and folds the checkpoints that
// became canonical into res. c.mu is held.
func (c *Chain) applyPending(hash checkpoint.Hash, res *ImportResult) error {
	var errs []error
	changed := false
	if p := c.pendingJustified; p != nil && p.Hash == hash {
		c.pendingJustified = nil
		cps, err := c.setJustifiedLocked(*p)
		errs = append(errs, err)
		res.Checkpoints = append(res.Checkpoints, cps...)
		changed = true
	}
	if p := c.pendingFinalized; p != nil && p.Hash == hash {
		c.pendingFinalized = nil
		proof := c.pendingProof
		c.pendingProof = nil
		cps, err := c.setFinalizedLocked(*p, proof)
		errs = append(errs, err)
		res.Checkpoints = append(res.Checkpoints, cps...)
		changed = true
	}
	if !changed {
		return nil
	}
	// Keep the checkpoints that are still canonical, ascending, once each.
	kept := res.Checkpoints[:0]
	for _, cp := range res.Checkpoints {
		h, _ := c.height(cp.Number)
		if canon, ok, err := c.canonical(c.db, h); err == nil && ok && canon == cp.Hash && h <= c.best.Number {
			kept = append(kept, cp)
		}
	}
	slices.SortFunc(kept, func(a, b checkpoint.Checkpoint) int { return cmp.Compare(a.Number, b.Number) })
	res.Checkpoints = slices.Compact(kept)
	res.NewBest = c.bestHash == hash
	return errors.Join(errs...)
}

// known reports whether the block is stored.
func (c *Chain) known(h checkpoint.Hash) (bool, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return false, ErrClosed
	}
	_, ok, err := c.header(c.db, h)
	return ok, err
}

// checkStateless runs every check that needs only the spec and the clock,
// the signature last.
func (c *Chain) checkStateless(b Block) error {
	h := b.Header
	if h.Number == 0 {
		return fmt.Errorf("%w: a second genesis block", ErrInvalidBlock)
	}
	if want := ProposerOf(c.spec, h.Slot); h.Proposer != want {
		return fmt.Errorf("%w: proposer %d, slot %d belongs to authority %d", ErrInvalidBlock, h.Proposer, h.Slot, want)
	}
	want, ok := slotTimestampMs(c.spec, h.Slot)
	if !ok {
		return fmt.Errorf("%w: slot %d out of range", ErrInvalidBlock, h.Slot)
	}
	if h.TimestampMs != want {
		return fmt.Errorf("%w: timestamp %d, slot %d starts at %d", ErrInvalidBlock, h.TimestampMs, h.Slot, want)
	}
	if limit := c.clock.Now().Add(c.drift).UnixMilli(); limit < 0 || h.TimestampMs > uint64(limit) {
		return fmt.Errorf("%w: slot %d starts at %s, now is %s", ErrFutureBlock, h.Slot,
			time.UnixMilli(int64(min(h.TimestampMs, 1<<62))).UTC().Format(time.RFC3339Nano), c.clock.Now().UTC().Format(time.RFC3339Nano))
	}
	if err := checkBody(b.Extrinsics); err != nil {
		return err
	}
	if root := BodyRoot(b.Extrinsics); root != h.BodyRoot {
		return fmt.Errorf("%w: body root %s, extrinsics hash to %s", ErrInvalidBlock, h.BodyRoot.Short(), root.Short())
	}
	if !h.VerifySignature(c.keys[h.Proposer]) {
		return fmt.Errorf("%w: bad proposer signature: %w", ErrInvalidBlock, checkpoint.ErrBadSignature)
	}
	return nil
}

// checkParent runs the checks that need the parent and the finalized block.
// c.mu is held.
func (c *Chain) checkParent(h Header, hash checkpoint.Hash) error {
	parent, ok, err := c.header(c.db, h.ParentHash)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w %s", ErrUnknownParent, h.ParentHash.Short())
	}
	if h.Number != parent.Number+1 {
		return fmt.Errorf("%w: number %d, parent is #%d", ErrInvalidBlock, h.Number, parent.Number)
	}
	if h.Slot <= parent.Slot {
		return fmt.Errorf("%w: slot %d not after parent slot %d", ErrInvalidBlock, h.Slot, parent.Slot)
	}
	fh, _ := c.height(c.finalized.Number)
	if h.Number <= fh {
		return fmt.Errorf("%w: block #%d at or below finalized #%d (%s)", ErrConflictsFinalized, h.Number, fh, c.finalized)
	}
	// A parent on the best chain descends from the finalized block; a parent
	// on a fork is checked explicitly.
	if canon, ok, err := c.canonical(c.db, parent.Number); err != nil {
		return err
	} else if !ok || canon != h.ParentHash {
		anc, ok, err := c.ancestorAt(c.db, h.ParentHash, fh)
		if err != nil {
			return err
		}
		if !ok || anc != c.finalized.Hash {
			return fmt.Errorf("%w: does not descend from finalized %s", ErrConflictsFinalized, c.finalized)
		}
	}
	return nil
}

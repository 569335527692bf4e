package checkpointdb

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// cover is the signer set of the stored certificate of one target: a vote of
// a signer for that target is already known (the certificate holds it), so
// StoreVote does not store another one (first vote wins).
type cover struct {
	vote    checkpoint.Vote
	signers map[checkpoint.ValidatorIndex]struct{}
}

func newCover(c checkpoint.Certificate) *cover {
	cv := &cover{vote: c.Vote(), signers: make(map[checkpoint.ValidatorIndex]struct{}, len(c.Signatures))}
	for _, s := range c.Signatures {
		cv.signers[s.Validator] = struct{}{}
	}
	return cv
}

func (c *cover) has(v checkpoint.ValidatorIndex) bool {
	if c == nil {
		return false
	}
	_, ok := c.signers[v]
	return ok
}

// commit applies b and reports a fatal error Pebble recorded meanwhile (a
// failed WAL write or sync makes Pebble call Fatalf and return success).
func (db *CheckpointDB) commit(op string, b *pebble.Batch, opts *pebble.WriteOptions) error {
	if err := db.db.Apply(b, opts); err != nil {
		return storageError(op, err)
	}
	if err := db.plog.Fatal(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// coverLocked returns the certificate cover of target (nil when there is no
// certificate). Caller holds wmu.
func (db *CheckpointDB) coverLocked(target uint64) (*cover, error) {
	if c, ok := db.covers[target]; ok {
		return c, nil
	}
	cert, found, err := db.readCertificate(db.db, target)
	if err != nil {
		return nil, err
	}
	var c *cover
	if found {
		c = newCover(cert)
	}
	db.setCoverLocked(target, c)
	return c, nil
}

func (db *CheckpointDB) setCoverLocked(target uint64, c *cover) {
	if len(db.covers) >= maxCovers {
		clear(db.covers)
	}
	db.covers[target] = c
}

// StoreVote stores a peer (or own) vote keyed by (target number, validator)
// with an unsynced write (durable after the next Flush or synced write). The
// first vote stored for a key is kept: a later vote for the same key, or for
// a validator whose signature is in the stored certificate of the target, is
// ignored without error (conflicts are the gadget's evidence business).
// Votes below the prune base are ignored. The vote's signature is not
// verified here.
func (db *CheckpointDB) StoreVote(ctx context.Context, v checkpoint.SignedVote) error {
	if err := db.begin(ctx, true); err != nil {
		return err
	}
	defer db.life.RUnlock()
	if v.Genesis != db.genesis {
		return fmt.Errorf("store vote: %w", ErrWrongChain)
	}
	if err := v.Validate(); err != nil {
		return fmt.Errorf("store vote: %w", err)
	}
	t := v.Target.Number

	db.wmu.Lock()
	defer db.wmu.Unlock()
	if t < db.base.Base {
		return nil
	}
	cv, err := db.coverLocked(t)
	if err != nil {
		return err
	}
	if cv.has(v.Validator) {
		return nil
	}
	key := voteKey(t, v.Validator)
	tv := db.targets[t]
	if db.trackedLocked(t) && v.Validator < maxTrackedValidator {
		// Above finality the in-memory set is authoritative: no read.
		if tv.has(v.Validator) {
			return nil
		}
	} else {
		found, err := exists(db.db, key)
		if err != nil {
			return storageError("store vote", err)
		}
		if found {
			return nil
		}
	}
	val, err := checkpoint.EncodeVote(v)
	if err != nil {
		return fmt.Errorf("store vote: %w", err)
	}
	b := db.db.NewBatch()
	defer b.Close()
	_ = b.Set(key, val, nil)
	if tv == nil || tv.count == 0 {
		// The first vote of t this process sees: (re)mark the number.
		_ = b.Set(indexKey(t), nil, nil)
	}
	if err := db.commit("store vote", b, pebble.NoSync); err != nil {
		return err
	}
	total := 1
	if db.trackedLocked(t) {
		if tv == nil {
			tv = &targetVotes{}
			db.targets[t] = tv
		}
		tv.add(v.Validator)
		total = tv.count
	}
	if ce := db.log.Check(zap.DebugLevel, "Stored signature"); ce != nil {
		ce.Write(zap.Uint64("checkpoint", t), zap.Uint32("validator", uint32(v.Validator)), zap.Int("total", total))
	}
	return nil
}

// maxTrackedValidator bounds the validator indexes targetVotes tracks; votes
// of higher indexes (no authority set is that large) take the read path.
const maxTrackedValidator = 1 << 12

// targetVotes tracks the stored vote keys of one target above the finalized
// checkpoint: which validators have one (indexes below
// maxTrackedValidator) and how many there are. Open loads it from disk and
// StoreVote keeps it current, so first-vote-wins needs no read for live
// targets. Votes folded into a certificate stay marked (the certificate
// holds them).
type targetVotes struct {
	count int
	seen  []uint64
}

func (tv *targetVotes) has(v checkpoint.ValidatorIndex) bool {
	if tv == nil || int(v/64) >= len(tv.seen) {
		return false
	}
	return tv.seen[v/64]&(1<<(v%64)) != 0
}

func (tv *targetVotes) add(v checkpoint.ValidatorIndex) {
	tv.count++
	if v >= maxTrackedValidator {
		return
	}
	for int(v/64) >= len(tv.seen) {
		tv.seen = append(tv.seen, 0)
	}
	tv.seen[v/64] |= 1 << (v % 64)
}

// trackedLocked reports whether targets[t] is authoritative: t is above the
// finalized checkpoint. Caller holds wmu.
func (db *CheckpointDB) trackedLocked(t uint64) bool {
	return db.finalized == nil || t > db.finalized.Number
}

// checkCertificateShape rejects certificates this database could not read
// back or that would confuse first-vote-wins: wrong chain, bad link, no or
// too many signatures, signers not strictly increasing.
func (db *CheckpointDB) checkCertificateShape(c checkpoint.Certificate) error {
	if c.Genesis != db.genesis {
		return ErrWrongChain
	}
	if err := c.Vote().Validate(); err != nil {
		return err
	}
	if len(c.Signatures) == 0 {
		return fmt.Errorf("%w: certificate without signatures", checkpoint.ErrNoQuorum)
	}
	if len(c.Signatures) > checkpoint.MaxCertificateSignatures {
		return fmt.Errorf("%w: %d certificate signatures", checkpoint.ErrMalformed, len(c.Signatures))
	}
	for i := 1; i < len(c.Signatures); i++ {
		if c.Signatures[i].Validator <= c.Signatures[i-1].Validator {
			return checkpoint.ErrDuplicateSigner
		}
	}
	return nil
}

func checkpointPtr(c checkpoint.Checkpoint) *checkpoint.Checkpoint { return &c }

// higher returns the pointer that wins: proposed when it is above current
// (pointers never move backwards; an equal number keeps current).
func higher(current, proposed *checkpoint.Checkpoint) (*checkpoint.Checkpoint, bool) {
	if proposed == nil || (current != nil && proposed.Number <= current.Number) {
		return current, false
	}
	return checkpointPtr(*proposed), true
}

// mergeSignatures returns the union of the signatures of two certificates of
// the same link, sorted by validator (a's signature wins for a validator in
// both).
func mergeSignatures(a, b checkpoint.Certificate) checkpoint.Certificate {
	out := a
	seen := make(map[checkpoint.ValidatorIndex]bool, len(a.Signatures)+len(b.Signatures))
	out.Signatures = make([]checkpoint.CertSignature, 0, len(a.Signatures)+len(b.Signatures))
	for _, s := range a.Signatures {
		seen[s.Validator] = true
		out.Signatures = append(out.Signatures, s)
	}
	for _, s := range b.Signatures {
		if !seen[s.Validator] {
			seen[s.Validator] = true
			out.Signatures = append(out.Signatures, s)
		}
	}
	slices.SortFunc(out.Signatures, func(x, y checkpoint.CertSignature) int {
		return int(int64(x.Validator) - int64(y.Validator))
	})
	return out
}

// StoreCertificate stores cert (keyed by its target number) and raises the
// justified and finalized pointers when the given ones are higher, in one
// synced batch. Pointers never move backwards: a lower or equal pointer is
// ignored, not an error; nil leaves a pointer unchanged.
//
// A second certificate for the same link is merged into the stored one (the
// union of signers); a certificate for another link of the same target
// number is not stored (the first one wins; the pointers are still applied).
// Votes that the stored certificate contains verbatim are deleted in the
// same batch; reads re-expand them from the certificate. A certificate below
// the prune base is not stored.
func (db *CheckpointDB) StoreCertificate(ctx context.Context, cert checkpoint.Certificate, justified, finalized *checkpoint.Checkpoint) error {
	if err := db.begin(ctx, true); err != nil {
		return err
	}
	defer db.life.RUnlock()
	if err := db.checkCertificateShape(cert); err != nil {
		return fmt.Errorf("store certificate: %w", err)
	}
	t := cert.Target.Number

	db.wmu.Lock()
	locked := true
	defer func() {
		if locked {
			db.wmu.Unlock()
		}
	}()
	b := db.db.NewBatch()
	defer b.Close()

	var stored *checkpoint.Certificate
	if t >= db.base.Base {
		existing, found, err := db.readCertificate(db.db, t)
		if err != nil {
			return err
		}
		switch {
		case !found:
			stored = &cert
		case existing.Vote() == cert.Vote():
			if merged := mergeSignatures(existing, cert); len(merged.Signatures) > len(existing.Signatures) {
				stored = &merged
			}
		default:
			db.log.Warn("Ignored certificate conflicting with the stored one",
				zap.Uint64("checkpoint", t), zap.Stringer("stored", existing.Target), zap.Stringer("ignored", cert.Target))
		}
	}
	if stored != nil {
		val, err := checkpoint.EncodeCertificate(*stored)
		if err != nil {
			return fmt.Errorf("store certificate: %w", err)
		}
		_ = b.Set(certKey(t), val, nil)
		_ = b.Set(indexKey(t), nil, nil)
		// Drop the votes the certificate holds verbatim.
		vote := stored.Vote()
		for _, s := range stored.Signatures {
			key := voteKey(t, s.Validator)
			raw, found, err := getValue(db.db, key)
			if err != nil {
				return storageError("store certificate", err)
			}
			if !found {
				continue
			}
			sv, err := checkpoint.DecodeVote(raw)
			if err != nil {
				return corruptRecord(KeyVote, key, err)
			}
			if sv == (checkpoint.SignedVote{Vote: vote, Validator: s.Validator, Signature: s.Signature}) {
				_ = b.Delete(key, nil)
			}
		}
	}

	db.smu.RLock()
	newJ, jUp := higher(db.justified, justified)
	newF, fUp := higher(db.finalized, finalized)
	db.smu.RUnlock()
	if jUp {
		val, err := checkpoint.EncodeCheckpoint(*newJ)
		if err != nil {
			return fmt.Errorf("store certificate: %w", err)
		}
		_ = b.Set(keyJustified, val, nil)
	}
	if fUp {
		val, err := checkpoint.EncodeCheckpoint(*newF)
		if err != nil {
			return fmt.Errorf("store certificate: %w", err)
		}
		_ = b.Set(keyFinalized, val, nil)
	}
	if b.Empty() {
		return nil
	}
	// Group commit: the batch takes its place in the WAL while wmu is held
	// (so pointer updates stay ordered), but the fsync is waited for after
	// wmu is released, so that concurrent writers (peer votes, other synced
	// batches) are not serialized behind this sync and share it. The caller
	// still returns only once the batch is durable; a failed sync makes
	// Pebble fatal and every later call fail (see commit).
	if err := db.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		_ = b.SyncWait()
		return storageError("store certificate", err)
	}
	db.smu.Lock()
	db.justified, db.finalized = newJ, newF
	db.smu.Unlock()
	if stored != nil {
		db.setCoverLocked(t, newCover(*stored))
	}
	if fUp {
		db.dropBelowLocked(newF.Number)
	}
	db.wmu.Unlock()
	locked = false
	if err := b.SyncWait(); err != nil {
		return storageError("store certificate", err)
	}
	if err := db.plog.Fatal(); err != nil {
		return fmt.Errorf("store certificate: %w", err)
	}
	if fUp {
		// The high-water mark follows the durable pointer before the call
		// returns (never ahead of it: Open refuses a database below it).
		if err := db.raiseFinalizedHWM(*newF); err != nil {
			return fmt.Errorf("store certificate: %w", err)
		}
	}
	if stored != nil {
		db.log.Debug("Stored certificate", zap.Uint64("checkpoint", t), zap.Int("signatures", len(stored.Signatures)))
	}
	if jUp {
		db.log.Debug("Updated last justified checkpoint", zap.Uint64("checkpoint", newJ.Number), zap.Stringer("hash", newJ.Hash))
	}
	if fUp {
		db.log.Debug("Updated last finalized checkpoint", zap.Uint64("checkpoint", newF.Number), zap.Stringer("hash", newF.Hash))
	}
	return nil
}

// dropBelowLocked forgets in-memory counters and covers at or below the
// finalized number. Caller holds wmu.
func (db *CheckpointDB) dropBelowLocked(finalized uint64) {
	for t := range db.targets {
		if t <= finalized {
			delete(db.targets, t)
		}
	}
	for t := range db.covers {
		if t <= finalized {
			delete(db.covers, t)
		}
	}
}

// StoreEvidence persists e (synced), keyed by (e.Checkpoint, e.ID()).
// Storing the same evidence twice is a no-op. Evidence must decode back
// (both votes for vote evidence, a certificate for conflicting finality);
// evidence older than the evidence retention is ignored, except
// conflicting-finality evidence, which is never pruned.
func (db *CheckpointDB) StoreEvidence(ctx context.Context, e checkpoint.Evidence) error {
	if err := db.begin(ctx, true); err != nil {
		return err
	}
	defer db.life.RUnlock()
	val, err := checkpoint.EncodeEvidence(e)
	if err != nil {
		return fmt.Errorf("store evidence: %w", err)
	}
	if _, err := checkpoint.DecodeEvidence(val); err != nil {
		return fmt.Errorf("store evidence: %w", err)
	}
	id := checkpoint.HashOf(val)

	db.wmu.Lock()
	defer db.wmu.Unlock()
	if e.Checkpoint < db.base.EvidenceBase && e.Kind != checkpoint.EvidenceConflictingFinality {
		return nil
	}
	b := db.db.NewBatch()
	defer b.Close()
	_ = b.Set(evidenceKey(e.Checkpoint, id), val, nil)
	if err := db.commit("store evidence", b, pebble.Sync); err != nil {
		return err
	}
	db.log.Info("Stored evidence", zap.Stringer("kind", e.Kind), zap.Uint32("validator", uint32(e.Validator)),
		zap.Uint64("checkpoint", e.Checkpoint), zap.String("id", id.Short()))
	return nil
}

// effective returns the highest target and source a record forbids going
// below, and whether it has any target at all.
func effective(r checkpoint.SignerRecord) (target, source uint64, has bool) {
	target, source, has = r.MinTarget, r.MinSource, r.MinTarget > 0
	if r.Last != nil {
		target = max(target, r.Last.Target.Number)
		source = max(source, r.Last.Source.Number)
		has = true
	}
	return target, source, has
}

// checkRegression refuses a new record that would weaken the stored one.
func checkRegression(old, next checkpoint.SignerRecord) error {
	oT, oS, oHas := effective(old)
	nT, nS, nHas := effective(next)
	switch {
	case oHas && (!nHas || nT < oT):
		return fmt.Errorf("%w: target watermark %d -> %d", ErrSignerRegression, oT, nT)
	case nS < oS:
		return fmt.Errorf("%w: source watermark %d -> %d", ErrSignerRegression, oS, nS)
	case old.Last != nil && next.Last == nil:
		return fmt.Errorf("%w: last signed vote dropped", ErrSignerRegression)
	case old.Last != nil && next.Last.Target.Number == old.Last.Target.Number && *next.Last != *old.Last:
		return fmt.Errorf("%w: a different vote for signed target %d", ErrSignerRegression, old.Last.Target.Number)
	}
	return nil
}

// StoreSignerRecord persists rec with a synced write, then raises the key's
// high-water mark (pwrite + fdatasync), before it returns. It refuses a
// record of another chain (ErrWrongChain) and one that would move the
// stored record of the key backwards (ErrSignerRegression). A failed
// high-water-mark write is returned (and stops the database, ErrFatal).
func (db *CheckpointDB) StoreSignerRecord(ctx context.Context, rec checkpoint.SignerRecord) error {
	if err := db.begin(ctx, true); err != nil {
		return err
	}
	defer db.life.RUnlock()
	if len(rec.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("store signer record: %w: public key is %d bytes", checkpoint.ErrMalformed, len(rec.PublicKey))
	}
	if rec.Genesis != db.genesis {
		return fmt.Errorf("store signer record: %w", ErrWrongChain)
	}
	val, err := checkpoint.EncodeSignerRecord(rec)
	if err != nil {
		return fmt.Errorf("store signer record: %w", err)
	}
	if _, err := checkpoint.DecodeSignerRecord(val); err != nil {
		return fmt.Errorf("store signer record: %w", err)
	}

	db.wmu.Lock()
	defer db.wmu.Unlock()
	old, found, err := db.readSignerRecord(db.db, rec.PublicKey)
	if err != nil {
		return err
	}
	if found {
		if err := checkRegression(old, rec); err != nil {
			return fmt.Errorf("store signer record: %w", err)
		}
	}
	b := db.db.NewBatch()
	defer b.Close()
	_ = b.Set(signerKey(rec.PublicKey), val, nil)
	if err := db.commit("store signer record", b, pebble.Sync); err != nil {
		return err
	}
	if err := db.raiseSignerHWM(rec); err != nil {
		return fmt.Errorf("store signer record: %w", err)
	}
	return nil
}

// Flush makes every earlier write durable: a synced empty WAL record, the
// same barrier a synced write is (not a memtable flush).
func (db *CheckpointDB) Flush(ctx context.Context) error {
	if err := db.begin(ctx, false); err != nil {
		return err
	}
	defer db.life.RUnlock()
	if db.readOnly {
		return nil
	}
	if err := db.db.LogData(nil, pebble.Sync); err != nil {
		return storageError("flush", err)
	}
	if err := db.plog.Fatal(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// Prune keeps exactly the last keep checkpoints at and below the finalized
// checkpoint F — numbers in [F-keep+1, F] — and everything above F; keep < 1
// is taken as 1 (the finalized checkpoint is always kept). Evidence is kept
// while its checkpoint is at least F-EvidenceRetention. It returns how many
// checkpoint numbers that got a vote or certificate were removed (counted
// from small per-number index keys, not by reading the records).
//
// Prune first moves the persisted prune-base marker (synced), then deletes
// with range deletions from the start of each prefix (which also sweeps what
// a crash in the middle of an earlier prune left behind). Reads ignore
// everything below the marker, so a crash at any point leaves a consistent
// store. Its cost depends on the number of pruned checkpoints, not on the
// age of the chain. Signer records are never removed.
func (db *CheckpointDB) Prune(ctx context.Context, keep uint64) (int, error) {
	if err := db.begin(ctx, true); err != nil {
		return 0, err
	}
	defer db.life.RUnlock()
	keep = max(keep, 1)

	db.wmu.Lock()
	defer db.wmu.Unlock()
	db.smu.RLock()
	fin, old := db.finalized, db.base
	db.smu.RUnlock()
	if fin == nil {
		return 0, nil
	}
	next := old
	if fin.Number+1 > keep {
		next.Base = max(old.Base, fin.Number-keep+1)
	}
	if fin.Number > db.evRetention {
		next.EvidenceBase = max(old.EvidenceBase, fin.Number-db.evRetention)
	}
	if next == old {
		return 0, nil
	}
	removed := 0
	if next.Base > old.Base {
		n, err := db.countNumbers(ctx, old.Base, next.Base)
		if err != nil {
			return 0, err
		}
		removed = n
	}

	mb := db.db.NewBatch()
	defer mb.Close()
	_ = mb.Set(keyPruneBase, encodePruneBase(next), nil)
	if err := db.commit("prune: move base", mb, pebble.Sync); err != nil {
		return 0, err
	}
	db.smu.Lock()
	db.base = next
	db.smu.Unlock()
	for t := range db.covers {
		if t < next.Base {
			delete(db.covers, t)
		}
	}
	if db.testAfterPruneMarker != nil {
		db.testAfterPruneMarker()
	}

	if err := db.sweepBelowBase(next); err != nil {
		return 0, err
	}
	db.log.Info("Pruned old checkpoints", zap.Int("count", removed), zap.Uint64("base", next.Base),
		zap.Uint64("finalized", fin.Number), zap.Uint64("evidence_base", next.EvidenceBase))
	return removed, nil
}

// sweepBelowBase range-deletes every vote and certificate below p.Base,
// from the start of each prefix, and deletes every evidence below
// p.EvidenceBase but conflicting-finality evidence (never pruned; evidence
// is rare, so it is read key by key). The deletions need no sync:
// everything they remove is already invisible, and the next open or prune
// deletes it again if a crash loses them.
func (db *CheckpointDB) sweepBelowBase(p pruneBase) error {
	b := db.db.NewBatch()
	defer b.Close()
	if p.Base > 0 {
		_ = b.DeleteRange(prefixStart(prefixVote), voteKey(p.Base, 0), nil)
		_ = b.DeleteRange(prefixStart(prefixCert), certKey(p.Base), nil)
		_ = b.DeleteRange(prefixStart(prefixIndex), indexKey(p.Base), nil)
	}
	if p.EvidenceBase > 0 {
		err := scan(context.Background(), db.db, prefixStart(prefixEvidence), evidenceFrom(p.EvidenceBase), func(k, v []byte) error {
			e, err := checkpoint.DecodeEvidence(v)
			if err != nil {
				return corruptRecord(KeyEvidence, k, err)
			}
			if e.Kind != checkpoint.EvidenceConflictingFinality {
				_ = b.Delete(k, nil)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if b.Empty() {
		return nil
	}
	return db.commit("prune: delete", b, pebble.NoSync)
}

// countNumbers counts the checkpoint numbers in [from, to) that got a vote
// or certificate, from their index keys (a few bytes each: the records
// themselves are not read).
func (db *CheckpointDB) countNumbers(ctx context.Context, from, to uint64) (int, error) {
	it, err := db.db.NewIter(&pebble.IterOptions{LowerBound: indexKey(from), UpperBound: indexKey(to)})
	if err != nil {
		return 0, storageError("prune", err)
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if len(it.Key()) != indexKeyLen {
			_ = it.Close()
			return 0, corruptRecord(KeyIndex, it.Key(), fmt.Errorf("%w: index key of %d bytes", checkpoint.ErrMalformed, len(it.Key())))
		}
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				_ = it.Close()
				return 0, err
			}
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, storageError("prune", err)
	}
	return n, nil
}

// PurgeKeepingSignerRecords deletes every vote, certificate, pointer,
// evidence and the prune base, keeping the meta records, every signer
// record and every halt, in one synced batch (`flare-node purge-chain`).
// The finality history starts anew: the same batch sets the rebuild floor
// to the highest finalized number known (the database's or its high-water
// mark's), so the next Open does not take the purge for lost writes.
func (db *CheckpointDB) PurgeKeepingSignerRecords(ctx context.Context) error {
	if err := db.begin(ctx, true); err != nil {
		return err
	}
	defer db.life.RUnlock()
	db.wmu.Lock()
	defer db.wmu.Unlock()
	b := db.db.NewBatch()
	defer b.Close()
	for _, p := range []byte{prefixVote, prefixCert, prefixPointer, prefixEvidence, prefixPruneBase, prefixIndex} {
		_ = b.DeleteRange(prefixStart(p), prefixUpper(p), nil)
	}
	floor, err := db.readRebuildFloor(db.db)
	if err != nil {
		return err
	}
	db.smu.RLock()
	if db.finalized != nil {
		floor = max(floor, db.finalized.Number)
	}
	db.smu.RUnlock()
	if f := db.hwm.state().finalized; f != nil {
		floor = max(floor, f.Number)
	}
	if floor > 0 {
		db.ensureSchemaLocked(b, 2)
		_ = b.Set(keyRebuildFloor, encodeU64(floor), nil)
	}
	if err := db.commit("purge", b, pebble.Sync); err != nil {
		return err
	}
	if floor > 0 {
		db.schema = max(db.schema, 2)
	}
	db.smu.Lock()
	db.justified, db.finalized, db.base = nil, nil, pruneBase{}
	db.smu.Unlock()
	clear(db.targets)
	clear(db.covers)
	db.log.Info("Purged checkpoint data, signer records kept", zap.String("path", db.path))
	return nil
}

package checkpointdb

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// This file connects the database to its high-water mark (hwm.go): the
// records written when a database is created, the check and the raise at
// the end of Open, the merge of signer records on read, and the accessors.

// initRecords adds to the batch that creates a new database the records a
// fresh store needs beyond its schema version and genesis, and returns the
// schema version to write. A database created next to a high-water mark
// that recorded finality (its directory was replaced, deliberately or not)
// gets a rebuild floor at that finalized number: its own finality history
// starts anew from the chain database and peers, and Open judges it as if
// it were finalized at the floor (it is not behind its high-water mark).
func (db *CheckpointDB) initRecords(b *pebble.Batch) uint32 {
	if f := db.hwm.st.finalized; db.hwm.existed && db.hwm.problem == nil && db.hwm.st.genesis == db.genesis && f != nil {
		_ = b.Set(keyRebuildFloor, encodeU64(f.Number), nil)
		return 2
	}
	return 1
}

// ensureSchemaLocked adds the raise of the stored schema version to b when
// b holds a record only version v defines and the database is older. The
// caller sets db.schema after the batch committed. Caller holds wmu.
func (db *CheckpointDB) ensureSchemaLocked(b *pebble.Batch, v uint32) {
	if db.schema < v {
		_ = b.Set(keySchemaVersion, encodeSchemaVersion(v), nil)
	}
}

// readRebuildFloor reads the rebuild floor (0: none).
func (db *CheckpointDB) readRebuildFloor(r pebble.Reader) (uint64, error) {
	val, found, err := getValue(r, keyRebuildFloor)
	if err != nil || !found {
		return 0, storageError("read rebuild floor", err)
	}
	n, err := decodeU64(val)
	if err != nil {
		return 0, corruptRecord(KeyRebuildFloor, keyRebuildFloor, err)
	}
	return n, nil
}

// reconcileHWM runs at the end of Open, once every record was verified. It
// checks the genesis of the high-water mark (read-only opens whose genesis
// was taken from the database) and refuses a database whose finalized
// checkpoint (or rebuild floor) is below the recorded one. A writable open
// then raises the file to what the database holds (a crash between a
// synced write and its high-water-mark write, a first start, an upgrade, a
// deleted file) and creates it when missing. A read-only open only reports.
func (db *CheckpointDB) reconcileHWM() error {
	h := db.hwm
	check := func() error {
		if h.problem != nil {
			return h.problem
		}
		if !h.existed {
			return nil
		}
		if h.st.genesis != db.genesis {
			return hwmWrongChain(h.path, h.st.genesis, db.genesis)
		}
		floor, err := db.readRebuildFloor(db.db)
		if err != nil {
			return err
		}
		have := floor
		if db.finalized != nil {
			have = max(have, db.finalized.Number)
		}
		if rec := h.st.finalized; rec != nil && have < rec.Number {
			return behindHWM(db.path, h.path, have, rec.Number)
		}
		return nil
	}
	if err := check(); err != nil {
		if !db.readOnly {
			return err
		}
		h.problem = err
		db.log.Warn("High-water mark check failed (read-only open: reported, not refused)", zap.String("path", h.path), zap.Error(err))
		return nil
	}
	recs, err := db.rawSignerRecords(context.Background())
	if err != nil {
		return err
	}
	raisedFinal, raisedKeys := false, 0
	raiseToDB := func(st *hwmState) bool {
		changed := !h.existed
		if changed {
			st.genesis = db.genesis
		}
		if db.finalized != nil && st.raiseFinalized(*db.finalized) {
			changed, raisedFinal = true, true
		}
		for _, r := range recs {
			t, s, _ := effective(r)
			if st.raiseSigner(r.PublicKey, t, s) {
				changed = true
				raisedKeys++
			}
		}
		return changed
	}
	if db.readOnly {
		// Nothing is written: show the merge a writable open would make.
		if h.problem == nil {
			h.mu.Lock()
			raiseToDB(&h.st)
			h.mu.Unlock()
		}
		return nil
	}
	if err := h.raise(raiseToDB); err != nil {
		return fmt.Errorf("open checkpoint database at %s: %w", db.path, err)
	}
	switch {
	case !h.existed && !db.created:
		db.log.Warn("High-water mark file missing; recreated from the checkpoint database", zap.String("path", h.path))
	case h.existed && (raisedFinal || raisedKeys > 0):
		db.log.Info("High-water mark raised to the checkpoint database (a write was interrupted)", zap.String("path", h.path),
			zap.Bool("finalized", raisedFinal), zap.Int("keys", raisedKeys))
	}
	return nil
}

// rawSignerRecords returns the stored signer records, without the
// high-water-mark merge.
func (db *CheckpointDB) rawSignerRecords(ctx context.Context) ([]checkpoint.SignerRecord, error) {
	var out []checkpoint.SignerRecord
	err := scan(ctx, db.db, prefixStart(prefixSigner), prefixUpper(prefixSigner), func(k, v []byte) error {
		if len(k) != signerKeyLen {
			return corruptRecord(KeySignerRecord, k, fmt.Errorf("%w: key length %d", checkpoint.ErrMalformed, len(k)))
		}
		r, err := db.decodeSignerRecord(k, v)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// mergeHWM raises the watermarks of a stored record (or of a key without a
// record) to its high-water mark and logs a warning when the mark was
// ahead: the database lost the key's latest record (a damaged WAL, an older
// copy, a replaced directory).
func (db *CheckpointDB) mergeHWM(pub ed25519.PublicKey, rec checkpoint.SignerRecord, found bool) (checkpoint.SignerRecord, bool) {
	w, ok := db.hwm.signer(pub)
	if !ok {
		return rec, found
	}
	if !found {
		rec = checkpoint.SignerRecord{PublicKey: slices.Clone(pub), Genesis: db.genesis}
	}
	t, s, _ := effective(rec)
	if w.Target <= t && w.Source <= s {
		return rec, true
	}
	db.log.Warn("Signer record behind its high-water mark: watermarks raised to the high-water mark",
		zap.String("public_key", fmt.Sprintf("0x%x", []byte(pub))), zap.Bool("record_found", found),
		zap.Uint64("record_target", t), zap.Uint64("hwm_target", w.Target),
		zap.Uint64("record_source", s), zap.Uint64("hwm_source", w.Source))
	rec.MinTarget = max(rec.MinTarget, w.Target)
	rec.MinSource = max(rec.MinSource, w.Source)
	return rec, true
}

// signer returns the watermark of pub.
func (h *hwmFile) signer(pub ed25519.PublicKey) (SignerWatermark, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st.signer(pub)
}

// raiseSignerHWM raises the high-water mark of rec's key to rec (after its
// synced write). A failure stops the database (ErrFatal): the mark's durable
// state is unknown.
func (db *CheckpointDB) raiseSignerHWM(recs ...checkpoint.SignerRecord) error {
	err := db.hwm.raise(func(st *hwmState) bool {
		changed := false
		for _, r := range recs {
			t, s, _ := effective(r)
			if st.raiseSigner(r.PublicKey, t, s) {
				changed = true
			}
		}
		return changed
	})
	return db.hwmFailed(err)
}

// raiseFinalizedHWM raises the finalized checkpoint of the high-water mark
// (after the synced batch that raised the pointer).
func (db *CheckpointDB) raiseFinalizedHWM(c checkpoint.Checkpoint) error {
	return db.hwmFailed(db.hwm.raise(func(st *hwmState) bool { return st.raiseFinalized(c) }))
}

func (db *CheckpointDB) hwmFailed(err error) error {
	if err == nil {
		return nil
	}
	fatal := fmt.Errorf("%w: %w", ErrFatal, err)
	db.log.Error("High-water mark write failed: checkpoint database stops accepting calls", zap.String("path", db.hwm.path), zap.Error(err))
	db.plog.setFatal(fatal)
	return fatal
}

// HighWaterMark returns the high-water mark as merged by Open: the recorded
// finalized checkpoint and per-key watermarks (never below the database's),
// whether the file existed before this Open, and, for a read-only open, the
// problem a writable open would refuse on.
func (db *CheckpointDB) HighWaterMark() HighWaterMark {
	h := db.hwm
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.st.clone()
	return HighWaterMark{Path: h.path, Existed: h.existed, Finalized: st.finalized, Signers: st.signers, Problem: h.problem}
}

// Created reports whether Open created a brand-new database (no database
// was in the directory). Together with HighWaterMark().Existed it tells a
// new validator (neither existed) from a lost database (the high-water mark
// survived it).
func (db *CheckpointDB) Created() bool { return db.created }

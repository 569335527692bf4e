package checkpointdb

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// Hand-offs (schema version 3, prefix 0x0A) are the certificates that
// finalized the checkpoint at which the next authority set took over, one
// per set, keyed by the set id of the certificate (the outgoing set). Every
// finality proof that crosses a hand-off carries them, so they are never
// pruned (Prune range-deletes only votes, certificates, index keys and
// evidence) and they survive purge-chain like the halts: they are
// finalized facts of this chain, not retained history, and the rebuilt
// history needs the same ones (a peer's proof that carries another
// certificate for a stored set is refused as a conflict). The stored set
// ids are consecutive; they start at whatever set the first stored
// hand-off belongs to (the database does not know the genesis set id).

// decodeHandOffRecord decodes and checks one hand-off record: it must
// decode, be a certificate of this chain with a valid link, finalize its
// source, and belong to the set its key names.
func (db *CheckpointDB) decodeHandOffRecord(key, val []byte) (checkpoint.Certificate, error) {
	k, err := DecodeKey(key)
	if err == nil && k.Kind != KeyHandOff {
		err = fmt.Errorf("%w: %s key", checkpoint.ErrMalformed, k.Kind)
	}
	if err != nil {
		return checkpoint.Certificate{}, corruptRecord(KeyHandOff, key, fmt.Errorf("bad key: %w", err))
	}
	c, err := checkpoint.DecodeCertificate(val)
	if err != nil {
		return c, corruptRecord(KeyHandOff, key, err)
	}
	if c.SetID != k.Number {
		return c, corruptRecord(KeyHandOff, key, fmt.Errorf("%w: hand-off of set %d under the key of set %d", checkpoint.ErrMalformed, c.SetID, k.Number))
	}
	if !c.Finalizes() {
		return c, corruptRecord(KeyHandOff, key, fmt.Errorf("%w: hand-off %s -> %s does not finalize its source", checkpoint.ErrMalformed, c.Source, c.Target))
	}
	if err := db.checkCertificateShape(c); err != nil {
		return c, corruptRecord(KeyHandOff, key, err)
	}
	return c, nil
}

// handOffSeq checks that hand-off records, visited in key order, have
// consecutive set ids.
type handOffSeq struct {
	have bool
	last uint64
}

func (s *handOffSeq) next(key []byte, setID uint64) error {
	if s.have && setID != s.last+1 {
		return corruptRecord(KeyHandOff, key, fmt.Errorf("%w: hand-off of set %d follows the one of set %d (a gap)", checkpoint.ErrMalformed, setID, s.last))
	}
	s.have, s.last = true, setID
	return nil
}

// readHandOffs returns every stored hand-off in set id order; a record that
// does not check or a gap in the set ids is ErrCorrupted.
func (db *CheckpointDB) readHandOffs(ctx context.Context, r pebble.Reader) ([]checkpoint.Certificate, error) {
	var out []checkpoint.Certificate
	var seq handOffSeq
	err := scan(ctx, r, prefixStart(prefixHandOff), prefixUpper(prefixHandOff), func(k, v []byte) error {
		c, err := db.decodeHandOffRecord(k, v)
		if err != nil {
			return err
		}
		if err := seq.next(k, c.SetID); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// handOffBounds returns the lowest and highest stored hand-off set ids (ok
// false when none is stored), reading the two keys only.
func handOffBounds(r pebble.Reader) (first, last uint64, ok bool, err error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefixStart(prefixHandOff), UpperBound: prefixUpper(prefixHandOff)})
	if err != nil {
		return 0, 0, false, storageError("read hand-offs", err)
	}
	setID := func() (uint64, error) {
		k, err := DecodeKey(it.Key())
		if err != nil || k.Kind != KeyHandOff {
			return 0, corruptRecord(KeyHandOff, it.Key(), fmt.Errorf("bad key: %w", errors.Join(err, checkpoint.ErrMalformed)))
		}
		return k.Number, nil
	}
	if it.First() {
		if first, err = setID(); err == nil && it.Last() {
			last, err = setID()
		}
		ok = err == nil
	}
	if ierr := errors.Join(it.Error(), it.Close()); ierr != nil && err == nil {
		err = storageError("read hand-offs", ierr)
	}
	if err != nil {
		return 0, 0, false, err
	}
	return first, last, ok, nil
}

// StoreHandOff persists the hand-off certificate of set cert.SetID (the
// certificate that finalized the checkpoint at which set cert.SetID+1 took
// over) with a synced write, keyed by set id. The certificate must be of
// this chain, well formed and finalizing (target = source + 1), else it is
// refused (checkpoint.ErrMalformed, ErrWrongChain, ...). Storing a
// certificate of the same link (genesis, set id, source, target) as the
// stored one is a no-op, whatever its signatures (the first one is kept);
// another link for a stored set is refused with an error wrapping
// finality.ErrHandOffConflict. The stored set ids stay consecutive: a set
// that is neither stored nor next to the stored ones is refused
// (ErrHandOffGap). The first hand-off of an older-schema database raises its
// schema version to 3 in the same batch. Hand-offs are never pruned and
// survive purge-chain.
func (db *CheckpointDB) StoreHandOff(ctx context.Context, cert checkpoint.Certificate) error {
	if err := db.begin(ctx, true); err != nil {
		return err
	}
	defer db.life.RUnlock()
	if !cert.Finalizes() {
		return fmt.Errorf("store hand-off: %w: certificate %s -> %s does not finalize its source", checkpoint.ErrMalformed, cert.Source, cert.Target)
	}
	if err := db.checkCertificateShape(cert); err != nil {
		return fmt.Errorf("store hand-off: %w", err)
	}
	val, err := checkpoint.EncodeCertificate(cert)
	if err != nil {
		return fmt.Errorf("store hand-off: %w", err)
	}
	if _, err := checkpoint.DecodeCertificate(val); err != nil {
		return fmt.Errorf("store hand-off: %w", err)
	}
	key := handOffKey(cert.SetID)

	db.wmu.Lock()
	defer db.wmu.Unlock()
	old, found, err := getValue(db.db, key)
	if err != nil {
		return storageError("store hand-off", err)
	}
	if found {
		stored, err := db.decodeHandOffRecord(key, old)
		if err != nil {
			return err
		}
		if stored.Vote() == cert.Vote() {
			return nil
		}
		return fmt.Errorf("store hand-off of set %d: %w: stored %s -> %s, given %s -> %s",
			cert.SetID, finality.ErrHandOffConflict, stored.Source, stored.Target, cert.Source, cert.Target)
	}
	first, last, have, err := handOffBounds(db.db)
	if err != nil {
		return err
	}
	next := last < math.MaxUint64 && cert.SetID == last+1
	prev := first > 0 && cert.SetID == first-1
	if have && !next && !prev {
		return fmt.Errorf("store hand-off of set %d: %w: stored sets %d..%d", cert.SetID, ErrHandOffGap, first, last)
	}
	b := db.db.NewBatch()
	defer b.Close()
	db.ensureSchemaLocked(b, 3)
	_ = b.Set(key, val, nil)
	if err := db.commit("store hand-off", b, pebble.Sync); err != nil {
		return err
	}
	db.schema = max(db.schema, 3)
	db.log.Info("Stored hand-off certificate", zap.Uint64("set_id", cert.SetID),
		zap.Stringer("source", cert.Source), zap.Stringer("target", cert.Target), zap.Int("signatures", len(cert.Signatures)))
	return nil
}

// HandOffs returns every stored hand-off certificate in set id order (for
// the operator CLI; Restore returns the same in RestoredState.HandOffs).
func (db *CheckpointDB) HandOffs(ctx context.Context) ([]checkpoint.Certificate, error) {
	if err := db.begin(ctx, false); err != nil {
		return nil, err
	}
	defer db.life.RUnlock()
	return db.readHandOffs(ctx, db.db)
}

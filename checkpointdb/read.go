package checkpointdb

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// --- record decoders: every decode or consistency error is ErrCorrupted ---

func (db *CheckpointDB) decodeVoteRecord(key, val []byte) (checkpoint.SignedVote, error) {
	k, err := DecodeKey(key)
	if err != nil || k.Kind != KeyVote {
		return checkpoint.SignedVote{}, corruptRecord(KeyVote, key, fmt.Errorf("bad key: %w", err))
	}
	v, err := checkpoint.DecodeVote(val)
	if err != nil {
		return v, corruptRecord(KeyVote, key, err)
	}
	switch {
	case v.Target.Number != k.Number || v.Validator != k.Validator:
		return v, corruptRecord(KeyVote, key, fmt.Errorf("%w: vote by %d for %d under the key of another", checkpoint.ErrMalformed, v.Validator, v.Target.Number))
	case v.Genesis != db.genesis:
		return v, corruptRecord(KeyVote, key, checkpoint.ErrWrongChain)
	}
	if err := v.Validate(); err != nil {
		return v, corruptRecord(KeyVote, key, err)
	}
	return v, nil
}

func (db *CheckpointDB) decodeCertRecord(key, val []byte) (checkpoint.Certificate, error) {
	k, err := DecodeKey(key)
	if err != nil || k.Kind != KeyCertificate {
		return checkpoint.Certificate{}, corruptRecord(KeyCertificate, key, fmt.Errorf("bad key: %w", err))
	}
	c, err := checkpoint.DecodeCertificate(val)
	if err != nil {
		return c, corruptRecord(KeyCertificate, key, err)
	}
	if c.Target.Number != k.Number {
		return c, corruptRecord(KeyCertificate, key, fmt.Errorf("%w: certificate for %d under the key of %d", checkpoint.ErrMalformed, c.Target.Number, k.Number))
	}
	if err := db.checkCertificateShape(c); err != nil {
		return c, corruptRecord(KeyCertificate, key, err)
	}
	return c, nil
}

func (db *CheckpointDB) decodeEvidenceRecord(key, val []byte) (checkpoint.Evidence, error) {
	k, err := DecodeKey(key)
	if err != nil || k.Kind != KeyEvidence {
		return checkpoint.Evidence{}, corruptRecord(KeyEvidence, key, fmt.Errorf("bad key: %w", err))
	}
	e, err := checkpoint.DecodeEvidence(val)
	if err != nil {
		return e, corruptRecord(KeyEvidence, key, err)
	}
	if e.Checkpoint != k.Number || checkpoint.HashOf(val) != k.ID {
		return e, corruptRecord(KeyEvidence, key, fmt.Errorf("%w: evidence does not match its key", checkpoint.ErrMalformed))
	}
	return e, nil
}

func (db *CheckpointDB) decodeSignerRecord(key, val []byte) (checkpoint.SignerRecord, error) {
	r, err := checkpoint.DecodeSignerRecord(val)
	if err != nil {
		return r, corruptRecord(KeySignerRecord, key, err)
	}
	if !bytes.Equal(key[1:], r.PublicKey) {
		return r, corruptRecord(KeySignerRecord, key, fmt.Errorf("%w: record of another key", checkpoint.ErrMalformed))
	}
	if r.Genesis != db.genesis {
		return r, corruptRecord(KeySignerRecord, key, checkpoint.ErrWrongChain)
	}
	return r, nil
}

func decodePointer(kind KeyKind, key, val []byte) (*checkpoint.Checkpoint, error) {
	c, err := checkpoint.DecodeCheckpoint(val)
	if err != nil {
		return nil, corruptRecord(kind, key, err)
	}
	return &c, nil
}

// readCertificate reads the certificate of target from r (ignoring the prune
// base).
func (db *CheckpointDB) readCertificate(r pebble.Reader, target uint64) (checkpoint.Certificate, bool, error) {
	key := certKey(target)
	val, found, err := getValue(r, key)
	if err != nil || !found {
		return checkpoint.Certificate{}, false, storageError("read certificate", err)
	}
	c, err := db.decodeCertRecord(key, val)
	return c, err == nil, err
}

func (db *CheckpointDB) readSignerRecord(r pebble.Reader, pub ed25519.PublicKey) (checkpoint.SignerRecord, bool, error) {
	key := signerKey(pub)
	val, found, err := getValue(r, key)
	if err != nil || !found {
		return checkpoint.SignerRecord{}, false, storageError("read signer record", err)
	}
	rec, err := db.decodeSignerRecord(key, val)
	return rec, err == nil, err
}

// view is the pointer and prune-base state of one consistent snapshot.
type view struct {
	justified *checkpoint.Checkpoint
	finalized *checkpoint.Checkpoint
	base      pruneBase
}

// finalNumber returns the finalized number (0 = genesis when none).
func (v view) finalNumber() uint64 {
	if v.finalized == nil {
		return 0
	}
	return v.finalized.Number
}

// above returns n+1 saturated at MaxUint64.
func above(n uint64) uint64 {
	if n == math.MaxUint64 {
		return n
	}
	return n + 1
}

func (db *CheckpointDB) readView(r pebble.Reader) (view, error) {
	var v view
	for _, p := range []struct {
		key  []byte
		kind KeyKind
		dst  **checkpoint.Checkpoint
	}{{keyJustified, KeyJustified, &v.justified}, {keyFinalized, KeyFinalized, &v.finalized}} {
		val, found, err := getValue(r, p.key)
		if err != nil {
			return v, storageError("read pointers", err)
		}
		if found {
			if *p.dst, err = decodePointer(p.kind, p.key, val); err != nil {
				return v, err
			}
		}
	}
	val, found, err := getValue(r, keyPruneBase)
	if err != nil {
		return v, storageError("read prune base", err)
	}
	if found {
		if v.base, err = decodePruneBase(val); err != nil {
			return v, corruptRecord(KeyPruneBase, keyPruneBase, err)
		}
	}
	return v, nil
}

// snapshot starts a consistent read.
func (db *CheckpointDB) snapshot() (*pebble.Snapshot, view, error) {
	snap := db.db.NewSnapshot()
	v, err := db.readView(snap)
	if err != nil {
		_ = snap.Close()
		return nil, v, err
	}
	return snap, v, nil
}

// --- read APIs ---

// LoadSignerRecord returns the record of pub; found is false when the key
// never signed on this database. The watermarks (MinTarget, MinSource) are
// raised to the key's high-water mark when it is ahead of the stored record
// (logged as a warning); a key the high-water mark knows but the database
// lost is returned as found, with only those watermarks. An undecodable
// record is ErrCorrupted.
func (db *CheckpointDB) LoadSignerRecord(ctx context.Context, pub ed25519.PublicKey) (checkpoint.SignerRecord, bool, error) {
	if err := db.begin(ctx, false); err != nil {
		return checkpoint.SignerRecord{}, false, err
	}
	defer db.life.RUnlock()
	if len(pub) != ed25519.PublicKeySize {
		return checkpoint.SignerRecord{}, false, fmt.Errorf("load signer record: %w: public key is %d bytes", checkpoint.ErrMalformed, len(pub))
	}
	rec, found, err := db.readSignerRecord(db.db, pub)
	if err != nil {
		return checkpoint.SignerRecord{}, false, err
	}
	rec, found = db.mergeHWM(pub, rec, found)
	return rec, found, nil
}

// SignerRecords returns every signer record, ordered by public key, merged
// with the high-water mark like LoadSignerRecord (keys only the high-water
// mark knows included).
func (db *CheckpointDB) SignerRecords(ctx context.Context) ([]checkpoint.SignerRecord, error) {
	if err := db.begin(ctx, false); err != nil {
		return nil, err
	}
	defer db.life.RUnlock()
	recs, err := db.rawSignerRecords(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]checkpoint.SignerRecord, 0, len(recs))
	have := make(map[string]bool, len(recs))
	for _, r := range recs {
		have[string(r.PublicKey)] = true
		m, _ := db.mergeHWM(r.PublicKey, r, true)
		out = append(out, m)
	}
	for _, w := range db.hwm.state().signers {
		if !have[string(w.PublicKey)] {
			if m, found := db.mergeHWM(w.PublicKey, checkpoint.SignerRecord{}, false); found {
				out = append(out, m)
			}
		}
	}
	slices.SortFunc(out, func(a, b checkpoint.SignerRecord) int { return bytes.Compare(a.PublicKey, b.PublicKey) })
	return out, nil
}

// readCertificates returns the certificates with target in [from, through],
// ascending, at most limit (limit <= 0: all).
func (db *CheckpointDB) readCertificates(ctx context.Context, r pebble.Reader, from, through uint64, limit int) ([]checkpoint.Certificate, error) {
	if from > through {
		return nil, nil
	}
	var out []checkpoint.Certificate
	errLimit := errors.New("limit")
	err := scan(ctx, r, certKey(from), certThrough(through), func(k, v []byte) error {
		c, err := db.decodeCertRecord(k, v)
		if err != nil {
			return err
		}
		out = append(out, c)
		if limit > 0 && len(out) >= limit {
			return errLimit
		}
		return nil
	})
	if errors.Is(err, errLimit) {
		err = nil
	}
	return out, err
}

// readVotes returns the votes with target in [from, through]: the stored
// ones plus those held by the given certificates (which must be the stored
// certificates of that range), ordered by target and validator, without
// duplicates.
func (db *CheckpointDB) readVotes(ctx context.Context, r pebble.Reader, from, through uint64, certs []checkpoint.Certificate) ([]checkpoint.SignedVote, error) {
	if from > through {
		return nil, nil
	}
	var out []checkpoint.SignedVote
	seen := make(map[checkpoint.SignedVote]struct{})
	err := scan(ctx, r, voteKey(from, 0), voteThrough(through), func(k, v []byte) error {
		sv, err := db.decodeVoteRecord(k, v)
		if err != nil {
			return err
		}
		out = append(out, sv)
		seen[sv] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		if c.Target.Number < from || c.Target.Number > through {
			continue
		}
		for _, sv := range c.SignedVotes() {
			if _, dup := seen[sv]; !dup {
				seen[sv] = struct{}{}
				out = append(out, sv)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b checkpoint.SignedVote) int {
		if c := cmp.Compare(a.Target.Number, b.Target.Number); c != 0 {
			return c
		}
		return cmp.Compare(a.Validator, b.Validator)
	})
	return out, nil
}

// readEvidence returns the evidence about checkpoints at or above from and
// the conflicting-finality evidence of any height (never pruned), ordered by
// checkpoint and id. Evidence below from is rare (conflicting finality, or
// what an interrupted prune left), so the scan from the start of the prefix
// costs little.
func (db *CheckpointDB) readEvidence(ctx context.Context, r pebble.Reader, from uint64) ([]checkpoint.Evidence, error) {
	var out []checkpoint.Evidence
	err := scan(ctx, r, prefixStart(prefixEvidence), prefixUpper(prefixEvidence), func(k, v []byte) error {
		e, err := db.decodeEvidenceRecord(k, v)
		if err != nil {
			return err
		}
		if e.Checkpoint >= from || e.Kind == checkpoint.EvidenceConflictingFinality {
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Restore returns the state the gadget needs at start-up: the pointers, the
// certificates with target at or above the finalized number, the votes with
// target above it (stored ones and those held by those certificates), the
// evidence above it plus every conflicting-finality evidence, every active
// halt and every hand-off certificate (in set id order; a gap in the set
// ids is ErrCorrupted). Every read is a bounded iteration that starts at the
// finalized number, so its cost does not grow with retained history. Every
// record is validated; a bad one is ErrCorrupted, never skipped.
func (db *CheckpointDB) Restore(ctx context.Context) (finality.RestoredState, error) {
	if err := db.begin(ctx, false); err != nil {
		return finality.RestoredState{}, err
	}
	defer db.life.RUnlock()
	snap, v, err := db.snapshot()
	if err != nil {
		return finality.RestoredState{}, err
	}
	defer snap.Close()
	st := finality.RestoredState{Justified: v.justified, Finalized: v.finalized}
	f := v.finalNumber()
	if st.Certificates, err = db.readCertificates(ctx, snap, max(f, v.base.Base), math.MaxUint64, 0); err != nil {
		return finality.RestoredState{}, err
	}
	voteFrom := max(v.base.Base, f)
	if v.finalized != nil {
		voteFrom = max(v.base.Base, above(f))
	}
	if v.finalized == nil || f < math.MaxUint64 {
		if st.Votes, err = db.readVotes(ctx, snap, voteFrom, math.MaxUint64, st.Certificates); err != nil {
			return finality.RestoredState{}, err
		}
		// Evidence above finalized, plus every retained conflicting-finality
		// alarm whatever its height: a halted validator stays halted across
		// restarts until an operator acts. Evidence is rare, so this scan
		// does not grow with retained votes or certificates.
		all, err := db.readEvidence(ctx, snap, v.base.EvidenceBase)
		if err != nil {
			return finality.RestoredState{}, err
		}
		for _, e := range all {
			if e.Checkpoint >= voteFrom || e.Kind == checkpoint.EvidenceConflictingFinality {
				st.Evidence = append(st.Evidence, e)
			}
		}
	}
	if st.Halts, err = db.readHalts(ctx, snap); err != nil {
		return finality.RestoredState{}, err
	}
	if st.HandOffs, err = db.readHandOffs(ctx, snap); err != nil {
		return finality.RestoredState{}, err
	}
	return st, nil
}

// Certificate returns the stored certificate with target number; found is
// false when there is none (or it was pruned).
func (db *CheckpointDB) Certificate(ctx context.Context, number uint64) (checkpoint.Certificate, bool, error) {
	if err := db.begin(ctx, false); err != nil {
		return checkpoint.Certificate{}, false, err
	}
	defer db.life.RUnlock()
	snap, v, err := db.snapshot()
	if err != nil {
		return checkpoint.Certificate{}, false, err
	}
	defer snap.Close()
	if number < v.base.Base {
		return checkpoint.Certificate{}, false, nil
	}
	return db.readCertificate(snap, number)
}

// Certificates returns the stored certificates with target number in
// [from, to], ascending, at most limit of them (limit <= 0: no limit).
func (db *CheckpointDB) Certificates(ctx context.Context, from, to uint64, limit int) ([]checkpoint.Certificate, error) {
	if err := db.begin(ctx, false); err != nil {
		return nil, err
	}
	defer db.life.RUnlock()
	snap, v, err := db.snapshot()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	return db.readCertificates(ctx, snap, max(from, v.base.Base), to, limit)
}

// Votes returns the votes with target number = number, ordered by
// validator: the stored votes and the signatures of the stored certificate
// of that number, without duplicates (a validator with a stored vote that
// differs from its certificate signature appears twice).
func (db *CheckpointDB) Votes(ctx context.Context, number uint64) ([]checkpoint.SignedVote, error) {
	if err := db.begin(ctx, false); err != nil {
		return nil, err
	}
	defer db.life.RUnlock()
	snap, v, err := db.snapshot()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	if number < v.base.Base {
		return nil, nil
	}
	return db.votesAt(ctx, snap, number)
}

func (db *CheckpointDB) votesAt(ctx context.Context, r pebble.Reader, number uint64) ([]checkpoint.SignedVote, error) {
	var certs []checkpoint.Certificate
	c, found, err := db.readCertificate(r, number)
	if err != nil {
		return nil, err
	}
	if found {
		certs = append(certs, c)
	}
	return db.readVotes(ctx, r, number, number, certs)
}

// Evidence returns all retained evidence, ordered by checkpoint number and
// id.
func (db *CheckpointDB) Evidence(ctx context.Context) ([]checkpoint.Evidence, error) {
	if err := db.begin(ctx, false); err != nil {
		return nil, err
	}
	defer db.life.RUnlock()
	snap, v, err := db.snapshot()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	return db.readEvidence(ctx, snap, v.base.EvidenceBase)
}

// Pointers returns the justified and finalized checkpoints (nil: none beyond
// genesis), read together.
func (db *CheckpointDB) Pointers(ctx context.Context) (justified, finalized *checkpoint.Checkpoint, err error) {
	if err := db.begin(ctx, false); err != nil {
		return nil, nil, err
	}
	defer db.life.RUnlock()
	snap, v, err := db.snapshot()
	if err != nil {
		return nil, nil, err
	}
	_ = snap.Close()
	return v.justified, v.finalized, nil
}

// Level is a checkpoint's place on the ascending scale of finality
// (checkpoint.Level).
type Level = checkpoint.Level

// Levels, lowest first.
const (
	LevelNone          = checkpoint.LevelNone
	LevelPreCommitment = checkpoint.LevelPreCommitment
	LevelCommitment    = checkpoint.LevelCommitment
	LevelFinality      = checkpoint.LevelFinality
)

// CheckpointStatus is what the database knows about one checkpoint number.
type CheckpointStatus struct {
	Number uint64
	Level  Level
	// Weight is the number of distinct validators seen voting for Hash.
	Weight int
	// Hash is the checkpoint's hash: the finalized or justified pointer's
	// when it is at Number, else the certificate's, else the best-supported
	// target hash of the votes (zero when unknown, e.g. pruned).
	Hash           checkpoint.Hash
	HasCertificate bool
}

// Status reports the finality level of checkpoint number (see Level), with
// quorum the vote count that justifies a link (quorum <= 0: only
// certificates and the justified pointer count). Numbers below the prune
// base have no votes left; they are LevelFinality when at or below the
// finalized checkpoint.
func (db *CheckpointDB) Status(ctx context.Context, number uint64, quorum int) (CheckpointStatus, error) {
	st := CheckpointStatus{Number: number}
	if err := db.begin(ctx, false); err != nil {
		return st, err
	}
	defer db.life.RUnlock()
	snap, v, err := db.snapshot()
	if err != nil {
		return st, err
	}
	defer snap.Close()

	var cert checkpoint.Certificate
	var votes []checkpoint.SignedVote
	if number >= v.base.Base {
		if cert, st.HasCertificate, err = db.readCertificate(snap, number); err != nil {
			return st, err
		}
		if votes, err = db.votesAt(ctx, snap, number); err != nil {
			return st, err
		}
	}
	byHash := make(map[checkpoint.Hash]map[checkpoint.ValidatorIndex]struct{})
	byLink := make(map[checkpoint.Link]map[checkpoint.ValidatorIndex]struct{})
	for _, sv := range votes {
		add := func(m map[checkpoint.ValidatorIndex]struct{}) map[checkpoint.ValidatorIndex]struct{} {
			if m == nil {
				m = make(map[checkpoint.ValidatorIndex]struct{})
			}
			m[sv.Validator] = struct{}{}
			return m
		}
		byHash[sv.Target.Hash] = add(byHash[sv.Target.Hash])
		byLink[sv.Link()] = add(byLink[sv.Link()])
	}
	bestLink := 0
	for _, m := range byLink {
		bestLink = max(bestLink, len(m))
	}
	for h, m := range byHash {
		if len(m) > st.Weight || (len(m) == st.Weight && h.Less(st.Hash)) {
			st.Weight, st.Hash = len(m), h
		}
	}
	if st.HasCertificate {
		st.Hash = cert.Target.Hash
	}
	justifiedHere := v.justified != nil && v.justified.Number == number
	if justifiedHere {
		st.Hash = v.justified.Hash
	}
	finalizedHere := v.finalized != nil && v.finalized.Number == number
	if finalizedHere {
		st.Hash = v.finalized.Hash
	}
	st.Weight = len(byHash[st.Hash])

	switch {
	case v.finalized != nil && number <= v.finalized.Number:
		st.Level = LevelFinality
	case st.HasCertificate || justifiedHere || (quorum > 0 && bestLink >= quorum):
		st.Level = LevelCommitment
	case len(votes) > 0:
		st.Level = LevelPreCommitment
	default:
		st.Level = LevelNone
	}
	return st, nil
}

// Stats is a cheap summary from Pebble's metrics and the cached state (no
// scans).
type Stats struct {
	Path     string
	ReadOnly bool
	Closed   bool
	// DiskUsageBytes is Pebble's estimate of all its files (sstables, WAL,
	// MANIFEST, blob files).
	DiskUsageBytes uint64
	SSTableBytes   int64
	SSTables       int64
	WALBytes       uint64
	MemTableBytes  uint64
	// LiveKeysEstimate is entries minus deletions over the sstables whose
	// statistics are loaded; keys still in the memtable are not counted.
	LiveKeysEstimate uint64
	// OldestRetained is the prune base: the lowest checkpoint number whose
	// votes and certificate are kept.
	OldestRetained uint64
	// EvidenceBase is the lowest checkpoint number whose evidence is kept.
	EvidenceBase uint64
	Justified    *checkpoint.Checkpoint
	Finalized    *checkpoint.Checkpoint
	Flushes      int64
	Compactions  int64
	ReadAmp      int
	// Fatal is the recorded fatal storage error, if any.
	Fatal error
}

// Stats returns a summary of the database.
func (db *CheckpointDB) Stats() Stats {
	s := Stats{Path: db.path, ReadOnly: db.readOnly}
	db.life.RLock()
	defer db.life.RUnlock()
	if db.closed {
		s.Closed = true
		return s
	}
	m := db.db.Metrics()
	total := m.Total()
	s.DiskUsageBytes = m.DiskSpaceUsage()
	s.SSTableBytes = total.TablesSize
	s.SSTables = total.TablesCount
	s.WALBytes = m.WAL.PhysicalSize
	s.MemTableBytes = m.MemTable.Size
	s.Flushes = m.Flush.Count
	s.Compactions = m.Compact.Count
	s.ReadAmp = m.ReadAmp()
	if levels, err := db.db.SSTables(); err == nil {
		for _, level := range levels {
			for _, t := range level {
				if t.TableStats.NumEntries > t.TableStats.NumDeletions {
					s.LiveKeysEstimate += t.TableStats.NumEntries - t.TableStats.NumDeletions
				}
			}
		}
	}
	db.smu.RLock()
	s.OldestRetained, s.EvidenceBase = db.base.Base, db.base.EvidenceBase
	if db.justified != nil {
		s.Justified = checkpointPtr(*db.justified)
	}
	if db.finalized != nil {
		s.Finalized = checkpointPtr(*db.finalized)
	}
	db.smu.RUnlock()
	s.Fatal = db.plog.Fatal()
	return s
}

// Verify reads and validates every retained record (Pebble checksums of
// every block read, every value decoded and checked against its key). Open
// runs it; `flare-node checkpoints verify` can run it on a stopped node.
func (db *CheckpointDB) Verify(ctx context.Context) error {
	if err := db.begin(ctx, false); err != nil {
		return err
	}
	defer db.life.RUnlock()
	return db.verify(ctx, false)
}

// verify scans the whole keyspace of a snapshot; with load it also loads the
// cached state (pointers, prune base, vote counters).
func (db *CheckpointDB) verify(ctx context.Context, load bool) error {
	snap, v, err := db.snapshot()
	if err != nil {
		return err
	}
	defer snap.Close()
	f := v.finalNumber()
	targets := make(map[uint64]*targetVotes)
	leftovers := 0
	var handOffs handOffSeq
	err = scan(ctx, snap, nil, nil, func(key, val []byte) error {
		k, err := DecodeKey(key)
		if err != nil {
			return corruptRecord(KeyUnknown, key, err)
		}
		switch k.Kind {
		case KeySchemaVersion, KeyGenesis, KeyJustified, KeyFinalized, KeyPruneBase:
			// Read and checked by initMeta and readView.
		case KeyRebuildFloor:
			if _, err := decodeU64(val); err != nil {
				return corruptRecord(KeyRebuildFloor, key, err)
			}
		case KeyHalt:
			_, err = db.decodeHaltRecord(key, val)
		case KeyHandOff:
			var c checkpoint.Certificate
			if c, err = db.decodeHandOffRecord(key, val); err == nil {
				err = handOffs.next(key, c.SetID)
			}
		case KeySignerRecord:
			_, err = db.decodeSignerRecord(key, val)
		case KeyVote:
			if k.Number < v.base.Base {
				leftovers++
				break
			}
			_, err = db.decodeVoteRecord(key, val)
			if k.Number > f || v.finalized == nil {
				tv := targets[k.Number]
				if tv == nil {
					tv = &targetVotes{}
					targets[k.Number] = tv
				}
				tv.add(k.Validator)
			}
		case KeyCertificate:
			if k.Number < v.base.Base {
				leftovers++
				break
			}
			_, err = db.decodeCertRecord(key, val)
		case KeyIndex:
			if k.Number < v.base.Base {
				leftovers++
				break
			}
			if len(val) != 0 {
				err = corruptRecord(KeyIndex, key, fmt.Errorf("%w: index value of %d bytes", checkpoint.ErrMalformed, len(val)))
			}
		case KeyEvidence:
			var e checkpoint.Evidence
			e, err = db.decodeEvidenceRecord(key, val)
			if err == nil && k.Number < v.base.EvidenceBase && e.Kind != checkpoint.EvidenceConflictingFinality {
				leftovers++
			}
		}
		if err == nil && schemaOf(k.Kind) > db.schema {
			err = corruptRecord(k.Kind, key, fmt.Errorf("%w: a schema version %d record in a version %d database", checkpoint.ErrMalformed, schemaOf(k.Kind), db.schema))
		}
		return err
	})
	if err != nil {
		return err
	}
	if load {
		db.justified, db.finalized, db.base = v.justified, v.finalized, v.base
		db.targets = targets
		if leftovers > 0 && !db.readOnly {
			// An interrupted prune moved the base but did not delete.
			if err := db.sweepBelowBase(v.base); err != nil {
				return err
			}
			db.log.Info("Removed records left below the prune base by an interrupted prune",
				zap.Int("records", leftovers), zap.Uint64("base", v.base.Base))
		}
	}
	return nil
}

// OldestRetained is the prune base: the lowest checkpoint number whose
// votes and certificate are kept (cheap; for answering peers).
func (db *CheckpointDB) OldestRetained() uint64 {
	db.smu.RLock()
	defer db.smu.RUnlock()
	return db.base.Base
}

// VotesByValidator returns the votes of validator with target number at
// least from (and not below the prune base), in increasing target order, at
// most limit of them (limit <= 0: none): its stored votes and its
// signatures in the stored certificates, without duplicates (a stored vote
// that differs from the validator's signature in the certificate of the
// same target appears next to it). It implements engine.VoteSource: a
// fresh or restarted signer record learns its key's past from peers'
// answers. The votes are found with one seek per target that has a stored
// vote and one read per stored certificate, never beyond the limit-th vote.
func (db *CheckpointDB) VotesByValidator(ctx context.Context, validator checkpoint.ValidatorIndex, from uint64, limit int) ([]checkpoint.SignedVote, error) {
	if err := db.begin(ctx, false); err != nil {
		return nil, err
	}
	defer db.life.RUnlock()
	if limit <= 0 {
		return nil, nil
	}
	snap, v, err := db.snapshot()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	from = max(from, v.base.Base)
	stored, err := db.validatorVotes(ctx, snap, validator, from, limit)
	if err != nil {
		return nil, err
	}
	// Certificate votes beyond the limit-th stored vote cannot be among the
	// first limit votes.
	through := uint64(math.MaxUint64)
	if len(stored) == limit {
		through = stored[limit-1].Target.Number
	}
	var fromCerts []checkpoint.SignedVote
	errLimit := errors.New("limit")
	err = scan(ctx, snap, certKey(from), certThrough(through), func(k, val []byte) error {
		c, err := db.decodeCertRecord(k, val)
		if err != nil {
			return err
		}
		i, found := slices.BinarySearchFunc(c.Signatures, validator, func(s checkpoint.CertSignature, v checkpoint.ValidatorIndex) int {
			return cmp.Compare(s.Validator, v)
		})
		if !found {
			return nil
		}
		fromCerts = append(fromCerts, checkpoint.SignedVote{Vote: c.Vote(), Validator: validator, Signature: c.Signatures[i].Signature})
		if len(fromCerts) >= limit {
			return errLimit
		}
		return nil
	})
	if err != nil && !errors.Is(err, errLimit) {
		return nil, err
	}
	out := make([]checkpoint.SignedVote, 0, min(limit, len(stored)+len(fromCerts)))
	seen := make(map[checkpoint.SignedVote]struct{}, len(stored))
	for _, sv := range stored {
		seen[sv] = struct{}{}
		out = append(out, sv)
	}
	for _, sv := range fromCerts {
		if _, dup := seen[sv]; !dup {
			out = append(out, sv)
		}
	}
	slices.SortStableFunc(out, func(a, b checkpoint.SignedVote) int { return cmp.Compare(a.Target.Number, b.Target.Number) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// validatorVotes returns the stored votes (not those of certificates) of
// validator with target >= from, ascending, at most limit: the vote keys
// are ordered by target then validator, so it seeks to (target, validator)
// for each target that has a vote.
func (db *CheckpointDB) validatorVotes(ctx context.Context, r pebble.Reader, validator checkpoint.ValidatorIndex, from uint64, limit int) ([]checkpoint.SignedVote, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: voteKey(from, 0), UpperBound: prefixUpper(prefixVote)})
	if err != nil {
		return nil, storageError("iterate", err)
	}
	var out []checkpoint.SignedVote
	fail := func(err error) ([]checkpoint.SignedVote, error) {
		_ = it.Close()
		return nil, err
	}
	steps := 0
	for valid := it.SeekGE(voteKey(from, validator)); valid && len(out) < limit; {
		if steps++; steps%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return fail(err)
			}
		}
		k, err := DecodeKey(it.Key())
		if err != nil || k.Kind != KeyVote {
			return fail(corruptRecord(KeyVote, it.Key(), fmt.Errorf("bad key: %w", err)))
		}
		switch {
		case k.Validator < validator:
			valid = it.SeekGE(voteKey(k.Number, validator))
			continue
		case k.Validator == validator:
			val, err := it.ValueAndErr()
			if err != nil {
				return fail(storageError("read value", err))
			}
			sv, err := db.decodeVoteRecord(it.Key(), val)
			if err != nil {
				return fail(err)
			}
			out = append(out, sv)
		}
		if k.Number == math.MaxUint64 {
			break
		}
		valid = it.SeekGE(voteKey(k.Number+1, validator))
	}
	if err := it.Error(); err != nil {
		return fail(storageError("iterate", err))
	}
	return out, storageError("close iterator", it.Close())
}

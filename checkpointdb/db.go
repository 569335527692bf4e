package checkpointdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/internal/storagefault"
)

// DefaultEvidenceRetention is the number of checkpoints evidence is kept
// beyond the checkpoint it is about when Options.EvidenceRetention is 0.
const DefaultEvidenceRetention uint64 = 10000

// Options configures Open.
type Options struct {
	// FS is the file system; nil means vfs.Default (disk). Tests use
	// vfs.NewMem or vfs.NewCrashableMem.
	FS vfs.FS
	// Genesis is the chain identity. It is stored (synced) on first open; a
	// database of another genesis refuses to open with ErrWrongChain. With
	// ReadOnly, the zero hash accepts whatever genesis is stored (inspection
	// tools that do not know the chain).
	Genesis checkpoint.Hash
	// Logger receives this package's log lines (named "checkpointdb") and
	// Pebble's (named "checkpointdb.pebble"); nil means zap.NewNop(). Pebble's
	// default logger is never used.
	Logger *zap.Logger
	// ReadOnly opens an existing database without writing to it (for
	// `flare-node checkpoints list|show` while the node is stopped). Writes
	// return ErrReadOnly.
	ReadOnly bool
	// EvidenceRetention is how many checkpoints evidence is kept beyond the
	// checkpoint it is about, counted against the finalized checkpoint
	// (0 = DefaultEvidenceRetention).
	EvidenceRetention uint64
}

// CheckpointDB is the Pebble-backed checkpoint database of one chain. It
// implements finality.CheckpointStorage (see its durability contract) and
// the read APIs of the node and the `checkpoints` CLI. It is safe for
// concurrent use.
type CheckpointDB struct {
	path        string
	fs          vfs.FS
	genesis     checkpoint.Hash
	readOnly    bool
	evRetention uint64
	log         *zap.Logger
	plog        *pebbleLogger
	db          *pebble.DB
	lock        *pebble.Lock
	hwm         *hwmFile // the high-water mark next to the directory (hwm.go)
	created     bool     // Open created the database
	schema      uint32   // stored schema version; raised under wmu
	// healthCloser stops the disk-health checks of the file system Pebble
	// uses (closed after Pebble).
	healthCloser io.Closer

	// life is read-held by every call and write-held by Close, so Close
	// waits for calls in flight and later calls see closed.
	life   sync.RWMutex
	closed bool

	// wmu serializes writers: every read-modify-write (first vote wins,
	// monotonic pointers, signer-record regression check, prune base) runs
	// under it. The fields below it are guarded by wmu.
	wmu     sync.Mutex
	targets map[uint64]*targetVotes // stored vote keys per target above finalized
	covers  map[uint64]*cover       // certificate signer sets by target; nil entry = no certificate

	// smu guards the cached durable state, written under wmu after a
	// successful commit and read by Stats.
	smu       sync.RWMutex
	justified *checkpoint.Checkpoint
	finalized *checkpoint.Checkpoint
	base      pruneBase

	// testAfterPruneMarker, when set, runs after Prune persisted the new
	// prune base and before it deletes (crash tests).
	testAfterPruneMarker func()
}

var _ finality.CheckpointStorage = (*CheckpointDB)(nil)

// blockCacheSize is Pebble's block cache. Twice Pebble's default: with 8 MiB,
// flushes and compactions of a busy vote stream evict the index and filter
// blocks that point reads of late votes need (4x slower ingest measured).
const blockCacheSize = 16 << 20

// maxCovers bounds the certificate-cover cache.
const maxCovers = 4096

// dirState is what Open found in the directory before opening Pebble.
type dirState struct {
	exists  bool
	hasData bool // sstables or a non-empty WAL: a database with content
	hasSST  bool // sstables: the schema version was written (and flushed)
}

func inspectDir(fs vfs.FS, path string) (dirState, error) {
	names, err := fs.List(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return dirState{}, nil
		}
		return dirState{}, err
	}
	st := dirState{exists: true}
	for _, n := range names {
		switch {
		case strings.HasSuffix(n, ".sst"), strings.HasSuffix(n, ".blob"):
			st.hasData, st.hasSST = true, true
		case strings.HasSuffix(n, ".log"):
			if fi, err := fs.Stat(fs.PathJoin(path, n)); err != nil || fi.Size() > 0 {
				st.hasData = true
			}
		}
	}
	return st, nil
}

// isLockHeld reports whether err of pebble.LockDirectory means that another
// process (or another open in this process) holds the lock. A failure to
// create or open the LOCK file itself (an *fs.PathError: permission denied,
// a read-only file system) is not: fcntl(F_SETLK) reports a held lock as a
// bare EAGAIN or EACCES.
func isLockHeld(err error) bool {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return false
	}
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EWOULDBLOCK) ||
		strings.Contains(err.Error(), "lock held")
}

// Open is OpenContext with a context that is never done.
func Open(path string, opts Options) (*CheckpointDB, error) {
	return OpenContext(context.Background(), path, opts)
}

// OpenContext opens (creating it unless opts.ReadOnly) the checkpoint
// database at path. On first open it writes the schema version and genesis
// hash with a synced write. It refuses, with a one-line error that says what
// to do, a database of another chain (ErrWrongChain), of an unknown schema
// version (ErrSchemaVersion), a corrupted one (ErrCorrupted: Pebble
// corruption or any undecodable or inconsistent record; Open reads and
// validates every retained record), and a directory held by another process
// (ErrLocked).
//
// A directory this process may not write to is refused before anything is
// created (the error wraps fs.ErrPermission or syscall.EROFS). A storage
// fault during the open (a failed flush, a full disk, an I/O error: Pebble
// retries those forever) ends it with an error wrapping ErrFatal and the
// cause; when ctx is done first, OpenContext returns ctx's error. In both
// cases the error wraps storagefault.ErrAbandoned when Pebble's open was
// still running: it is left to finish (or hang) on its goroutine and closed
// when it returns.
func OpenContext(ctx context.Context, path string, opts Options) (*CheckpointDB, error) {
	start := time.Now()
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("checkpointdb")
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	evRetention := opts.EvidenceRetention
	if evRetention == 0 {
		evRetention = DefaultEvidenceRetention
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log.Info("Opening checkpoint database at "+path, zap.String("path", path), zap.Bool("read_only", opts.ReadOnly))

	plog := newPebbleLogger(log.Named("pebble"))
	abandonedOpens.Add(1)
	db, err := storagefault.Open(ctx, plog.stuck, func() (*CheckpointDB, error) {
		return open(path, opts, fs, log, plog, evRetention)
	}, func(db *CheckpointDB, err error) {
		if err == nil {
			_ = db.Close()
		}
		abandonedOpens.Done()
	})
	if !errors.Is(err, storagefault.ErrAbandoned) {
		abandonedOpens.Done()
	} else {
		log.Error("Checkpoint database open abandoned", zap.String("path", path), zap.Error(err))
		return nil, fmt.Errorf("open checkpoint database at %s: %w", path, err)
	}
	if err != nil {
		return nil, err
	}

	fields := []zap.Field{
		zap.String("path", path),
		zap.Uint32("schema_version", SchemaVersion),
		zap.Stringer("genesis", db.genesis),
		zap.Uint64("prune_base", db.base.Base),
		zap.Duration("elapsed", time.Since(start)),
	}
	if db.justified != nil {
		fields = append(fields, zap.Uint64("justified", db.justified.Number))
	}
	if db.finalized != nil {
		fields = append(fields, zap.Uint64("finalized", db.finalized.Number))
	}
	log.Info("Checkpoint database opened successfully", fields...)
	return db, nil
}

// open is the body of OpenContext, run on the goroutine storagefault.Open
// may abandon. On error everything it opened, and the lock, are closed.
func open(path string, opts Options, fs vfs.FS, log *zap.Logger, plog *pebbleLogger, evRetention uint64) (*CheckpointDB, error) {
	st, err := inspectDir(fs, path)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint database at %s: %w", path, err)
	}
	if opts.ReadOnly && !st.exists {
		return nil, fmt.Errorf("no checkpoint database at %s: %w", path, ErrNotExist)
	}
	if !opts.ReadOnly {
		if fs == vfs.Default {
			if err := storagefault.CheckWritable(path); err != nil {
				return nil, fmt.Errorf("checkpoint database directory %s is not writable: %w", path, err)
			}
		}
		if err := fs.MkdirAll(path, 0o700); err != nil {
			return nil, fmt.Errorf("create checkpoint database directory %s: %w", path, err)
		}
	}
	lock, err := pebble.LockDirectory(path, fs)
	if err != nil {
		if isLockHeld(err) {
			return nil, lockedError(path, err)
		}
		return nil, fmt.Errorf("lock checkpoint database at %s: %w", path, err)
	}
	hwm, err := openHWM(fs, path, opts.ReadOnly, !st.hasData, opts.Genesis)
	if err != nil {
		_ = lock.Close()
		return nil, err
	}

	if st.exists {
		found, err := checkCleanRecord(fs, path)
		if err != nil {
			_ = lock.Close()
			if errors.Is(err, errCleanMismatch) {
				return nil, corruptedError(path, err)
			}
			return nil, fmt.Errorf("open checkpoint database at %s: %w", path, err)
		}
		if found && !opts.ReadOnly {
			// Remove it durably before Pebble changes any file.
			if err := removeCleanRecord(fs, path); err != nil {
				_ = lock.Close()
				return nil, fmt.Errorf("open checkpoint database at %s: %w", path, err)
			}
		}
	}

	db := &CheckpointDB{
		path:        path,
		fs:          fs,
		genesis:     opts.Genesis,
		readOnly:    opts.ReadOnly,
		evRetention: evRetention,
		log:         log,
		plog:        plog,
		lock:        lock,
		hwm:         hwm,
		targets:     make(map[uint64]*targetVotes),
		covers:      make(map[uint64]*cover),
	}
	if err := db.openLocked(st, opts.ReadOnly && opts.Genesis.IsZero()); err != nil {
		return nil, err
	}
	return db, nil
}

// abandonedOpens counts opens that OpenContext abandoned and that have not
// returned yet (tests wait for them).
var abandonedOpens sync.WaitGroup

// openLocked opens Pebble in the locked directory, then checks the meta
// records and verifies the store. On error everything it opened, and the
// lock, are closed.
func (db *CheckpointDB) openLocked(st dirState, acceptAnyGenesis bool) error {
	path, readOnly := db.path, db.readOnly
	healthFS, healthCloser := storagefault.WithDiskHealth(db.fs, db.plog.diskSlow)
	db.healthCloser = healthCloser
	// Pebble deletes the sstables its MANIFEST does not reference at the end
	// of its open; keep them until the store is verified, so that a refusal
	// (a damaged MANIFEST) destroys nothing.
	keep := storagefault.NewKeepFS(healthFS)
	healthFS = keep
	pdb, err := openPebble(path, healthFS, db.lock, db.plog, readOnly, st.exists && (st.hasData || readOnly))
	if errors.Is(err, pebble.ErrDBDoesNotExist) {
		switch {
		case st.hasData:
			err = corruptedError(path, fmt.Errorf("database files present but no MANIFEST: %w", err))
		case readOnly:
			err = fmt.Errorf("no checkpoint database at %s: %w", path, ErrNotExist)
		default:
			// A first open that crashed before Pebble created its MANIFEST:
			// nothing was ever stored; create the database.
			pdb, err = openPebble(path, healthFS, db.lock, db.plog, false, false)
		}
	}
	if err != nil {
		_ = healthCloser.Close()
		_ = db.lock.Close()
		switch {
		case errors.Is(err, ErrCorrupted), errors.Is(err, ErrNotExist):
			return err
		case isPebbleCorruption(err) || isInconsistent(err):
			return corruptedError(path, err)
		}
		return fmt.Errorf("open checkpoint database at %s: %w", path, err)
	}
	db.db = pdb
	if err := db.initMeta(acceptAnyGenesis, st.hasSST); err != nil {
		// A database of another chain or schema is intact: keep its
		// clean-shutdown record.
		db.abort(errors.Is(err, ErrWrongChain) || errors.Is(err, ErrSchemaVersion))
		return err
	}
	if err := db.verify(context.Background(), true); err != nil {
		db.abort(false)
		if errors.Is(err, ErrCorrupted) {
			return corruptedError(path, err)
		}
		return fmt.Errorf("open checkpoint database at %s: %w", path, err)
	}
	if err := db.plog.Fatal(); err != nil {
		db.abort(false)
		if errors.Is(err, ErrCorrupted) {
			return corruptedError(path, err)
		}
		return fmt.Errorf("open checkpoint database at %s: %w", path, err)
	}
	if err := db.reconcileHWM(); err != nil {
		db.abort(errors.Is(err, ErrBehindHighWaterMark))
		return err
	}
	if err := keep.Commit(); err != nil {
		db.log.Warn("Could not remove obsolete sstables", zap.Error(err))
	}
	return nil
}

func openPebble(path string, fs vfs.FS, lock *pebble.Lock, plog *pebbleLogger, readOnly, mustExist bool) (*pebble.DB, error) {
	popts := &pebble.Options{
		FS:               fs,
		Lock:             lock,
		Logger:           plog,
		ReadOnly:         readOnly,
		ErrorIfNotExists: mustExist,
		CacheSize:        blockCacheSize,
		EventListener: &pebble.EventListener{
			BackgroundError: plog.backgroundError,
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				plog.setFatal(&fatalError{msg: fmt.Sprintf("%s: %s: %s", ErrFatal, ErrCorrupted, info), errs: []error{ErrFatal, ErrCorrupted}})
			},
			DiskSlow: plog.diskSlow,
		},
	}
	if !readOnly {
		// The newest format has WAL sync offsets: a torn unsynced WAL tail is
		// told apart from corruption in the middle of the log.
		popts.FormatMajorVersion = pebble.FormatNewest
	}
	// Signatures do not compress; hashes repeated across the votes of one
	// target do. zstd at the lower levels keeps retained history small.
	popts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionGood })
	// Bloom filters let point reads of absent keys (a late vote, a target's
	// certificate) skip sstables whose key range covers them.
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return pebble.Open(path, popts)
}

// abort closes a database whose Open failed.
// With intact, it writes the clean-shutdown record again (Open removed it).
func (db *CheckpointDB) abort(intact bool) {
	_ = db.hwm.close()
	err := db.db.Close()
	if err == nil && intact && !db.readOnly && db.plog.Fatal() == nil {
		if err := writeCleanRecord(db.fs, db.path); err != nil {
			db.log.Warn("Could not write the clean-shutdown record", zap.Error(err))
		}
	}
	_ = db.lock.Close()
	_ = db.healthCloser.Close()
}

// initMeta checks (or, on a fresh database, writes with a synced batch) the
// schema version and genesis hash. acceptAny adopts the stored genesis.
// hadSST tells that the directory held sstables before Open: a store that
// ever flushed has its schema version, so finding none then means Pebble
// lost its history (a damaged MANIFEST), never a fresh store.
func (db *CheckpointDB) initMeta(acceptAny, hadSST bool) error {
	verBytes, found, err := getValue(db.db, keySchemaVersion)
	if err != nil {
		return db.openReadError(err)
	}
	if !found {
		// A fresh database, or a first open that crashed before the meta
		// batch was synced: it must be empty.
		it, err := db.db.NewIter(nil)
		if err != nil {
			return db.openReadError(err)
		}
		empty := !it.First()
		var firstKey []byte
		if !empty {
			firstKey = append(firstKey, it.Key()...)
		}
		itErr := it.Error()
		_ = it.Close()
		if itErr != nil {
			return db.openReadError(itErr)
		}
		if !empty {
			return corruptedError(db.path, fmt.Errorf("records present (first key %x) but no schema version", firstKey))
		}
		if hadSST {
			return corruptedError(db.path, errors.New("sstables present but the store reads empty (MANIFEST history lost)"))
		}
		if db.readOnly {
			return fmt.Errorf("no checkpoint database at %s (never initialized): %w", db.path, ErrNotExist)
		}
		b := db.db.NewBatch()
		defer b.Close()
		ver := db.initRecords(b)
		_ = b.Set(keySchemaVersion, encodeSchemaVersion(ver), nil)
		_ = b.Set(keyGenesis, db.genesis[:], nil)
		if err := db.db.Apply(b, pebble.Sync); err != nil {
			return fmt.Errorf("initialize checkpoint database at %s: %w", db.path, err)
		}
		if err := db.plog.Fatal(); err != nil {
			return fmt.Errorf("initialize checkpoint database at %s: %w", db.path, err)
		}
		// A new store's first WAL is created before Pebble ratchets the
		// format, so it lacks the sync offsets that tell damage in the
		// middle of a WAL from a torn tail: start a new one.
		if err := db.db.Flush(); err != nil {
			return fmt.Errorf("initialize checkpoint database at %s: %w", db.path, err)
		}
		db.created, db.schema = true, ver
		return nil
	}
	ver, err := decodeSchemaVersion(verBytes)
	if err != nil {
		return corruptedError(db.path, err)
	}
	if ver < minSchemaVersion || ver > SchemaVersion {
		return schemaVersionError(db.path, ver)
	}
	db.schema = ver
	g, found, err := getValue(db.db, keyGenesis)
	if err != nil {
		return db.openReadError(err)
	}
	if !found {
		return corruptedError(db.path, errors.New("schema version present but no genesis hash"))
	}
	stored, err := checkpoint.HashFromBytes(g)
	if err != nil {
		return corruptedError(db.path, err)
	}
	if acceptAny {
		db.genesis = stored
		return nil
	}
	if stored != db.genesis {
		return wrongChainError(db.path, stored, db.genesis)
	}
	return nil
}

func (db *CheckpointDB) openReadError(err error) error {
	if isPebbleCorruption(err) {
		return corruptedError(db.path, err)
	}
	return fmt.Errorf("read checkpoint database at %s: %w", db.path, err)
}

// Failed is closed when the database records a fatal storage error (a failed
// write, sync, flush or compaction, a full disk, a stalled disk, corruption
// found at run time); FatalError then returns it. The node stops on it.
func (db *CheckpointDB) Failed() <-chan struct{} { return db.plog.fault.Done() }

// FatalError returns the recorded fatal storage error, or nil.
func (db *CheckpointDB) FatalError() error { return db.plog.Fatal() }

// Path returns the database directory.
func (db *CheckpointDB) Path() string { return db.path }

// Genesis returns the genesis hash the database belongs to.
func (db *CheckpointDB) Genesis() checkpoint.Hash { return db.genesis }

// Close closes the database, waiting for calls in flight. Later calls
// return ErrClosed; closing twice is a no-op.
func (db *CheckpointDB) Close() error {
	db.life.Lock()
	defer db.life.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	err := errors.Join(db.hwm.close(), db.db.Close())
	if err == nil && !db.readOnly && db.plog.Fatal() == nil {
		err = writeCleanRecord(db.fs, db.path)
	}
	if lerr := db.lock.Close(); lerr != nil {
		err = errors.Join(err, lerr)
	}
	_ = db.healthCloser.Close()
	db.plog.closeSummary()
	if err != nil {
		db.log.Warn("Checkpoint database closed with an error", zap.String("path", db.path), zap.Error(err))
		return fmt.Errorf("close checkpoint database at %s: %w", db.path, err)
	}
	db.log.Info("Checkpoint database closed", zap.String("path", db.path))
	return nil
}

// begin starts a call: it checks ctx, the closed state and a recorded fatal
// error, and read-locks life (the caller must call db.life.RUnlock).
func (db *CheckpointDB) begin(ctx context.Context, write bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db.life.RLock()
	if db.closed {
		db.life.RUnlock()
		return ErrClosed
	}
	if write && db.readOnly {
		db.life.RUnlock()
		return ErrReadOnly
	}
	if err := db.plog.Fatal(); err != nil {
		db.life.RUnlock()
		return err
	}
	return nil
}

// getValue reads key from r; found is false when the key is absent. The
// value is a copy.
func getValue(r pebble.Reader, key []byte) (val []byte, found bool, err error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	val = bytes.Clone(v)
	if val == nil {
		val = []byte{}
	}
	return val, true, closer.Close()
}

// exists reports whether key is present in r.
func exists(r pebble.Reader, key []byte) (bool, error) {
	_, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// scan calls fn for every key in [lower, upper) of r, in order. The key and
// value are only valid during the call.
func scan(ctx context.Context, r pebble.Reader, lower, upper []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return storageError("iterate", err)
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				_ = it.Close()
				return err
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return storageError("read value", err)
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Error(); err != nil {
		_ = it.Close()
		return storageError("iterate", err)
	}
	return storageError("close iterator", it.Close())
}

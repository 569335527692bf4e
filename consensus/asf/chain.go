package asf

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/internal/storagefault"
)

// DefaultMaxFutureDrift is how far ahead of the local clock a block
// timestamp may be when ChainOptions.MaxFutureDrift is zero.
const DefaultMaxFutureDrift = 2 * time.Second

// MaxRangeBlocks bounds the blocks one BlocksByRange call returns.
const MaxRangeBlocks = 1024

// headerCacheSize is how many recent headers Chain keeps in memory.
const headerCacheSize = 8192

// Errors of the chain database.
var (
	// ErrLocked: the database directory is opened by another Chain (in this
	// or another process).
	ErrLocked = errors.New("chain database is locked by another process")
	// ErrCorrupted: the database content is inconsistent or unreadable.
	ErrCorrupted = errors.New("chain database is corrupted")
	// ErrWrongChain: the database belongs to another chain spec. It wraps
	// checkpoint.ErrWrongChain.
	ErrWrongChain = fmt.Errorf("chain database of another chain: %w", checkpoint.ErrWrongChain)
	// ErrSchema: the database was written with an unknown layout (or is not
	// a chain database).
	ErrSchema = errors.New("unsupported chain database schema")
	// ErrFatal: the database recorded a fatal storage error (a failed
	// write, sync, flush or compaction, a full disk, a stalled disk); every
	// later write fails with it until the process reopens the database.
	ErrFatal = errors.New("chain database stopped after a fatal storage error")
	// ErrClosed: the Chain was closed.
	ErrClosed = errors.New("chain database is closed")
	// ErrReadOnly: a write on a Chain opened with ReadOnly.
	ErrReadOnly = errors.New("chain database is open read-only")
	// ErrUnknownBlock: the block a checkpoint names is not in the database.
	ErrUnknownBlock = errors.New("unknown block")
	// ErrInvalidCheckpoint: a checkpoint whose block is not at height
	// number*checkpoint_interval, or that conflicts with the justified one.
	ErrInvalidCheckpoint = errors.New("invalid checkpoint")
	// ErrFutureBlock: a block timestamp beyond now + MaxFutureDrift. It wraps
	// ErrInvalidBlock; the block may become valid later.
	ErrFutureBlock = fmt.Errorf("%w: timestamp in the future", ErrInvalidBlock)
)

// ChainOptions configures OpenChain.
type ChainOptions struct {
	// FS is the file system of the database; nil means the OS file system.
	FS vfs.FS
	// Logger receives the chain's logs; nil means no logs.
	Logger *zap.Logger
	// Clock is the time source of the future-block check; nil means the
	// system clock.
	Clock Clock
	// MaxFutureDrift is how far ahead of Clock a block timestamp may be;
	// 0 means DefaultMaxFutureDrift.
	MaxFutureDrift time.Duration
	// ReadOnly opens an existing database without writing to it.
	ReadOnly bool
	// Executor creates the executor of block bodies on the chain's
	// database; nil means a chain without state (opaque bodies, zero
	// state root), for tests of the block tree.
	Executor ExecutorFactory
	// StateRetention is how many blocks below the finalized block keep
	// their complete state; older canonical states are pruned. 0 means
	// DefaultStateRetention.
	StateRetention uint64
	// AuthorityChanges are the scheduled hand-offs after the spec's
	// genesis set (checkpoint.Schedule.Changes): finality proofs are
	// verified through them. nil: the genesis set never changes. Chain
	// specs do not carry the changes on this branch yet (chainspec
	// authority_changes, Spec.Schedule); until they do, the caller passes
	// them, and OpenChain checks them with checkpoint.Schedule.Validate.
	AuthorityChanges []checkpoint.SetChange
}

// DefaultStateRetention is the default of ChainOptions.StateRetention.
const DefaultStateRetention = 256

// Chain is the persistent block tree of one chain spec with its fork choice.
// It is safe for concurrent use.
type Chain struct {
	spec        *chainspec.Spec
	chainID     checkpoint.Hash
	keys        []ed25519.PublicKey
	interval    uint64
	genesis     Block
	genesisHash checkpoint.Hash
	path        string
	// changes are the scheduled hand-offs (ChainOptions.AuthorityChanges).
	changes []checkpoint.SetChange

	db   *pebble.DB
	lock *pebble.Lock
	plog *pebbleLogger
	// healthCloser stops the disk-health checks (closed after Pebble).
	healthCloser io.Closer
	log          *zap.Logger
	clock        Clock
	drift        time.Duration
	readOnly     bool
	headers      *headerCache
	newExec      ExecutorFactory
	exec         Executor
	retention    uint64

	mu        sync.RWMutex
	closed    bool
	best      Header
	bestHash  checkpoint.Hash
	tips      map[checkpoint.Hash]checkpoint.Tip
	justified checkpoint.Checkpoint
	finalized checkpoint.Checkpoint
	// pendingJustified is a justified checkpoint whose block is not known
	// yet; it is applied when the block is imported.
	pendingJustified *checkpoint.Checkpoint
	// pendingFinalized likewise for a finalized checkpoint, with the
	// finality proof to store with it (SetFinalizedWithProof).
	pendingFinalized *checkpoint.Checkpoint
	pendingProof     *checkpoint.FinalityProof
	// slotPruned is the lowest slot whose index entries may still exist
	// (entries below it were deleted by finalization in this process);
	// slotPrunedNext is its value once the batch being built commits.
	slotPruned, slotPrunedNext uint64
	// equiv counts equivocations seen since open.
	equiv EquivocationStats
	// equivocators holds every proposer with stored block evidence (loaded
	// at open, kept current by recordEquivocation): see Equivocated.
	equivocators map[checkpoint.ValidatorIndex]struct{}
	// tipsEvicted and tipRefused count MaxTips evictions and refusals.
	tipsEvicted, tipRefused uint64
	// statePruned: the canonical states below this block number are
	// pruned (keyStatePruned).
	statePruned uint64
	// stateRootMismatches counts imports refused with ErrBadStateRoot.
	stateRootMismatches uint64
	// proof is the stored finality proof (nil: none).
	proof *storedProof
}

// OpenChain is OpenChainContext with a context that is never done.
func OpenChain(path string, spec *chainspec.Spec, opts ChainOptions) (*Chain, error) {
	return OpenChainContext(context.Background(), path, spec, opts)
}

// OpenChainContext opens (creating it on first use, unless ReadOnly) the
// chain database at path for spec. It refuses, with a one-line error, a
// database locked by another open (ErrLocked), of another chain
// (ErrWrongChain), of an unknown layout (ErrSchema) or with inconsistent
// content (ErrCorrupted). Opening reads a fixed number of keys plus the chain
// tips: its cost does not grow with the chain length.
//
// A directory this process may not write to is refused before anything is
// created (the error wraps fs.ErrPermission or syscall.EROFS; a LOCK file
// that cannot be opened is such an error, not ErrLocked). A storage fault
// during the open (a failed flush, a full disk, an I/O error, which Pebble
// retries forever) ends it with an error wrapping ErrFatal and the cause;
// when ctx is done first, the error wraps ctx's error. In both cases it wraps
// storagefault.ErrAbandoned when Pebble's open was still running: it is left
// to finish (or hang) on its goroutine and closed when it returns.
func OpenChainContext(ctx context.Context, path string, spec *chainspec.Spec, opts ChainOptions) (*Chain, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	keys, err := spec.PublicKeys()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(opts.AuthorityChanges) > 0 {
		sched := checkpoint.Schedule{Genesis: checkpoint.AuthoritySet{SetID: spec.SetID, Keys: keys}, Changes: opts.AuthorityChanges}
		if err := sched.Validate(); err != nil {
			return nil, fmt.Errorf("authority changes: %w", err)
		}
	}
	c := &Chain{
		spec:      spec,
		changes:   slices.Clone(opts.AuthorityChanges),
		chainID:   spec.Hash(),
		keys:      keys,
		interval:  spec.CheckpointInterval,
		path:      path,
		newExec:   opts.Executor,
		retention: opts.StateRetention,
		log:       opts.Logger,
		clock:     opts.Clock,
		drift:     opts.MaxFutureDrift,
		readOnly:  opts.ReadOnly,
		headers:   newHeaderCache(headerCacheSize),
		tips:      make(map[checkpoint.Hash]checkpoint.Tip),

		equivocators: make(map[checkpoint.ValidatorIndex]struct{}),
	}
	if c.retention == 0 {
		c.retention = DefaultStateRetention
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	c.log = c.log.Named("chain")
	if c.clock == nil {
		c.clock = SystemClock{}
	}
	if c.drift == 0 {
		c.drift = DefaultMaxFutureDrift
	}
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	c.plog = newPebbleLogger(c.log.Named("pebble"))
	opening, log := c, c.log
	abandonedOpens.Add(1)
	c, err = storagefault.Open(ctx, opening.plog.stuck, func() (*Chain, error) {
		if err := opening.open(fs); err != nil {
			return nil, err
		}
		return opening, nil
	}, func(c *Chain, err error) {
		if err == nil {
			_ = c.Close()
		}
		abandonedOpens.Done()
	})
	if !errors.Is(err, storagefault.ErrAbandoned) {
		abandonedOpens.Done()
	} else {
		err = &lineError{msg: fmt.Sprintf("open chain database %s: %s", path, oneLine(err)), errs: []error{err}}
		log.Error("Chain database open abandoned", zap.String("path", path), zap.Error(err))
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	c.log.Info("Opened chain database",
		zap.String("path", path),
		zap.String("chain", spec.ID),
		zap.Stringer("genesis", c.genesisHash),
		zap.Uint64("best", c.best.Number),
		zap.Stringer("best_hash", c.bestHash),
		zap.Stringer("justified", c.justified),
		zap.Stringer("finalized", c.finalized),
		zap.Int("tips", len(c.tips)))
	return c, nil
}

// abandonedOpens counts opens that OpenChainContext abandoned and that have
// not returned yet (tests wait for them).
var abandonedOpens sync.WaitGroup

// open is the body of OpenChainContext, run on the goroutine
// storagefault.Open may abandon. On error everything it opened is closed.
func (c *Chain) open(fs vfs.FS) error {
	path := c.path
	if c.readOnly {
		if _, err := fs.Stat(path); err != nil {
			return fmt.Errorf("open chain database %s read-only: %w", path, err)
		}
	} else {
		if fs == vfs.Default {
			if err := storagefault.CheckWritable(path); err != nil {
				return fmt.Errorf("chain database directory %s is not writable: %w", path, err)
			}
		}
		if err := mkdirAllSynced(fs, path); err != nil {
			return fmt.Errorf("create chain database directory %s: %w", path, err)
		}
	}
	var err error
	c.lock, err = pebble.LockDirectory(path, fs)
	if err != nil {
		var pe *iofs.PathError
		if errors.As(err, &pe) { // the LOCK file itself: permissions, read-only
			return &lineError{msg: fmt.Sprintf("lock chain database %s: %s", path, oneLine(err)), errs: []error{err}}
		}
		return &lineError{msg: fmt.Sprintf("%s: %s: %s", ErrLocked, path, oneLine(err)), errs: []error{ErrLocked, err}}
	}
	healthFS, healthCloser := storagefault.WithDiskHealth(fs, c.plog.diskSlow)
	c.healthCloser = healthCloser
	// Pebble deletes the sstables its MANIFEST does not reference at the end
	// of its open; keep them until the open is verified, so that a refusal
	// (a damaged MANIFEST) destroys nothing.
	keep := storagefault.NewKeepFS(healthFS)
	// The inputs of compactions during the open are removed legitimately;
	// a deferred removal of any other sstable is one the MANIFEST lost.
	var compactedMu sync.Mutex
	compacted, opening := map[uint64]bool{}, true
	c.db, err = pebble.Open(path, &pebble.Options{
		FS:                 keep,
		Lock:               c.lock,
		ReadOnly:           c.readOnly,
		Logger:             c.plog,
		FormatMajorVersion: pebble.FormatNewest,
		EventListener: &pebble.EventListener{
			// Pebble's default is to exit the process. A failed read
			// already returns an error that Chain reports as ErrCorrupted;
			// the database stops accepting writes.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				c.plog.setFatal(&lineError{msg: fmt.Sprintf("%s: %s: %s", ErrFatal, ErrCorrupted, info), errs: []error{ErrFatal, ErrCorrupted}})
			},
			BackgroundError: c.plog.backgroundError,
			DiskSlow:        c.plog.diskSlow,
			CompactionEnd: func(info pebble.CompactionInfo) {
				compactedMu.Lock()
				defer compactedMu.Unlock()
				if !opening || info.Err != nil {
					return
				}
				for _, l := range info.Input {
					for _, t := range l.Tables {
						compacted[uint64(t.FileNum)] = true
					}
				}
			},
		},
	})
	if err != nil {
		_ = c.lock.Close()
		_ = healthCloser.Close()
		switch {
		case pebble.IsCorruptionError(err) || errors.Is(err, pebble.ErrCorruption):
			return &lineError{msg: fmt.Sprintf("%s: %s: %s", ErrCorrupted, path, oneLine(err)), errs: []error{ErrCorrupted, err}}
		case errors.Is(err, pebble.ErrDBDoesNotExist):
			return fmt.Errorf("open chain database %s read-only: %w", path, os.ErrNotExist)
		}
		return &lineError{msg: fmt.Sprintf("open chain database %s: %s", path, oneLine(err)), errs: []error{err}}
	}
	c.exec = emptyState{}
	if c.newExec != nil {
		if c.exec, err = c.newExec(c.db); err != nil {
			_ = c.closeFiles()
			return fmt.Errorf("open the state of chain database %s: %w", path, err)
		}
	}
	c.genesis = GenesisBlock(c.spec, c.exec.GenesisRoot())
	c.genesisHash = c.genesis.Hash()
	if err := c.load(); err != nil {
		_ = c.closeFiles() // waits for running compactions
		var lost []string
		compactedMu.Lock()
		for _, p := range keep.Keep() {
			if n, perr := strconv.ParseUint(strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)), 10, 64); perr != nil || !compacted[n] {
				lost = append(lost, p)
			}
		}
		compactedMu.Unlock()
		if kept := lost; len(kept) > 0 && errors.Is(err, ErrSchema) {
			// Data the MANIFEST lost: the store's history is damaged
			// (not a foreign or unknown layout).
			return &lineError{msg: fmt.Sprintf("%s: %s: the MANIFEST no longer references %d sstable(s) on disk (kept: %s) and %s",
				ErrCorrupted, path, len(kept), strings.Join(baseNames(kept), ", "), strings.TrimPrefix(oneLine(err), ErrSchema.Error()+": "+path+": ")),
				errs: []error{ErrCorrupted}}
		}
		return err
	}
	if err := c.plog.Fatal(); err != nil {
		_ = c.closeFiles()
		return &lineError{msg: fmt.Sprintf("open chain database %s: %s", path, oneLine(err)), errs: []error{err}}
	}
	compactedMu.Lock()
	opening = false
	compactedMu.Unlock()
	if err := keep.Commit(); err != nil {
		c.log.Warn("Could not remove obsolete sstables", zap.Error(err))
	}
	return nil
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

// closeFiles closes Pebble, the lock and the disk-health checks.
func (c *Chain) closeFiles() error {
	err := errors.Join(c.db.Close(), c.lock.Close())
	_ = c.healthCloser.Close()
	c.plog.closeSummary()
	return err
}

// lineError is a one-line error message that unwraps to its causes (so that
// errors.Is finds the sentinel and the errno).
type lineError struct {
	msg  string
	errs []error
}

func (e *lineError) Error() string   { return e.msg }
func (e *lineError) Unwrap() []error { return e.errs }

// mkdirAllSynced creates path and its missing parents and syncs the parent
// of every directory it creates, so that the database directory itself
// survives a crash (Pebble syncs only the entries inside it).
func mkdirAllSynced(fs vfs.FS, path string) error {
	if _, err := fs.Stat(path); err == nil {
		return nil
	}
	parent := fs.PathDir(path)
	if parent != path && parent != "" {
		if err := mkdirAllSynced(fs, parent); err != nil {
			return err
		}
	}
	if err := fs.MkdirAll(path, 0o755); err != nil {
		return err
	}
	if parent == path || parent == "" {
		return nil
	}
	d, err := fs.OpenDir(parent)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// oneLine flattens an error message to a single line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func (c *Chain) corrupted(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrCorrupted, c.path, fmt.Sprintf(format, args...))
}

// load reads the state of an existing database or initializes a new one.
func (c *Chain) load() error {
	schema, found, err := get(c.db, keySchema)
	if err != nil {
		return c.corrupted("read schema: %s", oneLine(err))
	}
	if !found {
		empty, err := c.isEmpty()
		if err != nil {
			return c.corrupted("scan: %s", oneLine(err))
		}
		if !empty {
			return fmt.Errorf("%w: %s: the database has data but no chain schema marker", ErrSchema, c.path)
		}
		if c.readOnly {
			return fmt.Errorf("open chain database %s read-only: %w: no chain stored", c.path, os.ErrNotExist)
		}
		return c.initialize()
	}
	if len(schema) != 4 {
		return fmt.Errorf("%w: %s: schema %x, this node reads version %d", ErrSchema, c.path, schema, SchemaVersion)
	}
	if v := binary.BigEndian.Uint32(schema); v < SchemaVersion {
		return fmt.Errorf("%w: %s: schema %d holds blocks without a state root (flare/block/v1), this node reads version %d: "+
			"move the chain database away (or purge-chain) and sync again", ErrSchema, c.path, v, SchemaVersion)
	} else if v != SchemaVersion {
		return fmt.Errorf("%w: %s: schema %d, this node reads version %d", ErrSchema, c.path, v, SchemaVersion)
	}
	id, _, err := get(c.db, keyGenesis)
	if err != nil {
		return c.corrupted("read chain identity: %s", oneLine(err))
	}
	if len(id) != checkpoint.HashSize {
		return c.corrupted("chain identity is %d bytes", len(id))
	}
	if checkpoint.Hash(id) != c.chainID {
		return fmt.Errorf("%w: %s holds chain %s, the spec %q is chain %s", ErrWrongChain, c.path,
			checkpoint.Hash(id), c.spec.ID, c.chainID)
	}
	if g, ok, err := c.canonical(c.db, 0); err != nil {
		return err
	} else if !ok || g != c.genesisHash {
		return c.corrupted("canonical block 0 is not the genesis block %s", c.genesisHash.Short())
	}
	bestHash, _, err := get(c.db, keyBest)
	if err != nil {
		return c.corrupted("read best block pointer: %s", oneLine(err))
	}
	if len(bestHash) != checkpoint.HashSize {
		return c.corrupted("best block pointer is %d bytes", len(bestHash))
	}
	c.bestHash = checkpoint.Hash(bestHash)
	best, ok, err := c.header(c.db, c.bestHash)
	if err != nil {
		return err
	}
	if !ok {
		return c.corrupted("best block %s missing", c.bestHash.Short())
	}
	c.best = best
	if h, ok, err := c.canonical(c.db, best.Number); err != nil {
		return err
	} else if !ok || h != c.bestHash {
		return c.corrupted("best block %s is not canonical at #%d", c.bestHash.Short(), best.Number)
	}
	for _, p := range []struct {
		key  []byte
		dst  *checkpoint.Checkpoint
		name string
	}{{keyJustified, &c.justified, "justified"}, {keyFinalized, &c.finalized, "finalized"}} {
		v, _, err := get(c.db, p.key)
		if err != nil {
			return c.corrupted("read %s checkpoint: %s", p.name, oneLine(err))
		}
		cp, err := unmarshalCheckpoint(v)
		if err != nil {
			return c.corrupted("%s checkpoint: %s", p.name, err)
		}
		height, ok := c.height(cp.Number)
		if !ok {
			return c.corrupted("%s checkpoint %d out of range", p.name, cp.Number)
		}
		if h, ok, err := c.canonical(c.db, height); err != nil {
			return err
		} else if !ok || h != cp.Hash {
			return c.corrupted("%s checkpoint %s is not on the best chain", p.name, cp)
		}
		*p.dst = cp
	}
	if c.justified.Number < c.finalized.Number {
		return c.corrupted("justified checkpoint %s below finalized %s", c.justified, c.finalized)
	}
	if err := c.loadTips(); err != nil {
		return err
	}
	if _, ok := c.tips[c.bestHash]; !ok {
		return c.corrupted("best block %s is not a tip", c.bestHash.Short())
	}
	if err := c.loadProof(); err != nil {
		return err
	}
	if err := c.loadStatePruned(); err != nil {
		return err
	}
	return c.loadEquivocators()
}

// loadEquivocators fills c.equivocators from the evidence table (its keys
// only: one per (proposer, slot) an equivocation was seen for).
func (c *Chain) loadEquivocators() error {
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagEvidence}, UpperBound: []byte{tagEvidence + 1}})
	if err != nil {
		return c.corrupted("scan block evidence: %s", oneLine(err))
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 1+8+4 {
			_ = it.Close()
			return c.corrupted("malformed block evidence key %x", k)
		}
		c.equivocators[checkpoint.ValidatorIndex(binary.BigEndian.Uint32(k[9:]))] = struct{}{}
	}
	if err := it.Close(); err != nil {
		return c.corrupted("scan block evidence: %s", oneLine(err))
	}
	return nil
}

// Equivocated reports whether proposer signed two different blocks for one
// slot, as far as this node's stored evidence shows (any slot, any time:
// evidence is never pruned).
func (c *Chain) Equivocated(proposer checkpoint.ValidatorIndex) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.equivocators[proposer]
	return ok
}

func (c *Chain) isEmpty() (bool, error) {
	it, err := c.db.NewIter(nil)
	if err != nil {
		return false, err
	}
	empty := !it.First()
	return empty, errors.Join(it.Error(), it.Close())
}

func (c *Chain) loadTips() error {
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagTip}, UpperBound: []byte{tagTip + 1}})
	if err != nil {
		return c.corrupted("scan tips: %s", oneLine(err))
	}
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 1+checkpoint.HashSize || len(v) != 8 {
			_ = it.Close()
			return c.corrupted("malformed tip entry %x", k)
		}
		h := checkpoint.Hash(k[1:])
		c.tips[h] = checkpoint.Tip{Hash: h, Number: binary.BigEndian.Uint64(v)}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return c.corrupted("scan tips: %s", oneLine(err))
	}
	// The slot of a tip (fork choice's tie-break) comes from its header.
	for h, t := range c.tips {
		hdr, ok, err := c.header(c.db, h)
		if err != nil {
			return err
		}
		if !ok || hdr.Number != t.Number {
			return c.corrupted("tip %s (#%d) has no matching header", h.Short(), t.Number)
		}
		t.Slot = hdr.Slot
		c.tips[h] = t
	}
	return nil
}

func (c *Chain) initialize() error {
	g := c.genesis
	enc, err := EncodeBlock(g)
	if err != nil {
		return err
	}
	gcp := checkpoint.Checkpoint{Number: 0, Hash: c.genesisHash}
	b := c.db.NewBatch()
	defer b.Close()
	for _, kv := range [][2][]byte{
		{keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)},
		{keyGenesis, c.chainID[:]},
		{hashKey(tagHeader, c.genesisHash), marshalHeader(g.Header)},
		{hashKey(tagBlock, c.genesisHash), enc},
		{canonicalKey(0), c.genesisHash[:]},
		{hashKey(tagTip, c.genesisHash), u64(0)},
		{keyBest, c.genesisHash[:]},
		{keyJustified, marshalCheckpoint(gcp)},
		{keyFinalized, marshalCheckpoint(gcp)},
		{keyStatePruned, u64(0)},
	} {
		if err := b.Set(kv[0], kv[1], nil); err != nil {
			return err
		}
	}
	if err := c.exec.WriteGenesis(b, c.genesisHash); err != nil {
		return fmt.Errorf("initialize chain database %s: genesis state: %w", c.path, err)
	}
	if err := c.commit(b); err != nil {
		return fmt.Errorf("initialize chain database %s: %w", c.path, err)
	}
	c.best, c.bestHash = g.Header, c.genesisHash
	c.justified, c.finalized = gcp, gcp
	c.tips[c.genesisHash] = checkpoint.Tip{Hash: c.genesisHash}
	c.log.Info("Initialized chain database with genesis",
		zap.String("chain", c.spec.ID), zap.Stringer("genesis", c.genesisHash))
	return nil
}

// Close closes the database. Further calls fail with ErrClosed.
func (c *Chain) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.closeFiles()
}

// Failed is closed when the database records a fatal storage error (a
// failed write, sync, flush or compaction, a full disk, a stalled disk,
// corruption found by a read); FatalError then returns it and every later
// write fails with it. The node stops on it.
func (c *Chain) Failed() <-chan struct{} { return c.plog.fault.Done() }

// FatalError returns the recorded fatal storage error, or nil.
func (c *Chain) FatalError() error { return c.plog.Fatal() }

// commit commits b with a synced write. It fails with the recorded fatal
// error, before and after the write (Pebble reports a failed WAL sync
// through Logger.Fatalf and returns success); a failed commit is recorded as
// fatal, so the node stops instead of going on with a chain database that
// no longer persists.
func (c *Chain) commit(b *pebble.Batch) error {
	if err := c.plog.Fatal(); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		c.plog.setFatal(&lineError{msg: fmt.Sprintf("%s: commit: %s", ErrFatal, oneLine(err)), errs: []error{ErrFatal, err}})
		return err
	}
	return c.plog.Fatal()
}

// Spec returns the chain spec.
func (c *Chain) Spec() *chainspec.Spec { return c.spec }

// Best returns the header of the best block.
func (c *Chain) Best() Header {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.best
}

// BestHash returns the hash of the best block.
func (c *Chain) BestHash() checkpoint.Hash {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.bestHash
}

// Genesis returns the genesis block.
func (c *Chain) Genesis() Block { return c.genesis }

// Finalized returns the latest finalized checkpoint (checkpoint 0, the
// genesis block, until something is finalized).
func (c *Chain) Finalized() checkpoint.Checkpoint {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.finalized
}

// Justified returns the latest justified checkpoint whose block is known.
func (c *Chain) Justified() checkpoint.Checkpoint {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.justified
}

// Tips returns the current chain tips (blocks without children).
func (c *Chain) Tips() []checkpoint.Tip {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.tipList()
}

// bestTip returns the best block as a fork-choice tip. c.mu is held.
func (c *Chain) bestTip() checkpoint.Tip {
	return checkpoint.Tip{Hash: c.bestHash, Number: c.best.Number, Slot: c.best.Slot}
}

func (c *Chain) tipList() []checkpoint.Tip {
	out := make([]checkpoint.Tip, 0, len(c.tips))
	for _, t := range c.tips {
		out = append(out, t)
	}
	return out
}

// HasBlock reports whether the block is stored.
func (c *Chain) HasBlock(h checkpoint.Hash) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return false
	}
	_, ok, err := c.header(c.db, h)
	return ok && err == nil
}

// HeaderByHash returns a stored header.
func (c *Chain) HeaderByHash(h checkpoint.Hash) (Header, bool, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return Header{}, false, ErrClosed
	}
	return c.header(c.db, h)
}

// BlockByHash returns a stored block.
func (c *Chain) BlockByHash(h checkpoint.Hash) (Block, bool, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return Block{}, false, ErrClosed
	}
	return c.block(h)
}

func (c *Chain) block(h checkpoint.Hash) (Block, bool, error) {
	v, ok, err := get(c.db, hashKey(tagBlock, h))
	if err != nil {
		return Block{}, false, c.corrupted("read block %s: %s", h.Short(), oneLine(err))
	}
	if !ok {
		return Block{}, false, nil
	}
	b, err := DecodeBlock(v)
	if err != nil {
		return Block{}, false, c.corrupted("block %s: %s", h.Short(), oneLine(err))
	}
	if b.Hash() != h {
		return Block{}, false, c.corrupted("block stored under %s hashes to %s", h.Short(), b.Hash().Short())
	}
	return b, true, nil
}

// CanonicalHash returns the hash of the best-chain block at number.
func (c *Chain) CanonicalHash(number uint64) (checkpoint.Hash, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed || number > c.best.Number {
		return checkpoint.Hash{}, false
	}
	h, ok, err := c.canonical(c.db, number)
	if err != nil {
		c.log.Error("Reading canonical index failed", zap.Uint64("number", number), zap.Error(err))
		return checkpoint.Hash{}, false
	}
	return h, ok
}

// BlocksByRange returns up to count (at most MaxRangeBlocks) consecutive
// best-chain blocks starting at number start, ascending. It returns fewer
// (possibly none) when the best chain ends earlier.
func (c *Chain) BlocksByRange(start uint64, count int) ([]Block, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, ErrClosed
	}
	count = min(count, MaxRangeBlocks)
	if count <= 0 || start > c.best.Number {
		return nil, nil
	}
	end := c.best.Number
	if uint64(count-1) < end-start {
		end = start + uint64(count-1)
	}
	out := make([]Block, 0, end-start+1)
	for n := start; n <= end; n++ {
		h, ok, err := c.canonical(c.db, n)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, c.corrupted("canonical index has no block #%d below best #%d", n, c.best.Number)
		}
		b, ok, err := c.block(h)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, c.corrupted("canonical block #%d %s missing", n, h.Short())
		}
		out = append(out, b)
	}
	return out, nil
}

// CheckpointOf returns the checkpoint h is, when h.Number is a multiple of
// the checkpoint interval.
func (c *Chain) CheckpointOf(h Header) (checkpoint.Checkpoint, bool) {
	if h.Number%c.interval != 0 {
		return checkpoint.Checkpoint{}, false
	}
	return checkpoint.Checkpoint{Number: h.Number / c.interval, Hash: h.Hash()}, true
}

// IsDescendant reports whether block is ancestor's block or one of its
// descendants. ancestor.Number is a checkpoint number: its block is at
// height ancestor.Number*checkpoint_interval. Unknown blocks are not
// descendants of anything.
func (c *Chain) IsDescendant(block checkpoint.Hash, ancestor checkpoint.Checkpoint) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return false
	}
	height, ok := c.height(ancestor.Number)
	if !ok {
		return false
	}
	h, ok, err := c.ancestorAt(c.db, block, height)
	return err == nil && ok && h == ancestor.Hash
}

// height returns the block height of checkpoint number n.
func (c *Chain) height(n uint64) (uint64, bool) {
	if n != 0 && n > ^uint64(0)/c.interval {
		return 0, false
	}
	return n * c.interval, true
}

// header returns a header from the cache or r. Only headers read from the
// committed database are cached.
func (c *Chain) header(r pebble.Reader, h checkpoint.Hash) (Header, bool, error) {
	if hdr, ok := c.headers.get(h); ok {
		return hdr, true, nil
	}
	v, ok, err := get(r, hashKey(tagHeader, h))
	if err != nil {
		return Header{}, false, c.corrupted("read header %s: %s", h.Short(), oneLine(err))
	}
	if !ok {
		return Header{}, false, nil
	}
	hdr, err := unmarshalHeader(v)
	if err != nil {
		return Header{}, false, c.corrupted("header %s: %s", h.Short(), err)
	}
	if hdr.Hash() != h {
		return Header{}, false, c.corrupted("header stored under %s hashes to %s", h.Short(), hdr.Hash().Short())
	}
	if r == pebble.Reader(c.db) {
		c.headers.put(h, hdr)
	}
	return hdr, true, nil
}

// canonical reads the canonical index.
func (c *Chain) canonical(r pebble.Reader, n uint64) (checkpoint.Hash, bool, error) {
	v, ok, err := get(r, canonicalKey(n))
	if err != nil {
		return checkpoint.Hash{}, false, c.corrupted("read canonical #%d: %s", n, oneLine(err))
	}
	if !ok {
		return checkpoint.Hash{}, false, nil
	}
	if len(v) != checkpoint.HashSize {
		return checkpoint.Hash{}, false, c.corrupted("canonical entry #%d is %d bytes", n, len(v))
	}
	return checkpoint.Hash(v), true, nil
}

// ancestorAt returns the hash of the ancestor of block h at height (h itself
// when h is at height). ok is false when h is unknown or below height. The
// walk stops early at the first best-chain block, from where the canonical
// index answers.
func (c *Chain) ancestorAt(r pebble.Reader, h checkpoint.Hash, height uint64) (checkpoint.Hash, bool, error) {
	hdr, ok, err := c.header(r, h)
	if err != nil || !ok || hdr.Number < height {
		return checkpoint.Hash{}, false, err
	}
	cur := h
	for hdr.Number > height {
		canon, ok, err := c.canonical(r, hdr.Number)
		if err != nil {
			return checkpoint.Hash{}, false, err
		}
		if ok && canon == cur {
			return c.canonical(r, height)
		}
		cur = hdr.ParentHash
		if hdr, ok, err = c.header(r, cur); err != nil {
			return checkpoint.Hash{}, false, err
		} else if !ok {
			return checkpoint.Hash{}, false, c.corrupted("ancestor %s of %s missing", cur.Short(), h.Short())
		}
	}
	return cur, true, nil
}

// Rate limit of Pebble's error lines.
const (
	errorInterval = time.Second
	errorBurst    = 10
)

// pebbleLogger routes Pebble's printf logging to zap. Fatalf neither panics
// nor exits (Pebble calls it from background goroutines and from the commit
// path after a failed WAL sync): it records the first fatal error, after
// which every write fails with it and Failed is closed. Background errors (a
// failed flush or compaction, retried by Pebble without end and without a
// pause) and disk stalls beyond storagefault.MaxStall are fatal too, and
// also recorded in stuck, which abandons an open that waits for them. Error
// lines are rate-limited; after a fatal error they go to debug level and are
// counted, and Close sums them up.
type pebbleLogger struct {
	log   *zap.Logger
	fault *storagefault.Fault
	stuck *storagefault.Fault
	lines *storagefault.LineLimiter
}

func newPebbleLogger(log *zap.Logger) *pebbleLogger {
	return &pebbleLogger{log: log, fault: storagefault.NewFault(), stuck: storagefault.NewFault(),
		lines: storagefault.NewLineLimiter(errorInterval, errorBurst)}
}

func (l *pebbleLogger) Infof(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }

func (l *pebbleLogger) Errorf(format string, args ...any) {
	l.logError("Pebble error", zap.String("message", oneLineString(fmt.Sprintf(format, args...))))
}

func (l *pebbleLogger) logError(msg string, fields ...zap.Field) {
	if l.fault.Err() != nil {
		l.lines.Suppress()
		l.log.Debug(msg, fields...)
		return
	}
	if l.lines.Allow() {
		l.log.Error(msg, fields...)
	}
}

// Fatalf implements pebble.Logger: it records the fatal error (wrapping the
// first error among args, so that its errno stays visible) and returns.
func (l *pebbleLogger) Fatalf(format string, args ...any) {
	msg := oneLineString(fmt.Sprintf(format, args...))
	errs := []error{ErrFatal}
	for _, a := range args {
		if cause, ok := a.(error); ok {
			errs = append(errs, cause)
			break
		}
	}
	l.setFatal(&lineError{msg: fmt.Sprintf("%s: %s", ErrFatal, msg), errs: errs})
}

// setFatal records err unless a fatal error is already recorded, and logs
// it the first time.
func (l *pebbleLogger) setFatal(err error) {
	if !l.fault.Set(err) {
		l.lines.Suppress()
		return
	}
	l.log.Error("Pebble fatal error: chain database stops accepting writes", zap.String("message", err.Error()))
}

// Fatal returns the recorded fatal error, or nil.
func (l *pebbleLogger) Fatal() error { return l.fault.Err() }

func (l *pebbleLogger) backgroundError(err error) {
	if pebble.IsCorruptionError(err) || errors.Is(err, pebble.ErrCorruption) {
		l.setFatal(&lineError{msg: fmt.Sprintf("%s: %s: background error: %s", ErrFatal, ErrCorrupted, oneLine(err)), errs: []error{ErrFatal, ErrCorrupted, err}})
		return
	}
	fe := &lineError{msg: fmt.Sprintf("%s: background error: %s", ErrFatal, oneLine(err)), errs: []error{ErrFatal, err}}
	l.setFatal(fe)
	l.stuck.Set(fe)
}

func (l *pebbleLogger) diskSlow(info pebble.DiskSlowInfo) {
	if err := storagefault.StallError(info); err != nil {
		fe := &lineError{msg: fmt.Sprintf("%s: %s", ErrFatal, err), errs: []error{ErrFatal, err}}
		l.setFatal(fe)
		l.stuck.Set(fe)
		return
	}
	l.logError("Disk slow", zap.String("message", info.String()))
}

func (l *pebbleLogger) closeSummary() {
	if n := l.lines.TakeSuppressed(); n > 0 {
		l.log.Warn("Pebble error lines suppressed (rate limit, or repeats of the fatal error)", zap.Int64("count", n))
	}
}

func oneLineString(s string) string { return strings.Join(strings.Fields(s), " ") }

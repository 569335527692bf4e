package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/internal/storagefault"
	"github.com/flarechain/flare-node/node/api"
	"github.com/flarechain/flare-node/node/engine"
	"github.com/flarechain/flare-node/p2p"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/txpool"
)

// ErrStartup marks errors that refuse a start (corrupted or foreign
// database, bad key): cmd/flare-node prints them as one line.
var ErrStartup = errors.New("cannot start")

// ErrLowDiskSpace: the base path's file system has less free space than
// --min-free-disk (at start or while running). A runtime fault: exit 1.
var ErrLowDiskSpace = errors.New("not enough free disk space")

// ErrTaskExited is returned when an essential task returned without error
// while the node was not stopping.
var ErrTaskExited = errors.New("essential task exited")

// processStart approximates the process start for the start-up timings the
// node logs (package initialisation runs before main).
var processStart = time.Now()

// Clock is the time source; tests may inject one.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Node is a running flare-node.
type Node struct {
	cfg   *config.Config
	spec  *chainspec.Spec
	log   *zap.Logger
	clock Clock

	chain *asf.Chain
	// exec executes block bodies on the account state (set when the chain
	// opens); sigs caches verified transaction signatures.
	exec *engine.StateExecutor
	sigs *tx.SigCache
	// pool holds the transactions waiting for a block.
	pool *txpool.Pool
	// removals are the pool's recent removals, for GET /tx/{hash}.
	removals *txRemovals
	cpdb     *checkpointdb.CheckpointDB
	engine   *engine.Engine
	// gadget is the engine's finality gadget (nil without --enable-asf).
	gadget *finality.CheckpointFinality
	net    *p2p.Network
	netA   *netAdapter
	// producing: the node authors blocks (its key is an authority).
	producing bool
	// awaitMark: the high-water mark's finalized checkpoint that neither
	// database holds; no block is authored until the chain holds it
	// (checkLostChain).
	awaitMark *checkpoint.Checkpoint

	// metricsListener and rpcListener (--rpc-addr) are bound in New before
	// anything is created on disk.
	metricsListener net.Listener
	rpcListener     net.Listener
	// role is what the node does (for /status).
	role api.Role
	// diskEvery is the period of the free-disk-space watchdog.
	diskEvery time.Duration

	// signerMarker is the file that marks a fresh signer record's first use
	// as unfinished (see signerStart).
	signerMarker string

	// metrics are fed by the engine's hooks; api and servers exist when a
	// listener is configured.
	metrics   *metrics
	api       *api.Server
	servers   []*httpServer
	startedAt atomic.Int64 // unix ns when Run started the network

	fatalOnce sync.Once
	fatalCh   chan struct{}
	fatalErr  error

	timings startupTimings
}

type startupTimings struct {
	mu             sync.Mutex
	firstBlock     bool
	firstFinalized bool
}

// New starts a node in this order, so that a failure of anything that can
// fail early writes nothing: it checks that every directory the node writes
// can be created or written (without creating any) and that the base path's
// file system has cfg.MinFreeDiskMiB free, binds the metrics listener, binds
// the p2p listener (creating the network host), and only then creates the
// database directories and opens both databases concurrently, restores
// checkpoint state and wires the finality gadget. Nothing runs until Run.
//
// ctx bounds the start: when it is done (the first SIGINT), New returns
// promptly with an error wrapping ctx's error; a database open that hangs is
// abandoned (storagefault.ErrAbandoned) and left to the exiting process.
func New(ctx context.Context, cfg *config.Config, log *zap.Logger) (_ *Node, err error) {
	if cfg.Spec == nil {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	n := &Node{
		cfg:       cfg,
		spec:      cfg.Spec,
		log:       log.Named("node"),
		clock:     systemClock{},
		fatalCh:   make(chan struct{}),
		diskEvery: diskCheckInterval,
		metrics:   newMetrics(),
		sigs:      tx.NewSigCache(sigCacheSize),
	}
	defer func() {
		if err != nil {
			if cerr := n.closeAll(); cerr != nil {
				n.log.Warn("closing after a failed start", zap.Error(cerr))
			}
		}
	}()
	genesis := GenesisHash(n.spec)
	n.log.Info("Chain specification",
		zap.String("chain", n.spec.Name), zap.String("id", n.spec.ID),
		zap.Stringer("genesis", genesis), zap.Int("authorities", len(n.spec.Authorities)),
		zap.Uint64("checkpoint_interval", n.spec.CheckpointInterval),
		zap.Duration("slot", n.spec.SlotDuration()))

	if err := n.checkStorage(); err != nil {
		return nil, err
	}
	earlier := n.earlierRun()

	var key ed25519.PrivateKey
	var index checkpoint.ValidatorIndex
	isAuthority, author := false, false
	if cfg.Validator {
		if key, err = cfg.ValidatorKey(); err != nil {
			return nil, fmt.Errorf("%w: validator key: %w", ErrStartup, err)
		}
		pub := key.Public().(ed25519.PublicKey)
		index, author = authoritySet(n.spec).IndexOf(pub)
		later, inLater := laterSet(authoritySchedule(n.spec), pub)
		isAuthority = author || inLater
		switch {
		case !isAuthority:
			n.log.Warn("validator key is not in the chain's authority set; running as a full node",
				zap.String("public_key", fmt.Sprintf("%x", key.Public())))
		case !author:
			n.log.Info(fmt.Sprintf("Validator key loaded: it joins the authority set at set %d; it votes from that hand-off on and authors no blocks", later),
				zap.Uint64("set_id", later), zap.String("public_key", fmt.Sprintf("%x", key.Public())))
			if err := n.refuseMissingRecordEarly(pub, earlier); err != nil {
				return nil, err
			}
		default:
			n.log.Info("Validator key loaded", zap.Uint32("index", uint32(index)),
				zap.String("public_key", fmt.Sprintf("%x", key.Public())))
			if err := n.refuseMissingRecordEarly(key.Public().(ed25519.PublicKey), earlier); err != nil {
				return nil, err
			}
		}
	}
	if isAuthority {
		if err := n.refuseLostChainEarly(earlier); err != nil {
			return nil, err
		}
	}
	n.role = api.NewRole(isAuthority, uint32(index), cfg.EnableASF, cfg.Persistence.Enabled)

	// Bind the listeners before anything is created on disk.
	if cfg.Metrics.Addr != "" {
		if n.metricsListener, err = net.Listen("tcp", cfg.Metrics.Addr); err != nil {
			return nil, fmt.Errorf("%w: metrics listener %s: %w", ErrStartup, cfg.Metrics.Addr, err)
		}
	}
	if cfg.RPC.Addr != "" {
		if n.rpcListener, err = net.Listen("tcp", cfg.RPC.Addr); err != nil {
			return nil, fmt.Errorf("%w: rpc listener %s: %w", ErrStartup, cfg.RPC.Addr, err)
		}
	}
	n.net, err = p2p.New(ctx, p2p.Config{
		ListenAddrs:     cfg.P2P.ListenAddrs,
		Port:            cfg.P2P.Port,
		Bootnodes:       cfg.P2P.Bootnodes,
		NodeKeyPath:     cfg.NodeKeyPath(),
		AddressBookPath: cfg.AddressBookPath(),
		AllowPrivateIP:  cfg.PrivateIPAllowed(),
		MDNS:            cfg.MDNSEnabled(),
		Genesis:         genesis,
		MaxPeers:        cfg.P2P.MaxPeers,
		Logger:          log,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: network: %w", ErrStartup, err)
	}
	n.log.Info("Network host created", zap.Duration("since_start", time.Since(processStart)))

	// The two databases are independent: open them concurrently (start-up
	// time is dominated by Pebble's opens). Every failure is reported
	// (errors.Join), e.g. both locks of a base path in use.
	var opens sync.WaitGroup
	errs := make([]error, 2)
	opens.Go(func() {
		n.chain, errs[0] = asf.OpenChainContext(ctx, cfg.ChainDBPath(), n.spec, asf.ChainOptions{
			Logger: log, Clock: n.clock, StateRetention: cfg.StateRetentionBlocks,
			Executor: engine.NewStateExecutorFactory(n.spec, n.sigs, log, &n.exec),
		})
	})
	if cfg.EnableASF && cfg.Persistence.Enabled {
		opens.Go(func() {
			n.cpdb, errs[1] = checkpointdb.OpenContext(ctx, cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: genesis, Logger: log})
		})
	}
	opens.Wait()
	if err := joinErrors(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStartup, err)
	}
	if err := ctx.Err(); err != nil { // stopped during the opens: close them
		return nil, fmt.Errorf("%w: %w", ErrStartup, err)
	}
	best := n.chain.Best()
	n.log.Info("Chain database opened", zap.String("path", cfg.ChainDBPath()),
		zap.Uint64("best", best.Number), zap.Stringer("best_hash", best.Hash()))

	if isAuthority {
		if err := n.checkLostChain(ctx); err != nil {
			return nil, err
		}
	}
	n.removals = newTxRemovals()
	if n.pool, err = n.newPool(); err != nil {
		return nil, fmt.Errorf("%w: transaction pool: %w", ErrStartup, err)
	}
	if err := n.openEngine(ctx, log, key, index, isAuthority, author, earlier); err != nil {
		return nil, err
	}
	n.setupHTTP(log)
	return n, nil
}

// checkStorage refuses a start that would fail on storage, before anything
// is created: every directory the node writes (both databases, the network
// key's directory) must be writable or creatable by this process, as must
// the databases' LOCK files where they exist (Pebble opens them for
// writing) and the checkpoint database's high-water mark and its directory
// (checkHWMWritable), and the base path's file system must have the
// configured free space.
func (n *Node) checkStorage() error {
	cfg := n.cfg
	dbs := []string{cfg.ChainDBPath()}
	if cfg.EnableASF && cfg.Persistence.Enabled {
		dbs = append(dbs, cfg.CheckpointDBPath())
	}
	for _, d := range append(dbs, filepath.Dir(cfg.NodeKeyPath())) {
		if err := storagefault.CheckWritable(d); err != nil {
			return fmt.Errorf("%w: cannot write the node's data below base path %s: %w", ErrStartup, cfg.BasePath, err)
		}
	}
	for _, d := range dbs {
		if err := storagefault.CheckWritableFile(filepath.Join(d, "LOCK")); err != nil {
			return fmt.Errorf("%w: cannot write the node's data below base path %s: %w", ErrStartup, cfg.BasePath, err)
		}
	}
	if cfg.EnableASF && cfg.Persistence.Enabled {
		if err := checkHWMWritable(checkpointdb.HWMPath(cfg.CheckpointDBPath())); err != nil {
			return err
		}
	}
	return n.checkFreeSpace()
}

// checkFreeSpace returns an error wrapping ErrLowDiskSpace when the base
// path's file system has less than cfg.MinFreeDiskMiB free (0 disables it).
func (n *Node) checkFreeSpace() error {
	minFree := n.cfg.MinFreeDiskBytes()
	if minFree == 0 {
		return nil
	}
	free, err := freeBytes(n.cfg.BasePath)
	if err != nil {
		return fmt.Errorf("free disk space of base path %s: %w", n.cfg.BasePath, err)
	}
	if free < minFree {
		return fmt.Errorf("%w: %s free on the file system of base path %s, the minimum is %s (--min-free-disk %d; 0 disables the check)",
			ErrLowDiskSpace, storagefault.FormatBytes(free), n.cfg.BasePath, storagefault.FormatBytes(minFree), n.cfg.MinFreeDiskMiB)
	}
	if free < 2*minFree {
		n.log.Warn("Free disk space is low: the node stops below --min-free-disk",
			zap.String("free", storagefault.FormatBytes(free)), zap.String("minimum", storagefault.FormatBytes(minFree)),
			zap.String("base_path", n.cfg.BasePath))
	}
	return nil
}

// joinErrors is errors.Join with the messages separated by "; " (they end
// up on one line).
func joinErrors(errs ...error) error {
	var nonNil []error
	for _, e := range errs {
		if e != nil {
			nonNil = append(nonNil, e)
		}
	}
	switch len(nonNil) {
	case 0:
		return nil
	case 1:
		return nonNil[0]
	}
	return &multiError{errs: nonNil}
}

type multiError struct{ errs []error }

func (m *multiError) Error() string {
	msgs := make([]string, len(m.errs))
	for i, e := range m.errs {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

func (m *multiError) Unwrap() []error { return m.errs }

// freeBytes reads the free space of a path's file system (tests replace it).
var freeBytes = storagefault.FreeBytes

// openEngine builds the finality gadget's configuration, the validator's
// signer and producer, the engine, and restores it.
func (n *Node) openEngine(ctx context.Context, log *zap.Logger, key ed25519.PrivateKey, index checkpoint.ValidatorIndex, isAuthority, author bool, earlier earlierRun) error {
	cfg := n.cfg
	genesis := GenesisHash(n.spec)
	n.netA = &netAdapter{n: n}
	ecfg := engine.Config{
		Spec:    n.spec,
		Genesis: genesis,
		Chain:   n.chain,
		Clock:   n.clock,
		Network: n.netA,
		Logger:  log,
		Alone:   n.alone(),
		Metrics: n.metrics,
		// --doppelganger-listen: a restarted record listens like a fresh one.
		DoppelgangerListen: cfg.DoppelgangerListen,
		NoListen:           isBuiltinDev(n.spec),
		TrustedCheckpoint:  cfg.TrustedCheckpoint,
		OnFinalized: func(cp checkpoint.Checkpoint) {
			n.noteFirstFinalized(cp.Number)
			select {
			case n.metrics.txLatency.finalized <- cp:
			default: // the pool task is behind; the next advance covers it
			}
		},
	}
	if author {
		// Block authorship follows the genesis set (issue 18: authoring
		// through hand-offs is not built yet).
		ecfg.Producer = asf.NewProducer(n.chain, n.spec, key, index, n.clock, log)
		ecfg.Producer.SetBuilder(n.exec)
		n.exec.SetSource(engine.PoolSource{Pool: n.pool})
		n.exec.SetClock(n.clock.Now)
		n.producing = true
	}
	if !cfg.EnableASF {
		n.log.Warn("ASF finality gadget disabled (--enable-asf not set): blocks are produced but never finalized, and this node never votes")
	} else {
		pc := cfg.Persistence
		sched := authoritySchedule(n.spec)
		ecfg.Finality = &finality.Config{
			Authorities: authoritySet(n.spec),
			Persistence: finality.CheckpointPersistenceConfig{
				Enabled:              pc.Enabled,
				RetentionCheckpoints: pc.RetentionCheckpoints,
				FlushInterval:        pc.FlushInterval,
				PruneInterval:        pc.PruneInterval,
			},
		}
		if len(sched.Changes) > 0 {
			ecfg.Finality.Schedule = &sched
		}
		if pc.Enabled {
			n.log.Info(fmt.Sprintf("Checkpoint persistence enabled: retention=%d checkpoints, flush_interval=%ds",
				pc.RetentionCheckpoints, int(pc.FlushInterval.Seconds())),
				zap.Uint64("retention", pc.RetentionCheckpoints), zap.Duration("flush_interval", pc.FlushInterval),
				zap.Duration("prune_interval", pc.PruneInterval))
			ecfg.Store = n.cpdb
			ecfg.Certificates = certSource{n}
			ecfg.Votes = n.cpdb
			if isAuthority {
				mode, err := n.signerStart(ctx, key, earlier)
				if err != nil {
					return err
				}
				ecfg.Signer = finality.NewSafeSigner(n.cpdb, finality.NewKeySigner(key), index, genesis)
				ecfg.SignerInit = mode
				ecfg.OnSignerInitialised = n.signerInitialised
			}
		} else if isAuthority {
			n.log.Warn("Checkpoint persistence disabled: this node will not vote (a validator never signs without a durable signer record)")
		}
	}
	e, err := engine.New(ecfg)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStartup, err)
	}
	n.engine, n.gadget = e, e.Gadget()
	start := time.Now()
	if err := e.Restore(ctx); err != nil {
		if errors.Is(err, engine.ErrChainLacksFinalized) || errors.Is(err, engine.ErrDatabasesDisagree) {
			return fmt.Errorf("%w: %w", ErrStartup, err)
		}
		return fmt.Errorf("%w: restore checkpoint state: %w", ErrStartup, err)
	}
	if n.gadget != nil {
		n.log.Info("Checkpoint state restore timing",
			zap.Duration("restore", time.Since(start)), zap.Duration("since_start", time.Since(processStart)))
	}
	return nil
}

// isBuiltinDev: spec is exactly the built-in dev chain (one public key).
func isBuiltinDev(spec *chainspec.Spec) bool {
	dev, err := chainspec.Builtin("dev")
	return err == nil && dev.Hash() == spec.Hash()
}

// alone: no peer can ever be expected (a single-authority chain without
// bootnodes).
func (n *Node) alone() bool { return len(n.spec.Authorities) == 1 && len(n.cfg.P2P.Bootnodes) == 0 }

// sigCacheSize is how many verified transaction signatures are remembered
// (a few full blocks and a full pool).
const sigCacheSize = 200_000

// GenesisHash is the chain identity every vote, certificate, database and
// gossip topic is bound to: the hash of the genesis block, whose body root is
// the BLAKE2b-256 hash of the canonical chain spec (so it commits to the whole
// spec). Checkpoint 0 is (0, GenesisHash).
//
// A spec that passed Validate always has one; for any other the zero hash
// is returned, which matches no chain.
func GenesisHash(spec *chainspec.Spec) checkpoint.Hash {
	h, err := engine.GenesisHash(spec)
	if err != nil {
		return checkpoint.ZeroHash
	}
	return h
}

// authoritySchedule is the spec's authority schedule bound to the chain
// identity.
func authoritySchedule(spec *chainspec.Spec) checkpoint.Schedule {
	sched := spec.Schedule()
	sched.Genesis = authoritySet(spec)
	return sched
}

// laterSet returns the first set of sched after the genesis set that holds
// pub.
func laterSet(sched checkpoint.Schedule, pub ed25519.PublicKey) (uint64, bool) {
	for _, ch := range sched.Changes {
		for _, k := range ch.Keys {
			if k.Equal(pub) {
				return ch.SetID, true
			}
		}
	}
	return 0, false
}

// authoritySet is the spec's authority set bound to the chain identity.
func authoritySet(spec *chainspec.Spec) checkpoint.AuthoritySet {
	set := spec.AuthoritySet()
	set.Genesis = GenesisHash(spec)
	return set
}

// fail reports a fatal error from any goroutine; the supervisor stops the node.
func (n *Node) fail(err error) {
	n.fatalOnce.Do(func() {
		n.fatalErr = err
		close(n.fatalCh)
	})
}

// Run starts the network and the supervised tasks and blocks until ctx is
// cancelled or an essential task ends. Everything is closed on return.
//
// A fatal storage error of either database (Failed) and free disk space
// below --min-free-disk stop the node with an error. An error closing the
// databases is returned when the run itself ended without one.
func (n *Node) Run(ctx context.Context) (err error) {
	defer func() {
		if cerr := n.closeAll(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	n.netA.mu.Lock()
	n.netA.ctx = ctx
	n.netA.mu.Unlock()
	defer n.netA.wg.Wait()
	if err := n.net.Start(ctx, (*gossipHandler)(n), (*syncHandler)(n)); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			// A stop signal during the network start is a clean shutdown.
			n.log.Info("Stopped while starting the network")
			return nil
		}
		return fmt.Errorf("start network: %w", err)
	}
	n.startedAt.Store(time.Now().UnixNano())
	n.log.Info("Network started", zap.Stringer("peer_id", n.net.ID()),
		zap.Duration("since_start", time.Since(processStart)))

	g, gctx := errgroup.WithContext(ctx)
	essential := func(name string, task func(context.Context) error) {
		g.Go(func() error {
			err := task(gctx)
			switch {
			case err != nil && !errors.Is(err, context.Canceled):
				n.log.Error("essential task failed; stopping the node", zap.String("task", name), zap.Error(err))
				return fmt.Errorf("%s: %w", name, err)
			case gctx.Err() == nil:
				n.log.Error("essential task exited; stopping the node", zap.String("task", name))
				return fmt.Errorf("%w: %s", ErrTaskExited, name)
			}
			return nil
		})
	}
	chainFailed := n.chain.Failed()
	var cpdbFailed <-chan struct{} // nil: never
	if n.cpdb != nil {
		cpdbFailed = n.cpdb.Failed()
	}
	chain, cpdb := n.chain, n.cpdb
	essential("fatal-watch", func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.fatalCh:
			return n.fatalErr
		case <-chainFailed:
			return fmt.Errorf("chain database: %w", chain.FatalError())
		case <-cpdbFailed:
			return fmt.Errorf("checkpoint database: %w", cpdb.FatalError())
		}
	})
	if n.cfg.MinFreeDiskMiB > 0 {
		essential("disk-space", n.runDiskWatch)
	}
	essential("peers", n.runPeers)
	essential("status", n.runStatus)
	essential("engine-tick", n.runTick)
	essential("txpool", n.runPool)
	if n.gadget != nil {
		essential("checkpoint-maintenance", n.runMaintenance)
	}
	if n.producing {
		essential("ppfa-proposer", n.runProducerAfterMark)
	}
	for _, s := range n.servers {
		essential(s.name, s.run)
	}
	err = g.Wait()
	if err == nil || (ctx.Err() != nil && errors.Is(err, context.Canceled)) {
		n.log.Info("Shutting down: production stopped")
		return nil
	}
	return err
}

// closeAll closes what is open, in reverse start order: network, then a final
// flush of the checkpoint DB, then the databases. It returns the errors of
// the database flush and closes (they make the exit code non-zero).
func (n *Node) closeAll() error {
	var errs []error
	for _, s := range n.servers {
		_ = s.srv.Close() // closes its listener
	}
	n.servers = nil
	for _, l := range []*net.Listener{&n.metricsListener, &n.rpcListener} {
		if *l != nil {
			_ = (*l).Close()
			*l = nil
		}
	}
	if n.net != nil {
		if err := n.net.Close(); err != nil {
			n.log.Warn("closing network", zap.Error(err))
		} else {
			n.log.Info("Network stopped")
		}
		n.net = nil
	}
	if n.cpdb != nil {
		if n.cpdb.FatalError() == nil { // after a fatal error the flush only repeats it
			if err := n.cpdb.Flush(context.Background()); err != nil {
				n.log.Error("final checkpoint database flush failed", zap.Error(err))
				errs = append(errs, fmt.Errorf("final checkpoint database flush: %w", err))
			}
		}
		if err := n.cpdb.Close(); err != nil {
			n.log.Error("closing checkpoint database", zap.Error(err))
			errs = append(errs, err)
		} else {
			n.log.Info("Checkpoint database flushed and closed")
		}
		n.cpdb = nil
	}
	if n.chain != nil {
		if err := n.chain.Close(); err != nil {
			n.log.Error("closing chain database", zap.Error(err))
			errs = append(errs, fmt.Errorf("close chain database: %w", err))
		} else {
			n.log.Info("Chain database closed")
		}
		n.chain = nil
	}
	return errors.Join(errs...)
}

// PeerID returns the libp2p identity (after New).
func (n *Node) PeerID() string { return n.net.ID().String() }

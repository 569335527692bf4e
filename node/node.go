package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
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
	"github.com/flarechain/flare-node/p2p"
)

// ErrStartup marks errors that refuse a start (corrupted or foreign
// database, bad key): cmd/flare-node prints them as one line.
var ErrStartup = errors.New("cannot start")

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

	chain    *asf.Chain
	cpdb     *checkpointdb.CheckpointDB
	gadget   *finality.CheckpointFinality
	net      *p2p.Network
	producer *asf.Producer

	// importMu serializes chain mutations (imports, justification, finality).
	importMu sync.Mutex

	status     *statusServer
	events     *eventQueue
	syncReq    chan syncRequest
	syncActive atomic.Bool

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

// New opens the databases, restores checkpoint state and creates the network
// host. Nothing runs until Run.
func New(cfg *config.Config, log *zap.Logger) (_ *Node, err error) {
	if cfg.Spec == nil {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	n := &Node{
		cfg:     cfg,
		spec:    cfg.Spec,
		log:     log.Named("node"),
		clock:   systemClock{},
		events:  newEventQueue(),
		syncReq: make(chan syncRequest, 16),
		fatalCh: make(chan struct{}),
	}
	defer func() {
		if err != nil {
			n.closeAll()
		}
	}()
	genesis := GenesisHash(n.spec)
	n.log.Info("Chain specification",
		zap.String("chain", n.spec.Name), zap.String("id", n.spec.ID),
		zap.Stringer("genesis", genesis), zap.Int("authorities", len(n.spec.Authorities)),
		zap.Uint64("checkpoint_interval", n.spec.CheckpointInterval),
		zap.Duration("slot", n.spec.SlotDuration()))

	var key ed25519.PrivateKey
	var index checkpoint.ValidatorIndex
	isAuthority := false
	if cfg.Validator {
		if key, err = cfg.ValidatorKey(); err != nil {
			return nil, fmt.Errorf("%w: validator key: %w", ErrStartup, err)
		}
		index, isAuthority = authoritySet(n.spec).IndexOf(key.Public().(ed25519.PublicKey))
		if !isAuthority {
			n.log.Warn("validator key is not in the chain's authority set; running as a full node",
				zap.String("public_key", fmt.Sprintf("%x", key.Public())))
		} else {
			n.log.Info("Validator key loaded", zap.Uint32("index", uint32(index)),
				zap.String("public_key", fmt.Sprintf("%x", key.Public())))
		}
	}

	// The two databases and the network host are independent: open them
	// concurrently (start-up time is dominated by Pebble's opens).
	// Every failure is reported (errors.Join), e.g. both locks of a base path
	// in use.
	var opens sync.WaitGroup
	errs := make([]error, 3)
	opens.Go(func() {
		n.chain, errs[0] = asf.OpenChain(cfg.ChainDBPath(), n.spec, asf.ChainOptions{Logger: log, Clock: n.clock})
	})
	if cfg.EnableASF && cfg.Persistence.Enabled {
		opens.Go(func() {
			n.cpdb, errs[1] = checkpointdb.Open(cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: genesis, Logger: log})
		})
	}
	opens.Go(func() {
		var err error
		n.net, err = p2p.New(context.Background(), p2p.Config{
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
			errs[2] = fmt.Errorf("network: %w", err)
		}
	})
	opens.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStartup, err)
	}
	best := n.chain.Best()
	n.log.Info("Chain database opened", zap.String("path", cfg.ChainDBPath()),
		zap.Uint64("best", best.Number), zap.Stringer("best_hash", best.Hash()))
	n.log.Info("Network host created", zap.Duration("since_start", time.Since(processStart)))

	if cfg.EnableASF {
		if err := n.openFinality(log, key, index, isAuthority); err != nil {
			return nil, err
		}
	} else {
		n.log.Info("ASF finality gadget disabled (--enable-asf not set): blocks are produced but never finalized")
	}

	if cfg.Metrics.Addr != "" {
		if n.status, err = newStatusServer(n, cfg.Metrics.Addr); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStartup, err)
		}
	}
	if isAuthority {
		n.producer = asf.NewProducer(n.chain, n.spec, key, index, n.clock, log)
	}
	return n, nil
}

func (n *Node) openFinality(log *zap.Logger, key ed25519.PrivateKey, index checkpoint.ValidatorIndex, isAuthority bool) error {
	pc := n.cfg.Persistence
	persistence := finality.CheckpointPersistenceConfig{
		Enabled:              pc.Enabled,
		RetentionCheckpoints: pc.RetentionCheckpoints,
		FlushInterval:        pc.FlushInterval,
		PruneInterval:        pc.PruneInterval,
	}
	deps := finality.Deps{
		Clock:       n.clock,
		Broadcaster: (*gadgetBroadcaster)(n),
		Ancestry:    n.chain,
		Observer:    n.events,
		Logger:      log,
	}
	if pc.Enabled {
		n.log.Info(fmt.Sprintf("Checkpoint persistence enabled: retention=%d checkpoints, flush_interval=%ds",
			pc.RetentionCheckpoints, int(pc.FlushInterval.Seconds())),
			zap.Uint64("retention", pc.RetentionCheckpoints), zap.Duration("flush_interval", pc.FlushInterval),
			zap.Duration("prune_interval", pc.PruneInterval))
		deps.Store = n.cpdb
		if isAuthority {
			deps.Signer = finality.NewSafeSigner(n.cpdb, finality.NewKeySigner(key), index, GenesisHash(n.spec))
		}
	} else {
		n.log.Warn("Checkpoint persistence disabled: this node will not vote (a validator never signs without a durable signer record)")
	}
	g, err := finality.New(finality.Config{
		Authorities: authoritySet(n.spec),
		Persistence: persistence,
	}, deps)
	if err != nil {
		return fmt.Errorf("%w: finality gadget: %w", ErrStartup, err)
	}
	n.gadget = g
	if pc.Enabled {
		start := time.Now()
		if err := g.RestoreFromStorage(context.Background()); err != nil {
			return fmt.Errorf("%w: restore checkpoint state: %w", ErrStartup, err)
		}
		n.log.Info("Checkpoint state restore timing",
			zap.Duration("restore", time.Since(start)), zap.Duration("since_start", time.Since(processStart)))
	}
	// Bring the chain's fork choice and finality marker in line with the
	// restored gadget state.
	ctx := context.Background()
	if j := g.LatestJustified(); j.Number > 0 {
		if _, err := n.chain.SetJustified(ctx, j); err != nil {
			n.log.Warn("restored justified checkpoint not applicable to the chain yet", zap.Stringer("justified", j), zap.Error(err))
		}
	}
	if f := g.LatestFinalized(); f.Number > 0 && f.Number > n.chain.Finalized().Number {
		if err := n.chain.SetFinalized(ctx, f); err != nil {
			n.log.Warn("restored finalized checkpoint not applicable to the chain yet", zap.Stringer("finalized", f), zap.Error(err))
		}
	}
	return nil
}

// GenesisHash is the chain identity every vote, certificate, database and
// gossip topic is bound to: the hash of the genesis block, whose body root is
// the BLAKE2b-256 hash of the canonical chain spec (so it commits to the whole
// spec). Checkpoint 0 is (0, GenesisHash).
func GenesisHash(spec *chainspec.Spec) checkpoint.Hash {
	return asf.GenesisBlock(spec).Header.Hash()
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
func (n *Node) Run(ctx context.Context) error {
	defer n.closeAll()
	if err := n.net.Start(ctx, (*gossipHandler)(n), (*syncHandler)(n)); err != nil {
		return fmt.Errorf("start network: %w", err)
	}
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
	essential("fatal-watch", func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.fatalCh:
			return n.fatalErr
		}
	})
	essential("finality-events", n.runEvents)
	essential("sync", n.runSync)
	essential("status", n.runStatus)
	if n.gadget != nil {
		essential("checkpoint-maintenance", n.runMaintenance)
		essential("asf-tick", n.runTick)
	}
	if n.producer != nil {
		essential("ppfa-proposer", n.runProducer)
	}
	if n.status != nil {
		essential("metrics", n.status.run)
	}
	err := g.Wait()
	if err == nil || (ctx.Err() != nil && errors.Is(err, context.Canceled)) {
		n.log.Info("Shutting down: production stopped")
		return nil
	}
	return err
}

// closeAll closes what is open, in reverse start order: network, then a final
// flush of the checkpoint DB, then the databases.
func (n *Node) closeAll() {
	if n.status != nil {
		_ = n.status.srv.Close()
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
		if err := n.cpdb.Flush(context.Background()); err != nil {
			n.log.Error("final checkpoint database flush failed", zap.Error(err))
		}
		if err := n.cpdb.Close(); err != nil {
			n.log.Error("closing checkpoint database", zap.Error(err))
		} else {
			n.log.Info("Checkpoint database flushed and closed")
		}
		n.cpdb = nil
	}
	if n.chain != nil {
		if err := n.chain.Close(); err != nil {
			n.log.Error("closing chain database", zap.Error(err))
		} else {
			n.log.Info("Chain database closed")
		}
		n.chain = nil
	}
}

// PeerID returns the libp2p identity (after New).
func (n *Node) PeerID() string { return n.net.ID().String() }

package sim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/node/engine"
	"github.com/flarechain/flare-node/txpool"
)

// poolLifetime is how long a transfer may wait in a node's pool.
const poolLifetime = 2 * time.Minute

// syncPools runs after every step: each up node's pool follows its best
// chain (engine.PoolTracker, as the node's own loop does), and an executor
// mutant's idea of the best block is refreshed.
func (w *world) syncPools() {
	for _, nd := range w.nodes {
		if !nd.up || nd.tracker == nil {
			continue
		}
		_, _ = nd.tracker.Sync()
		if nd.mexec != nil {
			nd.mexec.best = nd.chain.Best()
		}
	}
}

// simNode is one node: its file system survives crashes (as a crash
// clone), everything else is rebuilt at each start.
type simNode struct {
	w    *world
	id   int
	name string
	// key is the validator index whose key the node holds (-1: full node).
	key int
	// honest: the node's key is used only by this node's real code.
	honest bool
	// fresh: the node starts with a fresh signer record (new validator or
	// explicit init).
	fresh bool
	skew  time.Duration

	fs    *vfs.MemFS
	up    bool
	gen   int
	chain *asf.Chain
	exec  *engine.StateExecutor
	cpdb  *checkpointdb.CheckpointDB
	eng   *engine.Engine
	// pool is the node's transaction pool (in memory: lost in a crash);
	// tracker keeps it on the best chain (Sync after every step).
	pool    *txpool.Pool
	tracker *engine.PoolTracker
	// mexec wraps the executor when an executor mutant is on (else nil).
	mexec *mutExec

	// seen is the gossip dedup cache of this incarnation.
	seen map[msgID]bool
	// maxFinalized is the highest finalized number this node reported (in
	// any incarnation).
	maxFinalized uint64
	startedAt    time.Time
	upSince      time.Time
	restarts     int

	// halted: the node's gadget raised a safety alarm (it must still be
	// halted after any restart).
	halted bool
	// byz: the node's misbehaviours (nil: none); passive: a byzantine
	// actor without an engine (it only forges messages).
	byz     *byzState
	passive bool
	// keyless: a peer without any validator key (only a network identity):
	// a sync peer of every engine that answers requests its own way (see
	// keyless.go); it is passive (no engine) and not honest.
	keyless *keylessState
	// reinstalls counts re-installations on a new machine (base path
	// deleted, fresh signer record).
	reinstalls int
}

type nodeClock struct{ nd *simNode }

func (c nodeClock) Now() time.Time { return c.nd.w.now.Add(c.nd.skew) }

const (
	chainPath      = "chain"
	checkpointPath = "checkpoints"
	tickEvery      = 500 * time.Millisecond
	maintainEvery  = time.Second
)

func (w *world) addNode(key int, honest bool) *simNode {
	nd := &simNode{w: w, id: len(w.nodes), key: key, honest: honest, fs: vfs.NewCrashableMem()}
	if key >= 0 {
		nd.name = fmt.Sprintf("n%d(v%d)", nd.id, key)
	} else {
		nd.name = fmt.Sprintf("n%d(full)", nd.id)
	}
	w.nodes = append(w.nodes, nd)
	return nd
}

// start opens the databases on the node's file system, builds the engine,
// restores it and connects the node. A start-up refusal is recorded.
func (nd *simNode) start() {
	w := nd.w
	if nd.up {
		return
	}
	nd.gen++
	nd.seen = make(map[msgID]bool)
	if nd.passive {
		nd.up = true
		nd.upSince = w.now
		if nd.startedAt.IsZero() {
			nd.startedAt = w.now
		}
		if nd.keyless != nil {
			w.record("%s up (keyless peer, no engine)", nd.name)
			for _, other := range w.nodes {
				if other != nd && other.up && w.net.connected(nd.id, other.id) {
					nd.connect(other)
				}
			}
			return
		}
		w.record("%s up (byzantine, no engine)", nd.name)
		return
	}
	clock := nodeClock{nd}
	log := w.log.Named(nd.name)
	var exec *engine.StateExecutor
	factory := engine.NewStateExecutorFactory(w.spec, nil, log, &exec)
	nd.mexec = nil
	if w.mut.exec != (execMutations{}) {
		nd.mexec = &mutExec{m: w.mut.exec}
		factory = nd.mexec.wrap(factory)
	}
	chain, err := asf.OpenChain(chainPath, w.spec, asf.ChainOptions{FS: nd.fs, Clock: clock, Logger: log,
		Executor: factory, AuthorityChanges: w.sched.Changes})
	if err != nil {
		w.violation("%s: chain database does not open after a crash: %v", nd.name, err)
		return
	}
	exec.SetMutations(w.mut.state)
	exec.SetClock(clock.Now)
	if nd.mexec != nil {
		nd.mexec.best, nd.mexec.hasBest = chain.Best(), true
	}
	pcfg := txpool.DefaultConfig()
	pcfg.Genesis, pcfg.MinFee, pcfg.Lifetime = w.genesis, w.spec.MinFee, poolLifetime
	pool := txpool.New(pcfg, clock, nil, engine.PoolState{Chain: chain, Exec: exec})
	exec.SetSource(engine.PoolSource{Pool: pool})
	cpdb, err := checkpointdb.Open(checkpointPath, checkpointdb.Options{FS: nd.fs, Genesis: w.genesis, Logger: log})
	if err != nil {
		_ = chain.Close()
		w.violation("%s: checkpoint database does not open after a crash: %v", nd.name, err)
		return
	}
	cfg := engine.Config{
		Spec:    w.spec,
		Genesis: w.genesis,
		Chain:   chain,
		Finality: &finality.Config{
			Authorities: w.auth,
			Schedule:    w.schedulePtr(),
			Persistence: finality.CheckpointPersistenceConfig{
				Enabled:              true,
				RetentionCheckpoints: w.sc.retention,
				FlushInterval:        2 * time.Second,
				PruneInterval:        w.sc.pruneEvery,
			},
			Mutations: w.mut.finality,
		},
		Store:        cpdb,
		Certificates: certSource{cpdb},
		Clock:        clock,
		Network:      &nodeNet{nd: nd},
		Logger:       log,
		Mutations:    w.mut.engine,
		// Explicit, so that a trickling keyless peer reads the same value.
		RequestTimeout: w.keylessRequestTimeout(),
	}
	// The checkpoint database answers peers' votes-by-validator requests
	// once it implements the engine's VoteSource.
	if vs, ok := any(cpdb).(engine.VoteSource); ok {
		cfg.Votes = vs
	}
	if nd.key >= 0 {
		key := w.keys[nd.key]
		// The index in the genesis set (with a schedule the signer signs
		// with the key's index in each vote's set; a key of a later set
		// only has none here).
		idx, _ := w.auth.IndexOf(w.pub(nd.key))
		cfg.Signer = finality.NewSafeSigner(cpdb, finality.NewKeySigner(key), idx, w.genesis, w.mut.signer)
		if w.inGenesisSet(nd.key) {
			// Block authorship follows the genesis set (as node.New does:
			// authoring through hand-offs is not built yet): a joiner's
			// node authors nothing, a removed validator's keeps authoring.
			cfg.Producer = asf.NewProducer(chain, w.spec, key, idx, clock, log)
			cfg.Producer.SetBuilder(exec)
		}
		if nd.fresh {
			cfg.SignerInit = engine.SignerFresh
			cfg.OnSignerInitialised = func() { nd.fresh = false }
		}
	}
	eng, err := engine.New(cfg)
	if err == nil {
		err = eng.Restore(w.ctx)
	}
	if err != nil {
		_ = cpdb.Close()
		_ = chain.Close()
		if errors.Is(err, engine.ErrChainLacksFinalized) || errors.Is(err, engine.ErrDatabasesDisagree) {
			w.record("%s refused to start: %v", nd.name, err)
			return
		}
		w.violation("%s: start failed: %v", nd.name, err)
		return
	}
	nd.chain, nd.exec, nd.cpdb, nd.eng = chain, exec, cpdb, eng
	nd.pool, nd.tracker = pool, engine.NewPoolTracker(chain, exec, pool)
	nd.up = true
	nd.upSince = w.now
	if nd.startedAt.IsZero() {
		nd.startedAt = w.now
	}
	if g := eng.Gadget(); g != nil {
		f := g.LatestFinalized().Number
		if f < nd.maxFinalized {
			w.violation("%s restored finalized %d below %d it reached before", nd.name, f, nd.maxFinalized)
			return
		}
	}
	if nd.halted && !eng.Gadget().Halted() {
		w.violation("%s was halted on a safety alarm before the restart and is not any more", nd.name)
		return
	}
	w.check.onStart(w, nd)
	w.record("%s up (gen %d, best #%d, finalized %d)", nd.name, nd.gen, chain.Best().Number, eng.Gadget().LatestFinalized().Number)
	nd.scheduleTimers()
	for _, other := range w.nodes {
		if other != nd && other.up && w.net.connected(nd.id, other.id) {
			nd.connect(other)
		}
	}
}

// connect tells both engines about the connection (a byzantine actor
// without an engine is not a sync peer; a keyless peer is one).
func (nd *simNode) connect(other *simNode) {
	w := nd.w
	switch {
	case nd.eng != nil && other.eng != nil:
		nd.eng.OnPeerConnected(w.ctx, engine.PeerID(other.name))
		other.eng.OnPeerConnected(w.ctx, engine.PeerID(nd.name))
	case nd.eng != nil && other.keyless != nil:
		nd.eng.OnPeerConnected(w.ctx, engine.PeerID(other.name))
	case nd.keyless != nil && other.eng != nil:
		other.eng.OnPeerConnected(w.ctx, engine.PeerID(nd.name))
	}
}

func (nd *simNode) disconnect(other *simNode) {
	if nd.up && nd.eng != nil {
		nd.eng.OnPeerDisconnected(engine.PeerID(other.name))
	}
	if other.up && other.eng != nil {
		other.eng.OnPeerDisconnected(engine.PeerID(nd.name))
	}
}

// scheduleTimers starts the slot, tick and maintenance timers of this
// incarnation.
func (nd *simNode) scheduleTimers() {
	w := nd.w
	if w.inGenesisSet(nd.key) {
		nd.scheduleSlot(asf.SlotAt(w.spec, w.now.Add(nd.skew)) + 1)
	}
	var tick func()
	tick = func() {
		if err := nd.eng.Tick(w.ctx); err != nil {
			nd.failed(err)
			return
		}
		w.after(tickEvery, nd.id, "tick", tick)
	}
	w.after(tickEvery, nd.id, "tick", tick)
	var maint func()
	maint = func() {
		if err := nd.eng.Maintenance(w.ctx); err != nil {
			nd.failed(err)
			return
		}
		w.after(maintainEvery, nd.id, "maintenance", maint)
	}
	w.after(maintainEvery, nd.id, "maintenance", maint)
}

// scheduleSlot runs OnSlot at the start of slot by the node's clock.
func (nd *simNode) scheduleSlot(slot uint64) {
	w := nd.w
	at := asf.SlotStart(w.spec, slot).Add(-nd.skew)
	w.schedule(at, nd.id, "slot", func() {
		b, err := nd.eng.OnSlot(w.ctx, slot)
		if err != nil {
			nd.failed(err)
			return
		}
		if b != nil {
			w.noteBlock(*b)
			w.record("%s authored #%d %s slot %d (%d txs)", nd.name, b.Header.Number, shortHash(b.Hash()), slot, len(b.Extrinsics))
			if nd.byz != nil {
				w.byzAuthored(nd, *b)
			}
		}
		nd.scheduleSlot(slot + 1)
	})
}

// failed handles an engine error: with the real file system this stops the
// node (exit 1); here it is an invariant violation (nothing injects I/O
// errors).
func (nd *simNode) failed(err error) {
	nd.w.violation("%s stopped on a local failure: %v", nd.name, err)
}

// shutdown closes the databases (a clean stop).
func (nd *simNode) shutdown() {
	if !nd.up {
		return
	}
	nd.up = false
	if nd.cpdb != nil {
		_ = nd.cpdb.Flush(context.Background())
		_ = nd.cpdb.Close()
	}
	if nd.chain != nil {
		_ = nd.chain.Close()
	}
	nd.chain, nd.cpdb, nd.eng = nil, nil, nil
	nd.pool, nd.tracker = nil, nil
}

// crash stops the node abruptly: its file system keeps only what was
// synced. Peer votes (unsynced by design) are made durable first so that
// a run does not depend on whether a background memtable flush happened to
// finish: their loss is covered by checkpointdb's own crash tests.
func (nd *simNode) crash() {
	w := nd.w
	if !nd.up {
		return
	}
	if nd.passive {
		nd.up = false
		return
	}
	for _, other := range w.nodes {
		if other != nd && other.up && other.eng != nil {
			other.eng.OnPeerDisconnected(engine.PeerID(nd.name))
		}
	}
	if err := nd.cpdb.Flush(w.ctx); err != nil {
		w.violation("%s flush before crash: %v", nd.name, err)
	}
	clone := nd.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	_ = nd.cpdb.Close()
	_ = nd.chain.Close()
	nd.chain, nd.cpdb, nd.eng = nil, nil, nil
	nd.pool, nd.tracker = nil, nil
	nd.up = false
	nd.fs = clone
	nd.restarts++
	w.record("%s crashed", nd.name)
	w.check.onCrash(w, nd)
}

// purge deletes the node's chain database and checkpoint history while it
// is stopped, keeping the signer records (what `flare-node purge-chain`
// does).
func (nd *simNode) purge() {
	w := nd.w
	if nd.up {
		nd.crash()
	}
	if err := removeAll(nd.fs, chainPath); err != nil {
		w.violation("%s purge chain: %v", nd.name, err)
		return
	}
	db, err := checkpointdb.Open(checkpointPath, checkpointdb.Options{FS: nd.fs, Genesis: w.genesis})
	if err != nil {
		w.violation("%s purge: open checkpoint database: %v", nd.name, err)
		return
	}
	if err := db.PurgeKeepingSignerRecords(w.ctx); err != nil {
		w.violation("%s purge: %v", nd.name, err)
	}
	_ = db.Close()
	// Its finality starts over from the network (its signer record is what
	// keeps it safe).
	nd.maxFinalized = 0
	w.record("%s purged (signer record kept)", nd.name)
}

// reinstall stops the node and deletes its base path — chain database,
// checkpoint database, signer record and its high-water mark — as when the
// validator is re-installed on a new machine; the next start uses the same
// key with a fresh signer record (the signer's first use).
func (nd *simNode) reinstall() {
	w := nd.w
	if nd.up {
		nd.crash()
	}
	nd.fs = vfs.NewCrashableMem()
	nd.fresh = true
	nd.reinstalls++
	// A new machine: finality starts over from the network, and no alarm
	// is persisted.
	nd.maxFinalized = 0
	nd.halted = false
	w.record("%s re-installed on a new machine (base path deleted, fresh signer record)", nd.name)
}

func removeAll(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return nil
	}
	for _, n := range names {
		if err := fs.Remove(fs.PathJoin(dir, n)); err != nil {
			return err
		}
	}
	return fs.Remove(dir)
}

// certSource adapts the checkpoint database for serving peers.
type certSource struct{ db *checkpointdb.CheckpointDB }

func (c certSource) Certificates(ctx context.Context, from, to uint64, limit int) ([]checkpoint.Certificate, error) {
	return c.db.Certificates(ctx, from, to, limit)
}

func (c certSource) OldestRetained() uint64 { return c.db.OldestRetained() }

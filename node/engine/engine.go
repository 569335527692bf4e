package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// PeerID identifies a peer (the libp2p peer id in the node).
type PeerID string

// Verdict is the gossip verdict on a received block, vote or certificate:
// the finality gadget's verdict type, used for blocks as well.
type Verdict = finality.Verdict

// Verdicts.
const (
	// Accept: valid and new; forwarded.
	Accept = finality.VerdictAccept
	// Ignore: not forwarded, the sender is not penalised.
	Ignore = finality.VerdictIgnore
	// Reject: invalid; not forwarded, the sender is penalised.
	Reject = finality.VerdictReject
)

// Network is how the engine acts on the world. Implementations must not
// call back into the engine synchronously.
type Network interface {
	PublishBlock(b asf.Block)
	PublishVote(v checkpoint.SignedVote)
	PublishCertificate(c checkpoint.Certificate)
	// Request sends req to peer; the outcome comes back through
	// Engine.OnResponse with the same id (a failure as Response.Err).
	Request(peer PeerID, id uint64, req Request)
}

// CertificateSource is the read side of the checkpoint database used to
// answer peers' certificate requests.
type CertificateSource interface {
	Certificates(ctx context.Context, from, to uint64, limit int) ([]checkpoint.Certificate, error)
	// OldestRetained is the lowest checkpoint number whose certificate is
	// still kept (the prune base).
	OldestRetained() uint64
}

// VoteSource is the read side of the checkpoint database used to answer
// peers' votes-by-validator requests.
type VoteSource interface {
	// VotesByValidator returns the stored votes of validator (those kept
	// as votes and those held by stored certificates) with target number
	// >= from, in increasing target order, at most limit.
	VotesByValidator(ctx context.Context, validator checkpoint.ValidatorIndex, from uint64, limit int) ([]checkpoint.SignedVote, error)
}

// Clock tells the time.
type Clock interface{ Now() time.Time }

// SignerInit says how the local signer record starts.
type SignerInit int

const (
	// SignerReady: the record exists (or was imported): vote as soon as the
	// node is current.
	SignerReady SignerInit = iota
	// SignerFresh: a brand-new record (new validator, or the operator's
	// explicit --init-signer-record): catch up, listen for the key, then set
	// the watermarks above everything seen before the first vote.
	SignerFresh
)

// Defaults of Config.
const (
	DefaultSyncInterval   = 2 * time.Second
	DefaultRequestTimeout = 4 * time.Second
	// MinRequestTimeout is the floor of the slot-scaled request time-out.
	MinRequestTimeout = time.Second
	// BlocksPerRequest and CertificatesPerRequest size catch-up requests.
	BlocksPerRequest       = 128
	CertificatesPerRequest = 256
	// doppelgangerIntervals is how many checkpoint intervals a fresh signer
	// record listens for its key before the first vote.
	doppelgangerIntervals = 2
)

// Metrics observes the engine's and its gadget's durations for the node's
// metrics (optional). Its methods are called with the engine (or the
// gadget) locked: they must be cheap and must not call into the engine.
type Metrics interface {
	finality.Timings
	// BlockImported: importing a block received by gossip or sync into the
	// chain database took d (wall-clock time); only blocks that were new
	// and imported are observed.
	BlockImported(d time.Duration)
}

// Config configures an Engine.
type Config struct {
	Spec    *chainspec.Spec
	Genesis checkpoint.Hash
	Chain   *asf.Chain
	// Finality configures the gadget; nil runs without ASF finality.
	Finality *finality.Config
	// Store is the checkpoint database (required with Finality and
	// persistence); Certificates its read side for peers (may be nil).
	Store        finality.CheckpointStorage
	Certificates CertificateSource
	// Votes answers peers' votes-by-validator requests (may be nil).
	Votes VoteSource
	// Signer signs votes (nil: the node does not vote); Producer authors
	// blocks (nil: it does not).
	Signer     *finality.SafeSigner
	Producer   *asf.Producer
	SignerInit SignerInit
	// Alone: no peer can ever be expected (a single-authority chain without
	// bootnodes): catching up is skipped.
	Alone   bool
	Clock   Clock
	Network Network
	Logger  *zap.Logger
	// OnSignerInitialised is called (with the engine locked) once a fresh
	// signer record has been initialised and persisted.
	OnSignerInitialised func()
	// TrustedCheckpoint (--checkpoint-sync): finality proofs whose finalized
	// checkpoint is at or above it must contain it, and the finalized chain
	// must hold it (else the engine fails).
	TrustedCheckpoint *checkpoint.Checkpoint
	// OnFinalized is called (with the engine locked) after each finality
	// advance is applied to the chain and logged.
	OnFinalized func(cp checkpoint.Checkpoint)
	// Metrics observes durations (nil: none).
	Metrics Metrics
	// Mutations: simulation mutants only.
	Mutations Mutations
	// SyncInterval is how often peers are asked for their status;
	// RequestTimeout bounds one request. 0 means the defaults.
	SyncInterval   time.Duration
	RequestTimeout time.Duration
	// NoListen: a fresh signer record initialises without listening for
	// its key (the built-in single-validator dev chain only: its key is
	// public, so a listen protects nothing there).
	NoListen bool
	// DoppelgangerListen: a restarted (or imported) signer record also
	// listens for doppelgangerIntervals checkpoint intervals before its
	// first vote, like a fresh one.
	DoppelgangerListen bool
}

// Mutations are deliberately broken engine rules for the deterministic
// simulator's mutants. Production code never sets them.
type Mutations struct {
	// SkipDoppelgangerListen initialises a fresh signer record as soon as
	// the node caught up, without listening for its key.
	SkipDoppelgangerListen bool
	// VoteEquivocatorCheckpoints offers a checkpoint block to the gadget at
	// once even when its proposer is known to equivocate.
	VoteEquivocatorCheckpoints bool
	// HaltOnUnsignedClaim halts on a verified proof above our finalized
	// checkpoint after a peer's unsigned status claimed a conflicting
	// finalized checkpoint, without checking the proof's ancestry (the old
	// rule).
	HaltOnUnsignedClaim bool
	// CountKnownBlocksAsProgress treats synced blocks that were already
	// known as catch-up progress (the old rule).
	CountKnownBlocksAsProgress bool
	// SkipStoredVotesFetch initialises (or starts) a signer record without
	// asking peers for the votes of its key they store.
	SkipStoredVotesFetch bool
}

// Engine is the node's deterministic decision core (see the package doc).
type Engine struct {
	cfg      Config
	spec     *chainspec.Spec
	interval uint64
	chain    *asf.Chain
	gadget   *finality.CheckpointFinality
	signer   *finality.SafeSigner
	producer *asf.Producer
	certs    CertificateSource
	clock    Clock
	net      Network
	log      *zap.Logger

	mu sync.Mutex
	// fatal is the first local failure; every later call returns it.
	fatal error

	peers    map[PeerID]*peerState
	requests map[uint64]pendingRequest
	nextID   uint64
	// sync is the catch-up in progress (one peer at a time).
	sync *syncRound
	// syncing: a catch-up made real progress and is still running: no
	// block is authored and no vote is cast on a head known to be stale.
	syncing bool
	// caughtUp: at least one status exchange showed no peer ahead (or the
	// node is alone).
	caughtUp bool

	init       *signerInit
	startCheck *startCheck
	// learn: what peers showed of our key's votes; votesHeard counts
	// their answers.
	learn      learned
	votesHeard int
	auth       checkpoint.AuthoritySet

	// parents: blocks-by-hash fetches of gossip blocks' missing parents;
	// orphans the blocks waiting for them, by parent hash.
	parents     map[uint64]*parentFetch
	orphans     map[checkpoint.Hash][]asf.Block
	orphanCount int
	backoffs    map[PeerID]backoff

	lastFinalizedAt time.Time
	started         time.Time
	stats           Stats
}

// Stats are the engine's counters.
type Stats struct {
	BlocksImported, BlocksAuthored    uint64
	BlocksRejected, BlocksIgnored     uint64
	BlocksEquivocating                uint64
	SyncRounds, SyncedBlocks          uint64
	SyncedCertificates, ProofsApplied uint64
	RequestsFailed                    uint64
}

// RequestTimeoutFor is the default request time-out for a slot length:
// four slots, at least MinRequestTimeout, at most DefaultRequestTimeout.
func RequestTimeoutFor(slot time.Duration) time.Duration {
	return min(DefaultRequestTimeout, max(MinRequestTimeout, 4*slot))
}

// ErrStopped wraps the first local failure once the engine stopped.
var ErrStopped = errors.New("engine stopped after a local failure")

// New builds the engine and its finality gadget (not restored yet: call
// Restore).
func New(cfg Config) (*Engine, error) {
	if cfg.Spec == nil || cfg.Chain == nil || cfg.Network == nil {
		return nil, errors.New("engine: spec, chain and network are required")
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.RequestTimeout <= 0 {
		// Scaled with the slot: a lost request costs a few slots, never
		// several checkpoints.
		cfg.RequestTimeout = RequestTimeoutFor(cfg.Spec.SlotDuration())
	}
	if cfg.Clock == nil {
		cfg.Clock = asf.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	e := &Engine{
		cfg:      cfg,
		spec:     cfg.Spec,
		interval: cfg.Spec.CheckpointInterval,
		chain:    cfg.Chain,
		signer:   cfg.Signer,
		producer: cfg.Producer,
		certs:    cfg.Certificates,
		clock:    cfg.Clock,
		net:      cfg.Network,
		log:      cfg.Logger.Named("node"),
		peers:    make(map[PeerID]*peerState),
	}
	if cfg.Finality != nil {
		e.auth = cfg.Finality.Authorities
	} else {
		e.auth = cfg.Spec.AuthoritySet()
		e.auth.Genesis = cfg.Genesis
	}
	e.started = e.clock.Now()
	if cfg.Finality != nil {
		fcfg := *cfg.Finality
		if fcfg.RebroadcastAfter <= 0 {
			// A few checkpoint intervals, at least a second.
			fcfg.RebroadcastAfter = max(time.Second, 3*time.Duration(e.interval)*cfg.Spec.SlotDuration())
		}
		deps := finality.Deps{
			Store:       cfg.Store,
			Signer:      cfg.Signer,
			Clock:       cfg.Clock,
			Broadcaster: (*broadcaster)(e),
			Ancestry:    cfg.Chain,
			Observer:    (*observer)(e),
			Logger:      cfg.Logger,
		}
		if cfg.Metrics != nil {
			deps.Timings = cfg.Metrics
		}
		g, err := finality.New(fcfg, deps)
		if err != nil {
			return nil, err
		}
		e.gadget = g
	}
	return e, nil
}

// Gadget returns the finality gadget (nil without ASF).
func (e *Engine) Gadget() *finality.CheckpointFinality { return e.gadget }

// Chain returns the chain.
func (e *Engine) Chain() *asf.Chain { return e.chain }

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Syncing reports whether a catch-up round with real progress is running.
func (e *Engine) Syncing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.syncing
}

// SignerPending reports whether a fresh signer record is still being
// initialised (no vote yet).
func (e *Engine) SignerPending() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.init != nil
}

// CaughtUp reports whether a status exchange showed no peer ahead of this
// node since it started (always true for a node that is alone).
func (e *Engine) CaughtUp() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.caughtUp
}

// LastFinalizedAt is when finality last advanced in this process (zero:
// not yet).
func (e *Engine) LastFinalizedAt() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastFinalizedAt
}

// fail records a local failure: the engine stops.
func (e *Engine) fail(err error) error {
	if e.fatal == nil {
		e.fatal = fmt.Errorf("%w: %w", ErrStopped, err)
		e.log.Error("local failure; the node stops", zap.Error(err))
	}
	return e.fatal
}

// enter locks the engine and returns the stop error, if any.
func (e *Engine) enter() error {
	e.mu.Lock()
	return e.fatal
}

// ErrChainLacksFinalized refuses a start whose chain database lacks the
// finalized checkpoint restored from the checkpoint database while no peer
// can provide the missing blocks.
var ErrChainLacksFinalized = errors.New("chain database lacks the finalized checkpoint")

// ErrDatabasesDisagree refuses a start whose chain and checkpoint databases
// hold conflicting finalized checkpoints.
var ErrDatabasesDisagree = errors.New("chain and checkpoint databases disagree on finality")

// Restore restores the gadget from the checkpoint database, brings chain
// and gadget into agreement and decides how the signer starts. It returns
// ErrChainLacksFinalized or ErrDatabasesDisagree (start-up refusals) when
// the databases cannot be reconciled.
func (e *Engine) Restore(ctx context.Context) error {
	if err := e.enter(); err != nil {
		e.mu.Unlock()
		return err
	}
	defer e.mu.Unlock()
	if e.gadget == nil {
		return nil
	}
	// The chain database keeps the proof of its finalized checkpoint: a
	// checkpoint database that is behind it (rebuilt, or a record imported
	// into a new one) catches up from it without any peer.
	var fallback []checkpoint.FinalityProof
	if p, ok, err := e.chain.FinalityProof(); err != nil {
		return fmt.Errorf("read the chain's finality proof: %w", err)
	} else if ok {
		fallback = append(fallback, p)
	}
	if err := e.gadget.RestoreFromStorage(ctx, fallback...); err != nil {
		return err
	}
	f := e.gadget.LatestFinalized()
	cf := e.chain.Finalized()
	if f.Number > 0 && f.Number >= cf.Number {
		err := e.chain.SetFinalized(ctx, f)
		switch {
		case err == nil:
		case errors.Is(err, asf.ErrUnknownBlock):
			height := f.Number * e.interval
			if e.cfg.Alone {
				return fmt.Errorf("%w: the checkpoint database finalized checkpoint %d (block #%d) but the chain database ends at block #%d and no peer is configured to fetch the missing blocks; restore the chain database, or start with --bootnodes so the node syncs them before it authors or votes",
					ErrChainLacksFinalized, f.Number, height, e.chain.Best().Number)
			}
			e.log.Warn("The chain database lacks the finalized checkpoint; syncing its blocks from peers before authoring or voting",
				zap.Uint64("finalized", f.Number), zap.Uint64("block", height), zap.Uint64("best", e.chain.Best().Number))
		case errors.Is(err, asf.ErrConflictsFinalized), errors.Is(err, asf.ErrInvalidCheckpoint):
			return fmt.Errorf("%w: checkpoint database finalized %s, chain database finalized %s: %v; move one of them away (the signer record in the checkpoint database protects against double signing: keep it, or export it first with flare-node signer export)",
				ErrDatabasesDisagree, f, cf, err)
		default:
			return fmt.Errorf("mark restored finalized checkpoint %s in the chain: %w", f, err)
		}
	}
	if j := e.gadget.LatestJustified(); j.Number > e.chain.Justified().Number {
		if _, err := e.chain.SetJustified(ctx, j); err != nil && !errors.Is(err, asf.ErrConflictsFinalized) {
			e.log.Debug("restored justified checkpoint not applicable to the chain yet", zap.Stringer("justified", j), zap.Error(err))
		}
	}
	if e.signer != nil && e.cfg.SignerInit == SignerFresh {
		e.init = &signerInit{}
		if err := e.gadget.BeginSignerInit(ctx, ^uint64(0)); err != nil {
			return err
		}
	} else if e.signer != nil && !e.cfg.Alone {
		// A record that has signed (or was given watermarks) hears the
		// network before its next vote; one that never signed has no past
		// a vote could contradict.
		rec, err := e.signer.Record(ctx)
		if err != nil {
			return fmt.Errorf("read the signer record: %w", err)
		}
		if rec.Last != nil || rec.MinTarget > 0 || rec.MinSource > 0 || e.cfg.DoppelgangerListen {
			e.startCheck = &startCheck{}
		}
	}
	e.caughtUp = e.cfg.Alone
	e.updateHeadLocked(ctx)
	return nil
}

// headCheckpoint returns the best chain's latest checkpoint.
func (e *Engine) headCheckpoint() (checkpoint.Checkpoint, bool) {
	best := e.chain.Best().Number
	n := best / e.interval
	h, ok := e.chain.CanonicalHash(n * e.interval)
	return checkpoint.Checkpoint{Number: n, Hash: h}, ok
}

// votableCheckpoint is the checkpoint the gadget is offered as the head to
// vote for: the best chain's latest checkpoint, except while its block is
// the best block and was proposed by a validator known to equivocate (stored
// block evidence). Such a proposer can hand each validator a different block
// for its slot; votes cast on import would then split over the versions and
// its checkpoints would never be justified (with round-robin slots that can
// be every other checkpoint, so no two consecutive ones are justified and
// finality stops: simulator seed 947). Once a block builds on it, every
// honest node has converged on the version the next proposer chose (fork
// choice, sync of a branch with an equivocating block) and votes for that
// one. With checkpoint interval 1 the rule is off: that child is the next
// checkpoint, holding would only skip the equivocator's checkpoint, and
// consecutive honest checkpoints always exist (the simulator's random seeds
// stall less with it off: seed 664). A checkpoint of an honest proposer is
// offered at once, so this costs nothing without an equivocator.
func (e *Engine) votableCheckpoint() (checkpoint.Checkpoint, bool) {
	cp, ok := e.headCheckpoint()
	if !ok || cp.Number == 0 {
		return cp, ok
	}
	best := e.chain.Best()
	if e.interval > 1 && best.Number == cp.Number*e.interval && !e.cfg.Mutations.VoteEquivocatorCheckpoints && e.chain.Equivocated(best.Proposer) {
		return checkpoint.Checkpoint{}, false
	}
	return cp, true
}

// chainCurrent reports whether the chain contains the gadget's finalized
// checkpoint (a chain behind it must not be authored on or voted from).
func (e *Engine) chainCurrent() bool {
	if e.gadget == nil {
		return true
	}
	return e.chain.Finalized().Number >= e.gadget.LatestFinalized().Number
}

// votingAllowed: the gadget may vote (it also checks its own rules).
func (e *Engine) votingAllowed() bool {
	return !e.syncing && e.init == nil && e.startCheck == nil && e.chainCurrent()
}

// updateHeadLocked tells the gadget the best chain's latest checkpoint and
// whether it may vote.
func (e *Engine) updateHeadLocked(ctx context.Context) {
	if e.gadget == nil || e.fatal != nil {
		return
	}
	if err := e.gadget.SetPaused(ctx, !e.votingAllowed()); err != nil {
		e.fail(fmt.Errorf("finality gadget: %w", err))
		return
	}
	cp, ok := e.votableCheckpoint()
	if !ok {
		return
	}
	if err := e.gadget.OnCheckpointBlock(ctx, cp); err != nil {
		e.fail(fmt.Errorf("finality gadget: %w", err))
	}
}

// --- Gossip ---------------------------------------------------------------------

// OnBlock imports a block received by gossip. An unknown parent starts a
// catch-up with the sender.
func (e *Engine) OnBlock(ctx context.Context, from PeerID, b asf.Block) (Verdict, error) {
	if err := e.enter(); err != nil {
		e.mu.Unlock()
		return Ignore, err
	}
	defer e.mu.Unlock()
	v, _ := e.importLocked(ctx, b, from, false)
	return v, e.fatal
}

// importLocked imports one block; the error says why it was not imported.
// synced: the block comes from a peer's best chain by sync (see
// asf.Chain.ImportSynced); it is never relayed.
func (e *Engine) importLocked(ctx context.Context, b asf.Block, from PeerID, synced bool) (Verdict, error) {
	importFn := e.chain.Import
	if synced {
		importFn = e.chain.ImportSynced
	}
	start := time.Now()
	res, err := importFn(ctx, b)
	switch {
	case err == nil:
	case errors.Is(err, asf.ErrUnknownParent):
		e.stats.BlocksIgnored++
		if from != "" {
			e.fetchParentLocked(from, b)
			e.startSyncLocked(ctx, from)
		}
		return Ignore, err
	case errors.Is(err, asf.ErrEquivocation):
		// A second block of one proposer for one slot: evidence; the
		// second version is imported as a side branch (its children then
		// import at once), later ones are refused; never relayed, and the
		// relaying peer may be honest.
		e.stats.BlocksEquivocating++
		if res.Equivocation {
			e.stats.BlocksImported++
			if res.NewBest || len(res.Checkpoints) > 0 {
				e.updateHeadLocked(ctx)
			}
		}
		return Ignore, err
	case errors.Is(err, asf.ErrTipLimit):
		e.stats.BlocksIgnored++
		return Ignore, err
	case errors.Is(err, asf.ErrFutureBlock), errors.Is(err, asf.ErrConflictsFinalized):
		// Judged against local state (our clock, our finality): an honest
		// peer with a skewed clock or a late block is not penalized.
		e.stats.BlocksIgnored++
		e.log.Debug("ignored block", zap.Uint64("number", b.Header.Number), zap.String("peer", string(from)), zap.Error(err))
		return Ignore, err
	case errors.Is(err, asf.ErrInvalidBlock):
		e.stats.BlocksRejected++
		e.log.Debug("rejected block", zap.Uint64("number", b.Header.Number), zap.String("peer", string(from)), zap.Error(err))
		return Reject, err
	default:
		if ctx.Err() == nil {
			e.fail(fmt.Errorf("import block: %w", err))
		}
		return Ignore, err
	}
	if res.AlreadyKnown {
		return Ignore, nil
	}
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.BlockImported(time.Since(start))
	}
	e.stats.BlocksImported++
	if res.NewBest || len(res.Checkpoints) > 0 {
		e.updateHeadLocked(ctx)
	}
	return Accept, nil
}

// OnVote handles a vote received by gossip.
func (e *Engine) OnVote(ctx context.Context, from PeerID, v checkpoint.SignedVote) (Verdict, error) {
	return e.toGadget(ctx, "vote", func(g *finality.CheckpointFinality) (finality.Verdict, error) { return g.OnVote(ctx, v) })
}

// OnCertificate handles a certificate received by gossip.
func (e *Engine) OnCertificate(ctx context.Context, from PeerID, c checkpoint.Certificate) (Verdict, error) {
	return e.toGadget(ctx, "certificate", func(g *finality.CheckpointFinality) (finality.Verdict, error) { return g.OnCertificate(ctx, c) })
}

// toGadget hands a gossip message to the finality gadget (ignored without
// ASF); a gadget error is a local failure that stops the engine.
func (e *Engine) toGadget(ctx context.Context, what string, call func(*finality.CheckpointFinality) (finality.Verdict, error)) (Verdict, error) {
	if err := e.enter(); err != nil {
		e.mu.Unlock()
		return Ignore, err
	}
	defer e.mu.Unlock()
	if e.gadget == nil {
		return Ignore, nil
	}
	verdict, err := call(e.gadget)
	if err != nil {
		return Ignore, e.fail(fmt.Errorf("finality gadget (%s): %w", what, err))
	}
	return verdict, e.fatal
}

// --- Production -----------------------------------------------------------------

// OnSlot authors the block of slot when it is this validator's slot and
// the node is current: not catching up, and its chain contains the
// finalized checkpoint. It returns the authored block (nil when none).
func (e *Engine) OnSlot(ctx context.Context, slot uint64) (*asf.Block, error) {
	if err := e.enter(); err != nil {
		e.mu.Unlock()
		return nil, err
	}
	defer e.mu.Unlock()
	if e.producer == nil || e.syncing || e.startCheck != nil || !e.chainCurrent() {
		return nil, nil
	}
	b, res, err := e.producer.Produce(ctx, slot)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, asf.ErrSlotNotReached):
			return nil, nil
		case errors.Is(err, asf.ErrInvalidBlock), errors.Is(err, asf.ErrEquivocation):
			e.log.Warn("could not author block", zap.Uint64("slot", slot), zap.Error(err))
			return nil, nil
		}
		return nil, e.fail(fmt.Errorf("author block: %w", err))
	}
	if b == nil {
		return nil, nil
	}
	e.stats.BlocksAuthored++
	e.net.PublishBlock(*b)
	if res.NewBest || len(res.Checkpoints) > 0 {
		e.updateHeadLocked(ctx)
	}
	return b, e.fatal
}

// --- Time -----------------------------------------------------------------------

// Tick drives everything periodic: status polls and request timeouts,
// the fresh signer record's listening phase and the gadget's re-broadcast.
func (e *Engine) Tick(ctx context.Context) error {
	if err := e.enter(); err != nil {
		e.mu.Unlock()
		return err
	}
	defer e.mu.Unlock()
	now := e.clock.Now()
	e.tickSyncLocked(ctx, now)
	e.tickSignerInitLocked(ctx, now)
	e.tickStartCheckLocked(ctx, now)
	if e.gadget != nil && e.fatal == nil {
		if err := e.gadget.Tick(ctx); err != nil {
			return e.fail(fmt.Errorf("finality tick: %w", err))
		}
	}
	return e.fatal
}

// Maintenance runs the checkpoint database's flush and prune when due.
func (e *Engine) Maintenance(ctx context.Context) error {
	e.mu.Lock()
	g, fatal := e.gadget, e.fatal
	e.mu.Unlock()
	if fatal != nil {
		return fatal
	}
	if g == nil {
		return nil
	}
	return g.PerformPeriodicMaintenance(ctx)
}

// --- Gadget callbacks (called with e.mu held) -------------------------------

type broadcaster Engine

func (b *broadcaster) BroadcastVote(_ context.Context, v checkpoint.SignedVote) error {
	b.net.PublishVote(v)
	return nil
}

func (b *broadcaster) BroadcastCertificate(_ context.Context, c checkpoint.Certificate) error {
	b.net.PublishCertificate(c)
	return nil
}

type observer Engine

// Justified: fork choice follows the latest justified checkpoint.
func (o *observer) Justified(cp checkpoint.Checkpoint) {
	e := (*Engine)(o)
	ctx := context.Background()
	if _, err := e.chain.SetJustified(ctx, cp); err != nil {
		e.log.Debug("justified checkpoint not on a known chain yet", zap.Stringer("checkpoint", cp), zap.Error(err))
		return
	}
	e.log.Debug("Checkpoint justified", zap.Uint64("checkpoint", cp.Number), zap.Stringer("hash", cp.Hash))
	e.updateHeadLocked(ctx)
}

// Finalized: the chain marks the checkpoint final and keeps its proof.
func (o *observer) Finalized(cp checkpoint.Checkpoint) {
	e := (*Engine)(o)
	ctx := context.Background()
	var err error
	if p, ok := e.gadget.FinalityProof(); ok && p.Finalizing.Source == cp {
		err = e.chain.SetFinalizedWithProof(ctx, cp, p)
	} else {
		err = e.chain.SetFinalized(ctx, cp)
	}
	switch {
	case err == nil:
	case errors.Is(err, asf.ErrUnknownBlock):
		// Applied when the block arrives (the chain remembers it).
	case errors.Is(err, asf.ErrConflictsFinalized), errors.Is(err, asf.ErrInvalidCheckpoint):
		h := checkpoint.Halt{Reason: checkpoint.HaltConflictingFinality, Checkpoint: cp.Number,
			Detail: fmt.Sprintf("finalized checkpoint %s does not descend from the chain's finalized block %s: %v", cp, e.chain.Finalized(), err)}
		if aerr := e.gadget.RaiseAlarm(ctx, h); aerr != nil {
			e.fail(fmt.Errorf("finality gadget: %w", aerr))
		}
		return
	default:
		e.fail(fmt.Errorf("mark finalized checkpoint %s: %w", cp, err))
		return
	}
	if tc := e.cfg.TrustedCheckpoint; tc != nil && cp.Number >= tc.Number {
		if h, ok := e.chain.CanonicalHash(tc.Number * e.interval); ok && h != tc.Hash {
			e.fail(fmt.Errorf("%w: the finalized chain holds %s at checkpoint %d, --checkpoint-sync trusts %s", ErrTrustedCheckpoint, h, tc.Number, tc.Hash))
			return
		}
	}
	e.lastFinalizedAt = e.clock.Now()
	e.log.Info(fmt.Sprintf("FINALITY ADVANCED: checkpoint=%d", cp.Number),
		zap.Uint64("checkpoint", cp.Number), zap.Stringer("hash", cp.Hash), zap.Uint64("block", cp.Number*e.interval))
	if e.cfg.OnFinalized != nil {
		e.cfg.OnFinalized(cp)
	}
	e.updateHeadLocked(ctx)
}

// Halted: a safety alarm stopped voting (already logged by the gadget).
func (o *observer) Halted(h checkpoint.Halt) {
	e := (*Engine)(o)
	e.log.Error("Validator halted on a safety alarm; it keeps following the chain but never votes again until an operator clears the alarm",
		zap.Stringer("reason", h.Reason), zap.Uint64("checkpoint", h.Checkpoint))
}

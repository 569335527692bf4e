package finality

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality/tally"
)

// Clock tells the gadget the time (injected so tests control it).
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Broadcaster sends the gadget's own votes and the certificates it forms to
// the network.
type Broadcaster interface {
	BroadcastVote(ctx context.Context, v checkpoint.SignedVote) error
	BroadcastCertificate(ctx context.Context, c checkpoint.Certificate) error
}

// Ancestry is implemented by the chain.
type Ancestry interface {
	// IsDescendant reports whether block `block` is `ancestor`'s block or
	// descends from it on known chains.
	IsDescendant(block checkpoint.Hash, ancestor checkpoint.Checkpoint) bool
}

// Observer is told about newly justified and finalized checkpoints, in order,
// after the gadget released its lock (it may call back into the gadget).
type Observer interface {
	Justified(cp checkpoint.Checkpoint)
	Finalized(cp checkpoint.Checkpoint)
}

// Defaults of Config.
const (
	DefaultFutureWindow     uint64 = 256
	DefaultRebroadcastAfter        = 10 * time.Second
	// maxPendingCertificates bounds certificates kept while their source is
	// not known justified.
	maxPendingCertificates = 1024
	// maxAlarms bounds the conflicting certificates remembered to store their
	// evidence once.
	maxAlarms = 64
)

// Config configures the gadget.
type Config struct {
	Authorities checkpoint.AuthoritySet
	Persistence CheckpointPersistenceConfig
	// FutureWindow: votes and certificates with a target above
	// finalized+FutureWindow are ignored; 0 means DefaultFutureWindow.
	FutureWindow uint64
	// RebroadcastAfter: Tick re-broadcasts the own latest vote and the latest
	// certificate when finality has not advanced for this long; 0 means
	// DefaultRebroadcastAfter.
	RebroadcastAfter time.Duration
}

// Deps are the gadget's collaborators.
type Deps struct {
	Store       CheckpointStorage // required when Persistence.Enabled
	Signer      *SafeSigner       // nil = observer node (never votes)
	Clock       Clock             // nil = system clock
	Broadcaster Broadcaster       // required for a validator
	Ancestry    Ancestry          // required for a validator
	Observer    Observer          // may be nil
	Logger      *zap.Logger       // nil = no logging
}

// Verdict is the gossip verdict on a received vote or certificate.
type Verdict int

const (
	// VerdictAccept: valid and new; counted (and may be forwarded).
	VerdictAccept Verdict = iota + 1
	// VerdictIgnore: well-formed but useless or already known (wrong set id,
	// old or too-far-future target, duplicate, equivocation with evidence
	// stored); not forwarded, the sender is not penalised.
	VerdictIgnore
	// VerdictReject: invalid (undecodable, bad signature, unknown validator,
	// wrong chain, bad link); the sender may be penalised.
	VerdictReject
)

func (v Verdict) String() string {
	switch v {
	case VerdictAccept:
		return "accept"
	case VerdictIgnore:
		return "ignore"
	case VerdictReject:
		return "reject"
	default:
		return fmt.Sprintf("verdict(%d)", int(v))
	}
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

// CheckpointStatus is the state of one checkpoint number.
type CheckpointStatus struct {
	Number uint64
	Level  Level
	// Weight is the number of distinct validators counted for the leading
	// (or justifying) link at this number.
	Weight int
	// Quorum is floor(2n/3)+1.
	Quorum int
	// Hash is the checkpoint block hash the level refers to (zero when not
	// known, e.g. a finalized ancestor whose hash was never seen).
	Hash checkpoint.Hash
}

// Metrics are the gadget's counters.
type Metrics struct {
	VotesAccepted        uint64
	VotesIgnored         uint64
	VotesRejected        uint64
	CertificatesAccepted uint64
	CertificatesIgnored  uint64
	CertificatesRejected uint64
	// CertificatesFormed counts certificates built from counted votes.
	CertificatesFormed uint64
	// Evidence counts evidence stored (double, surround, conflicting
	// finality).
	Evidence uint64
	// OwnVotes counts votes signed (or re-signed identically) by this node.
	OwnVotes uint64
	// VoteSignatureChecks counts ed25519 verifications of received votes;
	// CertificateChecks counts full re-verifications of received
	// certificates. Input rejected or ignored by the cheaper checks never
	// reaches them.
	VoteSignatureChecks uint64
	CertificateChecks   uint64
}

type counters struct {
	votesAccepted, votesIgnored, votesRejected atomic.Uint64
	certsAccepted, certsIgnored, certsRejected atomic.Uint64
	certsFormed, evidence, ownVotes            atomic.Uint64
	voteChecks, certChecks                     atomic.Uint64
}

type eventKind int

const (
	evVote eventKind = iota + 1
	evCertificate
	evJustified
	evFinalized
)

// event is something to do after the lock is released: a broadcast or an
// observer notification.
type event struct {
	kind eventKind
	vote checkpoint.SignedVote
	cert checkpoint.Certificate
	cp   checkpoint.Checkpoint
}

// CheckpointFinality is the ASF finality gadget. It is safe for concurrent
// use.
type CheckpointFinality struct {
	auth             checkpoint.AuthoritySet
	quorum           int
	genesis          checkpoint.Checkpoint
	window           uint64
	rebroadcastAfter time.Duration
	persistCfg       CheckpointPersistenceConfig

	signer   *SafeSigner
	ownIndex checkpoint.ValidatorIndex
	clock    Clock
	bc       Broadcaster
	anc      Ancestry
	obs      Observer
	log      *zap.Logger

	halted atomic.Bool
	m      counters

	mu    sync.RWMutex
	store CheckpointStorage
	// justified maps every justified checkpoint at or above the finalized
	// one to the source of the certificate that justified it (itself for
	// genesis and for checkpoints restored from pointers).
	justified map[checkpoint.Checkpoint]checkpoint.Checkpoint
	latestJ   checkpoint.Checkpoint
	latestF   checkpoint.Checkpoint
	// canon holds the finalized chain's checkpoints known by number (the
	// finalized checkpoint and the justified ancestors it was finalized
	// through), for up to window numbers below the finalized one.
	canon map[uint64]checkpoint.Hash
	// certs holds one certificate per justified target number >= finalized.
	certs map[uint64]checkpoint.Certificate
	// pending holds certificates by source until the source is justified.
	pending      map[checkpoint.Checkpoint][]pendingCert
	pendingLinks map[checkpoint.Link]struct{}
	// jobs are certificates waiting to be persisted outside the lock;
	// inflight holds their links (and those being persisted right now).
	jobs     []certJob
	inflight map[checkpoint.Link]struct{}
	// certWrites counts settle loops persisting certificates right now;
	// while one runs, counted peer votes wait in voteBuf and are written by
	// the last writer when it is done, so vote ingest does not stall behind
	// the synced certificate write in the database.
	certWrites int
	voteBuf    []checkpoint.SignedVote
	alarmed    map[checkpoint.Link]struct{}
	tally      *tally.Tally
	lastOwn    *checkpoint.SignedVote
	// lastProgress is when finality last advanced; lastRebroadcast when Tick
	// last re-broadcast.
	lastProgress    time.Time
	lastRebroadcast time.Time
	outbox          []event
	draining        bool

	maintMu   sync.Mutex
	lastFlush time.Time
	lastPrune time.Time
}

// New builds a gadget at genesis; call RestoreFromStorage to continue from a
// database.
func New(cfg Config, deps Deps) (*CheckpointFinality, error) {
	if cfg.Authorities.Len() == 0 {
		return nil, fmt.Errorf("%w: empty authority set", ErrInvalidConfig)
	}
	for i, k := range cfg.Authorities.Keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: authority %d key is %d bytes", ErrInvalidConfig, i, len(k))
		}
	}
	if err := cfg.Persistence.Validate(); err != nil {
		return nil, err
	}
	if cfg.Persistence.Enabled && deps.Store == nil {
		return nil, fmt.Errorf("%w: persistence enabled without a store", ErrInvalidConfig)
	}
	g := &CheckpointFinality{
		auth:             checkpoint.AuthoritySet{Genesis: cfg.Authorities.Genesis, SetID: cfg.Authorities.SetID, Keys: append([]ed25519.PublicKey(nil), cfg.Authorities.Keys...)},
		quorum:           cfg.Authorities.Quorum(),
		genesis:          checkpoint.Checkpoint{Number: 0, Hash: cfg.Authorities.Genesis},
		window:           cfg.FutureWindow,
		rebroadcastAfter: cfg.RebroadcastAfter,
		persistCfg:       cfg.Persistence,
		signer:           deps.Signer,
		clock:            deps.Clock,
		bc:               deps.Broadcaster,
		anc:              deps.Ancestry,
		obs:              deps.Observer,
		log:              deps.Logger,
		store:            deps.Store,
	}
	if g.window == 0 {
		g.window = DefaultFutureWindow
	}
	if g.rebroadcastAfter <= 0 {
		g.rebroadcastAfter = DefaultRebroadcastAfter
	}
	if g.clock == nil {
		g.clock = systemClock{}
	}
	if g.log == nil {
		g.log = zap.NewNop()
	}
	g.log = g.log.Named("finality")
	if g.signer != nil {
		switch {
		case !cfg.Persistence.Enabled:
			return nil, fmt.Errorf("%w: a validator refuses to vote without checkpoint persistence", ErrInvalidConfig)
		case g.bc == nil:
			return nil, fmt.Errorf("%w: a validator needs a broadcaster", ErrInvalidConfig)
		case g.anc == nil:
			return nil, fmt.Errorf("%w: a validator needs the chain ancestry", ErrInvalidConfig)
		}
		g.ownIndex = g.signer.Index()
		if err := g.auth.CheckIndex(g.ownIndex); err != nil {
			return nil, fmt.Errorf("%w: signer: %w", ErrInvalidConfig, err)
		}
		if !g.auth.Keys[g.ownIndex].Equal(g.signer.PublicKey()) {
			return nil, fmt.Errorf("%w: signer key is not authority %d", ErrInvalidConfig, g.ownIndex)
		}
	}
	now := g.clock.Now()
	g.lastFlush, g.lastPrune, g.lastProgress = now, now, now
	g.resetLocked(g.genesis, g.genesis)
	return g, nil
}

// resetLocked sets the in-memory state to finalized f and justified j.
func (g *CheckpointFinality) resetLocked(f, j checkpoint.Checkpoint) {
	g.justified = map[checkpoint.Checkpoint]checkpoint.Checkpoint{f: f, j: j}
	g.latestF, g.latestJ = f, j
	g.canon = map[uint64]checkpoint.Hash{0: g.genesis.Hash, f.Number: f.Hash}
	g.certs = make(map[uint64]checkpoint.Certificate)
	g.pending = make(map[checkpoint.Checkpoint][]pendingCert)
	g.pendingLinks = make(map[checkpoint.Link]struct{})
	g.jobs = nil
	g.inflight = make(map[checkpoint.Link]struct{})
	g.alarmed = make(map[checkpoint.Link]struct{})
	g.tally = tally.New(f.Number)
	g.lastOwn = nil
}

func (g *CheckpointFinality) persisting() bool { return g.persistCfg.Enabled && g.store != nil }

// SetStorage replaces the checkpoint database (call before
// RestoreFromStorage).
func (g *CheckpointFinality) SetStorage(s CheckpointStorage) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.store = s
}

// LatestJustified returns the highest justified checkpoint.
func (g *CheckpointFinality) LatestJustified() checkpoint.Checkpoint {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.latestJ
}

// LatestFinalized returns the highest finalized checkpoint.
func (g *CheckpointFinality) LatestFinalized() checkpoint.Checkpoint {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.latestF
}

// Halted reports whether the gadget stopped voting after a safety alarm
// (conflicting finality, or a vote signed with our key that we did not sign).
func (g *CheckpointFinality) Halted() bool { return g.halted.Load() }

// Certificate returns the certificate that justified checkpoint number,
// while it is in memory (at or above the finalized checkpoint).
func (g *CheckpointFinality) Certificate(number uint64) (checkpoint.Certificate, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	c, ok := g.certs[number]
	if !ok {
		return checkpoint.Certificate{}, false
	}
	c.Signatures = append([]checkpoint.CertSignature(nil), c.Signatures...)
	return c, true
}

// Status returns the level of checkpoint number.
func (g *CheckpointFinality) Status(number uint64) CheckpointStatus {
	g.mu.RLock()
	defer g.mu.RUnlock()
	st := CheckpointStatus{Number: number, Quorum: g.quorum}
	if number <= g.latestF.Number {
		st.Level = LevelFinality
		st.Hash = g.canon[number]
		if c, ok := g.certs[number]; ok && c.Target.Hash == st.Hash {
			st.Weight = max(len(c.Signatures), g.tally.Weight(checkpoint.Link{Source: c.Source, Target: c.Target}))
		}
		return st
	}
	if c, ok := g.certs[number]; ok {
		st.Level = LevelCommitment
		st.Hash = c.Target.Hash
		st.Weight = max(len(c.Signatures), g.tally.Weight(checkpoint.Link{Source: c.Source, Target: c.Target}))
		return st
	}
	if l, w, ok := g.tally.Best(number); ok {
		st.Level = LevelPreCommitment
		st.Hash = l.Target.Hash
		st.Weight = w
	}
	return st
}

// Metrics returns a snapshot of the counters.
func (g *CheckpointFinality) Metrics() Metrics {
	return Metrics{
		VotesAccepted:        g.m.votesAccepted.Load(),
		VotesIgnored:         g.m.votesIgnored.Load(),
		VotesRejected:        g.m.votesRejected.Load(),
		CertificatesAccepted: g.m.certsAccepted.Load(),
		CertificatesIgnored:  g.m.certsIgnored.Load(),
		CertificatesRejected: g.m.certsRejected.Load(),
		CertificatesFormed:   g.m.certsFormed.Load(),
		Evidence:             g.m.evidence.Load(),
		OwnVotes:             g.m.ownVotes.Load(),
		VoteSignatureChecks:  g.m.voteChecks.Load(),
		CertificateChecks:    g.m.certChecks.Load(),
	}
}

func countVerdict(v Verdict, acc, ign, rej *atomic.Uint64) {
	switch v {
	case VerdictAccept:
		acc.Add(1)
	case VerdictIgnore:
		ign.Add(1)
	case VerdictReject:
		rej.Add(1)
	}
}

// isJustified reports whether cp is known justified.
func (g *CheckpointFinality) isJustified(cp checkpoint.Checkpoint) bool {
	_, ok := g.justified[cp]
	return ok
}

// aboveWindow reports whether number is too far above the finalized one.
func (g *CheckpointFinality) aboveWindow(number uint64) bool {
	return number > g.latestF.Number && number-g.latestF.Number > g.window
}

// enqueue schedules e for delivery after the lock is released.
func (g *CheckpointFinality) enqueue(e event) { g.outbox = append(g.outbox, e) }

// needsDelivery reports (under the lock) whether the caller must deliver.
func (g *CheckpointFinality) needsDeliveryLocked() bool { return len(g.outbox) > 0 && !g.draining }

// deliver sends queued events in order without holding the lock while a
// Broadcaster or Observer runs, so a synchronous local delivery that calls
// back into the gadget cannot deadlock. Only one goroutine delivers at a
// time; events queued meanwhile are delivered by it, in order.
func (g *CheckpointFinality) deliver(ctx context.Context) {
	g.mu.Lock()
	if g.draining {
		g.mu.Unlock()
		return
	}
	g.draining = true
	for len(g.outbox) > 0 {
		e := g.outbox[0]
		g.outbox[0] = event{}
		g.outbox = g.outbox[1:]
		g.mu.Unlock()
		g.dispatch(ctx, e)
		g.mu.Lock()
	}
	g.outbox = nil
	g.draining = false
	g.mu.Unlock()
}

func (g *CheckpointFinality) dispatch(ctx context.Context, e event) {
	switch e.kind {
	case evVote:
		if g.bc == nil {
			return
		}
		if err := g.bc.BroadcastVote(ctx, e.vote); err != nil {
			g.log.Warn("Failed to broadcast checkpoint vote", zap.Uint64("checkpoint", e.vote.Target.Number), zap.Error(err))
		}
	case evCertificate:
		if g.bc == nil {
			return
		}
		if err := g.bc.BroadcastCertificate(ctx, e.cert); err != nil {
			g.log.Warn("Failed to broadcast checkpoint certificate", zap.Uint64("checkpoint", e.cert.Target.Number), zap.Error(err))
		}
	case evJustified:
		if g.obs != nil {
			g.obs.Justified(e.cp)
		}
	case evFinalized:
		if g.obs != nil {
			g.obs.Finalized(e.cp)
		}
	}
}

func cpField(key string, cp checkpoint.Checkpoint) zap.Field { return zap.Stringer(key, cp) }

package finality

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
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

// Observer is told about newly justified and finalized checkpoints, in order,
// once they are durable and after the gadget released its lock (it may call
// back into the gadget).
type Observer interface {
	Justified(cp checkpoint.Checkpoint)
	Finalized(cp checkpoint.Checkpoint)
}

// HaltObserver is an optional extension of Observer told about safety
// alarms once they are persisted.
type HaltObserver interface {
	Halted(h checkpoint.Halt)
}

// Timings is an optional observer of the gadget's durations and
// maintenance results, for metrics. Its methods are called with the
// gadget's lock held: they must be cheap and must not call into the gadget.
type Timings interface {
	// CertificatePersisted: storing a certificate (one synced batch with the
	// pointers it raises) took d (wall-clock time).
	CertificatePersisted(d time.Duration)
	// OwnVoteJustified: the target of an own vote was justified d after the
	// vote was signed (by the gadget's clock).
	OwnVoteJustified(d time.Duration)
	// Pruned: a periodic prune ran and removed n checkpoints.
	Pruned(n int)
}

// maxOwnVoteTimes bounds the own votes whose signing time is remembered
// for Timings.OwnVoteJustified.
const maxOwnVoteTimes = 64

// Config configures the gadget.
type Config struct {
	Authorities checkpoint.AuthoritySet
	// Schedule, when set, is the authority schedule starting with
	// Authorities (CoreConfig.Schedule); a signer's key then needs to be in
	// one of its sets, not necessarily the first.
	Schedule    *checkpoint.Schedule
	Persistence CheckpointPersistenceConfig
	// FutureWindow: votes with a target more than FutureWindow above the
	// best known checkpoint are ignored; 0 means DefaultFutureWindow.
	FutureWindow uint64
	// VotesPerValidator bounds the votes held per validator; 0 means
	// DefaultVotesPerValidator.
	VotesPerValidator int
	// RebroadcastAfter: Tick re-broadcasts the own latest vote and the latest
	// certificates when finality has not advanced for this long; 0 means
	// DefaultRebroadcastAfter.
	RebroadcastAfter time.Duration
	// BroadcastAllFormed: every node broadcasts the certificates it forms
	// (by default one validator per checkpoint does, see
	// Core.broadcastsFormed).
	BroadcastAllFormed bool
	// Mutations: simulation mutants only.
	Mutations Mutations
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
	Timings     Timings           // may be nil
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
	// finality, doppelganger).
	Evidence uint64
	// OwnVotes counts votes signed by this node.
	OwnVotes uint64
	// VoteSignatureChecks counts ed25519 verifications of received votes;
	// CertificateChecks counts full re-verifications of received
	// certificates. Input rejected or ignored by the cheaper checks never
	// reaches them.
	VoteSignatureChecks uint64
	CertificateChecks   uint64
	// VotesEvicted counts votes dropped by the per-validator bound.
	VotesEvicted uint64
}

type counters struct {
	votesAccepted, votesIgnored, votesRejected atomic.Uint64
	certsAccepted, certsIgnored, certsRejected atomic.Uint64
	voteChecks, certChecks                     atomic.Uint64
}

// ErrStopped is returned by every call after a storage failure: the core's
// memory may be ahead of the database, so the gadget stops and the node
// must restart from the database.
var ErrStopped = errors.New("finality gadget stopped after a storage failure")

type outItem struct {
	msg   *Message
	event *Event
}

// CheckpointFinality is the ASF finality gadget: the driver of a Core. It
// serializes calls into the core, verifies signatures outside its lock,
// performs each Ready in the safe order (halts and evidence, certificates,
// votes, own vote through SafeSigner, then broadcasts, then observer
// events) and stops on the first storage failure. It is safe for concurrent
// use.
type CheckpointFinality struct {
	auth       checkpoint.AuthoritySet
	persistCfg CheckpointPersistenceConfig

	signer *SafeSigner
	clock  Clock
	bc     Broadcaster
	obs    Observer
	log    *zap.Logger
	tm     Timings
	m      counters
	halted atomic.Bool

	mu     sync.Mutex
	core   *Core
	store  CheckpointStorage
	failed error
	// outbox holds broadcasts and events in order; one goroutine at a time
	// delivers them, outside mu.
	outbox   []outItem
	draining bool
	// cached reads for lock-free getters
	latestJ, latestF atomic.Pointer[checkpoint.Checkpoint]
	// ownVotedAt: when each own vote target still waiting for
	// justification was signed (only with Timings).
	ownVotedAt map[checkpoint.Checkpoint]time.Time

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
		auth:       checkpoint.AuthoritySet{Genesis: cfg.Authorities.Genesis, SetID: cfg.Authorities.SetID, Keys: append([]ed25519.PublicKey(nil), cfg.Authorities.Keys...)},
		persistCfg: cfg.Persistence,
		signer:     deps.Signer,
		clock:      deps.Clock,
		bc:         deps.Broadcaster,
		obs:        deps.Observer,
		log:        deps.Logger,
		tm:         deps.Timings,
		store:      deps.Store,
	}
	if g.clock == nil {
		g.clock = systemClock{}
	}
	if g.log == nil {
		g.log = zap.NewNop()
	}
	g.log = g.log.Named("finality")
	ccfg := CoreConfig{
		Authorities:        g.auth,
		Schedule:           cfg.Schedule,
		FutureWindow:       cfg.FutureWindow,
		VotesPerValidator:  cfg.VotesPerValidator,
		RebroadcastAfter:   cfg.RebroadcastAfter,
		BroadcastAllFormed: cfg.BroadcastAllFormed,
		Mutations:          cfg.Mutations,
	}
	if g.signer != nil {
		switch {
		case !cfg.Persistence.Enabled:
			return nil, fmt.Errorf("%w: a validator refuses to vote without checkpoint persistence", ErrInvalidConfig)
		case g.bc == nil:
			return nil, fmt.Errorf("%w: a validator needs a broadcaster", ErrInvalidConfig)
		case deps.Ancestry == nil:
			return nil, fmt.Errorf("%w: a validator needs the chain ancestry", ErrInvalidConfig)
		}
		if cfg.Schedule != nil && len(cfg.Schedule.Changes) > 0 {
			in := false
			for id := cfg.Schedule.Genesis.SetID; id <= cfg.Schedule.Last(); id++ {
				set, _ := cfg.Schedule.Set(id)
				if _, ok := set.IndexOf(g.signer.PublicKey()); ok {
					in = true
				}
			}
			if !in {
				return nil, fmt.Errorf("%w: signer key is in no authority set of the schedule", ErrInvalidConfig)
			}
			g.signer.SetSchedule(*cfg.Schedule)
			ccfg.OwnKey = g.signer.PublicKey()
		} else {
			own := g.signer.Index()
			if err := g.auth.CheckIndex(own); err != nil {
				return nil, fmt.Errorf("%w: signer: %w", ErrInvalidConfig, err)
			}
			if !g.auth.Keys[own].Equal(g.signer.PublicKey()) {
				return nil, fmt.Errorf("%w: signer key is not authority %d", ErrInvalidConfig, own)
			}
			ccfg.Own = &own
		}
	}
	now := g.clock.Now()
	core, err := NewCore(ccfg, deps.Ancestry, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	g.core = core
	g.lastFlush, g.lastPrune = now, now
	g.publishPointersLocked()
	return g, nil
}

func (g *CheckpointFinality) persisting() bool { return g.persistCfg.Enabled && g.store != nil }

// SetStorage replaces the checkpoint database (call before
// RestoreFromStorage).
func (g *CheckpointFinality) SetStorage(s CheckpointStorage) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.store = s
}

func (g *CheckpointFinality) publishPointersLocked() {
	j, f := g.core.Justified(), g.core.Finalized()
	g.latestJ.Store(&j)
	g.latestF.Store(&f)
	g.halted.Store(g.core.Halted())
}

// LatestJustified returns the highest justified checkpoint.
func (g *CheckpointFinality) LatestJustified() checkpoint.Checkpoint { return *g.latestJ.Load() }

// LatestFinalized returns the highest finalized checkpoint.
func (g *CheckpointFinality) LatestFinalized() checkpoint.Checkpoint { return *g.latestF.Load() }

// Halted reports whether the gadget stopped voting after a safety alarm
// (conflicting finality, or a vote signed with our key that we did not sign).
// Alarms are persisted: a restarted gadget stays halted until an operator
// clears them.
func (g *CheckpointFinality) Halted() bool { return g.halted.Load() }

// Halts returns the active safety alarms.
func (g *CheckpointFinality) Halts() []checkpoint.Halt {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.core.Halts()
}

// Certificate returns the certificate that justified checkpoint number,
// while it is in memory (at or above the finalized checkpoint).
func (g *CheckpointFinality) Certificate(number uint64) (checkpoint.Certificate, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.core.Certificate(number)
}

// FinalityProof returns the proof of the finalized (and latest justified)
// checkpoint, see Core.FinalityProof.
func (g *CheckpointFinality) FinalityProof() (checkpoint.FinalityProof, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.core.FinalityProof()
}

// Status returns the level of checkpoint number.
func (g *CheckpointFinality) Status(number uint64) CheckpointStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.core.Status(number)
}

// Signers returns the validators behind the level Status(number) reports
// (see Core.Signers).
func (g *CheckpointFinality) Signers(number uint64) []checkpoint.ValidatorIndex {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.core.Signers(number)
}

// Sizes returns the sizes of the bounded in-memory structures.
func (g *CheckpointFinality) Sizes() Sizes {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.core.Sizes()
}

// OwnSeen returns what was seen of the local key while a fresh signer
// record was initialised.
func (g *CheckpointFinality) OwnSeen() OwnSeen {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.core.OwnSeen()
}

// Metrics returns a snapshot of the counters.
func (g *CheckpointFinality) Metrics() Metrics {
	g.mu.Lock()
	st := g.core.Stats()
	g.mu.Unlock()
	return Metrics{
		VotesAccepted:        g.m.votesAccepted.Load(),
		VotesIgnored:         g.m.votesIgnored.Load(),
		VotesRejected:        g.m.votesRejected.Load(),
		CertificatesAccepted: g.m.certsAccepted.Load(),
		CertificatesIgnored:  g.m.certsIgnored.Load(),
		CertificatesRejected: g.m.certsRejected.Load(),
		CertificatesFormed:   st.CertificatesFormed,
		Evidence:             st.Evidence,
		OwnVotes:             st.OwnVotes,
		VoteSignatureChecks:  g.m.voteChecks.Load(),
		CertificateChecks:    g.m.certChecks.Load(),
		VotesEvicted:         st.VotesEvicted,
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

// step runs fn on the core under the lock, performs the resulting Ready in
// the safe order and delivers the broadcasts and events afterwards.
func (g *CheckpointFinality) step(ctx context.Context, fn func(c *Core, now time.Time)) error {
	g.mu.Lock()
	if g.failed != nil {
		g.mu.Unlock()
		return g.failed
	}
	fn(g.core, g.clock.Now())
	err := g.processLocked(ctx)
	g.publishPointersLocked()
	g.mu.Unlock()
	g.deliver(ctx)
	return err
}

// processLocked performs the core's Ready until it is empty.
func (g *CheckpointFinality) processLocked(ctx context.Context) error {
	for {
		rd := g.core.TakeReady()
		if rd.Empty() {
			return nil
		}
		if err := g.performLocked(ctx, rd); err != nil {
			if rd.Sign != nil {
				g.core.SignFailed()
			}
			g.failed = fmt.Errorf("%w: %w", ErrStopped, err)
			return g.failed
		}
	}
}

// performLocked persists rd, signs a requested own vote and queues the
// broadcasts and events.
func (g *CheckpointFinality) performLocked(ctx context.Context, rd Ready) error {
	// Storage writes must not be cut short by a caller's deadline once the
	// core's state changed.
	wctx := context.WithoutCancel(ctx)
	store, persisting := g.store, g.persisting()
	if persisting {
		for _, h := range rd.Halts {
			if err := store.StoreHalt(wctx, h); err != nil {
				return fmt.Errorf("store halt: %w", err)
			}
		}
		for _, e := range rd.Evidence {
			if err := store.StoreEvidence(wctx, e); err != nil {
				return fmt.Errorf("store evidence: %w", err)
			}
		}
		for _, w := range rd.Certificates {
			start := time.Now()
			if err := store.StoreCertificate(wctx, w.Cert, w.Justified, w.Finalized); err != nil {
				return fmt.Errorf("store certificate: %w", err)
			}
			if g.tm != nil {
				g.tm.CertificatePersisted(time.Since(start))
			}
			t := w.Cert.Target
			g.log.Info(fmt.Sprintf("Stored certificate: checkpoint=%d, signatures=%d", t.Number, len(w.Cert.Signatures)),
				zap.Uint64("checkpoint", t.Number), zap.Int("signatures", len(w.Cert.Signatures)),
				cpField("source", w.Cert.Source), cpField("target", t), zap.Bool("pending", w.Pending))
		}
		for _, h := range rd.HandOffs {
			if err := store.StoreHandOff(wctx, h); err != nil {
				return fmt.Errorf("store hand-off: %w", err)
			}
		}
		for _, v := range rd.Votes {
			if err := store.StoreVote(wctx, v); err != nil {
				return fmt.Errorf("store vote: %w", err)
			}
		}
	}
	g.logEntries(rd.Logs)
	g.timeEvents(rd.Events)
	for _, e := range rd.Events {
		switch e.Kind {
		case EventFinalized:
			g.log.Info(fmt.Sprintf("Updated last finalized checkpoint: %d", e.Checkpoint.Number),
				zap.Uint64("checkpoint", e.Checkpoint.Number), zap.Stringer("hash", e.Checkpoint.Hash), cpField("previous", e.Previous))
		case EventHandOff:
			g.log.Info(fmt.Sprintf("Authority set hand-off: set %d in force after checkpoint %d", e.SetID, e.Checkpoint.Number),
				zap.Uint64("set_id", e.SetID), cpField("finalized", e.Previous), cpField("justified", e.Checkpoint),
				zap.Int("authorities", g.core.Authorities().Len()), zap.Bool("voter", g.core.IsVoter()))
		}
	}
	if rd.Sign != nil {
		if err := g.signLocked(ctx, *rd.Sign); err != nil {
			return err
		}
	}
	for i := range rd.Messages {
		g.outbox = append(g.outbox, outItem{msg: &rd.Messages[i]})
	}
	for i := range rd.Events {
		g.outbox = append(g.outbox, outItem{event: &rd.Events[i]})
	}
	return nil
}

// signLocked signs v through SafeSigner (its record is synced before the
// signature exists) and hands the result to the core.
func (g *CheckpointFinality) signLocked(ctx context.Context, v checkpoint.Vote) error {
	if err := ctx.Err(); err != nil {
		// Nothing was signed; the vote is asked again later.
		g.core.SignFailed()
		return nil
	}
	sv, err := g.signer.SignVote(ctx, v)
	if errors.Is(err, checkpoint.ErrSlashable) {
		rec, rerr := g.signer.Record(ctx)
		if rerr != nil {
			return fmt.Errorf("read own signer record: %w", rerr)
		}
		g.core.OwnVoteRefused(v, rec)
		return nil
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			g.core.SignFailed()
			return nil
		}
		return fmt.Errorf("sign checkpoint vote: %w", err)
	}
	g.log.Info("Voted for checkpoint", cpField("source", sv.Source), cpField("target", sv.Target), zap.Uint32("validator", uint32(sv.Validator)))
	now := g.clock.Now()
	g.noteOwnVote(sv.Target, now)
	g.core.OwnVoteSigned(sv, now)
	return nil
}

// noteOwnVote remembers when an own vote for target was signed (for
// Timings.OwnVoteJustified), at most maxOwnVoteTimes of them.
func (g *CheckpointFinality) noteOwnVote(target checkpoint.Checkpoint, at time.Time) {
	if g.tm == nil {
		return
	}
	if g.ownVotedAt == nil {
		g.ownVotedAt = make(map[checkpoint.Checkpoint]time.Time)
	}
	if _, ok := g.ownVotedAt[target]; ok {
		return
	}
	if len(g.ownVotedAt) >= maxOwnVoteTimes {
		lowest := target
		for cp := range g.ownVotedAt {
			if cp.Number < lowest.Number {
				lowest = cp
			}
		}
		if lowest == target {
			return
		}
		delete(g.ownVotedAt, lowest)
	}
	g.ownVotedAt[target] = at
}

// timeEvents reports own votes whose target was justified and forgets
// those at or below a newly finalized checkpoint.
func (g *CheckpointFinality) timeEvents(events []Event) {
	if g.tm == nil || len(g.ownVotedAt) == 0 {
		return
	}
	now := g.clock.Now()
	for _, e := range events {
		switch e.Kind {
		case EventJustified:
			if at, ok := g.ownVotedAt[e.Checkpoint]; ok {
				g.tm.OwnVoteJustified(now.Sub(at))
				delete(g.ownVotedAt, e.Checkpoint)
			}
		case EventFinalized:
			for cp := range g.ownVotedAt {
				if cp.Number <= e.Checkpoint.Number {
					delete(g.ownVotedAt, cp)
				}
			}
		}
	}
}

func (g *CheckpointFinality) logEntries(logs []LogEntry) {
	for _, l := range logs {
		switch l.Kind {
		case LogEvidence:
			ev := l.Evidence
			fields := []zap.Field{zap.Stringer("kind", ev.Kind), zap.Uint32("validator", uint32(ev.Validator)), zap.Uint64("checkpoint", ev.Checkpoint)}
			if ev.First != nil && ev.Second != nil {
				fields = append(fields, cpField("first_source", ev.First.Source), cpField("first_target", ev.First.Target),
					cpField("second_source", ev.Second.Source), cpField("second_target", ev.Second.Target))
			}
			g.log.Warn("Stored evidence of validator misbehaviour", fields...)
		case LogConflictingFinality:
			g.log.Error("Conflicting finality: a valid certificate contradicts the finalized chain; voting stopped until an operator clears the alarm",
				zap.Uint64("checkpoint", l.Halt.Checkpoint), zap.String("detail", l.Halt.Detail))
		case LogDoppelganger:
			fields := []zap.Field{zap.Uint64("checkpoint", l.Halt.Checkpoint), zap.String("detail", l.Halt.Detail)}
			if v := l.Halt.Vote; v != nil {
				fields = append(fields, cpField("source", v.Source), cpField("target", v.Target))
			}
			if ev := l.Halt.Evidence; ev != nil && ev.First != nil {
				fields = append(fields, cpField("last_signed_source", ev.First.Source), cpField("last_signed_target", ev.First.Target))
			}
			g.log.Error("found conflicting vote from ourselves", append(fields, zap.String("meaning", "another instance signs with this validator key; voting stopped"))...)
		case LogStalled:
			g.log.Info("Finality stalled: re-broadcasting latest vote and certificate",
				zap.String("since_last_finality", l.Text), cpField("finalized", l.Checkpoint), cpField("justified", l.Other))
		case LogNotVoting:
			g.log.Info("Not voting: "+l.Text, cpField("source", l.Checkpoint), cpField("target", l.Other))
		}
	}
}

// deliver sends queued broadcasts and events in order without holding the
// lock while a Broadcaster or Observer runs, so a synchronous delivery that
// calls back into the gadget cannot deadlock. Only one goroutine delivers
// at a time; items queued meanwhile are delivered by it, in order.
func (g *CheckpointFinality) deliver(ctx context.Context) {
	g.mu.Lock()
	if g.draining {
		g.mu.Unlock()
		return
	}
	g.draining = true
	for len(g.outbox) > 0 {
		it := g.outbox[0]
		g.outbox[0] = outItem{}
		g.outbox = g.outbox[1:]
		g.mu.Unlock()
		g.dispatch(ctx, it)
		g.mu.Lock()
	}
	g.outbox = nil
	g.draining = false
	g.mu.Unlock()
}

func (g *CheckpointFinality) dispatch(ctx context.Context, it outItem) {
	if m := it.msg; m != nil {
		if g.bc == nil {
			return
		}
		switch m.Kind {
		case MsgVote:
			if err := g.bc.BroadcastVote(ctx, m.Vote); err != nil {
				g.log.Warn("Failed to broadcast checkpoint vote", zap.Uint64("checkpoint", m.Vote.Target.Number), zap.Error(err))
			}
		case MsgCertificate:
			if err := g.bc.BroadcastCertificate(ctx, m.Cert); err != nil {
				g.log.Warn("Failed to broadcast checkpoint certificate", zap.Uint64("checkpoint", m.Cert.Target.Number), zap.Error(err))
			}
		}
		return
	}
	e := it.event
	if e == nil || g.obs == nil {
		return
	}
	switch e.Kind {
	case EventJustified:
		g.obs.Justified(e.Checkpoint)
	case EventFinalized:
		g.obs.Finalized(e.Checkpoint)
	case EventHalted:
		if ho, ok := g.obs.(HaltObserver); ok {
			ho.Halted(e.Halt)
		}
	}
}

func cpField(key string, cp checkpoint.Checkpoint) zap.Field { return zap.Stringer(key, cp) }

// --- Inputs -------------------------------------------------------------------

// OnCheckpointBlock tells the gadget that cp is the best chain's latest
// checkpoint block (after an import or a reorganisation). A validator that
// is not halted votes J -> cp when cp is above the latest justified
// checkpoint J, above every target it signed, and descends from J: the vote
// is signed through SafeSigner (record synced first), stored, counted, then
// broadcast. A refusal by the signer's safety rules is normal and returns
// nil.
func (g *CheckpointFinality) OnCheckpointBlock(ctx context.Context, cp checkpoint.Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return g.step(ctx, func(c *Core, now time.Time) { c.SetHead(cp, now) })
}

// SetPaused stops or resumes own voting (e.g. while catching up).
func (g *CheckpointFinality) SetPaused(ctx context.Context, paused bool) error {
	return g.step(ctx, func(c *Core, _ time.Time) { c.SetPaused(paused) })
}

// OnVote handles a vote received from the network. Checks run cheapest
// first (see Core.PrecheckVote); the signature is verified outside the
// lock. The error is only for local (storage) failures.
func (g *CheckpointFinality) OnVote(ctx context.Context, v checkpoint.SignedVote) (Verdict, error) {
	verdict, err := g.onVote(ctx, v)
	if err == nil {
		countVerdict(verdict, &g.m.votesAccepted, &g.m.votesIgnored, &g.m.votesRejected)
	}
	return verdict, err
}

func (g *CheckpointFinality) onVote(ctx context.Context, v checkpoint.SignedVote) (Verdict, error) {
	if err := ctx.Err(); err != nil {
		return VerdictIgnore, err
	}
	g.mu.Lock()
	verdict, failed := g.core.PrecheckVote(v), g.failed
	key, _ := g.core.VoteKey(v)
	g.mu.Unlock()
	if failed != nil {
		return VerdictIgnore, failed
	}
	if verdict != VerdictAccept {
		return verdict, nil
	}
	if key == nil {
		return VerdictReject, nil
	}
	g.m.voteChecks.Add(1)
	if err := v.Verify(key); err != nil {
		g.log.Debug("Rejected checkpoint vote", zap.Uint32("validator", uint32(v.Validator)), cpField("target", v.Target), zap.Error(err))
		return VerdictReject, nil
	}
	err := g.step(ctx, func(c *Core, now time.Time) { verdict = c.AddVote(v, now) })
	return verdict, err
}

// OnCertificate handles a certificate received from the network or from
// sync. Its shape is checked before any signature; it is fully re-verified
// before it is trusted. A certificate whose source is not (yet) known
// justified is kept and applied when the source becomes justified. A valid
// certificate that contradicts the finalized chain is stored as
// conflicting-finality evidence and halts voting. The error is only for
// local (storage) failures.
func (g *CheckpointFinality) OnCertificate(ctx context.Context, c checkpoint.Certificate) (Verdict, error) {
	verdict, err := g.onCertificate(ctx, c)
	if err == nil {
		countVerdict(verdict, &g.m.certsAccepted, &g.m.certsIgnored, &g.m.certsRejected)
	}
	return verdict, err
}

func (g *CheckpointFinality) onCertificate(ctx context.Context, c checkpoint.Certificate) (Verdict, error) {
	if err := ctx.Err(); err != nil {
		return VerdictIgnore, err
	}
	g.mu.Lock()
	verdict, verify := g.core.PrecheckCertificate(c)
	failed := g.failed
	cv := g.core.CertVerifier()
	g.mu.Unlock()
	if failed != nil {
		return VerdictIgnore, failed
	}
	if !verify {
		return verdict, nil
	}
	g.m.certChecks.Add(1)
	if err := cv.Verify(c); err != nil {
		g.log.Debug("Rejected checkpoint certificate", cpField("target", c.Target), zap.Error(err))
		return VerdictReject, nil
	}
	err := g.step(ctx, func(core *Core, now time.Time) { verdict = core.AddCertificate(c, now) })
	if err != nil {
		return VerdictIgnore, err
	}
	return verdict, nil
}

// ErrBadProof is returned by VerifyFinalityProof and ApplyFinalityProof for
// a proof that does not verify. It is checkpoint.ErrBadProof, the error of
// the one proof verifier (checkpoint.AuthoritySet.VerifyFinalityProof).
var ErrBadProof = checkpoint.ErrBadProof

// VerifyFinalityProof verifies a finality proof without applying it (see
// Core.VerifyProof: checkpoint.AuthoritySet.VerifyFinalityProof). Errors
// wrap ErrBadProof.
func (g *CheckpointFinality) VerifyFinalityProof(p checkpoint.FinalityProof) error {
	return g.core.VerifyProof(p)
}

// ApplyFinalityProof verifies a finality proof like VerifyFinalityProof
// (errors wrap ErrBadProof; nothing changes) and jumps to its finalized and
// justified checkpoints (see Core.ApplyProof); a verified proof that
// contradicts the finalized chain raises the conflicting-finality alarm
// instead. moved reports whether the state moved.
func (g *CheckpointFinality) ApplyFinalityProof(ctx context.Context, p checkpoint.FinalityProof) (moved bool, err error) {
	if err := g.core.VerifyProof(p); err != nil {
		return false, err
	}
	err = g.step(ctx, func(c *Core, now time.Time) { moved = c.ApplyProof(p, now) })
	return moved, err
}

// RaiseAlarm halts the gadget on a safety violation found outside it; the
// alarm is persisted.
func (g *CheckpointFinality) RaiseAlarm(ctx context.Context, h checkpoint.Halt) error {
	return g.step(ctx, func(c *Core, _ time.Time) { c.RaiseAlarm(h) })
}

// BeginSignerInit starts the listening phase of a fresh signer record (see
// Core.BeginSignerInit).
func (g *CheckpointFinality) BeginSignerInit(ctx context.Context, mark uint64) error {
	return g.step(ctx, func(c *Core, _ time.Time) { c.BeginSignerInit(mark) })
}

// SignerInitialised ends the listening phase: the signer's record (already
// persisted) is handed to the core, which may vote right away.
func (g *CheckpointFinality) SignerInitialised(ctx context.Context) error {
	if g.signer == nil {
		return nil
	}
	rec, err := g.signer.Record(ctx)
	if err != nil {
		return fmt.Errorf("read own signer record: %w", err)
	}
	return g.step(ctx, func(c *Core, _ time.Time) { c.SignerInitialised(rec) })
}

// Tick re-broadcasts the own latest vote and the latest certificates when
// finality has not advanced for RebroadcastAfter. Broadcast failures are
// logged, not returned.
func (g *CheckpointFinality) Tick(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return g.step(ctx, func(c *Core, now time.Time) { c.Tick(now) })
}

// RestoreFromStorage rebuilds the in-memory state from the database (see
// Core.Restore) and the signer's record. Without persistence it does
// nothing.
//
// fallback, when given, is a finality proof kept elsewhere (the chain
// database's): when it finalizes a checkpoint above the one restored from
// the checkpoint database (a new or rebuilt checkpoint database), it is
// verified and applied before the restore is reported, so the restored
// state is never below what the node had already proven final.
func (g *CheckpointFinality) RestoreFromStorage(ctx context.Context, fallback ...checkpoint.FinalityProof) error {
	g.mu.Lock()
	store, persisting := g.store, g.persisting()
	g.mu.Unlock()
	if !persisting {
		return nil
	}
	start := time.Now()
	g.log.Info("Restoring checkpoint state from storage")
	st, err := store.Restore(ctx)
	if err != nil {
		return fmt.Errorf("restore checkpoint state: %w", err)
	}
	var rec *checkpoint.SignerRecord
	if g.signer != nil {
		r, err := g.signer.Record(ctx)
		if err != nil {
			return fmt.Errorf("restore own signer record: %w", err)
		}
		rec = &r
	}
	var f, j checkpoint.Checkpoint
	err = g.step(ctx, func(c *Core, now time.Time) {
		c.Restore(st, rec, now)
		f, j = c.Finalized(), c.Justified()
		g.log.Info(fmt.Sprintf("Last finalized checkpoint: %d", f.Number), zap.Uint64("checkpoint", f.Number),
			zap.Stringer("hash", f.Hash), cpField("justified", j))
	})
	if err != nil {
		return err
	}
	for _, p := range fallback {
		if p.Finalizing.Source.Number <= g.LatestFinalized().Number {
			continue
		}
		moved, err := g.ApplyFinalityProof(ctx, p)
		if err != nil {
			return fmt.Errorf("apply the fallback finality proof: %w", err)
		}
		if moved {
			g.log.Info("Finality restored from the chain database's finality proof",
				zap.Stringer("finalized", g.LatestFinalized()), zap.Stringer("justified", g.LatestJustified()))
		}
	}
	if len(st.Halts) > 0 {
		for _, h := range st.Halts {
			g.log.Error("Stored safety alarm found; voting stays stopped until an operator clears it (flare-node checkpoints clear-halt)",
				zap.Stringer("reason", h.Reason), zap.Uint64("checkpoint", h.Checkpoint), zap.String("detail", h.Detail))
		}
	}
	f, j = g.LatestFinalized(), g.LatestJustified()
	g.log.Info(fmt.Sprintf("Checkpoint state restored successfully: last_finalized=%d", f.Number),
		zap.Uint64("last_finalized", f.Number), zap.Uint64("last_justified", j.Number),
		zap.Int("certificates", len(st.Certificates)), zap.Int("votes", len(st.Votes)), zap.Int("evidence", len(st.Evidence)),
		zap.Int("halts", len(st.Halts)), zap.Duration("duration", time.Since(start)))
	return nil
}

// PerformPeriodicMaintenance flushes the database when FlushInterval elapsed
// since the last flush and prunes it to RetentionCheckpoints when
// PruneInterval elapsed since the last prune (both by the injected clock).
// Storage errors are returned; the node stops on them.
func (g *CheckpointFinality) PerformPeriodicMaintenance(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.maintMu.Lock()
	defer g.maintMu.Unlock()
	g.mu.Lock()
	store, persisting, failed := g.store, g.persisting(), g.failed
	g.mu.Unlock()
	if failed != nil {
		return failed
	}
	if !persisting {
		return nil
	}
	now := g.clock.Now()
	if now.Sub(g.lastFlush) >= g.persistCfg.FlushInterval {
		g.log.Info("Auto-flushing checkpoint database", zap.Duration("interval", g.persistCfg.FlushInterval))
		if err := store.Flush(ctx); err != nil {
			return fmt.Errorf("flush checkpoint database: %w", err)
		}
		g.lastFlush = now
	}
	if now.Sub(g.lastPrune) >= g.persistCfg.PruneInterval {
		g.log.Info("Auto-pruning old checkpoint data", zap.Uint64("retention_checkpoints", g.persistCfg.RetentionCheckpoints))
		n, err := store.Prune(ctx, g.persistCfg.RetentionCheckpoints)
		if err != nil {
			return fmt.Errorf("prune checkpoint database: %w", err)
		}
		g.lastPrune = now
		if g.tm != nil {
			g.tm.Pruned(n)
		}
		if n > 0 {
			g.log.Info(fmt.Sprintf("Pruned %d old checkpoints", n), zap.Int("pruned", n), zap.Uint64("retention_checkpoints", g.persistCfg.RetentionCheckpoints))
		}
	}
	return nil
}

// AuthorityStatus is the authority set in force and the changes scheduled
// after it.
type AuthorityStatus struct {
	Set checkpoint.AuthoritySet
	// HandOff is the certificate that handed off to Set (it finalized
	// HandOff.Source and justified HandOff.Target, where Set's voting
	// starts); nil for the genesis set.
	HandOff *checkpoint.Certificate
	// Pending are the scheduled changes after Set, in order.
	Pending []checkpoint.SetChange
	// Voter reports whether the local key is in Set.
	Voter bool
}

// Schedule returns the authority schedule the gadget follows.
func (g *CheckpointFinality) Schedule() checkpoint.Schedule {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.core.Schedule()
}

// HandOffs returns the hand-off certificate of every set before the one in
// force, in set id order (Core.HandOffs).
func (g *CheckpointFinality) HandOffs() []checkpoint.Certificate {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.core.HandOffs()
}

// Authorities returns the authority set in force and the pending changes.
func (g *CheckpointFinality) Authorities() AuthorityStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := AuthorityStatus{Set: g.core.Authorities(), Voter: g.core.IsVoter()}
	if h := g.core.HandOffs(); len(h) > 0 {
		st.HandOff = &h[len(h)-1]
	}
	sched := g.core.Schedule()
	for id := st.Set.SetID; ; id++ {
		ch, ok := sched.Next(id)
		if !ok {
			break
		}
		st.Pending = append(st.Pending, ch)
	}
	return st
}

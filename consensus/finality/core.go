package finality

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality/tally"
)

// Defaults of CoreConfig.
const (
	// DefaultFutureWindow: votes whose target is more than this many
	// checkpoints above the node's best known checkpoint (the best chain's
	// latest checkpoint, or the latest justified one when higher) are
	// ignored. The window moves with the chain head, not with finality, so a
	// long stall of finality never stops votes from counting.
	DefaultFutureWindow uint64 = 256
	// DefaultVotesPerValidator bounds the votes held per validator above the
	// finalized checkpoint (its newest ones).
	DefaultVotesPerValidator = 64
	// DefaultMaxPending bounds certificates kept while their source is not
	// known justified.
	DefaultMaxPending = 1024
	// DefaultMaxJustified bounds the justified checkpoints (with their
	// certificates) held above the finalized one.
	DefaultMaxJustified = 1024
	// DefaultRebroadcastAfter: Tick re-broadcasts the own latest vote and
	// the latest certificates when finality has not advanced for this long.
	DefaultRebroadcastAfter = 10 * time.Second
	// maxCanon bounds the finalized chain's checkpoints remembered below the
	// finalized one (to recognise conflicting certificates).
	maxCanon = 1024
	// maxAlarms bounds the conflicting links remembered (to report once).
	maxAlarms = 64
)

// CoreConfig configures a Core.
type CoreConfig struct {
	Authorities checkpoint.AuthoritySet
	// Schedule, when set, is the authority schedule whose genesis set is
	// Authorities: the core hands off to each next set (docs/protocol.md,
	// "Authority set hand-offs"). nil: Authorities never changes.
	Schedule *checkpoint.Schedule
	// Own is the local validator's index; nil for a node that never votes.
	Own *checkpoint.ValidatorIndex
	// OwnKey is the local validator key (instead of Own): the core votes in
	// every set of the schedule that holds it, with its index there.
	OwnKey ed25519.PublicKey
	// FutureWindow, VotesPerValidator, MaxPending, MaxJustified and
	// RebroadcastAfter: 0 means the default.
	FutureWindow      uint64
	VotesPerValidator int
	MaxPending        int
	MaxJustified      int
	RebroadcastAfter  time.Duration
	// BroadcastAllFormed makes every node broadcast the certificates it
	// forms (by default one validator per checkpoint does).
	BroadcastAllFormed bool
	// Mutations deliberately break a rule (simulation mutants only).
	Mutations Mutations
}

// Mutations are deliberately broken rules the deterministic simulator
// switches on to prove that its invariant checks catch them. Production code
// never sets them.
type Mutations struct {
	// QuorumOneShort justifies with one vote less than the quorum.
	QuorumOneShort bool
	// AcceptDuplicateSigners accepts a certificate that lists a signer more
	// than once (each listing counted towards the quorum).
	AcceptDuplicateSigners bool
	// FinalizeNonConsecutive finalizes the source of any certificate whose
	// source is justified, not only of c_t = c_s + 1 links.
	FinalizeNonConsecutive bool
	// IgnoreConflicts never raises the conflicting-finality alarm.
	IgnoreConflicts bool
	// SkipSourceCheck votes even when the latest justified checkpoint is
	// below an earlier own vote's source.
	SkipSourceCheck bool
	// EnactOnJustified hands off to the next set as soon as the old set
	// justifies a checkpoint at or above the hand-off, without finalizing.
	EnactOnJustified bool
	// CountRemovedVotes counts votes of the previous set after a hand-off
	// as votes of the current set (same index).
	CountRemovedVotes bool
	// OldSetCertificates verifies certificates of the previous set with
	// that set and applies them after a hand-off.
	OldSetCertificates bool
	// SkipHandOffProofs accepts a finality proof whose certificates verify
	// with the set they name, without the chain of hand-offs before it.
	SkipHandOffProofs bool
}

// maxFutureVotes bounds the buffered votes of the next authority set.
const maxFutureVotes = 4096

// Ancestry tells whether a block descends from a checkpoint (implemented by
// the chain). It is read-only.
type Ancestry interface {
	// IsDescendant reports whether block `block` is `ancestor`'s block or
	// descends from it on known chains.
	IsDescendant(block checkpoint.Hash, ancestor checkpoint.Checkpoint) bool
}

// OwnSeen summarises votes signed with the local key that the core saw
// while the signer record was being initialised.
type OwnSeen struct {
	Votes     int
	MaxSource uint64
	MaxTarget uint64
}

// CoreStats are the core's counters.
type CoreStats struct {
	CertificatesFormed uint64
	Evidence           uint64
	OwnVotes           uint64
	VotesEvicted       uint64
}

// Core is the deterministic ASF checkpoint finality state machine: FFG
// justification and finalization, vote counting with equivocation evidence,
// conflicting-finality and doppelganger alarms, and the decision when to
// vote. It performs no I/O and reads no clock: every input carries the time,
// every effect is returned in a Ready (see its ordering contract). It is not
// safe for concurrent use; CheckpointFinality is its driver.
type Core struct {
	sched   checkpoint.Schedule
	ownKey  ed25519.PublicKey
	auth    checkpoint.AuthoritySet
	quorum  int
	genesis checkpoint.Checkpoint
	own     checkpoint.ValidatorIndex
	voter   bool
	anc     Ancestry
	cfg     CoreConfig

	finalized checkpoint.Checkpoint
	// finalizing is the certificate (finalized, finalized+1) that finalized
	// the finalized checkpoint, when known.
	finalizing *checkpoint.Certificate
	latestJ    checkpoint.Checkpoint
	// justified maps each justified checkpoint at or above the finalized one
	// to the source of the certificate that justified it (itself when not
	// known: genesis, a restored pointer, a proof).
	justified map[checkpoint.Checkpoint]checkpoint.Checkpoint
	// certs holds the certificate of each justified target number.
	certs map[uint64]checkpoint.Certificate
	// canon holds the finalized chain's checkpoints known by number.
	canon map[uint64]checkpoint.Hash
	// pending holds verified certificates by source until it is justified.
	pending      map[checkpoint.Checkpoint][]pendingCert
	pendingLinks map[checkpoint.Link]struct{}
	tally        *tally.Tally
	alarmed      map[checkpoint.Link]struct{}

	head    checkpoint.Checkpoint
	hasHead bool

	// Own signing state.
	record    *checkpoint.SignerRecord // nil: not initialised (no voting)
	paused    bool
	signing   bool   // a Sign request is outstanding
	refusedAt uint64 // the signer refused a vote with this target number
	// resendLast: the last own vote is sent again once the head reaches its
	// target (it may never have left before a crash or restart).
	resendLast bool
	initMark   *uint64
	ownSeen    OwnSeen
	halts      []checkpoint.Halt

	// handoffs are the hand-off certificates of every earlier set.
	handoffs []checkpoint.Certificate
	// future buffers verified votes of the next set until the hand-off.
	future []checkpoint.SignedVote
	// now is the latest time an input carried; jAt when maybeVote first
	// saw lastJ as the latest justified checkpoint (hand-off patience).
	now, jAt time.Time
	lastJ    checkpoint.Checkpoint

	lastProgress    time.Time
	lastRebroadcast time.Time
	stallLogged     bool
	stats           CoreStats
	rd              Ready
}

type pendingCert struct {
	cert checkpoint.Certificate
	// formed: built here from counted votes; broadcast once applied.
	formed bool
}

// ErrInvalidCore is returned by NewCore for an unusable configuration.
var ErrInvalidCore = errors.New("invalid finality core configuration")

// NewCore returns a core at genesis.
func NewCore(cfg CoreConfig, anc Ancestry, now time.Time) (*Core, error) {
	if cfg.Authorities.Len() == 0 {
		return nil, fmt.Errorf("%w: empty authority set", ErrInvalidCore)
	}
	sched := checkpoint.StaticSchedule(cfg.Authorities)
	if cfg.Schedule != nil {
		sched = *cfg.Schedule
		if sched.Genesis.SetID != cfg.Authorities.SetID || sched.Genesis.Genesis != cfg.Authorities.Genesis || sched.Genesis.Len() != cfg.Authorities.Len() {
			return nil, fmt.Errorf("%w: the schedule does not start with the authority set", ErrInvalidCore)
		}
		if err := sched.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCore, err)
		}
	}
	ownKey := cfg.OwnKey
	if cfg.Own != nil {
		if err := cfg.Authorities.CheckIndex(*cfg.Own); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCore, err)
		}
		ownKey = cfg.Authorities.Keys[*cfg.Own]
	}
	if ownKey != nil && anc == nil {
		return nil, fmt.Errorf("%w: a voter needs the chain ancestry", ErrInvalidCore)
	}
	if cfg.FutureWindow == 0 {
		cfg.FutureWindow = DefaultFutureWindow
	}
	if cfg.VotesPerValidator <= 0 {
		cfg.VotesPerValidator = DefaultVotesPerValidator
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.MaxJustified <= 0 {
		cfg.MaxJustified = DefaultMaxJustified
	}
	if cfg.RebroadcastAfter <= 0 {
		cfg.RebroadcastAfter = DefaultRebroadcastAfter
	}
	c := &Core{
		sched:   sched,
		ownKey:  ownKey,
		genesis: checkpoint.Checkpoint{Number: 0, Hash: cfg.Authorities.Genesis},
		anc:     anc,
		cfg:     cfg,
	}
	c.enterSet(sched.Genesis)
	c.reset(c.genesis, c.genesis, nil)
	c.lastProgress, c.now, c.jAt = now, now, now
	return c, nil
}

// enterSet makes a the set in force: quorum and own index follow it.
func (c *Core) enterSet(a checkpoint.AuthoritySet) {
	c.auth = a
	c.quorum = a.Quorum()
	if c.cfg.Mutations.QuorumOneShort {
		c.quorum--
	}
	c.voter = false
	if c.ownKey != nil {
		if i, ok := a.IndexOf(c.ownKey); ok {
			c.own, c.voter = i, true
		}
	}
}

// Authorities returns the set in force.
func (c *Core) Authorities() checkpoint.AuthoritySet { return c.auth }

// HandOffs returns the hand-off certificates of every earlier set.
func (c *Core) HandOffs() []checkpoint.Certificate {
	out := make([]checkpoint.Certificate, len(c.handoffs))
	for i, h := range c.handoffs {
		out[i] = cloneCert(h)
	}
	return out
}

// Schedule returns the authority schedule.
func (c *Core) Schedule() checkpoint.Schedule { return c.sched }

// IsVoter reports whether the local key is in the set in force.
func (c *Core) IsVoter() bool { return c.voter }

// handOffDue reports whether cert, just applied, hands off to the next set:
// it is the current set's hand-off link and finalized its source.
func (c *Core) handOffDue(cert checkpoint.Certificate) bool {
	if !c.sched.IsHandOffLink(c.auth.SetID, cert.Vote()) {
		return false
	}
	return c.finalized == cert.Source
}

// maybeHandOff enters the next set when cert is the current set's hand-off
// certificate (it finalized a checkpoint at or above the hand-off): the old
// set's state above it is dropped (its later votes count for nothing), the
// hand-off is recorded and persisted, and the next set's buffered votes are
// counted.
func (c *Core) maybeHandOff(cert checkpoint.Certificate, now time.Time) {
	if !c.handOffDue(cert) {
		return
	}
	c.handOff(cert, now)
}

func (c *Core) handOff(cert checkpoint.Certificate, now time.Time) {
	next, ok := c.sched.Set(c.auth.SetID + 1)
	if !ok {
		return
	}
	hc := cloneCert(cert)
	c.handoffs = append(c.handoffs, hc)
	c.rd.HandOffs = append(c.rd.HandOffs, hc)
	c.rd.Events = append(c.rd.Events, Event{Kind: EventHandOff, Checkpoint: cert.Target, Previous: cert.Source, SetID: next.SetID})
	canon := c.canon
	c.enterSet(next)
	f, j := cert.Source, cert.Target
	if c.cfg.Mutations.EnactOnJustified && c.finalized.Number < f.Number {
		f = c.finalized
	}
	c.reset(f, j, &hc)
	for n, h := range canon {
		c.canon[n] = h
	}
	c.justified[j] = cert.Source
	c.certs[j.Number] = hc
	c.refusedAt = 0
	c.lastProgress = now
	fut := c.future
	c.future = nil
	for _, v := range fut {
		if v.SetID == c.auth.SetID && v.Target.Number > c.finalized.Number && v.Target.Number <= c.horizon() {
			c.addVerifiedVote(v, true, now)
		}
	}
}

func (c *Core) reset(f, j checkpoint.Checkpoint, fc *checkpoint.Certificate) {
	c.finalized, c.latestJ, c.finalizing = f, j, fc
	c.justified = map[checkpoint.Checkpoint]checkpoint.Checkpoint{f: f, j: j}
	c.certs = make(map[uint64]checkpoint.Certificate)
	c.canon = map[uint64]checkpoint.Hash{0: c.genesis.Hash, f.Number: f.Hash}
	c.pending = make(map[checkpoint.Checkpoint][]pendingCert)
	c.pendingLinks = make(map[checkpoint.Link]struct{})
	c.tally = tally.NewBounded(f.Number, c.cfg.VotesPerValidator)
	if c.alarmed == nil {
		c.alarmed = make(map[checkpoint.Link]struct{})
	}
}

// TakeReady returns the effects accumulated since the last call.
func (c *Core) TakeReady() Ready {
	rd := c.rd
	c.rd = Ready{}
	return rd
}

// Finalized returns the latest finalized checkpoint.
func (c *Core) Finalized() checkpoint.Checkpoint { return c.finalized }

// Justified returns the latest justified checkpoint.
func (c *Core) Justified() checkpoint.Checkpoint { return c.latestJ }

// Halted reports whether a safety alarm stopped voting.
func (c *Core) Halted() bool { return len(c.halts) > 0 }

// Halts returns the active safety alarms.
func (c *Core) Halts() []checkpoint.Halt { return slices.Clone(c.halts) }

// Stats returns the counters.
func (c *Core) Stats() CoreStats {
	s := c.stats
	s.VotesEvicted = uint64(c.tally.Evicted())
	return s
}

// Head returns the best chain's latest checkpoint as last reported.
func (c *Core) Head() (checkpoint.Checkpoint, bool) { return c.head, c.hasHead }

// LastOwnVote returns the last vote the local signer signed, if known.
func (c *Core) LastOwnVote() *checkpoint.SignedVote {
	if c.record == nil || c.record.Last == nil {
		return nil
	}
	v := *c.record.Last
	return &v
}

// OwnSeen returns what was seen of the local key while initialising.
func (c *Core) OwnSeen() OwnSeen { return c.ownSeen }

// FinalityProof returns the certificates that prove the finalized and the
// latest justified checkpoint: the certificate (F, F+1) that finalized F,
// and the certificate of the latest justified checkpoint when it is above
// F+1. ok is false when F's finalizing certificate is not known (genesis,
// or restored from a bare pointer).
func (c *Core) FinalityProof() (checkpoint.FinalityProof, bool) {
	if c.finalizing == nil {
		return checkpoint.FinalityProof{}, false
	}
	p := checkpoint.FinalityProof{Finalizing: cloneCert(*c.finalizing), HandOffs: c.HandOffs()}
	f := c.finalizing.Source
	if c.latestJ.Number > c.finalizing.Target.Number && c.finalizing.SetID == c.auth.SetID {
		// The justified certificate goes in only when it links from F or
		// above (VerifyFinalityProof): one that links from below F (with at
		// least a third equivocating, a link surrounding the finalizing
		// one) would make the proof one nobody accepts, the chain database
		// included.
		if jc, ok := c.certs[c.latestJ.Number]; ok && jc.Target == c.latestJ &&
			(jc.Source.Number > f.Number || jc.Source == f) {
			j := cloneCert(jc)
			p.Justified = &j
		}
	}
	return p, true
}

func cloneCert(cert checkpoint.Certificate) checkpoint.Certificate {
	cert.Signatures = slices.Clone(cert.Signatures)
	return cert
}

// Certificate returns the certificate that justified checkpoint number while
// it is held (at or above the finalized checkpoint).
func (c *Core) Certificate(number uint64) (checkpoint.Certificate, bool) {
	cert, ok := c.certs[number]
	if !ok {
		if c.finalizing != nil && c.finalizing.Target.Number == number {
			return cloneCert(*c.finalizing), true
		}
		return checkpoint.Certificate{}, false
	}
	return cloneCert(cert), true
}

// Status returns the level of checkpoint number.
func (c *Core) Status(number uint64) CheckpointStatus {
	st := CheckpointStatus{Number: number, Quorum: c.quorum}
	if number <= c.finalized.Number {
		st.Level = LevelFinality
		st.Hash = c.canon[number]
		if cert, ok := c.certs[number]; ok && cert.Target.Hash == st.Hash {
			st.Weight = max(len(cert.Signatures), c.tally.Weight(cert.Vote().Link()))
		}
		return st
	}
	if cert, ok := c.certs[number]; ok {
		st.Level = LevelCommitment
		st.Hash = cert.Target.Hash
		st.Weight = max(len(cert.Signatures), c.tally.Weight(cert.Vote().Link()))
		return st
	}
	if l, w, ok := c.tally.Best(number); ok {
		st.Level = LevelPreCommitment
		st.Hash = l.Target.Hash
		st.Weight = w
	}
	return st
}

// Signers returns the validators behind the level Status(number) reports,
// ascending: the signers of the certificate of number when there is one
// (for a finalized number: only when it certifies the finalized chain's
// hash), else those whose votes for the leading link were counted.
func (c *Core) Signers(number uint64) []checkpoint.ValidatorIndex {
	var out []checkpoint.ValidatorIndex
	if cert, ok := c.certs[number]; ok && (number > c.finalized.Number || cert.Target.Hash == c.canon[number]) {
		for _, s := range cert.Signatures {
			out = append(out, s.Validator)
		}
	} else if number > c.finalized.Number {
		if l, _, ok := c.tally.Best(number); ok {
			for _, v := range c.tally.Votes(l) {
				out = append(out, v.Validator)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Sizes reports the sizes of the bounded in-memory structures (for memory
// checks).
type Sizes struct {
	Votes, Targets, Justified, Certificates, Canon, Pending int
}

// Sizes returns the current sizes.
func (c *Core) Sizes() Sizes {
	return Sizes{Votes: c.tally.Len(), Targets: c.tally.Numbers(), Justified: len(c.justified),
		Certificates: len(c.certs), Canon: len(c.canon), Pending: len(c.pendingLinks)}
}

// --- Restore -------------------------------------------------------------

// Restore rebuilds the state from the database: pointers, certificates at or
// above the finalized checkpoint (replayed in target order), votes above it
// (re-tallied: a quorum completed by them is formed and written now), stored
// evidence and halts, and the own signer record (nil for a node that does
// not vote or whose record is not initialised yet). Stored data was verified
// before it was written and is not verified again. Restore reports only
// what changes the database; nothing of the replay is broadcast or reported
// as an event.
func (c *Core) Restore(st RestoredState, rec *checkpoint.SignerRecord, now time.Time) {
	f, j := c.genesis, c.genesis
	if st.Finalized != nil && st.Finalized.Number > 0 {
		f = *st.Finalized
	}
	if st.Justified != nil && st.Justified.Number > f.Number {
		j = *st.Justified
	} else {
		j = f
	}
	// The sets: every stored hand-off in order, then one whose certificate
	// was stored (with the finalized pointer) but not the hand-off record
	// (a crash between the two writes): it is written again.
	c.enterSet(c.sched.Genesis)
	c.handoffs = nil
	for _, h := range st.HandOffs {
		if h.SetID != c.auth.SetID || !c.sched.IsHandOffLink(h.SetID, h.Vote()) {
			break
		}
		next, _ := c.sched.Set(h.SetID + 1)
		c.handoffs = append(c.handoffs, cloneCert(h))
		c.enterSet(next)
	}
	var redo []checkpoint.Certificate
	for {
		found := false
		for _, cert := range st.Certificates {
			if cert.SetID == c.auth.SetID && c.sched.IsHandOffLink(cert.SetID, cert.Vote()) && cert.Source == f {
				next, _ := c.sched.Set(cert.SetID + 1)
				c.handoffs = append(c.handoffs, cloneCert(cert))
				redo = append(redo, cloneCert(cert))
				c.enterSet(next)
				found = true
				break
			}
		}
		if !found {
			break
		}
	}
	if n := len(c.handoffs); n > 0 {
		last := c.handoffs[n-1]
		if f.Number < last.Source.Number {
			f = last.Source
		}
		if j.Number < last.Target.Number {
			j = last.Target
		}
	}
	c.reset(f, j, nil)
	if n := len(c.handoffs); n > 0 {
		last := c.handoffs[n-1]
		c.canon[last.Source.Number] = last.Source.Hash
		c.justified[last.Target] = last.Source
		c.certs[last.Target.Number] = last
		if last.Source == f {
			fc := cloneCert(last)
			c.finalizing = &fc
		}
	}
	c.halts = append(c.halts[:0], st.Halts...)
	if rec != nil {
		r := rec.Clone()
		c.record = &r
	}
	for _, e := range st.Evidence {
		switch e.Kind {
		case checkpoint.EvidenceDoubleVote, checkpoint.EvidenceSurroundVote:
			if e.Second != nil {
				c.tally.MarkOffender(e.Validator, e.Second.Target.Number)
			}
		case checkpoint.EvidenceConflictingFinality:
			if e.Certificate != nil && len(c.alarmed) < maxAlarms {
				c.alarmed[e.Certificate.Vote().Link()] = struct{}{}
			}
		}
	}
	certs := slices.Clone(st.Certificates)
	slices.SortStableFunc(certs, func(a, b checkpoint.Certificate) int { return cmp.Compare(a.Target.Number, b.Target.Number) })
	for _, cert := range certs {
		if cert.SetID != c.auth.SetID {
			// Another set's certificate: the hand-offs above hold what counts
			// of the earlier sets.
			continue
		}
		if cert.Source == f && cert.Finalizes() {
			fc := cloneCert(cert)
			c.finalizing = &fc
		}
		if cert.Target == f {
			c.certs[f.Number] = cert
			continue
		}
		if src, ok := c.justified[cert.Target]; ok && src == cert.Target {
			// The justified pointer itself: record its real source.
			c.justified[cert.Target] = cert.Source
			c.certs[cert.Target.Number] = cert
			c.foldCertificate(cert)
			c.applyPending(cert.Target, now)
			continue
		}
		c.submit(cert, false, now)
	}
	// Replayed certificates are stored already: keep only what raises the
	// stored pointers (written back once, below).
	c.rd.Certificates = nil
	for _, v := range st.Votes {
		if c.auth.CheckHeader(v.Vote) != nil || c.auth.CheckIndex(v.Validator) != nil {
			continue
		}
		if v.Target.Number <= c.finalized.Number {
			continue
		}
		c.addVerifiedVote(v, false, now)
	}
	if c.latestJ.Number > pointerNumber(st.Justified) || c.finalized.Number > pointerNumber(st.Finalized) {
		if cert, ok := c.certs[c.latestJ.Number]; ok {
			w := CertWrite{Cert: cert}
			if c.latestJ.Number > pointerNumber(st.Justified) {
				j := c.latestJ
				w.Justified = &j
			}
			if c.finalized.Number > pointerNumber(st.Finalized) {
				fz := c.finalized
				w.Finalized = &fz
			}
			c.rd.Certificates = append([]CertWrite{w}, c.rd.Certificates...)
		}
	}
	c.resendLast = c.record != nil && c.record.Last != nil && c.record.Last.Target.Number > c.finalized.Number
	c.rd.HandOffs = redo
	// Nothing of the replay is announced.
	c.rd.Messages = nil
	c.rd.Events = nil
	c.rd.Sign = nil
	c.signing = false
	c.lastProgress = now
}

func pointerNumber(p *checkpoint.Checkpoint) uint64 {
	if p == nil {
		return 0
	}
	return p.Number
}

// --- Head and own votes --------------------------------------------------

// SetHead tells the core the best chain's latest checkpoint (after every
// import or reorganisation that changes it). A validator votes for it when
// it can (see maybeVote).
func (c *Core) SetHead(cp checkpoint.Checkpoint, now time.Time) {
	c.now = now
	c.head, c.hasHead = cp, true
	c.maybeVote()
}

// SetPaused stops (true) or resumes (false) own voting, e.g. while the node
// catches up with its peers.
func (c *Core) SetPaused(paused bool) {
	c.paused = paused
	if !paused {
		c.maybeVote()
	}
}

// BeginSignerInit puts the core in the listening phase of a fresh signer
// record: no vote is signed; votes signed with the local key whose target
// is at or below mark are remembered (OwnSeen) as history of an earlier life
// of the key, and one above mark means another instance signs with the key
// now (a doppelganger): the core halts.
func (c *Core) BeginSignerInit(mark uint64) {
	m := mark
	c.initMark = &m
	c.record = nil
}

// SignerInitialised ends the listening phase with the initialised record.
func (c *Core) SignerInitialised(rec checkpoint.SignerRecord) {
	c.initMark = nil
	r := rec.Clone()
	c.record = &r
	c.maybeVote()
}

// maybeVote asks the driver to sign source = latest justified, target = the
// best chain's latest checkpoint, when that is a new, safe vote.
func (c *Core) maybeVote() {
	if !c.voter || c.record == nil || c.paused || c.signing || c.Halted() || !c.hasHead {
		return
	}
	cp, j := c.head, c.latestJ
	if last := c.record.Last; c.resendLast && last != nil && cp.Number >= last.Target.Number {
		c.resendLast = false
		if last.Target.Number > c.finalized.Number {
			c.rd.Messages = append(c.rd.Messages, Message{Kind: MsgVote, Vote: *last, Rebroadcast: true})
		}
	}
	if cp.Number <= j.Number || cp.Number <= c.refusedAt {
		return
	}
	if c.record.MinSetID > c.auth.SetID {
		return
	}
	if last := c.record.Last; last != nil && (last.SetID > c.auth.SetID ||
		(last.SetID == c.auth.SetID && c.sched.IsHandOffLink(c.auth.SetID, last.Vote))) {
		// This key signed its hand-off link for this set (or already votes
		// in a later one): nothing more for this set.
		return
	}
	if j != c.lastJ {
		c.lastJ, c.jAt = j, c.now
	}
	if ch, ok := c.sched.Next(c.auth.SetID); ok && cp.Number > ch.HandOff && cp.Number != j.Number+1 &&
		c.now.Sub(c.jAt) < c.cfg.RebroadcastAfter {
		// Above the hand-off, a finalizing link (j, j+1) hands off. A vote
		// that jumps (its target is not j's successor: a justification is
		// missing here, or the head moved on) waits a while after the
		// latest justified checkpoint changed for the missing certificate,
		// so that the old set's votes on the hand-off target do not split
		// between sources (each key signs one hand-off link only).
		return
	}
	lastTarget, lastSource, has := recordWatermarks(*c.record)
	if has && cp.Number <= lastTarget {
		return
	}
	if j.Number < lastSource && !c.cfg.Mutations.SkipSourceCheck {
		return
	}
	if !c.anc.IsDescendant(cp.Hash, j) {
		return
	}
	v := checkpoint.Vote{Genesis: c.auth.Genesis, SetID: c.auth.SetID, Source: j, Target: cp}
	c.rd.Sign = &v
	c.signing = true
}

// recordWatermarks returns the highest signed target and source of rec.
func recordWatermarks(rec checkpoint.SignerRecord) (target, source uint64, has bool) {
	target, source, has = rec.MinTarget, rec.MinSource, rec.MinTarget > 0 || rec.MinSource > 0
	if rec.Last != nil {
		target = max(target, rec.Last.Target.Number)
		source = max(source, rec.Last.Source.Number)
		has = true
	}
	return target, source, has
}

// OwnVoteSigned hands the core the vote the signer signed (and persisted)
// for the last Sign request: it is stored, counted and broadcast.
func (c *Core) OwnVoteSigned(sv checkpoint.SignedVote, now time.Time) {
	c.signing = false
	if c.record != nil {
		c.record.Last = &sv
	}
	c.stats.OwnVotes++
	if c.Halted() {
		// An alarm was raised while signing: the vote is not released.
		return
	}
	c.rd.Votes = append(c.rd.Votes, sv)
	c.rd.Messages = append(c.rd.Messages, Message{Kind: MsgVote, Vote: sv})
	c.count(sv, true, now)
	c.maybeVote()
}

// OwnVoteRefused tells the core the signer refused the last Sign request
// (its record forbids it): no vote for that target number is asked again.
func (c *Core) OwnVoteRefused(v checkpoint.Vote, rec checkpoint.SignerRecord) {
	c.signing = false
	c.refusedAt = max(c.refusedAt, v.Target.Number)
	r := rec.Clone()
	c.record = &r
	c.rd.Logs = append(c.rd.Logs, LogEntry{Kind: LogNotVoting, Text: "the signer record forbids this vote", Checkpoint: v.Source, Other: v.Target})
}

// SignFailed clears an outstanding Sign request that could not be completed
// (the driver stops on such a failure; this keeps the core consistent).
func (c *Core) SignFailed() { c.signing = false }

// --- Votes ----------------------------------------------------------------

// headerVerdict runs the cheapest checks: chain, set id, link shape.
func (c *Core) headerVerdict(v checkpoint.Vote) Verdict {
	err := c.auth.CheckHeader(v)
	switch {
	case err == nil:
		return VerdictAccept
	case errors.Is(err, checkpoint.ErrWrongSet):
		return VerdictIgnore
	default:
		return VerdictReject
	}
}

// horizon is the highest target number a vote may have to be counted.
func (c *Core) horizon() uint64 {
	top := max(c.latestJ.Number, c.finalized.Number)
	if c.hasHead {
		top = max(top, c.head.Number)
	}
	if top > ^uint64(0)-c.cfg.FutureWindow {
		return ^uint64(0)
	}
	return top + c.cfg.FutureWindow
}

// PrecheckVote runs every check of a received vote that needs no signature
// verification, cheapest first: chain, set id, link shape, validator index,
// target window (old, or too far above the best known checkpoint),
// duplicate and repeated equivocation.
func (c *Core) PrecheckVote(v checkpoint.SignedVote) Verdict {
	if v.SetID == c.auth.SetID+1 && v.Genesis == c.auth.Genesis {
		// The next set's vote: kept (verified) until the hand-off.
		next, ok := c.sched.Set(v.SetID)
		switch {
		case !ok:
			return VerdictIgnore
		case v.Vote.Validate() != nil || next.CheckIndex(v.Validator) != nil:
			return VerdictReject
		case len(c.future) >= maxFutureVotes || v.Target.Number <= c.finalized.Number+1 || v.Target.Number > c.horizon():
			return VerdictIgnore
		}
		return VerdictAccept
	}
	if c.cfg.Mutations.CountRemovedVotes && len(c.handoffs) > 0 && v.SetID+1 == c.auth.SetID && v.Genesis == c.auth.Genesis {
		w := v
		w.SetID = c.auth.SetID
		return c.PrecheckVote(w)
	}
	if verdict := c.headerVerdict(v.Vote); verdict != VerdictAccept {
		return verdict
	}
	if c.auth.CheckIndex(v.Validator) != nil {
		return VerdictReject
	}
	if v.Target.Number <= c.finalized.Number || v.Target.Number > c.horizon() {
		return VerdictIgnore
	}
	if prior, ok := c.tally.Lookup(v.Validator, v.Target.Number); ok {
		if prior.Vote == v.Vote || c.tally.IsOffender(v.Validator, v.Target.Number) {
			return VerdictIgnore
		}
	}
	return VerdictAccept
}

// VoteKey returns the key that must have signed v (after PrecheckVote
// accepted it): the key at v's index in the set v names.
func (c *Core) VoteKey(v checkpoint.SignedVote) (ed25519.PublicKey, bool) {
	set, ok := c.sched.Set(v.SetID)
	if !ok || set.CheckIndex(v.Validator) != nil {
		return nil, false
	}
	return set.Keys[v.Validator], true
}

// AddVote counts a received vote whose signature the driver verified.
func (c *Core) AddVote(v checkpoint.SignedVote, now time.Time) Verdict {
	c.now = now
	if verdict := c.PrecheckVote(v); verdict != VerdictAccept {
		return verdict
	}
	if v.SetID == c.auth.SetID+1 {
		c.future = append(c.future, v)
		return VerdictAccept
	}
	if v.SetID != c.auth.SetID {
		// CountRemovedVotes mutant only.
		v.SetID = c.auth.SetID
	}
	return c.addVerifiedVote(v, true, now)
}

func (c *Core) addVerifiedVote(v checkpoint.SignedVote, store bool, now time.Time) Verdict {
	if c.voter && v.Validator == c.own && !c.ownVote(v) {
		return VerdictIgnore
	}
	verdict, counted := c.count(v, true, now)
	if counted && store {
		c.rd.Votes = append(c.rd.Votes, v)
	}
	return verdict
}

// count classifies v against the tally and counts it; conflicts become
// evidence (once per validator and target number). form: a quorum builds a
// certificate.
func (c *Core) count(v checkpoint.SignedVote, form bool, now time.Time) (Verdict, bool) {
	r := c.tally.Classify(v)
	switch r.Outcome {
	case tally.Counted:
	case tally.DoubleVote, tally.SurroundVote:
		c.recordEquivocation(v, r)
		return VerdictIgnore, false
	default: // stale, duplicate
		return VerdictIgnore, false
	}
	_, weight := c.tally.Add(v)
	if form {
		c.formIfQuorum(v.Link(), weight, now)
	}
	return VerdictAccept, true
}

func (c *Core) recordEquivocation(v checkpoint.SignedVote, r tally.Result) {
	if !c.tally.MarkOffender(v.Validator, v.Target.Number) {
		return
	}
	first, second := r.Prior, v
	ev := checkpoint.Evidence{Kind: r.Outcome.EvidenceKind(), Validator: v.Validator, First: &first, Second: &second, Checkpoint: v.Target.Number}
	c.rd.Evidence = append(c.rd.Evidence, ev)
	c.rd.Logs = append(c.rd.Logs, LogEntry{Kind: LogEvidence, Evidence: &ev})
	c.stats.Evidence++
}

// ownVote decides whether v, signed with the local key, is a vote this node
// signed. With the minimal signer record (last vote, targets strictly
// increasing, sources never decreasing) a vote is ours only if it is the
// last one, or older than it and consistent with it and with the own votes
// still counted. Anything else was signed by another instance running with
// our key: the core halts (persisted). While a fresh record is initialised,
// votes up to the init mark are history and are remembered instead.
func (c *Core) ownVote(v checkpoint.SignedVote) bool {
	if c.initMark != nil {
		if v.Target.Number <= *c.initMark {
			c.ownSeen.Votes++
			c.ownSeen.MaxSource = max(c.ownSeen.MaxSource, v.Source.Number)
			c.ownSeen.MaxTarget = max(c.ownSeen.MaxTarget, v.Target.Number)
			return true
		}
		c.doppelganger(v, nil)
		return false
	}
	if c.record == nil {
		// Not initialised and not listening (e.g. a refused start): count
		// nothing signed with our key.
		return false
	}
	if ownVoteConsistent(*c.record, v) {
		if prior, ok := c.tally.Lookup(v.Validator, v.Target.Number); !ok || prior.Vote == v.Vote {
			return true
		}
	}
	c.doppelganger(v, c.record.Last)
	return false
}

func ownVoteConsistent(rec checkpoint.SignerRecord, v checkpoint.SignedVote) bool {
	if rec.Last != nil && rec.Last.Vote == v.Vote {
		return true
	}
	// Above the record's watermarks (the last vote, or the imported or
	// initialised watermarks when higher): never signed here.
	target, source, has := recordWatermarks(rec)
	if !has || v.Target.Number > target || v.Source.Number > source {
		return false
	}
	if rec.Last != nil {
		if v.Target.Number == rec.Last.Target.Number {
			return false // another vote at the last signed target
		}
		if _, conflict := checkpoint.Conflicts(*rec.Last, v); conflict {
			return false
		}
	}
	// At or below the watermarks and consistent with the last vote: a vote
	// of this key's past (a watermark-only record, from an import or a
	// lost database, cannot tell which older votes were signed).
	return true
}

func (c *Core) doppelganger(v checkpoint.SignedVote, last *checkpoint.SignedVote) {
	foreign := v
	h := checkpoint.Halt{Reason: checkpoint.HaltDoppelganger, Checkpoint: v.Target.Number, Vote: &foreign,
		Detail: fmt.Sprintf("a vote %s -> %s signed with this validator's key that this node did not sign", v.Source, v.Target)}
	if last != nil {
		first, second := *last, v
		// Evidence only when the two votes are slashable against each
		// other; otherwise the foreign vote alone is kept (Halt.Vote).
		if kind, conflict := checkpoint.Conflicts(first, second); conflict {
			h.Evidence = &checkpoint.Evidence{Kind: kind, Validator: v.Validator, First: &first, Second: &second, Checkpoint: v.Target.Number}
		}
	}
	c.halt(h, LogDoppelganger)
}

func (c *Core) halt(h checkpoint.Halt, kind LogKind) {
	for _, old := range c.halts {
		if old.Reason == h.Reason && old.Checkpoint == h.Checkpoint {
			return
		}
	}
	c.halts = append(c.halts, h)
	c.rd.Halts = append(c.rd.Halts, h)
	if ev := h.Evidence; ev != nil && (ev.Certificate != nil || (ev.First != nil && ev.Second != nil)) {
		c.rd.Evidence = append(c.rd.Evidence, *h.Evidence)
		c.stats.Evidence++
	}
	c.rd.Logs = append(c.rd.Logs, LogEntry{Kind: kind, Halt: &h})
	c.rd.Events = append(c.rd.Events, Event{Kind: EventHalted, Halt: h})
	c.rd.Sign = nil
}

// RaiseAlarm halts on a safety violation found outside the core (e.g. the
// chain finds that a finalized checkpoint does not descend from its
// finalized block).
func (c *Core) RaiseAlarm(h checkpoint.Halt) {
	kind := LogConflictingFinality
	if h.Reason == checkpoint.HaltDoppelganger {
		kind = LogDoppelganger
	}
	c.halt(h, kind)
}

// --- Certificates ---------------------------------------------------------

// PrecheckCertificate classifies a certificate before its signatures are
// verified: header and shape (quorum of distinct, ordered, in-range
// signers), then state. verify reports that the certificate must be verified
// and passed to AddCertificate (it is new, or it would raise an alarm).
func (c *Core) PrecheckCertificate(cert checkpoint.Certificate) (verdict Verdict, verify bool) {
	if c.cfg.Mutations.OldSetCertificates && len(c.handoffs) > 0 && cert.SetID+1 == c.auth.SetID {
		w := cert
		w.SetID = c.auth.SetID
		return c.PrecheckCertificate(w)
	}
	if verdict := c.headerVerdict(cert.Vote()); verdict != VerdictAccept {
		return verdict, false
	}
	if c.CheckShape(cert) != nil {
		return VerdictReject, false
	}
	link := cert.Vote().Link()
	if _, bad := c.conflict(cert); bad {
		_, seen := c.alarmed[link]
		return VerdictIgnore, !seen
	}
	f := c.finalized
	switch {
	case cert.Target.Number <= f.Number:
		return VerdictIgnore, false
	case cert.Source.Number < f.Number:
		return VerdictIgnore, false
	}
	if src, ok := c.justified[cert.Target]; ok {
		if src == cert.Source || !c.wouldFinalize(cert) {
			return VerdictIgnore, false
		}
	}
	if _, ok := c.pendingLinks[link]; ok {
		return VerdictIgnore, false
	}
	if len(c.pendingLinks) >= c.cfg.MaxPending && !c.isJustified(cert.Source) {
		return VerdictIgnore, false
	}
	return VerdictAccept, true
}

// CheckShape runs the certificate checks that need no signature: header,
// a quorum of distinct, strictly ordered, in-range signers.
func (c *Core) CheckShape(cert checkpoint.Certificate) error {
	return c.CertVerifier().CheckShape(cert)
}

// CertVerifier captures what verifying a certificate of the set in force
// needs, for use outside the core's lock.
func (c *Core) CertVerifier() CertVerifier {
	v := CertVerifier{auth: c.auth, quorum: c.quorum, mut: c.cfg.Mutations}
	if c.cfg.Mutations.OldSetCertificates && len(c.handoffs) > 0 {
		v.prev, _ = c.sched.Set(c.auth.SetID - 1)
	}
	return v
}

// CertVerifier verifies certificates against one authority set.
type CertVerifier struct {
	auth, prev checkpoint.AuthoritySet
	quorum     int
	mut        Mutations
}

// CheckShape runs the certificate checks that need no signature: header,
// a quorum of distinct, strictly ordered, in-range signers.
func (cv CertVerifier) CheckShape(cert checkpoint.Certificate) error {
	auth, quorum := cv.auth, cv.quorum
	if cv.prev.Len() > 0 && cert.SetID == cv.prev.SetID {
		auth, quorum = cv.prev, cv.prev.Quorum()
	}
	if !cv.mut.AcceptDuplicateSigners && !cv.mut.QuorumOneShort {
		return auth.CheckCertificateShape(cert)
	}
	if err := auth.CheckHeader(cert.Vote()); err != nil {
		return err
	}
	if len(cert.Signatures) < quorum {
		return checkpoint.ErrNoQuorum
	}
	for i, s := range cert.Signatures {
		if err := auth.CheckIndex(s.Validator); err != nil {
			return err
		}
		if i > 0 && s.Validator < cert.Signatures[i-1].Validator {
			return checkpoint.ErrDuplicateSigner
		}
		if i > 0 && s.Validator == cert.Signatures[i-1].Validator && !cv.mut.AcceptDuplicateSigners {
			return checkpoint.ErrDuplicateSigner
		}
	}
	return nil
}

// VerifyCertificate checks the shape and every signature of cert.
func (c *Core) VerifyCertificate(cert checkpoint.Certificate) error {
	return c.CertVerifier().Verify(cert)
}

// Verify checks the shape and every signature of cert.
func (cv CertVerifier) Verify(cert checkpoint.Certificate) error {
	if err := cv.CheckShape(cert); err != nil {
		return err
	}
	auth := cv.auth
	if cv.prev.Len() > 0 && cert.SetID == cv.prev.SetID {
		auth = cv.prev
	}
	msg := cert.Vote().SigningBytes()
	for _, s := range cert.Signatures {
		if !checkpoint.VerifySignature(auth.Keys[s.Validator], msg, s.Signature[:]) {
			return fmt.Errorf("%w: certificate signer %d for %s", checkpoint.ErrBadSignature, s.Validator, cert.Target)
		}
	}
	return nil
}

// VerifyProof fully verifies a finality proof against the core's authority
// set with checkpoint.AuthoritySet.VerifyFinalityProof, the one finality
// proof verifier of the node (the chain database uses it too, when it stores
// a proof and when it opens): the shape and every signature of both
// certificates, the finalizing link (F, F+1), and the relation between the
// two certificates (the justified certificate's source is F itself or above
// it, its target is above F and, at F+1, the block the finalizing
// certificate justifies). Every error wraps checkpoint.ErrBadProof. A proof
// that passes and still contradicts this core's finality is no verification
// failure: ApplyProof raises the alarm on it. The simulation mutations do not
// relax it.
func (c *Core) VerifyProof(p checkpoint.FinalityProof) error {
	if c.cfg.Mutations.SkipHandOffProofs {
		set, ok := c.sched.Set(p.Finalizing.SetID)
		if !ok {
			return checkpoint.ErrBadProof
		}
		_, _, err := set.VerifyFinalityProof(p)
		return err
	}
	_, _, _, err := c.sched.VerifyFinalityProof(p)
	return err
}

// AddCertificate takes a certificate whose signatures the driver verified.
func (c *Core) AddCertificate(cert checkpoint.Certificate, now time.Time) Verdict {
	c.now = now
	verdict, verify := c.PrecheckCertificate(cert)
	if !verify {
		return verdict
	}
	cert = cloneCert(cert)
	if c.cfg.Mutations.OldSetCertificates && cert.SetID+1 == c.auth.SetID {
		cert.SetID = c.auth.SetID
	}
	if n, bad := c.conflict(cert); bad {
		c.alarm(cert, n)
		return VerdictIgnore
	}
	c.submit(cert, true, now)
	return VerdictAccept
}

func (c *Core) isJustified(cp checkpoint.Checkpoint) bool {
	_, ok := c.justified[cp]
	return ok
}

func (c *Core) wouldFinalize(cert checkpoint.Certificate) bool {
	if c.cfg.Mutations.FinalizeNonConsecutive {
		return cert.Source.Number > c.finalized.Number && cert.Target.Number > cert.Source.Number
	}
	return cert.Finalizes() && cert.Source.Number > c.finalized.Number
}

// conflict reports whether a (verified) certificate contradicts the
// finalized chain, i.e. proves that at least a third of the validators
// equivocated against it:
//   - it names a checkpoint at or below the finalized number (source or
//     target) whose hash is not the finalized chain's checkpoint there;
//   - its link jumps over the finalized checkpoint F (source below F,
//     target above F+1): it surrounds the link (F, F+1) that finalized F;
//   - its target is F+1 from a source below F: a double vote against that
//     link.
func (c *Core) conflict(cert checkpoint.Certificate) (uint64, bool) {
	if c.cfg.Mutations.IgnoreConflicts {
		return 0, false
	}
	f := c.finalized.Number
	for _, cp := range []checkpoint.Checkpoint{cert.Target, cert.Source} {
		if cp.Number <= f {
			if h, ok := c.canon[cp.Number]; ok && h != cp.Hash {
				return cp.Number, true
			}
		}
	}
	if c.finalizing != nil && cert.Source.Number < f && cert.Target.Number > f {
		fl := c.finalizing.Vote()
		if cert.Target.Number > f+1 || cert.Vote() != fl {
			return f, true
		}
	}
	return 0, false
}

// chainConflict walks the justification chain of s (about to be finalized)
// down to the finalized number and reports whether it reaches it with
// another hash or jumps over it.
func (c *Core) chainConflict(s checkpoint.Checkpoint) (uint64, bool) {
	if c.cfg.Mutations.IgnoreConflicts {
		return 0, false
	}
	f := c.finalized
	cur := s
	for steps := 0; cur.Number > f.Number && steps <= len(c.justified); steps++ {
		src, ok := c.justified[cur]
		if !ok || src == cur {
			return 0, false
		}
		cur = src
	}
	if cur.Number == f.Number && cur.Hash != f.Hash {
		return cur.Number, true
	}
	if cur.Number < f.Number {
		return f.Number, true
	}
	return 0, false
}

// alarm records conflicting-finality evidence for the valid certificate
// cert and halts.
func (c *Core) alarm(cert checkpoint.Certificate, number uint64) {
	link := cert.Vote().Link()
	if _, seen := c.alarmed[link]; seen {
		return
	}
	if len(c.alarmed) < maxAlarms {
		c.alarmed[link] = struct{}{}
	}
	cc := cloneCert(cert)
	ev := checkpoint.Evidence{Kind: checkpoint.EvidenceConflictingFinality, Certificate: &cc, Checkpoint: number}
	h := checkpoint.Halt{Reason: checkpoint.HaltConflictingFinality, Checkpoint: number,
		Detail:   fmt.Sprintf("certificate %s -> %s contradicts finalized checkpoint %s", cert.Source, cert.Target, c.finalized),
		Evidence: &ev}
	c.halt(h, LogConflictingFinality)
}

// submit takes a verified certificate: it is kept pending while its source
// is not justified, and applied otherwise. persist: the certificate is not
// in the database yet.
func (c *Core) submit(cert checkpoint.Certificate, persist bool, now time.Time) {
	c.submitCert(cert, persist, false, now)
}

func (c *Core) submitCert(cert checkpoint.Certificate, persist, formed bool, now time.Time) {
	if n, bad := c.conflict(cert); bad {
		c.alarm(cert, n)
		return
	}
	c.foldCertificate(cert)
	if !c.isJustified(cert.Source) {
		c.addPending(cert, formed)
		if persist && !formed {
			c.rd.Certificates = append(c.rd.Certificates, CertWrite{Cert: cert, Pending: true})
		}
		return
	}
	c.apply(cert, persist, formed, now)
}

func (c *Core) addPending(cert checkpoint.Certificate, formed bool) {
	link := cert.Vote().Link()
	if _, ok := c.pendingLinks[link]; ok {
		return
	}
	if len(c.pendingLinks) >= c.cfg.MaxPending {
		return
	}
	c.pending[cert.Source] = append(c.pending[cert.Source], pendingCert{cert: cert, formed: formed})
	c.pendingLinks[link] = struct{}{}
}

// apply justifies cert's target (its source is justified) and, for
// c_t = c_s+1, finalizes the source.
func (c *Core) apply(cert checkpoint.Certificate, persist, formed bool, now time.Time) {
	t, s := cert.Target, cert.Source
	if t.Number <= c.finalized.Number {
		return
	}
	newF := c.wouldFinalize(cert)
	if newF {
		if n, bad := c.chainConflict(s); bad {
			c.alarm(cert, n)
			return
		}
	}
	_, known := c.justified[t]
	if known && !newF {
		return
	}
	w := CertWrite{Cert: cert}
	if !known {
		c.justified[t] = s
		c.rd.Events = append(c.rd.Events, Event{Kind: EventJustified, Checkpoint: t})
	}
	if old, ok := c.certs[t.Number]; !ok || (cert.Finalizes() && !old.Finalizes() && old.Target == t) {
		c.certs[t.Number] = cert
	}
	if t.Number > c.latestJ.Number {
		c.latestJ = t
		j := t
		w.Justified = &j
	}
	if newF {
		fz := s
		w.Finalized = &fz
	}
	if persist {
		c.rd.Certificates = append(c.rd.Certificates, w)
	}
	if formed && c.broadcastsFormed(t) {
		c.rd.Messages = append(c.rd.Messages, Message{Kind: MsgCertificate, Cert: cert})
	}
	if newF {
		c.finalize(s, cert, now)
		if c.handOffDue(cert) {
			c.handOff(cert, now)
			c.maybeVote()
			return
		}
	}
	if ch, ok := c.sched.Next(c.auth.SetID); ok && c.cfg.Mutations.EnactOnJustified && t.Number > ch.HandOff {
		c.handOff(cert, now)
		c.maybeVote()
		return
	}
	c.boundJustified()
	c.applyPending(t, now)
	c.maybeVote()
}

// broadcastsFormed reports whether this node broadcasts the certificate it
// formed for target t. Every validator forms the same link's certificate
// from the same votes; if all of them broadcast it, every checkpoint costs n
// certificate messages on top of its n votes. One validator per checkpoint
// (index t mod n) broadcasts; a node that missed a vote gets the
// certificate from it, or — if that validator is down — from the stalled
// round's re-broadcast (Tick) or from sync. BroadcastAllFormed restores the
// flood (tests).
func (c *Core) broadcastsFormed(t checkpoint.Checkpoint) bool {
	if c.cfg.BroadcastAllFormed {
		return true
	}
	return c.voter && t.Number%uint64(c.auth.Len()) == uint64(c.own)
}

// finalize makes s the finalized checkpoint, records the finalized chain's
// checkpoints it was reached through, and drops state below it.
func (c *Core) finalize(s checkpoint.Checkpoint, fc checkpoint.Certificate, now time.Time) {
	old := c.finalized
	for cur := s; cur.Number > old.Number; {
		c.canon[cur.Number] = cur.Hash
		src, ok := c.justified[cur]
		if !ok || src == cur {
			break
		}
		cur = src
	}
	c.finalized = s
	fcc := cloneCert(fc)
	c.finalizing = &fcc
	c.lastProgress = now
	c.stallLogged = false
	c.rd.Events = append(c.rd.Events, Event{Kind: EventFinalized, Checkpoint: s, Previous: old})
	c.pruneMemory()
}

// applyPending submits the pending certificates whose source is the newly
// justified checkpoint j.
func (c *Core) applyPending(j checkpoint.Checkpoint, now time.Time) {
	ps := c.pending[j]
	if len(ps) == 0 {
		return
	}
	delete(c.pending, j)
	for _, p := range ps {
		delete(c.pendingLinks, p.cert.Vote().Link())
	}
	for _, p := range ps {
		cert := p.cert
		if cert.Target.Number <= c.finalized.Number || cert.Source.Number < c.finalized.Number {
			if n, bad := c.conflict(cert); bad {
				c.alarm(cert, n)
			}
			continue
		}
		// A received pending certificate is stored already, without
		// pointers: it is written again with the pointers it raises
		// (idempotent); a formed one is written for the first time.
		c.apply(cert, true, p.formed, now)
	}
}

// formIfQuorum builds the certificate of link once weight reaches the
// quorum.
func (c *Core) formIfQuorum(link checkpoint.Link, weight int, now time.Time) {
	if weight < c.quorum {
		return
	}
	if src, ok := c.justified[link.Target]; ok && (src == link.Source || !c.wouldFinalize(checkpoint.Certificate{Source: link.Source, Target: link.Target})) {
		return
	}
	if _, ok := c.pendingLinks[link]; ok {
		return
	}
	if link.Source.Number < c.finalized.Number || link.Target.Number <= c.finalized.Number {
		return
	}
	cert, err := checkpoint.NewCertificate(c.tally.Votes(link))
	if err != nil {
		return // cannot happen: one link, counted votes
	}
	if _, bad := c.conflict(cert); !bad {
		c.stats.CertificatesFormed++
	}
	c.submitCert(cert, true, true, now)
}

// foldCertificate counts the votes inside a verified certificate like
// received votes (they are stored with the certificate), so equivocations
// against them are detected and weights are right.
func (c *Core) foldCertificate(cert checkpoint.Certificate) {
	if cert.Target.Number <= c.tally.Floor() {
		return
	}
	for _, sv := range cert.SignedVotes() {
		if prior, ok := c.tally.Lookup(sv.Validator, sv.Target.Number); ok && prior.Vote == sv.Vote {
			continue
		}
		if c.voter && sv.Validator == c.own && !c.ownVote(sv) {
			continue
		}
		c.count(sv, false, time.Time{})
	}
}

// boundJustified keeps at most MaxJustified justified checkpoints above the
// finalized one (the lowest are dropped first; the latest and the finalized
// one always stay).
func (c *Core) boundJustified() {
	if len(c.justified) <= c.cfg.MaxJustified {
		return
	}
	cps := make([]checkpoint.Checkpoint, 0, len(c.justified))
	for cp := range c.justified {
		if cp != c.latestJ && cp != c.finalized {
			cps = append(cps, cp)
		}
	}
	slices.SortFunc(cps, func(a, b checkpoint.Checkpoint) int {
		if r := cmp.Compare(a.Number, b.Number); r != 0 {
			return r
		}
		return bytes.Compare(a.Hash[:], b.Hash[:])
	})
	for _, cp := range cps[:len(c.justified)-c.cfg.MaxJustified] {
		delete(c.justified, cp)
		if cert, ok := c.certs[cp.Number]; ok && cert.Target == cp {
			delete(c.certs, cp.Number)
		}
	}
}

// pruneMemory drops state below the finalized checkpoint.
func (c *Core) pruneMemory() {
	f := c.finalized.Number
	c.tally.Raise(f)
	for cp := range c.justified {
		if cp.Number < f {
			delete(c.justified, cp)
		}
	}
	for n := range c.certs {
		if n < f {
			delete(c.certs, n)
		}
	}
	for src, ps := range c.pending {
		keep := ps[:0]
		for _, p := range ps {
			if p.cert.Target.Number > f && src.Number >= f {
				keep = append(keep, p)
			} else {
				delete(c.pendingLinks, p.cert.Vote().Link())
			}
		}
		if len(keep) == 0 {
			delete(c.pending, src)
		} else {
			c.pending[src] = keep
		}
	}
	if len(c.canon) > maxCanon {
		nums := make([]uint64, 0, len(c.canon))
		for n := range c.canon {
			if n != 0 && n != f {
				nums = append(nums, n)
			}
		}
		slices.Sort(nums)
		for _, n := range nums[:len(c.canon)-maxCanon] {
			delete(c.canon, n)
		}
	}
}

// --- Finality proofs (catch-up beyond the peers' retention) -------------

// ApplyProof jumps to the finalized and justified checkpoints of a verified
// finality proof (see AuthoritySet.VerifyFinalityProof): with a static
// authority set and fewer than a third of the validators faulty, at least
// one honest validator signed each of its certificates, and an honest
// validator votes only from a justified source, so the finalizing
// certificate (F, F+1) proves F justified and finalized, and the justified
// certificate proves its target justified. A proof at or below the current
// finalized checkpoint only serves to detect conflicts. It reports whether
// the state moved.
//
// With hand-offs, the proof's hand-off certificates of the set in force and
// later ones are applied first, each as a proof of its own (finalizing its
// source and handing off); the rest applies only when it belongs to the set
// in force after them.
func (c *Core) ApplyProof(p checkpoint.FinalityProof, now time.Time) bool {
	c.now = now
	moved := false
	for _, h := range p.HandOffs {
		if h.SetID != c.auth.SetID {
			continue
		}
		if c.applyProof(checkpoint.FinalityProof{Finalizing: h}, now) {
			moved = true
		}
		if c.auth.SetID == h.SetID {
			// Not handed off (a conflict, or already finalized above it).
			return moved
		}
	}
	if c.cfg.Mutations.SkipHandOffProofs && p.Finalizing.SetID > c.auth.SetID {
		for c.auth.SetID < p.Finalizing.SetID {
			next, ok := c.sched.Set(c.auth.SetID + 1)
			if !ok {
				break
			}
			c.enterSet(next)
		}
		c.tally = tally.NewBounded(c.finalized.Number, c.cfg.VotesPerValidator)
	}
	if p.Finalizing.SetID != c.auth.SetID {
		return moved
	}
	return c.applyProof(checkpoint.FinalityProof{Finalizing: p.Finalizing, Justified: p.Justified}, now) || moved
}

func (c *Core) applyProof(p checkpoint.FinalityProof, now time.Time) bool {
	fc := p.Finalizing
	if n, bad := c.conflict(fc); bad {
		c.alarm(fc, n)
		return false
	}
	if p.Justified != nil {
		if n, bad := c.conflict(*p.Justified); bad {
			c.alarm(*p.Justified, n)
			return false
		}
	}
	moved := false
	if fs := fc.Source; fs.Number > c.finalized.Number {
		if h, ok := c.justified[fs]; ok && h != fs {
			// Known justified here: the normal path finalizes it.
			c.submit(fc, true, now)
			moved = c.finalized.Number >= fs.Number
		}
		if c.finalized.Number < fs.Number {
			old := c.finalized
			c.justified[fs] = fs
			c.justified[fc.Target] = fs
			c.certs[fc.Target.Number] = cloneCert(fc)
			c.canon[fs.Number] = fs.Hash
			c.finalized = fs
			fcc := cloneCert(fc)
			c.finalizing = &fcc
			c.lastProgress = now
			w := CertWrite{Cert: cloneCert(fc)}
			fz := fs
			w.Finalized = &fz
			if fc.Target.Number > c.latestJ.Number {
				c.latestJ = fc.Target
				j := fc.Target
				w.Justified = &j
			}
			c.rd.Certificates = append(c.rd.Certificates, w)
			c.rd.Events = append(c.rd.Events, Event{Kind: EventJustified, Checkpoint: fc.Target})
			c.rd.Events = append(c.rd.Events, Event{Kind: EventFinalized, Checkpoint: fs, Previous: old})
			c.pruneMemory()
			if c.handOffDue(fc) {
				c.handOff(fc, now)
				c.maybeVote()
				return true
			}
			c.foldCertificate(fc)
			c.applyPending(fc.Target, now)
			moved = true
		}
	}
	if fc.SetID != c.auth.SetID {
		// fc handed off through the normal path above.
		c.maybeVote()
		return true
	}
	if jc := p.Justified; jc != nil && jc.Target.Number > c.latestJ.Number && jc.Source.Number >= c.finalized.Number {
		if c.isJustified(jc.Source) {
			c.submit(*jc, true, now)
		} else {
			c.justified[jc.Target] = jc.Target
			c.certs[jc.Target.Number] = cloneCert(*jc)
			c.latestJ = jc.Target
			j := jc.Target
			c.rd.Certificates = append(c.rd.Certificates, CertWrite{Cert: cloneCert(*jc), Justified: &j})
			c.rd.Events = append(c.rd.Events, Event{Kind: EventJustified, Checkpoint: jc.Target})
			c.foldCertificate(*jc)
			c.applyPending(jc.Target, now)
		}
		moved = true
	}
	if moved {
		c.boundJustified()
		c.maybeVote()
	}
	return moved
}

// --- Time -------------------------------------------------------------------

// Tick re-broadcasts the own latest vote and the latest certificates when
// finality has not advanced for RebroadcastAfter (at most once per
// RebroadcastAfter), so that peers that missed them (a partition that
// healed, a node that restarted) catch up without a new block.
func (c *Core) Tick(now time.Time) {
	c.now = now
	c.maybeVote()
	if now.Sub(c.lastProgress) < c.cfg.RebroadcastAfter || now.Sub(c.lastRebroadcast) < c.cfg.RebroadcastAfter {
		return
	}
	c.lastRebroadcast = now
	sent := false
	if last := c.LastOwnVote(); last != nil && !c.Halted() && last.Target.Number > c.finalized.Number {
		c.rd.Messages = append(c.rd.Messages, Message{Kind: MsgVote, Vote: *last, Rebroadcast: true})
		sent = true
	}
	if c.finalizing != nil {
		c.rd.Messages = append(c.rd.Messages, Message{Kind: MsgCertificate, Cert: cloneCert(*c.finalizing), Rebroadcast: true})
		sent = true
	}
	if cert, ok := c.certs[c.latestJ.Number]; ok && c.latestJ.Number > 0 && (c.finalizing == nil || cert.Vote() != c.finalizing.Vote()) {
		c.rd.Messages = append(c.rd.Messages, Message{Kind: MsgCertificate, Cert: cloneCert(cert), Rebroadcast: true})
		sent = true
	}
	if sent && !c.stallLogged {
		// Logged once per stall (the re-broadcasts go on every
		// RebroadcastAfter).
		c.stallLogged = true
		c.rd.Logs = append(c.rd.Logs, LogEntry{Kind: LogStalled, Text: now.Sub(c.lastProgress).String(), Checkpoint: c.finalized, Other: c.latestJ})
	}
}

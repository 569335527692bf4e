package finality

import (
	"bytes"
	"cmp"
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
	// Own is the local validator's index; nil for a node that never votes.
	Own *checkpoint.ValidatorIndex
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
}

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
	if cfg.Own != nil {
		if err := cfg.Authorities.CheckIndex(*cfg.Own); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCore, err)
		}
		if anc == nil {
			return nil, fmt.Errorf("%w: a voter needs the chain ancestry", ErrInvalidCore)
		}
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
		auth:    cfg.Authorities,
		quorum:  cfg.Authorities.Quorum(),
		genesis: checkpoint.Checkpoint{Number: 0, Hash: cfg.Authorities.Genesis},
		anc:     anc,
		cfg:     cfg,
	}
	if cfg.Mutations.QuorumOneShort {
		c.quorum--
	}
	if cfg.Own != nil {
		c.own, c.voter = *cfg.Own, true
	}
	c.reset(c.genesis, c.genesis, nil)
	c.lastProgress = now
	return c, nil
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
	p := checkpoint.FinalityProof{Finalizing: cloneCert(*c.finalizing)}
	f := c.finalizing.Source
	if c.latestJ.Number > c.finalizing.Target.Number {
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
	c.reset(f, j, nil)
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

// AddVote counts a received vote whose signature the driver verified.
func (c *Core) AddVote(v checkpoint.SignedVote, now time.Time) Verdict {
	if verdict := c.PrecheckVote(v); verdict != VerdictAccept {
		return verdict
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
	if !c.cfg.Mutations.AcceptDuplicateSigners && !c.cfg.Mutations.QuorumOneShort {
		return c.auth.CheckCertificateShape(cert)
	}
	if err := c.auth.CheckHeader(cert.Vote()); err != nil {
		return err
	}
	if len(cert.Signatures) < c.quorum {
		return checkpoint.ErrNoQuorum
	}
	for i, s := range cert.Signatures {
		if err := c.auth.CheckIndex(s.Validator); err != nil {
			return err
		}
		if i > 0 && s.Validator < cert.Signatures[i-1].Validator {
			return checkpoint.ErrDuplicateSigner
		}
		if i > 0 && s.Validator == cert.Signatures[i-1].Validator && !c.cfg.Mutations.AcceptDuplicateSigners {
			return checkpoint.ErrDuplicateSigner
		}
	}
	return nil
}

// VerifyCertificate checks the shape and every signature of cert.
func (c *Core) VerifyCertificate(cert checkpoint.Certificate) error {
	if err := c.CheckShape(cert); err != nil {
		return err
	}
	msg := cert.Vote().SigningBytes()
	for _, s := range cert.Signatures {
		if !checkpoint.VerifySignature(c.auth.Keys[s.Validator], msg, s.Signature[:]) {
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
	_, _, err := c.auth.VerifyFinalityProof(p)
	return err
}

// AddCertificate takes a certificate whose signatures the driver verified.
func (c *Core) AddCertificate(cert checkpoint.Certificate, now time.Time) Verdict {
	verdict, verify := c.PrecheckCertificate(cert)
	if !verify {
		return verdict
	}
	cert = cloneCert(cert)
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
func (c *Core) ApplyProof(p checkpoint.FinalityProof, now time.Time) bool {
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
			c.foldCertificate(fc)
			c.applyPending(fc.Target, now)
			moved = true
		}
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

package tally

import (
	"cmp"
	"slices"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Outcome classifies a vote against the votes already counted.
type Outcome int

const (
	// Counted: the vote is new and may be counted (Add counts it).
	Counted Outcome = iota + 1
	// Duplicate: the identical vote of this validator is already counted.
	Duplicate
	// DoubleVote: the validator already has a different counted vote for the
	// same target number.
	DoubleVote
	// SurroundVote: the vote surrounds, or is surrounded by, a counted vote of
	// the same validator.
	SurroundVote
	// Stale: the target is at or below the tally's floor (finalized).
	Stale
)

func (o Outcome) String() string {
	switch o {
	case Counted:
		return "counted"
	case Duplicate:
		return "duplicate"
	case DoubleVote:
		return "double-vote"
	case SurroundVote:
		return "surround-vote"
	case Stale:
		return "stale"
	default:
		return "unknown"
	}
}

// EvidenceKind maps a conflict outcome to its evidence kind.
func (o Outcome) EvidenceKind() checkpoint.EvidenceKind {
	switch o {
	case DoubleVote:
		return checkpoint.EvidenceDoubleVote
	case SurroundVote:
		return checkpoint.EvidenceSurroundVote
	default:
		return checkpoint.EvidenceUnspecified
	}
}

// Result is the classification of one vote.
type Result struct {
	Outcome Outcome
	// Prior is the earlier counted vote the new one conflicts with
	// (DoubleVote, SurroundVote) or equals (Duplicate).
	Prior checkpoint.SignedVote
}

// target holds the votes of one target checkpoint number.
type target struct {
	links map[checkpoint.Link][]checkpoint.SignedVote
	// offenders are validators already reported with evidence at this
	// target number (evidence is recorded once per validator and number).
	offenders map[checkpoint.ValidatorIndex]struct{}
}

// validatorVotes are one validator's counted votes, sorted by target number
// (honest votes arrive with increasing targets: Add appends).
type validatorVotes struct {
	votes []checkpoint.SignedVote
	// maxSource is the highest source number among every vote ever counted
	// (not lowered by Raise: it only makes the fast path below rarer).
	maxSource uint64
}

// search returns the position of target number n and whether a vote is
// there.
func (vv *validatorVotes) search(n uint64) (int, bool) {
	return slices.BinarySearchFunc(vv.votes, n, func(v checkpoint.SignedVote, n uint64) int {
		return cmp.Compare(v.Target.Number, n)
	})
}

// Tally counts votes per link. The zero value is not usable; call New or
// NewBounded.
type Tally struct {
	floor   uint64
	targets map[uint64]*target
	// byValidator holds each validator's counted votes.
	byValidator map[checkpoint.ValidatorIndex]*validatorVotes
	counted     int
	// perValidator bounds the votes held per validator (0: unbounded).
	perValidator int
	evicted      int
}

// New returns an empty, unbounded tally whose floor is floor: votes with a
// target at or below it are Stale.
func New(floor uint64) *Tally { return NewBounded(floor, 0) }

// NewBounded returns an empty tally that holds at most perValidator votes
// per validator (0: unbounded): the ones with the highest target numbers.
// Counting a vote beyond the bound evicts that validator's lowest-target
// vote; a vote below all of a full validator's held votes is Stale. Memory
// is then bounded by perValidator times the number of validators, however
// far the targets are apart, and no target horizon is needed for it.
func NewBounded(floor uint64, perValidator int) *Tally {
	return &Tally{
		floor:        floor,
		targets:      make(map[uint64]*target),
		byValidator:  make(map[checkpoint.ValidatorIndex]*validatorVotes),
		perValidator: max(perValidator, 0),
	}
}

// Floor returns the current floor.
func (t *Tally) Floor() uint64 { return t.floor }

// Len returns how many votes are counted.
func (t *Tally) Len() int { return t.counted }

// Lookup returns the counted vote of validator at target number, if any.
// It is the cheap duplicate check the gadget runs before signature work.
func (t *Tally) Lookup(validator checkpoint.ValidatorIndex, number uint64) (checkpoint.SignedVote, bool) {
	vv := t.byValidator[validator]
	if vv == nil {
		return checkpoint.SignedVote{}, false
	}
	i, ok := vv.search(number)
	if !ok {
		return checkpoint.SignedVote{}, false
	}
	return vv.votes[i], true
}

// Classify returns what Add would do with v, without changing the tally.
func (t *Tally) Classify(v checkpoint.SignedVote) Result {
	r, _ := t.classify(v)
	return r
}

// classify also returns the insertion position in the validator's votes.
func (t *Tally) classify(v checkpoint.SignedVote) (Result, int) {
	if v.Target.Number <= t.floor {
		return Result{Outcome: Stale}, 0
	}
	vv := t.byValidator[v.Validator]
	if vv == nil {
		return Result{Outcome: Counted}, 0
	}
	i, found := vv.search(v.Target.Number)
	if found {
		prior := vv.votes[i]
		if prior.Vote == v.Vote {
			return Result{Outcome: Duplicate, Prior: prior}, i
		}
		return Result{Outcome: DoubleVote, Prior: prior}, i
	}
	// Fast path (the honest case): no counted vote has a higher target, so
	// none can surround v, and no counted vote has a higher source, so v
	// surrounds none.
	if i == len(vv.votes) && v.Source.Number >= vv.maxSource {
		return Result{Outcome: Counted}, i
	}
	for _, prior := range vv.votes {
		if v.Surrounds(prior.Vote) || prior.Surrounds(v.Vote) {
			return Result{Outcome: SurroundVote, Prior: prior}, i
		}
	}
	if t.perValidator > 0 && len(vv.votes) >= t.perValidator && i == 0 {
		// Below every held vote of a validator at its bound: too old to
		// matter (its newer votes carry it forward).
		return Result{Outcome: Stale}, 0
	}
	return Result{Outcome: Counted}, i
}

// Add counts v when Classify says Counted and returns the classification and
// the weight (distinct validators) of v's link afterwards. Any other outcome
// leaves the tally unchanged and returns the current weight of v's link.
func (t *Tally) Add(v checkpoint.SignedVote) (Result, int) {
	r, pos := t.classify(v)
	if r.Outcome != Counted {
		return r, t.Weight(v.Link())
	}
	tg := t.targets[v.Target.Number]
	if tg == nil {
		tg = &target{links: make(map[checkpoint.Link][]checkpoint.SignedVote)}
		t.targets[v.Target.Number] = tg
	}
	link := v.Link()
	tg.links[link] = append(tg.links[link], v)
	vv := t.byValidator[v.Validator]
	if vv == nil {
		vv = &validatorVotes{}
		t.byValidator[v.Validator] = vv
	}
	vv.votes = slices.Insert(vv.votes, pos, v)
	vv.maxSource = max(vv.maxSource, v.Source.Number)
	t.counted++
	weight := len(tg.links[link])
	if t.perValidator > 0 && len(vv.votes) > t.perValidator {
		t.evict(vv.votes[0])
		n := copy(vv.votes, vv.votes[1:])
		vv.votes[n] = checkpoint.SignedVote{}
		vv.votes = vv.votes[:n]
	}
	return r, weight
}

// evict removes the counted vote v from its link.
func (t *Tally) evict(v checkpoint.SignedVote) {
	tg := t.targets[v.Target.Number]
	if tg == nil {
		return
	}
	link := v.Link()
	vs := tg.links[link]
	for i, o := range vs {
		if o.Validator == v.Validator {
			vs = slices.Delete(vs, i, i+1)
			break
		}
	}
	if len(vs) == 0 {
		delete(tg.links, link)
	} else {
		tg.links[link] = vs
	}
	if len(tg.links) == 0 && len(tg.offenders) == 0 {
		delete(t.targets, v.Target.Number)
	}
	t.counted--
	t.evicted++
}

// Evicted returns how many counted votes were evicted by the per-validator
// bound so far.
func (t *Tally) Evicted() int { return t.evicted }

// Weight returns the number of distinct validators counted for link.
func (t *Tally) Weight(link checkpoint.Link) int {
	tg := t.targets[link.Target.Number]
	if tg == nil {
		return 0
	}
	return len(tg.links[link])
}

// Votes returns a copy of the votes counted for link, in arrival order.
func (t *Tally) Votes(link checkpoint.Link) []checkpoint.SignedVote {
	tg := t.targets[link.Target.Number]
	if tg == nil {
		return nil
	}
	return append([]checkpoint.SignedVote(nil), tg.links[link]...)
}

// Best returns the link with the most votes at target number (ties broken
// by the lower target hash, then the lower source number), and its weight.
func (t *Tally) Best(number uint64) (checkpoint.Link, int, bool) {
	tg := t.targets[number]
	if tg == nil {
		return checkpoint.Link{}, 0, false
	}
	var best checkpoint.Link
	weight := 0
	for l, vs := range tg.links {
		w := len(vs)
		if w > weight || (w == weight && better(l, best)) {
			best, weight = l, w
		}
	}
	return best, weight, weight > 0
}

func better(a, b checkpoint.Link) bool {
	if a.Target.Hash != b.Target.Hash {
		return a.Target.Hash.Less(b.Target.Hash)
	}
	if a.Source.Number != b.Source.Number {
		return a.Source.Number < b.Source.Number
	}
	return a.Source.Hash.Less(b.Source.Hash)
}

// MarkOffender records that evidence about validator at target number was
// produced; it returns false when it was recorded already (so evidence is
// stored once per validator and number). Numbers at or below the floor are
// reported as already recorded.
func (t *Tally) MarkOffender(validator checkpoint.ValidatorIndex, number uint64) bool {
	if number <= t.floor {
		return false
	}
	tg := t.targets[number]
	if tg == nil {
		tg = &target{links: make(map[checkpoint.Link][]checkpoint.SignedVote)}
		t.targets[number] = tg
	}
	if tg.offenders == nil {
		tg.offenders = make(map[checkpoint.ValidatorIndex]struct{}, 1)
	}
	if _, ok := tg.offenders[validator]; ok {
		return false
	}
	tg.offenders[validator] = struct{}{}
	return true
}

// IsOffender reports whether evidence about validator at number was
// recorded.
func (t *Tally) IsOffender(validator checkpoint.ValidatorIndex, number uint64) bool {
	tg := t.targets[number]
	if tg == nil {
		return false
	}
	_, ok := tg.offenders[validator]
	return ok
}

// Raise moves the floor up to floor and drops every vote and offender mark
// with a target at or below it. A lower floor is ignored. It returns how many
// counted votes were dropped.
func (t *Tally) Raise(floor uint64) int {
	if floor <= t.floor {
		return 0
	}
	t.floor = floor
	dropped := 0
	for n, tg := range t.targets {
		if n > floor {
			continue
		}
		for _, vs := range tg.links {
			dropped += len(vs)
		}
		delete(t.targets, n)
	}
	for _, vv := range t.byValidator {
		j, found := vv.search(floor)
		if found {
			j++
		}
		if j == 0 {
			continue
		}
		n := copy(vv.votes, vv.votes[j:])
		clear(vv.votes[n:])
		vv.votes = vv.votes[:n]
	}
	t.counted -= dropped
	return dropped
}

// Numbers returns how many target numbers hold state (for memory checks).
func (t *Tally) Numbers() int { return len(t.targets) }

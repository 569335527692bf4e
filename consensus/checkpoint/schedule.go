package checkpoint

import (
	"crypto/ed25519"
	"errors"
	"fmt"
)

// ErrBadSchedule: an authority schedule (a chain spec's genesis set and its
// scheduled changes) that breaks a hand-off rule.
var ErrBadSchedule = errors.New("invalid authority schedule")

// SetChange is one scheduled hand-off: set SetID (with Keys) replaces set
// SetID-1 once set SetID-1 has finalized a checkpoint numbered HandOff or
// above (docs/protocol.md, "Authority set hand-offs").
type SetChange struct {
	SetID   uint64
	HandOff uint64
	Keys    []ed25519.PublicKey
}

// Schedule is the authority set of genesis and the changes that follow it,
// in set id order. The zero Schedule is unusable; a chain without changes
// has an empty Changes.
type Schedule struct {
	Genesis AuthoritySet
	Changes []SetChange
}

// StaticSchedule is the schedule of a set that never changes.
func StaticSchedule(a AuthoritySet) Schedule { return Schedule{Genesis: a} }

// Set returns the authority set with set id id.
func (s Schedule) Set(id uint64) (AuthoritySet, bool) {
	if id == s.Genesis.SetID {
		return s.Genesis, true
	}
	if id < s.Genesis.SetID || id-s.Genesis.SetID > uint64(len(s.Changes)) {
		return AuthoritySet{}, false
	}
	ch := s.Changes[id-s.Genesis.SetID-1]
	return AuthoritySet{Genesis: s.Genesis.Genesis, SetID: ch.SetID, Keys: ch.Keys}, true
}

// Next returns the change that replaces set id, if one is scheduled.
func (s Schedule) Next(id uint64) (SetChange, bool) {
	if id < s.Genesis.SetID || id-s.Genesis.SetID >= uint64(len(s.Changes)) {
		return SetChange{}, false
	}
	return s.Changes[id-s.Genesis.SetID], true
}

// Last returns the set id of the last scheduled set.
func (s Schedule) Last() uint64 { return s.Genesis.SetID + uint64(len(s.Changes)) }

// ChangeSize is the voting power that changes from old to new (every key
// weighs one): the larger of the keys removed and the keys added.
func ChangeSize(old, new []ed25519.PublicKey) int {
	in := func(k ed25519.PublicKey, set []ed25519.PublicKey) bool {
		for _, o := range set {
			if o.Equal(k) {
				return true
			}
		}
		return false
	}
	removed, added := 0, 0
	for _, k := range old {
		if !in(k, new) {
			removed++
		}
	}
	for _, k := range new {
		if !in(k, old) {
			added++
		}
	}
	return max(removed, added)
}

// CheckChange applies the hand-off rules to a change from old to new: at
// least two keys, no key twice, each key 32 bytes, and at most a third
// (rounded down) of the old set's voting power changing. The error wraps
// ErrBadSchedule and says which rule.
func CheckChange(old, new []ed25519.PublicKey) error {
	switch {
	case len(new) == 0:
		return fmt.Errorf("%w: the new authority set is empty", ErrBadSchedule)
	case len(new) == 1:
		return fmt.Errorf("%w: a set of one validator is refused (a hand-off needs at least two)", ErrBadSchedule)
	}
	for i, k := range new {
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: key %d is %d bytes, want %d", ErrBadSchedule, i, len(k), ed25519.PublicKeySize)
		}
		for _, o := range new[:i] {
			if o.Equal(k) {
				return fmt.Errorf("%w: key %x listed twice", ErrBadSchedule, []byte(k))
			}
		}
	}
	if n, limit := ChangeSize(old, new), len(old)/3; n > limit {
		return fmt.Errorf("%w: %d of %d keys change, at most %d (a third) may change per hand-off", ErrBadSchedule, n, len(old), limit)
	}
	if ChangeSize(old, new) == 0 && len(old) == len(new) {
		return fmt.Errorf("%w: the new authority set equals the current one", ErrBadSchedule)
	}
	return nil
}

// Validate checks every change: consecutive set ids after the genesis set,
// strictly increasing hand-off checkpoints above 0, and CheckChange from
// each set to the next.
func (s Schedule) Validate() error {
	prev, prevAt := s.Genesis, uint64(0)
	for i, ch := range s.Changes {
		if ch.SetID != prev.SetID+1 {
			return fmt.Errorf("%w: change %d has set id %d, want %d", ErrBadSchedule, i, ch.SetID, prev.SetID+1)
		}
		if ch.HandOff <= prevAt {
			return fmt.Errorf("%w: change %d hands off at checkpoint %d, not above %d", ErrBadSchedule, i, ch.HandOff, prevAt)
		}
		if err := CheckChange(prev.Keys, ch.Keys); err != nil {
			return fmt.Errorf("change %d (set %d): %w", i, ch.SetID, err)
		}
		prev, prevAt = AuthoritySet{Genesis: s.Genesis.Genesis, SetID: ch.SetID, Keys: ch.Keys}, ch.HandOff
	}
	return nil
}

// IsHandOffLink reports whether a link of set setID is the hand-off link to
// the next set: a finalizing link (target = source + 1) whose source is at
// or above the next change's hand-off checkpoint. A validator of the old
// set signs at most one such link (SignerRecord.CheckInSchedule), so at
// most one checkpoint at or above the hand-off is finalized by the old set.
func (s Schedule) IsHandOffLink(setID uint64, v Vote) bool {
	ch, ok := s.Next(setID)
	return ok && v.SetID == setID && v.Target.Number == v.Source.Number+1 && v.Source.Number >= ch.HandOff
}

// VerifyFinalityProof verifies a finality proof that may cross hand-offs:
// p.HandOffs must hold, in order and without a gap, the hand-off
// certificate of every set from the genesis set on (each verified with the
// set it belongs to, each a hand-off link of that set, each finalizing a
// checkpoint above the one before), and p.Finalizing (with p.Justified)
// must verify with the set the last hand-off installed — or be that last
// hand-off certificate itself. It returns the finalized and justified
// checkpoints and the set id in force after them. Every error wraps
// ErrBadProof.
func (s Schedule) VerifyFinalityProof(p FinalityProof) (finalized, justified Checkpoint, setID uint64, err error) {
	cur := s.Genesis
	var last *Certificate
	for i := range p.HandOffs {
		h := p.HandOffs[i]
		if h.SetID != cur.SetID {
			return Checkpoint{}, Checkpoint{}, 0, fmt.Errorf("%w: %w: hand-off %d has set id %d, want %d (a set skipped or repeated)", ErrBadProof, ErrWrongSet, i, h.SetID, cur.SetID)
		}
		if !s.IsHandOffLink(cur.SetID, h.Vote()) {
			return Checkpoint{}, Checkpoint{}, 0, fmt.Errorf("%w: hand-off %d (%s -> %s) is not set %d's hand-off link", ErrBadProof, i, h.Source, h.Target, cur.SetID)
		}
		if last != nil && h.Source.Number < last.Target.Number {
			return Checkpoint{}, Checkpoint{}, 0, fmt.Errorf("%w: hand-off %d finalizes %s, below the previous hand-off's %s", ErrBadProof, i, h.Source, last.Target)
		}
		if err := cur.VerifyCertificate(h); err != nil {
			return Checkpoint{}, Checkpoint{}, 0, fmt.Errorf("%w: hand-off %d: %w", ErrBadProof, i, err)
		}
		last = &p.HandOffs[i]
		next, _ := s.Set(cur.SetID + 1)
		cur = next
	}
	if last != nil && p.Finalizing.SetID == last.SetID {
		// The newest finality is the last hand-off itself.
		if p.Finalizing.Vote() != last.Vote() {
			return Checkpoint{}, Checkpoint{}, 0, fmt.Errorf("%w: finalizing certificate of set %d after its hand-off", ErrBadProof, last.SetID)
		}
		if p.Justified != nil {
			return Checkpoint{}, Checkpoint{}, 0, fmt.Errorf("%w: justified certificate with a hand-off as the finalizing one", ErrBadProof)
		}
		return last.Source, last.Target, cur.SetID, nil
	}
	if p.Finalizing.SetID != cur.SetID {
		return Checkpoint{}, Checkpoint{}, 0, fmt.Errorf("%w: %w: finalizing certificate of set %d, set %d is in force after %d hand-offs", ErrBadProof, ErrWrongSet, p.Finalizing.SetID, cur.SetID, len(p.HandOffs))
	}
	if last != nil && p.Finalizing.Source.Number < last.Target.Number {
		return Checkpoint{}, Checkpoint{}, 0, fmt.Errorf("%w: finalizing certificate's source %s below the hand-off's %s", ErrBadProof, p.Finalizing.Source, last.Target)
	}
	if _, ok := s.Next(cur.SetID); ok && s.IsHandOffLink(cur.SetID, p.Finalizing.Vote()) {
		// A hand-off link of the current set finalizes the next hand-off:
		// it belongs in HandOffs, and the set after it is in force.
		return Checkpoint{}, Checkpoint{}, 0, fmt.Errorf("%w: finalizing certificate is set %d's hand-off link and is missing from the hand-offs", ErrBadProof, cur.SetID)
	}
	f, j, err := cur.VerifyFinalityProof(FinalityProof{Finalizing: p.Finalizing, Justified: p.Justified})
	if err != nil {
		return Checkpoint{}, Checkpoint{}, 0, err
	}
	if p.Justified != nil && s.IsHandOffLink(cur.SetID, p.Justified.Vote()) {
		return Checkpoint{}, Checkpoint{}, 0, fmt.Errorf("%w: justified certificate is set %d's hand-off link", ErrBadProof, cur.SetID)
	}
	return f, j, cur.SetID, nil
}

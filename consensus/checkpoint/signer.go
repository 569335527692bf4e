package checkpoint

import (
	"crypto/ed25519"
	"fmt"
)

// SignerRecord is the slashing-protection record of one local key, following
// the EIP-3076 "minimal" strategy: the last vote signed (with its signature)
// plus low watermarks. The rules it enforces (Check):
//
//   - a vote identical to the last one is answered with the stored signature;
//   - otherwise the target number must be strictly above every earlier target
//     (no two different votes with one target number, no vote below), and the
//     source number must be at or above every earlier source.
//
// Because targets strictly increase and sources never decrease, a new vote can
// neither surround nor be surrounded by any earlier own vote.
type SignerRecord struct {
	PublicKey ed25519.PublicKey
	Genesis   Hash
	// Last is the last vote signed; nil when the key never signed.
	Last *SignedVote
	// MinSource and MinTarget are low watermarks (raised by import or repair):
	// a new vote needs source >= MinSource and target > MinTarget.
	MinSource uint64
	MinTarget uint64
	// MinSetID: no vote for an authority set below this id (raised by
	// import, from the set ids of the exported votes; CheckInSchedule).
	MinSetID uint64
}

// Decision is the outcome of SignerRecord.Check.
type Decision int

const (
	// SignNew: the vote is safe and new; sign it and persist the record first.
	SignNew Decision = iota + 1
	// ReturnStored: the identical vote was signed already; return Last.
	ReturnStored
)

// Check applies the voter safety rules to v.
func (r *SignerRecord) Check(v Vote) (Decision, error) {
	if r.Last != nil && r.Last.Vote == v {
		return ReturnStored, nil
	}
	if err := v.Validate(); err != nil {
		return 0, err
	}
	if v.Genesis != r.Genesis {
		return 0, ErrWrongChain
	}
	minTarget, minSource, haveTarget := r.MinTarget, r.MinSource, r.MinTarget > 0
	if r.Last != nil {
		minTarget = max(minTarget, r.Last.Target.Number)
		minSource = max(minSource, r.Last.Source.Number)
		haveTarget = true
	}
	if haveTarget && v.Target.Number <= minTarget {
		return 0, fmt.Errorf("%w: target %d not above last signed target %d", ErrSlashable, v.Target.Number, minTarget)
	}
	if v.Source.Number < minSource {
		return 0, fmt.Errorf("%w: source %d below last signed source %d", ErrSlashable, v.Source.Number, minSource)
	}
	return SignNew, nil
}

// Clone returns a deep copy.
func (r SignerRecord) Clone() SignerRecord {
	c := r
	c.PublicKey = append(ed25519.PublicKey(nil), r.PublicKey...)
	if r.Last != nil {
		l := *r.Last
		c.Last = &l
	}
	return c
}

// CheckInSchedule applies Check and the hand-off rules of the schedule s:
// set ids never go back (a key that voted for set k never signs for an
// earlier set), and a key that signed its set's hand-off link (Schedule.
// IsHandOffLink) signs nothing else for that set. Both refusals wrap
// ErrSlashable: they protect the uniqueness of the hand-off checkpoint as
// the watermarks protect FFG's slashing conditions.
func (r *SignerRecord) CheckInSchedule(v Vote, s Schedule) (Decision, error) {
	d, err := r.Check(v)
	if err != nil || d == ReturnStored {
		return d, err
	}
	if v.SetID < r.MinSetID {
		return 0, fmt.Errorf("%w: set %d below the record's lowest set %d", ErrSlashable, v.SetID, r.MinSetID)
	}
	if r.Last == nil {
		return d, nil
	}
	last := r.Last.Vote
	switch {
	case v.SetID < last.SetID:
		return 0, fmt.Errorf("%w: set %d after a vote for set %d", ErrSlashable, v.SetID, last.SetID)
	case v.SetID == last.SetID && s.IsHandOffLink(last.SetID, last):
		return 0, fmt.Errorf("%w: set %d's hand-off link %d -> %d was signed already", ErrSlashable, last.SetID, last.Source.Number, last.Target.Number)
	}
	return d, nil
}

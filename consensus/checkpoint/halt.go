package checkpoint

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/wire/flarepb"
)

// HaltReason says why a validator stopped voting.
type HaltReason int32

// Halt reasons (values match the wire enum).
const (
	HaltUnspecified         HaltReason = 0
	HaltConflictingFinality HaltReason = 1
	HaltDoppelganger        HaltReason = 2
)

func (r HaltReason) String() string {
	switch r {
	case HaltConflictingFinality:
		return "conflicting-finality"
	case HaltDoppelganger:
		return "doppelganger"
	default:
		return "unspecified"
	}
}

// MaxHaltDetail bounds Halt.Detail in bytes.
const MaxHaltDetail = 1024

// Halt is a persisted safety alarm: the validator stops voting and stays
// stopped across restarts until an operator clears it. It never lifts by
// itself.
type Halt struct {
	Reason HaltReason
	// Checkpoint is the checkpoint number the alarm is about.
	Checkpoint uint64
	// Detail is a human-readable explanation (valid UTF-8, at most
	// MaxHaltDetail bytes).
	Detail string
	// Evidence is the evidence behind the alarm (optional; for conflicting
	// finality the conflicting certificate).
	Evidence *Evidence
	// Vote is, for a doppelganger, a vote signed with the local key that
	// this node did not sign (optional).
	Vote *SignedVote
}

// Validate checks the shape of h: a known reason, a bounded UTF-8 detail,
// and well-formed evidence when present.
func (h Halt) Validate() error {
	switch h.Reason {
	case HaltConflictingFinality, HaltDoppelganger:
	default:
		return fmt.Errorf("%w: halt reason %d", ErrMalformed, h.Reason)
	}
	if len(h.Detail) > MaxHaltDetail {
		return fmt.Errorf("%w: halt detail of %d bytes (at most %d)", ErrMalformed, len(h.Detail), MaxHaltDetail)
	}
	if !utf8.ValidString(h.Detail) {
		return fmt.Errorf("%w: halt detail is not UTF-8", ErrMalformed)
	}
	if h.Evidence != nil {
		b, err := EncodeEvidence(*h.Evidence)
		if err != nil {
			return fmt.Errorf("%w: halt evidence: %v", ErrMalformed, err)
		}
		if _, err := DecodeEvidence(b); err != nil {
			return fmt.Errorf("halt evidence: %w", err)
		}
	}
	return nil
}

// ID returns a content hash that identifies the halt (storing the same halt
// twice keeps one).
func (h Halt) ID() Hash {
	b, _ := EncodeHalt(h) // encoding of a well-formed value cannot fail
	return HashOf(b)
}

// HaltToPB converts a halt to its wire form.
func HaltToPB(h Halt) *flarepb.Halt {
	p := &flarepb.Halt{Reason: flarepb.HaltReason(h.Reason), Checkpoint: h.Checkpoint, Detail: h.Detail}
	if h.Evidence != nil {
		p.Evidence = evidenceToPB(*h.Evidence)
	}
	if h.Vote != nil {
		p.Vote = VoteToPB(*h.Vote)
	}
	return p
}

// EncodeHalt returns the protobuf bytes of a halt. It refuses a halt that
// does not validate.
func EncodeHalt(h Halt) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return proto.Marshal(HaltToPB(h))
}

// DecodeHalt decodes and validates a halt.
func DecodeHalt(b []byte) (Halt, error) {
	var p flarepb.Halt
	if err := strict.Unmarshal(b, &p); err != nil {
		return Halt{}, fmt.Errorf("%w: halt: %v", ErrMalformed, err)
	}
	h := Halt{Reason: HaltReason(p.GetReason()), Checkpoint: p.GetCheckpoint(), Detail: p.GetDetail()}
	if p.Evidence != nil {
		e, err := evidenceFromPB(p.Evidence)
		if err != nil {
			return Halt{}, err
		}
		h.Evidence = &e
	}
	if p.Vote != nil {
		v, err := VoteFromPB(p.Vote)
		if err != nil {
			return Halt{}, err
		}
		h.Vote = &v
	}
	if err := h.Validate(); err != nil {
		return Halt{}, err
	}
	return h, nil
}

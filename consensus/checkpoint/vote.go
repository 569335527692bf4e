package checkpoint

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
)

// VoteDomain is the domain tag that begins every vote's signing bytes.
const VoteDomain = "flare/asf/vote/v1"

// voteSigningSize is len(VoteDomain) + genesis + set id + 2 checkpoints.
const voteSigningSize = len(VoteDomain) + HashSize + 8 + 2*(8+HashSize)

// Vote is the unsigned content of an FFG-style link from Source to Target.
type Vote struct {
	Genesis Hash
	SetID   uint64
	Source  Checkpoint
	Target  Checkpoint
}

// SigningBytes returns the canonical bytes a validator signs:
//
//	"flare/asf/vote/v1" | genesis(32) | set_id(u64 BE) |
//	source.number(u64 BE) | source.hash(32) | target.number(u64 BE) | target.hash(32)
func (v Vote) SigningBytes() []byte {
	b := make([]byte, 0, voteSigningSize)
	b = append(b, VoteDomain...)
	b = append(b, v.Genesis[:]...)
	b = binary.BigEndian.AppendUint64(b, v.SetID)
	b = binary.BigEndian.AppendUint64(b, v.Source.Number)
	b = append(b, v.Source.Hash[:]...)
	b = binary.BigEndian.AppendUint64(b, v.Target.Number)
	b = append(b, v.Target.Hash[:]...)
	return b
}

// Link is the (source, target) pair votes must agree on to form a certificate.
type Link struct {
	Source Checkpoint
	Target Checkpoint
}

// Link returns the vote's link.
func (v Vote) Link() Link { return Link{Source: v.Source, Target: v.Target} }

// Surrounds reports whether v strictly surrounds o (FFG surround rule):
// v.source < o.source and o.target < v.target.
func (v Vote) Surrounds(o Vote) bool {
	return v.Source.Number < o.Source.Number && o.Target.Number < v.Target.Number
}

// Validate checks the vote's shape (not its signature).
func (v Vote) Validate() error {
	if v.Target.Number <= v.Source.Number {
		return fmt.Errorf("%w: source %d, target %d", ErrBadLink, v.Source.Number, v.Target.Number)
	}
	return nil
}

// SignedVote is a vote with its signer index and signature.
type SignedVote struct {
	Vote
	Validator ValidatorIndex
	Signature Signature
}

// Verify checks the signature against pub.
func (s SignedVote) Verify(pub ed25519.PublicKey) error {
	if !VerifySignature(pub, s.SigningBytes(), s.Signature[:]) {
		return fmt.Errorf("%w: vote by validator %d for %s", ErrBadSignature, s.Validator, s.Target)
	}
	return nil
}

// Conflicts reports whether two votes of the same validator are slashable
// against each other: a double vote (same target number, different vote) or a
// surround vote. It returns the evidence kind.
func Conflicts(a, b SignedVote) (EvidenceKind, bool) {
	if a.Validator != b.Validator || a.Genesis != b.Genesis || a.SetID != b.SetID {
		return EvidenceUnspecified, false
	}
	if a.Target.Number == b.Target.Number {
		if a.Vote != b.Vote {
			return EvidenceDoubleVote, true
		}
		return EvidenceUnspecified, false
	}
	if a.Surrounds(b.Vote) || b.Surrounds(a.Vote) {
		return EvidenceSurroundVote, true
	}
	return EvidenceUnspecified, false
}

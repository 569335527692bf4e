package checkpoint

import (
	"fmt"
	"slices"
)

// CertSignature is one signer of a certificate.
type CertSignature struct {
	Validator ValidatorIndex
	Signature Signature
}

// Certificate is a quorum of signatures over one identical vote (link).
// Signatures are sorted by strictly increasing validator index.
type Certificate struct {
	Genesis    Hash
	SetID      uint64
	Source     Checkpoint
	Target     Checkpoint
	Signatures []CertSignature
}

// Vote returns the vote every signature of the certificate signs.
func (c Certificate) Vote() Vote {
	return Vote{Genesis: c.Genesis, SetID: c.SetID, Source: c.Source, Target: c.Target}
}

// Finalizes reports whether this certificate finalizes its source: its target
// is the direct next checkpoint (c_t = c_s + 1).
func (c Certificate) Finalizes() bool { return c.Target.Number == c.Source.Number+1 }

// NewCertificate builds a certificate from votes that all sign the same vote.
// Votes are de-duplicated by validator and sorted.
func NewCertificate(votes []SignedVote) (Certificate, error) {
	if len(votes) == 0 {
		return Certificate{}, fmt.Errorf("%w: no votes", ErrNoQuorum)
	}
	v := votes[0].Vote
	c := Certificate{Genesis: v.Genesis, SetID: v.SetID, Source: v.Source, Target: v.Target}
	seen := make(map[ValidatorIndex]bool, len(votes))
	for _, s := range votes {
		if s.Vote != v {
			return Certificate{}, fmt.Errorf("%w: votes for different links", ErrMalformed)
		}
		if seen[s.Validator] {
			continue
		}
		seen[s.Validator] = true
		c.Signatures = append(c.Signatures, CertSignature{Validator: s.Validator, Signature: s.Signature})
	}
	slices.SortFunc(c.Signatures, func(a, b CertSignature) int { return int(a.Validator) - int(b.Validator) })
	return c, nil
}

// SignedVotes expands the certificate into its individual signed votes.
func (c Certificate) SignedVotes() []SignedVote {
	out := make([]SignedVote, len(c.Signatures))
	for i, s := range c.Signatures {
		out[i] = SignedVote{Vote: c.Vote(), Validator: s.Validator, Signature: s.Signature}
	}
	return out
}

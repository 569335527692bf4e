package checkpoint

import (
	"crypto/ed25519"
	"fmt"
)

// AuthoritySet is the ordered list of validator keys of one set id on one chain.
type AuthoritySet struct {
	Genesis Hash
	SetID   uint64
	Keys    []ed25519.PublicKey
}

// Len is the number of validators n.
func (a AuthoritySet) Len() int { return len(a.Keys) }

// Quorum returns floor(2n/3)+1.
func Quorum(n int) int { return 2*n/3 + 1 }

// Quorum returns floor(2n/3)+1 for this set.
func (a AuthoritySet) Quorum() int { return Quorum(len(a.Keys)) }

// IndexOf returns the index of pub in the set.
func (a AuthoritySet) IndexOf(pub ed25519.PublicKey) (ValidatorIndex, bool) {
	for i, k := range a.Keys {
		if k.Equal(pub) {
			return ValidatorIndex(i), true
		}
	}
	return 0, false
}

// CheckHeader runs the cheap checks of a vote or certificate header: chain,
// set id, link shape. No signature is verified.
func (a AuthoritySet) CheckHeader(v Vote) error {
	if v.Genesis != a.Genesis {
		return ErrWrongChain
	}
	if v.SetID != a.SetID {
		return fmt.Errorf("%w: got %d, want %d", ErrWrongSet, v.SetID, a.SetID)
	}
	return v.Validate()
}

// CheckIndex checks that i is inside the set.
func (a AuthoritySet) CheckIndex(i ValidatorIndex) error {
	if int(i) >= len(a.Keys) {
		return fmt.Errorf("%w: %d of %d", ErrUnknownValidator, i, len(a.Keys))
	}
	return nil
}

// VerifyVote runs every check on a signed vote, cheapest first.
func (a AuthoritySet) VerifyVote(s SignedVote) error {
	if err := a.CheckHeader(s.Vote); err != nil {
		return err
	}
	if err := a.CheckIndex(s.Validator); err != nil {
		return err
	}
	return s.Verify(a.Keys[s.Validator])
}

// CheckCertificateShape runs the checks of a certificate that need no
// signature verification: header, quorum of distinct in-range signers in
// strictly increasing order.
func (a AuthoritySet) CheckCertificateShape(c Certificate) error {
	if err := a.CheckHeader(c.Vote()); err != nil {
		return err
	}
	if len(c.Signatures) < a.Quorum() {
		return fmt.Errorf("%w: %d signatures, quorum %d", ErrNoQuorum, len(c.Signatures), a.Quorum())
	}
	for i, s := range c.Signatures {
		if err := a.CheckIndex(s.Validator); err != nil {
			return err
		}
		if i > 0 && s.Validator <= c.Signatures[i-1].Validator {
			return ErrDuplicateSigner
		}
	}
	return nil
}

// VerifyCertificate fully re-verifies a certificate: shape, then every
// signature.
func (a AuthoritySet) VerifyCertificate(c Certificate) error {
	if err := a.CheckCertificateShape(c); err != nil {
		return err
	}
	return a.verifySignatures(c)
}

// verifySignatures verifies every signature of a certificate whose shape
// was checked.
func (a AuthoritySet) verifySignatures(c Certificate) error {
	msg := c.Vote().SigningBytes()
	for _, s := range c.Signatures {
		if !VerifySignature(a.Keys[s.Validator], msg, s.Signature[:]) {
			return fmt.Errorf("%w: certificate signer %d for %s", ErrBadSignature, s.Validator, c.Target)
		}
	}
	return nil
}

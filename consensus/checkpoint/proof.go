package checkpoint

import (
	"errors"
	"fmt"
)

// ErrBadProof: a finality proof that does not verify. Every error of
// AuthoritySet.VerifyFinalityProof wraps it, together with the underlying
// cause (ErrNoQuorum, ErrBadSignature, ErrWrongChain, ...) when there is one.
var ErrBadProof = errors.New("invalid finality proof")

// FinalityProof proves with certificates alone that a checkpoint is
// finalized, and optionally which checkpoint is justified after it.
//
// Finalizing is a certificate whose target is the checkpoint right after its
// source (target = source + 1): a quorum linked the justified source to its
// direct successor, which finalizes the source F. It also justifies its
// target F+1.
//
// Justified, when present, is the certificate of the latest justified
// checkpoint J the prover knows: its target is at or above F+1 and its
// source at or above F (when the source is F it names F's block, when the
// target is F+1 it names the block Finalizing justifies).
//
// With a static authority set and fewer than a third of it faulty, no
// conflicting checkpoint can be finalized (docs/protocol.md, "Safety
// argument"), so a verified proof is as good as having followed the votes.
//
// HandOffs, when the authority set changed since genesis, are the hand-off
// certificates of every earlier set in set id order (Schedule.
// VerifyFinalityProof): each finalized the checkpoint at which the next set
// took over. AuthoritySet.VerifyFinalityProof ignores them.
type FinalityProof struct {
	Finalizing Certificate
	Justified  *Certificate
	HandOffs   []Certificate
}

// VerifyFinalityProof fully verifies p against the authority set: the shape
// of both certificates (chain, set id, link, quorum of distinct in-range
// signers), the finalizing link (target = source + 1), the relation between
// the two certificates, then every signature of Finalizing and of
// Justified, cheapest checks first. It returns the finalized checkpoint
// (Finalizing's source) and the justified one (Justified's target, or
// Finalizing's target without Justified).
func (a AuthoritySet) VerifyFinalityProof(p FinalityProof) (finalized, justified Checkpoint, err error) {
	f := p.Finalizing
	if err := a.CheckCertificateShape(f); err != nil {
		return Checkpoint{}, Checkpoint{}, fmt.Errorf("%w: finalizing certificate: %w", ErrBadProof, err)
	}
	if !f.Finalizes() {
		return Checkpoint{}, Checkpoint{}, fmt.Errorf("%w: finalizing certificate links %d -> %d, not to the next checkpoint",
			ErrBadProof, f.Source.Number, f.Target.Number)
	}
	finalized, justified = f.Source, f.Target
	if j := p.Justified; j != nil {
		if err := a.CheckCertificateShape(*j); err != nil {
			return Checkpoint{}, Checkpoint{}, fmt.Errorf("%w: justified certificate: %w", ErrBadProof, err)
		}
		switch {
		case j.Target.Number <= finalized.Number:
			return Checkpoint{}, Checkpoint{}, fmt.Errorf("%w: justified checkpoint %s not above finalized %s", ErrBadProof, j.Target, finalized)
		case j.Source.Number < finalized.Number:
			return Checkpoint{}, Checkpoint{}, fmt.Errorf("%w: justified certificate's source %s below finalized %s", ErrBadProof, j.Source, finalized)
		case j.Source.Number == finalized.Number && j.Source.Hash != finalized.Hash:
			return Checkpoint{}, Checkpoint{}, fmt.Errorf("%w: justified certificate's source %s conflicts with finalized %s", ErrBadProof, j.Source, finalized)
		case j.Target.Number == f.Target.Number && j.Target.Hash != f.Target.Hash:
			return Checkpoint{}, Checkpoint{}, fmt.Errorf("%w: justified checkpoint %s conflicts with %s justified by the finalizing certificate", ErrBadProof, j.Target, f.Target)
		}
		justified = j.Target
	}
	if err := a.verifySignatures(f); err != nil {
		return Checkpoint{}, Checkpoint{}, fmt.Errorf("%w: finalizing certificate: %w", ErrBadProof, err)
	}
	if j := p.Justified; j != nil {
		if err := a.verifySignatures(*j); err != nil {
			return Checkpoint{}, Checkpoint{}, fmt.Errorf("%w: justified certificate: %w", ErrBadProof, err)
		}
	}
	return finalized, justified, nil
}

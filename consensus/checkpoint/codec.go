package checkpoint

import (
	"crypto/ed25519"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/wire/flarepb"
)

// MaxCertificateSignatures bounds the signatures a decoded certificate may
// carry (far above any authority set we run; it only bounds allocation).
const MaxCertificateSignatures = 1024

var strict = proto.UnmarshalOptions{DiscardUnknown: false}

// CheckpointToPB converts a checkpoint to its wire form.
func CheckpointToPB(c Checkpoint) *flarepb.Checkpoint {
	return &flarepb.Checkpoint{Number: c.Number, Hash: c.Hash[:]}
}

// CheckpointFromPB validates and converts a wire checkpoint.
func CheckpointFromPB(p *flarepb.Checkpoint) (Checkpoint, error) {
	if p == nil {
		return Checkpoint{}, fmt.Errorf("%w: missing checkpoint", ErrMalformed)
	}
	h, err := HashFromBytes(p.GetHash())
	if err != nil {
		return Checkpoint{}, err
	}
	return Checkpoint{Number: p.GetNumber(), Hash: h}, nil
}

func sigFromBytes(b []byte) (Signature, error) {
	var s Signature
	if len(b) != SignatureSize {
		return s, fmt.Errorf("%w: signature is %d bytes, want %d", ErrMalformed, len(b), SignatureSize)
	}
	copy(s[:], b)
	return s, nil
}

// VoteToPB converts a signed vote to its wire form.
func VoteToPB(v SignedVote) *flarepb.Vote {
	return &flarepb.Vote{
		GenesisHash: v.Genesis[:],
		SetId:       v.SetID,
		Source:      CheckpointToPB(v.Source),
		Target:      CheckpointToPB(v.Target),
		Validator:   uint32(v.Validator),
		Signature:   v.Signature[:],
	}
}

// VoteFromPB validates the shape of a wire vote and converts it. The
// signature is not verified.
func VoteFromPB(p *flarepb.Vote) (SignedVote, error) {
	var v SignedVote
	if p == nil {
		return v, fmt.Errorf("%w: missing vote", ErrMalformed)
	}
	var err error
	if v.Genesis, err = HashFromBytes(p.GetGenesisHash()); err != nil {
		return v, err
	}
	v.SetID = p.GetSetId()
	if v.Source, err = CheckpointFromPB(p.GetSource()); err != nil {
		return v, err
	}
	if v.Target, err = CheckpointFromPB(p.GetTarget()); err != nil {
		return v, err
	}
	v.Validator = ValidatorIndex(p.GetValidator())
	if v.Signature, err = sigFromBytes(p.GetSignature()); err != nil {
		return v, err
	}
	return v, nil
}

// EncodeVote returns the protobuf bytes of a signed vote.
func EncodeVote(v SignedVote) ([]byte, error) { return proto.Marshal(VoteToPB(v)) }

// DecodeVote decodes and shape-checks a signed vote.
func DecodeVote(b []byte) (SignedVote, error) {
	var p flarepb.Vote
	if err := strict.Unmarshal(b, &p); err != nil {
		return SignedVote{}, fmt.Errorf("%w: vote: %v", ErrMalformed, err)
	}
	return VoteFromPB(&p)
}

// CertificateToPB converts a certificate to its wire form.
func CertificateToPB(c Certificate) *flarepb.Certificate {
	p := &flarepb.Certificate{
		GenesisHash: c.Genesis[:],
		SetId:       c.SetID,
		Source:      CheckpointToPB(c.Source),
		Target:      CheckpointToPB(c.Target),
		Signatures:  make([]*flarepb.CertificateSignature, len(c.Signatures)),
	}
	for i, s := range c.Signatures {
		p.Signatures[i] = &flarepb.CertificateSignature{Validator: uint32(s.Validator), Signature: s.Signature[:]}
	}
	return p
}

// CertificateFromPB validates the shape of a wire certificate and converts
// it. Signatures are not verified and quorum is not checked (that needs the
// authority set: AuthoritySet.VerifyCertificate).
func CertificateFromPB(p *flarepb.Certificate) (Certificate, error) {
	var c Certificate
	if p == nil {
		return c, fmt.Errorf("%w: missing certificate", ErrMalformed)
	}
	if len(p.GetSignatures()) > MaxCertificateSignatures {
		return c, fmt.Errorf("%w: %d certificate signatures", ErrMalformed, len(p.GetSignatures()))
	}
	var err error
	if c.Genesis, err = HashFromBytes(p.GetGenesisHash()); err != nil {
		return c, err
	}
	c.SetID = p.GetSetId()
	if c.Source, err = CheckpointFromPB(p.GetSource()); err != nil {
		return c, err
	}
	if c.Target, err = CheckpointFromPB(p.GetTarget()); err != nil {
		return c, err
	}
	c.Signatures = make([]CertSignature, len(p.GetSignatures()))
	for i, s := range p.GetSignatures() {
		if s == nil {
			return c, fmt.Errorf("%w: nil certificate signature", ErrMalformed)
		}
		c.Signatures[i].Validator = ValidatorIndex(s.GetValidator())
		if c.Signatures[i].Signature, err = sigFromBytes(s.GetSignature()); err != nil {
			return c, err
		}
	}
	return c, nil
}

// EncodeCertificate returns the protobuf bytes of a certificate.
func EncodeCertificate(c Certificate) ([]byte, error) { return proto.Marshal(CertificateToPB(c)) }

// DecodeCertificate decodes and shape-checks a certificate.
func DecodeCertificate(b []byte) (Certificate, error) {
	var p flarepb.Certificate
	if err := strict.Unmarshal(b, &p); err != nil {
		return Certificate{}, fmt.Errorf("%w: certificate: %v", ErrMalformed, err)
	}
	return CertificateFromPB(&p)
}

// FinalityProofToPB converts a finality proof to its wire form.
func FinalityProofToPB(p FinalityProof) *flarepb.FinalityProof {
	out := &flarepb.FinalityProof{Finalizing: CertificateToPB(p.Finalizing)}
	if p.Justified != nil {
		out.Justified = CertificateToPB(*p.Justified)
	}
	for _, h := range p.HandOffs {
		out.HandOffs = append(out.HandOffs, CertificateToPB(h))
	}
	return out
}

// FinalityProofFromPB validates the shape of a wire finality proof (a
// finalizing certificate is required; each certificate as in
// CertificateFromPB) and converts it. Nothing is verified against an
// authority set: that is AuthoritySet.VerifyFinalityProof.
func FinalityProofFromPB(p *flarepb.FinalityProof) (FinalityProof, error) {
	if p == nil || p.GetFinalizing() == nil {
		return FinalityProof{}, fmt.Errorf("%w: finality proof without finalizing certificate", ErrMalformed)
	}
	f, err := CertificateFromPB(p.GetFinalizing())
	if err != nil {
		return FinalityProof{}, fmt.Errorf("finalizing certificate: %w", err)
	}
	out := FinalityProof{Finalizing: f}
	if p.GetJustified() != nil {
		j, err := CertificateFromPB(p.GetJustified())
		if err != nil {
			return FinalityProof{}, fmt.Errorf("justified certificate: %w", err)
		}
		out.Justified = &j
	}
	if len(p.GetHandOffs()) > MaxHandOffs {
		return FinalityProof{}, fmt.Errorf("%w: finality proof with %d hand-offs, at most %d", ErrMalformed, len(p.GetHandOffs()), MaxHandOffs)
	}
	for i, hp := range p.GetHandOffs() {
		h, err := CertificateFromPB(hp)
		if err != nil {
			return FinalityProof{}, fmt.Errorf("hand-off %d: %w", i, err)
		}
		out.HandOffs = append(out.HandOffs, h)
	}
	return out, nil
}

// MaxHandOffs bounds the hand-off certificates a decoded finality proof may
// carry (a chain spec schedules at most this many changes).
const MaxHandOffs = 64

// EncodeFinalityProof returns the protobuf bytes of a finality proof.
func EncodeFinalityProof(p FinalityProof) ([]byte, error) {
	return proto.Marshal(FinalityProofToPB(p))
}

// DecodeFinalityProof decodes and shape-checks a finality proof.
func DecodeFinalityProof(b []byte) (FinalityProof, error) {
	var p flarepb.FinalityProof
	if err := strict.Unmarshal(b, &p); err != nil {
		return FinalityProof{}, fmt.Errorf("%w: finality proof: %v", ErrMalformed, err)
	}
	return FinalityProofFromPB(&p)
}

// EncodeCheckpoint returns the protobuf bytes of a checkpoint.
func EncodeCheckpoint(c Checkpoint) ([]byte, error) { return proto.Marshal(CheckpointToPB(c)) }

// DecodeCheckpoint decodes a checkpoint.
func DecodeCheckpoint(b []byte) (Checkpoint, error) {
	var p flarepb.Checkpoint
	if err := strict.Unmarshal(b, &p); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint: %v", ErrMalformed, err)
	}
	return CheckpointFromPB(&p)
}

// evidenceToPB converts evidence to its wire form.
func evidenceToPB(e Evidence) *flarepb.Evidence {
	p := &flarepb.Evidence{
		Kind:       flarepb.EvidenceKind(e.Kind),
		Validator:  uint32(e.Validator),
		Checkpoint: e.Checkpoint,
	}
	if e.First != nil {
		p.First = VoteToPB(*e.First)
	}
	if e.Second != nil {
		p.Second = VoteToPB(*e.Second)
	}
	if e.Certificate != nil {
		p.Certificate = CertificateToPB(*e.Certificate)
	}
	return p
}

// EncodeEvidence returns the protobuf bytes of evidence.
func EncodeEvidence(e Evidence) ([]byte, error) { return proto.Marshal(evidenceToPB(e)) }

// DecodeEvidence decodes evidence.
func DecodeEvidence(b []byte) (Evidence, error) {
	var p flarepb.Evidence
	if err := strict.Unmarshal(b, &p); err != nil {
		return Evidence{}, fmt.Errorf("%w: evidence: %v", ErrMalformed, err)
	}
	return evidenceFromPB(&p)
}

// evidenceFromPB validates the shape of wire evidence and converts it.
func evidenceFromPB(p *flarepb.Evidence) (Evidence, error) {
	e := Evidence{Kind: EvidenceKind(p.GetKind()), Validator: ValidatorIndex(p.GetValidator()), Checkpoint: p.GetCheckpoint()}
	switch e.Kind {
	case EvidenceDoubleVote, EvidenceSurroundVote, EvidenceConflictingFinality:
	default:
		return Evidence{}, fmt.Errorf("%w: evidence kind %d", ErrMalformed, p.GetKind())
	}
	if p.First != nil {
		v, err := VoteFromPB(p.First)
		if err != nil {
			return Evidence{}, err
		}
		e.First = &v
	}
	if p.Second != nil {
		v, err := VoteFromPB(p.Second)
		if err != nil {
			return Evidence{}, err
		}
		e.Second = &v
	}
	if p.Certificate != nil {
		c, err := CertificateFromPB(p.Certificate)
		if err != nil {
			return Evidence{}, err
		}
		e.Certificate = &c
	}
	if e.Kind == EvidenceConflictingFinality && e.Certificate == nil {
		return Evidence{}, fmt.Errorf("%w: conflicting-finality evidence without certificate", ErrMalformed)
	}
	if e.Kind != EvidenceConflictingFinality && (e.First == nil || e.Second == nil) {
		return Evidence{}, fmt.Errorf("%w: vote evidence without both votes", ErrMalformed)
	}
	return e, nil
}

// EncodeSignerRecord returns the protobuf bytes of a signer record.
func EncodeSignerRecord(r SignerRecord) ([]byte, error) {
	p := &flarepb.SignerRecord{
		PublicKey:   r.PublicKey,
		GenesisHash: r.Genesis[:],
		MinSource:   r.MinSource,
		MinTarget:   r.MinTarget,
		MinSetId:    r.MinSetID,
	}
	if r.Last != nil {
		p.LastVote = VoteToPB(*r.Last)
	}
	return proto.Marshal(p)
}

// DecodeSignerRecord decodes and validates a signer record.
func DecodeSignerRecord(b []byte) (SignerRecord, error) {
	var p flarepb.SignerRecord
	if err := strict.Unmarshal(b, &p); err != nil {
		return SignerRecord{}, fmt.Errorf("%w: signer record: %v", ErrMalformed, err)
	}
	if len(p.GetPublicKey()) != ed25519.PublicKeySize {
		return SignerRecord{}, fmt.Errorf("%w: signer record public key is %d bytes", ErrMalformed, len(p.GetPublicKey()))
	}
	g, err := HashFromBytes(p.GetGenesisHash())
	if err != nil {
		return SignerRecord{}, err
	}
	r := SignerRecord{
		PublicKey: append(ed25519.PublicKey(nil), p.GetPublicKey()...),
		Genesis:   g,
		MinSource: p.GetMinSource(),
		MinTarget: p.GetMinTarget(),
		MinSetID:  p.GetMinSetId(),
	}
	if p.LastVote != nil {
		v, err := VoteFromPB(p.LastVote)
		if err != nil {
			return SignerRecord{}, err
		}
		r.Last = &v
	}
	return r, nil
}

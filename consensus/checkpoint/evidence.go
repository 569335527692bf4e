package checkpoint

// EvidenceKind classifies evidence.
type EvidenceKind int32

// Evidence kinds (values match the wire enum).
const (
	EvidenceUnspecified         EvidenceKind = 0
	EvidenceDoubleVote          EvidenceKind = 1
	EvidenceSurroundVote        EvidenceKind = 2
	EvidenceConflictingFinality EvidenceKind = 3
)

func (k EvidenceKind) String() string {
	switch k {
	case EvidenceDoubleVote:
		return "double-vote"
	case EvidenceSurroundVote:
		return "surround-vote"
	case EvidenceConflictingFinality:
		return "conflicting-finality"
	default:
		return "unspecified"
	}
}

// Evidence of misbehaviour. For vote evidence First and Second are the two
// conflicting votes of Validator; for conflicting finality Certificate is the
// valid certificate that contradicts a finalized checkpoint.
type Evidence struct {
	Kind        EvidenceKind
	Validator   ValidatorIndex
	First       *SignedVote
	Second      *SignedVote
	Certificate *Certificate
	// Checkpoint is the checkpoint number the evidence is about; evidence
	// expires relative to it.
	Checkpoint uint64
}

// ID returns a content hash that identifies the evidence (for de-duplication
// and storage keys).
func (e Evidence) ID() Hash {
	b, _ := EncodeEvidence(e) // encoding of a well-formed value cannot fail
	return HashOf(b)
}

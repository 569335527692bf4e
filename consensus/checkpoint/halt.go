package checkpoint

// HaltReason says why a validator stopped voting.
type HaltReason int32

// Halt reasons.
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

// Halt is a persisted safety alarm: the validator stopped voting and stays
// stopped across restarts until an operator clears it.
type Halt struct {
	Reason     HaltReason
	Checkpoint uint64
	Detail     string
	Evidence   *Evidence
}

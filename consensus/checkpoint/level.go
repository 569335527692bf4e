package checkpoint

import "fmt"

// Level is a checkpoint's place on the ascending scale of finality.
type Level int

// Levels, lowest first.
const (
	// LevelNone: nothing known about the checkpoint number.
	LevelNone Level = iota
	// LevelPreCommitment: votes, but no link with a quorum of them (the
	// weight seen is reported alongside).
	LevelPreCommitment
	// LevelCommitment: justified (a quorum certificate).
	LevelCommitment
	// LevelFinality: finalized (at or below the finalized checkpoint).
	LevelFinality
)

func (l Level) String() string {
	switch l {
	case LevelNone:
		return "none"
	case LevelPreCommitment:
		return "pre-commitment"
	case LevelCommitment:
		return "commitment"
	case LevelFinality:
		return "finality"
	default:
		return fmt.Sprintf("level(%d)", int(l))
	}
}

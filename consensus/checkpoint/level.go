package checkpoint

import "fmt"

// Level is a checkpoint's place on the ascending scale of finality (ASF).
//
// The level names are the product's, and String is the one spelling every
// operator surface uses (checkpoints list/show, the HTTP API, metrics
// labels, docs): "pre-commitment", "commitment", "finality" ("none" for a
// number nothing is known about). The Casper FFG verbs name the events of
// reaching a level: a checkpoint is *justified* when it reaches commitment
// and *finalized* when it reaches finality; the latest justified and
// finalized checkpoints are the highest at each level.
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

// String is the level's name: none, pre-commitment, commitment, finality.
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

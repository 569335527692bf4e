package checkpoint

import "testing"

// TestLevelNames: the one spelling of the ascending scale (docs/protocol.md,
// "level" table) that the CLI, the API and metric labels show.
func TestLevelNames(t *testing.T) {
	for l, want := range map[Level]string{
		LevelNone: "none", LevelPreCommitment: "pre-commitment", LevelCommitment: "commitment", LevelFinality: "finality",
	} {
		if got := l.String(); got != want {
			t.Errorf("Level(%d).String() = %q, want %q", int(l), got, want)
		}
	}
	if LevelNone >= LevelPreCommitment || LevelPreCommitment >= LevelCommitment || LevelCommitment >= LevelFinality {
		t.Error("levels must ascend")
	}
}

package checkpointdb

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const lockHelperEnv = "FLARE_CHECKPOINTDB_LOCK_HELPER_DIR"

// TestLockHelperProcess is the child of TestSecondProcessIsLocked: it tries
// to open the directory the parent holds and reports what happened.
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv(lockHelperEnv)
	if dir == "" {
		t.Skip("helper process for TestSecondProcessIsLocked")
	}
	db, err := Open(dir, Options{Genesis: testGenesis})
	switch {
	case err == nil:
		_ = db.Close()
		fmt.Println("RESULT: opened")
	case errors.Is(err, ErrLocked):
		fmt.Println("RESULT: locked:", err)
	default:
		fmt.Println("RESULT: other:", err)
	}
}

// TestSecondProcessIsLocked opens a database and has another process try to
// open it: it fails fast with ErrLocked.
func TestSecondProcessIsLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db, err := Open(dir, Options{Genesis: testGenesis})
	require.NoError(t, err)
	run := func() string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.v")
		cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	out := run()
	require.Contains(t, out, "RESULT: locked: checkpoint database at "+dir+" is in use by another process")
	require.NoError(t, db.Close())
	require.Contains(t, run(), "RESULT: opened", "the lock is released by Close")
}

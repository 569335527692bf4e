package buildinfo

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// withVars sets the linker variables for one test.
func withVars(t *testing.T, v, c string) {
	t.Helper()
	ov, oc := version, commit
	version, commit = v, c
	t.Cleanup(func() { version, commit = ov, oc })
}

func TestLinkerValuesWin(t *testing.T) {
	withVars(t, "1.2.3", "0123456789abcdef0123456789abcdef01234567")
	require.Equal(t, "1.2.3", Version())
	require.Equal(t, "0123456789abcdef0123456789abcdef01234567", Commit())
	require.False(t, Modified(), "a linker-set commit says nothing about the tree")
	require.Equal(t, "1.2.3+0123456789ab", Short())
	require.Equal(t, runtime.Version(), GoVersion())
}

func TestWithoutVCSInformation(t *testing.T) {
	// A test binary carries no vcs.* settings (go test does not stamp them).
	if settings()["vcs.revision"] != "" {
		t.Skip("this binary carries VCS information")
	}
	withVars(t, "0.1.0-dev", "")
	require.Equal(t, Unknown, Commit())
	require.Equal(t, "0.1.0-dev", Short())
}

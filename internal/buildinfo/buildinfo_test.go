package buildinfo

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDefaults(t *testing.T) {
	require.Equal(t, "0.1.0-dev", Version())
	require.Equal(t, runtime.Version(), GoVersion())
	require.Regexp(t, `^([0-9a-f]{40}(-dirty)?|unknown)$`, Commit())
}

// TestLinkTimeValues: -ldflags -X sets the version and the commit of a
// build (the way a release or container build names them).
func TestLinkTimeValues(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bi")
	pkg := "github.com/flarechain/flare-node/internal/buildinfo"
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X "+pkg+".version=1.2.3 -X "+pkg+".commit=0123456789abcdef0123456789abcdef01234567", "./testdata/printinfo")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command(bin).Output()
	require.NoError(t, err)
	require.Equal(t, "1.2.3 0123456789abcdef0123456789abcdef01234567", strings.TrimSpace(string(out)))
}

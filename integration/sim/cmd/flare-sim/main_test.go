package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/blake2b"
)

// binPath is the flare-sim binary built once by TestMain.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flare-sim-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "flare-sim")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building flare-sim:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// lines splits s into its lines (none for "").
func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// timeout bounds every command; a bad flag must be refused at once.
var timeout = time.Minute

// runIn runs the command in dir (the test's temporary directory when "") and
// fails the test if it does not end within timeout.
func runIn(t *testing.T, dir, name string, args ...string) result {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "%s %q did not end", name, args)
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return r
}

func flareSim(t *testing.T, args ...string) result {
	t.Helper()
	return runIn(t, "", binPath, args...)
}

var summaryRE = regexp.MustCompile(`^sim: seeds=(\d+) violations=(\d+) handoff_stalls=\d+ steps=[1-9]\d* sim_seconds=[1-9]\d* wall=\d+\.\d\ds trace=([0-9a-f]{64})$`)

// summary checks a clean run: exit 0, nothing on stderr, one summary line
// for seeds runs; it returns the trace hash.
func summary(t *testing.T, r result, seeds int) string {
	t.Helper()
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Empty(t, r.stderr)
	out := lines(r.stdout)
	require.Len(t, out, 1, "stdout: %q", r.stdout)
	m := summaryRE.FindStringSubmatch(out[0])
	require.NotNil(t, m, "summary line: %q", out[0])
	require.Equal(t, fmt.Sprint(seeds), m[1], "seeds= in %q", out[0])
	require.Equal(t, "0", m[2], "violations= in %q", out[0])
	return m[3]
}

// TestSummaryLine: the one summary line of sweeps (TestSeedReplays checks
// it for --seed and a two-seed sweep).
func TestSummaryLine(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		seeds int
	}{
		{[]string{"--seeds", "1", "--first", "5", "--parallel", "1"}, 1}, // a seed without keyless peers: it passes against any engine
		{[]string{"--seeds", "1", "--first", "3", "--scenario", "slot-flood"}, 1},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			summary(t, flareSim(t, tc.args...), tc.seeds)
		})
	}
}

// TestSeedReplays: a seed gives the same trace hash every time, another
// seed another one, and a sweep's trace hashes its seeds' trace hashes in
// order.
func TestSeedReplays(t *testing.T) {
	a := summary(t, flareSim(t, "--seed", "1"), 1)
	require.Equal(t, a, summary(t, flareSim(t, "--seed", "1"), 1))
	b := summary(t, flareSim(t, "--seed", "2"), 1)
	require.NotEqual(t, a, b)

	h, _ := blake2b.New256(nil)
	for _, s := range []string{a, b} {
		raw, err := hex.DecodeString(s)
		require.NoError(t, err)
		h.Write(raw)
	}
	sweep := summary(t, flareSim(t, "--seeds", "2", "--first", "1", "--parallel", "2"), 2)
	require.Equal(t, hex.EncodeToString(h.Sum(nil)), sweep)
}

// TestBadFlags: bad values and combinations exit 2 with one "Error:" line
// on stderr and nothing on stdout, before anything runs.
func TestBadFlags(t *testing.T) {
	defer func(d time.Duration) { timeout = d }(timeout)
	timeout = 10 * time.Second
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--parallel", "0"}, "--parallel"},
		{[]string{"--parallel", "-1"}, "--parallel"},
		{[]string{"--mutants", "--parallel", "0"}, "--parallel"},  // looped forever
		{[]string{"--mutants", "--parallel", "-3"}, "--parallel"}, // panicked
		{[]string{"--parallel", "100000"}, "--parallel"},
		{[]string{"--seeds", "-1"}, "--seeds"},
		{[]string{"--seeds", "0"}, "--seeds"},
		{[]string{"--seeds", "1000001"}, "--seeds"},
		{[]string{"--seeds", "x"}, "-seeds"},
		{[]string{"--first", "0"}, "--first"},
		{[]string{"--first", "-1"}, "-first"},
		{[]string{"--first", "18446744073709551615", "--seeds", "2"}, "largest seed"},
		{[]string{"--seed", "0"}, "--seed"},
		{[]string{"--seed", "-1"}, "-seed"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--seeds", "1", "extra"}, "extra"},
		{[]string{"--scenario", "nope"}, "nope"},
		{[]string{"--mutant", "nope"}, "nope"},
		{[]string{"--seed", "1", "--mutants"}, "exclude"},
		{[]string{"--seed", "1", "--scenarios"}, "exclude"},
		{[]string{"--scenarios", "--mutants"}, "exclude"},
		{[]string{"--seed", "1", "--seeds", "2"}, "--seed"},
		{[]string{"--seed", "1", "--first", "2"}, "--seed"},
		{[]string{"--scenarios", "--scenario", "slot-flood"}, "--scenario"},
		{[]string{"--mutants", "--scenario", "slot-flood"}, "--scenario"},
		{[]string{"--trace", "t.txt"}, "--trace"},
		{[]string{"--seeds", "1", "--logs"}, "--logs"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := flareSim(t, tc.args...)
			require.Equal(t, 2, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			require.Empty(t, r.stdout)
			errs := lines(r.stderr)
			require.Len(t, errs, 1, "stderr: %q", r.stderr)
			require.True(t, strings.HasPrefix(errs[0], "Error: "), "stderr: %q", r.stderr)
			require.Contains(t, errs[0], tc.want)
		})
	}
}

// TestHelp: --help lists the flags on stdout and exits 0; every flag is
// documented in docs/simulation.md and in the scripts/sim.sh header.
func TestHelp(t *testing.T) {
	r := flareSim(t, "--help")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	require.Empty(t, r.stderr)
	flags := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(r.stdout, -1)
	require.Len(t, flags, 10, "flags in --help: %q", r.stdout)
	for _, doc := range []string{"../../../../docs/simulation.md", "../../../../scripts/sim.sh"} {
		text, err := os.ReadFile(doc)
		require.NoError(t, err)
		for _, f := range flags {
			require.Contains(t, string(text), "--"+f[1], "%s documents --%s", doc, f[1])
		}
	}
}

var (
	caughtRE  = regexp.MustCompile(`^mutant ([a-z-]+): caught by seed (\d+) \(scenario ([a-z-]+)\): (.+)$`)
	replayRE  = regexp.MustCompile(`^  replay: scripts/sim\.sh (--seed \d+(?: --scenario [a-z-]+)?(?: --mutant [a-z-]+)?) --trace /tmp/flare-sim\.trace$`)
	mutantsRE = regexp.MustCompile(`^mutants: caught=1/1 wall=\d+\.\d\ds$`)
)

// TestMutants: --mutants --mutant NAME hunts one mutant (one caught by a
// random seed, one by its named scenario) and prints its catch, a replay
// line and "mutants: caught=1/1 wall=...s", no "sim:" line; the replay
// line reproduces the violation and writes the trace.
func TestMutants(t *testing.T) {
	for _, name := range []string{"quorum-one-short", "no-conflict-alarm"} {
		t.Run(name, func(t *testing.T) {
			r := flareSim(t, "--mutants", "--mutant", name, "--seeds", "4", "--parallel", "2")
			require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			require.Empty(t, r.stderr)
			out := lines(r.stdout)
			require.Len(t, out, 3, "stdout: %q", r.stdout)
			c := caughtRE.FindStringSubmatch(out[0])
			require.NotNil(t, c, "catch line: %q", out[0])
			require.Equal(t, name, c[1])
			rp := replayRE.FindStringSubmatch(out[1])
			require.NotNil(t, rp, "replay line: %q", out[1])
			require.Regexp(t, mutantsRE, out[2])

			// The replay: the same violation, exit 1, the trace written
			// (relative to the working directory).
			dir := t.TempDir()
			args := append(strings.Fields(rp[1]), "--trace", "replay.trace")
			r = runIn(t, dir, binPath, args...)
			require.Equal(t, 1, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			require.Empty(t, r.stderr)
			out = lines(r.stdout)
			require.GreaterOrEqual(t, len(out), 3, "stdout: %q", r.stdout)
			want := fmt.Sprintf("violation: seed=%s scenario=%s step ", c[2], c[3])
			require.True(t, strings.HasPrefix(out[0], want), "violation line %q, want prefix %q", out[0], want)
			require.True(t, strings.HasSuffix(out[0], ": "+c[4]), "violation line %q, want %q", out[0], c[4])
			require.Equal(t, out[1], "  replay: scripts/sim.sh "+rp[1]+" --trace /tmp/flare-sim.trace")
			require.Regexp(t, `^sim: seeds=1 violations=[1-9]\d* handoff_stalls=\d+ steps=\d+ `, out[len(out)-1])
			info, err := os.Stat(filepath.Join(dir, "replay.trace"))
			require.NoError(t, err)
			require.NotZero(t, info.Size())
		})
	}
}

// TestTrace: --trace FILE writes the seed's trace, relative to the working
// directory, and does not change the trace hash.
func TestTrace(t *testing.T) {
	dir := t.TempDir()
	hash := summary(t, runIn(t, dir, binPath, "--seed", "1", "--trace", "t.txt"), 1)
	require.Equal(t, hash, summary(t, flareSim(t, "--seed", "1"), 1))
	data, err := os.ReadFile(filepath.Join(dir, "t.txt"))
	require.NoError(t, err)
	tr := lines(string(data))
	require.Greater(t, len(tr), 10)
	require.Regexp(t, `^ +0s seed=1 scenario=random `, tr[0])

	r := flareSim(t, "--seed", "1", "--trace", filepath.Join(dir, "no-such-dir", "t.txt"))
	require.Equal(t, 2, r.code)
	require.Empty(t, r.stdout)
	require.Len(t, lines(r.stderr), 1)
	require.True(t, strings.HasPrefix(r.stderr, "Error: "), "stderr: %q", r.stderr)
}

// TestScriptKeepsCallersDirectory: scripts/sim.sh runs flare-sim in the
// caller's directory, so a relative --trace lands there.
func TestScriptKeepsCallersDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds flare-sim again through scripts/sim.sh")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script, err := filepath.Abs("../../../../scripts/sim.sh")
	require.NoError(t, err)
	dir := t.TempDir()
	summary(t, runIn(t, dir, bash, script, "--seed", "1", "--trace", "rel.trace"), 1)
	_, err = os.Stat(filepath.Join(dir, "rel.trace"))
	require.NoError(t, err)
}

package integration

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
)

// The crash/corruption campaign (issue 7) runs only with
// FLARE_CRASH_CAMPAIGN=1, normally through scripts/crash-campaign.sh:
//
//   - TestCrashCampaign: FLARE_CAMPAIGN_CYCLES (default 100) cycles of a
//     validator of a fast dev chain on one base path, each stopped at a
//     random moment (0-3 s after the process start, so some land in the
//     start-up) with kill -9, every tenth with SIGINT. Every restart must
//     restore a finalized checkpoint at or above the last one logged before,
//     and the votes of all runs together must hold no conflict.
//   - TestFaultProbes: one database file of a stopped (or killed) validator
//     is damaged, the node is started on it, and what it does is recorded:
//     exit code, first Error line, verdict. The table goes to
//     FLARE_CAMPAIGN_OUT/probes.md.
//
// As root, the node runs as nobody (uid 65534), so that permission damage
// means something.
const campaignEnv = "FLARE_CRASH_CAMPAIGN"

const campaignNobody = 65534

// campaign is the environment of both campaign tests.
type campaign struct {
	t    *testing.T
	dir  string // reachable by the node's user
	bin  string
	spec string
	key  string
	out  string
	cred *syscall.Credential
}

func newCampaign(t *testing.T) *campaign {
	t.Helper()
	if os.Getenv(campaignEnv) != "1" {
		t.Skip("crash/corruption campaign: set " + campaignEnv + "=1 (scripts/crash-campaign.sh)")
	}
	dir, err := os.MkdirTemp("", "flare-campaign-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	c := &campaign{t: t, dir: dir, out: os.Getenv("FLARE_CAMPAIGN_OUT")}
	if c.out == "" {
		c.out = filepath.Join(dir, "out")
	}
	require.NoError(t, os.MkdirAll(c.out, 0o755))
	if os.Geteuid() == 0 {
		c.cred = &syscall.Credential{Uid: campaignNobody, Gid: campaignNobody}
	}
	c.bin = filepath.Join(dir, "flare-node")
	data, err := os.ReadFile(binPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(c.bin, data, 0o755))

	spec, err := chainspec.Builtin("dev")
	require.NoError(t, err)
	spec.Name, spec.ID, spec.SlotDurationMs, spec.CheckpointInterval = "campaign", "campaign", 100, 2
	b, err := json.Marshal(spec)
	require.NoError(t, err)
	c.spec = filepath.Join(dir, "spec.json")
	require.NoError(t, os.WriteFile(c.spec, b, 0o644))
	alice, err := chainspec.DevKey("alice")
	require.NoError(t, err)
	c.key = filepath.Join(dir, "alice.key")
	require.NoError(t, os.WriteFile(c.key, []byte(hex.EncodeToString(alice.Seed())+"\n"), 0o600))
	c.chown(c.key)
	return c
}

func (c *campaign) chown(p string) {
	if c.cred != nil {
		require.NoError(c.t, os.Lchown(p, campaignNobody, campaignNobody))
	}
}

// newBase returns a fresh base path owned by the node's user.
func (c *campaign) newBase(name string) string {
	p := filepath.Join(c.dir, name)
	require.NoError(c.t, os.Mkdir(p, 0o755))
	c.chown(p)
	return p
}

// start starts the validator on base with JSON logs (stderr merged).
func (c *campaign) start(name, base string) *proc {
	c.t.Helper()
	cmd := exec.Command(c.bin, "--chain", c.spec, "--key-file", c.key, "--enable-asf", "--base-path", base,
		"--listen-addr", "/ip4/127.0.0.1/tcp/0", "--log-format", "json")
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "HOME="+c.dir)
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	return startCmd(c.t, name, cmd)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// maxFinality is the highest "FINALITY ADVANCED: checkpoint=N" p logged.
func maxFinality(t *testing.T, p *proc) uint64 {
	var m uint64
	for _, l := range p.all(reFinality) {
		m = max(m, number(t, l.Msg))
	}
	return m
}

// restoredFinality is N of "Checkpoint state restored successfully:
// last_finalized=N", if p logged it.
func restoredFinality(t *testing.T, p *proc) (uint64, bool) {
	ls := p.all(reRestored)
	if len(ls) == 0 {
		return 0, false
	}
	return number(t, ls[0].Msg), true
}

// conflicts lists the slashable pairs among votes (as requireNoConflicts
// checks them), without failing.
func conflicts(votes []ownVote) []string {
	var out []string
	byTarget := map[uint64]ownVote{}
	for _, v := range votes {
		if prev, ok := byTarget[v.target]; ok && prev != v {
			out = append(out, fmt.Sprintf("double vote for %d: %d->%d(%s) and %d->%d(%s)", v.target, prev.source, prev.target, prev.hash, v.source, v.target, v.hash))
		}
		byTarget[v.target] = v
	}
	for _, a := range votes {
		for _, b := range votes {
			if a.source < b.source && b.target < a.target {
				out = append(out, fmt.Sprintf("surround vote: %d->%d surrounds %d->%d", a.source, a.target, b.source, b.target))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestCrashCampaign: random kill -9 (and some SIGINT) cycles of one
// validator: restored finality is never below the last logged one, and no
// vote of any run conflicts with another.
func TestCrashCampaign(t *testing.T) {
	c := newCampaign(t)
	cycles := envInt("FLARE_CAMPAIGN_CYCLES", 100)
	seed := uint64(envInt("FLARE_CAMPAIGN_SEED", 1))
	rng := rand.New(rand.NewPCG(seed, seed))
	base := c.newBase("crash")
	var (
		votes                          []ownVote
		logged                         uint64 // highest finality logged by any run so far
		kills, sigints, beforeRestore  int
		minMargin, maxMargin, restores = uint64(1 << 63), uint64(0), 0
	)
	start := time.Now()
	for i := range cycles {
		p := c.start(fmt.Sprintf("cycle %d", i), base)
		delay := time.Duration(rng.IntN(3000)) * time.Millisecond
		select {
		case <-p.done:
			t.Fatalf("cycle %d: the node exited by itself (%v); last lines:\n%s", i, p.err, p.tail(30))
		case <-time.After(delay): // the random moment of the crash is the point of the campaign
		}
		if i%10 == 9 {
			sigints++
			require.Equal(t, 0, p.stop(syscall.SIGINT, 30*time.Second), "cycle %d: SIGINT must exit 0; last lines:\n%s", i, p.tail(30))
		} else {
			kills++
			_ = p.stop(syscall.SIGKILL, 10*time.Second)
		}
		if r, ok := restoredFinality(t, p); ok {
			restores++
			require.GreaterOrEqual(t, r, logged, "cycle %d: restored finality %d below the %d logged before", i, r, logged)
			minMargin, maxMargin = min(minMargin, r-logged), max(maxMargin, r-logged)
		} else {
			beforeRestore++
		}
		logged = max(logged, maxFinality(t, p))
		votes = append(votes, ownVotes(t, p)...)
		if cs := conflicts(votes); len(cs) > 0 {
			t.Fatalf("cycle %d: conflicting votes: %s", i, strings.Join(cs, "; "))
		}
	}
	if restores == 0 {
		minMargin = 0
	}
	summary := fmt.Sprintf(`crash campaign: %d cycles (seed %d) in %s
  kill -9: %d, SIGINT: %d (all exited 0)
  stopped before the restore line (during start-up): %d
  restores: %d, every one at or above the last logged finality (margin %d..%d checkpoints)
  last logged finality: %d
  own votes released: %d, conflicting: 0
`, cycles, seed, time.Since(start).Round(time.Second), kills, sigints, beforeRestore, restores, minMargin, maxMargin, logged, len(votes))
	t.Log(summary)
	require.NoError(t, os.WriteFile(filepath.Join(c.out, "crash-summary.txt"), []byte(summary), 0o644))
}

// Damages applied by TestFaultProbes.
const (
	dmgTruncate   = "truncate"
	dmgBitFlip    = "bit flip"
	dmgDelete     = "delete"
	dmgZeroFill   = "zero-fill"
	dmgPermission = "permission"
)

var damages = []string{dmgTruncate, dmgBitFlip, dmgDelete, dmgZeroFill, dmgPermission}

// fileKind names a file (or directory) of a base path.
type fileKind struct {
	name string
	// find returns the path in base, "" if there is none.
	find func(t *testing.T, base string) string
	dir  bool // a directory: only delete and permission apply
}

func dbDir(base, db string) string { return filepath.Join(base, "chains", "campaign", "db", db) }

// newest returns the file of dir whose name matches re with the highest
// number (the first submatch), skipping empty files when nonEmpty.
func newest(t *testing.T, dir string, re *regexp.Regexp, nonEmpty bool) string {
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	best, bestN := "", -1
	for _, e := range entries {
		m := re.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		if nonEmpty {
			if fi, err := e.Info(); err != nil || fi.Size() == 0 {
				continue
			}
		}
		if n, _ := strconv.Atoi(m[1]); n > bestN {
			best, bestN = filepath.Join(dir, e.Name()), n
		}
	}
	return best
}

// currentManifest is the MANIFEST the marker file names.
func currentManifest(t *testing.T, dir string) string {
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "marker.manifest.") {
			parts := strings.SplitN(e.Name(), ".", 4)
			return filepath.Join(dir, parts[3])
		}
	}
	return ""
}

// largest returns the largest file of dir matching re.
func largest(t *testing.T, dir string, re *regexp.Regexp) string {
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	best, size := "", int64(-1)
	for _, e := range entries {
		if !re.MatchString(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Size() > size {
			best, size = filepath.Join(dir, e.Name()), fi.Size()
		}
	}
	return best
}

var (
	reWAL     = regexp.MustCompile(`^(\d+)\.log$`)
	reSST     = regexp.MustCompile(`^\d+\.sst$`)
	reOptions = regexp.MustCompile(`^OPTIONS-(\d+)$`)
)

func dbKinds(label, db string) []fileKind {
	return []fileKind{
		{name: label + " WAL", find: func(t *testing.T, base string) string { return newest(t, dbDir(base, db), reWAL, true) }},
		{name: label + " MANIFEST", find: func(t *testing.T, base string) string { return currentManifest(t, dbDir(base, db)) }},
		{name: label + " sstable", find: func(t *testing.T, base string) string { return largest(t, dbDir(base, db), reSST) }},
		{name: label + " OPTIONS", find: func(t *testing.T, base string) string { return newest(t, dbDir(base, db), reOptions, false) }},
		{name: label + " LOCK", find: func(t *testing.T, base string) string { return filepath.Join(dbDir(base, db), "LOCK") }},
		{name: label + " directory", find: func(t *testing.T, base string) string { return dbDir(base, db) }, dir: true},
	}
}

var probeKinds = append(append(dbKinds("chain DB", "chain"), dbKinds("checkpoint DB", "checkpoints")...),
	fileKind{name: "node key", find: func(t *testing.T, base string) string {
		return filepath.Join(base, "chains", "campaign", "network", "secret_ed25519")
	}})

// damage applies d to path; it reports "" or why d does not apply.
func damage(t *testing.T, path, d string, isDir bool) string {
	fi, err := os.Stat(path)
	require.NoError(t, err, path)
	if isDir && d != dmgDelete && d != dmgPermission {
		return "n/a (directory)"
	}
	if !isDir && fi.Size() == 0 && (d == dmgTruncate || d == dmgBitFlip || d == dmgZeroFill) {
		return "n/a (empty file)"
	}
	switch d {
	case dmgTruncate:
		require.NoError(t, os.Truncate(path, fi.Size()/2))
	case dmgBitFlip:
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		b[len(b)/2] ^= 0x10
		require.NoError(t, os.WriteFile(path, b, fi.Mode().Perm()))
	case dmgZeroFill:
		require.NoError(t, os.WriteFile(path, make([]byte, fi.Size()), fi.Mode().Perm()))
	case dmgDelete:
		require.NoError(t, os.RemoveAll(path))
	case dmgPermission:
		require.NoError(t, os.Chmod(path, 0))
	}
	return ""
}

// fixture is a base path of a validator that finalized, then ran again
// (so both databases have sstables: Pebble flushes the replayed WAL at
// open), and was stopped with SIGINT or kill -9.
type fixture struct {
	name   string
	base   string
	logged uint64 // highest finality logged
	votes  []ownVote
}

func (c *campaign) makeFixture(name string, kill bool) fixture {
	t := c.t
	f := fixture{name: name, base: c.newBase("fixture-" + strings.ReplaceAll(name, " ", "-"))}
	for run := range 2 {
		p := c.start(fmt.Sprintf("%s run %d", name, run), f.base)
		from := 0
		for target := f.logged + 3; f.logged < target; {
			l, i := p.waitLog(reFinality, from, 60*time.Second)
			f.logged, from = max(f.logged, number(t, l.Msg)), i+1
		}
		if kill && run == 1 {
			_ = p.stop(syscall.SIGKILL, 10*time.Second)
		} else {
			require.Equal(t, 0, p.stop(syscall.SIGINT, 30*time.Second))
		}
		f.logged = max(f.logged, maxFinality(t, p))
		f.votes = append(f.votes, ownVotes(t, p)...)
	}
	require.Empty(t, conflicts(f.votes))
	return f
}

// probeResult is one row of the probe table.
type probeResult struct {
	fixture, file, damage string
	exit                  string
	errLine               string
	verdict               string
}

// probeWait bounds how long a started node gets to show progress.
const probeWait = 10 * time.Second

// probe damages one file of a copy of f and starts the node on it.
func (c *campaign) probe(f fixture, k fileKind, d string, idx int) probeResult {
	t := c.t
	res := probeResult{fixture: f.name, file: k.name, damage: d}
	base := filepath.Join(c.dir, fmt.Sprintf("probe-%03d", idx))
	require.NoError(t, exec.Command("cp", "-a", f.base, base).Run())
	defer os.RemoveAll(base)
	path := k.find(t, base)
	if path == "" {
		res.exit, res.verdict = "-", "n/a (no such file)"
		return res
	}
	if why := damage(t, path, d, k.dir); why != "" {
		res.exit, res.verdict = "-", why
		return res
	}
	p := c.start(fmt.Sprintf("probe %d", idx), base)
	deadline := time.After(probeWait)
	progressed, signalled := false, false
	var restored uint64
	hasRestored := false
wait:
	for from := 0; ; {
		p.mu.Lock()
		lines := p.lines[from:]
		cond := p.cond
		p.mu.Unlock()
		for _, l := range lines {
			from++
			if reRestored.MatchString(l.Msg) {
				restored, hasRestored = number(t, l.Msg), true
			}
			if reFinality.MatchString(l.Msg) && hasRestored && number(t, l.Msg) > max(restored, f.logged) {
				progressed = true
				break wait
			}
		}
		select {
		case <-cond:
		case <-p.done:
			break wait
		case <-deadline:
			break wait
		}
	}
	select {
	case <-p.done:
	default:
		signalled = true
		code := p.stop(syscall.SIGINT, 30*time.Second)
		_ = code
	}
	res.exit = strconv.Itoa(p.cmd.ProcessState.ExitCode())
	for _, l := range p.all(regexp.MustCompile(`^Error: `)) {
		res.errLine = strings.ReplaceAll(l.Msg, base, "BASE")
		break
	}
	if r, ok := restoredFinality(t, p); ok {
		restored, hasRestored = r, true
	}
	cs := conflicts(append(slices.Clone(f.votes), ownVotes(t, p)...))
	switch {
	case len(cs) > 0:
		res.verdict = "CONFLICTING VOTE: " + cs[0]
	case !signalled && res.exit != "0":
		res.verdict = "refused"
		if res.errLine == "" {
			res.verdict = "exited without an Error line"
		}
	case !signalled:
		res.verdict = "exited 0 by itself"
	case progressed && restored >= f.logged:
		res.verdict = fmt.Sprintf("ran: restored %d >= logged %d, finalized further", restored, f.logged)
	case progressed:
		res.verdict = fmt.Sprintf("FINALITY LOST: restored %d < logged %d, then finalized again", restored, f.logged)
	case hasRestored:
		res.verdict = fmt.Sprintf("ran: restored %d (logged %d), no finality progress in %s", restored, f.logged, probeWait)
	default:
		res.verdict = fmt.Sprintf("no restore and no exit in %s (stopped by SIGINT)", probeWait)
	}
	if signalled {
		res.exit += " (after SIGINT)"
	}
	return res
}

// TestFaultProbes damages each file kind in each way and records what the
// node does; the table is written to FLARE_CAMPAIGN_OUT/probes.md.
func TestFaultProbes(t *testing.T) {
	c := newCampaign(t)
	fixtures := []fixture{c.makeFixture("stopped", false), c.makeFixture("killed", true)}
	var rows []probeResult
	idx := 0
	for _, f := range fixtures {
		for _, k := range probeKinds {
			for _, d := range damages {
				idx++
				r := c.probe(f, k, d, idx)
				t.Logf("%-8s %-24s %-10s exit %-16s %s | %s", r.fixture, r.file, r.damage, r.exit, r.verdict, r.errLine)
				rows = append(rows, r)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| fixture | file | damage | exit | first `Error:` line | verdict |\n|---|---|---|---|---|---|\n")
	esc := func(s string) string {
		s = strings.ReplaceAll(s, "|", `\|`)
		if len(s) > 220 {
			s = s[:220] + "…"
		}
		return s
	}
	for _, r := range rows {
		e := "–"
		if r.errLine != "" {
			e = "`" + esc(r.errLine) + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.fixture, r.file, r.damage, r.exit, e, esc(r.verdict))
	}
	require.NoError(t, os.WriteFile(filepath.Join(c.out, "probes.md"), []byte(b.String()), 0o644))
	for _, r := range rows {
		require.NotContains(t, r.verdict, "no restore and no exit", "%s %s %s: a hang", r.fixture, r.file, r.damage)
		require.NotContains(t, r.verdict, "without an Error line", "%s %s %s", r.fixture, r.file, r.damage)
	}
}

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
)

// fastDevSpec writes the builtin single-validator dev chain with short slots.
func fastDevSpec(t *testing.T, slotMs, interval uint64) string {
	t.Helper()
	spec, err := chainspec.Builtin("dev")
	require.NoError(t, err)
	spec.Name, spec.ID = "fast-dev", "fast_dev"
	spec.SlotDurationMs, spec.CheckpointInterval = slotMs, interval
	b, err := json.MarshalIndent(spec, "", "  ")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "fast-dev.json")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// devValidator is a single-validator node of a fast dev chain, run and
// stopped repeatedly on one base path; every vote it releases is kept.
type devValidator struct {
	t        *testing.T
	spec     string
	base     string
	runs     int
	votes    []ownVote
	lastSeen uint64 // highest FINALITY ADVANCED ever logged
}

func newDevValidator(t *testing.T) *devValidator {
	return &devValidator{t: t, spec: fastDevSpec(t, 100, 2), base: t.TempDir()}
}

func (d *devValidator) args(extra ...string) []string {
	return append([]string{"--chain", d.spec, "--alice", "--enable-asf", "--base-path", d.base, "--port", "0"}, extra...)
}

func (d *devValidator) start(extra ...string) *proc {
	d.runs++
	return startNode(d.t, fmt.Sprintf("dev#%d", d.runs), d.args(extra...)...)
}

// runUntil starts the node and waits until it logged finality >= target
// (and, with vote, released at least one new vote), then stops it with sig.
func (d *devValidator) runUntil(target uint64, sig syscall.Signal, timeout time.Duration, extra ...string) {
	d.t.Helper()
	p := d.start(extra...)
	waitFinality(d.t, p, target, timeout)
	d.stop(p, sig)
}

// waitFinality waits until p logged FINALITY ADVANCED at or above target.
func waitFinality(t *testing.T, p *proc, target uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	from := 0
	for {
		l, i := p.waitLog(reFinality, from, time.Until(deadline))
		if number(t, l.Msg) >= target {
			return
		}
		from = i + 1
	}
}

func (d *devValidator) stop(p *proc, sig syscall.Signal) {
	d.t.Helper()
	code := p.stop(sig, 20*time.Second)
	if sig == syscall.SIGINT {
		require.Equal(d.t, 0, code, "SIGINT exit:\n%s", p.tail(10))
	}
	d.votes = append(d.votes, ownVotes(d.t, p)...)
	for _, l := range p.all(reFinality) {
		d.lastSeen = max(d.lastSeen, number(d.t, l.Msg))
	}
	requireNoConflicts(d.t, d.votes)
}

func (d *devValidator) checkpointsDir() string {
	return filepath.Join(d.base, "chains", "fast_dev", "db", "checkpoints")
}

func (d *devValidator) chainDir() string {
	return filepath.Join(d.base, "chains", "fast_dev", "db", "chain")
}

// TestLostCheckpointDatabaseNeverConflicts: a dev validator that reached
// finality 6 loses its checkpoint database (the operator deletes the
// directory, after a clean stop and after a kill -9). It must never sign a
// vote that conflicts with its earlier ones: with the high-water mark next
// to the directory it resumes from the watermarks (and the chain
// database's finality proof) and votes again; with the record gone
// entirely, it refuses to start with one Error line; after an export,
// delete and import it votes again within a minute.
func TestLostCheckpointDatabaseNeverConflicts(t *testing.T) {
	d := newDevValidator(t)
	d.runUntil(6, syscall.SIGINT, 60*time.Second)
	votesBefore := len(d.votes)

	// 1. The checkpoint database directory is deleted (the high-water mark
	//    next to it survives): the node resumes and votes again, above its
	//    earlier votes.
	require.NoError(t, os.RemoveAll(d.checkpointsDir()))
	d.runUntil(d.lastSeen+3, syscall.SIGKILL, 60*time.Second)
	require.Greater(t, len(d.votes), votesBefore, "it votes again")

	// 2. Lost after a kill -9, once more.
	require.NoError(t, os.RemoveAll(d.checkpointsDir()))
	votesBefore = len(d.votes)
	d.runUntil(d.lastSeen+3, syscall.SIGINT, 60*time.Second)
	require.Greater(t, len(d.votes), votesBefore)

	// 3. The record is gone entirely (database and high-water mark) next to
	//    an existing chain database: refused, one Error line, exit 2.
	backup := filepath.Join(t.TempDir(), "signer.json")
	out, errOut, code := runCLI(t, "signer", "export", "--out", backup, "--chain", d.spec, "--base-path", d.base)
	require.Equal(t, 0, code, "export: %s %s", out, errOut)
	require.NoError(t, os.RemoveAll(d.checkpointsDir()))
	require.NoError(t, os.Remove(d.checkpointsDir()+".hwm"))
	p := d.start()
	require.Equal(t, 2, p.wait(20*time.Second), "a validator without its record must refuse to start:\n%s", p.tail(5))
	errLines := 0
	for _, l := range p.all(regexp.MustCompile(`.`)) {
		if strings.HasPrefix(l.Raw, "Error: ") {
			errLines++
			require.Contains(t, l.Raw, "signer record is missing")
			require.Contains(t, l.Raw, "signer import")
		}
	}
	require.Equal(t, 1, errLines)
	require.Empty(t, ownVotes(t, p))
	_, err := os.Stat(d.checkpointsDir())
	require.ErrorIs(t, err, os.ErrNotExist, "the refused start creates no checkpoint database")

	// 4. Import the export: the node votes again within a minute, without
	//    any conflict across all runs.
	out, errOut, code = runCLI(t, "signer", "import", backup, "--chain", d.spec, "--base-path", d.base)
	require.Equal(t, 0, code, "import: %s %s", out, errOut)
	votesBefore = len(d.votes)
	start := time.Now()
	p = d.start()
	_, _ = p.waitLog(reOwnVote, 0, 60*time.Second)
	t.Logf("after import: first vote %s after the start", time.Since(start).Round(time.Millisecond))
	d.stop(p, syscall.SIGINT)
	require.Greater(t, len(d.votes), votesBefore, "it votes again after the import")
}

// TestChainDatabaseLostAloneRefuses: a lone validator whose chain database
// lost the finalized checkpoint the checkpoint database holds never authors
// or votes on a chain without it: no peer can provide the blocks, so it
// refuses to start with one Error line that says what to do.
func TestChainDatabaseLostAloneRefuses(t *testing.T) {
	d := newDevValidator(t)
	d.runUntil(4, syscall.SIGINT, 60*time.Second)
	require.NoError(t, os.RemoveAll(d.chainDir()))
	p := d.start()
	require.Equal(t, 2, p.wait(20*time.Second), "%s", p.tail(5))
	var errLine string
	for _, l := range p.all(regexp.MustCompile(`.`)) {
		if strings.HasPrefix(l.Raw, "Error: ") {
			errLine = l.Raw
		}
	}
	require.Regexp(t, regexp.MustCompile(`lacks the finalized checkpoint.*--bootnodes`), errLine)
	require.Empty(t, p.all(regexp.MustCompile(`^Authored block`)), "nothing authored on a chain without the finalized checkpoint")
	require.Empty(t, ownVotes(t, p))
}

// TestInitSignerRecord: a validator key starting on a base path used before
// (here by a full node) has no signer record there. It is refused without
// --init-signer-record, also when FLARE_INIT_SIGNER_RECORD is set (the
// declaration is a one-shot command-line decision: an environment line in a
// service file would otherwise apply it on every start, also after the
// record was lost). With the flag it creates a fresh record through the
// first-use procedure; a kill -9 during that procedure leaves the marker
// file, and the next start without the flag resumes it, votes and removes
// the marker; the start after that finds the record.
func TestInitSignerRecord(t *testing.T) {
	d := &devValidator{t: t, spec: fastDevSpec(t, 500, 2), base: t.TempDir()}
	marker := filepath.Join(d.base, "chains", "fast_dev", "signer-init.pending")
	reFresh := regexp.MustCompile(`^Fresh signer record`)
	reRunning := regexp.MustCompile(`^Idle|^Imported block|^Authored block|^Sync`)

	// A full node (no key) on the base path: chain database and node key.
	p := startNode(t, "full", "--chain", d.spec, "--enable-asf", "--base-path", d.base, "--port", "0")
	_, _ = p.waitLog(reOpened, 0, 20*time.Second)
	require.Equal(t, 0, p.stop(syscall.SIGINT, 20*time.Second), "%s", p.tail(5))

	refused := func(name string) {
		t.Helper()
		p := d.start()
		require.Equal(t, 2, p.wait(20*time.Second), "%s: %s", name, p.tail(5))
		require.NotEmpty(t, p.all(regexp.MustCompile(`^Error: .*signer record is missing.*--init-signer-record`)), "%s: %s", name, p.tail(3))
		require.Empty(t, ownVotes(t, p))
		_, err := os.Stat(marker)
		require.ErrorIs(t, err, os.ErrNotExist, "%s: no first use started", name)
	}
	refused("no flag")
	t.Setenv("FLARE_INIT_SIGNER_RECORD", "1")
	refused("environment variable only")
	require.NoError(t, os.Unsetenv("FLARE_INIT_SIGNER_RECORD"))

	// With the flag: the first use starts (marker written before the log
	// line); kill -9 while it listens.
	p = d.start("--init-signer-record")
	l, _ := p.waitLog(reFresh, 0, 20*time.Second)
	require.Contains(t, l.Raw, "--init-signer-record")
	_, err := os.Stat(marker)
	require.NoError(t, err, "the marker is written before the procedure starts")
	d.stop(p, syscall.SIGKILL)
	require.Empty(t, d.votes, "no vote while listening")

	// Without the flag: the interrupted first use resumes, then votes.
	p = d.start()
	l, _ = p.waitLog(reFresh, 0, 20*time.Second)
	require.Contains(t, l.Raw, "resuming an unfinished first use")
	_, _ = p.waitLog(reOwnVote, 0, 30*time.Second)
	waitFinality(t, p, 2, 30*time.Second)
	d.stop(p, syscall.SIGINT)
	_, err = os.Stat(marker)
	require.ErrorIs(t, err, os.ErrNotExist, "the marker is removed once the record is initialised")

	// The record exists now: a plain start votes without a first use.
	votes := len(d.votes)
	p = d.start()
	_, _ = p.waitLog(reOwnVote, 0, 30*time.Second)
	d.stop(p, syscall.SIGINT)
	require.Greater(t, len(d.votes), votes)
	require.Empty(t, p.all(reFresh), "the record was found")
	require.NotEmpty(t, p.all(reRunning))
}

package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
)

// startLimit is how long a refused or failing start may take before the
// test calls it a hang (issue 7: an Error line within 20 s).
const startLimit = 20 * time.Second

// privEnv runs the binary as an unprivileged user (nobody when the tests
// run as root, which ignores file modes) in a directory that user can
// reach: a copy of the binary and a base path owned by that user.
type privEnv struct {
	t    *testing.T
	dir  string
	bin  string
	base string
	env  []string
	// spec and key are a fast dev chain (100 ms slots, a checkpoint every
	// 2 blocks) and alice's key file, readable by the user.
	spec, key string
}

// fastChainID is the id of the fast dev chain of privEnv.
const fastChainID = "fast_dev"

const nobody = 65534

func newPrivEnv(t *testing.T) *privEnv {
	t.Helper()
	dir, err := os.MkdirTemp("", "flare-storage-test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	for p := filepath.Dir(dir); p != "/"; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s is not searchable by other users; cannot run the node unprivileged", p)
		}
	}
	bin := filepath.Join(dir, "flare-node")
	data, err := os.ReadFile(binPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, data, 0o755))
	e := &privEnv{t: t, dir: dir, bin: bin, base: filepath.Join(dir, "base")}
	e.mkdir(e.base)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLARE_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_") {
			e.env = append(e.env, kv)
		}
	}
	e.env = append(e.env, "HOME="+dir, "NO_COLOR=1")

	spec, err := chainspec.Builtin("dev")
	require.NoError(t, err)
	spec.Name, spec.ID, spec.SlotDurationMs, spec.CheckpointInterval = fastChainID, fastChainID, 100, 2
	b, err := json.Marshal(spec)
	require.NoError(t, err)
	e.spec = filepath.Join(dir, "spec.json")
	require.NoError(t, os.WriteFile(e.spec, b, 0o644))
	alice, err := chainspec.DevKey("alice")
	require.NoError(t, err)
	e.key = filepath.Join(dir, "alice.key")
	require.NoError(t, os.WriteFile(e.key, []byte(hex.EncodeToString(alice.Seed())+"\n"), 0o600))
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chown(e.key, nobody, nobody))
	}
	return e
}

// mkdir creates a directory owned by the unprivileged user.
func (e *privEnv) mkdir(p string) {
	e.t.Helper()
	require.NoError(e.t, os.MkdirAll(p, 0o755))
	if os.Geteuid() == 0 {
		require.NoError(e.t, os.Chown(p, nobody, nobody))
	}
}

func (e *privEnv) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env, cmd.Dir = e.env, e.dir
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	}
	return cmd
}

// run runs the binary to its exit (killed after startLimit: a hang).
func (e *privEnv) run(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startLimit)
	defer cancel()
	cmd := e.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(e.t, ctx.Err(), "the node did not exit within %v (a hang); stderr: %s\nlast stdout: %s", startLimit, stderr.String(), tail(stdout.String(), 2000))
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(e.t, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// start starts the node in the background (JSON logs).
func (e *privEnv) start(args ...string) *nodeProc {
	e.t.Helper()
	cmd := e.command(context.Background(), append(args, "--log-format", "json")...)
	p := &nodeProc{t: e.t, cmd: cmd, done: make(chan struct{}), added: make(chan struct{})}
	cmd.Stderr = &p.stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(e.t, err)
	require.NoError(e.t, cmd.Start())
	go p.read(stdout)
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// args are the arguments of a validator of the fast dev chain on base.
func (e *privEnv) args(base string, extra ...string) []string {
	return append([]string{"--chain", e.spec, "--key-file", e.key, "--enable-asf", "--base-path", base,
		"--listen-addr", "/ip4/127.0.0.1/tcp/0"}, extra...)
}

// requireOneErrorLine checks exit code and exactly one "Error: " line on
// stderr containing every string of contains.
func requireOneErrorLine(t *testing.T, r result, code int, contains ...string) {
	t.Helper()
	require.Equal(t, code, r.code, "stderr: %s\nstdout tail: %s", r.stderr, tail(r.stdout, 2000))
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	require.Len(t, lines, 1, "stderr: %q", r.stderr)
	require.True(t, strings.HasPrefix(lines[0], "Error: "), "stderr: %q", r.stderr)
	t.Log(lines[0])
	for _, c := range contains {
		require.Contains(t, lines[0], c)
	}
}

// runUntilVoted runs a dev validator on the base path until it voted, then
// stops it with SIGINT: the chain and checkpoint databases hold data in
// their WALs (Pebble does not flush at close), so the next open replays and
// flushes them.
func (e *privEnv) runUntilVoted(extra ...string) {
	e.t.Helper()
	p := e.start(e.args(e.base, extra...)...)
	p.waitLog("Voted for checkpoint")
	require.Equal(e.t, 0, p.stop(syscall.SIGINT))
}

func chainDir(base string) string { return filepath.Join(base, "chains", fastChainID, "db", "chain") }
func cpDir(base string) string {
	return filepath.Join(base, "chains", fastChainID, "db", "checkpoints")
}

// TestUnwritableChainDirectory: issue 7, observation 4. The chain database
// directory of an earlier run is not writable: exit 2 with one Error line
// naming permission denied (it used to hang inside the database open,
// ignoring the first SIGINT).
func TestUnwritableChainDirectory(t *testing.T) {
	e := newPrivEnv(t)
	e.runUntilVoted()
	require.NoError(t, os.Chmod(chainDir(e.base), 0o555))
	r := e.run(e.args(e.base)...)
	requireOneErrorLine(t, r, exitUsage, "permission denied", chainDir(e.base))
	require.NotContains(t, r.stderr, "in use")
}

// TestUnwritableBasePath: a base path that cannot be created is one Error
// line (not three run together), exit 2, and nothing is created.
func TestUnwritableBasePath(t *testing.T) {
	e := newPrivEnv(t)
	require.NoError(t, os.Chmod(e.base, 0o555))
	r := e.run(e.args(filepath.Join(e.base, "node"))...)
	requireOneErrorLine(t, r, exitUsage, "permission denied", "cannot write the node's data below base path "+filepath.Join(e.base, "node"))
	require.Equal(t, 1, strings.Count(r.stderr, "permission denied"), "one cause, said once: %s", r.stderr)
	_, err := os.Stat(filepath.Join(e.base, "node"))
	require.True(t, errors.Is(err, fs.ErrNotExist))
}

// TestReadOnlyDatabaseFiles: issue 7, observation 4. Read-only files in a
// database directory are a permission problem, not "in use by another
// flare-node process"; read-only data files other than LOCK are no
// problem at all (Pebble only reads them and writes new ones).
func TestReadOnlyDatabaseFiles(t *testing.T) {
	for _, dir := range []func(string) string{chainDir, cpDir} {
		e := newPrivEnv(t)
		e.runUntilVoted()
		entries, err := os.ReadDir(dir(e.base))
		require.NoError(t, err)
		for _, ent := range entries {
			require.NoError(t, os.Chmod(filepath.Join(dir(e.base), ent.Name()), 0o444))
		}
		r := e.run(e.args(e.base)...)
		requireOneErrorLine(t, r, exitUsage, "permission denied", filepath.Join(dir(e.base), "LOCK"))
		require.NotContains(t, r.stderr, "in use")

		// Only the data files read-only: the node starts and votes.
		require.NoError(t, os.Chmod(filepath.Join(dir(e.base), "LOCK"), 0o644))
		p := e.start(e.args(e.base)...)
		p.waitLog("Voted for checkpoint")
		require.Equal(t, 0, p.stop(syscall.SIGINT))
	}
}

// TestUnwritableHighWaterMark: a read-only checkpoints.hwm (or a read-only
// directory holding it) is refused at start like a read-only LOCK file:
// exit 2 with one Error line naming the file, before the node votes (it
// used to start and exit 1 at its first vote).
func TestUnwritableHighWaterMark(t *testing.T) {
	hwm := func(base string) string { return cpDir(base) + ".hwm" }
	for _, tt := range []struct {
		name  string
		chmod func(base string) string // makes something read-only, returns it
	}{
		{"read-only file", func(base string) string {
			require.NoError(t, os.Chmod(hwm(base), 0o444))
			return hwm(base)
		}},
		{"read-only directory", func(base string) string {
			dir := filepath.Dir(hwm(base))
			require.NoError(t, os.Chmod(dir, 0o555))
			return dir
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newPrivEnv(t)
			e.runUntilVoted()
			before, err := os.ReadFile(hwm(e.base))
			require.NoError(t, err)
			denied := tt.chmod(e.base)
			r := e.run(e.args(e.base)...)
			requireOneErrorLine(t, r, exitUsage, "permission denied", "cannot write the checkpoint database's high-water mark "+hwm(e.base), denied)
			require.NotContains(t, r.stdout, "Voted for checkpoint")
			require.NotContains(t, r.stdout, "Chain database opened", "refused before the databases open")
			after, err := os.ReadFile(hwm(e.base))
			require.NoError(t, err)
			require.Equal(t, before, after)
		})
	}
}

// TestMetricsListenerRefusedWritesNothing: issue 11. A metrics or RPC port
// in use and an invalid --metrics-addr are refused with exit 2 before the
// base path is created.
func TestMetricsListenerRefusedWritesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	for _, tt := range []struct{ name, flag, addr, says string }{
		{"port in use", "--metrics-addr", taken.Addr().String(), "address already in use"},
		{"invalid address", "--metrics-addr", "256.1.1.1:9615", "metrics listener 256.1.1.1:9615"},
		{"rpc port in use", "--rpc-addr", taken.Addr().String(), "rpc listener " + taken.Addr().String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			base := s.path("base")
			r := s.run("", nil, "--dev", "--enable-asf", "--base-path", base, "--listen-addr", "/ip4/127.0.0.1/tcp/0", tt.flag, tt.addr)
			requireOneErrorLine(t, r, exitUsage, tt.says)
			_, err := os.Stat(base)
			require.True(t, errors.Is(err, fs.ErrNotExist), "base path created")
		})
	}
}

// TestSIGINTDuringHangingStart: the first SIGINT stops a start whose
// database open hangs (the chain database's MANIFEST is a FIFO: Pebble's
// read of it blocks, as on a stalled disk or a hung network file system).
// The open is abandoned: exit 1 with one Error line saying so.
func TestSIGINTDuringHangingStart(t *testing.T) {
	e := newPrivEnv(t)
	e.runUntilVoted()
	entries, err := os.ReadDir(chainDir(e.base))
	require.NoError(t, err)
	var manifest string
	for _, ent := range entries {
		if strings.HasPrefix(ent.Name(), "MANIFEST-") {
			manifest = filepath.Join(chainDir(e.base), ent.Name())
		}
	}
	require.NotEmpty(t, manifest)
	require.NoError(t, os.Remove(manifest))
	require.NoError(t, syscall.Mkfifo(manifest, 0o644))

	p := e.start(e.args(e.base)...)
	// Opening the FIFO for writing without blocking succeeds once the node
	// has it open for reading; the node then blocks reading it.
	var w *os.File
	deadline := time.Now().Add(startLimit)
	for {
		if w, err = os.OpenFile(manifest, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "the node never opened the MANIFEST")
		time.Sleep(5 * time.Millisecond) // polling an external process
	}
	defer w.Close()
	code := p.stop(syscall.SIGINT)
	require.Equal(t, exitFailure, code, "stderr: %s", p.stderr.String())
	lines := strings.Split(strings.TrimRight(p.stderr.String(), "\n"), "\n")
	require.Len(t, lines, 1)
	require.Contains(t, lines[0], "Error: ")
	require.Contains(t, lines[0], "open chain database")
	require.Contains(t, lines[0], "abandoned")
	p.waitLog("Received signal, shutting down")
	for _, l := range p.lines {
		require.NotEqual(t, "Received a second signal, exiting immediately", l["msg"], "one signal is enough")
	}
}

// tmpfs mounts a small tmpfs (root only) and unmounts it at cleanup.
func tmpfs(t *testing.T, e *privEnv, sizeMiB int) string {
	t.Helper()
	dir := filepath.Join(e.dir, "fs")
	require.NoError(t, os.Mkdir(dir, 0o755))
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%dm,mode=0755,uid=%d,gid=%d", sizeMiB, nobody, nobody)); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes zeros into a file on dir until the file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "fill"))
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return
		}
	}
}

// TestDiskFullAtStart: issue 7, observation 5. A full disk at start ends in
// one Error line and exit 1 within seconds, without a log flood: the
// free-space check refuses it first (--min-free-disk), and with the check
// off the databases' failing flushes end the open.
func TestDiskFullAtStart(t *testing.T) {
	e := newPrivEnv(t)
	dir := tmpfs(t, e, 32)
	base := filepath.Join(dir, "base")
	e.base = base
	e.mkdir(base)
	e.runUntilVoted("--min-free-disk", "0")
	fill(t, dir)

	r := e.run(e.args(base)...)
	requireOneErrorLine(t, r, exitFailure, "not enough free disk space", "--min-free-disk 256")

	r = e.run(e.args(base, "--min-free-disk", "0")...)
	requireOneErrorLine(t, r, exitFailure, "no space left on device")
	require.Less(t, strings.Count(r.stdout, "ERROR"), 30, "no log flood:\n%s", tail(r.stdout, 3000))
}

// TestDiskFullWhileRunning: issue 7, observation 5. The disk fills while
// the validator runs (it used to keep finalizing and exit 0): the
// free-space watchdog stops it at once; with the watchdog off, the first
// database write that fails stops it (Pebble preallocates WAL space, so on a
// larger disk that comes later), and a stop on the full disk fails to close
// the databases cleanly. Each ends with exit 1 and one Error line.
func TestDiskFullWhileRunning(t *testing.T) {
	for _, tt := range []struct {
		name    string
		sizeMiB int
		minFree string
		signal  bool // stop with SIGINT after the disk is full
		says    []string
	}{
		{"watchdog", 48, "12", false, []string{"not enough free disk space", "--min-free-disk 12"}},
		{"database write", 8, "0", false, []string{"no space left on device"}},
		{"stopped on a full disk", 48, "0", true, []string{"no space left on device"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newPrivEnv(t)
			dir := tmpfs(t, e, tt.sizeMiB)
			e.base = filepath.Join(dir, "base")
			e.mkdir(e.base)
			p := e.start(e.args(e.base, "--min-free-disk", tt.minFree)...)
			p.waitLog("FINALITY ADVANCED")
			fill(t, dir)
			if tt.signal {
				require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
			}
			select {
			case <-p.done:
			case <-time.After(startLimit + 10*time.Second):
				t.Fatalf("the node kept running on a full disk")
			}
			require.Equal(t, exitFailure, p.cmd.ProcessState.ExitCode(), "stderr: %s", p.stderr.String())
			lines := strings.Split(strings.TrimRight(p.stderr.String(), "\n"), "\n")
			require.Len(t, lines, 1, "stderr: %q", p.stderr.String())
			require.True(t, strings.HasPrefix(lines[0], "Error: "))
			t.Log(lines[0])
			for _, s := range tt.says {
				require.Contains(t, lines[0], s)
			}
		})
	}
}

// TestSIGINTDuringStartExitsZero: the first SIGINT during an ordinary start
// (the opens finish within storagefault.CancelGrace) is a clean stop:
// exit 0, nothing on stderr.
func TestSIGINTDuringStartExitsZero(t *testing.T) {
	e := newPrivEnv(t)
	e.runUntilVoted()
	p := e.start(e.args(e.base)...)
	p.waitLog("Base path: ")
	require.Equal(t, 0, p.stop(syscall.SIGINT), "stderr: %s", p.stderr.String())
	require.Empty(t, p.stderr.String())
}

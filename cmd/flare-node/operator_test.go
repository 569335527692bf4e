package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/config"
)

// readPID reads a pid file.
func readPID(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(string(data), "\n"), "%q", data)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	require.NoError(t, err)
	return pid
}

// TestPIDFile: the README's kill -9 recipe. The pid file holds the node's
// process id once it runs, is removed at a clean exit, survives a kill -9
// and is replaced by the next start; a second node refused on the same base
// path leaves the running node's pid file alone.
func TestPIDFile(t *testing.T) {
	s := newSandbox(t)
	base, pidPath := s.path("base"), s.path("flare.pid")
	args := []string{"--dev", "--enable-asf", "--base-path", base, "--listen-addr", "/ip4/127.0.0.1/tcp/0", "--pid-file", pidPath}

	p := startNode(t, s, args...)
	first := p.waitLog("FlareChain node")
	require.Equal(t, float64(p.cmd.Process.Pid), first["pid"], "the first log line names the pid")
	l := p.waitLog("PID file written")
	require.Equal(t, pidPath, l["path"])
	require.Equal(t, p.cmd.Process.Pid, readPID(t, pidPath))

	r := s.run("", nil, args...)
	requireStartupRefusal(t, r, "in use by another flare-node process")
	require.Equal(t, p.cmd.Process.Pid, readPID(t, pidPath), "a refused start leaves the pid file alone")

	require.Equal(t, 0, p.stop(syscall.SIGINT))
	_, err := os.Stat(pidPath)
	require.True(t, os.IsNotExist(err), "removed at a clean exit")

	p = startNode(t, s, args...)
	p.waitLog("PID file written")
	pid := readPID(t, pidPath)
	require.Equal(t, p.cmd.Process.Pid, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL)) // kill -9 $(cat flare.pid)
	<-p.done
	require.Equal(t, pid, readPID(t, pidPath), "a kill -9 leaves the pid file")

	p = startNode(t, s, args...)
	p.waitLog("PID file written")
	require.Equal(t, p.cmd.Process.Pid, readPID(t, pidPath), "the next start replaces it")
	require.Equal(t, 0, p.stop(syscall.SIGTERM))
}

// TestOutputFileRefusals: a pid or log file the node cannot write is
// refused before anything is created (exit 2, one Error line).
func TestOutputFileRefusals(t *testing.T) {
	for _, flag := range []string{"--pid-file", "--log-file"} {
		for _, tt := range []struct{ name, path, says string }{
			{"missing directory", "nodir/f", "directory " + "nodir" + " does not exist; create it first"},
			{"a directory", "adir", "exists and is not a regular file"},
			{"parent is a file", "afile/f", "is not a directory"},
		} {
			t.Run(flag+" "+tt.name, func(t *testing.T) {
				s := newSandbox(t)
				require.NoError(t, os.Mkdir(s.path("adir"), 0o755))
				s.write("afile", "x", 0o644)
				before := s.listing()
				r := s.run("", nil, "--dev", "--base-path", s.path("base"), flag, s.path(tt.path))
				requireUsageError(t, r, flag+" "+s.path(tt.path))
				require.Contains(t, r.stderr, strings.ReplaceAll(tt.says, "nodir", s.path("nodir")))
				require.Equal(t, before, s.listing(), "nothing written")
			})
		}
	}
}

// TestLogFile: with --log-file the log goes to the file (stdout stays
// empty), in the chosen format, from the first line to the last.
func TestLogFile(t *testing.T) {
	s := newSandbox(t)
	logPath := s.path("logs", "node.log")
	require.NoError(t, os.Mkdir(s.path("logs"), 0o755))
	p := startNode(t, s, "--dev", "--enable-asf", "--tmp", "--listen-addr", "/ip4/127.0.0.1/tcp/0", "--log-file", logPath)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(readFile(t, logPath), "Network started") {
		require.True(t, time.Now().Before(deadline), "no 'Network started' in the log file")
		select {
		case <-p.done:
			t.Fatalf("node exited: %s", p.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	require.Equal(t, 0, p.stop(syscall.SIGINT))
	p.mu.Lock()
	require.Empty(t, p.lines, "nothing on stdout")
	p.mu.Unlock()
	require.Empty(t, p.stderr.String())
	var msgs []string
	sc := bufio.NewScanner(strings.NewReader(readFile(t, logPath)))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		msgs = append(msgs, m["msg"].(string))
	}
	require.Equal(t, "FlareChain node", msgs[0])
	require.Equal(t, "Node stopped", msgs[len(msgs)-1])
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return ""
	}
	require.NoError(t, err)
	return string(data)
}

// TestLogRotation: the rotated file sink keeps the current file below the
// size limit and at most MaxBackups rotated files beside it.
func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	cfg := config.LogConfig{Level: "info", Format: "json", File: filepath.Join(dir, "node.log"), MaxSizeMiB: 1, MaxBackups: 2}
	out, closer := logOutput(cfg, nil)
	log, err := newLogger(cfg.Level, cfg.Format, out)
	require.NoError(t, err)
	line := strings.Repeat("x", 1000)
	for i := range 4 * 1100 { // about 4.4 MiB
		log.Info(line, zap.Int("i", i))
	}
	require.NoError(t, log.Sync())
	require.NoError(t, closer.Close())

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var rotated int
	for _, e := range entries {
		fi, err := e.Info()
		require.NoError(t, err)
		require.LessOrEqual(t, fi.Size(), int64(1<<20), e.Name())
		if e.Name() != "node.log" {
			require.Regexp(t, `^node-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}\.log$`, e.Name())
			rotated++
		}
	}
	require.Equal(t, 2, rotated, "MaxBackups rotated files kept")
	require.Contains(t, readFile(t, filepath.Join(dir, "node.log")), `"i":4399`, "the newest lines are in the current file")
}

// waitLine waits for a log line at index from or later satisfying pred and
// returns its index.
func (p *nodeProc) waitLine(from int, what string, pred func(map[string]any) bool) int {
	p.t.Helper()
	deadline := time.After(60 * time.Second)
	for i := from; ; {
		p.mu.Lock()
		for ; i < len(p.lines); i++ {
			if pred(p.lines[i]) {
				p.mu.Unlock()
				return i
			}
		}
		added := p.added
		p.mu.Unlock()
		select {
		case <-added:
		case <-p.done:
			p.t.Fatalf("node exited before %s; stderr: %s", what, p.stderr.String())
		case <-deadline:
			p.t.Fatalf("no %s within 60s", what)
		}
	}
}

// TestInfoLinesPerBlock: a validator logs one INFO line per block
// ("Authored block #N"); every other INFO line is per checkpoint or
// periodic. Counted over 80 blocks of steady state on a fast dev chain
// (100 ms slots, a checkpoint every 4 blocks).
func TestInfoLinesPerBlock(t *testing.T) {
	s := newSandbox(t)
	spec, err := chainspec.Builtin("dev")
	require.NoError(t, err)
	spec.Name, spec.ID, spec.SlotDurationMs, spec.CheckpointInterval = "fast", "fast", 100, 4
	b, err := json.Marshal(spec)
	require.NoError(t, err)
	specPath := s.write("fast.json", string(b), 0o644)
	p := startNode(t, s, "--chain", specPath, "--alice", "--enable-asf", "--tmp", "--listen-addr", "/ip4/127.0.0.1/tcp/0")

	msg := func(l map[string]any) string { m, _ := l["msg"].(string); return m }
	start := p.waitLine(0, "finality", func(l map[string]any) bool { return strings.HasPrefix(msg(l), "FINALITY ADVANCED") })
	var first float64
	p.waitLine(start, "a block", func(l map[string]any) bool {
		if strings.HasPrefix(msg(l), "Authored block #") {
			first = l["number"].(float64)
			return true
		}
		return false
	})
	end := p.waitLine(start, "80 more blocks", func(l map[string]any) bool {
		n, _ := l["number"].(float64)
		return strings.HasPrefix(msg(l), "Authored block #") && n >= first+80
	})
	require.Equal(t, 0, p.stop(syscall.SIGINT))

	p.mu.Lock()
	window := p.lines[start+1 : end+1]
	p.mu.Unlock()
	kinds := map[string]int{}
	var info, blocks int
	for _, l := range window {
		if l["level"] != "info" {
			continue
		}
		info++
		kind := msg(l)
		if i := strings.IndexAny(kind, "#:="); i >= 0 {
			kind = kind[:i]
		}
		kinds[kind]++
		if strings.HasPrefix(msg(l), "Authored block #") {
			blocks++
		}
	}
	t.Logf("%d INFO lines for %d blocks (%.2f per block): %v", info, blocks, float64(info)/float64(blocks), kinds)
	require.Equal(t, 81, blocks, "one Authored line per block (blocks first..first+80)")
	// 80 blocks = 20 checkpoints: four lines per checkpoint.
	perCheckpoint := []string{"Voted for checkpoint", "Stored certificate", "Updated last finalized checkpoint", "FINALITY ADVANCED"}
	for _, kind := range perCheckpoint {
		require.InDelta(t, 80/4, kinds[kind], 1, "INFO line %q once per checkpoint", kind)
	}
	require.GreaterOrEqual(t, kinds["Idle"], 1, "an Idle line every 5 s (the window is 8 s)")
	for kind, n := range kinds {
		if kind == "Authored block " || slices.Contains(perCheckpoint, kind) {
			continue
		}
		// Anything else is periodic or one-off: a few lines at most.
		require.LessOrEqual(t, n, 3, "INFO line %q is logged per block or per checkpoint", kind)
	}
}

// TestCompletion: `completion bash|zsh` prints a script; the bash script,
// sourced in a real bash, completes commands, subcommands and flags by
// asking the binary (urfave/cli's --generate-bash-completion).
func TestCompletion(t *testing.T) {
	s := newSandbox(t)
	for _, shell := range []string{"bash", "zsh"} {
		r := s.run("", nil, "completion", shell)
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "--generate-bash-completion")
		require.Contains(t, r.stdout, "flare-node")
	}
	requireUsageError(t, s.run("", nil, "completion", "fish"), `unknown shell "fish"`)
	requireUsageError(t, s.run("", nil, "completion"), "needs one shell")

	r := s.run("", nil, "checkpoints", "--generate-bash-completion")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, strings.Fields(r.stdout), "clear-halt")

	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := s.write("completion.bash", s.run("", nil, "completion", "bash").stdout, 0o644)
	complete := func(words ...string) []string {
		t.Helper()
		cmd := exec.Command(bash, "--norc", "-c", `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($#-1)); _flare_node_complete; printf '%s\n' "${COMPREPLY[@]}"`, "complete", script)
		cmd.Args = append(cmd.Args, words...)
		cmd.Env = append(append([]string{}, s.env...), "PATH="+filepath.Dir(binPath)+":"+os.Getenv("PATH"))
		out, err := cmd.Output()
		require.NoError(t, err)
		return strings.Fields(string(out))
	}
	require.Equal(t, []string{"checkpoints"}, complete("flare-node", "check"))
	require.Equal(t, []string{"show"}, complete("flare-node", "checkpoints", "sh"))
	require.Equal(t, []string{"--enable-asf"}, complete("flare-node", "--enable"))
	require.Equal(t, []string{"--log-file", "--log-format", "--log-level", "--log-max-age", "--log-max-backups", "--log-max-size"}, sorted(complete("flare-node", "--log-")))
}

func sorted(s []string) []string {
	out := append([]string{}, s...)
	sort.Strings(out)
	return out
}

// TestValidatorWithoutASFWarns: a validator started without --enable-asf
// says at WARN that it will never vote or finalize.
func TestValidatorWithoutASFWarns(t *testing.T) {
	s := newSandbox(t)
	p := startNode(t, s, "--dev", "--tmp", "--listen-addr", "/ip4/127.0.0.1/tcp/0")
	l := p.waitLog("ASF finality gadget disabled (--enable-asf not set)")
	require.Equal(t, "warn", l["level"])
	require.Equal(t, 0, p.stop(syscall.SIGINT))
}

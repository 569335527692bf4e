package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flare-node-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "flare-node")
	build := exec.Command("go", "build", "-o", binPath, "../cmd/flare-node")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building flare-node:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// logLine is one JSON log record of the node.
type logLine struct {
	Msg    string
	Fields map[string]any
	Raw    string
}

// proc is a running flare-node subprocess whose log lines are collected.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu    sync.Mutex
	lines []logLine
	cond  chan struct{} // closed and replaced on every new line
}

// startNode starts a node with JSON logs and mDNS off (--no-mdns): nodes of
// parallel tests must never find each other, and tests send nothing beyond
// 127.0.0.1.
func startNode(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, append(args, "--log-format", "json", "--no-mdns")...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	return startCmd(t, name, cmd)
}

// startCmd starts cmd in a process group of its own with stderr merged into
// the stdout the proc reads; the test's cleanup kills it if it still runs.
func startCmd(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	require.NoError(t, cmd.Start())
	p := &proc{t: t, name: name, cmd: cmd, done: make(chan struct{}), cond: make(chan struct{})}
	go p.read(stdout)
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		raw := sc.Text()
		l := logLine{Raw: raw}
		var m map[string]any
		if json.Unmarshal([]byte(raw), &m) == nil {
			l.Msg, _ = m["msg"].(string)
			l.Fields = m
		} else {
			l.Msg = raw
		}
		p.mu.Lock()
		p.lines = append(p.lines, l)
		close(p.cond)
		p.cond = make(chan struct{})
		p.mu.Unlock()
	}
	p.err = p.cmd.Wait()
	close(p.done)
}

// waitLog waits until a log line whose message matches re appears at or after
// index from, and returns it with its index.
func (p *proc) waitLog(re *regexp.Regexp, from int, timeout time.Duration) (logLine, int) {
	p.t.Helper()
	deadline := time.After(timeout)
	for i := from; ; {
		p.mu.Lock()
		for ; i < len(p.lines); i++ {
			if re.MatchString(p.lines[i].Msg) {
				l := p.lines[i]
				p.mu.Unlock()
				return l, i
			}
		}
		c := p.cond
		p.mu.Unlock()
		select {
		case <-c:
		case <-p.done:
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if i >= n {
				p.t.Fatalf("%s exited (%v) before a log line matching %q; last lines:\n%s", p.name, p.err, re, p.tail(30))
			}
		case <-deadline:
			p.t.Fatalf("%s: no log line matching %q within %v; last lines:\n%s", p.name, re, timeout, p.tail(30))
		}
	}
}

func (p *proc) lineCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

func (p *proc) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := ""
	for i := max(0, len(p.lines)-n); i < len(p.lines); i++ {
		out += p.lines[i].Raw + "\n"
	}
	return out
}

// all returns every message matching re.
func (p *proc) all(re *regexp.Regexp) []logLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []logLine
	for _, l := range p.lines {
		if re.MatchString(l.Msg) {
			out = append(out, l)
		}
	}
	return out
}

// stop sends sig and waits for the exit; it returns the exit code.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) int {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("%s did not exit within %v after %v; last lines:\n%s", p.name, timeout, sig, p.tail(30))
	}
	return p.cmd.ProcessState.ExitCode()
}

// wait waits for the process to exit by itself and returns the exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s still running after %v; last lines:\n%s", p.name, timeout, p.tail(30))
	}
	return p.cmd.ProcessState.ExitCode()
}

var numberRe = regexp.MustCompile(`=(\d+)`)

// number extracts the first "=N" number of a message.
func number(t *testing.T, msg string) uint64 {
	t.Helper()
	m := numberRe.FindStringSubmatch(msg)
	require.NotNil(t, m, "no number in %q", msg)
	v, err := strconv.ParseUint(m[1], 10, 64)
	require.NoError(t, err)
	return v
}

// runCLI runs the binary to completion and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	var stdout, stderr safeBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "run %v: %v", args, err)
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

type safeBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

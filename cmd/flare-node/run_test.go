package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/internal/storagefault"
	"github.com/flarechain/flare-node/node"
	"github.com/flarechain/flare-node/p2p"
)

// nodeProc is a flare-node subprocess running the node with JSON logs.
type nodeProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{}

	mu    sync.Mutex
	lines []map[string]any
	added chan struct{} // closed and replaced on every new line
}

// startNode starts the node in sandbox s with args (JSON logs added).
func startNode(t *testing.T, s *sandbox, args ...string) *nodeProc {
	t.Helper()
	cmd := exec.Command(binPath, append(args, "--log-format", "json")...)
	cmd.Env = s.env
	cmd.Dir = s.root
	p := &nodeProc{t: t, cmd: cmd, done: make(chan struct{}), added: make(chan struct{})}
	cmd.Stderr = &p.stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
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

func (p *nodeProc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			m = map[string]any{"msg": "NOT JSON: " + sc.Text()}
		}
		p.mu.Lock()
		p.lines = append(p.lines, m)
		close(p.added)
		p.added = make(chan struct{})
		p.mu.Unlock()
	}
	_ = p.cmd.Wait()
	close(p.done)
}

// waitLog waits for a log line whose message starts with prefix.
func (p *nodeProc) waitLog(prefix string) map[string]any {
	p.t.Helper()
	deadline := time.After(60 * time.Second)
	for i := 0; ; {
		p.mu.Lock()
		for ; i < len(p.lines); i++ {
			if msg, _ := p.lines[i]["msg"].(string); strings.HasPrefix(msg, prefix) {
				l := p.lines[i]
				p.mu.Unlock()
				return l
			}
		}
		added := p.added
		p.mu.Unlock()
		select {
		case <-added:
		case <-p.done:
			p.t.Fatalf("node exited before logging %q; stderr: %s", prefix, p.stderr.String())
		case <-deadline:
			p.t.Fatalf("no log line %q within 60s", prefix)
		}
	}
}

// stop sends sig and returns the exit code.
func (p *nodeProc) stop(sig syscall.Signal) int {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("node did not exit within 60s after %v", sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

func TestRunTmpCleanShutdown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			s := newSandbox(t)
			p := startNode(t, s, "--dev", "--enable-asf", "--tmp", "--port", "0", "--listen-addr", "/ip4/127.0.0.1/tcp/0")
			l := p.waitLog("Base path: ")
			base, _ := l["base_path"].(string)
			require.True(t, strings.HasPrefix(base, s.path("tmp")+string(os.PathSeparator)), "temporary base path %q in TMPDIR", base)
			spec := p.waitLog("Chain specification: Development (genesis 0x")
			require.Equal(t, "dev", spec["chain"])
			p.waitLog("Network started")
			_, err := os.Stat(base)
			require.NoError(t, err)

			require.Equal(t, 0, p.stop(sig))
			require.Empty(t, p.stderr.String())
			_, err = os.Stat(base)
			require.True(t, os.IsNotExist(err), "--tmp base path removed at exit")
			p.waitLog("Node stopped")
		})
	}
}

func TestBasePathInUse(t *testing.T) {
	t.Run("by a running node", func(t *testing.T) {
		s := newSandbox(t)
		base := s.path("base")
		p := startNode(t, s, "--dev", "--base-path", base, "--listen-addr", "/ip4/127.0.0.1/tcp/0")
		p.waitLog("Network started")

		r := s.run("", nil, "--dev", "--base-path", base, "--listen-addr", "/ip4/127.0.0.1/tcp/0")
		requireStartupRefusal(t, r, "in use by another flare-node process")
		require.Equal(t, 0, p.stop(syscall.SIGINT))
	})
	t.Run("checkpoint database held", func(t *testing.T) {
		s := newSandbox(t)
		cfg := config.Default()
		cfg.Chain, cfg.BasePath = "dev", s.path("base")
		require.NoError(t, cfg.Validate())
		db, err := checkpointdb.Open(cfg.CheckpointDBPath(), checkpointdb.Options{Genesis: genesisOf(cfg.Spec)})
		require.NoError(t, err)
		defer db.Close()

		r := s.run("", nil, "--dev", "--enable-asf", "--base-path", cfg.BasePath, "--listen-addr", "/ip4/127.0.0.1/tcp/0")
		requireStartupRefusal(t, r, "in use by another flare-node process")
		require.Contains(t, r.stderr, cfg.CheckpointDBPath())
	})
}

// requireStartupRefusal checks a refused start: exit 2 and exactly one
// "Error: " line on stderr (the logs before it are on stdout).
func requireStartupRefusal(t *testing.T, r result, contains string) {
	t.Helper()
	require.Equal(t, 2, r.code, "stderr: %s", r.stderr)
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	require.Len(t, lines, 1, "stderr: %q", r.stderr)
	require.True(t, strings.HasPrefix(lines[0], "Error: "))
	require.Contains(t, lines[0], contains)
}

func TestPortInUse(t *testing.T) {
	t.Run("by another program", func(t *testing.T) {
		s := newSandbox(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ln.Addr().(*net.TCPAddr).Port)
		r := s.run("", nil, "--dev", "--tmp", "--listen-addr", addr)
		requireStartupRefusal(t, r, "address already in use")
		require.Contains(t, r.stderr, "p2p port in use")
		require.Contains(t, r.stderr, addr)
		entries, err := os.ReadDir(s.path("tmp"))
		require.NoError(t, err)
		require.Empty(t, entries, "--tmp base path removed after a failed start")
	})
	t.Run("by another flare-node (no SO_REUSEPORT)", func(t *testing.T) {
		s := newSandbox(t)
		p := startNode(t, s, "--dev", "--base-path", s.path("a"), "--listen-addr", "/ip4/127.0.0.1/tcp/0")
		l := p.waitLog("Listening on /ip4/127.0.0.1/tcp/")
		msg, _ := l["msg"].(string)
		addr := strings.TrimPrefix(msg, "Listening on ")
		addr = addr[:strings.Index(addr, "/p2p/")]

		cfg := config.Default()
		cfg.Chain, cfg.BasePath = "dev", s.path("b")
		require.NoError(t, cfg.Validate())
		r := s.run("", nil, "--dev", "--base-path", cfg.BasePath, "--listen-addr", addr)
		requireStartupRefusal(t, r, "address already in use")
		require.Contains(t, r.stderr, addr)
		_, err := os.Stat(cfg.NodeKeyPath())
		require.True(t, os.IsNotExist(err), "node key written by a node that could not listen")
		require.Equal(t, 0, p.stop(syscall.SIGINT))
	})
}

func TestHandleSignals(t *testing.T) {
	cancelled := make(chan struct{})
	forced := make(chan struct{})
	stop := handleSignals(func() { close(cancelled) }, zap.NewNop(), func() { close(forced) })
	defer stop()

	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("first signal did not cancel the run")
	}
	select {
	case <-forced:
		t.Fatal("one signal must not force the exit")
	default:
	}
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	select {
	case <-forced:
	case <-time.After(10 * time.Second):
		t.Fatal("second signal did not force the exit")
	}
}

func TestExitCodeMapping(t *testing.T) {
	cfg := &config.Config{BasePath: "/b"}
	tests := []struct {
		name string
		err  error
		code int
	}{
		{"checkpoint db locked", fmt.Errorf("%w: %w", node.ErrStartup, checkpointdb.ErrLocked), exitUsage},
		{"chain db locked", fmt.Errorf("open: %w", asf.ErrLocked), exitUsage},
		{"start-up refusal", fmt.Errorf("%w: corrupted", node.ErrStartup), exitUsage},
		{"p2p port in use", fmt.Errorf("%w: network: %w", node.ErrStartup, fmt.Errorf("%w on /ip4/127.0.0.1/tcp/1: busy", p2p.ErrListen)), exitUsage},
		{"other failure of New", errors.New("boom"), exitFailure},
		{"permission denied", fmt.Errorf("%w: %w", node.ErrStartup, &os.PathError{Op: "access", Path: "/b", Err: syscall.EACCES}), exitUsage},
		{"read-only file system", fmt.Errorf("%w: %w", node.ErrStartup, &os.PathError{Op: "access", Path: "/b", Err: syscall.EROFS}), exitUsage},
		{"disk full at open", fmt.Errorf("%w: %w", node.ErrStartup, &os.PathError{Op: "write", Path: "/b/x.sst", Err: syscall.ENOSPC}), exitFailure},
		{"I/O error at open", fmt.Errorf("%w: %w", node.ErrStartup, &os.PathError{Op: "read", Path: "/b/x.sst", Err: syscall.EIO}), exitFailure},
		{"low disk space", fmt.Errorf("%w: 1 MiB free", node.ErrLowDiskSpace), exitFailure},
		{"fatal storage error at open", fmt.Errorf("%w: %w", node.ErrStartup, checkpointdb.ErrFatal), exitFailure},
		{"open abandoned", fmt.Errorf("%w: %w: %w", node.ErrStartup, storagefault.ErrAbandoned, context.Canceled), exitFailure},
		{"corrupted, found by a fatal background error", fmt.Errorf("%w: %w: %w", node.ErrStartup, asf.ErrFatal, asf.ErrCorrupted), exitUsage},
		{"locked but also permission in the chain", fmt.Errorf("%w: %w", checkpointdb.ErrLocked, syscall.EACCES), exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := startupError(cfg, tt.err)
			require.Equal(t, tt.code, exitCodeOf(err))
			require.ErrorIs(t, err, tt.err)
		})
	}
	require.Equal(t, exitFailure, exitCodeOf(runError(errors.New("task failed"))))
	require.NoError(t, runError(nil))
}

// TestInterruptedStartExitsZero: a start interrupted by the first signal
// before anything had to be abandoned is a clean stop (exit 0), and creates
// nothing.
func TestInterruptedStartExitsZero(t *testing.T) {
	cfg := config.Default()
	cfg.Dev()
	cfg.EnableASF = true
	cfg.BasePath = filepath.Join(t.TempDir(), "base")
	cfg.P2P.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	require.NoError(t, cfg.Validate())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, runConfigured(ctx, &cfg, zap.NewNop(), new(atomic.Pointer[pidFile])))
	_, err := os.Stat(cfg.BasePath)
	require.True(t, os.IsNotExist(err), "an interrupted start created the base path")
}

// TestForcedExit: a second signal while the node shuts down forces the exit
// with code 130 (README, exit codes), and the forced exit still removes the
// pid file and the --tmp base path (under the closing databases, which may
// still create files in it).
//
// The two signals are made pending together (SIGTERM and SIGINT while the
// process is stopped, then SIGCONT), so the second one reliably arrives
// before the clean shutdown ends: two SIGINTs sent back to back are often
// merged into one (a pending signal is not queued twice; then the node
// stops cleanly with 0), and a fresh dev node's clean shutdown takes about
// 2 ms, which a second SIGINT sent after the "Received signal" line races.
func TestForcedExit(t *testing.T) {
	for run := 0; run < 5; run++ {
		s := newSandbox(t)
		pidPath := s.path("flare.pid")
		p := startNode(t, s, "--dev", "--enable-asf", "--tmp", "--port", "0", "--listen-addr", "/ip4/127.0.0.1/tcp/0", "--pid-file", pidPath)
		l := p.waitLog("Base path: ")
		base, _ := l["base_path"].(string)
		require.True(t, strings.HasPrefix(base, s.path("tmp")+string(os.PathSeparator)), "temporary base path %q in TMPDIR", base)
		p.waitLog("PID file written")
		p.waitLog("Network started")
		require.Equal(t, p.cmd.Process.Pid, readPID(t, pidPath))
		_, err := os.Stat(base)
		require.NoError(t, err)

		require.NoError(t, p.cmd.Process.Signal(syscall.SIGSTOP))
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
		require.Equal(t, 130, p.stop(syscall.SIGCONT), "stderr: %s", p.stderr.String())
		p.waitLog("Received signal, shutting down")
		p.waitLog("Received a second signal, exiting immediately")
		_, err = os.Stat(pidPath)
		require.True(t, os.IsNotExist(err), "run %d: pid file removed by the forced exit", run)
		var left []string
		_ = filepath.WalkDir(base, func(p string, _ fs.DirEntry, err error) error {
			if !errors.Is(err, fs.ErrNotExist) {
				left = append(left, p)
			}
			return nil
		})
		require.Empty(t, left, "run %d: --tmp base path removed by the forced exit", run)
	}
}

package node

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/internal/storagefault"
)

// hangLimit is a hang detector, not a speed assertion.
const hangLimit = 30 * time.Second

// requireNothingCreated checks that base (a path below a temp dir) does not
// exist.
func requireNothingCreated(t *testing.T, base string) {
	t.Helper()
	_, err := os.Stat(base)
	require.True(t, errors.Is(err, fs.ErrNotExist), "base path %s was created", base)
}

// TestNewBindsBeforeWriting: a failure to bind the metrics listener, and a
// directory that cannot be created, refuse the start before anything is
// created on disk.
func TestNewBindsBeforeWriting(t *testing.T) {
	specPath := fastSpec(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))

	tests := []struct {
		name   string
		base   string
		metric string
		is     error
	}{
		{name: "metrics port in use", metric: taken.Addr().String(), is: syscall.EADDRINUSE},
		{name: "invalid metrics address", metric: "256.1.1.1:80"},
		{name: "base path below a file", base: filepath.Join(file, "base"), is: syscall.ENOTDIR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := tt.base
			if base == "" {
				base = filepath.Join(t.TempDir(), "base")
			}
			cfg := testConfig(t, specPath, base, true)
			cfg.Metrics.Addr = tt.metric
			_, err := New(context.Background(), cfg, zap.NewNop())
			require.ErrorIs(t, err, ErrStartup)
			if tt.is != nil {
				require.ErrorIs(t, err, tt.is)
			}
			if tt.base == "" {
				requireNothingCreated(t, base)
			}
		})
	}
}

// withFreeBytes replaces the statfs function for one test.
func withFreeBytes(t *testing.T, f func(string) (uint64, error)) {
	old := freeBytes
	freeBytes = f
	t.Cleanup(func() { freeBytes = old })
}

// TestLowDiskSpaceAtStart: below --min-free-disk the node refuses to start
// (ErrLowDiskSpace, not a usage error) and creates nothing; 0 disables it.
func TestLowDiskSpaceAtStart(t *testing.T) {
	specPath := fastSpec(t)
	var asked string
	withFreeBytes(t, func(p string) (uint64, error) { asked = p; return 100 << 20, nil })
	base := filepath.Join(t.TempDir(), "base")
	cfg := testConfig(t, specPath, base, true)
	cfg.MinFreeDiskMiB = 256
	_, err := New(context.Background(), cfg, zap.NewNop())
	require.ErrorIs(t, err, ErrLowDiskSpace)
	require.NotErrorIs(t, err, ErrStartup)
	require.Contains(t, err.Error(), "100 MiB free")
	require.Contains(t, err.Error(), "--min-free-disk 256")
	require.Equal(t, base, asked)
	requireNothingCreated(t, base)

	cfg.MinFreeDiskMiB = 0
	withFreeBytes(t, func(string) (uint64, error) { t.Error("statfs called with the check disabled"); return 0, nil })
	n, err := New(context.Background(), cfg, zap.NewNop())
	require.NoError(t, err)
	require.NoError(t, n.closeAll())
}

// TestDiskWatchdogStopsNode: the running node stops with ErrLowDiskSpace
// when free space falls below --min-free-disk, after one warning below
// twice that.
func TestDiskWatchdogStopsNode(t *testing.T) {
	specPath := fastSpec(t)
	free := make(chan uint64, 1)
	free <- 1 << 30
	current := uint64(1 << 30)
	withFreeBytes(t, func(string) (uint64, error) {
		select {
		case v := <-free:
			current = v
		default:
		}
		return current, nil
	})
	cfg := testConfig(t, specPath, t.TempDir(), true)
	cfg.MinFreeDiskMiB = 64
	log, logs := observedLogger()
	n, err := New(context.Background(), cfg, log)
	require.NoError(t, err)
	n.diskEvery = 5 * time.Millisecond
	wait := runNode(context.Background(), n)
	waitFinalized(t, n, 1)
	free <- 100 << 20 // below twice the minimum: a warning
	require.Eventually(t, func() bool { return logs.FilterMessageSnippet("Free disk space is low").Len() == 1 }, hangLimit, 5*time.Millisecond)
	free <- 10 << 20
	err = wait()
	require.ErrorIs(t, err, ErrLowDiskSpace)
	require.Contains(t, err.Error(), "10 MiB free")
	require.Equal(t, 1, logs.FilterMessageSnippet("Free disk space is low").Len(), "warned once")
	require.NotEmpty(t, logs.FilterMessage("Chain database closed").All(), "the node closed its databases")
}

// TestNewCancelledDuringHangingOpen: the first SIGINT (ctx) stops a start
// whose database open hangs (here the chain database's MANIFEST is a FIFO:
// Pebble's read of it blocks, as on a stalled disk): New returns promptly
// with ctx's error, the open is abandoned.
func TestNewCancelledDuringHangingOpen(t *testing.T) {
	specPath, base := fastSpec(t), t.TempDir()
	cfg := testConfig(t, specPath, base, true)
	n, err := New(context.Background(), cfg, zap.NewNop())
	require.NoError(t, err)
	require.NoError(t, n.closeAll())
	manifest := ""
	entries, err := os.ReadDir(cfg.ChainDBPath())
	require.NoError(t, err)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "MANIFEST-") {
			manifest = filepath.Join(cfg.ChainDBPath(), e.Name())
		}
	}
	require.NotEmpty(t, manifest)
	require.NoError(t, os.Remove(manifest))
	require.NoError(t, syscall.Mkfifo(manifest, 0o600))

	log, logs := observedLogger()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		n, err := New(ctx, testConfig(t, specPath, base, true), log)
		if err == nil {
			_ = n.closeAll()
		}
		done <- err
	}()
	// Opening the FIFO for writing without blocking succeeds once Pebble
	// has it open for reading; Pebble then blocks reading it (a writer,
	// no data).
	var w *os.File
	require.Eventually(t, func() bool {
		w, err = os.OpenFile(manifest, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		return err == nil
	}, hangLimit, time.Millisecond)
	defer w.Close()
	select {
	case err := <-done:
		t.Fatalf("New returned while the MANIFEST read blocks: %v", err)
	default:
	}
	// The checkpoint database opens normally (New closes it).
	require.Eventually(t, func() bool { return logs.FilterMessage("Checkpoint database opened successfully").Len() > 0 }, hangLimit, time.Millisecond)
	cancel()
	select {
	case err = <-done:
	case <-time.After(hangLimit):
		t.Fatal("New did not return after its context was cancelled")
	}
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, err, storagefault.ErrAbandoned)
	require.Contains(t, err.Error(), "open chain database")
	// The abandoned open reads EOF, fails and releases the directory.
	require.NoError(t, w.Close())
	require.Eventually(t, func() bool {
		l, err := pebble.LockDirectory(cfg.ChainDBPath(), vfs.Default)
		if err != nil {
			return false
		}
		_ = l.Close()
		return true
	}, hangLimit, time.Millisecond)
}

// TestCloseErrorFailsRun: an error closing a database at shutdown is the
// result of Run (a non-zero exit), not only a log line.
func TestCloseErrorFailsRun(t *testing.T) {
	specPath := fastSpec(t)
	cfg := testConfig(t, specPath, t.TempDir(), false)
	cfg.MinFreeDiskMiB = 0
	log, logs := observedLogger()
	n, err := New(context.Background(), cfg, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runNode(ctx, n)
	require.Eventually(t, func() bool { return logs.FilterMessage("Network started").Len() > 0 }, hangLimit, time.Millisecond)
	// The checkpoint database's directory disappears: its clean-shutdown
	// record cannot be written at close.
	require.NoError(t, os.RemoveAll(cfg.CheckpointDBPath()))
	cancel()
	err = wait()
	require.Error(t, err)
	require.ErrorContains(t, err, "checkpoint database")
}

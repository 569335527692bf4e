package asf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flarechain/flare-node/internal/storagefault"
	"github.com/flarechain/flare-node/internal/storagefault/faulttest"
)

// waitAbandoned waits for the opens the chain abandoned to return.
func waitAbandoned(t *testing.T) {
	t.Helper()
	faulttest.Within(t, "abandoned open", func() struct{} { abandonedOpens.Wait(); return struct{}{} })
}

// memChain returns a MemFS with a chain database of 6 blocks that are only
// in the WAL (reopening replays and flushes them inside Pebble's Open).
func memChain(t *testing.T) (*vfs.MemFS, ChainOptions) {
	t.Helper()
	spec := localSpec(t)
	keys := specKeys(t, spec)
	mem := vfs.NewMem()
	opts := ChainOptions{FS: mem, Clock: &fakeClock{now: SlotStart(spec, 1_000_000)}, Logger: zap.NewNop()}
	c, err := OpenChain("chain", spec, opts)
	require.NoError(t, err)
	parent := c.Genesis().Header
	for i := range 6 {
		b := makeBlock(spec, keys, parent, uint64(i+1))
		_, err := c.Import(context.Background(), b)
		require.NoError(t, err)
		parent = b.Header
	}
	require.NoError(t, c.Close())
	return mem, opts
}

// TestChainStorageFaultAtOpen: a full disk or an I/O error while opening
// ends the open with an error naming the cause, no hang (Pebble retries
// the failing flush of the replayed WAL forever), no log flood.
func TestChainStorageFaultAtOpen(t *testing.T) {
	tests := []struct {
		name  string
		fresh bool
		match faulttest.OpMatch
		stuck bool
	}{
		{"fresh, WAL write", true, faulttest.WALWrite, false},
		{"fresh, WAL sync", true, faulttest.WALSync, false},
		{"WAL replay, sstable write", false, faulttest.SSTWrite, true},
		{"WAL replay, sstable sync", false, faulttest.SSTSync, true},
	}
	spec := localSpec(t)
	for _, tt := range tests {
		for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO} {
			t.Run(fmt.Sprintf("%s %s", tt.name, errno), func(t *testing.T) {
				mem, opts := vfs.NewMem(), ChainOptions{Logger: zap.NewNop()}
				if !tt.fresh {
					mem, opts = memChain(t)
				}
				fs, on := faulttest.FS(mem, errno, tt.match)
				on.Store(true)
				core, logs := observer.New(zapcore.DebugLevel)
				opts.FS, opts.Logger = fs, zap.New(core)
				err := faulttest.Within(t, "OpenChain", func() error {
					c, err := OpenChain("chain", spec, opts)
					if err == nil {
						_ = c.Close()
					}
					return err
				})
				on.Store(false)
				waitAbandoned(t)
				t.Logf("%v", err)
				require.Error(t, err)
				require.ErrorIs(t, err, errno)
				require.Equal(t, tt.stuck, errors.Is(err, storagefault.ErrAbandoned))
				require.NotErrorIs(t, err, ErrLocked)
				require.NotErrorIs(t, err, ErrCorrupted)
				require.NotContains(t, err.Error(), "\n")
				require.LessOrEqual(t, logs.FilterLevelExact(zapcore.ErrorLevel).Len(), errorBurst+3)

				opts.FS, opts.Logger = mem, zap.NewNop()
				c, err := OpenChain("chain", spec, opts)
				require.NoError(t, err)
				if !tt.fresh {
					require.Equal(t, uint64(6), c.Best().Number, "nothing lost")
				}
				require.NoError(t, c.Close())
			})
		}
	}
}

// TestChainStorageFaultWhileRunning: a failed WAL write or sync makes
// Import fail, a failed background flush closes Failed; either way every
// later write fails with ErrFatal (Pebble's Fatalf does not panic) and Close
// returns.
func TestChainStorageFaultWhileRunning(t *testing.T) {
	tests := []struct {
		name       string
		match      faulttest.OpMatch
		background bool
	}{
		{"WAL write", faulttest.WALWrite, false},
		{"WAL sync", faulttest.WALSync, false},
		{"flush sstable write", faulttest.SSTWrite, true},
	}
	spec := localSpec(t)
	keys := specKeys(t, spec)
	for _, tt := range tests {
		for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO} {
			t.Run(fmt.Sprintf("%s %s", tt.name, errno), func(t *testing.T) {
				mem := vfs.NewMem()
				fs, on := faulttest.FS(mem, errno, tt.match)
				opts := ChainOptions{FS: fs, Clock: &fakeClock{now: SlotStart(spec, 1_000_000)}, Logger: zap.NewNop()}
				c, err := OpenChain("chain", spec, opts)
				require.NoError(t, err)
				b1 := makeBlock(spec, keys, c.Genesis().Header, 1)
				_, err = c.Import(context.Background(), b1)
				require.NoError(t, err)

				on.Store(true)
				if tt.background {
					_, err := c.db.AsyncFlush()
					require.NoError(t, err)
					faulttest.Within(t, "Failed after a failed flush", func() struct{} { <-c.Failed(); return struct{}{} })
				}
				b2 := makeBlock(spec, keys, b1.Header, 2)
				err = faulttest.Within(t, "Import", func() error { _, err := c.Import(context.Background(), b2); return err })
				require.Error(t, err, "a block is never reported stored without its synced write")
				faulttest.Within(t, "Failed", func() struct{} { <-c.Failed(); return struct{}{} })
				require.ErrorIs(t, c.FatalError(), ErrFatal)
				_, err = c.Import(context.Background(), makeBlock(spec, keys, b1.Header, 3))
				require.ErrorIs(t, err, ErrFatal)
				faulttest.Within(t, "Close", func() error { return c.Close() })
				on.Store(false)

				opts.FS = mem
				c, err = OpenChain("chain", spec, opts)
				require.NoError(t, err)
				defer c.Close()
				require.True(t, c.HasBlock(b1.Hash()))
			})
		}
	}
}

// TestChainOpenContextCancelled: an open that hangs (reading the MANIFEST
// blocks) returns when its context is done; the abandoned open is closed
// when it returns.
func TestChainOpenContextCancelled(t *testing.T) {
	mem, opts := memChain(t)
	blocked, release := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	opts.FS = errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpOpen && strings.Contains(op.Path, "MANIFEST") && once.CompareAndSwap(false, true) {
			close(blocked)
			<-release
		}
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		c, err := OpenChainContext(ctx, "chain", localSpec(t), opts)
		if err == nil {
			_ = c.Close()
		}
		done <- err
	}()
	<-blocked
	cancel()
	err := faulttest.Within(t, "OpenChainContext after cancel", func() error { return <-done })
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, err, storagefault.ErrAbandoned)
	close(release)
	waitAbandoned(t)
	opts.FS = mem
	c, err := OpenChain("chain", localSpec(t), opts)
	require.NoError(t, err)
	require.NoError(t, c.Close())
}

// TestChainLockPermission: a LOCK file that cannot be opened is a
// permission problem, not ErrLocked; a held lock is ErrLocked.
func TestChainLockPermission(t *testing.T) {
	mem, opts := memChain(t)
	opts.FS = errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpLock {
			return &os.PathError{Op: "open", Path: op.Path, Err: syscall.EACCES}
		}
		return nil
	}))
	_, err := OpenChain("chain", localSpec(t), opts)
	require.ErrorIs(t, err, os.ErrPermission)
	require.NotErrorIs(t, err, ErrLocked)
	require.NotContains(t, err.Error(), "locked")

	opts.FS = errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpLock {
			return syscall.EAGAIN
		}
		return nil
	}))
	_, err = OpenChain("chain", localSpec(t), opts)
	require.ErrorIs(t, err, ErrLocked)
}

// TestChainPebbleFatalfDoesNotPanic: Pebble's Fatalf is recorded (wrapping
// its error argument), logged once, and closes Failed.
func TestChainPebbleFatalfDoesNotPanic(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := newPebbleLogger(zap.New(core))
	cause := &os.PathError{Op: "write", Path: "MANIFEST-000001", Err: syscall.ENOSPC}
	require.NotPanics(t, func() { l.Fatalf("MANIFEST flush failed: %v", cause) })
	require.NotPanics(t, func() { l.Fatalf("second") })
	<-l.fault.Done()
	require.ErrorIs(t, l.Fatal(), ErrFatal)
	require.ErrorIs(t, l.Fatal(), syscall.ENOSPC)
	require.Equal(t, 1, logs.FilterMessageSnippet("fatal").Len())
	for range 1000 {
		l.Errorf("background error: again")
	}
	require.Zero(t, logs.FilterLevelExact(zapcore.ErrorLevel).FilterMessage("Pebble error").Len())
	l.closeSummary()
	require.Equal(t, 1, logs.FilterMessageSnippet("suppressed").Len())
}

// TestChainRefusedOpenKeepsSSTables: a chain database whose MANIFEST is
// truncated (probe "chain DB MANIFEST truncate") is refused as corrupted,
// not as a foreign schema, and the refusal destroys nothing: the sstable
// the MANIFEST lost stays on disk (Pebble deleted it before).
func TestChainRefusedOpenKeepsSSTables(t *testing.T) {
	e := newEnv(t, localSpec(t))
	e.extend(e.chain.Genesis().Header, 1, 6, "a")
	e.reopen() // replays and flushes the WAL: an sstable
	e.extend(e.chain.Best(), 7, 2, "b")
	require.NoError(t, e.chain.Close())
	e.chain = nil
	ssts, err := filepath.Glob(filepath.Join(e.dir, "*.sst"))
	require.NoError(t, err)
	require.NotEmpty(t, ssts)
	marker, err := filepath.Glob(filepath.Join(e.dir, "marker.manifest.*"))
	require.NoError(t, err)
	require.Len(t, marker, 1)
	manifest := filepath.Join(e.dir, strings.SplitN(filepath.Base(marker[0]), ".", 4)[3])
	fi, err := os.Stat(manifest)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(manifest, fi.Size()/2))
	want := map[string][]byte{}
	for _, p := range ssts {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		want[p] = b
	}

	for range 2 { // refused again, for the same reason, on the next attempt
		_, err = OpenChain(e.dir, e.spec, ChainOptions{Logger: zap.NewNop()})
		require.ErrorIs(t, err, ErrCorrupted)
		require.NotErrorIs(t, err, ErrSchema)
		require.Contains(t, err.Error(), "MANIFEST no longer references")
		for p, b := range want {
			got, err := os.ReadFile(p)
			require.NoError(t, err, "the refused open deleted %s", p)
			require.Equal(t, b, got)
		}
	}
}

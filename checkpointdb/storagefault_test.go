package checkpointdb

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/internal/storagefault"
	"github.com/flarechain/flare-node/internal/storagefault/faulttest"
)

// waitAbandoned waits for the opens Open abandoned to return (after the
// test turned the fault off), so that no goroutine outlives the test.
func waitAbandoned(t *testing.T) {
	t.Helper()
	faulttest.Within(t, "abandoned open", func() struct{} { abandonedOpens.Wait(); return struct{}{} })
}

// walOnlyDB returns a MemFS holding a database whose data is only in the
// WAL: reopening it replays the WAL and flushes it to an sstable (Pebble
// waits for that flush inside Open).
func walOnlyDB(t *testing.T) *vfs.MemFS {
	t.Helper()
	mem := vfs.NewMem()
	db, err := Open("db", Options{FS: mem, Genesis: testGenesis})
	require.NoError(t, err)
	fillChain(t, db, 8, 4)
	require.NoError(t, db.Close())
	return mem
}

// TestStorageFaultAtOpen: a full disk or an I/O error while opening ends the
// open with an error naming the cause: no hang (Pebble retries the failing
// flush of the replayed WAL forever, without a pause), no log flood.
func TestStorageFaultAtOpen(t *testing.T) {
	tests := []struct {
		name  string
		fresh bool
		match faulttest.OpMatch
		// stuck: Pebble's open waits for a flush it retries forever; the
		// open is abandoned.
		stuck bool
	}{
		{"fresh database, disk full", true, faulttest.AnyWrite, false},
		{"fresh database, WAL write", true, faulttest.WALWrite, false},
		{"fresh database, WAL sync", true, faulttest.WALSync, false},
		{"WAL replay, sstable write", false, faulttest.SSTWrite, true},
		{"WAL replay, disk full", false, faulttest.AnyWrite, false},
		{"WAL replay, any sync", false, faulttest.AnySync, false},
		{"WAL replay, sstable sync", false, faulttest.SSTSync, true},
	}
	for _, tt := range tests {
		for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO} {
			t.Run(fmt.Sprintf("%s %s", tt.name, errno), func(t *testing.T) {
				var mem vfs.FS = vfs.NewMem()
				if !tt.fresh {
					mem = walOnlyDB(t)
				}
				fs, on := faulttest.FS(mem, errno, tt.match)
				on.Store(true)
				core, logs := observer.New(zapcore.DebugLevel)
				err := faulttest.Within(t, "Open", func() error {
					db, err := Open("db", Options{FS: fs, Genesis: testGenesis, Logger: zap.New(core)})
					if err == nil {
						_ = db.Close()
					}
					return err
				})
				on.Store(false)
				waitAbandoned(t)
				t.Logf("%v", err)
				require.Error(t, err)
				require.Equal(t, tt.stuck, errors.Is(err, storagefault.ErrAbandoned), "%v", err)
				require.ErrorIs(t, err, errno, "the cause stays visible: %v", err)
				require.NotErrorIs(t, err, ErrLocked)
				require.NotErrorIs(t, err, ErrCorrupted, "a full disk is not corruption")
				require.NotContains(t, err.Error(), "\n")
				require.LessOrEqual(t, logs.FilterLevelExact(zapcore.ErrorLevel).Len(), errorBurst+3,
					"Pebble's retries are not logged one by one")

				// With the fault gone the database opens, nothing lost.
				db, err := Open("db", Options{FS: mem, Genesis: testGenesis})
				require.NoError(t, err)
				if !tt.fresh {
					_, fin, err := db.Pointers(bg)
					require.NoError(t, err)
					require.NotNil(t, fin)
				}
				require.NoError(t, db.Close())
			})
		}
	}
}

// TestStorageFaultWhileRunning: a full disk or an I/O error on a WAL write,
// a WAL sync or a background flush makes the database fail closed: the
// signer's synced write reports the error (no vote is released), Failed is
// closed (the node stops on it), every later call returns ErrFatal and
// Close returns.
func TestStorageFaultWhileRunning(t *testing.T) {
	tests := []struct {
		name  string
		match faulttest.OpMatch
		// background triggers the fault in a flush instead of a write.
		background bool
	}{
		{"WAL write", faulttest.WALWrite, false},
		{"WAL sync", faulttest.WALSync, false},
		{"flush sstable write", faulttest.SSTWrite, true},
		{"disk full", faulttest.AnyWrite, false},
	}
	for _, tt := range tests {
		for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO} {
			t.Run(fmt.Sprintf("%s %s", tt.name, errno), func(t *testing.T) {
				mem := vfs.NewMem()
				fs, on := faulttest.FS(mem, errno, tt.match)
				db, err := Open("db", Options{FS: fs, Genesis: testGenesis})
				require.NoError(t, err)
				pub := testKeys[0].Public().(ed25519.PublicKey)
				signer := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[0]), 0, testGenesis)
				_, err = signer.SignVote(bg, linkVote(1, 0))
				require.NoError(t, err)
				select {
				case <-db.Failed():
					t.Fatal("Failed closed without a fault")
				default:
				}

				on.Store(true)
				if tt.background {
					require.NoError(t, db.StoreVote(bg, signed(linkVote(2, 0), 1)))
					_, err := db.db.AsyncFlush()
					require.NoError(t, err)
					faulttest.Within(t, "Failed after a failed flush", func() struct{} { <-db.Failed(); return struct{}{} })
				}
				err = faulttest.Within(t, "SignVote", func() error { _, err := signer.SignVote(bg, linkVote(2, 0)); return err })
				require.Error(t, err, "a vote is never released without its synced write")
				require.ErrorIs(t, err, finality.ErrSignerFailed)
				faulttest.Within(t, "Failed", func() struct{} { <-db.Failed(); return struct{}{} })
				require.ErrorIs(t, db.FatalError(), ErrFatal)
				require.ErrorIs(t, db.StoreVote(bg, signed(linkVote(3, 0), 1)), ErrFatal)
				require.ErrorIs(t, db.Flush(bg), ErrFatal)
				faulttest.Within(t, "Close", func() error { return db.Close() })
				on.Store(false)

				// Reopened without the fault: the first vote is there, the
				// second may or may not be (it was never released).
				db, err = Open("db", Options{FS: mem, Genesis: testGenesis})
				require.NoError(t, err)
				defer db.Close()
				rec, found, err := db.LoadSignerRecord(bg, pub)
				require.NoError(t, err)
				require.True(t, found)
				require.GreaterOrEqual(t, rec.Last.Target.Number, uint64(1))
			})
		}
	}
}

// TestOpenContextCancelled: an open that hangs (here: reading the MANIFEST
// blocks, as on a stalled disk) returns as soon as its context is done, with
// an error wrapping context.Canceled and storagefault.ErrAbandoned; the
// abandoned open is closed when it returns.
func TestOpenContextCancelled(t *testing.T) {
	mem := walOnlyDB(t)
	blocked, release := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpOpen && strings.Contains(op.Path, "MANIFEST") && once.CompareAndSwap(false, true) {
			close(blocked)
			<-release
		}
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		db, err := OpenContext(ctx, "db", Options{FS: fs, Genesis: testGenesis})
		if err == nil {
			_ = db.Close()
		}
		done <- err
	}()
	<-blocked
	cancel()
	err := faulttest.Within(t, "OpenContext after cancel", func() error { return <-done })
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, err, storagefault.ErrAbandoned)
	close(release)
	waitAbandoned(t)
	// The abandoned open released the directory.
	db, err := Open("db", Options{FS: mem, Genesis: testGenesis})
	require.NoError(t, err)
	require.NoError(t, db.Close())

	// A context that is done before the call opens nothing.
	_, err = OpenContext(ctx, "db2", Options{FS: mem, Genesis: testGenesis})
	require.ErrorIs(t, err, context.Canceled)
	_, err = mem.Stat("db2")
	require.True(t, errors.Is(err, os.ErrNotExist))
}

// TestLockFilePermissionIsNotInUse: a LOCK file that cannot be opened for
// writing is a permission problem, not a database in use.
func TestLockFilePermissionIsNotInUse(t *testing.T) {
	mem := vfs.NewMem()
	db, err := Open("db", Options{FS: mem, Genesis: testGenesis})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpLock {
			return &os.PathError{Op: "open", Path: op.Path, Err: syscall.EACCES}
		}
		return nil
	}))
	_, err = Open("db", Options{FS: fs, Genesis: testGenesis})
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrLocked)
	require.ErrorIs(t, err, os.ErrPermission)
	require.NotContains(t, err.Error(), "in use")

	// A held lock (fcntl's bare EACCES/EAGAIN) is still ErrLocked.
	fs = errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpLock {
			return syscall.EAGAIN
		}
		return nil
	}))
	_, err = Open("db", Options{FS: fs, Genesis: testGenesis})
	require.ErrorIs(t, err, ErrLocked)
}

// TestDiskStallIsFatal: a WAL sync stalled beyond storagefault.MaxStall is a
// fatal error (the node stops instead of waiting silently).
func TestDiskStallIsFatal(t *testing.T) {
	oldSlow, oldMax := storagefault.SlowDiskThreshold, storagefault.MaxStall
	storagefault.SlowDiskThreshold, storagefault.MaxStall = 50*time.Millisecond, 200*time.Millisecond
	t.Cleanup(func() { storagefault.SlowDiskThreshold, storagefault.MaxStall = oldSlow, oldMax })

	mem := vfs.NewMem()
	var stall atomic.Bool
	release := make(chan struct{})
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if stall.Load() && faulttest.IsSync(op.Kind) && strings.HasSuffix(op.Path, ".log") {
			<-release
		}
		return nil
	}))
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err)
	stall.Store(true)
	done := make(chan error, 1)
	go func() {
		done <- db.StoreSignerRecord(bg, checkpoint.SignerRecord{PublicKey: testKeys[0].Public().(ed25519.PublicKey), Genesis: testGenesis, Last: ptrVote(signed(linkVote(1, 0), 0))})
	}()
	faulttest.Within(t, "Failed on a stalled sync", func() struct{} { <-db.Failed(); return struct{}{} })
	require.ErrorIs(t, db.FatalError(), storagefault.ErrStalled)
	stall.Store(false)
	close(release)
	require.Error(t, faulttest.Within(t, "the stalled write", func() error { return <-done }),
		"a write that stalled past the limit is not reported as durable")
	faulttest.Within(t, "Close", func() error { return db.Close() })
}

// TestDiskSlowEvents: a slow operation below storagefault.MaxStall is
// logged (rate-limited), one at the limit is fatal and makes an open stuck.
func TestDiskSlowEvents(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := newPebbleLogger(zap.New(core))
	for range 100 {
		l.diskSlow(vfs.DiskSlowInfo{Path: "db/000004.log", OpType: vfs.OpTypeSync, Duration: storagefault.SlowDiskThreshold + time.Second})
	}
	require.NoError(t, l.Fatal())
	n := logs.FilterMessage("disk slow").Len()
	require.GreaterOrEqual(t, n, 1)
	require.LessOrEqual(t, n, errorBurst)
	l.diskSlow(vfs.DiskSlowInfo{Path: "db/000004.log", OpType: vfs.OpTypeSync, Duration: storagefault.MaxStall})
	require.ErrorIs(t, l.Fatal(), storagefault.ErrStalled)
	require.ErrorIs(t, l.Fatal(), ErrFatal)
	require.ErrorIs(t, l.stuck.Err(), storagefault.ErrStalled)
}

// TestRefusedOpenKeepsSSTables: a MANIFEST that lost its history (cut back
// to before the first flush, after a crash, as in
// TestOpenRefusesLostManifestHistory) makes the store read empty although
// sstables are on disk. Open refuses it as corrupted, and the refusal
// destroys nothing: Pebble's deletion of the sstables its MANIFEST no longer
// references is deferred until the store is verified
// (storagefault.KeepFS).
func TestRefusedOpenKeepsSSTables(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	manifests := filesWith(t, fs, "db", func(n string) bool { return strings.HasPrefix(n, "MANIFEST-") })
	require.Len(t, manifests, 1)
	early := readFile(t, fs, manifests[0])
	db, err = Open("db", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err)
	fillChain(t, db, 10, 4)
	require.NoError(t, db.db.Flush())
	require.NoError(t, db.Close())
	require.NoError(t, fs.Remove("db/"+cleanFileName))
	for _, m := range filesWith(t, fs, "db", func(n string) bool { return strings.HasPrefix(n, "MANIFEST-") }) {
		writeFile(t, fs, m, early[:min(len(early), 40)])
	}
	for _, w := range filesWith(t, fs, "db", func(n string) bool { return strings.HasSuffix(n, ".log") }) {
		require.NoError(t, fs.Remove(w))
	}
	ssts := filesWith(t, fs, "db", func(n string) bool { return strings.HasSuffix(n, ".sst") })
	require.NotEmpty(t, ssts)
	want := map[string][]byte{}
	for _, p := range ssts {
		want[p] = readFile(t, fs, p)
	}

	_, err = Open("db", Options{FS: fs, Genesis: testGenesis})
	requireRefusal(t, err, ErrCorrupted)
	for p, b := range want {
		require.Equal(t, b, readFile(t, fs, p), "the refused open destroyed %s", p)
	}
	// Refused again, for the same reason, on the next attempt.
	_, err = Open("db", Options{FS: fs, Genesis: testGenesis})
	requireRefusal(t, err, ErrCorrupted)
}

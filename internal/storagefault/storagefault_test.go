package storagefault

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

// hangLimit is a hang detector, not a speed assertion.
const hangLimit = 30 * time.Second

func TestFault(t *testing.T) {
	f := NewFault()
	require.NoError(t, f.Err())
	select {
	case <-f.Done():
		t.Fatal("done without an error")
	default:
	}
	require.False(t, f.Set(nil))
	first := errors.New("first")
	require.True(t, f.Set(first))
	require.False(t, f.Set(errors.New("second")))
	require.Equal(t, first, f.Err())
	<-f.Done()
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	t.Run("result", func(t *testing.T) {
		v, err := Open(ctx, NewFault(), func() (int, error) { return 7, nil }, nil)
		require.NoError(t, err)
		require.Equal(t, 7, v)
		boom := errors.New("boom")
		_, err = Open(ctx, NewFault(), func() (int, error) { return 0, boom }, nil)
		require.Equal(t, boom, err)
	})
	for _, by := range []string{"fault", "context"} {
		t.Run("abandoned by "+by, func(t *testing.T) {
			stuck := NewFault()
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			unblock, released := make(chan struct{}), make(chan int, 1)
			started := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				_, err := Open(cctx, stuck, func() (int, error) {
					close(started)
					<-unblock
					return 42, nil
				}, func(v int, err error) { released <- v })
				done <- err
			}()
			<-started
			cause := &fs.PathError{Op: "write", Path: "x.sst", Err: syscall.ENOSPC}
			if by == "fault" {
				stuck.Set(cause)
			} else {
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(hangLimit):
				t.Fatal("Open did not return")
			}
			require.ErrorIs(t, err, ErrAbandoned)
			if by == "fault" {
				require.ErrorIs(t, err, syscall.ENOSPC)
			} else {
				require.ErrorIs(t, err, context.Canceled)
			}
			close(unblock)
			require.Equal(t, 42, <-released, "the abandoned open is released when it returns")
		})
	}
	t.Run("cancelled, finishes within the grace", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancelled := make(chan struct{})
		go func() { <-cctx.Done(); close(cancelled) }()
		v, err := Open(cctx, NewFault(), func() (int, error) {
			cancel()
			<-cancelled // Open sees ctx done before the result
			return 5, nil
		}, func(int, error) { t.Error("a finished open is not released by Open") })
		require.NoError(t, err, "the caller gets the open and checks ctx itself")
		require.Equal(t, 5, v)
	})
	t.Run("finished before the fault is seen", func(t *testing.T) {
		stuck := NewFault()
		stuck.Set(errors.New("late"))
		v, err := Open(ctx, stuck, func() (int, error) { return 1, nil }, nil)
		// Either the result (the caller then checks its fault) or an
		// abandonment; never a hang.
		if err == nil {
			require.Equal(t, 1, v)
		} else {
			require.ErrorIs(t, err, ErrAbandoned)
		}
	})
}

func TestClassify(t *testing.T) {
	wrap := func(errno syscall.Errno) error {
		return fmt.Errorf("open db: %w", &fs.PathError{Op: "open", Path: "db/LOCK", Err: errno})
	}
	tests := []struct {
		err  error
		kind Kind
	}{
		{wrap(syscall.EACCES), Permission},
		{wrap(syscall.EPERM), Permission},
		{wrap(syscall.EROFS), Permission},
		{wrap(syscall.ENOSPC), NoSpace},
		{wrap(syscall.EDQUOT), NoSpace},
		{wrap(syscall.EIO), IO},
		{wrap(syscall.EAGAIN), Other},
		{errors.New("corrupted"), Other},
		{nil, Other},
	}
	for _, tt := range tests {
		require.Equal(t, tt.kind, Classify(tt.err), "%v", tt.err)
	}
	require.True(t, IsOperatorError(wrap(syscall.EACCES)))
	require.False(t, IsOperatorError(wrap(syscall.ENOSPC)))
	require.True(t, IsRuntimeFault(wrap(syscall.EIO)))
	require.False(t, IsRuntimeFault(wrap(syscall.EROFS)))
	require.Equal(t, "no space left on device", NoSpace.String())
}

func TestNearestExisting(t *testing.T) {
	dir := t.TempDir()
	p, err := NearestExisting(filepath.Join(dir, "a", "b", "c"))
	require.NoError(t, err)
	require.Equal(t, dir, p)
	p, err = NearestExisting(dir)
	require.NoError(t, err)
	require.Equal(t, dir, p)
}

func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, CheckWritable(dir))
	require.NoError(t, CheckWritable(filepath.Join(dir, "not", "yet")), "a missing path is checked at its nearest existing ancestor")
	_, err := os.Stat(filepath.Join(dir, "not"))
	require.True(t, errors.Is(err, fs.ErrNotExist), "CheckWritable creates nothing")

	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	err = CheckWritable(filepath.Join(file, "db"))
	require.ErrorIs(t, err, syscall.ENOTDIR)
}

const nobodyEnv = "FLARE_STORAGEFAULT_NOBODY_DIR"

// TestCheckWritableNobody is the child of TestCheckWritablePermission: it
// runs as an unprivileged user and reports CheckWritable's results.
func TestCheckWritableNobody(t *testing.T) {
	dir := os.Getenv(nobodyEnv)
	if dir == "" {
		t.Skip("helper process for TestCheckWritablePermission")
	}
	err := CheckWritable(filepath.Join(dir, "ro", "base", "chains"))
	require.ErrorIs(t, err, fs.ErrPermission)
	var pe *fs.PathError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, filepath.Join(dir, "ro"), pe.Path)
	require.True(t, IsOperatorError(err))
	require.NoError(t, CheckWritable(filepath.Join(dir, "rw", "base")))
	fmt.Println("NOBODY-OK")
}

// TestCheckWritablePermission: a directory the user may not write to is
// refused, by the effective user's permissions (root ignores file modes, so
// the check runs in a child process as nobody).
func TestCheckWritablePermission(t *testing.T) {
	dir, bin := nobodySandbox(t)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "ro"), 0o555))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "rw"), 0o777))
	require.NoError(t, os.Chmod(filepath.Join(dir, "rw"), 0o777))
	cmd := exec.Command(bin, "-test.run=^TestCheckWritableNobody$", "-test.v")
	cmd.Env = append(os.Environ(), nobodyEnv+"="+dir)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "NOBODY-OK")
}

// nobodySandbox returns a directory that user nobody can enter and a copy
// of the test binary in it (the build cache and t.TempDir are private).
func nobodySandbox(t *testing.T) (dir, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "storagefault-nobody-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	for p := filepath.Dir(dir); p != "/"; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s is not searchable by other users; cannot drop privileges for this test", p)
		}
	}
	self, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	bin = filepath.Join(dir, "test.bin")
	require.NoError(t, os.WriteFile(bin, self, 0o755))
	return dir, bin
}

func TestFreeBytes(t *testing.T) {
	dir := t.TempDir()
	n, err := FreeBytes(filepath.Join(dir, "missing", "child"))
	require.NoError(t, err)
	require.Greater(t, n, uint64(0))
	require.Equal(t, "3 MiB", FormatBytes(3<<20+5))
	require.Equal(t, "512 KiB", FormatBytes(512<<10))
}

func TestLineLimiter(t *testing.T) {
	l := NewLineLimiter(time.Hour, 3)
	allowed := 0
	for range 100 {
		if l.Allow() {
			allowed++
		}
	}
	require.Equal(t, 3, allowed)
	l.Suppress()
	require.EqualValues(t, 98, l.TakeSuppressed())
	require.Zero(t, l.TakeSuppressed())
}

func TestKeepFS(t *testing.T) {
	mem := vfs.NewMem()
	create := func(name string) {
		f, err := mem.Create(name, vfs.WriteCategoryUnspecified)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	exists := func(name string) bool { _, err := mem.Stat(name); return err == nil }
	for _, n := range []string{"000001.sst", "000002.blob", "000003.log", "OPTIONS-000004"} {
		create(n)
	}
	k := NewKeepFS(mem)
	require.NoError(t, k.Remove("000001.sst"))
	require.NoError(t, k.Remove("000002.blob"))
	require.NoError(t, k.Remove("000003.log"))
	require.True(t, exists("000001.sst"), "an sstable removal is deferred")
	require.True(t, exists("000002.blob"))
	require.False(t, exists("000003.log"), "other files are removed at once")
	require.Equal(t, []string{"000001.sst", "000002.blob"}, k.Keep())
	require.True(t, exists("000001.sst"), "Keep leaves them")
	require.Equal(t, mem, k.Unwrap())

	require.NoError(t, k.Remove("missing.sst"))
	require.NoError(t, k.Commit(), "a deferred file already gone is no error")
	require.False(t, exists("000001.sst"))
	require.False(t, exists("000002.blob"))
	create("000005.sst")
	require.NoError(t, k.Remove("000005.sst"))
	require.False(t, exists("000005.sst"), "after Commit removals are immediate")
}

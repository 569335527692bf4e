// Package faulttest is test support for storage-fault tests of the Pebble
// databases (checkpointdb, consensus/asf): a file system that fails chosen
// operations with an OS error, matchers for the operations that matter, and
// a hang detector. It is imported by tests only.
package faulttest

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// HangLimit bounds the wait for a call that must not hang. It is a hang
// detector, not a speed assertion: the calls return in milliseconds.
const HangLimit = 30 * time.Second

// OpMatch selects the file system operations a fault is injected into.
type OpMatch func(errorfs.Op) bool

// IsSync reports whether k makes file data durable.
func IsSync(k errorfs.OpKind) bool {
	return k == errorfs.OpFileSync || k == errorfs.OpFileSyncData || k == errorfs.OpFileSyncTo
}

// IsWrite reports whether k writes (or reserves) file data.
func IsWrite(k errorfs.OpKind) bool {
	return k == errorfs.OpFileWrite || k == errorfs.OpFileWriteAt || k == errorfs.OpFilePreallocate
}

// The operations storage-fault tests fail.
var (
	WALWrite OpMatch = func(op errorfs.Op) bool { return IsWrite(op.Kind) && strings.HasSuffix(op.Path, ".log") }
	WALSync  OpMatch = func(op errorfs.Op) bool { return IsSync(op.Kind) && strings.HasSuffix(op.Path, ".log") }
	AnySync  OpMatch = func(op errorfs.Op) bool { return IsSync(op.Kind) }
	SSTSync  OpMatch = func(op errorfs.Op) bool { return IsSync(op.Kind) && strings.HasSuffix(op.Path, ".sst") }
	SSTWrite OpMatch = func(op errorfs.Op) bool {
		return (op.Kind == errorfs.OpCreate || IsWrite(op.Kind)) && strings.HasSuffix(op.Path, ".sst")
	}
	// AnyWrite is a full disk: every operation that writes fails.
	AnyWrite OpMatch = func(op errorfs.Op) bool {
		return op.Kind.ReadOrWrite() == errorfs.OpIsWrite && op.Kind != errorfs.OpRemove && op.Kind != errorfs.OpLock
	}
)

// FS wraps fs and, while the returned switch is on, fails the matching
// operations with errno as the OS reports it (an *os.PathError). MkdirAll
// of a directory that exists succeeds, as on a full disk.
func FS(fs vfs.FS, errno syscall.Errno, match OpMatch) (*errorfs.FS, *atomic.Bool) {
	on := new(atomic.Bool)
	return errorfs.Wrap(fs, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpMkdirAll {
			if _, err := fs.Stat(op.Path); err == nil {
				return nil
			}
		}
		if on.Load() && match(op) {
			return &os.PathError{Op: fmt.Sprintf("op%d", op.Kind), Path: op.Path, Err: errno}
		}
		return nil
	})), on
}

// Within runs f and fails the test if it does not return within HangLimit.
func Within[T any](t testing.TB, what string, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(HangLimit):
		t.Fatalf("%s hangs", what)
		panic("unreachable")
	}
}

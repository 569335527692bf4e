package storagefault

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Disk-health limits of both databases. Variables so that tests can lower
// them.
var (
	// SlowDiskThreshold: a write, sync or file operation running longer is
	// reported (logged) by Pebble's disk-health checks (Pebble's default).
	SlowDiskThreshold = 5 * time.Second
	// MaxStall: one stalled this long is a fatal storage error (CockroachDB's
	// default storage.max_sync_duration). A validator whose disk hangs stops
	// with an error instead of waiting silently.
	MaxStall = 20 * time.Second
)

// ErrStalled marks a disk operation that did not complete within MaxStall.
var ErrStalled = errors.New("disk operation stalled")

// WithDiskHealth wraps fs with Pebble's disk-health checks, reporting
// operations slower than SlowDiskThreshold to onSlow. Close the returned
// closer after the database.
func WithDiskHealth(fs vfs.FS, onSlow func(vfs.DiskSlowInfo)) (vfs.FS, io.Closer) {
	return vfs.WithDiskHealthChecks(fs, SlowDiskThreshold, nil, onSlow)
}

// StallError returns an error wrapping ErrStalled when info reports an
// operation running for MaxStall or longer, and nil otherwise.
func StallError(info vfs.DiskSlowInfo) error {
	if info.Duration < MaxStall {
		return nil
	}
	return fmt.Errorf("%w for %s (limit %s): %s", ErrStalled, info.Duration.Round(time.Second), MaxStall, info)
}

package storagefault

import (
	"errors"
	"io/fs"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// KeepFS wraps the file system Pebble opens a database on so that a refused
// open destroys no data. Pebble deletes, at the end of its open, every
// sstable (and blob file) that the MANIFEST does not reference. After a
// crash in the middle of a compaction those are leftovers; after a damaged
// MANIFEST they are the database's data, and the refusal that follows
// (corruption) would come too late. Until Commit or Keep, KeepFS defers the
// removal of *.sst and *.blob files (Remove returns nil and records the
// path); Commit, once the open has been verified, removes them, Keep leaves
// them on disk and returns their paths. Every other operation goes to the
// wrapped file system unchanged.
type KeepFS struct {
	vfs.FS

	mu        sync.Mutex
	deferring bool
	pending   []string
}

// NewKeepFS wraps fs, deferring removals of data files.
func NewKeepFS(fs vfs.FS) *KeepFS { return &KeepFS{FS: fs, deferring: true} }

func isDataFile(name string) bool {
	return strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob")
}

// Remove implements vfs.FS.
func (k *KeepFS) Remove(name string) error {
	if isDataFile(name) {
		k.mu.Lock()
		if k.deferring {
			k.pending = append(k.pending, name)
			k.mu.Unlock()
			return nil
		}
		k.mu.Unlock()
	}
	return k.FS.Remove(name)
}

// Unwrap implements vfs.FS.
func (k *KeepFS) Unwrap() vfs.FS { return k.FS }

// Commit stops deferring and removes the files whose removal was deferred
// (a file already gone is no error).
func (k *KeepFS) Commit() error {
	k.mu.Lock()
	pending := k.pending
	k.pending, k.deferring = nil, false
	k.mu.Unlock()
	var errs []error
	for _, p := range pending {
		if err := k.FS.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Pending returns the data files whose removal is deferred so far.
func (k *KeepFS) Pending() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.pending...)
}

// Keep returns the data files Pebble wanted to remove and leaves them on
// disk; later removals are deferred too (and never done).
func (k *KeepFS) Keep() []string { return k.Pending() }

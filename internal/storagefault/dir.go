package storagefault

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// NearestExisting returns path if it exists, or its nearest existing
// ancestor. path is made absolute first.
func NearestExisting(path string) (string, error) {
	p, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	for {
		_, err := os.Stat(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		p = parent
	}
}

// CheckWritable reports whether the directory dir can be used or created by
// this process without creating anything: its nearest existing ancestor
// (dir itself when it exists) must be a directory in which the process may
// create entries (write and search permission for the effective user and
// group, on a file system that is not mounted read-only), as access(2) with
// AT_EACCESS tells. The error is an *fs.PathError naming the path that
// failed; it wraps fs.ErrPermission, syscall.EROFS or syscall.ENOTDIR.
func CheckWritable(dir string) error {
	p, err := NearestExisting(dir)
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &fs.PathError{Op: "access", Path: p, Err: syscall.ENOTDIR}
	}
	if err := unix.Faccessat(unix.AT_FDCWD, p, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
		return &fs.PathError{Op: "access", Path: p, Err: err}
	}
	return nil
}

// CheckWritableFile reports whether the file at path, if it exists, may be
// opened for writing by this process (access(2) with AT_EACCESS). A missing
// file is no error (CheckWritable tells whether it can be created).
func CheckWritableFile(path string) error {
	err := unix.Faccessat(unix.AT_FDCWD, path, unix.W_OK, unix.AT_EACCESS)
	if err == nil || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return &fs.PathError{Op: "access", Path: path, Err: err}
}

// FreeBytes returns the bytes available to an unprivileged user on the file
// system holding path (its nearest existing ancestor when path does not
// exist yet), as statfs(2) reports them.
func FreeBytes(path string) (uint64, error) {
	p, err := NearestExisting(path)
	if err != nil {
		return 0, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return 0, &fs.PathError{Op: "statfs", Path: p, Err: err}
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// FormatBytes renders n in MiB (or KiB below 1 MiB) for messages.
func FormatBytes(n uint64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

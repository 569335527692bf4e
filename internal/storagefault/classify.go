package storagefault

import (
	"errors"
	"io/fs"
	"syscall"
)

// Kind is the class of a storage error.
type Kind int

const (
	// Other is any other error (corruption, a bug, an unknown errno).
	Other Kind = iota
	// Permission: the process may not write there (EACCES, EPERM) or the
	// file system is mounted read-only (EROFS). An operator error.
	Permission
	// NoSpace: the file system or the user's quota is full (ENOSPC,
	// EDQUOT). A runtime fault.
	NoSpace
	// IO: the device failed (EIO). A runtime fault.
	IO
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case Permission:
		return "permission denied"
	case NoSpace:
		return "no space left on device"
	case IO:
		return "input/output error"
	default:
		return "other"
	}
}

// Classify returns the kind of err, looking through wrapped errors
// (including Pebble's, which wrap with cockroachdb/errors).
func Classify(err error) Kind {
	switch {
	case err == nil:
		return Other
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return NoSpace
	case errors.Is(err, syscall.EIO):
		return IO
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return Permission
	}
	return Other
}

// IsOperatorError reports whether err is a storage error the operator causes
// and fixes (permissions, a read-only file system): exit code 2.
func IsOperatorError(err error) bool { return Classify(err) == Permission }

// IsRuntimeFault reports whether err is a failing device or a full disk:
// exit code 1.
func IsRuntimeFault(err error) bool {
	k := Classify(err)
	return k == NoSpace || k == IO
}

// Package storagefault is what the two Pebble databases (consensus/asf's
// chain database and checkpointdb) and the node share to end storage faults
// cleanly instead of hanging or flooding the log:
//
//   - Fault records the first fatal storage error of one database and
//     signals it (a channel the node watches), so that a failed background
//     flush or compaction stops the node as a failed write does.
//   - Open runs a database open on its own goroutine and returns as soon as
//     the open finishes, the database records a fatal error, or the context
//     is done. Pebble retries a failed flush at open forever (a directory
//     that is not writable, a full disk), and pebble.Open takes no context;
//     such an open is abandoned and released when it ever returns.
//   - Classify and the Is* functions tell operator errors (permissions, a
//     read-only file system) from runtime faults (no space, I/O errors).
//   - CheckWritable and FreeBytes check a path before anything is created:
//     the nearest existing ancestor must be a directory this process may
//     create entries in (access(2) semantics, effective ids), and the free
//     space of its file system is read with statfs(2).
//   - LineLimiter rate-limits repeated log lines (Pebble reports every retry
//     of a failing flush).
package storagefault

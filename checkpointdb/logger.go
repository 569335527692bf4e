package checkpointdb

import (
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/internal/storagefault"
)

// pebbleLogger routes Pebble's log output to zap. Fatalf does not exit the
// process and does not panic: Pebble calls it from background goroutines
// (compactions, flushes, MANIFEST writes) where a panic could not be
// recovered and would take the whole node down without a clean stop, and
// from the commit path after a failed WAL write or sync, where Pebble then
// returns success to the caller. So Fatalf logs at error level and records
// the first fatal error; the CheckpointDB checks it after every write (a
// write that raced with a fatal error reports it instead of success) and
// every later call returns it (wrapping ErrFatal, and ErrCorrupted when
// Pebble reported corruption). The node watches it (CheckpointDB.Failed),
// stops cleanly and reopens the database on restart.
//
// Pebble retries a failing flush or compaction without a pause and reports
// every attempt: error lines are rate-limited (errorBurst at once, then one
// per errorInterval), and after a fatal error only the first line of it is
// logged; the rest are counted and summed up at Close.
type pebbleLogger struct {
	log   *zap.Logger
	fault *storagefault.Fault
	// stuck records the fatal errors after which Pebble retries without
	// end (a failed flush or compaction, a stalled disk): an open waiting
	// for such a flush is abandoned (storagefault.Open).
	stuck *storagefault.Fault
	lines *storagefault.LineLimiter
}

// Rate limit of Pebble's error lines.
const (
	errorInterval = time.Second
	errorBurst    = 10
)

var _ pebble.Logger = (*pebbleLogger)(nil)

func newPebbleLogger(log *zap.Logger) *pebbleLogger {
	return &pebbleLogger{log: log, fault: storagefault.NewFault(), stuck: storagefault.NewFault(), lines: storagefault.NewLineLimiter(errorInterval, errorBurst)}
}

func trimMsg(format string, args ...any) string {
	return strings.TrimRight(fmt.Sprintf(format, args...), "\n")
}

// Infof implements pebble.Logger.
func (l *pebbleLogger) Infof(format string, args ...any) {
	if ce := l.log.Check(zap.InfoLevel, "pebble"); ce != nil {
		ce.Write(zap.String("message", trimMsg(format, args...)))
	}
}

// Errorf implements pebble.Logger.
func (l *pebbleLogger) Errorf(format string, args ...any) {
	l.logError("pebble error", trimMsg(format, args...))
}

// logError logs an error line unless a fatal error is recorded (the node is
// stopping; the line would repeat it) or the rate limit is exceeded.
func (l *pebbleLogger) logError(msg, detail string) {
	if l.fault.Err() != nil {
		l.lines.Suppress()
		l.log.Debug(msg, zap.String("message", detail))
		return
	}
	if l.lines.Allow() {
		l.log.Error(msg, zap.String("message", detail))
	}
}

// Fatalf implements pebble.Logger: it logs and records the fatal error (see
// the type comment); it returns to Pebble. The error wraps the first error
// among args, so that its errno (ENOSPC, EIO, EACCES) can be told.
func (l *pebbleLogger) Fatalf(format string, args ...any) {
	msg := trimMsg(format, args...)
	if !strings.HasPrefix(msg, "pebble") {
		msg = "pebble: " + msg
	}
	err := fmt.Errorf("%w: %s", ErrFatal, msg)
	for _, a := range args {
		if cause, ok := a.(error); ok {
			err = &fatalError{msg: err.Error(), errs: []error{ErrFatal, cause}}
			break
		}
	}
	l.setFatal(err)
}

// setFatal records err unless a fatal error is already recorded, and logs
// it the first time.
func (l *pebbleLogger) setFatal(err error) {
	if !l.fault.Set(err) {
		l.lines.Suppress()
		return
	}
	l.log.Error("pebble fatal error: checkpoint database stops accepting calls", zap.String("message", oneLine(err.Error())))
}

// Fatal returns the recorded fatal error, or nil.
func (l *pebbleLogger) Fatal() error { return l.fault.Err() }

// backgroundError handles Pebble's EventListener.BackgroundError: a failed
// flush or compaction (or table stats load). Pebble retries it forever
// (without pause; at open it waits for the flush, so the open never
// returns), so it is fatal: the database stops accepting calls and the node
// stops. A full disk, an I/O error or a permission problem do not go away
// by retrying.
func (l *pebbleLogger) backgroundError(err error) {
	if isPebbleCorruption(err) {
		l.setFatal(&fatalError{msg: fmt.Sprintf("%s: %s: background error: %s", ErrFatal, ErrCorrupted, err), errs: []error{ErrFatal, ErrCorrupted, err}})
		return
	}
	fe := &fatalError{msg: fmt.Sprintf("%s: background error: %s", ErrFatal, err), errs: []error{ErrFatal, err}}
	l.setFatal(fe)
	l.stuck.Set(fe)
}

// diskSlow handles Pebble's disk-health events: a write or sync that has
// been running longer than storagefault.SlowDiskThreshold is logged
// (rate-limited); one stalled for storagefault.MaxStall is fatal.
func (l *pebbleLogger) diskSlow(info pebble.DiskSlowInfo) {
	if err := storagefault.StallError(info); err != nil {
		fe := &fatalError{msg: fmt.Sprintf("%s: %s", ErrFatal, err), errs: []error{ErrFatal, err}}
		l.setFatal(fe)
		l.stuck.Set(fe)
		return
	}
	l.logError("disk slow", info.String())
}

// closeSummary logs how many Pebble error lines were not logged.
func (l *pebbleLogger) closeSummary() {
	if n := l.lines.TakeSuppressed(); n > 0 {
		l.log.Warn("Pebble error lines suppressed (rate limit, or repeats of the fatal error)", zap.Int64("count", n))
	}
}

// fatalError is a recorded fatal error: a one-line message that unwraps to
// ErrFatal and its cause.
type fatalError struct {
	msg  string
	errs []error
}

func (e *fatalError) Error() string   { return oneLine(e.msg) }
func (e *fatalError) Unwrap() []error { return e.errs }

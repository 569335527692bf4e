package checkpointdb

import (
	"fmt"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
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
// Pebble reported corruption). The node stops cleanly and reopens the
// database on restart.
type pebbleLogger struct {
	log *zap.Logger

	mu    sync.Mutex
	fatal error
}

var _ pebble.Logger = (*pebbleLogger)(nil)

func newPebbleLogger(log *zap.Logger) *pebbleLogger {
	return &pebbleLogger{log: log}
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
	l.log.Error("pebble error", zap.String("message", trimMsg(format, args...)))
}

// Fatalf implements pebble.Logger: it logs and records the fatal error (see
// the type comment); it returns to Pebble.
func (l *pebbleLogger) Fatalf(format string, args ...any) {
	msg := trimMsg(format, args...)
	l.log.Error("pebble fatal error: checkpoint database stops accepting calls", zap.String("message", msg))
	l.setFatal(fmt.Errorf("%w: pebble: %s", ErrFatal, msg))
}

// setFatal records err unless a fatal error is already recorded.
func (l *pebbleLogger) setFatal(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fatal == nil {
		l.fatal = err
	}
}

// Fatal returns the recorded fatal error, or nil.
func (l *pebbleLogger) Fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

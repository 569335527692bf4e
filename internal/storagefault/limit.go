package storagefault

import (
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// LineLimiter rate-limits a stream of repeated log lines: Pebble reports
// every retry of a failing flush or compaction (thousands per second when
// the disk is full). Allow admits a burst and then one line per interval;
// the lines it refuses are counted.
type LineLimiter struct {
	lim        *rate.Limiter
	suppressed atomic.Int64
}

// NewLineLimiter admits burst lines at once and then one per interval.
func NewLineLimiter(interval time.Duration, burst int) *LineLimiter {
	return &LineLimiter{lim: rate.NewLimiter(rate.Every(interval), burst)}
}

// Allow reports whether a line may be logged now; a refused line is counted.
func (l *LineLimiter) Allow() bool {
	if l.lim.Allow() {
		return true
	}
	l.suppressed.Add(1)
	return false
}

// Suppress counts a line that is not logged.
func (l *LineLimiter) Suppress() { l.suppressed.Add(1) }

// TakeSuppressed returns the number of lines refused since the last call and
// resets it.
func (l *LineLimiter) TakeSuppressed() int64 { return l.suppressed.Swap(0) }

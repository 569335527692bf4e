package storagefault

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// CancelGrace is how long Open still waits for an open that is running when
// its context is done: a normal open finishes within it (and the caller
// closes it), only one that hangs is abandoned.
const CancelGrace = time.Second

// ErrAbandoned marks an open that did not finish: Open returned early (the
// context was done or the database recorded a fatal error) and left the
// open running on its goroutine. The files are left as after a crash.
var ErrAbandoned = errors.New("database open abandoned before it finished")

// Open calls open on a new goroutine and waits until it returns, until ctx
// is done, or until stuck records an error: a fault after which Pebble
// retries without end (a failed flush, a stalled disk). Faults after which
// the open returns by itself (corruption found by a read) do not belong in
// stuck. In the last two cases Open returns with an error wrapping
// ErrAbandoned and the recorded error or ctx.Err() (at once on a fault;
// after CancelGrace when ctx is done, an open that finishes within it being
// returned as it is: the caller checks ctx); when an abandoned open returns
// later, release is called with its result, so that its files and lock are
// freed.
// pebble.Open takes no context, and it waits for a flush that Pebble retries
// forever when the flush keeps failing (a directory that is not writable, a
// full disk): without Open such an open hangs the process.
func Open[T any](ctx context.Context, stuck *Fault, open func() (T, error), release func(T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := open()
		done <- result{v, err}
	}()
	abandon := func(cause error) (T, error) {
		go func() {
			r := <-done
			if release != nil {
				release(r.v, r.err)
			}
		}()
		var zero T
		return zero, fmt.Errorf("%w: %w", ErrAbandoned, cause)
	}
	// A result that is already there wins over a fault or a cancellation.
	select {
	case r := <-done:
		return r.v, r.err
	default:
	}
	select {
	case r := <-done:
		return r.v, r.err
	case <-stuck.Done():
		select {
		case r := <-done: // finished anyway: the caller checks the fault
			return r.v, r.err
		default:
		}
		return abandon(stuck.Err())
	case <-ctx.Done():
		grace := time.NewTimer(CancelGrace)
		defer grace.Stop()
		select {
		case r := <-done: // the caller checks ctx
			return r.v, r.err
		case <-stuck.Done():
			return abandon(stuck.Err())
		case <-grace.C:
			return abandon(ctx.Err())
		}
	}
}

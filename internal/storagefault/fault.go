package storagefault

import (
	"sync"
)

// Fault records the first fatal storage error of one database. The zero
// value is not usable; use NewFault. It is safe for concurrent use.
type Fault struct {
	mu   sync.Mutex
	err  error
	done chan struct{}
}

// NewFault returns a Fault with nothing recorded.
func NewFault() *Fault { return &Fault{done: make(chan struct{})} }

// Set records err unless an error is already recorded (the first one wins),
// and reports whether it was recorded. A nil err is ignored.
func (f *Fault) Set(err error) bool {
	if err == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false
	}
	f.err = err
	close(f.done)
	return true
}

// Err returns the recorded error, or nil.
func (f *Fault) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Done is closed when an error is recorded.
func (f *Fault) Done() <-chan struct{} { return f.done }

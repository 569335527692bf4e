package txpool

import (
	"errors"
	"fmt"
	"time"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
)

// Clock gives the pool its time (admission time, expiry). Tests inject a fake.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// StateReader gives the account state at the pool's current head. An account
// that does not exist has balance 0 and nonce 0 and no error.
type StateReader interface {
	Account(a tx.Address) (balance, nonce uint64, err error)
}

// Config holds the pool rules. See DefaultConfig for the values and doc.go
// for what each one does.
type Config struct {
	// Genesis is the chain's genesis hash; a transaction for another chain
	// is refused ("wrong chain").
	Genesis checkpoint.Hash
	// MinFee is the chain minimum fee; a lower fee is refused ("fee too low").
	MinFee uint64
	// MaxTxs and MaxBytes cap the whole pool (ready and future), counted in
	// transactions and in canonical encoded bytes.
	MaxTxs   int
	MaxBytes int
	// MaxPerAccount caps one sender's ready transactions. A transaction that
	// would be ready beyond it waits in future until the queue drains.
	MaxPerAccount int
	// MaxFuturePerAccount caps one sender's future transactions.
	MaxFuturePerAccount int
	// MaxFuture caps the future transactions of all senders together.
	MaxFuture int
	// Lifetime is how long a transaction may stay in the pool (from
	// admission or replacement); 0 keeps transactions forever.
	Lifetime time.Duration
	// PriceBumpPercent: replacing the same (sender, nonce) needs a fee >=
	// old*(100+PriceBumpPercent)/100 and > old.
	PriceBumpPercent int
}

// DefaultConfig returns the default rules (Genesis must still be set):
//
//	MinFee              1      (chainspec.DevMinFee; set it from the chain spec)
//	MaxTxs              8192   (Substrate --pool-limit)
//	MaxBytes            2 MiB  (8192 × tx.MaxEncodedSize, so MaxTxs binds first)
//	MaxPerAccount       16     (geth AccountSlots)
//	MaxFuturePerAccount 64     (geth AccountQueue)
//	MaxFuture           1024   (geth GlobalQueue)
//	Lifetime            3h     (geth Lifetime)
//	PriceBumpPercent    10     (geth PriceBump)
func DefaultConfig() Config {
	return Config{
		MinFee:              1,
		MaxTxs:              8192,
		MaxBytes:            8192 * tx.MaxEncodedSize,
		MaxPerAccount:       16,
		MaxFuturePerAccount: 64,
		MaxFuture:           1024,
		Lifetime:            3 * time.Hour,
		PriceBumpPercent:    10,
	}
}

// Validate reports a configuration the pool cannot run with.
func (c Config) Validate() error {
	switch {
	case c.MaxTxs < 1:
		return fmt.Errorf("txpool: MaxTxs %d, want >= 1", c.MaxTxs)
	case c.MaxBytes < tx.MaxEncodedSize:
		return fmt.Errorf("txpool: MaxBytes %d, want >= %d", c.MaxBytes, tx.MaxEncodedSize)
	case c.MaxPerAccount < 1:
		return fmt.Errorf("txpool: MaxPerAccount %d, want >= 1", c.MaxPerAccount)
	case c.MaxFuturePerAccount < 0:
		return fmt.Errorf("txpool: MaxFuturePerAccount %d, want >= 0", c.MaxFuturePerAccount)
	case c.MaxFuture < 0:
		return fmt.Errorf("txpool: MaxFuture %d, want >= 0", c.MaxFuture)
	case c.Lifetime < 0:
		return fmt.Errorf("txpool: Lifetime %v, want >= 0", c.Lifetime)
	case c.PriceBumpPercent < 0:
		return fmt.Errorf("txpool: PriceBumpPercent %d, want >= 0", c.PriceBumpPercent)
	}
	return nil
}

// Status is where a pooled transaction sits.
type Status int

const (
	// Unknown: not in the pool.
	Unknown Status = iota
	// Ready: executable on the head state after the sender's earlier ready
	// transactions; offered by Pending.
	Ready
	// Future: waiting for a nonce gap to fill (or for the sender's ready
	// queue to drain below MaxPerAccount).
	Future
)

func (s Status) String() string {
	switch s {
	case Ready:
		return "ready"
	case Future:
		return "future"
	default:
		return "unknown"
	}
}

// Reason is the fixed vocabulary of refusals and removals. The words are part
// of the API (RPC errors, status events, metrics labels); do not change them.
type Reason string

// Refusal reasons (Add, AddTx) — also used by events.
const (
	ReasonMalformed              Reason = "malformed"
	ReasonTooLarge               Reason = "too large"
	ReasonWrongChain             Reason = "wrong chain"
	ReasonFeeTooLow              Reason = "fee too low"
	ReasonNonceTooLow            Reason = "nonce too low"
	ReasonNonceTooHigh           Reason = "nonce too high"
	ReasonAlreadyKnown           Reason = "already known"
	ReasonBadSignature           Reason = "bad signature"
	ReasonInsufficientBalance    Reason = "insufficient balance"
	ReasonReplacementUnderpriced Reason = "replacement underpriced"
	ReasonPoolFull               Reason = "pool full"
)

// ReasonExpired is the event reason of a transaction that outlived
// Config.Lifetime. It is never a refusal.
const ReasonExpired Reason = "expired"

// Reasons returns the refusal vocabulary in admission-check order.
func Reasons() []Reason {
	return []Reason{
		ReasonTooLarge, ReasonMalformed, ReasonWrongChain, ReasonFeeTooLow,
		ReasonNonceTooLow, ReasonNonceTooHigh, ReasonAlreadyKnown, ReasonBadSignature,
		ReasonInsufficientBalance, ReasonReplacementUnderpriced, ReasonPoolFull,
	}
}

// invalid reports whether a transaction removed for reason can never execute
// as it is (an Invalid event) rather than being dropped by pool policy
// (a Dropped event).
func (r Reason) invalid() bool {
	switch r {
	case ReasonMalformed, ReasonTooLarge, ReasonWrongChain, ReasonFeeTooLow,
		ReasonNonceTooLow, ReasonBadSignature, ReasonInsufficientBalance:
		return true
	}
	return false
}

// ErrRefused is the sentinel every *RefusedError matches with errors.Is.
var ErrRefused = errors.New("transaction refused")

// RefusedError is a refusal by Add or AddTx.
type RefusedError struct {
	Reason Reason
	// ExpectedNonce is set for "nonce too low" (the account's next nonce at
	// the head) and "nonce too high" (the next nonce the pool would make
	// ready: account nonce + the sender's ready count); 0 otherwise.
	ExpectedNonce uint64
	// Detail is a human-readable explanation, one line.
	Detail string
}

func (e *RefusedError) Error() string {
	s := "transaction refused: " + string(e.Reason)
	if e.Reason == ReasonNonceTooLow || e.Reason == ReasonNonceTooHigh {
		s += fmt.Sprintf(" (expected nonce %d)", e.ExpectedNonce)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is makes errors.Is(err, ErrRefused) true, and errors.Is(err,
// &RefusedError{Reason: r}) true for the same reason.
func (e *RefusedError) Is(target error) bool {
	if target == ErrRefused {
		return true
	}
	t, ok := target.(*RefusedError)
	return ok && t.Reason == e.Reason
}

// ReasonOf returns the refusal reason of err, if it is a refusal.
func ReasonOf(err error) (Reason, bool) {
	var r *RefusedError
	if errors.As(err, &r) {
		return r.Reason, true
	}
	return "", false
}

// EventKind says what happened to a pooled transaction.
type EventKind string

// Event kinds. A transaction leaves the pool with exactly one of Dropped,
// Invalid or Replaced — or silently when a block in Update includes it.
const (
	// Promoted: future → ready.
	Promoted EventKind = "promoted"
	// Demoted: ready → future (an earlier nonce of the sender left the pool).
	Demoted EventKind = "demoted"
	// Dropped: removed by pool policy (pool full eviction, expiry, Remove with
	// a policy reason); the transaction may still be valid.
	Dropped EventKind = "dropped"
	// Invalid: removed because it cannot execute at the head (nonce too low =
	// included elsewhere or usurped on chain, insufficient balance, ...).
	Invalid EventKind = "invalid"
	// Replaced: the same (sender, nonce) was replaced by Event.By (Substrate's
	// "Usurped").
	Replaced EventKind = "replaced"
	// Restored: a transaction of a retracted block is back in the pool with
	// Event.Status.
	Restored EventKind = "restored"
)

// Event is one change to one pooled transaction, for a status tracker.
type Event struct {
	Hash   tx.Hash
	Kind   EventKind
	Reason Reason  // Dropped and Invalid
	Detail string  // human-readable, may be empty
	By     tx.Hash // Replaced: the replacing transaction
	Status Status  // Restored: where it went
}

// Stats is a snapshot of the pool's counters.
type Stats struct {
	Ready   int // ready transactions
	Future  int // future transactions
	Bytes   int // canonical encoded bytes of all pooled transactions
	Senders int // accounts with at least one pooled transaction

	Admitted    uint64            // Add/AddTx successes (including replacements)
	Replaced    uint64            // transactions replaced by a fee bump
	Evicted     uint64            // transactions evicted to make room ("pool full")
	Expired     uint64            // transactions removed by Expire
	Restored    uint64            // retracted transactions re-admitted by Update
	Refused     map[Reason]uint64 // Add/AddTx refusals by reason
	StateErrors uint64            // StateReader errors
	EventsLost  uint64            // events dropped because nobody drained them
}

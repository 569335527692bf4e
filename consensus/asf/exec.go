package asf

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// ErrBadStateRoot is returned for a block whose header's state root is not
// the root its body produces on its parent's state. It wraps
// ErrInvalidBlock (the block verdict: penalize the peer that sent it).
var ErrBadStateRoot = fmt.Errorf("%w: state root mismatch", ErrInvalidBlock)

// Executor runs block bodies against the account state. The chain calls it
// with its own database: at initialization (the genesis state), at every
// import (re-executing the body on the parent's state and comparing the
// root with the header), when a block leaves the database (an evicted or
// pruned fork) and when a canonical block falls below the state retention.
// The chain adds every write to the batch that stores the block, so a
// block and its state commit together or not at all. Package state
// implements it (node/engine adapts it); the chain never decodes a body.
//
// An empty body must leave the state unchanged (root = parent root).
type Executor interface {
	// GenesisRoot is the root of the genesis state.
	GenesisRoot() checkpoint.Hash
	// WriteGenesis adds the genesis state of the chain whose genesis block
	// hash is genesis to w.
	WriteGenesis(w pebble.Writer, genesis checkpoint.Hash) error
	// Execute executes b's body on the state of parent (parent.StateRoot).
	// An error wrapping ErrInvalidBlock is a rule the body breaks; any
	// other error (a missing parent state, a storage error) is not the
	// sender's fault.
	Execute(parent Header, b Block) (Execution, error)
	// Discard adds to w the removal of the state written for block, which
	// leaves the database (a fork that lost).
	Discard(w pebble.Writer, block checkpoint.Hash) error
	// Prune adds to w the release of what canonical block made obsolete;
	// the states of its descendants stay complete.
	Prune(w pebble.Writer, block checkpoint.Hash) error
}

// Execution is an executed body.
type Execution interface {
	// Root is the state root the body produces.
	Root() checkpoint.Hash
	// Write adds the new state to w, the batch that stores block.
	Write(w pebble.Writer, block checkpoint.Hash) error
}

// ExecutorFactory creates the executor of a chain on the chain's database.
type ExecutorFactory func(db *pebble.DB) (Executor, error)

// BodyBuilder fills the body of a block the producer authors: it selects
// transactions, executes them on parent's state within deadline and
// returns the body and the state root it produces. A nil builder authors
// empty blocks (state root = parent's).
type BodyBuilder interface {
	BuildBody(ctx context.Context, parent Header, h Header, deadline time.Time) (body [][]byte, stateRoot checkpoint.Hash, err error)
}

// emptyState is the executor of a chain opened without one (tests of the
// block tree alone): no accounts, the zero root, bodies are opaque and
// change nothing.
type emptyState struct{}

func (emptyState) GenesisRoot() checkpoint.Hash                      { return checkpoint.ZeroHash }
func (emptyState) WriteGenesis(pebble.Writer, checkpoint.Hash) error { return nil }
func (emptyState) Discard(pebble.Writer, checkpoint.Hash) error      { return nil }
func (emptyState) Prune(pebble.Writer, checkpoint.Hash) error        { return nil }
func (emptyState) Execute(parent Header, _ Block) (Execution, error) {
	return emptyExecution(parent.StateRoot), nil
}

type emptyExecution checkpoint.Hash

func (e emptyExecution) Root() checkpoint.Hash                    { return checkpoint.Hash(e) }
func (emptyExecution) Write(pebble.Writer, checkpoint.Hash) error { return nil }

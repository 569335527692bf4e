package engine

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/state"
	"github.com/flarechain/flare-node/tx"
)

// TxSource gives the block builder the transactions to include: the ready
// queue of the transaction pool.
type TxSource interface {
	// Pending returns at most max ready transactions (maxBytes encoded
	// bytes), per sender in nonce order.
	Pending(max, maxBytes int) []*tx.Tx
	// Refused reports a pending transaction that failed execution.
	Refused(t *tx.Tx, err error)
}

// Block limits of the builder (the chain's own limits are larger).
const (
	// MaxBlockTxs is the most transactions the builder puts in one block.
	MaxBlockTxs = 10_000
	// MaxBlockTxBytes bounds the encoded transactions of one block.
	MaxBlockTxBytes = 2 << 20
)

// StateExecutor connects the chain (asf.Executor, asf.BodyBuilder) to the
// account state (package state): it decodes nothing itself, it passes the
// block's number, proposer and body to the pure state transition, and the
// pool's ready transactions to the builder.
type StateExecutor struct {
	db      *state.DB
	spec    *chainspec.Spec
	keys    []ed25519.PublicKey
	genesis checkpoint.Hash // genesis block hash (bound into transactions)
	root    checkpoint.Hash // genesis state root
	sigs    *tx.SigCache
	log     *zap.Logger

	// mut: deliberately broken execution rules (simulator mutants only).
	mut state.Mutations

	mu      sync.Mutex
	now     func() time.Time // the builder's clock (nil: time.Now)
	source  TxSource
	lastRes *state.Result // the body built last, reused by its import
	lastKey buildKey
}

type buildKey struct {
	parent checkpoint.Hash
	body   checkpoint.Hash
	number uint64
}

// NewStateExecutorFactory returns the chain's executor factory for spec;
// *out is set to the executor once the chain opened its database.
func NewStateExecutorFactory(spec *chainspec.Spec, sigs *tx.SigCache, log *zap.Logger, out **StateExecutor) asf.ExecutorFactory {
	return func(db *pebble.DB) (asf.Executor, error) {
		e, err := NewStateExecutor(db, spec, sigs, log)
		if err != nil {
			return nil, err
		}
		if out != nil {
			*out = e
		}
		return e, nil
	}
}

// NewStateExecutor returns the executor of spec's chain on db.
func NewStateExecutor(db *pebble.DB, spec *chainspec.Spec, sigs *tx.SigCache, log *zap.Logger) (*StateExecutor, error) {
	if log == nil {
		log = zap.NewNop()
	}
	keys, err := spec.PublicKeys()
	if err != nil {
		return nil, err
	}
	root, err := state.GenesisRoot(spec)
	if err != nil {
		return nil, err
	}
	return &StateExecutor{
		db: state.Open(db, log), spec: spec, keys: keys,
		genesis: asf.GenesisBlock(spec, root).Hash(), root: root,
		sigs: sigs, log: log.Named("state"),
	}, nil
}

// GenesisHash returns the genesis block hash of spec: the genesis header
// with the spec hash as body root and the genesis balances' state root.
func GenesisHash(spec *chainspec.Spec) (checkpoint.Hash, error) {
	root, err := state.GenesisRoot(spec)
	if err != nil {
		return checkpoint.Hash{}, err
	}
	return asf.GenesisBlock(spec, root).Hash(), nil
}

// State returns the account state.
func (e *StateExecutor) State() *state.DB { return e.db }

// SetSource sets the transactions the builder includes (nil: empty blocks).
func (e *StateExecutor) SetSource(s TxSource) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.source = s
}

// SetMutations breaks execution rules on purpose, for the network
// simulator's mutation tests (integration/sim); production never calls it.
// Call it before the chain imports anything.
func (e *StateExecutor) SetMutations(m state.Mutations) { e.mut = m }

// SetClock sets the clock the builder reads its deadline against (the
// producer computes the deadline from the node's clock; nil: time.Now). A
// node with a simulated or skewed clock must set it, or the builder compares
// a simulated deadline with the wall clock.
func (e *StateExecutor) SetClock(now func() time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = now
}

// GenesisRoot implements asf.Executor.
func (e *StateExecutor) GenesisRoot() checkpoint.Hash { return e.root }

// WriteGenesis implements asf.Executor.
func (e *StateExecutor) WriteGenesis(w pebble.Writer, genesis checkpoint.Hash) error {
	root, err := e.db.WriteGenesis(e.spec, w, genesis)
	if err != nil {
		return err
	}
	if root != e.root {
		return fmt.Errorf("genesis state root %s, expected %s", root.Short(), e.root.Short())
	}
	return nil
}

func (e *StateExecutor) env(h asf.Header) (state.Env, error) {
	if int(h.Proposer) >= len(e.keys) {
		return state.Env{}, fmt.Errorf("%w: proposer %d outside the authority set", asf.ErrInvalidBlock, h.Proposer)
	}
	return state.Env{Genesis: e.genesis, MinFee: e.spec.MinFee, Number: h.Number, Proposer: tx.AddressOf(e.keys[h.Proposer]), Mutations: e.mut}, nil
}

type execution struct{ res *state.Result }

func (x execution) Root() checkpoint.Hash { return x.res.Root }
func (x execution) Write(w pebble.Writer, block checkpoint.Hash) error {
	return x.res.Write(w, block)
}

// Execute implements asf.Executor: a transaction that breaks a rule makes
// the block invalid (asf.ErrInvalidBlock).
func (e *StateExecutor) Execute(parent asf.Header, b asf.Block) (asf.Execution, error) {
	env, err := e.env(b.Header)
	if err != nil {
		return nil, err
	}
	key := buildKey{parent: b.Header.ParentHash, body: b.Header.BodyRoot, number: b.Header.Number}
	e.mu.Lock()
	if e.lastRes != nil && e.lastKey == key {
		res := e.lastRes
		e.lastRes = nil
		e.mu.Unlock()
		return execution{res}, nil
	}
	e.mu.Unlock()
	res, err := e.db.Execute(parent.StateRoot, env, b.Extrinsics, e.sigs)
	if err != nil {
		if isRuleError(err) {
			return nil, fmt.Errorf("%w: %w", asf.ErrInvalidBlock, err)
		}
		return nil, err
	}
	return execution{res}, nil
}

func isRuleError(err error) bool {
	return errors.Is(err, state.ErrInvalidTx)
}

// Discard implements asf.Executor.
func (e *StateExecutor) Discard(w pebble.Writer, block checkpoint.Hash) error {
	return e.db.Discard(w, block)
}

// Prune implements asf.Executor.
func (e *StateExecutor) Prune(w pebble.Writer, block checkpoint.Hash) error {
	return e.db.Prune(w, block)
}

// BuildBody implements asf.BodyBuilder: the pool's ready transactions that
// execute, in order, until the block limits or the deadline.
func (e *StateExecutor) BuildBody(ctx context.Context, parent asf.Header, h asf.Header, deadline time.Time) ([][]byte, checkpoint.Hash, error) {
	e.mu.Lock()
	src, now := e.source, e.now
	e.mu.Unlock()
	if src == nil {
		return nil, parent.StateRoot, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, checkpoint.Hash{}, err
	}
	candidates := src.Pending(MaxBlockTxs, MaxBlockTxBytes)
	if len(candidates) == 0 {
		return nil, parent.StateRoot, nil
	}
	env, err := e.env(h)
	if err != nil {
		return nil, checkpoint.Hash{}, err
	}
	res, body, rejected, err := e.db.Build(parent.StateRoot, env, candidates,
		state.BuildLimits{MaxTxs: MaxBlockTxs, MaxBytes: MaxBlockTxBytes, Deadline: deadline, Now: now}, e.sigs)
	if err != nil {
		return nil, checkpoint.Hash{}, err
	}
	for _, r := range rejected {
		src.Refused(r.Tx, r.Err)
	}
	if len(body) == 0 {
		return nil, parent.StateRoot, nil
	}
	e.mu.Lock()
	e.lastRes = res
	e.lastKey = buildKey{parent: h.ParentHash, body: asf.BodyRoot(body), number: h.Number}
	e.mu.Unlock()
	return body, res.Root, nil
}

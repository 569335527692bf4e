package engine

import (
	"errors"
	"fmt"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/state"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/txpool"
)

// PoolState reads accounts at the chain's best block: the pool's head.
type PoolState struct {
	Chain *asf.Chain
	Exec  *StateExecutor
}

// Account implements txpool.StateReader.
func (s PoolState) Account(a tx.Address) (uint64, uint64, error) {
	acc, _, err := s.Exec.State().Account(s.Chain.Best().StateRoot, a)
	return acc.Balance, acc.Nonce, err
}

// PoolSource is the pool as the block builder's TxSource.
type PoolSource struct{ Pool *txpool.Pool }

// Pending implements TxSource.
func (s PoolSource) Pending(max, maxBytes int) []*tx.Tx { return s.Pool.Pending(max, maxBytes) }

// Refused implements TxSource: a transaction the builder could not execute
// leaves the pool with the reason of the rule it broke.
func (s PoolSource) Refused(t *tx.Tx, err error) { s.Pool.Remove(t.Hash(), RefusalReason(err)) }

// RefusalReason maps an execution rule error (package state) to the pool's
// vocabulary.
func RefusalReason(err error) txpool.Reason {
	switch {
	case errors.Is(err, state.ErrNonceTooLow):
		return txpool.ReasonNonceTooLow
	case errors.Is(err, state.ErrNonceTooHigh):
		return txpool.ReasonNonceTooHigh
	case errors.Is(err, state.ErrBadSignature):
		return txpool.ReasonBadSignature
	case errors.Is(err, state.ErrWrongChain):
		return txpool.ReasonWrongChain
	case errors.Is(err, state.ErrFeeTooLow):
		return txpool.ReasonFeeTooLow
	case errors.Is(err, state.ErrMalformed):
		return txpool.ReasonMalformed
	}
	return txpool.ReasonInsufficientBalance
}

// PoolTracker keeps a pool on a chain's best chain. It is not safe for
// concurrent use (one goroutine calls Sync).
type PoolTracker struct {
	chain *asf.Chain
	exec  *StateExecutor
	pool  *txpool.Pool
	last  checkpoint.Hash
	// OnCanonical, when set, is called with the number of transactions of
	// every block that became canonical (oldest first).
	OnCanonical func(txs int)
}

// NewPoolTracker starts tracking at the chain's current best block.
func NewPoolTracker(chain *asf.Chain, exec *StateExecutor, pool *txpool.Pool) *PoolTracker {
	return &PoolTracker{chain: chain, exec: exec, pool: pool, last: chain.BestHash()}
}

// MaxReorgWalk bounds the blocks Sync walks back from the previous best.
const MaxReorgWalk = 1024

// Sync follows a change of the best block: the transactions of the blocks
// that became canonical leave the pool, those of the blocks that left the
// best chain come back, and the rest is re-checked against the new head
// state (txpool.Pool.Update); then old transactions expire. It returns the
// pool's events. When the old branch cannot be walked (pruned, or deeper
// than MaxReorgWalk) the pool is only re-checked, and err says why.
func (t *PoolTracker) Sync() ([]txpool.Event, error) {
	best := t.chain.BestHash()
	if best == t.last {
		return t.pool.Expire(), nil
	}
	included, retracted, err := t.branchTxs(t.last, best)
	events := t.pool.Update(PoolState{Chain: t.chain, Exec: t.exec}, included, retracted)
	events = append(events, t.pool.Expire()...)
	t.last = best
	return events, err
}

// branchTxs returns the transactions of the blocks from the common ancestor
// of from and to up to to (oldest first), and of those up to from.
func (t *PoolTracker) branchTxs(from, to checkpoint.Hash) (included, retracted []*tx.Tx, err error) {
	get := func(h checkpoint.Hash) (asf.Block, error) {
		b, ok, err := t.chain.BlockByHash(h)
		if err == nil && !ok {
			err = fmt.Errorf("%w: %s", asf.ErrUnknownBlock, h.Short())
		}
		return b, err
	}
	a, err := get(from)
	if err != nil {
		return nil, nil, err
	}
	b, err := get(to)
	if err != nil {
		return nil, nil, err
	}
	var inc, ret []asf.Block
	defer func() {
		if t.OnCanonical != nil && err == nil {
			for i := len(inc) - 1; i >= 0; i-- {
				t.OnCanonical(len(inc[i].Extrinsics))
			}
		}
	}()
	for steps := 0; a.Hash() != b.Hash(); steps++ {
		if steps > MaxReorgWalk {
			return nil, nil, fmt.Errorf("reorganization deeper than %d blocks", MaxReorgWalk)
		}
		if b.Header.Number >= a.Header.Number {
			inc = append(inc, b)
			if b, err = get(b.Header.ParentHash); err != nil {
				return nil, nil, err
			}
		} else {
			ret = append(ret, a)
			if a, err = get(a.Header.ParentHash); err != nil {
				return nil, nil, err
			}
		}
	}
	decode := func(blocks []asf.Block) []*tx.Tx {
		var out []*tx.Tx
		for i := len(blocks) - 1; i >= 0; i-- {
			for _, raw := range blocks[i].Extrinsics {
				if x, err := tx.Decode(raw); err == nil {
					out = append(out, x)
				}
			}
		}
		return out
	}
	return decode(inc), decode(ret), nil
}

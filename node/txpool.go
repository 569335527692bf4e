package node

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node/api"
	"github.com/flarechain/flare-node/state"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/txpool"
)

// bestState reads accounts at the chain's best block: the pool's head.
type bestState struct{ n *Node }

func (s bestState) Account(a tx.Address) (uint64, uint64, error) {
	acc, _, err := s.n.exec.State().Account(s.n.chain.Best().StateRoot, a)
	return acc.Balance, acc.Nonce, err
}

// poolSource gives the block builder the pool's ready transactions.
type poolSource struct{ p *txpool.Pool }

func (s poolSource) Pending(max, maxBytes int) []*tx.Tx { return s.p.Pending(max, maxBytes) }

// Refused removes a transaction the builder could not execute. The state
// moved under the pool (a block imported meanwhile); the next Update
// re-checks the rest.
func (s poolSource) Refused(t *tx.Tx, err error) {
	reason := txpool.ReasonInsufficientBalance
	switch {
	case errors.Is(err, state.ErrNonceTooLow):
		reason = txpool.ReasonNonceTooLow
	case errors.Is(err, state.ErrNonceTooHigh):
		reason = txpool.ReasonNonceTooHigh
	case errors.Is(err, state.ErrBadSignature):
		reason = txpool.ReasonBadSignature
	case errors.Is(err, state.ErrWrongChain):
		reason = txpool.ReasonWrongChain
	case errors.Is(err, state.ErrFeeTooLow):
		reason = txpool.ReasonFeeTooLow
	}
	s.p.Remove(t.Hash(), reason)
}

// newPool creates the transaction pool of the chain.
func (n *Node) newPool() (*txpool.Pool, error) {
	cfg := txpool.DefaultConfig()
	cfg.Genesis = GenesisHash(n.spec)
	cfg.MinFee = n.spec.MinFee
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return txpool.New(cfg, txpool.SystemClock{}, n.sigs, bestState{n}), nil
}

// poolInterval is how often the pool follows the best block.
const poolInterval = 50 * time.Millisecond

// runPool keeps the pool on the best chain: after every change of the best
// block it removes the transactions of the blocks that became canonical,
// takes back those of the blocks that left it (a fork switch), re-checks the
// rest against the new head state, and expires old ones.
func (n *Node) runPool(ctx context.Context) error {
	log := n.log.Named("txpool")
	last := n.chain.BestHash()
	t := time.NewTicker(poolInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		best := n.chain.BestHash()
		if best == last {
			n.removals.note(n.pool.Expire())
			continue
		}
		included, retracted, err := n.branchTxs(last, best)
		if err != nil {
			// A pruned old head: re-check everything against the new state.
			log.Debug("Pool update without the retracted branch", zap.Error(err))
		}
		n.removals.note(n.pool.Update(bestState{n}, included, retracted))
		n.removals.note(n.pool.Expire())
		last = best
	}
}

// maxReorgWalk bounds the blocks branchTxs walks back.
const maxReorgWalk = 1024

// branchTxs returns the transactions of the blocks on the path from the
// common ancestor of from and to up to to (included, oldest first), and of
// those from the ancestor up to from (retracted).
func (n *Node) branchTxs(from, to checkpoint.Hash) (included, retracted []*tx.Tx, err error) {
	hdr := func(h checkpoint.Hash) (asf.Block, error) {
		b, ok, err := n.chain.BlockByHash(h)
		if err == nil && !ok {
			err = asf.ErrUnknownBlock
		}
		return b, err
	}
	a, err := hdr(from)
	if err != nil {
		return nil, nil, err
	}
	b, err := hdr(to)
	if err != nil {
		return nil, nil, err
	}
	var inc, ret []asf.Block
	for steps := 0; a.Hash() != b.Hash(); steps++ {
		if steps > maxReorgWalk {
			return nil, nil, errors.New("reorganization deeper than the walk bound")
		}
		if b.Header.Number >= a.Header.Number {
			inc = append(inc, b)
			if b, err = hdr(b.Header.ParentHash); err != nil {
				return nil, nil, err
			}
		} else {
			ret = append(ret, a)
			if a, err = hdr(a.Header.ParentHash); err != nil {
				return nil, nil, err
			}
		}
	}
	decode := func(blocks []asf.Block) []*tx.Tx {
		var out []*tx.Tx
		for i := len(blocks) - 1; i >= 0; i-- {
			for _, raw := range blocks[i].Extrinsics {
				if t, err := tx.Decode(raw); err == nil {
					out = append(out, t)
				}
			}
		}
		return out
	}
	return decode(inc), decode(ret), nil
}

// maxRemovals bounds the removed transactions the node remembers for
// GET /tx/{hash} and its watch stream.
const maxRemovals = 4096

// txRemovals remembers the last maxRemovals transactions the pool removed
// (dropped, invalid or replaced), oldest forgotten first.
type txRemovals struct {
	mu    sync.Mutex
	byTx  map[tx.Hash]removal
	order []tx.Hash // ring of the hashes in byTx
	next  int
}

type removal struct{ status, reason string }

func newTxRemovals() *txRemovals { return &txRemovals{byTx: make(map[tx.Hash]removal)} }

// note records the removals among events.
func (r *txRemovals) note(events []txpool.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range events {
		var rm removal
		switch ev.Kind {
		case txpool.Dropped:
			rm = removal{api.TxDropped, string(ev.Reason)}
		case txpool.Invalid:
			rm = removal{api.TxInvalid, string(ev.Reason)}
		case txpool.Replaced:
			rm = removal{api.TxDropped, "replaced"}
		default:
			continue
		}
		if _, ok := r.byTx[ev.Hash]; !ok {
			if len(r.order) < maxRemovals {
				r.order = append(r.order, ev.Hash)
			} else {
				delete(r.byTx, r.order[r.next])
				r.order[r.next] = ev.Hash
				r.next = (r.next + 1) % maxRemovals
			}
		}
		r.byTx[ev.Hash] = rm
	}
}

// Removed implements api.TxRemovals.
func (r *txRemovals) Removed(h tx.Hash) (status, reason string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rm, ok := r.byTx[h]
	return rm.status, rm.reason, ok
}

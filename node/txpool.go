package node

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/node/api"
	"github.com/flarechain/flare-node/node/engine"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/txpool"
)

// newPool creates the transaction pool of the chain.
func (n *Node) newPool() (*txpool.Pool, error) {
	cfg := txpool.DefaultConfig()
	cfg.Genesis = GenesisHash(n.spec)
	cfg.MinFee = n.spec.MinFee
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return txpool.New(cfg, txpool.SystemClock{}, n.sigs, engine.PoolState{Chain: n.chain, Exec: n.exec}), nil
}

// poolInterval is how often the pool follows the best block.
const poolInterval = 50 * time.Millisecond

// runPool keeps the pool on the best chain (engine.PoolTracker).
func (n *Node) runPool(ctx context.Context) error {
	log := n.log.Named("txpool")
	tr := engine.NewPoolTracker(n.chain, n.exec, n.pool)
	tr.OnCanonical = func(txs int) { n.metrics.blockTxs.Observe(float64(txs)) }
	lat := n.metrics.txLatency
	lastFinal := n.chain.Finalized().Number * n.spec.CheckpointInterval
	t := time.NewTicker(poolInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case cp := <-lat.finalized:
			// Every canonical block up to the finalized one is final.
			now := time.Now()
			top := cp.Number * n.spec.CheckpointInterval
			from := lastFinal + 1
			if top >= engine.MaxReorgWalk && from < top-engine.MaxReorgWalk {
				from = top - engine.MaxReorgWalk // a long jump (sync): the latest blocks only
			}
			for b := from; b <= top; b++ {
				if h, ok := n.chain.CanonicalHash(b); ok {
					if blk, ok, err := n.chain.BlockByHash(h); err == nil && ok {
						lat.noteFinalized(blk.Extrinsics, now)
					}
				}
			}
			lastFinal = max(lastFinal, top)
			continue
		case <-t.C:
		}
		events, err := tr.Sync()
		if err != nil {
			log.Debug("Pool update without the retracted branch", zap.Error(err))
		}
		n.removals.note(events)
	}
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

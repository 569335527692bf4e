package node

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/node/api"
	"github.com/flarechain/flare-node/node/engine"
	"github.com/flarechain/flare-node/p2p"
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

// txVerdict maps the pool's answer to a gossiped transaction to its gossip
// verdict (docs/wire.md, "Transactions topic"): a newly admitted ready
// transaction is relayed; what an honest peer may send in a race (already
// known, included meanwhile, pool full, a nonce gap or a future
// transaction, a balance or fee race) is ignored; what no honest peer sends
// (malformed, too large, bad signature, another chain, a fee below the
// chain minimum) is rejected. A local state error is ignored.
func txVerdict(st txpool.Status, err error) p2p.Verdict {
	if err == nil {
		if st == txpool.Ready {
			return p2p.Accept
		}
		return p2p.Ignore // future: kept, not relayed
	}
	var re *txpool.RefusedError
	if !errors.As(err, &re) {
		return p2p.Ignore
	}
	switch re.Reason {
	case txpool.ReasonMalformed, txpool.ReasonTooLarge, txpool.ReasonBadSignature,
		txpool.ReasonWrongChain, txpool.ReasonFeeTooLow:
		return p2p.Reject
	default:
		return p2p.Ignore
	}
}

// HandleTransaction admits a gossiped transaction to the pool, which
// verifies its signature once (the shared tx.SigCache: the block builder and
// importer find it there).
func (h *gossipHandler) HandleTransaction(_ context.Context, _ peer.ID, t *tx.Tx) p2p.Verdict {
	n := (*Node)(h)
	if n.pool == nil {
		return p2p.Ignore
	}
	_, st, err := n.pool.AddTx(t)
	if err != nil {
		var re *txpool.RefusedError
		if !errors.As(err, &re) {
			n.log.Debug("Gossiped transaction not checked", zap.Error(err))
		}
	}
	return txVerdict(st, err)
}

// apiPool is the pool as the API sees it: a transaction POST /tx admits is

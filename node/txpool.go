package node

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/node/engine"
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
		if _, err := tr.Sync(); err != nil {
			log.Debug("Pool update without the retracted branch", zap.Error(err))
		}
	}
}

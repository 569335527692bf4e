package node

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/p2p"
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
			n.pool.Expire()
			continue
		}
		included, retracted, err := n.branchTxs(last, best)
		if err != nil {
			// A pruned old head: re-check everything against the new state.
			log.Debug("Pool update without the retracted branch", zap.Error(err))
		}
		n.pool.Update(bestState{n}, included, retracted)
		n.pool.Expire()
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
// published on the transactions topic. A resubmission of a transaction the
// pool holds as ready is published again (gossipsub drops it if it was seen
// in the last two minutes), so a transaction first submitted while the node
// had no peers still gets out.
type apiPool struct{ n *Node }

func (p apiPool) Add(raw []byte) (tx.Hash, txpool.Status, error) {
	h, st, err := p.n.pool.Add(raw)
	var re *txpool.RefusedError
	publish := err == nil || (errors.As(err, &re) && re.Reason == txpool.ReasonAlreadyKnown && st == txpool.Ready)
	if publish && p.n.netA != nil {
		if t, _, ok := p.n.pool.Get(h); ok {
			p.n.netA.PublishTransaction(t)
		}
	}
	return h, st, err
}

func (p apiPool) Get(h tx.Hash) (*tx.Tx, txpool.Status, bool) { return p.n.pool.Get(h) }

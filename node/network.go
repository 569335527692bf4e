package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node/engine"
	"github.com/flarechain/flare-node/p2p"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// requestTimeout bounds one sync request (the engine times requests out on
// its own clock as well).
const requestTimeout = 5 * time.Second

// netAdapter is the engine's Network: publishing goes to gossipsub, requests
// run on their own goroutine and report back through Engine.OnResponse.
type netAdapter struct {
	n *Node
	// ctx is the run's context (set by Run before the engine acts).
	mu  sync.Mutex
	ctx context.Context
	wg  sync.WaitGroup
}

func (a *netAdapter) context() context.Context {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx == nil {
		return context.Background()
	}
	return a.ctx
}

func (a *netAdapter) PublishBlock(b asf.Block) {
	ctx := a.context()
	if err := a.n.net.PublishBlock(ctx, asf.BlockToPB(b)); err != nil && ctx.Err() == nil {
		a.n.log.Warn("publish block", zap.Uint64("number", b.Header.Number), zap.Error(err))
	}
}

func (a *netAdapter) PublishVote(v checkpoint.SignedVote) {
	ctx := a.context()
	if err := a.n.net.PublishVote(ctx, v); err != nil && ctx.Err() == nil {
		a.n.log.Warn("Failed to broadcast checkpoint vote", zap.Uint64("checkpoint", v.Target.Number), zap.Error(err))
	}
}

func (a *netAdapter) PublishCertificate(c checkpoint.Certificate) {
	ctx := a.context()
	if err := a.n.net.PublishCertificate(ctx, c); err != nil && ctx.Err() == nil {
		a.n.log.Warn("Failed to broadcast checkpoint certificate", zap.Uint64("checkpoint", c.Target.Number), zap.Error(err))
	}
}

// PublishTransaction gossips a transaction the API admitted.
func (a *netAdapter) PublishTransaction(t *tx.Tx) {
	ctx := a.context()
	if err := a.n.net.PublishTransaction(ctx, t); err != nil && ctx.Err() == nil {
		a.n.log.Warn("Failed to broadcast transaction", zap.Stringer("hash", t.Hash()), zap.Error(err))
	}
}

// Request runs req against peer p on its own goroutine and hands the
// outcome to the engine.
func (a *netAdapter) Request(p engine.PeerID, id uint64, req engine.Request) {
	ctx := a.context()
	if ctx.Err() != nil {
		return
	}
	pid, err := peer.Decode(string(p))
	if err != nil {
		return
	}
	a.wg.Go(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		resp := a.do(rctx, pid, req)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err := a.n.engine.OnResponse(ctx, p, id, resp); err != nil && ctx.Err() == nil {
			a.n.fail(err)
		}
	})
}

func (a *netAdapter) do(ctx context.Context, p peer.ID, req engine.Request) engine.Response {
	net := a.n.net
	switch req.Kind {
	case engine.ReqStatus:
		st, err := net.RequestStatus(ctx, p)
		if err != nil {
			return engine.Response{Err: err}
		}
		s, err := statusFromPB(st)
		return engine.Response{Status: s, Err: err}
	case engine.ReqBlocks:
		pbs, unavailable, err := net.RequestBlocks(ctx, p, req.Start, req.Count)
		if err != nil {
			return engine.Response{Err: err}
		}
		blocks := make([]asf.Block, 0, len(pbs))
		for _, pb := range pbs {
			b, err := asf.BlockFromPB(pb)
			if err != nil {
				return engine.Response{Err: err}
			}
			blocks = append(blocks, b)
		}
		return engine.Response{Blocks: blocks, Unavailable: unavailable}
	case engine.ReqCertificates:
		certs, unavailable, err := net.RequestCertificates(ctx, p, req.Start, req.Count)
		return engine.Response{Certificates: certs, Unavailable: unavailable, Err: err}
	case engine.ReqFinalityProof:
		proof, unavailable, err := net.RequestFinalityProof(ctx, p)
		return engine.Response{Proof: proof, Unavailable: unavailable, Err: err}
	case engine.ReqVotes:
		// Signatures and the validator index are checked by the engine.
		votes, unavailable, err := net.RequestVotes(ctx, p, req.Key, req.Start, req.Count)
		return engine.Response{Votes: votes, Unavailable: unavailable, Err: err}
	case engine.ReqBlocksByHash:
		pbs, unavailable, err := net.RequestBlocksByHash(ctx, p, req.Hash, req.Count)
		if err != nil {
			return engine.Response{Err: err}
		}
		blocks, err := blocksByHashFromPB(p, req.Hash, pbs)
		if err != nil {
			return engine.Response{Err: err}
		}
		return engine.Response{Blocks: blocks, Unavailable: unavailable}
	}
	return engine.Response{Err: errors.New("unknown request kind")}
}

// blocksByHashFromPB converts the answer to a blocks-by-hash request for h
// and checks what package p2p cannot (it does not hash headers): the first
// block is the one with hash h and each next block is the parent of the one
// before it.
func blocksByHashFromPB(p peer.ID, h checkpoint.Hash, pbs []*flarepb.Block) ([]asf.Block, error) {
	blocks := make([]asf.Block, 0, len(pbs))
	want := h
	for i, pb := range pbs {
		b, err := asf.BlockFromPB(pb)
		if err != nil {
			return nil, fmt.Errorf("blocks by hash from %s: %w: %w", p, p2p.ErrBadResponse, err)
		}
		if got := b.Hash(); got != want {
			what := "the parent of the block before it"
			if i == 0 {
				what = "the requested block"
			}
			return nil, fmt.Errorf("blocks by hash from %s: %w: block %d (%s) is not %s (%s)", p, p2p.ErrBadResponse, b.Header.Number, got, what, want)
		}
		want = b.Header.ParentHash
		blocks = append(blocks, b)
	}
	return blocks, nil
}

func statusFromPB(st *flarepb.Status) (engine.Status, error) {
	var s engine.Status
	g, err := checkpoint.HashFromBytes(st.GetGenesisHash())
	if err != nil {
		return s, err
	}
	s.Genesis = g
	if s.Best, err = checkpoint.CheckpointFromPB(st.GetBest()); err != nil {
		return s, err
	}
	if s.Justified, err = checkpoint.CheckpointFromPB(st.GetJustified()); err != nil {
		return s, err
	}
	if s.Finalized, err = checkpoint.CheckpointFromPB(st.GetFinalized()); err != nil {
		return s, err
	}
	return s, nil
}

// gossipHandler implements p2p.GossipHandler: each gossip message is fully
// processed by the engine inside the topic validator and the outcome is
// mapped to accept, ignore or reject.
type gossipHandler Node

func toP2P(v engine.Verdict) p2p.Verdict {
	switch v {
	case engine.Accept:
		return p2p.Accept
	case engine.Reject:
		return p2p.Reject
	default:
		return p2p.Ignore
	}
}

// The validator's context times out (pubsub validation deadline); once the
// engine changes state its writes must not be cut short by it, so an error
// here is a real local failure.
func (h *gossipHandler) HandleVote(ctx context.Context, from peer.ID, v checkpoint.SignedVote) p2p.Verdict {
	n := (*Node)(h)
	verdict, err := n.engine.OnVote(context.WithoutCancel(ctx), engine.PeerID(from.String()), v)
	if err != nil {
		n.fail(err)
		return p2p.Ignore
	}
	return toP2P(verdict)
}

func (h *gossipHandler) HandleCertificate(ctx context.Context, from peer.ID, c checkpoint.Certificate) p2p.Verdict {
	n := (*Node)(h)
	verdict, err := n.engine.OnCertificate(context.WithoutCancel(ctx), engine.PeerID(from.String()), c)
	if err != nil {
		n.fail(err)
		return p2p.Ignore
	}
	return toP2P(verdict)
}

func (h *gossipHandler) HandleBlock(ctx context.Context, from peer.ID, pb *flarepb.Block) p2p.Verdict {
	n := (*Node)(h)
	b, err := asf.BlockFromPB(pb)
	if err != nil {
		return p2p.Reject
	}
	verdict, err := n.engine.OnBlock(context.WithoutCancel(ctx), engine.PeerID(from.String()), b)
	if err != nil {
		n.fail(err)
		return p2p.Ignore
	}
	return toP2P(verdict)
}

// syncHandler answers peers' catch-up requests from the engine's read-only
// Serve methods.
type syncHandler Node

func (h *syncHandler) Status(ctx context.Context) *flarepb.Status {
	st := (*Node)(h).engine.ServeStatus()
	return &flarepb.Status{
		GenesisHash: st.Genesis[:],
		Best:        checkpoint.CheckpointToPB(st.Best),
		Justified:   checkpoint.CheckpointToPB(st.Justified),
		Finalized:   checkpoint.CheckpointToPB(st.Finalized),
	}
}

func (h *syncHandler) BlocksByRange(ctx context.Context, start uint64, count uint32) ([]*flarepb.Block, bool) {
	blocks, unavailable := (*Node)(h).engine.ServeBlocks(start, count)
	out := make([]*flarepb.Block, len(blocks))
	for i, b := range blocks {
		out[i] = asf.BlockToPB(b)
	}
	return out, unavailable
}

func (h *syncHandler) CertificatesByRange(ctx context.Context, start uint64, count uint32) ([]checkpoint.Certificate, bool) {
	return (*Node)(h).engine.ServeCertificates(ctx, start, count)
}

func (h *syncHandler) FinalityProof(ctx context.Context) (*checkpoint.FinalityProof, bool) {
	return (*Node)(h).engine.ServeFinalityProof()
}

func (h *syncHandler) VotesByValidator(ctx context.Context, pub ed25519.PublicKey, from uint64, count uint32) ([]checkpoint.SignedVote, bool) {
	return (*Node)(h).engine.ServeVotes(ctx, pub, from, count)
}

func (h *syncHandler) BlocksByHash(ctx context.Context, hash checkpoint.Hash, count uint32) ([]*flarepb.Block, bool) {
	blocks, unavailable := (*Node)(h).engine.ServeBlocksByHash(hash, count)
	out := make([]*flarepb.Block, len(blocks))
	for i, b := range blocks {
		out[i] = asf.BlockToPB(b)
	}
	return out, unavailable
}

// certSource is the checkpoint database's read side for peers.
type certSource struct{ n *Node }

func (c certSource) Certificates(ctx context.Context, from, to uint64, limit int) ([]checkpoint.Certificate, error) {
	return c.n.cpdb.Certificates(ctx, from, to, limit)
}

func (c certSource) OldestRetained() uint64 { return c.n.cpdb.OldestRetained() }

// runPeers tells the engine about peers: every new connection at once, and
// every connection that went away at the next reconciliation.
func (n *Node) runPeers(ctx context.Context) error {
	events := n.net.PeerEvents()
	t := time.NewTicker(peerReconcileInterval)
	defer t.Stop()
	known := make(map[engine.PeerID]bool)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case p, ok := <-events:
			if !ok {
				return ctx.Err()
			}
			id := engine.PeerID(p.String())
			known[id] = true
			n.engine.OnPeerConnected(ctx, id)
		case <-t.C:
			connected := make(map[engine.PeerID]bool)
			for _, p := range n.net.Peers() {
				id := engine.PeerID(p.String())
				connected[id] = true
				if !known[id] {
					known[id] = true
					n.engine.OnPeerConnected(ctx, id)
				}
			}
			for id := range known {
				if !connected[id] {
					delete(known, id)
					n.engine.OnPeerDisconnected(id)
				}
			}
		}
	}
}

// peerReconcileInterval is how often the engine's peer list is reconciled
// with the host's connections.
const peerReconcileInterval = 2 * time.Second

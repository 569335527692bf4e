package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/p2p"
	"github.com/flarechain/flare-node/wire/flarepb"
)

const (
	// syncInterval is how often connected peers are asked for their status.
	syncInterval = 2 * time.Second
	// syncRequestTimeout bounds one request/response exchange.
	syncRequestTimeout = 5 * time.Second
	blocksPerRequest   = 128
	certsPerRequest    = 256
)

// gadgetBroadcaster publishes the gadget's votes and certificates.
type gadgetBroadcaster Node

func (b *gadgetBroadcaster) BroadcastVote(ctx context.Context, v checkpoint.SignedVote) error {
	return b.net.PublishVote(ctx, v)
}

func (b *gadgetBroadcaster) BroadcastCertificate(ctx context.Context, c checkpoint.Certificate) error {
	return b.net.PublishCertificate(ctx, c)
}

// gossipHandler implements p2p.GossipHandler: it does the full processing of
// each gossip message inside the topic validator and maps the outcome to
// accept, ignore or reject.
type gossipHandler Node

func verdictOf(v finality.Verdict) p2p.Verdict {
	switch v {
	case finality.VerdictAccept:
		return p2p.Accept
	case finality.VerdictReject:
		return p2p.Reject
	default:
		return p2p.Ignore
	}
}

func (h *gossipHandler) HandleVote(ctx context.Context, from peer.ID, v checkpoint.SignedVote) p2p.Verdict {
	n := (*Node)(h)
	if n.gadget == nil {
		return p2p.Ignore
	}
	// The validator's context times out (pubsub validation deadline); once
	// the gadget changes state its writes must not be cut short by it, so
	// an error here is a real local storage failure.
	verdict, err := n.gadget.OnVote(context.WithoutCancel(ctx), v)
	if err != nil {
		n.fail(fmt.Errorf("finality gadget (vote): %w", err))
		return p2p.Ignore
	}
	return verdictOf(verdict)
}

func (h *gossipHandler) HandleCertificate(ctx context.Context, from peer.ID, c checkpoint.Certificate) p2p.Verdict {
	n := (*Node)(h)
	if n.gadget == nil {
		return p2p.Ignore
	}
	verdict, err := n.gadget.OnCertificate(context.WithoutCancel(ctx), c)
	if err != nil {
		n.fail(fmt.Errorf("finality gadget (certificate): %w", err))
		return p2p.Ignore
	}
	return verdictOf(verdict)
}

func (h *gossipHandler) HandleBlock(ctx context.Context, from peer.ID, pb *flarepb.Block) p2p.Verdict {
	n := (*Node)(h)
	b, err := asf.BlockFromPB(pb)
	if err != nil {
		return p2p.Reject
	}
	verdict, _ := n.importBlock(ctx, b, from, true)
	return verdict
}

// importBlock imports one block and hands new best-chain checkpoints to the
// gadget. Unknown parents trigger a sync with the sender.
func (n *Node) importBlock(ctx context.Context, b asf.Block, from peer.ID, notify bool) (p2p.Verdict, error) {
	n.importMu.Lock()
	res, err := n.chain.Import(ctx, b)
	n.importMu.Unlock()
	switch {
	case err == nil:
	case errors.Is(err, asf.ErrUnknownParent):
		n.requestSync(from)
		return p2p.Ignore, err
	case errors.Is(err, asf.ErrFutureBlock), errors.Is(err, asf.ErrConflictsFinalized):
		// Judged against local state (our clock, our finality): an honest
		// peer with a skewed clock or a late block is not penalized.
		n.log.Debug("ignored block", zap.Uint64("number", b.Header.Number), zap.Stringer("peer", from), zap.Error(err))
		return p2p.Ignore, err
	case errors.Is(err, asf.ErrInvalidBlock):
		n.log.Debug("rejected block", zap.Uint64("number", b.Header.Number), zap.Stringer("peer", from), zap.Error(err))
		return p2p.Reject, err
	default:
		if ctx.Err() == nil {
			n.fail(fmt.Errorf("import block: %w", err))
		}
		return p2p.Ignore, err
	}
	if res.AlreadyKnown {
		return p2p.Ignore, nil
	}
	if notify {
		n.onCheckpoints(ctx, res.Checkpoints)
	}
	return p2p.Accept, nil
}

// syncHandler answers peers' catch-up requests.
type syncHandler Node

func (h *syncHandler) Status(ctx context.Context) *flarepb.Status {
	n := (*Node)(h)
	n.importMu.Lock()
	best := n.chain.Best()
	fin := n.chain.Finalized()
	n.importMu.Unlock()
	genesis := GenesisHash(n.spec)
	st := &flarepb.Status{
		GenesisHash: genesis[:],
		Best:        checkpoint.CheckpointToPB(checkpoint.Checkpoint{Number: best.Number, Hash: best.Hash()}),
		Finalized:   checkpoint.CheckpointToPB(fin),
		Justified:   checkpoint.CheckpointToPB(fin),
	}
	if n.gadget != nil {
		st.Justified = checkpoint.CheckpointToPB(n.gadget.LatestJustified())
		st.Finalized = checkpoint.CheckpointToPB(n.gadget.LatestFinalized())
	}
	return st
}

func (h *syncHandler) BlocksByRange(ctx context.Context, start uint64, count uint32) ([]*flarepb.Block, bool) {
	n := (*Node)(h)
	n.importMu.Lock()
	blocks, err := n.chain.BlocksByRange(start, int(count))
	n.importMu.Unlock()
	if err != nil || len(blocks) == 0 {
		return nil, true
	}
	out := make([]*flarepb.Block, len(blocks))
	for i, b := range blocks {
		out[i] = asf.BlockToPB(b)
	}
	return out, false
}

func (h *syncHandler) CertificatesByRange(ctx context.Context, start uint64, count uint32) ([]checkpoint.Certificate, bool) {
	n := (*Node)(h)
	if n.cpdb == nil || count == 0 {
		return nil, true
	}
	certs, err := n.cpdb.Certificates(ctx, start, start+uint64(count)-1, int(count))
	if err != nil || len(certs) == 0 {
		return nil, true
	}
	return certs, false
}

type syncRequest struct{ peer peer.ID }

// syncing reports whether a catch-up round runs: then no blocks are authored
// and no votes cast on a head that is known to be stale.
func (n *Node) syncing() bool { return n.syncActive.Load() }

func (n *Node) requestSync(p peer.ID) {
	if p == "" {
		return
	}
	select {
	case n.syncReq <- syncRequest{peer: p}:
	default: // a sync is already queued; it will catch up as well
	}
}

// runSync is the catch-up task: on every new peer, on request (unknown
// parent) and periodically, compare status with peers and fetch what we lack:
// blocks by range first, then certificates by range from our finalized
// checkpoint upwards. While it runs the node neither authors nor votes; once
// caught up it offers the best chain's latest checkpoint to the gadget.
func (n *Node) runSync(ctx context.Context) error {
	t := time.NewTicker(syncInterval)
	defer t.Stop()
	events := n.net.PeerEvents()
	for {
		var peers []peer.ID
		select {
		case <-ctx.Done():
			return ctx.Err()
		case p := <-events:
			peers = []peer.ID{p}
		case r := <-n.syncReq:
			peers = []peer.ID{r.peer}
		case <-t.C:
			peers = n.net.Peers()
		}
		for _, p := range peers {
			if err := n.syncWith(ctx, p); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				n.log.Debug("sync with peer failed", zap.Stringer("peer", p), zap.Error(err))
			}
		}
	}
}

func (n *Node) syncWith(ctx context.Context, p peer.ID) error {
	rctx, cancel := context.WithTimeout(ctx, syncRequestTimeout)
	st, err := n.net.RequestStatus(rctx, p)
	cancel()
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	peerBest, err := checkpoint.CheckpointFromPB(st.GetBest())
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	peerJustified, err := checkpoint.CheckpointFromPB(st.GetJustified())
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	n.importMu.Lock()
	ourBest := n.chain.Best().Number
	n.importMu.Unlock()
	var ourJustified uint64
	if n.gadget != nil {
		ourJustified = n.gadget.LatestJustified().Number
	}
	blocksBehind := peerBest.Number > ourBest+1
	certsBehind := n.gadget != nil && peerJustified.Number > ourJustified
	if !blocksBehind && !certsBehind {
		return nil
	}
	// Production and voting pause only once the peer's claim proves real
	// (a block or certificate of it imported): a peer that merely claims to
	// be ahead and then stalls cannot silence this validator.
	start := time.Now()
	defer func() {
		if n.syncActive.Swap(false) {
			n.offerLatestCheckpoint(ctx)
		}
	}()
	n.log.Info("Syncing with peer", zap.Stringer("peer", p),
		zap.Uint64("our_best", ourBest), zap.Uint64("peer_best", peerBest.Number),
		zap.Uint64("our_justified", ourJustified), zap.Uint64("peer_justified", peerJustified.Number))
	imported := 0
	if blocksBehind {
		if imported, err = n.syncBlocks(ctx, p, ourBest+1, peerBest.Number); err != nil {
			return err
		}
	}
	applied := 0
	if certsBehind {
		if applied, err = n.syncCertificates(ctx, p, peerJustified.Number); err != nil {
			return err
		}
	}
	n.log.Info("Sync round complete", zap.Stringer("peer", p), zap.Int("blocks", imported),
		zap.Int("certificates", applied), zap.Duration("took", time.Since(start)))
	return nil
}

// syncBlocks fetches blocks [from, to] by range. When the first block does not
// attach (we are on a fork) it restarts once from our finalized block.
func (n *Node) syncBlocks(ctx context.Context, p peer.ID, from, to uint64) (int, error) {
	imported := 0
	restarted := false
outer:
	for next := from; next <= to; {
		count := uint32(min(uint64(blocksPerRequest), to-next+1))
		rctx, cancel := context.WithTimeout(ctx, syncRequestTimeout)
		blocks, unavailable, err := n.net.RequestBlocks(rctx, p, next, count)
		cancel()
		if err != nil {
			return imported, fmt.Errorf("blocks %d+%d: %w", next, count, err)
		}
		if unavailable || len(blocks) == 0 {
			return imported, nil
		}
		for _, pb := range blocks {
			b, err := asf.BlockFromPB(pb)
			if err != nil {
				return imported, fmt.Errorf("peer sent malformed block: %w", err)
			}
			_, err = n.importBlock(ctx, b, "", false)
			if errors.Is(err, asf.ErrUnknownParent) && !restarted {
				restarted = true
				n.importMu.Lock()
				fin := n.chain.Finalized()
				n.importMu.Unlock()
				next = fin.Number*n.spec.CheckpointInterval + 1
				continue outer
			}
			if err != nil {
				return imported, fmt.Errorf("import synced block %d: %w", b.Header.Number, err)
			}
			imported++
			n.syncActive.Store(true)
			next = b.Header.Number + 1
		}
	}
	return imported, nil
}

// syncCertificates fetches certificates from our finalized checkpoint up to
// the peer's justified one and hands them to the gadget (which verifies each
// fully and applies them in order).
func (n *Node) syncCertificates(ctx context.Context, p peer.ID, upTo uint64) (int, error) {
	applied := 0
	next := n.gadget.LatestFinalized().Number + 1
	for next <= upTo {
		count := uint32(min(uint64(certsPerRequest), upTo-next+1))
		rctx, cancel := context.WithTimeout(ctx, syncRequestTimeout)
		certs, unavailable, err := n.net.RequestCertificates(rctx, p, next, count)
		cancel()
		if err != nil {
			return applied, fmt.Errorf("certificates %d+%d: %w", next, count, err)
		}
		if unavailable || len(certs) == 0 {
			return applied, nil
		}
		for _, c := range certs {
			verdict, err := n.gadget.OnCertificate(context.WithoutCancel(ctx), c)
			if err != nil {
				// A local storage failure, not the peer's fault: stop.
				n.fail(fmt.Errorf("finality gadget (synced certificate): %w", err))
				return applied, err
			}
			if verdict == finality.VerdictReject {
				return applied, fmt.Errorf("peer sent an invalid certificate for checkpoint %d", c.Target.Number)
			}
			applied++
			n.syncActive.Store(true)
			next = max(next, c.Target.Number+1)
		}
	}
	return applied, nil
}

// offerLatestCheckpoint hands the best chain's latest checkpoint block to the
// gadget after a sync round, so that a caught-up validator votes again.
func (n *Node) offerLatestCheckpoint(ctx context.Context) {
	if n.gadget == nil || ctx.Err() != nil {
		return
	}
	n.importMu.Lock()
	best := n.chain.Best().Number
	cpNum := best / n.spec.CheckpointInterval
	hash, ok := n.chain.CanonicalHash(cpNum * n.spec.CheckpointInterval)
	n.importMu.Unlock()
	if !ok || cpNum == 0 {
		return
	}
	n.onCheckpoints(ctx, []checkpoint.Checkpoint{{Number: cpNum, Hash: hash}})
}

func (h *syncHandler) FinalityProof(ctx context.Context) (*checkpoint.FinalityProof, bool) {
	n := (*Node)(h)
	if n.gadget == nil {
		return nil, false
	}
	p, ok := n.gadget.FinalityProof()
	return &p, ok
}

package p2p

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"go.uber.org/zap"
)

// maintainBootnode keeps a connection to bootnode b until Close: it dials
// when not connected, backs off exponentially (with jitter) after failures,
// and redials as soon as the connection drops.
func (n *Network) maintainBootnode(b peer.AddrInfo) {
	defer n.wg.Done()
	log := n.log.With(zap.Stringer("bootnode", b.ID))
	down := n.bootnodeDown[b.ID]
	backoff := n.backoffMin
	for {
		if n.host.Network().Connectedness(b.ID) != network.Connected {
			if err := n.dialBootnode(b); err != nil {
				if n.ctx.Err() != nil {
					return
				}
				n.dialFailures.Add(1)
				wait := jitter(backoff)
				log.Debug("bootnode dial failed", zap.Error(err), zap.Duration("retry_in", wait))
				if !sleepCtx(n.ctx, wait) {
					return
				}
				backoff = min(2*backoff, n.backoffMax)
				continue
			}
			log.Info("connected to bootnode")
			backoff = n.backoffMin
		}
		// Connected: wait for a disconnect (or re-check now and then, in case
		// an event was coalesced).
		t := time.NewTimer(n.reconnectCheck)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-down:
			log.Info("bootnode disconnected; reconnecting")
		case <-t.C:
		}
		t.Stop()
	}
}

func (n *Network) dialBootnode(b peer.AddrInfo) error {
	// Our own backoff governs redials; the swarm's per-address backoff would
	// otherwise delay the reconnect to a restarted bootnode by minutes.
	if sw, ok := n.host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(b.ID)
	}
	n.host.Peerstore().AddAddrs(b.ID, b.Addrs, peerstore.PermanentAddrTTL)
	ctx, cancel := context.WithTimeout(n.ctx, n.dialTimeout)
	defer cancel()
	return n.host.Connect(ctx, b)
}

// jitter spreads d by +-20%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d*4/5 + rand.N(d*2/5+1)
}

// sleepCtx waits d or until ctx is done; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

package p2p

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/zap"
)

// Discovery tunables (copied into each Network so tests can shorten them).
const (
	// defaultDiscoveryTick is how often the connector checks the peer count
	// (it also runs at once when a peer disconnects or mDNS finds one).
	defaultDiscoveryTick = time.Second
	// defaultWalkMin / defaultWalkMax bound the interval between random
	// walks while the node is below its peer target: the interval doubles
	// after a walk that found no new peer and resets after one that did.
	defaultWalkMin = 2 * time.Second
	defaultWalkMax = time.Minute
	// walkTimeout bounds one random walk.
	walkTimeout = 10 * time.Second
	// dialParallelism bounds concurrent dials of one connector round.
	dialParallelism = 8
	// mdnsAddrTTL is how long addresses found by mDNS stay in the peerstore.
	mdnsAddrTTL = 10 * time.Minute
	// defaultBookDebounce: address book changes are written this long after
	// the first one.
	defaultBookDebounce = time.Second
)

// targetPeers is the number of connected peers the connector dials up to:
// the connection manager's low water mark (4/5 of MaxPeers), so that the
// manager does not immediately trim what discovery dialled.
func targetPeers(maxPeers int) int { return max(1, maxPeers*4/5) }

// outboundTarget bounds the peers the connector itself dials: half the
// target, so that in a network larger than the target the other half of
// every node's slots is left to inbound connections and nodes do not all
// dial up to the target, exceed the high water mark and trim each other in
// a loop.
func outboundTarget(target int) int { return max(1, target/2) }

// wantDials is how many more peers the connector should dial now.
func (n *Network) wantDials() int {
	_, out := n.PeerCounts()
	return min(n.target-n.connectedCount(), outboundTarget(n.target)-out)
}

// startDiscovery starts the Kademlia DHT (server mode, this chain's
// protocol prefix, providers and values disabled: it is used only to find
// peers), mDNS when configured, the connector loop and the address book
// saver. Called from Start with n.mu held.
func (n *Network) startDiscovery() error {
	d, err := dht.New(n.host,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(DHTProtocolPrefix(n.genesis)),
		dht.DisableProviders(),
		dht.DisableValues(),
		dht.AddressFilter(n.policy.filter),
		dht.BootstrapPeersFunc(n.seedPeers),
	)
	if err != nil {
		return fmt.Errorf("start DHT: %w", err)
	}
	n.dht = d
	if n.cfg.MDNS {
		if n.hasLANListenAddr() {
			svc := mdns.NewMdnsService(n.host, MDNSServiceName(n.genesis), mdnsNotifee{n})
			if err := svc.Start(); err != nil {
				n.log.Warn("mDNS not started", zap.Error(err))
			} else {
				n.mdns = svc
				n.log.Info("mDNS discovery started", zap.String("service", MDNSServiceName(n.genesis)))
			}
		} else {
			n.log.Info("mDNS discovery off: the node listens on loopback addresses only")
		}
	}
	n.wg.Add(1)
	go n.connectorLoop()
	if n.book != nil {
		n.wg.Add(1)
		go n.saveLoop()
	}
	return nil
}

// hasLANListenAddr reports whether the host listens on an address other
// peers on the local network can reach (not loopback).
func (n *Network) hasLANListenAddr() bool {
	for _, a := range n.host.Network().ListenAddresses() {
		if !manet.IsIPLoopback(a) {
			return true
		}
	}
	return false
}

// seedPeers are the bootnodes and the address book (the DHT's bootstrap
// peers, used when its routing table is empty).
func (n *Network) seedPeers() []peer.AddrInfo {
	out := append([]peer.AddrInfo(nil), n.bootnodes...)
	if n.book != nil {
		out = append(out, n.book.entries()...)
	}
	return out
}

// nudge makes the connector run a round now.
func (n *Network) nudge() {
	select {
	case n.dialNow <- struct{}{}:
	default:
	}
}

// dialBackoff is the per-peer redial state of the connector.
type dialBackoff struct {
	next  time.Time
	delay time.Duration
}

// connectorLoop keeps the node connected to targetPeers peers, at most
// outboundTarget of them dialled by itself: every tick
// (or when nudged) it dials known, unconnected peers (bootnodes, the address
// book, peers learned from the DHT, identify or mDNS) whose backoff expired,
// and it runs a random DHT walk when that is due.
func (n *Network) connectorLoop() {
	defer n.wg.Done()
	backoff := make(map[peer.ID]*dialBackoff)
	walkEvery := n.walkMin
	var nextWalk time.Time
	walking := false
	walkDone := make(chan bool, 1)
	t := time.NewTicker(n.discoveryTick)
	defer t.Stop()
	for {
		n.rounds.Add(1)
		if n.wantDials() > 0 {
			n.dialRound(backoff)
			if n.ctx.Err() != nil {
				break
			}
			// One walk at a time, in the background: a walk may wait for
			// slow or dead peers while dialing goes on.
			if !walking && n.wantDials() > 0 && !time.Now().Before(nextWalk) && n.dht.RoutingTable().Size() > 0 {
				walking = true
				n.wg.Add(1)
				go func() {
					defer n.wg.Done()
					walkDone <- n.randomWalk()
				}()
			}
		}
		select {
		case <-n.ctx.Done():
		case <-t.C:
		case <-n.dialNow:
		case learned := <-walkDone:
			walking = false
			if learned {
				walkEvery = n.walkMin
			} else {
				walkEvery = min(2*walkEvery, n.walkMax)
			}
			nextWalk = time.Now().Add(jitter(walkEvery))
		}
		if n.ctx.Err() != nil {
			break
		}
	}
}

func (n *Network) connectedCount() int { return len(n.host.Network().Peers()) }

// candidates returns the peers the connector may dial now, with the
// addresses it may dial them at, in random order.
func (n *Network) candidates(backoff map[peer.ID]*dialBackoff, now time.Time) []peer.AddrInfo {
	self := n.host.ID()
	ps := n.host.Peerstore()
	addrs := make(map[peer.ID][]ma.Multiaddr)
	add := func(p peer.ID, as []ma.Multiaddr) {
		if p == self {
			n.noteSelfID(as)
			return
		}
		for _, a := range as {
			if n.policy.isConfigured(p, a) || n.policy.learnedAllowed(a) {
				addrs[p] = appendUnique(addrs[p], a)
			}
		}
	}
	for _, b := range n.bootnodes {
		add(b.ID, b.Addrs)
	}
	if n.book != nil {
		for _, e := range n.book.entries() {
			add(e.ID, e.Addrs)
		}
	}
	for _, p := range ps.PeersWithAddrs() {
		add(p, ps.Addrs(p))
	}
	out := make([]peer.AddrInfo, 0, len(addrs))
	for p, as := range addrs {
		if len(as) == 0 || n.host.Network().Connectedness(p) == network.Connected {
			continue
		}
		if _, boot := n.policy.configured[p]; !boot {
			// Identified as a node of another chain or kind. (A flare node
			// that is shutting down withdraws its sync protocol before it
			// disconnects, but keeps the DHT protocol.)
			if protos, err := ps.GetProtocols(p); err == nil && len(protos) > 0 &&
				!containsProtocol(protos, n.syncProto) && !containsProtocol(protos, n.dhtProto) {
				continue
			}
		}
		if b := backoff[p]; b != nil && now.Before(b.next) {
			continue
		}
		out = append(out, peer.AddrInfo{ID: p, Addrs: as})
	}
	// Forget backoff state of peers no longer known.
	for p, b := range backoff {
		if _, ok := addrs[p]; !ok && now.After(b.next) {
			delete(backoff, p)
		}
	}
	mrand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func appendUnique(as []ma.Multiaddr, a ma.Multiaddr) []ma.Multiaddr {
	for _, x := range as {
		if x.Equal(a) {
			return as
		}
	}
	return append(as, a)
}

// dialRound dials up to wantDials candidates concurrently and waits for the
// dials.
func (n *Network) dialRound(backoff map[peer.ID]*dialBackoff) {
	want := n.wantDials()
	if want <= 0 {
		return
	}
	cands := n.candidates(backoff, time.Now())
	if len(cands) > want {
		cands = cands[:want]
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, dialParallelism)
	for _, c := range cands {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := n.dial(c)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				delete(backoff, c.ID)
				return
			}
			if n.ctx.Err() != nil {
				return
			}
			n.dialFailures.Add(1)
			b := backoff[c.ID]
			if b == nil {
				b = &dialBackoff{delay: n.backoffMin}
				backoff[c.ID] = b
			} else {
				b.delay = min(2*b.delay, n.backoffMax)
			}
			b.next = time.Now().Add(jitter(b.delay))
			n.log.Debug("dial failed", zap.Stringer("peer", c.ID), zap.Error(err), zap.Duration("retry_in", b.delay))
		})
	}
	wg.Wait()
}

func (n *Network) dial(ai peer.AddrInfo) error {
	// The connector's backoff governs redials; the swarm's per-address
	// backoff would otherwise delay the reconnect to a restarted peer by
	// minutes.
	if sw, ok := n.host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(ai.ID)
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.dialTimeout)
	defer cancel()
	if err := n.host.Connect(ctx, ai); err != nil {
		return err
	}
	if _, ok := n.policy.configured[ai.ID]; ok {
		n.log.Info("connected to bootnode", zap.Stringer("bootnode", ai.ID))
	} else {
		n.log.Debug("connected to discovered peer", zap.Stringer("peer", ai.ID))
	}
	return nil
}

// randomWalk looks up the peers closest to a random key in the DHT (which
// connects to the peers it queries on the way); it reports whether the walk
// learned of a peer the node was not connected to before.
func (n *Network) randomWalk() bool {
	before := make(map[peer.ID]bool)
	for _, p := range n.host.Peerstore().PeersWithAddrs() {
		before[p] = true
	}
	for _, p := range n.host.Network().Peers() {
		before[p] = true
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ctx, cancel := context.WithTimeout(n.ctx, walkTimeout)
	defer cancel()
	found, err := n.dht.GetClosestPeers(ctx, string(key))
	n.walks.Add(1)
	if err != nil && n.ctx.Err() == nil {
		n.log.Debug("random walk failed", zap.Error(err))
	}
	learned := false
	for _, p := range found {
		if !before[p] && p != n.host.ID() {
			learned = true
		}
	}
	for _, p := range n.host.Network().Peers() {
		if !before[p] {
			learned = true
		}
	}
	return learned
}

// mdnsNotifee adds peers found by mDNS to the peerstore and wakes the
// connector.
type mdnsNotifee struct{ n *Network }

func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	n := m.n
	if ai.ID == n.host.ID() || n.ctx.Err() != nil {
		return
	}
	addrs := n.policy.filter(ai.Addrs)
	if len(addrs) == 0 {
		return
	}
	n.host.Peerstore().AddAddrs(ai.ID, addrs, mdnsAddrTTL)
	n.log.Debug("mDNS found a peer", zap.Stringer("peer", ai.ID))
	n.nudge()
}

// jitter spreads d by +-20%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d*4/5 + mrand.N(d*2/5+1)
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

// noteSelfID checks addresses that a bootnode, the address book or a peer
// gave for this node's own peer id: one that is not an address of this
// host means another process runs with this node's key (a copy of its base
// path). libp2p refuses to dial its own id, so nothing else would show it;
// it is logged once per address and counted by SelfIDConflicts.
func (n *Network) noteSelfID(as []ma.Multiaddr) {
	own := append(n.host.Addrs(), n.host.Network().ListenAddresses()...)
	for _, a := range as {
		if slices.ContainsFunc(own, a.Equal) {
			continue
		}
		s := a.String()
		n.selfMu.Lock()
		seen := n.selfConflicts[s]
		if !seen {
			if n.selfConflicts == nil {
				n.selfConflicts = make(map[string]bool)
			}
			n.selfConflicts[s] = true
		}
		n.selfMu.Unlock()
		if !seen {
			n.log.Warn(fmt.Sprintf("another node uses this node's key (peer id %s) at %s; two copies of one base path must never run", n.host.ID(), s),
				zap.Stringer("peer_id", n.host.ID()), zap.String("addr", s))
		}
	}
}

// SelfIDConflicts returns, sorted, the addresses at which a bootnode, the
// address book or a peer placed this node's own peer id that are not this
// host's addresses: another node runs with this node's key there.
func (n *Network) SelfIDConflicts() []string {
	n.selfMu.Lock()
	defer n.selfMu.Unlock()
	out := make([]string, 0, len(n.selfConflicts))
	for a := range n.selfConflicts {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

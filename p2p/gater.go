package p2p

import (
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// dialPolicy decides which addresses the node may dial.
//
//   - A bootnode's configured addresses are always dialable (any resolved
//     address when the bootnode was given by DNS name): the operator named
//     them.
//   - Every other address was learned (DHT, identify, mDNS, the address
//     book). It must be a TCP address on IPv4, IPv6 or DNS that is not
//     unspecified (0.0.0.0, ::), and it must be publicly routable unless
//     private addresses are allowed (Config.AllowPrivateIP).
type dialPolicy struct {
	allowPrivate bool
	// configured maps a bootnode to its configured addresses (as bytes);
	// a nil set means "any address" (DNS names resolve to addresses we
	// cannot know).
	configured map[peer.ID]map[string]bool
}

func newDialPolicy(bootnodes []peer.AddrInfo, allowPrivate bool) *dialPolicy {
	p := &dialPolicy{allowPrivate: allowPrivate, configured: make(map[peer.ID]map[string]bool, len(bootnodes))}
	for _, b := range bootnodes {
		set := make(map[string]bool, len(b.Addrs))
		for _, a := range b.Addrs {
			if isDNS(a) {
				set = nil
				break
			}
			set[string(a.Bytes())] = true
		}
		p.configured[b.ID] = set
	}
	return p
}

func isDNS(a ma.Multiaddr) bool {
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR:
			return true
		}
	}
	return false
}

// isConfigured reports whether a is a configured address of bootnode p.
func (d *dialPolicy) isConfigured(p peer.ID, a ma.Multiaddr) bool {
	set, ok := d.configured[p]
	if !ok {
		return false
	}
	return set == nil || set[string(a.Bytes())]
}

// learnedAllowed reports whether a learned address may be dialled,
// remembered or handed to the DHT.
func (d *dialPolicy) learnedAllowed(a ma.Multiaddr) bool {
	if len(a) < 2 {
		return false
	}
	switch a[0].Protocol().Code {
	case ma.P_IP4, ma.P_IP6, ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
	default:
		return false
	}
	if a[1].Protocol().Code != ma.P_TCP {
		return false
	}
	if manet.IsIPUnspecified(a) {
		return false
	}
	return d.allowPrivate || manet.IsPublicAddr(a)
}

// filter returns the learned addresses that pass the policy (the DHT's
// address filter).
func (d *dialPolicy) filter(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if d.learnedAllowed(a) {
			out = append(out, a)
		}
	}
	return out
}

// dialGater enforces the dialPolicy on every outbound dial of the host.
// Inbound connections are not gated here; their number is bounded by the
// resource and connection managers.
type dialGater struct{ policy *dialPolicy }

// InterceptPeerDial allows dialing any peer; addresses are checked below.
func (g *dialGater) InterceptPeerDial(peer.ID) bool { return true }

// InterceptAddrDial allows configured bootnode addresses and learned
// addresses that pass the policy.
func (g *dialGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return g.policy.isConfigured(p, a) || g.policy.learnedAllowed(a)
}

// InterceptAccept allows inbound connections.
func (g *dialGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured allows authenticated connections.
func (g *dialGater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}

// InterceptUpgraded allows upgraded connections.
func (g *dialGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

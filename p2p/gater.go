package p2p

import (
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// dialGater lets the host dial only the configured bootnodes, and only at
// their configured addresses (any resolved address when a bootnode was given
// by DNS name). Inbound connections are not gated here; their number is
// bounded by the resource and connection managers.
type dialGater struct {
	// addrs maps a bootnode to its configured addresses (as bytes); nil
	// means "any address" (DNS names resolve to addresses we cannot know).
	addrs map[peer.ID]map[string]bool
}

func newDialGater(bootnodes []peer.AddrInfo) *dialGater {
	g := &dialGater{addrs: make(map[peer.ID]map[string]bool, len(bootnodes))}
	for _, b := range bootnodes {
		set := make(map[string]bool, len(b.Addrs))
		for _, a := range b.Addrs {
			if isDNS(a) {
				set = nil
				break
			}
			set[string(a.Bytes())] = true
		}
		g.addrs[b.ID] = set
	}
	return g
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

// InterceptPeerDial allows dialing bootnodes only.
func (g *dialGater) InterceptPeerDial(p peer.ID) bool {
	_, ok := g.addrs[p]
	return ok
}

// InterceptAddrDial allows a bootnode's configured addresses only.
func (g *dialGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	set, ok := g.addrs[p]
	if !ok {
		return false
	}
	return set == nil || set[string(a.Bytes())]
}

// InterceptAccept allows inbound connections.
func (g *dialGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured allows authenticated connections.
func (g *dialGater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}

// InterceptUpgraded allows upgraded connections.
func (g *dialGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

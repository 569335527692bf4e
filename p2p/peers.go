package p2p

import (
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Connection directions of PeerInfo.Direction.
const (
	DirectionInbound  = "inbound"
	DirectionOutbound = "outbound"
)

// PeerInfo describes one connected peer.
type PeerInfo struct {
	// ID is the peer's libp2p identity.
	ID peer.ID `json:"peer_id"`
	// Addrs are the remote addresses of the open connections.
	Addrs []string `json:"addrs"`
	// Direction is the direction of the oldest open connection: "inbound"
	// (the peer dialled us) or "outbound".
	Direction string `json:"direction"`
	// ConnectedSince is when the oldest open connection was opened.
	ConnectedSince time.Time `json:"connected_since"`
	// GossipScore is the peer's gossipsub score as of the last score
	// inspection (about a second old).
	GossipScore float64 `json:"gossip_score"`
	// Mesh lists the gossip topics ("blocks", "votes", "certs") whose
	// mesh holds the peer.
	Mesh []string `json:"mesh"`
}

// PeerInfos returns the connected peers, ordered by peer id.
func (n *Network) PeerInfos() []PeerInfo {
	peers := n.host.Network().Peers()
	out := make([]PeerInfo, 0, len(peers))
	for _, p := range peers {
		conns := n.host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		oldest := conns[0]
		info := PeerInfo{ID: p, Mesh: n.mesh.topicsOf(p), GossipScore: n.PeerScore(p)}
		for _, c := range conns {
			if c.Stat().Opened.Before(oldest.Stat().Opened) {
				oldest = c
			}
			info.Addrs = append(info.Addrs, c.RemoteMultiaddr().String())
		}
		slices.Sort(info.Addrs)
		info.Addrs = slices.Compact(info.Addrs)
		info.Direction = directionName(oldest.Stat().Direction)
		info.ConnectedSince = oldest.Stat().Opened
		if info.Mesh == nil {
			info.Mesh = []string{}
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b PeerInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

func directionName(d network.Direction) string {
	if d == network.DirInbound {
		return DirectionInbound
	}
	return DirectionOutbound
}

// PeerCounts returns the number of connected peers by the direction of
// their oldest connection.
func (n *Network) PeerCounts() (inbound, outbound int) {
	for _, p := range n.host.Network().Peers() {
		conns := n.host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		oldest := conns[0]
		for _, c := range conns[1:] {
			if c.Stat().Opened.Before(oldest.Stat().Opened) {
				oldest = c
			}
		}
		if oldest.Stat().Direction == network.DirInbound {
			inbound++
		} else {
			outbound++
		}
	}
	return inbound, outbound
}

func containsProtocol(protos []protocol.ID, p protocol.ID) bool {
	return slices.Contains(protos, p)
}

// meshTracker follows gossipsub's GRAFT/PRUNE events (a pubsub.RawTracer)
// to know which peers are in which topic mesh.
type meshTracker struct {
	names map[string]string // topic -> kind name

	mu   sync.Mutex
	mesh map[peer.ID]map[string]bool // peer -> kind names
}

func newMeshTracker(names map[string]string) *meshTracker {
	return &meshTracker{names: names, mesh: make(map[peer.ID]map[string]bool)}
}

func (m *meshTracker) topicsOf(p peer.ID) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.mesh[p] {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (m *meshTracker) Graft(p peer.ID, topic string) {
	name, ok := m.names[topic]
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mesh[p] == nil {
		m.mesh[p] = make(map[string]bool)
	}
	m.mesh[p][name] = true
}

func (m *meshTracker) Prune(p peer.ID, topic string) {
	name, ok := m.names[topic]
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh[p], name)
	if len(m.mesh[p]) == 0 {
		delete(m.mesh, p)
	}
}

// OnClosedOutboundStream: gossipsub drops a peer whose stream closed from
// every mesh without a Prune event.
func (m *meshTracker) OnClosedOutboundStream(p peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh, p)
}

func (m *meshTracker) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (m *meshTracker) Join(string)                                          {}
func (m *meshTracker) Leave(string)                                         {}
func (m *meshTracker) ValidateMessage(*pubsub.Message)                      {}
func (m *meshTracker) DeliverMessage(*pubsub.Message)                       {}
func (m *meshTracker) RejectMessage(*pubsub.Message, string)                {}
func (m *meshTracker) DuplicateMessage(*pubsub.Message)                     {}
func (m *meshTracker) ThrottlePeer(peer.ID)                                 {}
func (m *meshTracker) RecvRPC(*pubsub.RPC)                                  {}
func (m *meshTracker) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (m *meshTracker) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (m *meshTracker) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (m *meshTracker) UndeliverableMessage(*pubsub.Message)                 {}

var _ pubsub.RawTracer = (*meshTracker)(nil)

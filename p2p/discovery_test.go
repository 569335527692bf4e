package p2p

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// TestDiscoveryThroughOneBootnode: five hosts, four of which know only the
// first one (their bootnode), end up connected to each other through the
// chain's DHT.
func TestDiscoveryThroughOneBootnode(t *testing.T) {
	boot := newTestNetwork(t, nil)
	fastDiscovery(boot)
	startNode(t, boot)
	nodes := []*Network{boot}
	for range 4 {
		n := newTestNetwork(t, func(c *Config) { c.Bootnodes = addrStrings(boot) })
		fastDiscovery(n)
		startNode(t, n)
		nodes = append(nodes, n)
	}
	require.Eventually(t, func() bool {
		for i, a := range nodes {
			for j, b := range nodes {
				if i != j && !connected(a, b.ID()) {
					return false
				}
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "hosts did not discover each other")

	dhtProto := DHTProtocolID(testGenesis)
	require.Equal(t, "/flare/"+hex.EncodeToString(testGenesis[:])+"/kad/1.0.0", string(dhtProto))
	for _, n := range nodes {
		require.Contains(t, n.host.Mux().Protocols(), dhtProto)
		require.Positive(t, n.dht.RoutingTable().Size())
	}
	// The leaves learned of each other by walking the DHT.
	var walks uint64
	for _, n := range nodes[1:] {
		walks += n.walks.Load()
	}
	require.Positive(t, walks)
}

// TestDiscoveryIgnoresOtherChains: a host of another chain (another DHT
// protocol prefix) reachable through the same bootnode is never dialled.
func TestDiscoveryIgnoresOtherChains(t *testing.T) {
	other := checkpoint.HashOf([]byte("another chain"))
	boot := newTestNetwork(t, nil)
	fastDiscovery(boot)
	startNode(t, boot)
	foreign := newTestNetwork(t, func(c *Config) { c.Genesis = other; c.Bootnodes = addrStrings(boot) })
	fastDiscovery(foreign)
	startNode(t, foreign)
	a := newTestNetwork(t, func(c *Config) { c.Bootnodes = addrStrings(boot) })
	fastDiscovery(a)
	startNode(t, a)
	b := newTestNetwork(t, func(c *Config) { c.Bootnodes = addrStrings(boot) })
	fastDiscovery(b)
	startNode(t, b)
	require.Eventually(t, func() bool { return connected(a, b.ID()) }, 30*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return a.walks.Load() >= 3 && b.walks.Load() >= 3 }, 30*time.Second, 20*time.Millisecond)
	require.False(t, connected(a, foreign.ID()), "dialled a node of another chain")
	require.False(t, connected(b, foreign.ID()), "dialled a node of another chain")
	require.Zero(t, foreign.dht.RoutingTable().Find(a.ID()))
}

// TestAddressBookReconnect: a node restarted with its address book and no
// bootnode reconnects to the peers it knew.
func TestAddressBookReconnect(t *testing.T) {
	dir := t.TempDir()
	a := newTestNetwork(t, func(c *Config) { c.AddressBookPath = filepath.Join(dir, "a", "peers.json") })
	fastDiscovery(a)
	startNode(t, a)
	aAddr := a.host.Network().ListenAddresses()[0]

	keyPath := filepath.Join(dir, "b", "secret_ed25519")
	bookPath := filepath.Join(dir, "b", "peers.json")
	b := newTestNetwork(t, func(c *Config) {
		c.Bootnodes = addrStrings(a)
		c.NodeKeyPath = keyPath
		c.AddressBookPath = bookPath
	})
	fastDiscovery(b)
	startNode(t, b)
	bID := b.ID()
	require.Eventually(t, func() bool { return connected(b, a.ID()) }, 10*time.Second, 10*time.Millisecond)

	// The book is written shortly after the handshake: a, at its listen
	// address.
	var doc addressBookFile
	require.Eventually(t, func() bool {
		raw, err := os.ReadFile(bookPath)
		if err != nil || json.Unmarshal(raw, &doc) != nil {
			return false
		}
		return len(doc.Peers) == 1
	}, 10*time.Second, 10*time.Millisecond, "address book not written")
	require.Equal(t, AddressBookVersion, doc.Version)
	require.Equal(t, hex.EncodeToString(testGenesis[:]), doc.Genesis)
	require.Equal(t, a.ID().String(), doc.Peers[0].ID)
	require.Equal(t, []string{aAddr.String()}, doc.Peers[0].Addrs)
	require.WithinDuration(t, time.Now(), doc.Peers[0].LastSeen, time.Minute)
	st, err := os.Stat(bookPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	require.NoError(t, b.Close())
	require.Eventually(t, func() bool { return !connected(a, bID) }, 10*time.Second, 10*time.Millisecond)
	entries, err := os.ReadDir(filepath.Dir(bookPath))
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), ".peers.json-"), "temporary file left: %s", e.Name())
	}

	// Restarted without bootnodes (on another port, which a does not
	// know): it dials a from its address book.
	b2 := newTestNetwork(t, func(c *Config) { c.NodeKeyPath = keyPath; c.AddressBookPath = bookPath })
	require.Equal(t, bID, b2.ID())
	fastDiscovery(b2)
	startNode(t, b2)
	require.Eventually(t, func() bool { return connected(b2, a.ID()) }, 10*time.Second, 10*time.Millisecond)

	// a remembered b as well (b announced its listen address).
	require.Eventually(t, func() bool {
		raw, err := os.ReadFile(filepath.Join(dir, "a", "peers.json"))
		return err == nil && strings.Contains(string(raw), bID.String())
	}, 10*time.Second, 10*time.Millisecond)
}

// TestAddressBookFile covers the file: bounded size, least recently seen
// dropped first, the dial policy applied on load, and a damaged or foreign
// file reported and replaced rather than trusted.
func TestAddressBookFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "network", "peers.json")
	allowAll := func(ma.Multiaddr) bool { return true }
	book, err := loadAddressBook(path, testGenesis, allowAll)
	require.NoError(t, err, "a missing file is an empty book")
	require.Empty(t, book.entries())
	require.NoError(t, book.save(), "nothing to save")
	_, err = os.Stat(path)
	require.True(t, os.IsNotExist(err), "an unchanged book is not written")

	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := make([]peer.ID, MaxAddressBookPeers+44)
	for i := range ids {
		ids[i] = newPeerID(t)
		addrs := []ma.Multiaddr{ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 20000+i))}
		if i == 0 {
			for j := range MaxAddressBookAddrs + 3 {
				addrs = append(addrs, ma.StringCast(fmt.Sprintf("/ip4/10.0.0.%d/tcp/1", j+1)))
			}
		}
		book.record(ids[i], addrs, base.Add(time.Duration(i)*time.Second))
	}
	require.Len(t, book.entries(), MaxAddressBookPeers)
	require.NoError(t, book.save())

	got, err := loadAddressBook(path, testGenesis, allowAll)
	require.NoError(t, err)
	entries := got.entries()
	require.Len(t, entries, MaxAddressBookPeers)
	// Most recently seen first; the 44 oldest were dropped.
	require.Equal(t, ids[len(ids)-1], entries[0].ID)
	require.Equal(t, ids[44], entries[len(entries)-1].ID)

	// Loading applies the dial policy (here: public addresses only).
	none, err := loadAddressBook(path, testGenesis, (&dialPolicy{}).learnedAllowed)
	require.NoError(t, err)
	require.Empty(t, none.entries(), "loopback entries kept under a deny-private policy")

	// Bounded addresses per peer.
	small, err := loadAddressBook(filepath.Join(dir, "x.json"), testGenesis, allowAll)
	require.NoError(t, err)
	var many []ma.Multiaddr
	for j := range MaxAddressBookAddrs + 5 {
		many = append(many, ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 1000+j)))
	}
	small.record(ids[0], many, base)
	require.Len(t, small.entries()[0].Addrs, MaxAddressBookAddrs)

	for _, tc := range []struct {
		name, content, want string
	}{
		{"not JSON", "{", "address book"},
		{"other version", `{"version": 2, "genesis": "` + hex.EncodeToString(testGenesis[:]) + `", "peers": []}`, "version 2"},
		{"other chain", `{"version": 1, "genesis": "00", "peers": []}`, "belongs to genesis"},
		{"too large", `{"version": 1, "x": "` + strings.Repeat("a", maxAddressBookFileSize) + `"}`, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			require.NoError(t, os.WriteFile(p, []byte(tc.content), 0o600))
			b, err := loadAddressBook(p, testGenesis, allowAll)
			require.ErrorContains(t, err, tc.want)
			require.NotNil(t, b, "a usable empty book comes with the error")
			require.Empty(t, b.entries())
			// The next save replaces the damaged file.
			b.record(ids[0], []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")}, base)
			require.NoError(t, b.save())
			again, err := loadAddressBook(p, testGenesis, allowAll)
			require.NoError(t, err)
			require.Len(t, again.entries(), 1)
		})
	}
}

// TestPortInUse: a listen address that cannot be bound fails New with
// ErrListen naming the address, and no node key is written.
func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	busy := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", l.Addr().(*net.TCPAddr).Port)

	// Another flare host on a port: no SO_REUSEPORT, so a second one on the
	// same port fails too.
	first := newTestNetwork(t, nil)
	firstAddr := first.host.Network().ListenAddresses()[0].String()

	for _, addr := range []string{busy, firstAddr} {
		keyPath := filepath.Join(t.TempDir(), "network", "secret_ed25519")
		_, err := New(context.Background(), Config{
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", addr},
			NodeKeyPath: keyPath,
			Genesis:     testGenesis,
		})
		require.ErrorIs(t, err, ErrListen)
		require.ErrorContains(t, err, addr)
		require.ErrorContains(t, err, "address already in use")
		_, statErr := os.Stat(filepath.Dir(keyPath))
		require.True(t, os.IsNotExist(statErr), "node key directory created for a node that could not listen")
	}

	// Once bound, a new key is written.
	keyPath := filepath.Join(t.TempDir(), "network", "secret_ed25519")
	n := newTestNetwork(t, func(c *Config) { c.NodeKeyPath = keyPath })
	id, err := PeerIDFromKeyFile(keyPath)
	require.NoError(t, err)
	require.Equal(t, n.ID(), id)
}

// TestMeshPeersProtected: gossipsub's tag tracer protects the peers of every
// topic mesh in the host's connection manager (the one New configures), so
// that trimming never cuts a mesh link; a connected peer outside the meshes
// is not protected.
func TestMeshPeersProtected(t *testing.T) {
	nodes := newTopology(t, 4, true, nil)
	warmUp(t, nodes)

	bare, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.DisableMetrics())
	require.NoError(t, err)
	t.Cleanup(func() { _ = bare.Close() })
	hub := nodes[0]
	require.NoError(t, bare.Connect(context.Background(), peer.AddrInfo{ID: hub.ID(), Addrs: hub.host.Addrs()}))
	require.Eventually(t, func() bool { return connected(hub.Network, bare.ID()) }, 10*time.Second, 10*time.Millisecond)

	for _, n := range nodes {
		require.Eventually(t, func() bool {
			inMesh := 0
			for _, info := range n.PeerInfos() {
				for _, kind := range info.Mesh {
					inMesh++
					if !n.connMgr.IsProtected(info.ID, "pubsub:"+topicByName(kind)) {
						return false
					}
				}
			}
			return inMesh > 0
		}, 10*time.Second, 20*time.Millisecond, "mesh peers of %s not protected", n.ID())
	}
	for _, info := range hub.PeerInfos() {
		if info.ID == bare.ID() {
			require.Empty(t, info.Mesh)
			for k := range numKinds {
				require.False(t, hub.connMgr.IsProtected(bare.ID(), "pubsub:"+topicName(testGenesis, k)))
			}
		}
	}
}

func topicByName(name string) string {
	for k := range numKinds {
		if k.String() == name {
			return topicName(testGenesis, k)
		}
	}
	return ""
}

// TestPeerInfos: direction, connection time, addresses and counts.
func TestPeerInfos(t *testing.T) {
	a := newTestNetwork(t, nil)
	startNode(t, a)
	before := time.Now()
	b := newTestNetwork(t, func(c *Config) { c.Bootnodes = addrStrings(a) })
	startNode(t, b)
	require.Eventually(t, func() bool { return connected(a, b.ID()) && connected(b, a.ID()) }, 10*time.Second, 10*time.Millisecond)
	after := time.Now()

	ai := a.PeerInfos()
	require.Len(t, ai, 1)
	require.Equal(t, b.ID(), ai[0].ID)
	require.Equal(t, DirectionInbound, ai[0].Direction)
	require.NotEmpty(t, ai[0].Addrs)
	require.True(t, strings.HasPrefix(ai[0].Addrs[0], "/ip4/127.0.0.1/tcp/"), ai[0].Addrs[0])
	require.False(t, ai[0].ConnectedSince.Before(before.Add(-time.Second)) || ai[0].ConnectedSince.After(after))
	in, out := a.PeerCounts()
	require.Equal(t, [2]int{1, 0}, [2]int{in, out})

	bi := b.PeerInfos()
	require.Len(t, bi, 1)
	require.Equal(t, a.ID(), bi[0].ID)
	require.Equal(t, DirectionOutbound, bi[0].Direction)
	require.Equal(t, a.host.Network().ListenAddresses()[0].String(), bi[0].Addrs[0])
	in, out = b.PeerCounts()
	require.Equal(t, [2]int{0, 1}, [2]int{in, out})
	raw, err := json.Marshal(bi[0])
	require.NoError(t, err)
	for _, key := range []string{`"peer_id"`, `"addrs"`, `"direction":"outbound"`, `"connected_since"`, `"gossip_score"`, `"mesh"`} {
		require.Contains(t, string(raw), key)
	}
}

// TestMDNSOffOnLoopback: mDNS is never started for a host that listens on
// loopback only (it would have nothing reachable to announce), so tests on
// 127.0.0.1 never send multicast traffic.
func TestMDNSOffOnLoopback(t *testing.T) {
	n := newTestNetwork(t, func(c *Config) { c.MDNS = true })
	startNode(t, n)
	require.Nil(t, n.mdns)
	require.Equal(t, "_flare-"+hex.EncodeToString(testGenesis[:16])+"._udp", MDNSServiceName(testGenesis))
}

// TestConnectorDialsHalfTheTarget: the connector dials at most half of its
// peer target itself and leaves the rest to inbound connections, so that in
// a network larger than the target nodes do not overshoot the connection
// manager's limits and trim each other in a loop.
func TestConnectorDialsHalfTheTarget(t *testing.T) {
	var boot []string
	for range 10 {
		l := newTestNetwork(t, nil)
		startNode(t, l)
		boot = append(boot, addrStrings(l)...)
	}
	n := newTestNetwork(t, func(c *Config) { c.MaxPeers = 10; c.Bootnodes = boot })
	fastDiscovery(n)
	startNode(t, n)
	require.Equal(t, 8, n.target)
	require.Equal(t, 4, outboundTarget(n.target))
	require.Eventually(t, func() bool { return n.connectedCount() >= 4 }, 10*time.Second, 10*time.Millisecond)
	rounds := n.rounds.Load()
	require.Eventually(t, func() bool { return n.rounds.Load() >= rounds+20 }, 10*time.Second, 10*time.Millisecond)
	// Four dialled by the connector; the DHT may have dialled up to two
	// bootstrap peers of its own while its routing table was empty.
	_, out := n.PeerCounts()
	require.LessOrEqual(t, out, 6)
	require.GreaterOrEqual(t, out, 4)
	require.LessOrEqual(t, n.wantDials(), 0)
}

// TestSelfIDConflict: two hosts with one node key (a copied base path), one
// configured as the other's bootnode. libp2p refuses the dial to its own id;
// the conflict is reported instead of silently ignored. A bootnode list
// that names this node itself at its own address is no conflict.
func TestSelfIDConflict(t *testing.T) {
	keyPath := filepath.Join(t.TempDir(), "node.key")
	original := startNode(t, newTestNetwork(t, func(c *Config) { c.NodeKeyPath = keyPath }))
	copied := newTestNetwork(t, func(c *Config) {
		c.NodeKeyPath = keyPath
		c.Bootnodes = addrStrings(original.Network)
	})
	require.Equal(t, original.ID(), copied.ID())
	startNode(t, copied)
	require.Eventually(t, func() bool { return len(copied.SelfIDConflicts()) > 0 }, 10*time.Second, 10*time.Millisecond)
	require.Contains(t, copied.SelfIDConflicts(), original.host.Addrs()[0].String())
	require.Empty(t, original.SelfIDConflicts())

	self := newTestNetwork(t, nil)
	self.cfg.Bootnodes = nil
	self.bootnodes = []peer.AddrInfo{{ID: self.ID(), Addrs: self.host.Addrs()}}
	startNode(t, self)
	rounds := self.rounds.Load()
	require.Eventually(t, func() bool { return self.rounds.Load() > rounds+1 }, 10*time.Second, 10*time.Millisecond)
	require.Empty(t, self.SelfIDConflicts())
}

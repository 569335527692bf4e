package p2p

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobserver "go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/wire/flarepb"
)

func TestNodeKeyPersists(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "node.key")

	k1, err := LoadOrCreateNodeKey(path)
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	dirSt, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), dirSt.Mode().Perm())

	k2, err := LoadOrCreateNodeKey(path)
	require.NoError(t, err)
	require.True(t, k1.Equals(k2))
	id, err := PeerIDFromKeyFile(path)
	require.NoError(t, err)
	want, err := peer.IDFromPrivateKey(k1)
	require.NoError(t, err)
	require.Equal(t, want, id)

	// The network uses the key: same peer id across restarts.
	n1 := newTestNetwork(t, func(c *Config) { c.NodeKeyPath = path })
	require.Equal(t, id, n1.ID())
	require.NoError(t, n1.Close())
	n2 := newTestNetwork(t, func(c *Config) { c.NodeKeyPath = path })
	require.Equal(t, id, n2.ID())
	st, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// A second key file is a different identity.
	other, err := LoadOrCreateNodeKey(filepath.Join(dir, "other.key"))
	require.NoError(t, err)
	require.False(t, other.Equals(k1))
}

func TestNodeKeyErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	_, err := LoadOrCreateNodeKey(good)
	require.NoError(t, err)
	raw, err := os.ReadFile(good)
	require.NoError(t, err)

	for _, tc := range []struct {
		name  string
		data  []byte
		mode  os.FileMode
		check func(t *testing.T, err error)
	}{
		{"world readable", raw, 0o644, func(t *testing.T, err error) { require.ErrorIs(t, err, ErrNodeKey) }},
		{"group readable", raw, 0o640, func(t *testing.T, err error) { require.ErrorIs(t, err, ErrNodeKey) }},
		{"garbage", []byte("not a key"), 0o600, func(t *testing.T, err error) { require.ErrorIs(t, err, ErrNodeKey) }},
		{"empty", []byte{}, 0o600, func(t *testing.T, err error) { require.ErrorIs(t, err, ErrNodeKey) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			require.NoError(t, os.WriteFile(p, tc.data, tc.mode))
			require.NoError(t, os.Chmod(p, tc.mode))
			_, err := LoadOrCreateNodeKey(p)
			tc.check(t, err)
			_, err = PeerIDFromKeyFile(p)
			tc.check(t, err)
			// The bad file is left alone.
			got, err := os.ReadFile(p)
			require.NoError(t, err)
			require.Equal(t, tc.data, got)
		})
	}
	_, err = PeerIDFromKeyFile(filepath.Join(dir, "missing.key"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = LoadOrCreateNodeKey("")
	require.ErrorIs(t, err, ErrNodeKey)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"zero genesis", func(c *Config) { c.Genesis = [32]byte{} }},
		{"bad port", func(c *Config) { c.Port = 70000 }},
		{"negative peers", func(c *Config) { c.MaxPeers = -1 }},
		{"tiny message size", func(c *Config) { c.MaxMessageSize = 100 }},
		{"bad listen address", func(c *Config) { c.ListenAddrs = []string{"not-a-multiaddr"} }},
		{"bootnode without peer id", func(c *Config) { c.Bootnodes = []string{"/ip4/127.0.0.1/tcp/1"} }},
		{"bad bootnode", func(c *Config) { c.Bootnodes = []string{"127.0.0.1:30333"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Genesis: testGenesis}
			tc.mod(&cfg)
			_, err := New(context.Background(), cfg)
			require.ErrorIs(t, err, ErrInvalidConfig)
		})
	}
}

func TestIdentityLogsAndAddrs(t *testing.T) {
	core, logs := zapobserver.New(zapcore.InfoLevel)
	n := newTestNetwork(t, func(c *Config) { c.Logger = zap.New(core) })
	id := n.ID()

	require.Len(t, logs.FilterMessage("Local node identity is: "+id.String()).All(), 1)
	require.NotEmpty(t, logs.FilterLoggerName("p2p").All())
	addrs := n.Addrs()
	require.NotEmpty(t, addrs)
	for _, a := range addrs {
		require.True(t, strings.HasSuffix(a.String(), "/p2p/"+id.String()), a.String())
		require.True(t, strings.HasPrefix(a.String(), "/ip4/127.0.0.1/tcp/"), a.String())
		require.Len(t, logs.FilterMessage("Listening on "+a.String()).All(), 1)
		ai, err := peer.AddrInfoFromP2pAddr(a)
		require.NoError(t, err)
		require.Equal(t, id, ai.ID)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{Genesis: testGenesis, Port: 30333}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, []string{"/ip4/0.0.0.0/tcp/30333"}, c.ListenAddrs)
	require.Equal(t, DefaultMaxMessageSize, c.MaxMessageSize)
	require.Equal(t, DefaultMaxPeers, c.MaxPeers)
	require.NotNil(t, c.Logger)

	c, err = Config{Genesis: testGenesis, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, MaxPeers: 7, MaxMessageSize: 4096}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, []string{"/ip4/127.0.0.1/tcp/0"}, c.ListenAddrs)
	require.Equal(t, 4096, c.MaxMessageSize)
	require.Equal(t, 7, c.MaxPeers)

	hexGenesis := "/flare/" + strings.TrimPrefix(testGenesis.String(), "0x")
	require.Equal(t, hexGenesis+"/blocks/1", BlocksTopic(testGenesis))
	require.Equal(t, hexGenesis+"/votes/1", VotesTopic(testGenesis))
	require.Equal(t, hexGenesis+"/certs/1", CertificatesTopic(testGenesis))
	require.Equal(t, hexGenesis+"/sync/1", string(SyncProtocolID(testGenesis)))
}

func newPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	require.NoError(t, err)
	id, err := peer.IDFromPublicKey(pub)
	require.NoError(t, err)
	return id
}

func TestDialPolicy(t *testing.T) {
	static, dns, stranger := newPeerID(t), newPeerID(t), newPeerID(t)
	boot, err := parseBootnodes([]string{
		"/ip4/10.0.0.1/tcp/30333/p2p/" + static.String(),
		"/ip4/10.0.0.2/tcp/30333/p2p/" + static.String(),
		"/dns4/boot.example/tcp/30333/p2p/" + dns.String(),
	})
	require.NoError(t, err)
	require.Len(t, boot, 2, "addresses of one peer are merged")
	require.Equal(t, static, boot[0].ID)
	require.Equal(t, dns, boot[1].ID)

	for _, tc := range []struct {
		name         string
		peer         peer.ID
		addr         string
		allowPrivate bool
		want         bool
	}{
		// Configured bootnode addresses: always, even private ones.
		{"bootnode private address, deny", static, "/ip4/10.0.0.1/tcp/30333", false, true},
		{"bootnode second address, deny", static, "/ip4/10.0.0.2/tcp/30333", false, true},
		{"bootnode resolved DNS address, deny", dns, "/ip4/192.168.7.7/tcp/30333", false, true},
		// A bootnode at an address learned elsewhere: the policy decides.
		{"bootnode learned private address, deny", static, "/ip4/10.0.0.3/tcp/30333", false, false},
		{"bootnode learned private address, allow", static, "/ip4/10.0.0.3/tcp/30333", true, true},
		// Learned addresses of other peers.
		{"public IPv4, deny", stranger, "/ip4/8.8.8.8/tcp/30333", false, true},
		{"public IPv6, deny", stranger, "/ip6/2001:4860:4860::8888/tcp/30333", false, true},
		{"public DNS name, deny", stranger, "/dns4/node.example.com/tcp/30333", false, true},
		{"loopback, deny", stranger, "/ip4/127.0.0.1/tcp/30333", false, false},
		{"loopback, allow", stranger, "/ip4/127.0.0.1/tcp/30333", true, true},
		{"IPv6 loopback, deny", stranger, "/ip6/::1/tcp/30333", false, false},
		{"RFC 1918 10/8, deny", stranger, "/ip4/10.1.2.3/tcp/30333", false, false},
		{"RFC 1918 172.16/12, deny", stranger, "/ip4/172.20.0.5/tcp/30333", false, false},
		{"RFC 1918 192.168/16, deny", stranger, "/ip4/192.168.1.10/tcp/30333", false, false},
		{"RFC 1918 192.168/16, allow", stranger, "/ip4/192.168.1.10/tcp/30333", true, true},
		{"link-local, deny", stranger, "/ip4/169.254.1.1/tcp/30333", false, false},
		{"CGNAT 100.64/10, deny", stranger, "/ip4/100.64.0.1/tcp/30333", false, false},
		{"IPv6 unique local, deny", stranger, "/ip6/fd00::1/tcp/30333", false, false},
		{"localhost name, deny", stranger, "/dns4/localhost/tcp/30333", false, false},
		{".local name, deny", stranger, "/dns4/node.local/tcp/30333", false, false},
		// Never dialable.
		{"unspecified IPv4, allow", stranger, "/ip4/0.0.0.0/tcp/30333", true, false},
		{"unspecified IPv6, allow", stranger, "/ip6/::/tcp/30333", true, false},
		{"not TCP (UDP), allow", stranger, "/ip4/127.0.0.1/udp/30333", true, false},
		{"not TCP (QUIC), allow", stranger, "/ip4/8.8.8.8/udp/30333/quic-v1", true, false},
		{"relay circuit, allow", stranger, "/p2p-circuit", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &dialGater{policy: newDialPolicy(boot, tc.allowPrivate)}
			a := ma.StringCast(tc.addr)
			require.True(t, g.InterceptPeerDial(tc.peer))
			require.Equal(t, tc.want, g.InterceptAddrDial(tc.peer, a))
			// The DHT filter and the address book apply the same rule to
			// learned addresses.
			learned := g.policy.learnedAllowed(a)
			require.Equal(t, learned, len(g.policy.filter([]ma.Multiaddr{a})) == 1)
			if !g.policy.isConfigured(tc.peer, a) {
				require.Equal(t, tc.want, learned)
			}
		})
	}
}

func TestBootnodeReconnect(t *testing.T) {
	keyPath := filepath.Join(t.TempDir(), "boot.key")
	boot := newTestNetwork(t, func(c *Config) { c.NodeKeyPath = keyPath })
	startNode(t, boot)
	bootAddr := boot.Addrs()[0]
	port, err := bootAddr.ValueForProtocol(ma.P_TCP)
	require.NoError(t, err)

	n := newTestNetwork(t, func(c *Config) { c.Bootnodes = []string{bootAddr.String()} })
	fastDiscovery(n)
	startNode(t, n)
	waitPeerEvent(t, n, boot.ID())
	require.Eventually(t, func() bool { return connected(n, boot.ID()) }, 10*time.Second, 10*time.Millisecond)

	// The bootnode goes away; the node notices.
	require.NoError(t, boot.Close())
	require.Eventually(t, func() bool { return !connected(n, boot.ID()) }, 10*time.Second, 10*time.Millisecond)

	// Dials fail while it is down (the node has fewer peers than its
	// target, so it keeps trying; the swarm's dial backoff must not delay
	// the reconnect).
	failed := n.dialFailures.Load()
	require.Eventually(t, func() bool { return n.dialFailures.Load() >= failed+3 }, 10*time.Second, 10*time.Millisecond)

	// It comes back on the same key and port; the node reconnects by itself.
	reborn := newTestNetwork(t, func(c *Config) {
		c.NodeKeyPath = keyPath
		c.ListenAddrs = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%s", port)}
	})
	require.Equal(t, boot.ID(), reborn.ID())
	rn := startNode(t, reborn)
	status := &flarepb.Status{GenesisHash: testGenesis[:], Best: &flarepb.Checkpoint{Number: 7, Hash: make([]byte, 32)}}
	rn.h.configure(func(h *testHandler) { h.status = status })
	waitPeerEvent(t, n, boot.ID())
	require.Eventually(t, func() bool { return connected(n, boot.ID()) }, 10*time.Second, 10*time.Millisecond)
	// The sync protocol works on the new connection.
	st, err := n.RequestStatus(context.Background(), boot.ID())
	require.NoError(t, err)
	require.True(t, proto.Equal(status, st))

	// Close stops the connector; the restarted bootnode sees the node go.
	require.NoError(t, n.Close())
	require.Eventually(t, func() bool { return !connected(reborn, n.ID()) }, 10*time.Second, 10*time.Millisecond)
}

// waitPeerEvent waits until PeerEvents reports p.
func waitPeerEvent(t *testing.T, n *Network, p peer.ID) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-n.PeerEvents():
			if got == p {
				return
			}
		case <-timeout:
			t.Fatalf("no peer event for %s", p)
		}
	}
}

// fastDiscovery shortens a network's discovery tunables (before Start).
func fastDiscovery(n *Network) {
	n.backoffMin, n.backoffMax = 20*time.Millisecond, 200*time.Millisecond
	n.discoveryTick = 20 * time.Millisecond
	n.walkMin, n.walkMax = 50*time.Millisecond, 500*time.Millisecond
	n.bookDebounce = 10 * time.Millisecond
}

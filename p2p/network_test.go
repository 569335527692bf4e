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

func TestDialGater(t *testing.T) {
	newID := func() peer.ID {
		_, pub, err := crypto.GenerateEd25519Key(nil)
		require.NoError(t, err)
		id, err := peer.IDFromPublicKey(pub)
		require.NoError(t, err)
		return id
	}
	static, dns, stranger := newID(), newID(), newID()
	boot, err := parseBootnodes([]string{
		"/ip4/10.0.0.1/tcp/30333/p2p/" + static.String(),
		"/ip4/10.0.0.2/tcp/30333/p2p/" + static.String(),
		"/dns4/boot.example/tcp/30333/p2p/" + dns.String(),
	})
	require.NoError(t, err)
	require.Len(t, boot, 2, "addresses of one peer are merged")
	require.Equal(t, static, boot[0].ID)
	require.Equal(t, dns, boot[1].ID)
	g := newDialGater(boot)
	addr := func(s string) ma.Multiaddr { return ma.StringCast(s) }

	require.True(t, g.InterceptPeerDial(static))
	require.True(t, g.InterceptPeerDial(dns))
	require.False(t, g.InterceptPeerDial(stranger))
	require.True(t, g.InterceptAddrDial(static, addr("/ip4/10.0.0.1/tcp/30333")))
	require.True(t, g.InterceptAddrDial(static, addr("/ip4/10.0.0.2/tcp/30333")))
	require.False(t, g.InterceptAddrDial(static, addr("/ip4/10.0.0.3/tcp/30333")), "address learned elsewhere")
	require.False(t, g.InterceptAddrDial(static, addr("/ip4/10.0.0.1/tcp/4001")))
	require.True(t, g.InterceptAddrDial(dns, addr("/ip4/192.0.2.7/tcp/30333")), "resolved DNS address")
	require.False(t, g.InterceptAddrDial(stranger, addr("/ip4/10.0.0.1/tcp/30333")))
}

func TestBootnodeReconnect(t *testing.T) {
	keyPath := filepath.Join(t.TempDir(), "boot.key")
	boot := newTestNetwork(t, func(c *Config) { c.NodeKeyPath = keyPath })
	startNode(t, boot)
	bootAddr := boot.Addrs()[0]
	port, err := bootAddr.ValueForProtocol(ma.P_TCP)
	require.NoError(t, err)

	n := newTestNetwork(t, func(c *Config) { c.Bootnodes = []string{bootAddr.String()} })
	n.backoffMin, n.backoffMax = 20*time.Millisecond, 200*time.Millisecond
	startNode(t, n)
	waitPeerEvent(t, n, boot.ID())
	require.Eventually(t, func() bool { return connected(n, boot.ID()) }, 10*time.Second, 10*time.Millisecond)

	// The bootnode goes away; the node notices.
	require.NoError(t, boot.Close())
	require.Eventually(t, func() bool { return !connected(n, boot.ID()) }, 10*time.Second, 10*time.Millisecond)

	// Dials fail while it is down (and must not leave the peer in the
	// swarm's dial backoff).
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

	// Close stops the loop; the restarted bootnode sees the node go.
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

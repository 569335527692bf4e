package p2p

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// netnsAddr is the address of the veth interface inside the private network
// namespace of TestMDNSDiscovery; nothing outside that namespace can see it.
const netnsAddr = "10.250.0.1"

// netnsSetup creates a veth pair inside a fresh network namespace (made by
// unshare -n) and runs the test binary there.
const netnsSetup = `set -e
ip link set lo up
ip link add v0 type veth peer name v1
ip link set v0 up
ip link set v1 up
ip addr add ` + netnsAddr + `/24 dev v0
exec "$@"`

// TestMDNSDiscovery: nodes of one chain with mDNS on and no bootnodes find
// each other on the local network; a node of another chain (another service
// name) is not dialled. mDNS multicasts, so the test runs in a private
// network namespace with its own veth pair (re-executing this test binary
// under unshare -n); it is skipped where namespaces cannot be created.
func TestMDNSDiscovery(t *testing.T) {
	if os.Getenv("FLARE_IN_NETNS") == "" {
		if testing.Short() {
			t.Skip("network namespace test")
		}
		for _, tool := range []string{"unshare", "ip", "sh"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s not available", tool)
			}
		}
		if os.Geteuid() != 0 {
			t.Skip("creating a network namespace needs root")
		}
		if err := exec.Command("unshare", "-n", "true").Run(); err != nil {
			t.Skipf("cannot create a network namespace: %v", err)
		}
		self, err := os.Executable()
		require.NoError(t, err)
		cmd := exec.Command("unshare", "-n", "sh", "-c", netnsSetup, "sh",
			self, "-test.run=^TestMDNSDiscovery$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "FLARE_IN_NETNS=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "in the network namespace:\n%s", out)
		require.Contains(t, string(out), "--- PASS: TestMDNSDiscovery")
		return
	}

	listen := []string{"/ip4/" + netnsAddr + "/tcp/0"}
	var nodes []*Network
	for range 3 {
		n := newTestNetwork(t, func(c *Config) { c.ListenAddrs, c.MDNS = listen, true })
		fastDiscovery(n)
		startNode(t, n)
		require.NotNil(t, n.mdns, "mDNS not started on a LAN address")
		nodes = append(nodes, n)
	}
	other := newTestNetwork(t, func(c *Config) {
		c.ListenAddrs, c.MDNS, c.Genesis = listen, true, checkpoint.HashOf([]byte("another chain"))
	})
	fastDiscovery(other)
	startNode(t, other)

	require.Eventually(t, func() bool {
		for i, a := range nodes {
			for j, b := range nodes {
				if i != j && !connected(a, b.ID()) {
					return false
				}
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "nodes did not find each other over mDNS")
	for _, n := range nodes {
		require.False(t, connected(n, other.ID()), "dialled a node announced under another chain's service name")
	}
}

package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// freePortRange returns a base port p such that p and p+1 were free.
func freePortRange(t *testing.T) int {
	t.Helper()
	for range 20 {
		a, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		p := a.Addr().(*net.TCPAddr).Port
		b, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1)))
		a.Close()
		if err == nil {
			b.Close()
			return p
		}
	}
	t.Fatal("no two consecutive free ports")
	return 0
}

// runScript runs scripts/testnet.sh and returns its combined output.
func runScript(t *testing.T, s *sandbox, args ...string) (string, int) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "testnet.sh"))
	require.NoError(t, err)
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return string(out), code
}

// waitFile waits until the file at path contains want.
func waitFile(t *testing.T, path, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within %v; content:\n%s", path, want, timeout, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTestnetScript drives scripts/testnet.sh over a 2-validator testnet:
// start, status while running, stop (clean shutdown), status from the
// checkpoint databases. With FLARE_LONG_TESTS=1 it also waits for finality
// on every node.
func TestTestnetScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not available")
	}
	s := newSandbox(t)
	out, code := runScript(t, s, "status", s.path("none"))
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "nodes.env not found")

	base := freePortRange(t)
	metrics := freePortRange(t)
	for metrics < base+2 && base < metrics+2 {
		metrics = freePortRange(t)
	}
	r := s.run("", nil, "testnet", "--validators", "2", "--out", "net", "--base-port", strconv.Itoa(base),
		"--metrics-base-port", strconv.Itoa(metrics))
	require.Equal(t, 0, r.code, r.stderr)
	dir := s.path("net")
	long := os.Getenv("FLARE_LONG_TESTS") == "1"

	out, code = runScript(t, s, "start", dir)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "node0: started")
	require.Contains(t, out, "node1: started")
	t.Cleanup(func() { runScript(t, s, "stop", dir) })
	for _, n := range []string{"node0", "node1"} {
		waitFile(t, filepath.Join(dir, n+".log"), "Network started", 60*time.Second)
		_, err := os.Stat(filepath.Join(dir, n+".pid"))
		require.NoError(t, err)
	}
	if long {
		for _, n := range []string{"node0", "node1"} {
			waitFile(t, filepath.Join(dir, n+".log"), "FINALITY ADVANCED", 120*time.Second)
		}
	}

	out, code = runScript(t, s, "start", dir)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "node0: already running")

	out, code = runScript(t, s, "status", dir)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "== node0: running")
	require.Contains(t, out, "== node1: running")
	// Each node's peer count (from its /status endpoint): node1 dialled
	// node0, its bootnode.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out, "peers: 1 (inbound 1, outbound 0)") || !strings.Contains(out, "peers: 1 (inbound 0, outbound 1)") {
		require.True(t, time.Now().Before(deadline), "status never showed the peers:\n%s", out)
		time.Sleep(200 * time.Millisecond) // poll interval of the script
		out, code = runScript(t, s, "status", dir)
		require.Equal(t, 0, code, out)
	}
	require.Regexp(t, `== node0: running .*\n   peers: 1 \(inbound 1, outbound 0\)  best: \d+  justified: \d+  finalized: \d+`, out)
	require.Regexp(t, `== node1: running .*\n   peers: 1 \(inbound 0, outbound 1\)`, out)

	out, code = runScript(t, s, "stop", dir)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "node0: stopped")
	require.Contains(t, out, "node1: stopped")
	for _, n := range []string{"node0", "node1"} {
		_, err := os.Stat(filepath.Join(dir, n+".pid"))
		require.True(t, os.IsNotExist(err))
		log, err := os.ReadFile(filepath.Join(dir, n+".log"))
		require.NoError(t, err)
		require.Contains(t, string(log), "Node stopped", "clean shutdown of %s", n)
	}

	out, code = runScript(t, s, "status", dir)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "== node0: stopped")
	require.Contains(t, out, "Database:     "+filepath.Join(dir, "node0", "data", "chains", testnetChainID, "db", "checkpoints"))
	require.Contains(t, out, "Authorities:  2 (quorum 2)")
	if long {
		require.Regexp(t, `Finalized:    [1-9]\d* \(0x`, out)
	}

	out, code = runScript(t, s, "stop", dir)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "node0: not running")
}

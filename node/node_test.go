package node

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/node/api"
)

// fastSpec is the dev chain with 100 ms slots and checkpoints every 2 blocks,
// so that a node finalizes within about a second.
func fastSpec(t *testing.T) string { return writeSpec(t, "dev", "fast_dev", 100, 2) }

// writeSpec writes builtin chain `builtin` with another id, slot duration
// and checkpoint interval to a temporary spec file.
func writeSpec(t *testing.T, builtin, id string, slotMs, interval uint64) string {
	t.Helper()
	spec, err := chainspec.Builtin(builtin)
	require.NoError(t, err)
	spec.Name, spec.ID = id, id
	spec.SlotDurationMs = slotMs
	spec.CheckpointInterval = interval
	b, err := json.Marshal(spec)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "spec.json")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

func testConfig(t *testing.T, specPath, base string, validator bool) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Chain = specPath
	cfg.BasePath = base
	cfg.EnableASF = true
	cfg.Validator = validator
	if validator {
		cfg.KeyName = "alice"
	}
	cfg.P2P.Port = 0
	cfg.P2P.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Persistence = config.PersistenceConfig{Enabled: true, RetentionCheckpoints: 100, FlushInterval: 100 * time.Millisecond, PruneInterval: time.Second}
	require.NoError(t, cfg.Validate())
	return &cfg
}

func observedLogger() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// runNode starts n.Run in the background and returns a function that waits
// for its result.
func runNode(ctx context.Context, n *Node) func() error {
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return context.DeadlineExceeded
		}
	}
}

func waitFinalized(t *testing.T, n *Node, atLeast uint64) {
	t.Helper()
	require.Eventually(t, func() bool { return n.gadget.LatestFinalized().Number >= atLeast },
		30*time.Second, 20*time.Millisecond, "node did not finalize checkpoint %d", atLeast)
}

// TestShutdownOrderAndRestore finalizes, shuts down on context cancel in the
// documented order, and restores the finalized checkpoint on the next start.
func TestShutdownOrderAndRestore(t *testing.T) {
	specPath, base := fastSpec(t), t.TempDir()
	log, logs := observedLogger()
	cfg := testConfig(t, specPath, base, true)
	cfg.Metrics.Addr = "127.0.0.1:0"
	n, err := New(context.Background(), cfg, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runNode(ctx, n)
	waitFinalized(t, n, 3)
	finalized := n.gadget.LatestFinalized()

	// The operator's endpoints.
	base_ := httpBase(n, "metrics")
	var st api.Status
	getJSON(t, base_+"/status", &st)
	require.GreaterOrEqual(t, st.Finalized, finalized.Number)
	require.Equal(t, "fast_dev", st.Chain)
	metrics := get(t, base_+"/metrics")
	require.Contains(t, metrics, "flare_finality_finalized_checkpoint")
	require.Contains(t, metrics, "flare_finality_own_votes_total")
	require.Equal(t, "ok\n", get(t, base_+"/healthz"))
	cancel()
	require.NoError(t, wait())

	var order []string
	for _, e := range logs.All() {
		switch e.Message {
		case "Shutting down: production stopped", "Network stopped", "Checkpoint database flushed and closed", "Chain database closed":
			order = append(order, e.Message)
		}
	}
	require.Equal(t, []string{"Shutting down: production stopped", "Network stopped", "Checkpoint database flushed and closed", "Chain database closed"}, order)
	require.NotEmpty(t, logs.FilterMessageSnippet("FINALITY ADVANCED: checkpoint=").All())

	// Restart on the same base path: state comes back.
	n2, err := New(context.Background(), testConfig(t, specPath, base, true), zap.NewNop())
	require.NoError(t, err)
	require.GreaterOrEqual(t, n2.gadget.LatestFinalized().Number, finalized.Number)
	ctx2, cancel2 := context.WithCancel(context.Background())
	wait2 := runNode(ctx2, n2)
	waitFinalized(t, n2, finalized.Number+2)
	cancel2()
	require.NoError(t, wait2())
}

// TestMaintenanceFailureStopsNode: when the checkpoint database stops
// working, the essential maintenance task fails and the node stops with an
// error instead of running on without persistence.
func TestMaintenanceFailureStopsNode(t *testing.T) {
	specPath, base := fastSpec(t), t.TempDir()
	// A non-validator node: only the maintenance task touches the database.
	log, logs := observedLogger()
	n, err := New(context.Background(), testConfig(t, specPath, base, false), log)
	require.NoError(t, err)
	wait := runNode(context.Background(), n)
	// Running, and the maintenance task has already flushed at least once.
	require.Eventually(t, func() bool {
		return logs.FilterMessage("Network started").Len() > 0 && logs.FilterMessage("Auto-flushing checkpoint database").Len() > 0
	}, 10*time.Second, 10*time.Millisecond)
	// The disk "goes away": the database refuses every further call.
	require.NoError(t, n.cpdb.Close())
	err = wait()
	require.Error(t, err)
	require.ErrorContains(t, err, "checkpoint-maintenance")
}

// TestBasePathInUse: a second node on the same base path refuses to start.
func TestBasePathInUse(t *testing.T) {
	specPath, base := fastSpec(t), t.TempDir()
	n, err := New(context.Background(), testConfig(t, specPath, base, true), zap.NewNop())
	require.NoError(t, err)
	defer n.closeAll()
	_, err = New(context.Background(), testConfig(t, specPath, base, true), zap.NewNop())
	require.ErrorIs(t, err, ErrStartup)
	require.ErrorIs(t, err, asf.ErrLocked)
}

// httpBase is the base URL of the node's server name (metrics or rpc).
func httpBase(n *Node, name string) string {
	for _, s := range n.servers {
		if s.name == name {
			return "http://" + s.listener.Addr().String()
		}
	}
	panic("no " + name + " server")
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	require.NoError(t, json.Unmarshal([]byte(get(t, url)), into))
}

// TestStopDuringNetworkStart: a stop signal that arrives while the network
// is starting is a clean shutdown (nil, so exit code 0), not an error.
func TestStopDuringNetworkStart(t *testing.T) {
	cfg := testConfig(t, fastSpec(t), t.TempDir(), false)
	log, logs := observedLogger()
	n, err := New(context.Background(), cfg, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, n.Run(ctx))
	require.Equal(t, 1, logs.FilterMessage("Stopped while starting the network").Len())
}

package integration

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
)

// TestTxLoadBench: `flare-node bench tx-load` (what scripts/tx-load.sh
// runs) against a real dev validator whose spec endows the first bench
// keys: it prints one tx-load line per rate with every transfer finalized,
// the saturation rate, and the state-root comparison; the transfers moved
// the balances of the bench accounts.
func TestTxLoadBench(t *testing.T) {
	if testing.Short() {
		t.Skip("real-process test")
	}
	spec, err := chainspec.Builtin("dev")
	require.NoError(t, err)
	spec.Name, spec.ID = "bench-dev", "bench_dev"
	spec.SlotDurationMs, spec.CheckpointInterval = 200, 1
	const accounts = 8
	for i := range accounts {
		spec.Balances = append(spec.Balances, chainspec.Balance{
			Address: "0x" + hex.EncodeToString(chainspec.BenchKey(i).Public().(ed25519.PublicKey)), Balance: 1_000_000})
	}
	b, err := json.Marshal(spec)
	require.NoError(t, err)
	specPath := filepath.Join(t.TempDir(), "bench.json")
	require.NoError(t, os.WriteFile(specPath, b, 0o600))

	port := freePort(t)
	p := startNode(t, "bench", "--chain", specPath, "--alice", "--enable-asf", "--base-path", t.TempDir(), "--port", "0",
		"--rpc-addr", fmt.Sprintf("127.0.0.1:%d", port))
	p.waitLog(regexp.MustCompile(`^JSON API listening`), 0, 30*time.Second)
	rpc := fmt.Sprintf("http://127.0.0.1:%d", port)

	out, errOut, code := runCLI(t, "bench", "tx-load", "--chain", specPath, "--rpc", rpc, "--accounts", strconv.Itoa(accounts),
		"--rates", "20,40", "--duration", "2s", "--drain", "20s", "--label", "validators=1 slot=200ms interval=1")
	require.Equal(t, 0, code, "%s %s", out, errOut)
	line := regexp.MustCompile(`(?m)^tx-load: validators=1 slot=200ms interval=1 rate=(\d+) submitted=(\d+) finalized=(\d+) finalized_tps=\d+ ` +
		`submit_to_finalized_p50_ms=\d+ submit_to_finalized_p99_ms=\d+ p50_ms=\d+ p99_ms=(\d+) refused=0 cpu_per_node=n/a$`)
	m := line.FindAllStringSubmatch(out, -1)
	require.Len(t, m, 2, "%s", out)
	for _, l := range m {
		require.Equal(t, l[2], l[3], "every submitted transfer finalized: %s", l[0])
	}
	require.Equal(t, "40", m[0][2])
	require.Equal(t, "80", m[1][2])
	require.Regexp(t, `(?m)^tx-load: .* saturation_rate=\d+$`, out)
	require.Regexp(t, `(?m)^tx-load: .* state_roots_agree=[1-9]\d* checkpoints nodes=1$`, out)

	// 120 transfers of 1 over 8 accounts round-robin (each account sends 15
	// and receives 15): the fees moved to alice, the proposer.
	var acc struct {
		Balance string `json:"balance"`
		Nonce   uint64 `json:"nonce"`
	}
	_, body := getStatus(t, rpc+"/accounts/0x"+hex.EncodeToString(chainspec.BenchKey(0).Public().(ed25519.PublicKey))+"?at=finalized")
	require.NoError(t, json.Unmarshal(body, &acc))
	require.Equal(t, uint64(15), acc.Nonce)
	require.Equal(t, strconv.Itoa(1_000_000-15*int(spec.MinFee)), acc.Balance)
	require.Equal(t, 0, p.stop(syscall.SIGINT, 20*time.Second))
}

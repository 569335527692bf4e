package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node/api"
)

// getStatus GETs url and returns the status code and body.
func getStatus(t *testing.T, url string) (int, []byte) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

var commitRe = regexp.MustCompile(`^([0-9a-f]{40}(-dirty)?|unknown)$`)

// TestOperatorAPIDevValidator: issue 11 with the real binary: a fresh
// `--dev --enable-asf` validator with --metrics-addr and --rpc-addr :PORT
// (127.0.0.1) answers /healthz at once, /readyz 503 and then 200 once its
// signer record is initialised, /checkpoints/2 with its number, hash and
// level, /peers as JSON, and /metrics with flare_build_info and the
// histograms; the API is not on the metrics listener.
func TestOperatorAPIDevValidator(t *testing.T) {
	base := t.TempDir()
	mport, rport := freePort(t), freePort(t)
	p := startNode(t, "dev", "--dev", "--enable-asf", "--base-path", base, "--listen-addr", "/ip4/127.0.0.1/tcp/0",
		"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", mport), "--rpc-addr", fmt.Sprintf(":%d", rport))
	p.waitLog(regexp.MustCompile(`^JSON API listening`), 0, 30*time.Second)
	rpc := fmt.Sprintf("http://127.0.0.1:%d", rport)
	metrics := fmt.Sprintf("http://127.0.0.1:%d", mport)

	code, body := getStatus(t, rpc+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", string(body))
	// On the built-in dev chain a fresh record does not listen (its key is
	// public): /readyz is 503 only until the first checkpoint initialises
	// it, a few hundred milliseconds.
	code, body = getStatus(t, rpc+"/readyz")
	if code != http.StatusOK {
		require.Equal(t, http.StatusServiceUnavailable, code, "%s", body)
		var r api.Readiness
		require.NoError(t, json.Unmarshal(body, &r))
		require.Contains(t, fmt.Sprint(r.Reasons), api.ReasonSignerInitialising)
	}

	require.Eventually(t, func() bool {
		code, _ := getStatus(t, rpc+"/readyz")
		return code == http.StatusOK
	}, 60*time.Second, 200*time.Millisecond, "/readyz never answered 200; last lines:\n%s", p.tail(20))
	require.Eventually(t, func() bool {
		code, body := getStatus(t, rpc+"/checkpoints/2")
		var cp api.Checkpoint
		return code == http.StatusOK && json.Unmarshal(body, &cp) == nil && cp.Level == checkpoint.LevelFinality.String()
	}, 60*time.Second, 200*time.Millisecond)
	code, body = getStatus(t, rpc+"/checkpoints/2")
	require.Equal(t, http.StatusOK, code)
	var cp api.Checkpoint
	require.NoError(t, json.Unmarshal(body, &cp))
	require.Equal(t, uint64(2), cp.Number)
	require.Regexp(t, `^0x[0-9a-f]{64}$`, cp.Hash)
	require.Equal(t, uint64(2), cp.Block, "the dev chain checkpoints every block")

	code, body = getStatus(t, rpc+"/peers")
	require.Equal(t, http.StatusOK, code)
	var peers []any
	require.NoError(t, json.Unmarshal(body, &peers), "%s", body)

	var st api.Status
	code, body = getStatus(t, rpc+"/status")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal(body, &st))
	require.Regexp(t, commitRe, st.Commit)
	require.Equal(t, api.RoleValidator, st.Role.Kind)

	code, body = getStatus(t, metrics+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Regexp(t, fmt.Sprintf(`flare_build_info\{commit="%s",goversion="go[^"]+",version="[^"]+"\} 1`, regexp.QuoteMeta(st.Commit)), string(body))
	require.Regexp(t, `flare_finality_vote_to_justified_seconds_count [1-9]`, string(body))
	require.Contains(t, string(body), `flare_checkpointdb_certificate_persist_seconds_bucket{le="+Inf"}`)
	code, _ = getStatus(t, metrics+"/status")
	require.Equal(t, http.StatusNotFound, code, "with --rpc-addr the API is not on the metrics listener")
	require.Equal(t, 0, p.stop(syscall.SIGINT, 30*time.Second))
}

// TestOperatorAPILoneLocalValidator: issue 11 with the real binary: a lone
// --alice of the 4-validator local chain answers /healthz 200 and /readyz
// 503 (no peers) on its metrics address.
func TestOperatorAPILoneLocalValidator(t *testing.T) {
	mport := freePort(t)
	p := startNode(t, "alice", "--chain", "local", "--alice", "--enable-asf", "--base-path", filepath.Join(t.TempDir(), "alice"),
		"--listen-addr", "/ip4/127.0.0.1/tcp/0", "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", mport))
	p.waitLog(regexp.MustCompile(`^Metrics and JSON API listening`), 0, 30*time.Second)
	url := fmt.Sprintf("http://127.0.0.1:%d", mport)
	code, body := getStatus(t, url+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", string(body))
	code, body = getStatus(t, url+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	var r api.Readiness
	require.NoError(t, json.Unmarshal(body, &r))
	var reasons []string
	for _, x := range r.Reasons {
		reasons = append(reasons, x.Reason)
	}
	require.Contains(t, reasons, api.ReasonNoPeers)
	require.Equal(t, 0, p.stop(syscall.SIGINT, 30*time.Second))
}

package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/internal/buildinfo"
	"github.com/flarechain/flare-node/node/api"
	"github.com/flarechain/flare-node/state"
	"github.com/flarechain/flare-node/tx"
)

// openAPI is docs/api/openapi.yaml, validated, with a router for its paths.
type openAPI struct {
	doc    *openapi3.T
	router routers.Router
}

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(filepath.Join("..", "docs", "api", "openapi.yaml"))
	require.NoError(t, err)
	require.NoError(t, doc.Validate(loader.Context), "docs/api/openapi.yaml is not a valid OpenAPI 3 document")
	doc.Servers = nil // match paths on any host
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)
	return &openAPI{doc: doc, router: router}
}

// paths returns the document's paths, sorted.
func (o *openAPI) paths() []string {
	var out []string
	for p := range o.doc.Paths.Map() {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// check validates one answer to GET url against the document: the path and
// its parameters are documented, the status is documented for it, and the
// body matches the schema (every required field present with its JSON
// type, no undocumented field). It returns the route's path template.
func (o *openAPI) check(t *testing.T, url string, status int, header http.Header, body []byte) string {
	t.Helper()
	path, err := o.validate(url, status, header, body)
	require.NoError(t, err, "GET %s answered %d:\n%s", url, status, body)
	return path
}

func (o *openAPI) validate(url string, status int, header http.Header, body []byte) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	route, params, err := o.router.FindRoute(req)
	if err != nil {
		return "", fmt.Errorf("GET %s is not in docs/api/openapi.yaml: %w", url, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	if status != http.StatusBadRequest {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			return "", fmt.Errorf("request does not match the document: %w", err)
		}
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: in.Options,
	})
	return route.Path, err
}

// fetch GETs url, validates the answer against the document and returns
// the status and body.
func (o *openAPI) fetch(t *testing.T, url string, covered map[string]bool) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	p := o.check(t, url, resp.StatusCode, resp.Header, body)
	if covered != nil {
		covered[p] = true
	}
	return resp.StatusCode, body
}

func (o *openAPI) fetchJSON(t *testing.T, url string, wantStatus int, into any, covered map[string]bool) {
	t.Helper()
	status, body := o.fetch(t, url, covered)
	require.Equal(t, wantStatus, status, "GET %s: %s", url, body)
	if into != nil {
		require.NoError(t, json.Unmarshal(body, into), "GET %s: %s", url, body)
	}
}

// TestOpenAPIDocumentsEveryRoute: the document lists exactly the routes the
// API serves.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	o := loadOpenAPI(t)
	want := append([]string(nil), api.Paths...)
	sort.Strings(want)
	require.Equal(t, want, o.paths())
	// The readiness rule the document states is the one the node applies.
	oneLine := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	require.Contains(t, oneLine(o.doc.Paths.Find("/readyz").Get.Description), fmt.Sprintf("more than %d checkpoint intervals", api.StallIntervals))
	require.Contains(t, oneLine(o.doc.Paths.Find("/checkpoints").Get.Description), fmt.Sprintf("at most %d numbers per", api.MaxCheckpointPage))
}

// TestOpenAPIValidationCatchesMismatches: the validation the API tests rely
// on fails a missing field, a field of the wrong JSON type, an undocumented
// field, an undocumented status and an undocumented path.
func TestOpenAPIValidationCatchesMismatches(t *testing.T) {
	o := loadOpenAPI(t)
	h := http.Header{"Content-Type": []string{"application/json"}}
	good := `{"ready":false,"reasons":[{"reason":"no_peers","message":"x"}]}`
	_, err := o.validate("http://node/readyz", 503, h, []byte(good))
	require.NoError(t, err)
	for name, c := range map[string]struct {
		url    string
		status int
		body   string
	}{
		"missing field":      {"http://node/readyz", 503, `{"ready":false}`},
		"wrong type":         {"http://node/readyz", 503, `{"ready":"no","reasons":[]}`},
		"undocumented field": {"http://node/readyz", 503, `{"ready":false,"reasons":[],"extra":1}`},
		"unknown reason":     {"http://node/readyz", 503, `{"ready":false,"reasons":[{"reason":"tired","message":"x"}]}`},
		"nested wrong type":  {"http://node/checkpoints/2", 200, `{"number":2,"block":4,"hash":"0x00","level":"x","weight":0,"quorum":1,"signers":[],"certificate":null,"source":"memory"}`},
		"null not allowed":   {"http://node/finality/latest", 200, `{"finalized":null,"justified":null,"finalizing_certificate":null,"justifying_certificate":null}`},
		"status":             {"http://node/status", 418, `{}`},
		"path":               {"http://node/nope", 200, `{}`},
	} {
		_, err := o.validate(c.url, c.status, h, []byte(c.body))
		require.Error(t, err, name)
	}
}

// metricsText scrapes /metrics.
func metricsText(t *testing.T, base string) string {
	t.Helper()
	return get(t, base+"/metrics")
}

// metricNames returns the metric family names of a scrape.
func metricNames(t *testing.T, text string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			f := strings.Fields(line)
			names[f[2]] = true
		}
	}
	require.NotEmpty(t, names)
	return names
}

var sampleRe = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$`)

// sample returns the value of the first sample of name whose labels contain
// every fragment of labels.
func sample(t *testing.T, text, name string, labels ...string) float64 {
	t.Helper()
next:
	for _, line := range strings.Split(text, "\n") {
		m := sampleRe.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(m[2], l) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(m[3], 64)
		require.NoError(t, err)
		return v
	}
	t.Fatalf("no sample %s%v in /metrics", name, labels)
	return 0
}

// TestDevValidatorOperatorSurface: issue 11's checks on a running dev
// validator (fresh base path, fast spec): /readyz answers 503 while the
// node starts and its fresh signer record is initialised, then 200;
// /checkpoints/2 returns its number, hash and level; /peers is JSON;
// /metrics has flare_build_info and flare_*_seconds histograms with
// observations, passes promlint, and holds every metric the Grafana
// dashboard uses; every path of docs/api/openapi.yaml is served and every
// answer matches it.
func TestDevValidatorOperatorSurface(t *testing.T) {
	o := loadOpenAPI(t)
	specPath, base := fastSpec(t), t.TempDir()
	cfg := testConfig(t, specPath, base, true)
	cfg.Metrics.Addr = "127.0.0.1:0"
	n, err := New(context.Background(), cfg, zap.NewNop())
	require.NoError(t, err)
	covered := map[string]bool{}

	// Before Run: starting, and the fresh signer record is not initialised.
	rec := httptest.NewRecorder()
	n.api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	o.check(t, "http://node/readyz", rec.Code, rec.Header(), rec.Body.Bytes())
	var notReady api.Readiness
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &notReady))
	require.False(t, notReady.Ready)
	require.Equal(t, []string{api.ReasonStarting, api.ReasonSignerInitialising}, reasonCodes(notReady))

	ctx, cancel := context.WithCancel(context.Background())
	wait := runNode(ctx, n)
	defer func() {
		cancel()
		require.NoError(t, wait())
	}()
	url := httpBase(n, "metrics")

	status, body := o.fetch(t, url+"/healthz", covered)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "ok\n", string(body))

	// Ready once the signer record is initialised (two checkpoint
	// intervals of listening) and finality advances.
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "/readyz never answered 200")
	var ready api.Readiness
	o.fetchJSON(t, url+"/readyz", http.StatusOK, &ready, covered)
	require.True(t, ready.Ready)
	require.Empty(t, ready.Reasons)
	waitFinalized(t, n, 3)

	// /checkpoints/2: number, hash and level.
	var cp api.Checkpoint
	o.fetchJSON(t, url+"/checkpoints/2", http.StatusOK, &cp, covered)
	h, ok := n.chain.CanonicalHash(2 * n.spec.CheckpointInterval)
	require.True(t, ok)
	require.Equal(t, uint64(2), cp.Number)
	require.Equal(t, h.String(), cp.Hash)
	require.Equal(t, checkpoint.LevelFinality.String(), cp.Level)
	require.Equal(t, 2*n.spec.CheckpointInterval, cp.Block)
	// A fresh validator votes first above the head it listened at: lower
	// checkpoints are final as ancestors, without votes of their own.
	if cp.Certificate != nil {
		require.Equal(t, api.Point{Number: 2, Hash: h.String()}, cp.Certificate.Target)
	}

	// Below the finalized checkpoint the database answers (with the
	// certificate and its signers where one was stored); at and above it
	// the gadget's memory.
	var certified uint64
	require.Eventually(t, func() bool {
		fin := n.gadget.LatestFinalized().Number
		certs, err := n.cpdb.Certificates(context.Background(), 1, fin-1, 1)
		require.NoError(t, err)
		if len(certs) == 0 {
			return false
		}
		certified = certs[0].Target.Number
		return true
	}, 30*time.Second, 20*time.Millisecond)
	o.fetchJSON(t, url+"/checkpoints/"+strconv.FormatUint(certified, 10), http.StatusOK, &cp, covered)
	require.Equal(t, api.FromDatabase, cp.Source)
	require.Equal(t, checkpoint.LevelFinality.String(), cp.Level)
	require.Equal(t, []uint32{0}, cp.Signers)
	require.Equal(t, 1, cp.Weight)
	require.Equal(t, 1, cp.Quorum)
	require.NotNil(t, cp.Certificate)
	require.Equal(t, cp.Number, cp.Certificate.Target.Number)
	require.Equal(t, cp.Hash, cp.Certificate.Target.Hash)
	require.Equal(t, []uint32{0}, cp.Certificate.Signers)
	j := n.gadget.LatestJustified()
	o.fetchJSON(t, url+"/checkpoints/"+strconv.FormatUint(j.Number, 10), http.StatusOK, &cp, covered)
	require.Equal(t, api.FromMemory, cp.Source)
	require.Contains(t, []string{checkpoint.LevelCommitment.String(), checkpoint.LevelFinality.String()}, cp.Level)
	require.Equal(t, []uint32{0}, cp.Signers)
	o.fetchJSON(t, url+"/checkpoints/0", http.StatusOK, &cp, covered)
	require.Equal(t, GenesisHash(n.spec).String(), cp.Hash, "checkpoint 0 is genesis")

	var page api.CheckpointPage
	o.fetchJSON(t, url+"/checkpoints?from=0&to=3", http.StatusOK, &page, covered)
	require.Len(t, page.Checkpoints, 4)
	for i, c := range page.Checkpoints {
		require.Equal(t, uint64(i), c.Number)
		require.Equal(t, checkpoint.LevelFinality.String(), c.Level)
	}
	o.fetchJSON(t, url+"/checkpoints", http.StatusOK, &page, covered)
	require.NotEmpty(t, page.Checkpoints)
	require.Equal(t, page.Head, page.To)
	o.fetchJSON(t, url+"/checkpoints?from=2", http.StatusOK, &page, covered)
	require.Equal(t, uint64(2), page.Checkpoints[0].Number)
	require.Equal(t, uint64(2+api.MaxCheckpointPage-1), page.To)

	// Bad input: 400; unknown numbers: 404 unknown.
	var apiErr api.Error
	for _, bad := range []string{"/checkpoints/abc", "/checkpoints/-1", "/checkpoints?from=5&to=1", "/checkpoints?from=0&to=100",
		"/checkpoints?form=1", "/checkpoints?to=x", "/evidence?limit=0", "/evidence?limit=257", "/evidence?from_slot=x", "/evidence?lmit=3"} {
		o.fetchJSON(t, url+bad, http.StatusBadRequest, &apiErr, covered)
		require.Equal(t, api.CodeBadRequest, apiErr.Code, bad)
	}
	o.fetchJSON(t, url+"/checkpoints/1000000", http.StatusNotFound, &apiErr, covered)
	require.Equal(t, api.CodeUnknown, apiErr.Code)
	require.Contains(t, apiErr.Error, "checkpoint 1000000 is unknown")

	// /status: version, commit, role, levels.
	var st api.Status
	o.fetchJSON(t, url+"/status", http.StatusOK, &st, covered)
	require.Equal(t, buildinfo.Version(), st.Version)
	require.Equal(t, buildinfo.Commit(), st.Commit)
	require.Equal(t, api.RoleValidator, st.Role.Kind)
	require.NotNil(t, st.Role.ValidatorIndex)
	require.Equal(t, uint32(0), *st.Role.ValidatorIndex)
	require.True(t, st.Role.Votes)
	require.GreaterOrEqual(t, len(st.Levels), 2)
	top := st.Levels[len(st.Levels)-2:]
	require.Equal(t, checkpoint.LevelCommitment.String(), top[0].Level)
	require.Equal(t, checkpoint.LevelFinality.String(), top[1].Level)
	require.GreaterOrEqual(t, top[1].Checkpoint, uint64(3))
	require.Equal(t, st.Finalized, top[1].Checkpoint)
	require.NotNil(t, st.LastFinalizedAt)
	require.False(t, st.Halted)

	var fl api.FinalityLatest
	o.fetchJSON(t, url+"/finality/latest", http.StatusOK, &fl, covered)
	require.NotNil(t, fl.FinalizingCertificate)
	require.Equal(t, fl.Finalized.Number, fl.FinalizingCertificate.Source.Number)
	require.Equal(t, fl.Finalized.Hash, fl.FinalizingCertificate.Source.Hash)
	require.NotNil(t, fl.JustifyingCertificate)
	require.Equal(t, fl.Justified.Number, fl.JustifyingCertificate.Target.Number)

	var ev api.EvidencePage
	o.fetchJSON(t, url+"/evidence", http.StatusOK, &ev, covered)
	require.Empty(t, ev.CheckpointEvidence)
	require.Empty(t, ev.BlockEquivocations)
	require.Empty(t, ev.Halts)
	o.fetchJSON(t, url+"/evidence?limit=1&from_checkpoint=3&from_slot=2", http.StatusOK, &ev, covered)

	var auth api.Authorities
	o.fetchJSON(t, url+"/authorities", http.StatusOK, &auth, covered)
	require.Equal(t, st.SetID, auth.SetID)
	require.Len(t, auth.Authorities, 1)
	require.Equal(t, "0x"+hex.EncodeToString(n.spec.AuthoritySet().Keys[0]), auth.Authorities[0].PublicKey)
	require.Equal(t, uint64(0), auth.StartedAt.Number)
	require.Nil(t, auth.HandOffCertificate)
	require.Empty(t, auth.Pending)
	require.True(t, auth.Voter)

	var peers []map[string]any
	o.fetchJSON(t, url+"/peers", http.StatusOK, &peers, covered)
	require.Empty(t, peers, "a lone dev validator has no peers")

	// Accounts, blocks and transactions (TestTransferToFinality covers
	// them in depth).
	alice, err := chainspec.DevKey("alice")
	require.NoError(t, err)
	aliceAddr := tx.AddressOf(alice.Public().(ed25519.PublicKey))
	var acc api.Account
	o.fetchJSON(t, url+"/accounts/"+aliceAddr.String(), http.StatusOK, &acc, covered)
	require.Equal(t, aliceAddr.String(), acc.Address)
	o.fetchJSON(t, url+"/accounts/0x12", http.StatusBadRequest, nil, covered)
	var blk api.Block
	o.fetchJSON(t, url+"/blocks/1", http.StatusOK, &blk, covered)
	require.Equal(t, uint64(1), blk.Number)
	x := &tx.Tx{Genesis: GenesisHash(n.spec), To: aliceAddr, Amount: 1, Fee: n.spec.MinFee}
	x.Sign(alice)
	status, out := o.post(t, url+"/tx", "application/octet-stream", x.Encode())
	require.Equal(t, http.StatusOK, status, "%s", out)
	covered["/tx"] = true
	o.fetchJSON(t, url+"/tx/"+x.Hash().String(), http.StatusOK, nil, covered)
	o.fetchJSON(t, url+"/tx/0x"+strings.Repeat("ab", 32)+"/watch", http.StatusNotFound, nil, covered)

	require.Equal(t, o.paths(), keys(covered), "every path of docs/api/openapi.yaml is served and checked")

	// /metrics.
	text := metricsText(t, url)
	require.Equal(t, 1.0, sample(t, text, "flare_build_info", `version="`+buildinfo.Version()+`"`, `commit="`+buildinfo.Commit()+`"`, `goversion="go`))
	require.Greater(t, sample(t, text, "flare_finality_vote_to_justified_seconds_count"), 0.0)
	require.Greater(t, sample(t, text, "flare_checkpointdb_certificate_persist_seconds_count"), 0.0)
	require.Equal(t, sample(t, text, "flare_checkpointdb_certificate_persist_seconds_count"),
		sample(t, text, "flare_checkpointdb_certificate_persist_seconds_bucket", `le="+Inf"`))
	require.GreaterOrEqual(t, sample(t, text, "flare_finality_finalized_checkpoint"), 3.0)
	require.Greater(t, sample(t, text, "flare_finality_last_finalized_timestamp_seconds"), float64(time.Now().Add(-time.Minute).Unix()))
	require.Greater(t, sample(t, text, "flare_blocks_authored_total"), 0.0)
	require.Equal(t, 0.0, sample(t, text, "flare_finality_authority_set_id"))
	require.Greater(t, sample(t, text, "flare_db_disk_usage_bytes", `db="checkpoints"`), 0.0)
	require.Greater(t, sample(t, text, "flare_db_disk_usage_bytes", `db="chain"`), 0.0)
	require.Equal(t, 1.0, sample(t, text, "flare_ready"))
	for _, kind := range []string{"vote", "certificate"} {
		for _, verdict := range []string{"accept", "ignore", "reject"} {
			sample(t, text, "flare_finality_messages_total", `kind="`+kind+`"`, `verdict="`+verdict+`"`)
		}
	}
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	require.NoError(t, err)
	for _, p := range problems {
		require.False(t, strings.HasPrefix(p.Metric, "flare_"), "promlint: %s: %s", p.Metric, p.Text)
	}

	// docs/metrics.md lists exactly the flare_* metrics with their types.
	require.Equal(t, documentedMetrics(t), exportedFlareMetrics(text))

	// Every metric of the Grafana dashboard exists.
	names := metricNames(t, text)
	used := dashboardMetrics(t)
	require.Contains(t, used, "flare_finality_vote_to_justified_seconds", "histogram series name their family")
	require.Contains(t, used, "flare_build_info", "the instance variable's query counts")
	for _, m := range used {
		require.True(t, names[m], "deploy/grafana/flare-node.json uses %s, which /metrics does not export", m)
	}
}

var docMetricRe = regexp.MustCompile("^\\| `(flare_[a-z0-9_]+)` \\| (counter|gauge|histogram) \\|")

// documentedMetrics returns the metric names and types of the tables of
// docs/metrics.md.
func documentedMetrics(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	require.NoError(t, err)
	out := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if m := docMetricRe.FindStringSubmatch(line); m != nil {
			out[m[1]] = m[2]
		}
	}
	require.NotEmpty(t, out)
	return out
}

// exportedFlareMetrics returns the flare_* families of a scrape with their
// types.
func exportedFlareMetrics(text string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], "flare_") {
			out[f[2]] = f[3]
		}
	}
	return out
}

func reasonCodes(r api.Readiness) []string {
	out := []string{}
	for _, x := range r.Reasons {
		out = append(out, x.Reason)
	}
	return out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// dashboardMetricRe finds metric names in a PromQL expression: the
// dashboard uses only flare_, process_ and go_ metrics; histogram series
// suffixes name their family.
var dashboardMetricRe = regexp.MustCompile(`\b(?:flare|process|go)_[a-zA-Z0-9_]+`)

// dashboardMetrics returns the metric families every PromQL expression of
// deploy/grafana/flare-node.json uses (panel targets and query variables).
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "flare-node.json"))
	require.NoError(t, err)
	var doc any
	require.NoError(t, json.Unmarshal(raw, &doc), "the dashboard is not JSON")
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				// Panel queries (expr) and query variables (definition).
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") && s != "" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	require.NotEmpty(t, exprs, "no PromQL expression in the dashboard")
	seen := map[string]bool{}
	for _, e := range exprs {
		found := dashboardMetricRe.FindAllString(e, -1)
		require.NotEmpty(t, found, "expression %q uses no flare_, process_ or go_ metric", e)
		for _, m := range found {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(m, suffix); ok && strings.HasSuffix(base, "_seconds") {
					m = base
				}
			}
			seen[m] = true
		}
	}
	return keys(seen)
}

// TestLoneLocalValidatorNotReady: issue 11. A lone --alice of the
// 4-validator local chain is alive (/healthz 200) but not ready (/readyz
// 503: no peers; and finality stalls).
func TestLoneLocalValidatorNotReady(t *testing.T) {
	o := loadOpenAPI(t)
	cfg := testConfig(t, fastLocalSpec(t), t.TempDir(), true)
	cfg.Metrics.Addr = "127.0.0.1:0"
	n, err := New(context.Background(), cfg, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runNode(ctx, n)
	defer func() {
		cancel()
		require.NoError(t, wait())
	}()
	url := httpBase(n, "metrics")
	status, body := o.fetch(t, url+"/healthz", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "ok\n", string(body))

	var r api.Readiness
	o.fetchJSON(t, url+"/readyz", http.StatusServiceUnavailable, &r, nil)
	require.Contains(t, reasonCodes(r), api.ReasonNoPeers)
	// 8 checkpoint intervals of 2 x 200 ms without finality: stalled.
	require.Eventually(t, func() bool {
		status, body := o.fetch(t, url+"/readyz", nil)
		return status == http.StatusServiceUnavailable && json.Unmarshal(body, &r) == nil &&
			len(r.Reasons) > 0 && r.Reasons[len(r.Reasons)-1].Reason == api.ReasonFinalityStalled
	}, 20*time.Second, 50*time.Millisecond)
	require.Contains(t, r.Reasons[len(r.Reasons)-1].Message, "more than 8 checkpoint intervals")

	var st api.Status
	o.fetchJSON(t, url+"/status", http.StatusOK, &st, nil)
	require.Equal(t, 4, st.Authorities)
	require.Equal(t, 3, st.Quorum)
	require.Equal(t, 0, st.Peers)
	require.Equal(t, 0.0, sample(t, metricsText(t, url), "flare_ready"))
}

// TestHaltedNodeNotReady: a persisted safety alarm makes /readyz 503 with
// its reason and shows in /status, /evidence and flare_finality_halted.
func TestHaltedNodeNotReady(t *testing.T) {
	o := loadOpenAPI(t)
	cfg := testConfig(t, fastSpec(t), t.TempDir(), true)
	cfg.Metrics.Addr = "127.0.0.1:0"
	n, err := New(context.Background(), cfg, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runNode(ctx, n)
	defer func() {
		cancel()
		require.NoError(t, wait())
	}()
	url := httpBase(n, "metrics")
	waitFinalized(t, n, 2)
	h := checkpoint.Halt{Reason: checkpoint.HaltConflictingFinality, Checkpoint: 2, Detail: "raised by the test"}
	require.NoError(t, n.gadget.RaiseAlarm(ctx, h))

	var r api.Readiness
	o.fetchJSON(t, url+"/readyz", http.StatusServiceUnavailable, &r, nil)
	require.Contains(t, reasonCodes(r), api.ReasonHalted)
	for _, x := range r.Reasons {
		if x.Reason == api.ReasonHalted {
			require.Contains(t, x.Message, "conflicting-finality at checkpoint 2: raised by the test")
		}
	}
	var st api.Status
	o.fetchJSON(t, url+"/status", http.StatusOK, &st, nil)
	require.True(t, st.Halted)
	require.Equal(t, []api.Halt{{Reason: "conflicting-finality", Checkpoint: 2, Detail: "raised by the test"}}, st.Halts)
	var ev api.EvidencePage
	o.fetchJSON(t, url+"/evidence", http.StatusOK, &ev, nil)
	require.Equal(t, st.Halts, ev.Halts)
	require.Equal(t, 1.0, sample(t, metricsText(t, url), "flare_finality_halted"))
}

// TestPrunedCheckpoint: a finalized number below the retention window is
// 404 pruned and left out of pages; the prune metrics count it.
func TestPrunedCheckpoint(t *testing.T) {
	o := loadOpenAPI(t)
	cfg := testConfig(t, fastSpec(t), t.TempDir(), true)
	cfg.Metrics.Addr = "127.0.0.1:0"
	cfg.Persistence.RetentionCheckpoints = 1
	cfg.Persistence.PruneInterval = 100 * time.Millisecond
	n, err := New(context.Background(), cfg, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runNode(ctx, n)
	defer func() {
		cancel()
		require.NoError(t, wait())
	}()
	url := httpBase(n, "metrics")
	require.Eventually(t, func() bool { return n.cpdb.OldestRetained() > 2 }, 30*time.Second, 20*time.Millisecond)
	var apiErr api.Error
	o.fetchJSON(t, url+"/checkpoints/1", http.StatusNotFound, &apiErr, nil)
	require.Equal(t, api.CodePruned, apiErr.Code)
	require.Contains(t, apiErr.Error, "checkpoint 1 was pruned")
	var page api.CheckpointPage
	o.fetchJSON(t, url+"/checkpoints?from=1&to=2", http.StatusOK, &page, nil)
	require.Empty(t, page.Checkpoints)
	require.Greater(t, page.OldestRetained, uint64(2))
	text := metricsText(t, url)
	resp, err := http.Get(url + "/debug/pprof/") // off without --pprof
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Greater(t, sample(t, text, "flare_checkpointdb_prune_runs_total"), 0.0)
	require.Greater(t, sample(t, text, "flare_checkpointdb_pruned_checkpoints_total"), 0.0)
	require.Greater(t, sample(t, text, "flare_checkpointdb_last_prune_timestamp_seconds"), 0.0)
	require.Greater(t, sample(t, text, "flare_checkpointdb_oldest_retained_checkpoint"), 2.0)
}

// TestRPCAddr: with --rpc-addr the API is served there and the metrics
// listener serves only /metrics (and, with --pprof, /debug/pprof/); an RPC
// address in use refuses the start before the base path is created.
func TestRPCAddr(t *testing.T) {
	cfg := testConfig(t, fastSpec(t), t.TempDir(), true)
	cfg.Metrics.Addr, cfg.RPC.Addr, cfg.Metrics.Pprof = "127.0.0.1:0", "127.0.0.1:0", true
	require.NoError(t, cfg.Validate())
	n, err := New(context.Background(), cfg, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runNode(ctx, n)
	rpc, metrics := httpBase(n, "rpc"), httpBase(n, "metrics")
	require.Contains(t, get(t, metrics+"/metrics"), "flare_build_info")
	require.Equal(t, "ok\n", get(t, rpc+"/healthz"))
	var st api.Status
	getJSON(t, rpc+"/status", &st)
	require.Equal(t, "fast_dev", st.Chain)
	require.Contains(t, get(t, metrics+"/debug/pprof/"), "goroutine")
	require.Contains(t, get(t, metrics+"/debug/pprof/goroutine?debug=1"), "goroutine profile")
	for _, c := range []struct{ base, path string }{{metrics, "/status"}, {metrics, "/healthz"}, {rpc, "/metrics"}, {rpc, "/debug/pprof/"}} {
		resp, err := http.Get(c.base + c.path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode, c.base+c.path)
	}
	cancel()
	require.NoError(t, wait())

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	base := filepath.Join(t.TempDir(), "base")
	cfg = testConfig(t, fastSpec(t), base, true)
	cfg.RPC.Addr = taken.Addr().String()
	_, err = New(context.Background(), cfg, zap.NewNop())
	require.ErrorIs(t, err, ErrStartup)
	require.ErrorContains(t, err, "rpc listener "+taken.Addr().String())
	_, err = os.Stat(base)
	require.True(t, errors.Is(err, fs.ErrNotExist), "base path created")
}

// TestFourValidatorsAPI: the API and metrics of a validator of a running
// 4-validator network: ready with 3 peers; checkpoints signed by a quorum
// of distinct validators; blocks of the others imported and timed. With
// two validators stopped, votes without a quorum show the lowest level of
// the scale (weight below quorum, their signers), and finality stalls.
func TestFourValidatorsAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("network test")
	}
	o := loadOpenAPI(t)
	tn := newTestNetWith(t, 4, true)
	tn.waitAll(3, 60*time.Second)
	n := tn.nodes[0]
	url := httpBase(n, "metrics")
	require.Eventually(t, func() bool {
		status, _ := o.fetch(t, url+"/readyz", nil)
		return status == http.StatusOK
	}, 60*time.Second, 50*time.Millisecond)

	var st api.Status
	o.fetchJSON(t, url+"/status", http.StatusOK, &st, nil)
	require.Equal(t, 4, st.Authorities)
	require.Equal(t, 3, st.Quorum)
	require.Equal(t, 3, st.Peers)
	require.Equal(t, uint32(0), *st.Role.ValidatorIndex)

	j := n.gadget.LatestJustified().Number
	var cp api.Checkpoint
	o.fetchJSON(t, url+"/checkpoints/"+strconv.FormatUint(j, 10), http.StatusOK, &cp, nil)
	require.Equal(t, 3, cp.Quorum)
	require.GreaterOrEqual(t, len(cp.Signers), 3, "%+v", cp)
	require.GreaterOrEqual(t, cp.Weight, len(cp.Signers))
	require.NotNil(t, cp.Certificate)
	require.Equal(t, cp.Signers, cp.Certificate.Signers)

	text := metricsText(t, url)
	require.Greater(t, sample(t, text, "flare_finality_messages_total", `kind="vote"`, `verdict="accept"`), 0.0)
	require.Greater(t, sample(t, text, "flare_block_imports_total", `result="imported"`), 0.0)
	require.Greater(t, sample(t, text, "flare_block_import_seconds_count"), 0.0)
	require.Greater(t, sample(t, text, "flare_p2p_gossip_messages_total", `topic="votes"`, `verdict="accept"`, `reason=""`), 0.0)
	require.Equal(t, 3.0, sample(t, text, "flare_p2p_peers", `direction="inbound"`)+sample(t, text, "flare_p2p_peers", `direction="outbound"`))

	// Two of four stopped: no quorum. Alice and Bob keep voting on new
	// checkpoints: 2 votes of 3 needed.
	tn.stop(3)
	tn.stop(2)
	var pre api.Level
	require.Eventually(t, func() bool {
		o.fetchJSON(t, url+"/status", http.StatusOK, &st, nil)
		if len(st.Levels) == 3 && st.Levels[0].Level == checkpoint.LevelPreCommitment.String() {
			pre = st.Levels[0]
			return true
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "no checkpoint with votes and no quorum appeared: %+v", st.Levels)
	require.Greater(t, pre.Checkpoint, st.Justified)
	require.Less(t, pre.Weight, pre.Quorum)
	o.fetchJSON(t, url+"/checkpoints/"+strconv.FormatUint(pre.Checkpoint, 10), http.StatusOK, &cp, nil)
	require.Equal(t, checkpoint.LevelPreCommitment.String(), cp.Level)
	require.Equal(t, api.FromMemory, cp.Source)
	require.Nil(t, cp.Certificate)
	require.NotEmpty(t, cp.Signers)
	require.Len(t, cp.Signers, cp.Weight)
	for _, s := range cp.Signers {
		require.Less(t, s, uint32(2), "only alice (0) and bob (1) run")
	}
	require.Eventually(t, func() bool {
		var r api.Readiness
		status, body := o.fetch(t, url+"/readyz", nil)
		return status == http.StatusServiceUnavailable && json.Unmarshal(body, &r) == nil &&
			slicesContains(reasonCodes(r), api.ReasonFinalityStalled)
	}, 30*time.Second, 50*time.Millisecond)
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestEvidenceEndpoint: a proposer equivocation and a double vote by bob
// received by a lone alice of the local chain are stored and listed by
// /evidence (and counted in /metrics), pages split between slots.
func TestEvidenceEndpoint(t *testing.T) {
	o := loadOpenAPI(t)
	cfg := testConfig(t, fastLocalSpec(t), t.TempDir(), true)
	cfg.Metrics.Addr = "127.0.0.1:0"
	n, err := New(context.Background(), cfg, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runNode(ctx, n)
	defer func() {
		cancel()
		require.NoError(t, wait())
	}()
	url := httpBase(n, "metrics")
	bob, err := chainspec.DevKey("bob")
	require.NoError(t, err)

	// Two different blocks of bob (authority 1) for each of two of his
	// past slots, on genesis.
	genesis, _, _ := n.chain.BlockByHash(GenesisHash(n.spec))
	now := asf.SlotAt(n.spec, time.Now())
	var slots []uint64
	for s := now; len(slots) < 2; s-- {
		if asf.ProposerOf(n.spec, s) == 1 {
			slots = append([]uint64{s}, slots...)
		}
	}
	// The two versions differ by the amount of one transfer of bob's.
	block := func(slot uint64, extrinsic string) asf.Block {
		alice, err := chainspec.DevKey("alice")
		require.NoError(t, err)
		x := &tx.Tx{Genesis: GenesisHash(n.spec), To: tx.AddressOf(alice.Public().(ed25519.PublicKey)),
			Amount: uint64(len(extrinsic)), Fee: n.spec.MinFee}
		x.Sign(bob)
		b := asf.Block{Header: asf.Header{ParentHash: genesis.Hash(), Number: 1, Slot: slot, Proposer: 1,
			TimestampMs: uint64(asf.SlotStart(n.spec, slot).UnixMilli())}, Extrinsics: [][]byte{x.Encode()}}
		res, err := n.exec.State().Execute(genesis.Header.StateRoot, state.Env{Genesis: GenesisHash(n.spec), MinFee: n.spec.MinFee,
			Number: 1, Proposer: tx.AddressOf(bob.Public().(ed25519.PublicKey))}, b.Extrinsics, nil)
		require.NoError(t, err)
		b.Header.StateRoot = res.Root
		b.Header.BodyRoot = asf.BodyRoot(b.Extrinsics)
		b.Header.Sign(bob)
		return b
	}
	var firsts []asf.Block
	for _, s := range slots {
		first, second := block(s, "first"), block(s, "second")
		v, err := n.engine.OnBlock(ctx, "", first)
		require.NoError(t, err)
		require.Equal(t, "accept", v.String())
		v, err = n.engine.OnBlock(ctx, "", second)
		require.NoError(t, err)
		require.Equal(t, "ignore", v.String(), "an equivocation is ignored, its evidence kept")
		firsts = append(firsts, first)
	}

	// A double vote of bob for checkpoint 1.
	g0 := checkpoint.Checkpoint{Number: 0, Hash: GenesisHash(n.spec)}
	vote := func(h checkpoint.Hash) checkpoint.SignedVote {
		v := checkpoint.Vote{Genesis: GenesisHash(n.spec), SetID: n.spec.SetID, Source: g0, Target: checkpoint.Checkpoint{Number: 1, Hash: h}}
		return checkpoint.SignedVote{Vote: v, Validator: 1, Signature: finality.NewKeySigner(bob).Sign(v.SigningBytes())}
	}
	first, second := vote(checkpoint.HashOf([]byte("a"))), vote(checkpoint.HashOf([]byte("b")))
	v, err := n.engine.OnVote(ctx, "", first)
	require.NoError(t, err)
	require.Equal(t, "accept", v.String())
	_, err = n.engine.OnVote(ctx, "", second)
	require.NoError(t, err)

	var ev api.EvidencePage
	o.fetchJSON(t, url+"/evidence", http.StatusOK, &ev, nil)
	require.Len(t, ev.BlockEquivocations, 2)
	require.Nil(t, ev.NextFromSlot)
	for i, e := range ev.BlockEquivocations {
		require.Equal(t, uint32(1), e.Proposer)
		require.Equal(t, slots[i], e.Slot)
		require.Equal(t, firsts[i].Hash().String(), e.First.Hash)
		require.NotEqual(t, e.First.Hash, e.Second.Hash)
	}
	require.Len(t, ev.CheckpointEvidence, 1)
	e := ev.CheckpointEvidence[0]
	require.Equal(t, checkpoint.EvidenceDoubleVote.String(), e.Kind)
	require.Equal(t, uint32(1), e.Validator)
	require.Equal(t, uint64(1), e.Checkpoint)
	require.Equal(t, first.Target.Hash.String(), e.First.Target.Hash)
	require.Equal(t, second.Target.Hash.String(), e.Second.Target.Hash)
	require.Nil(t, e.Certificate)

	// Pages: one slot at a time.
	o.fetchJSON(t, url+"/evidence?limit=1", http.StatusOK, &ev, nil)
	require.Len(t, ev.BlockEquivocations, 1)
	require.NotNil(t, ev.NextFromSlot)
	require.Equal(t, slots[1], *ev.NextFromSlot)
	o.fetchJSON(t, url+"/evidence?limit=1&from_slot="+strconv.FormatUint(*ev.NextFromSlot, 10)+"&from_checkpoint=2", http.StatusOK, &ev, nil)
	require.Len(t, ev.BlockEquivocations, 1)
	require.Equal(t, slots[1], ev.BlockEquivocations[0].Slot)
	require.Nil(t, ev.NextFromSlot)
	require.Empty(t, ev.CheckpointEvidence, "no evidence from checkpoint 2 on")

	text := metricsText(t, url)
	require.Equal(t, 2.0, sample(t, text, "flare_block_imports_total", `result="equivocation"`))
	require.Equal(t, 1.0, sample(t, text, "flare_finality_evidence_total"))
	require.GreaterOrEqual(t, sample(t, text, "flare_finality_messages_total", `kind="vote"`, `verdict="accept"`), 1.0)
}

// BenchmarkOperatorEndpoints measures the answers of a running dev
// validator (fast spec) that has finalized a few dozen checkpoints:
// go test -run '^$' -bench OperatorEndpoints ./node/
func BenchmarkOperatorEndpoints(b *testing.B) {
	specPath := writeSpecB(b)
	cfg := config.Default()
	cfg.Chain, cfg.BasePath, cfg.EnableASF, cfg.Validator, cfg.KeyName = specPath, b.TempDir(), true, true, "alice"
	cfg.P2P.Port, cfg.P2P.ListenAddrs = 0, []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Metrics.Addr = "127.0.0.1:0"
	cfg.Persistence = config.PersistenceConfig{Enabled: true, RetentionCheckpoints: 1000, FlushInterval: time.Second, PruneInterval: time.Hour}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	n, err := New(context.Background(), &cfg, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	for n.gadget.LatestFinalized().Number < 40 {
		time.Sleep(50 * time.Millisecond)
	}
	url := httpBase(n, "metrics")
	for _, path := range []string{"/healthz", "/readyz", "/status", "/checkpoints/2", "/checkpoints?from=0&to=99", "/evidence", "/metrics"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			for b.Loop() {
				resp, err := http.Get(url + path)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// writeSpecB is fastSpec for a benchmark.
func writeSpecB(b *testing.B) string {
	spec, err := chainspec.Builtin("dev")
	if err != nil {
		b.Fatal(err)
	}
	spec.Name, spec.ID, spec.SlotDurationMs, spec.CheckpointInterval = "fast_dev", "fast_dev", 100, 2
	raw, err := json.Marshal(spec)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "spec.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

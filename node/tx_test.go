package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/node/api"
	"github.com/flarechain/flare-node/state"
	"github.com/flarechain/flare-node/tx"
)

// post POSTs body to url, validates request and answer against the
// document and returns the status and body.
func (o *openAPI) post(t *testing.T, url, contentType string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	route, params, err := o.router.FindRoute(req)
	require.NoError(t, err, "POST %s is not in docs/api/openapi.yaml", url)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	require.NoError(t, openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(out)),
		Options: in.Options,
	}), "POST %s: %s", url, out)
	return resp.StatusCode, out
}

func devAddr(t *testing.T, name string) (ed25519.PrivateKey, tx.Address) {
	t.Helper()
	k, err := chainspec.DevKey(name)
	require.NoError(t, err)
	return k, tx.AddressOf(k.Public().(ed25519.PublicKey))
}

// TestTransferToFinality: on a dev chain a transfer submitted to POST /tx
// is validated, included, justified and finalized; both balances change by
// exactly the amount (the dev validator alice is the proposer and earns the
// fee back), the nonce moves, GET /blocks shows the transaction, every
// refusal is reported with its reason, and after a restart the balances at
// the finalized checkpoint are the same.
func TestTransferToFinality(t *testing.T) {
	specPath, base := fastSpec(t), t.TempDir()
	o := loadOpenAPI(t)
	start := func() (*Node, func() error, context.CancelFunc) {
		log, _ := observedLogger()
		cfg := testConfig(t, specPath, base, true)
		cfg.Metrics.Addr = "127.0.0.1:0"
		n, err := New(context.Background(), cfg, log)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		return n, runNode(ctx, n), cancel
	}
	n, wait, cancel := start()
	url := httpBase(n, "metrics")
	alice, aliceAddr := devAddr(t, "alice")
	_, bobAddr := devAddr(t, "bob")
	account := func(addr tx.Address, q string) api.Account {
		var a api.Account
		o.fetchJSON(t, url+"/accounts/"+addr.String()+q, http.StatusOK, &a, nil)
		return a
	}
	balance := func(a api.Account) uint64 {
		v, err := strconv.ParseUint(a.Balance, 10, 64)
		require.NoError(t, err)
		return v
	}
	before := account(bobAddr, "")
	require.Equal(t, uint64(chainspec.DevBalance), balance(before))
	require.Equal(t, uint64(0), before.Nonce)

	genesis := GenesisHash(n.spec)
	transfer := func(nonce, amount, fee uint64, key ed25519.PrivateKey) *tx.Tx {
		x := &tx.Tx{Genesis: genesis, To: bobAddr, Amount: amount, Fee: fee, Nonce: nonce}
		x.Sign(key)
		return x
	}
	submit := func(x *tx.Tx) (int, api.TxStatus) {
		body, err := json.Marshal(api.TxSubmit{Tx: "0x" + hex.EncodeToString(x.Encode())})
		require.NoError(t, err)
		code, out := o.post(t, url+"/tx", "application/json", body)
		var st api.TxStatus
		require.NoError(t, json.Unmarshal(out, &st), "%s", out)
		return code, st
	}

	x := transfer(0, 5, 1, alice)
	code, st := submit(x)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, api.TxValidated, st.Status)
	require.Equal(t, x.Hash().String(), st.Hash)
	watched := watchTx(t, o, url, x.Hash())
	code, st = submit(x) // idempotent by hash
	require.Equal(t, http.StatusOK, code, "%+v", st)
	require.Equal(t, x.Hash().String(), st.Hash)

	// Refusals, each with its reason.
	wrong := &tx.Tx{Genesis: tx.Hash{1}, To: bobAddr, Amount: 1, Fee: 1, Nonce: 1}
	wrong.Sign(alice)
	bad := transfer(1, 1, 1, alice)
	bad.Signature[0] ^= 1
	for name, c := range map[string]struct {
		x      *tx.Tx
		reason string
	}{
		"wrong chain":   {wrong, "wrong chain"},
		"bad signature": {bad, "bad signature"},
		"nonce gap":     {transfer(7, 1, 1, alice), ""},
		"fee too low":   {transfer(1, 1, 0, alice), "fee too low"},
		"too much":      {transfer(1, chainspec.DevBalance, 1, alice), "insufficient balance"},
	} {
		code, st := submit(c.x)
		if c.reason == "" {
			require.Equal(t, http.StatusOK, code, name) // waits in the future queue
			continue
		}
		require.Equal(t, http.StatusBadRequest, code, name)
		require.Equal(t, api.TxRefused, st.Status, name)
		require.Equal(t, c.reason, st.Reason, name)
	}
	// The next nonce counts the pooled transaction whether or not a block
	// holds it yet (the future nonce 7 does not count).
	pending := account(aliceAddr, "")
	require.NotNil(t, pending.PendingNonce)
	require.Equal(t, uint64(1), *pending.PendingNonce)
	require.Nil(t, account(aliceAddr, "?at=finalized").PendingNonce)

	// Malformed and oversized bodies: 400 with one JSON error, never a 500.
	for name, c := range map[string]struct {
		ct   string
		body []byte
	}{
		"not hex":            {"application/json", []byte(`{"tx":"zz"}`)},
		"no 0x":              {"application/json", []byte(`{"tx":"00"}`)},
		"not json":           {"application/json", []byte(`tx=00`)},
		"unknown field":      {"application/json", []byte(`{"tx":"0x00","extra":1}`)},
		"oversized json":     {"application/json", []byte(`{"tx":"0x` + strings.Repeat("00", 5000) + `"}`)},
		"oversized binary":   {"application/octet-stream", bytes.Repeat([]byte{1}, 5000)},
		"garbage binary":     {"application/octet-stream", []byte{0xff, 0xff, 0xff}},
		"empty":              {"application/octet-stream", nil},
		"truncated encoding": {"application/octet-stream", x.Encode()[:50]},
	} {
		status, body := o.post(t, url+"/tx", c.ct, c.body)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", name, body)
		require.True(t, json.Valid(body), "%s: %s", name, body)
	}

	// validated -> included -> justified -> finalized.
	seen := map[string]bool{}
	var final api.TxStatus
	require.Eventually(t, func() bool {
		var s api.TxStatus
		o.fetchJSON(t, url+"/tx/"+x.Hash().String(), http.StatusOK, &s, nil)
		seen[s.Status] = true
		final = s
		return s.Status == api.TxFinalized
	}, 30*time.Second, 10*time.Millisecond)
	require.NotNil(t, final.Block)
	require.NotNil(t, final.Index)
	select {
	case ev := <-watched:
		var got []string
		for _, e := range ev {
			got = append(got, e.Status)
		}
		require.Equal(t, []string{"validated", "included", "justified", "finalized"}, got, "the watch stream reports each level once, then ends")
		require.Equal(t, *final.Block, *ev[3].Block)
	case <-time.After(10 * time.Second):
		t.Fatal("the watch stream did not end after finalized")
	}
	o.fetchJSON(t, url+"/tx/0x"+strings.Repeat("ab", 32)+"/watch", http.StatusNotFound, nil, nil)
	o.fetchJSON(t, url+"/tx/0x12/watch", http.StatusBadRequest, nil, nil)

	// The metrics saw the refusals, the block and the latency.
	require.Eventually(t, func() bool {
		return strings.Contains(get(t, url+"/metrics"), "flare_tx_submit_to_finalized_seconds_count 1\n")
	}, 10*time.Second, 20*time.Millisecond)
	text := get(t, url+"/metrics")
	for _, want := range []string{
		`flare_txpool_refused_total{reason="wrong chain"} 1`,
		`flare_txpool_refused_total{reason="bad signature"} 1`,
		`flare_txpool_refused_total{reason="insufficient balance"} 1`,
		`flare_txpool_refused_total{reason="fee too low"} 1`,
		`flare_txpool_transactions{queue="future"} 1`,
		`flare_txpool_admitted_total 2`,
		`flare_block_transactions_bucket{le="1"}`,
	} {
		require.Contains(t, text, want)
	}

	var blk api.Block
	o.fetchJSON(t, fmt.Sprintf("%s/blocks/%d", url, *final.Block), http.StatusOK, &blk, nil)
	require.Len(t, blk.Transactions, 1)
	require.Equal(t, x.Hash().String(), blk.Transactions[0].Hash)
	require.Equal(t, "5", blk.Transactions[0].Amount)

	bob := account(bobAddr, "?at=finalized")
	require.Equal(t, uint64(chainspec.DevBalance)+5, balance(bob), "bob gains exactly the amount")
	al := account(aliceAddr, "?at=finalized")
	require.Equal(t, uint64(chainspec.DevBalance)-5, balance(al), "alice pays amount+fee and earns the fee as proposer")
	require.Equal(t, uint64(1), al.Nonce)
	require.Equal(t, "finalized", bob.At.Level)

	// The proof verifies against the finalized header's state root.
	var proved api.Account
	o.fetchJSON(t, url+"/accounts/"+bobAddr.String()+"?proof=1", http.StatusOK, &proved, nil)
	require.NotNil(t, proved.Proof)
	var nodes [][]byte
	for _, s := range proved.Proof.Nodes {
		b, err := hex.DecodeString(s[2:])
		require.NoError(t, err)
		nodes = append(nodes, b)
	}
	rootBytes, err := hex.DecodeString(proved.Proof.Header.StateRoot[2:])
	require.NoError(t, err)
	acc, ok, err := state.VerifyProof(tx.Hash(rootBytes), bobAddr, nodes)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, balance(proved), acc.Balance)
	// And as an independent light client that trusts only the spec.
	lc, err := newLightClient(n.spec)
	require.NoError(t, err)
	require.Equal(t, GenesisHash(n.spec).String(), "0x"+hex.EncodeToString(lc.genesis[:]), "the documented genesis hash")
	bal, nonce, err := lc.verify(bobAddr.String(), proved)
	require.NoError(t, err)
	require.Equal(t, balance(proved), bal)
	require.Equal(t, uint64(0), nonce)
	// A forged answer fails: another balance, a flipped proof node, a
	// certificate signature of another validator, a forged header.
	forged := proved
	forged.Balance = strconv.FormatUint(balance(proved)+1, 10)
	_, _, err = lc.verify(bobAddr.String(), forged)
	require.Error(t, err)
	badNode := *proved.Proof
	badNode.Nodes = append([]string{}, proved.Proof.Nodes...)
	last := len(badNode.Nodes) - 1
	flip := func(s string, i int) string {
		c := "0"
		if s[i] == '0' {
			c = "1"
		}
		return s[:i] + c + s[i+1:]
	}
	badNode.Nodes[last] = flip(badNode.Nodes[last], len(badNode.Nodes[last])-20)
	forged = proved
	forged.Proof = &badNode
	_, _, err = lc.verify(bobAddr.String(), forged)
	require.Error(t, err)
	badHeader := *proved.Proof
	badHeader.Header.StateRoot = badHeader.Header.BodyRoot
	forged.Proof = &badHeader
	_, _, err = lc.verify(bobAddr.String(), forged)
	require.Error(t, err)
	badCert := *proved.Proof
	cert := *proved.Proof.Certificate
	cert.Signatures = append([]api.Signature{}, cert.Signatures...)
	cert.Signatures[0].Signature = cert.Signatures[0].Signature[:10] + "ff" + cert.Signatures[0].Signature[12:]
	badCert.Certificate = &cert
	forged.Proof = &badCert
	_, _, err = lc.verify(bobAddr.String(), forged)
	require.Error(t, err)

	cancel()
	require.NoError(t, wait())

	// After a restart: the same balances at the finalized checkpoint.
	n, wait, cancel = start()
	url = httpBase(n, "metrics")
	require.Equal(t, balance(bob), balance(account(bobAddr, "?at=finalized")))
	require.Equal(t, balance(al), balance(account(aliceAddr, "?at=finalized")))
	cancel()
	require.NoError(t, wait())
}

// watchTx opens GET /tx/{hash}/watch and returns the stream's status events
// (each validated against the TxStatus schema) once it ends.
func watchTx(t *testing.T, o *openAPI, url string, h tx.Hash) <-chan []api.TxStatus {
	t.Helper()
	resp, err := http.Get(url + "/tx/" + h.String() + "/watch")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	out := make(chan []api.TxStatus, 1)
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		defer resp.Body.Close()
		var events []api.TxStatus
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			if _, err := o.validate(url+"/tx/"+h.String(), http.StatusOK, http.Header{"Content-Type": {"application/json"}}, []byte(data)); err != nil {
				events = append(events, api.TxStatus{Status: "undocumented: " + err.Error()})
				continue
			}
			var st api.TxStatus
			if json.Unmarshal([]byte(data), &st) == nil {
				events = append(events, st)
			}
		}
		out <- events
	}()
	return out
}

package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/node"
	"github.com/flarechain/flare-node/node/api"
	"github.com/flarechain/flare-node/tx"
)

// TestWalletBadInput: every bad command line of account and tx is refused
// with exit 2 and one Error: line, before any request or file is written.
func TestWalletBadInput(t *testing.T) {
	const bob = "0xd388d44a877d798facec822bce1a1b605fb7b76ed682408421a93fb4e5eb6021"
	// rpc is a port nothing listens on: bad input is refused before any
	// request (a request would fail with exit 1).
	transfer := func(extra ...string) []string {
		args := []string{"tx", "transfer", "--chain", "dev", "--key", "alice", "--to", bob, "--amount", "5", "--rpc", "127.0.0.1:1"}
		for i := 0; i < len(extra); i += 2 {
			if j := indexOf(args, extra[i]); j >= 0 {
				if extra[i+1] == "-" { // drop the flag
					args = append(args[:j:j], args[j+2:]...)
				} else {
					args[j+1] = extra[i+1]
				}
				continue
			}
			args = append(args, extra[i], extra[i+1])
		}
		return args
	}
	tests := []struct {
		name     string
		args     []string
		files    map[string]string
		contains string
	}{
		{"account without subcommand", []string{"account"}, nil, "missing subcommand"},
		{"account new without output", []string{"account", "new"}, nil, "needs --output FILE"},
		{"account new into a missing directory", []string{"account", "new", "--output", "nodir/a.key"}, nil, "directory nodir does not exist"},
		{"account new over a file", []string{"account", "new", "--output", "a.key"}, map[string]string{"a.key": "x"}, "already exists; refusing to overwrite"},
		{"account new extra argument", []string{"account", "new", "--output", "a.key", "x"}, nil, `unknown argument "x"`},
		{"account show nothing", []string{"account", "show"}, nil, "takes one NAME|ADDRESS|KEYFILE, got 0"},
		{"account show two", []string{"account", "show", "alice", "bob"}, nil, "got 2"},
		{"account show unknown name", []string{"account", "show", "mallory"}, nil, `"mallory": neither a dev key name`},
		{"account show short address", []string{"account", "show", "0x1234"}, nil, "bad address"},
		{"account show address not hex", []string{"account", "show", "0x" + strings.Repeat("zz", 32)}, nil, "not hex"},
		{"account show zero address", []string{"account", "show", "0x" + strings.Repeat("00", 32)}, nil, "all-zero"},
		{"account show bad key file", []string{"account", "show", "bad.key"}, map[string]string{"bad.key": "xyz"}, "malformed"},
		{"account show unknown chain", []string{"account", "show", "alice", "--chain", "nosuch"}, nil, "unknown chain"},
		{"account show dev name on a custom chain", []string{"account", "show", "alice", "--chain", "c.json"}, map[string]string{"c.json": customSpecJSON}, "dev key names are for the dev and local chains"},
		{"account show bad rpc", []string{"account", "show", "alice", "--rpc", "ftp://x"}, nil, `invalid value "ftp://x" for flag --rpc`},
		{"account show bad at", []string{"account", "show", "alice", "--rpc", ":1", "--at", "latest"}, nil, `invalid value "latest" for flag --at`},
		{"account show at without rpc", []string{"account", "show", "alice", "--at", "finalized"}, nil, "--at needs --rpc"},
		{"tx without subcommand", []string{"tx"}, nil, "missing subcommand"},
		{"transfer without chain", transfer("--chain", "-"), nil, "needs --chain"},
		{"transfer without key", transfer("--key", "-"), nil, "needs --key"},
		{"transfer without to", transfer("--to", "-"), nil, "needs --to"},
		{"transfer without amount", transfer("--amount", "-"), nil, "needs --amount"},
		{"transfer without rpc", transfer("--rpc", "-"), nil, "needs --rpc"},
		{"transfer unknown chain", transfer("--chain", "nosuch"), nil, "unknown chain"},
		{"transfer unknown key", transfer("--key", "mallory"), nil, `--key "mallory": neither a dev key name`},
		{"transfer dev key on a custom chain", transfer("--chain", "c.json"), map[string]string{"c.json": customSpecJSON}, "dev key names are for the dev and local chains"},
		{"transfer bad key file", transfer("--key", "bad.key"), map[string]string{"bad.key": "xyz"}, "malformed"},
		{"transfer bad to", transfer("--to", "bob"), nil, "--to: bad address"},
		{"transfer negative amount", transfer("--amount", "-5"), nil, `invalid value "-5" for flag --amount: use a non-negative whole number`},
		{"transfer amount not a number", transfer("--amount", "five"), nil, `invalid value "five" for flag --amount`},
		{"transfer fee not a number", transfer("--fee", "x"), nil, `invalid value "x" for flag --fee`},
		{"transfer nonce not a number", transfer("--nonce", "-1"), nil, `invalid value "-1" for flag --nonce`},
		{"transfer bad wait", transfer("--wait", "done"), nil, `invalid value "done" for flag --wait: use included, justified or finalized`},
		{"transfer bad timeout", transfer("--timeout", "5"), nil, `invalid value "5" for flag --timeout: use a duration with a unit`},
		{"transfer zero timeout", transfer("--timeout", "0s"), nil, "--timeout"},
		{"transfer bad rpc", transfer("--rpc", "http://x/api"), nil, "--rpc"},
		{"transfer extra argument", append(transfer(), "now"), nil, `unknown argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			for name, content := range tt.files {
				s.write(name, content, 0o600)
			}
			before := s.listing()
			r := s.run("", nil, tt.args...)
			requireUsageError(t, r, tt.contains)
			require.Equal(t, before, s.listing(), "a refused command line must not write anything")
		})
	}
}

func indexOf(args []string, s string) int {
	for i, a := range args {
		if a == s {
			return i
		}
	}
	return -1
}

// customSpecJSON is the dev spec under another id: not a builtin chain.
var customSpecJSON = strings.Replace(devSpecJSON, `"id":"dev"`, `"id":"custom"`, 1)

var addressRe = regexp.MustCompile(`^0x[0-9a-f]{64}$`)

// TestAccountNewAndShow: account new writes a 0600 key file in the key
// file format, prints its address and never overwrites; account show gives
// that address for the file, a dev key name and the address itself (text
// and --json); without --rpc nothing else is printed.
func TestAccountNewAndShow(t *testing.T) {
	s := newSandbox(t)
	r := s.run("", nil, "account", "new", "--output", "me.key")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stderr)
	addr := strings.TrimSpace(r.stdout)
	require.Regexp(t, addressRe, addr)
	fi, err := os.Stat(s.path("me.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	key, err := config.ReadKeyFile(s.path("me.key"))
	require.NoError(t, err)
	require.Equal(t, tx.AddressOf(key.Public().(ed25519.PublicKey)).String(), addr)
	content, err := os.ReadFile(s.path("me.key"))
	require.NoError(t, err)
	require.Equal(t, config.EncodeKeyFile(key), content, "the format of key generate --output")
	require.NotContains(t, r.stdout, string(bytes.TrimSpace(content)), "the secret is never printed")

	r = s.run("", nil, "account", "new", "--output", "me.key")
	requireUsageError(t, r, "already exists")
	again, err := os.ReadFile(s.path("me.key"))
	require.NoError(t, err)
	require.Equal(t, content, again)

	// key inspect reads the same key.
	r = s.run("", nil, "key", "inspect", "me.key")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, strings.TrimPrefix(addr, "0x"))

	// A key file named like a dev key: ./alice.
	r = s.run("", nil, "account", "new", "--output", "alice")
	require.Equal(t, 0, r.code, r.stderr)
	fileAlice := strings.TrimSpace(r.stdout)
	r = s.run("", nil, "account", "show", "./alice")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "Address:  "+fileAlice+"\n", r.stdout)
	r = s.run("", nil, "account", "show", "alice")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "Address:  "+tx.AddressOf(mustDevKey(t, "alice").Public().(ed25519.PublicKey)).String()+"\n", r.stdout, "the name is the dev key")

	bobKey, err := chainspec.DevKey("bob")
	require.NoError(t, err)
	bob := tx.AddressOf(bobKey.Public().(ed25519.PublicKey)).String()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"me.key"}, addr},
		{[]string{addr}, addr},
		{[]string{strings.ToUpper(addr[2:])}, ""}, // no 0x: not an address, no such file
		{[]string{"bob"}, bob},
		{[]string{"bob", "--chain", "local"}, bob},
	} {
		r := s.run("", nil, append([]string{"account", "show"}, c.args...)...)
		if c.want == "" {
			require.Equal(t, 2, r.code)
			continue
		}
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, "Address:  "+c.want+"\n", r.stdout)
		r = s.run("", nil, append([]string{"account", "show", "--json"}, c.args...)...)
		require.Equal(t, 0, r.code, r.stderr)
		var out map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
		require.Equal(t, map[string]any{"address": c.want}, out)
	}
}

// TestFollower: the status lines tx transfer prints: each level once and
// in order (filled in when the node passed several between two reads),
// with the block and the time since submit; retracted; a removal ends with
// its reason; the awaited level ends following.
func TestFollower(t *testing.T) {
	blk := func(status, hash string) api.TxStatus {
		n, i := uint64(12), uint32(0)
		return api.TxStatus{Hash: "0xh", Status: status, Block: &n, BlockHash: hash, Index: &i}
	}
	lineRe := regexp.MustCompile(`^(validated|included block #12 index 0|justified block #12 index 0|finalized block #12 index 0|retracted|dropped \(expired\)) \+\d+(\.\d+)?(ms|s|µs|ns)$`)
	for name, c := range map[string]struct {
		wait    string
		reads   []api.TxStatus
		want    []string
		done    bool
		removed bool
	}{
		"validated only": {"validated", []api.TxStatus{{Status: "validated"}}, []string{"validated"}, true, false},
		"to finality": {"finalized", []api.TxStatus{{Status: "validated"}, {Status: "validated"}, blk("included", "A"), blk("justified", "A"), blk("finalized", "A")},
			[]string{"validated", "included", "justified", "finalized"}, true, false},
		"levels filled in":           {"finalized", []api.TxStatus{{Status: "validated"}, blk("finalized", "A")}, []string{"validated", "included", "justified", "finalized"}, true, false},
		"stops at the awaited level": {"included", []api.TxStatus{{Status: "validated"}, blk("included", "A"), blk("justified", "A")}, []string{"validated", "included"}, true, false},
		"retracted by the stream": {"finalized", []api.TxStatus{{Status: "validated"}, blk("included", "A"), {Status: "retracted"}, blk("included", "B")},
			[]string{"validated", "included", "retracted", "included"}, false, false},
		"retracted seen by polling": {"finalized", []api.TxStatus{blk("included", "A"), {Status: "validated"}},
			[]string{"validated", "included", "retracted"}, false, false},
		"dropped": {"finalized", []api.TxStatus{{Status: "validated"}, {Status: "dropped", Reason: "expired"}}, []string{"validated", "dropped"}, true, true},
	} {
		var out bytes.Buffer
		f := &follower{w: &out, start: time.Now(), want: levelOf(c.wait)}
		done := false
		for _, st := range c.reads {
			if done = f.see(st); done {
				break
			}
		}
		require.Equal(t, c.done, done, name)
		var words []string
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			require.Regexp(t, lineRe, l, name)
			words = append(words, strings.Fields(l)[0])
		}
		require.Equal(t, c.want, words, name)
		if c.removed {
			require.ErrorContains(t, f.result(), "dropped by the pool: expired")
		} else if done {
			require.NoError(t, f.result(), name)
		}
	}
}

// fakeNode serves the routes tx transfer uses; the watch stream is refused
// (503) or breaks after one event, so that the transfer follows GET
// /tx/{hash}, whose answers
// come from statuses (one per request, the last one repeated).
func fakeNode(t *testing.T, statuses []string, breakStream bool) (string, *[]string) {
	t.Helper()
	spec, err := chainspec.Builtin("dev")
	require.NoError(t, err)
	var (
		mu       sync.Mutex
		hash     string
		requests []string
		polls    int
	)
	mux := http.NewServeMux()
	note := func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		requests = append(requests, r.Method+" "+r.URL.Path)
	}
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		note(r)
		_ = json.NewEncoder(w).Encode(api.Status{Chain: "dev", Genesis: node.GenesisHash(spec).String()})
	})
	mux.HandleFunc("GET /accounts/{address}", func(w http.ResponseWriter, r *http.Request) {
		note(r)
		_ = json.NewEncoder(w).Encode(api.Account{Address: r.PathValue("address"), Balance: "100", Nonce: 3})
	})
	mux.HandleFunc("POST /tx", func(w http.ResponseWriter, r *http.Request) {
		note(r)
		var req api.TxSubmit
		require.NoError(t, json.NewDecoder(r.Body).Decode(&req))
		raw, err := hex.DecodeString(strings.TrimPrefix(req.Tx, "0x"))
		require.NoError(t, err)
		x, err := tx.Decode(raw)
		require.NoError(t, err)
		require.NoError(t, x.Verify())
		require.Equal(t, uint64(3), x.Nonce, "the nonce of GET /accounts")
		require.Equal(t, uint64(chainspec.DevMinFee), x.Fee, "the spec's min_fee")
		mu.Lock()
		hash = x.Hash().String()
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(api.TxStatus{Hash: x.Hash().String(), Status: api.TxValidated})
	})
	mux.HandleFunc("GET /tx/{hash}/watch", func(w http.ResponseWriter, r *http.Request) {
		note(r)
		if !breakStream {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		// One event, then the stream ends before a final status.
		w.Header().Set("Content-Type", "text/event-stream")
		mu.Lock()
		h := hash
		mu.Unlock()
		fmt.Fprintf(w, "event: status\ndata: {\"hash\":%q,\"status\":\"validated\"}\n\n", h)
	})
	mux.HandleFunc("GET /tx/{hash}", func(w http.ResponseWriter, r *http.Request) {
		note(r)
		mu.Lock()
		st := statuses[min(polls, len(statuses)-1)]
		polls++
		h := hash
		mu.Unlock()
		if st == "" {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(api.Error{Error: "unknown", Code: api.CodeUnknown})
			return
		}
		out := api.TxStatus{Hash: h, Status: st}
		if levelOf(st) >= 2 {
			n, i := uint64(4), uint32(0)
			out.Block, out.BlockHash, out.Index = &n, "0x"+strings.Repeat("ab", 32), &i
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, &requests
}

// TestTransferFallsBackToPolling: when the watch stream is refused, tx
// transfer --wait follows GET /tx/{hash}; it signs with the account's
// nonce and the spec's min_fee by default; a transaction the node forgets
// ends as dropped with exit 1; --timeout ends the wait with exit 1.
func TestTransferFallsBackToPolling(t *testing.T) {
	oldPoll, oldGone := txPollInterval, txGoneAfter
	txPollInterval, txGoneAfter = 5*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { txPollInterval, txGoneAfter = oldPoll, oldGone })
	const bob = "0xd388d44a877d798facec822bce1a1b605fb7b76ed682408421a93fb4e5eb6021"
	transfer := func(url string, extra ...string) (string, string, int) {
		var out, errb bytes.Buffer
		args := append([]string{"flare-node", "tx", "transfer", "--chain", "dev", "--key", "alice", "--to", bob, "--amount", "5", "--rpc", url}, extra...)
		code := run(args, strings.NewReader(""), &out, &errb)
		return out.String(), errb.String(), code
	}

	for _, breakStream := range []bool{false, true} {
		url, reqs := fakeNode(t, []string{"validated", "validated", "included", "finalized"}, breakStream)
		stdout, stderr, code := transfer(url, "--wait", "finalized")
		require.Equal(t, 0, code, stderr)
		var words []string
		for _, l := range strings.Split(strings.TrimSpace(stdout), "\n")[1:] {
			words = append(words, strings.Fields(l)[0])
		}
		require.Equal(t, []string{"validated", "included", "justified", "finalized"}, words, stdout)
		require.Contains(t, *reqs, "GET /tx/"+strings.Split(stdout, "\n")[0]+"/watch")
		require.Contains(t, *reqs, "GET /tx/"+strings.Split(stdout, "\n")[0], "polled")
	}

	url, _ := fakeNode(t, []string{"validated", ""}, false)
	stdout, stderr, code := transfer(url, "--wait", "included")
	require.Equal(t, 1, code, stdout)
	require.Contains(t, stdout, "\ndropped +")
	require.Regexp(t, `^Error: transaction 0x[0-9a-f]{64} dropped: the node no longer knows it`, stderr)

	url, _ = fakeNode(t, []string{"validated"}, true)
	_, stderr, code = transfer(url, "--wait", "included", "--timeout", "300ms")
	require.Equal(t, 1, code)
	require.Regexp(t, `^Error: timed out after 300ms waiting for 0x[0-9a-f]{64} included \(last status: validated\)\n$`, stderr)

	// The default --wait: validated, no status request at all.
	url, reqs := fakeNode(t, []string{"validated"}, false)
	stdout, stderr, code = transfer(url)
	require.Equal(t, 0, code, stderr)
	require.Len(t, strings.Split(strings.TrimSpace(stdout), "\n"), 2, stdout)
	require.Equal(t, []string{"GET /status", "GET /accounts/" + tx.AddressOf(mustDevKey(t, "alice").Public().(ed25519.PublicKey)).String(), "POST /tx"}, *reqs)
}

func mustDevKey(t *testing.T, name string) ed25519.PrivateKey {
	k, err := chainspec.DevKey(name)
	require.NoError(t, err)
	return k
}

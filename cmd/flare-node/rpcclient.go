package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flarechain/flare-node/node/api"
	"github.com/flarechain/flare-node/tx"
)

// rpcRequestTimeout bounds one request of the wallet commands (not a watch
// stream).
const rpcRequestTimeout = 10 * time.Second

// rpcClient talks to a node's JSON API (--rpc URL).
type rpcClient struct {
	base string
	http *http.Client
}

// parseRPC checks a --rpc value: http(s)://HOST:PORT, HOST:PORT, or :PORT
// (127.0.0.1:PORT, as --rpc-addr reads it).
func parseRPC(raw string) (*rpcClient, error) {
	s := strings.TrimRight(raw, "/")
	if strings.HasPrefix(s, ":") {
		s = "127.0.0.1" + s
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, usageError(fmt.Errorf("invalid value %q for flag --rpc: use the node's API address, such as http://127.0.0.1:9933 or :9933", raw))
	}
	return &rpcClient{base: u.Scheme + "://" + u.Host, http: &http.Client{}}, nil
}

// apiStatusError is a non-200 answer with the API's error document.
type apiStatusError struct {
	status int
	msg    string
}

func (e *apiStatusError) Error() string { return e.msg }

// do sends one request and decodes a 200 answer into out; other answers
// become an *apiStatusError with the API's message.
func (c *rpcClient) do(ctx context.Context, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, rpcRequestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("node API %s: %w", c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("node API %s%s: %w", c.base, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return &apiStatusError{status: resp.StatusCode, msg: fmt.Sprintf("node API %s %s: %s", method, path, e.Error)}
		}
		return &apiStatusError{status: resp.StatusCode, msg: fmt.Sprintf("node API %s %s: HTTP %d", method, path, resp.StatusCode)}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("node API %s %s: unexpected answer: %w", method, path, err)
	}
	return nil
}

// unwrapURLError drops the *url.Error wrapping that repeats the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *rpcClient) status(ctx context.Context) (api.Status, error) {
	var st api.Status
	return st, c.do(ctx, http.MethodGet, "/status", nil, &st)
}

func (c *rpcClient) account(ctx context.Context, a tx.Address, at string) (api.Account, error) {
	var acc api.Account
	path := "/accounts/" + a.String()
	if at != "" && at != "best" {
		path += "?at=" + url.QueryEscape(at)
	}
	return acc, c.do(ctx, http.MethodGet, path, nil, &acc)
}

// submit POSTs the transaction. A refusal (400 with status refused) is
// returned as the TxStatus with a nil error.
func (c *rpcClient) submit(ctx context.Context, t *tx.Tx) (api.TxStatus, error) {
	body, _ := json.Marshal(api.TxSubmit{Tx: "0x" + fmt.Sprintf("%x", t.Encode())})
	ctx, cancel := context.WithTimeout(ctx, rpcRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/tx", bytes.NewReader(body))
	if err != nil {
		return api.TxStatus{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return api.TxStatus{}, fmt.Errorf("node API %s: %w", c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return api.TxStatus{}, fmt.Errorf("node API POST /tx: %w", err)
	}
	var st api.TxStatus
	if (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusBadRequest) &&
		json.Unmarshal(b, &st) == nil && st.Status != "" {
		return st, nil
	}
	var e api.Error
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return api.TxStatus{}, fmt.Errorf("node API POST /tx: %s", e.Error)
	}
	return api.TxStatus{}, fmt.Errorf("node API POST /tx: HTTP %d", resp.StatusCode)
}

func (c *rpcClient) txStatus(ctx context.Context, h tx.Hash) (api.TxStatus, error) {
	var st api.TxStatus
	return st, c.do(ctx, http.MethodGet, "/tx/"+h.String(), nil, &st)
}

// errStreamBroken: the watch stream failed or ended before a terminal
// status (the caller polls instead).
var errStreamBroken = errors.New("watch stream broken")

// watch follows GET /tx/{hash}/watch and calls on for every status event
// until on returns true (done), a terminal status or ctx ends. Any other
// end of the stream is errStreamBroken (wrapping the cause).
func (c *rpcClient) watch(ctx context.Context, h tx.Hash, on func(api.TxStatus) bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/tx/"+h.String()+"/watch", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %w", errStreamBroken, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return fmt.Errorf("%w: HTTP %d", errStreamBroken, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			event = ""
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:") && (event == "status" || event == ""):
			var st api.TxStatus
			if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(line, "data:"))), &st); err != nil {
				return fmt.Errorf("%w: bad event: %w", errStreamBroken, err)
			}
			if on(st) || api.Terminal(st.Status) {
				return nil
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %w", errStreamBroken, err)
	}
	return fmt.Errorf("%w: ended before a final status", errStreamBroken)
}

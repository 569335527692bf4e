package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var reBook = regexp.MustCompile(`^Address book: \d+ known peers`)

// peerInfo is one entry of GET /peers.
type peerInfo struct {
	PeerID    string   `json:"peer_id"`
	Addrs     []string `json:"addrs"`
	Direction string   `json:"direction"`
	Mesh      []string `json:"mesh"`
}

func httpGet(t *testing.T, url string) (string, error) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}

// peersOf returns node i's connected peers from GET /peers.
func (ln *localNet) peersOf(i int) ([]peerInfo, error) {
	body, err := httpGet(ln.t, fmt.Sprintf("http://127.0.0.1:%d/peers", ln.metrics[i]))
	if err != nil {
		return nil, err
	}
	var out []peerInfo
	return out, json.Unmarshal([]byte(body), &out)
}

func (ln *localNet) peerID(i int) string { return ln.addrs[i][strings.LastIndex(ln.addrs[i], "/")+1:] }

// waitConnected waits until node i reports a connection to every node in
// others (GET /peers).
func (ln *localNet) waitConnected(i int, timeout time.Duration, others ...int) {
	ln.t.Helper()
	deadline := time.Now().Add(timeout)
	var last []peerInfo
	for {
		peers, err := ln.peersOf(i)
		if err == nil {
			last = peers
			ok := true
			for _, j := range others {
				ok = ok && slices.ContainsFunc(peers, func(p peerInfo) bool { return p.PeerID == ln.peerID(j) })
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			ln.t.Fatalf("%s is not connected to %v within %v (peers: %+v, err: %v)", ln.names[i], others, timeout, last, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval of the HTTP endpoint

	}
}

// TestSoleBootnodeKilled: four validators whose only bootnode is node0 find
// each other through the DHT; kill -9 of node0 does not stop finality; a
// validator restarted (kill -9, then started again) while node0 is still
// down reconnects from its address book and finality continues.
func TestSoleBootnodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	ln := newLocalNet(t, 250, 2, 0)
	ln.soleBootnode = true
	var history []*proc
	for i := 0; i < 4; i++ {
		history = append(history, ln.start(i))
	}
	ln.waitFinalized(2, 60*time.Second, 0, 1, 2, 3)
	// Discovery connected the leaves to each other.
	for i := 1; i < 4; i++ {
		var others []int
		for j := 0; j < 4; j++ {
			if j != i {
				others = append(others, j)
			}
		}
		ln.waitConnected(i, 30*time.Second, others...)
	}
	metrics, err := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", ln.metrics[1]))
	require.NoError(t, err)
	require.Regexp(t, `flare_p2p_peers\{direction="inbound"\} \d+`, metrics)
	require.Regexp(t, `flare_p2p_peers\{direction="outbound"\} [1-9]`, metrics)

	// kill -9 the bootnode: the other three are a quorum and stay connected.
	ln.kill(0)
	f := ln.maxFinalized(1, 2, 3)
	ln.waitFinalized(f+3, 25*time.Second, 1, 2, 3)

	// Restart one of them while node0 is down: its only bootnode is dead,
	// its address book knows the others.
	ln.kill(1)
	f = ln.maxFinalized(2, 3)
	p := ln.start(1)
	history = append(history, p)
	l, _ := p.waitLog(reBook, 0, 30*time.Second)
	require.GreaterOrEqual(t, number(t, strings.Replace(l.Msg, "Address book: ", "=", 1)), uint64(3))
	ln.waitConnected(1, 30*time.Second, 2, 3)
	ln.waitFinalized(f+3, 30*time.Second, 1, 2, 3)
	p.waitLog(reOwnVote, 0, 30*time.Second)

	for i := 1; i < 4; i++ {
		ln.stop(i)
	}
	ln.requireAgreement(history)
	for name, votes := range ln.votes {
		requireNoConflicts(t, votes)
		t.Logf("%s released %d votes", name, len(votes))
	}
}

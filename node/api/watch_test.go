package api

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func u64(v uint64) *uint64 { return &v }
func u32(v uint32) *uint32 { return &v }

func at(status, block string) TxStatus {
	st := TxStatus{Hash: "0xt", Status: status}
	if block != "" {
		st.BlockHash, st.Block, st.Index = block, u64(7), u32(0)
	}
	return st
}

func statuses(events []TxStatus) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Status)
	}
	return out
}

// TestWatcherEvents: the events a stream sends for successive reads: each
// level once and in order (skipped ones filled in), retracted when the
// block leaves the best chain, removals passed through.
func TestWatcherEvents(t *testing.T) {
	for name, c := range map[string]struct {
		reads []TxStatus
		want  []string
	}{
		"ladder":          {[]TxStatus{at("validated", ""), at("validated", ""), at("included", "A"), at("included", "A"), at("justified", "A"), at("finalized", "A")}, []string{"validated", "included", "justified", "finalized"}},
		"skipped levels":  {[]TxStatus{at("validated", ""), at("finalized", "A")}, []string{"validated", "included", "justified", "finalized"}},
		"first read high": {[]TxStatus{at("justified", "A")}, []string{"validated", "included", "justified"}},
		"back to pool":    {[]TxStatus{at("validated", ""), at("included", "A"), at("validated", ""), at("included", "B")}, []string{"validated", "included", "retracted", "included"}},
		"other block":     {[]TxStatus{at("included", "A"), at("included", "B")}, []string{"validated", "included", "retracted", "included"}},
		"invalid":         {[]TxStatus{at("validated", ""), {Hash: "0xt", Status: TxInvalid, Reason: "nonce too low"}}, []string{"validated", "invalid"}},
		"dropped":         {[]TxStatus{at("validated", ""), {Hash: "0xt", Status: TxDropped, Reason: "expired"}}, []string{"validated", "dropped"}},
	} {
		var w watcher
		var got []TxStatus
		for _, r := range c.reads {
			got = append(got, w.next(r, true, time.Unix(0, 0))...)
		}
		require.Equal(t, c.want, statuses(got), name)
		for _, e := range got {
			if rank(e.Status) >= 2 {
				require.NotEmpty(t, e.BlockHash, "%s: %s carries its block", name, e.Status)
			}
		}
	}
	// Unknown for WatchGone: dropped without a reason.
	var w watcher
	t0 := time.Unix(100, 0)
	require.Len(t, w.next(at("validated", ""), true, t0), 1)
	require.Empty(t, w.next(TxStatus{Hash: "0xt"}, false, t0.Add(time.Second)))
	require.Empty(t, w.next(at("validated", ""), true, t0.Add(2*time.Second)), "back: the clock restarts")
	require.Empty(t, w.next(TxStatus{Hash: "0xt"}, false, t0.Add(3*time.Second)))
	got := w.next(TxStatus{Hash: "0xt"}, false, t0.Add(3*time.Second+WatchGone))
	require.Equal(t, []string{"dropped"}, statuses(got))
	require.Empty(t, got[0].Reason)
}

// scripted serves watch streams of a status that moves one step per poll.
func scripted(t *testing.T, steps []TxStatus) (*Server, *httptest.Server) {
	oldPoll, oldBeat := WatchPoll, WatchHeartbeat
	WatchPoll, WatchHeartbeat = 5*time.Millisecond, 20*time.Millisecond
	t.Cleanup(func() { WatchPoll, WatchHeartbeat = oldPoll, oldBeat })
	s := New(Info{}, Sources{}, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var mu sync.Mutex
		i := 0
		s.watch(w, r, steps[0], func() (TxStatus, bool) {
			mu.Lock()
			defer mu.Unlock()
			if i < len(steps)-1 {
				i++
			}
			return steps[i], true
		})
	}))
	t.Cleanup(srv.Close)
	return s, srv
}

// readEvents reads a stream to its end: the status events and the number of
// heartbeat comments.
func readEvents(t *testing.T, resp *http.Response) ([]TxStatus, int) {
	t.Helper()
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	var out []TxStatus
	beats := 0
	sc := bufio.NewScanner(resp.Body)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == ": heartbeat":
			beats++
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			require.Equal(t, "status", event)
			var st TxStatus
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &st))
			out = append(out, st)
		}
	}
	return out, beats
}

// TestWatchStream: the stream sends the ladder with heartbeats in between
// and ends after the terminal status; beyond MaxWatchers it is 503 busy;
// StopWatches ends open streams.
func TestWatchStream(t *testing.T) {
	steps := []TxStatus{at("validated", "")}
	for range 10 {
		steps = append(steps, at("validated", ""))
	}
	steps = append(steps, at("included", "A"), at("justified", "A"))
	for range 10 {
		steps = append(steps, at("justified", "A"))
	}
	steps = append(steps, at("finalized", "A"))
	_, srv := scripted(t, steps)
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	events, beats := readEvents(t, resp)
	require.Equal(t, []string{"validated", "included", "justified", "finalized"}, statuses(events))
	require.Equal(t, uint64(7), *events[3].Block)
	require.GreaterOrEqual(t, beats, 1, "a heartbeat every WatchHeartbeat")

	// A stream that never ends: StopWatches ends it; the limit holds.
	s, srv2 := scripted(t, []TxStatus{at("validated", "")})
	s.watchers.Store(MaxWatchers)
	resp, err = http.Get(srv2.URL)
	require.NoError(t, err)
	var e Error
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	resp.Body.Close()
	require.Equal(t, CodeBusy, e.Code)
	s.watchers.Store(0)
	resp, err = http.Get(srv2.URL)
	require.NoError(t, err)
	done := make(chan []TxStatus)
	go func() {
		ev, _ := readEvents(t, resp)
		done <- ev
	}()
	time.Sleep(50 * time.Millisecond)
	s.StopWatches()
	select {
	case ev := <-done:
		require.Equal(t, []string{"validated"}, statuses(ev))
	case <-time.After(5 * time.Second):
		t.Fatal("StopWatches did not end the stream")
	}
	require.Equal(t, int32(0), s.watchers.Load())
}

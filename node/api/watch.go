package api

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
)

// Statuses only GET /tx/{hash}/watch (retracted) and, for a transaction
// the pool removed recently, GET /tx/{hash} (dropped, invalid) report.
const (
	// TxRetracted: the block that held it left the best chain and the
	// transaction is back in the pool (a watch event; the status after it
	// is validated again).
	TxRetracted = "retracted"
	// TxDropped: the pool removed it by policy (reason: pool full,
	// expired, replaced); it may still be valid.
	TxDropped = "dropped"
	// TxInvalid: the pool removed it because it cannot execute at the head
	// (reason: nonce too low, insufficient balance, ...).
	TxInvalid = "invalid"
)

// TxRemovals remembers the transactions the pool removed recently, with
// the removal's status (TxDropped or TxInvalid) and reason.
type TxRemovals interface {
	Removed(h tx.Hash) (status, reason string, ok bool)
}

// Watch parameters (variables for the tests).
var (
	// WatchPoll is how often a watcher re-reads the status.
	WatchPoll = 100 * time.Millisecond
	// WatchHeartbeat is the interval of the stream's comment lines.
	WatchHeartbeat = 15 * time.Second
	// WatchGone is how long a watched transaction may be unknown (neither
	// pooled, in a block of the best chain nor recently removed) before the
	// stream reports it dropped: a fork switch takes the pool one update
	// to restore the transactions of the retracted blocks.
	WatchGone = 5 * time.Second
)

// MaxWatchers bounds the concurrent GET /tx/{hash}/watch streams (503
// beyond).
const MaxWatchers = 256

// CodeBusy is the error code of a 503 answer to a watch beyond MaxWatchers.
const CodeBusy = "busy"

// rank is the place of a status on the ascending scale (0: not on it).
func rank(status string) int {
	switch status {
	case TxValidated:
		return 1
	case TxIncluded:
		return 2
	case TxJustified:
		return 3
	case TxFinalized:
		return 4
	}
	return 0
}

// ladder is the ascending scale in order.
var ladder = []string{TxValidated, TxIncluded, TxJustified, TxFinalized}

// Terminal reports whether a stream ends after status.
func Terminal(status string) bool {
	return status == TxFinalized || status == TxDropped || status == TxInvalid
}

// watcher turns successive status reads into the events of a stream.
type watcher struct {
	last    string // status of the last event (TxRetracted counts as validated)
	lastBlk string // block hash of the last included-or-above event
	goneAt  time.Time
}

// next returns the events for the status st read at now (ok false: the
// transaction is unknown at the moment).
func (w *watcher) next(st TxStatus, ok bool, now time.Time) []TxStatus {
	if !ok {
		if w.goneAt.IsZero() {
			w.goneAt = now
		}
		if now.Sub(w.goneAt) >= WatchGone {
			return []TxStatus{{Hash: st.Hash, Status: TxDropped}}
		}
		return nil
	}
	w.goneAt = time.Time{}
	if st.Status == TxDropped || st.Status == TxInvalid {
		return []TxStatus{st}
	}
	var out []TxStatus
	cur, prev := rank(st.Status), rank(w.last)
	if w.last == TxRetracted {
		prev = 1
	}
	switch {
	case cur == 0:
		return nil
	case prev >= 2 && (cur == 1 || (cur >= 2 && st.BlockHash != w.lastBlk)):
		// Its block left the best chain: back in the pool, or already in
		// another block.
		out = append(out, TxStatus{Hash: st.Hash, Status: TxRetracted})
		prev = 1
		w.last, w.lastBlk = TxRetracted, ""
		if cur == 1 {
			return out
		}
	case cur <= prev:
		return nil
	}
	// Every level between the last event and this one was reached too
	// (a justified transaction was included): report each, in order.
	for r := prev + 1; r < cur; r++ {
		e := st
		e.Status = ladder[r-1]
		if r == 1 {
			e = TxStatus{Hash: st.Hash, Status: TxValidated}
		}
		out = append(out, e)
	}
	out = append(out, st)
	w.last, w.lastBlk = st.Status, st.BlockHash
	return out
}

// watchStop is closed by StopWatches: the streams end so that the HTTP
// server's shutdown need not wait for them.
type watchStop struct {
	once sync.Once
	ch   chan struct{}
}

// StopWatches ends every open watch stream (call it when the HTTP server
// shuts down; idempotent).
func (s *Server) StopWatches() { s.stop.once.Do(func() { close(s.stop.ch) }) }

func (s *Server) serveWatchTx(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("hash")
	b, err := hex.DecodeString(strings.TrimPrefix(id, "0x"))
	if err != nil || len(b) != checkpoint.HashSize || !strings.HasPrefix(id, "0x") {
		s.writeError(w, r, badRequest("transaction hash %q: want 0x and 64 hex characters", id))
		return
	}
	h := checkpoint.Hash(b)
	st, ok := s.txStatus(h)
	if !ok {
		s.writeError(w, r, notFound(CodeUnknown, "transaction %s is neither pooled nor in a retained block of the best chain", id))
		return
	}
	s.watch(w, r, st, func() (TxStatus, bool) { return s.txStatus(h) })
}

// watch streams the events of status (first read: first) until a terminal
// status, the client going away or StopWatches.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, first TxStatus, status func() (TxStatus, bool)) {
	if n := s.watchers.Add(1); n > MaxWatchers {
		s.watchers.Add(-1)
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, Error{
			Error: fmt.Sprintf("%d transaction watches are open, the most this node serves; retry later or poll GET /tx/{hash}", MaxWatchers),
			Code:  CodeBusy})
		return
	}
	defer s.watchers.Add(-1)
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // the server's WriteTimeout would cut the stream
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	send := func(events []TxStatus) (done bool) {
		for _, e := range events {
			data, _ := json.Marshal(e)
			if _, err := fmt.Fprintf(w, "event: status\ndata: %s\n\n", data); err != nil {
				return true
			}
			if Terminal(e.Status) {
				done = true
			}
		}
		if len(events) > 0 && rc.Flush() != nil {
			return true
		}
		return done
	}
	var wt watcher
	if send(wt.next(first, true, s.src.Now())) {
		return
	}
	_ = rc.Flush()
	poll := time.NewTicker(WatchPoll)
	defer poll.Stop()
	beat := time.NewTicker(WatchHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.stop.ch:
			return
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-poll.C:
			st, ok := status()
			if !ok {
				st.Hash = first.Hash
			}
			if send(wt.next(st, ok, s.src.Now())) {
				return
			}
		}
	}
}

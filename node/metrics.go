package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/p2p"
)

// statusServer serves /metrics (Prometheus, a private registry), /status,
// /finality/latest and /peers (JSON) and /healthz on --metrics-addr.
type statusServer struct {
	n        *Node
	listener net.Listener
	srv      *http.Server
}

// Status is the JSON document of GET /status.
type Status struct {
	Chain   string `json:"chain"`
	Genesis string `json:"genesis"`
	PeerID  string `json:"peer_id"`
	Peers   int    `json:"peers"`
	// PeersInbound and PeersOutbound split Peers by the direction of each
	// peer's oldest connection.
	PeersInbound  int    `json:"peers_inbound"`
	PeersOutbound int    `json:"peers_outbound"`
	Best          uint64 `json:"best"`
	BestHash      string `json:"best_hash"`
	Justified     uint64 `json:"justified"`
	Finalized     uint64 `json:"finalized"`
	// FinalizedHash is the finalized checkpoint block's hash.
	FinalizedHash string `json:"finalized_hash"`
	Syncing       bool   `json:"syncing"`
	Halted        bool   `json:"halted"`
	// SecondsSinceFinality is how long ago finality last advanced in this
	// process (-1 before the first advance).
	SecondsSinceFinality float64 `json:"seconds_since_finality"`
}

// newStatusServer serves on l, which New bound before anything was created
// on disk.
func newStatusServer(n *Node, l net.Listener) *statusServer {
	s := &statusServer{n: n, listener: l}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "flare", Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "flare", Name: name, Help: help}, f))
	}
	gauge("chain_best_block", "Number of the best block.", func() float64 { return float64(s.status().Best) })
	for _, dir := range []string{p2p.DirectionInbound, p2p.DirectionOutbound} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "flare", Name: "p2p_peers", Help: "Connected peers by the direction of their oldest connection.",
			ConstLabels: prometheus.Labels{"direction": dir},
		}, func() float64 {
			in, out := n.net.PeerCounts()
			if dir == p2p.DirectionInbound {
				return float64(in)
			}
			return float64(out)
		}))
	}
	if g := n.gadget; g != nil {
		gauge("finality_justified_checkpoint", "Latest justified checkpoint number.", func() float64 { return float64(g.LatestJustified().Number) })
		gauge("finality_finalized_checkpoint", "Latest finalized checkpoint number.", func() float64 { return float64(g.LatestFinalized().Number) })
		gauge("finality_seconds_since_finalization", "Seconds since finality last advanced in this process (-1: not yet).", func() float64 { return s.status().SecondsSinceFinality })
		gauge("finality_halted", "1 when voting stopped on a safety alarm.", func() float64 {
			if g.Halted() {
				return 1
			}
			return 0
		})
		counter("finality_votes_accepted_total", "Votes accepted.", func() float64 { return float64(g.Metrics().VotesAccepted) })
		counter("finality_votes_ignored_total", "Votes ignored.", func() float64 { return float64(g.Metrics().VotesIgnored) })
		counter("finality_votes_rejected_total", "Votes rejected.", func() float64 { return float64(g.Metrics().VotesRejected) })
		counter("finality_certificates_formed_total", "Certificates formed from votes.", func() float64 { return float64(g.Metrics().CertificatesFormed) })
		counter("finality_evidence_total", "Evidence stored.", func() float64 { return float64(g.Metrics().Evidence) })
		counter("finality_own_votes_total", "Votes signed by this node.", func() float64 { return float64(g.Metrics().OwnVotes) })
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{MaxRequestsInFlight: 5, Timeout: 10 * time.Second}))
	mux.HandleFunc("GET /status", s.serveStatus)
	mux.HandleFunc("GET /finality/latest", s.serveStatus)
	mux.HandleFunc("GET /peers", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(n.net.PeerInfos())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if n.gadget != nil && n.gadget.Halted() {
			http.Error(w, "finality halted on a safety alarm", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s
}

func (s *statusServer) status() Status {
	n := s.n
	best := n.chain.Best()
	st := Status{
		Chain: n.spec.ID, Genesis: GenesisHash(n.spec).String(), PeerID: n.net.ID().String(),
		Peers: len(n.net.Peers()), Best: best.Number, BestHash: best.Hash().String(),
		Syncing: n.engine.Syncing(), SecondsSinceFinality: -1,
	}
	st.PeersInbound, st.PeersOutbound = n.net.PeerCounts()
	if g := n.gadget; g != nil {
		st.Justified = g.LatestJustified().Number
		f := g.LatestFinalized()
		st.Finalized, st.FinalizedHash, st.Halted = f.Number, f.Hash.String(), g.Halted()
	}
	if at := n.engine.LastFinalizedAt(); !at.IsZero() {
		st.SecondsSinceFinality = time.Since(at).Seconds()
	}
	return st
}

func (s *statusServer) serveStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.status())
}

// run serves until ctx is done, then shuts the server down.
func (s *statusServer) run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.listener) }()
	s.n.log.Info("Metrics and status listening", zap.String("addr", s.listener.Addr().String()))
	select {
	case err := <-errc:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return ctx.Err()
	}
}

package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/internal/buildinfo"
	"github.com/flarechain/flare-node/node/api"
)

// httpServer serves one listener bound in New (the metrics or the API
// listener) until the node stops.
type httpServer struct {
	name     string
	listener net.Listener
	srv      *http.Server
	log      *zap.Logger
	// what is logged with the address.
	what string
}

func newHTTPServer(name, what string, l net.Listener, h http.Handler, log *zap.Logger) *httpServer {
	return &httpServer{name: name, what: what, listener: l, log: log,
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}}
}

// run serves until ctx is done, then shuts the server down (waiting up to
// 2 s for requests in flight).
func (s *httpServer) run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.listener) }()
	s.log.Info(s.what, zap.String("addr", s.listener.Addr().String()))
	select {
	case err := <-errc:
		return fmt.Errorf("%s server: %w", s.name, err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = s.srv.Close()
		}
		<-errc
		return ctx.Err()
	}
}

// networkStarted reports when Run started the network (false before).
func (n *Node) networkStarted() (time.Time, bool) {
	ns := n.startedAt.Load()
	if ns == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// setupHTTP builds the API and the servers of the bound listeners: the
// metrics listener serves /metrics, and the API too unless the API has its
// own listener (--rpc-addr).
func (n *Node) setupHTTP(log *zap.Logger) {
	if n.metricsListener == nil && n.rpcListener == nil {
		return
	}
	src := api.Sources{Chain: n.chain, Engine: n.engine, Network: n.net, Started: n.networkStarted, Blocks: n.chain}
	if n.exec != nil {
		src.State = n.exec.State()
		src.TxIndex = n.exec.State()
	}
	if n.pool != nil {
		src.Pool = apiPool{n}
		src.Removals = n.removals
	}
	if n.gadget != nil {
		src.Finality = n.gadget
	}
	if n.cpdb != nil {
		src.DB = n.cpdb
	}
	n.api = api.New(api.Info{
		Chain: n.spec.ID, Genesis: GenesisHash(n.spec), PeerID: n.net.ID().String(),
		Version: buildinfo.Version(), Commit: buildinfo.Commit(), GoVersion: buildinfo.GoVersion(),
		Role:               n.role,
		Authorities:        len(n.spec.Authorities),
		CheckpointInterval: n.spec.CheckpointInterval,
		SlotDuration:       n.spec.SlotDuration(),
		ExpectsPeers:       !n.alone(),
		Schedule:           authoritySchedule(n.spec),
	}, src, log)
	hlog := log.Named("node")
	if n.metricsListener != nil {
		n.metrics.reg.MustRegister(&nodeCollector{engine: n.engine, chain: n.chain, gadget: n.gadget, cpdb: n.cpdb, net: n.net, pool: n.pool,
			interval: n.spec.CheckpointInterval, ready: n.api.Ready})
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 5, Timeout: 10 * time.Second}))
		what := "Metrics listening (/metrics)"
		if n.cfg.Metrics.Pprof {
			mux.HandleFunc("GET /debug/pprof/", pprof.Index)
			mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		}
		if n.rpcListener == nil {
			n.api.Register(mux)
			what = "Metrics and JSON API listening (/metrics, /status, /readyz, /checkpoints, ...)"
		}
		if n.cfg.Metrics.Pprof {
			what += "; Go profiles at /debug/pprof/"
		}
		n.servers = append(n.servers, newHTTPServer("metrics", what, n.metricsListener, mux, hlog))
	}
	if n.rpcListener != nil {
		n.servers = append(n.servers, newHTTPServer("rpc", "JSON API listening (/status, /readyz, /checkpoints, ...)", n.rpcListener, n.api, hlog))
	}
	for _, s := range n.servers {
		// Open watch streams end at shutdown instead of holding it up.
		s.srv.RegisterOnShutdown(n.api.StopWatches)
	}
}

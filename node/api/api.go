package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/p2p"
)

// Chain is the chain database as the API reads it (asf.Chain).
type Chain interface {
	Best() asf.Header
	CanonicalHash(number uint64) (checkpoint.Hash, bool)
	BlockEvidence(fromSlot uint64, limit int) ([]asf.BlockEquivocation, error)
}

// Engine is the node's decision core as the API reads it (engine.Engine).
type Engine interface {
	Syncing() bool
	SignerPending() bool
	CaughtUp() bool
	LastFinalizedAt() time.Time
}

// Finality is the finality gadget as the API reads it
// (finality.CheckpointFinality).
type Finality interface {
	LatestJustified() checkpoint.Checkpoint
	LatestFinalized() checkpoint.Checkpoint
	Halted() bool
	Halts() []checkpoint.Halt
	Status(number uint64) finality.CheckpointStatus
	Certificate(number uint64) (checkpoint.Certificate, bool)
	Signers(number uint64) []checkpoint.ValidatorIndex
	FinalityProof() (checkpoint.FinalityProof, bool)
	Authorities() finality.AuthorityStatus
}

// CheckpointDB is the checkpoint database as the API reads it
// (checkpointdb.CheckpointDB).
type CheckpointDB interface {
	Status(ctx context.Context, number uint64, quorum int) (checkpointdb.CheckpointStatus, error)
	Certificate(ctx context.Context, number uint64) (checkpoint.Certificate, bool, error)
	Votes(ctx context.Context, number uint64) ([]checkpoint.SignedVote, error)
	Evidence(ctx context.Context) ([]checkpoint.Evidence, error)
	OldestRetained() uint64
}

// Network is the p2p network as the API reads it (p2p.Network).
type Network interface {
	PeerInfos() []p2p.PeerInfo
	PeerCounts() (inbound, outbound int)
	// SelfIDConflicts are the addresses at which another node runs with
	// this node's key (p2p.Network.SelfIDConflicts).
	SelfIDConflicts() []string
}

// Info is what the node knows about itself and its chain at start.
type Info struct {
	Chain   string
	Genesis checkpoint.Hash
	PeerID  string
	// Version, Commit and GoVersion identify the build (internal/buildinfo).
	Version, Commit, GoVersion string
	Role                       Role
	Authorities                int
	CheckpointInterval         uint64
	SlotDuration               time.Duration
	// ExpectsPeers: a node without peers cannot do its work (a chain of
	// more than one authority, or a node with bootnodes); false for the
	// lone validator of a single-authority chain.
	ExpectsPeers bool
	// Schedule is the chain spec's authority schedule (GET /authorities
	// without the finality gadget).
	Schedule checkpoint.Schedule
}

// Quorum is floor(2n/3)+1 of the authority set.
func (i Info) Quorum() int { return checkpoint.Quorum(i.Authorities) }

// Sources are the parts of the node the API reads.
type Sources struct {
	Chain  Chain
	Engine Engine
	// Finality is nil without --enable-asf; DB nil without checkpoint
	// persistence.
	Finality Finality
	DB       CheckpointDB
	Network  Network
	// State and Blocks serve accounts and blocks (nil: 404).
	State  State
	Blocks Blocks
	// Pool admits transactions (nil: POST /tx is 404); TxIndex finds
	// included ones.
	Pool    Pool
	TxIndex TxIndex
	// Removals reports the transactions the pool removed recently (nil:
	// a removed transaction is unknown).
	Removals TxRemovals
	// Started returns when the node started its network, and false while it
	// is still starting.
	Started func() (time.Time, bool)
	// Now tells the time (nil: time.Now).
	Now func() time.Time
}

// Server serves the API.
type Server struct {
	info Info
	src  Sources
	log  *zap.Logger
	mux  *http.ServeMux
	// watchers counts the open GET /tx/{hash}/watch streams; stop ends
	// them.
	watchers atomic.Int32
	stop     watchStop
}

// Paths are the API's routes (besides /metrics, which the node adds).
var Paths = []string{"/healthz", "/readyz", "/status", "/checkpoints", "/checkpoints/{n}", "/finality/latest", "/evidence", "/peers", "/authorities", "/accounts/{address}", "/blocks/{id}", "/tx", "/tx/{hash}", "/tx/{hash}/watch"}

// New builds the API server.
func New(info Info, src Sources, log *zap.Logger) *Server {
	if src.Now == nil {
		src.Now = time.Now
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{info: info, src: src, log: log.Named("api"), mux: http.NewServeMux(), stop: watchStop{ch: make(chan struct{})}}
	s.mux.HandleFunc("GET /healthz", s.serveHealth)
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	s.mux.HandleFunc("GET /status", s.serveStatus)
	s.mux.HandleFunc("GET /checkpoints", s.serveCheckpoints)
	s.mux.HandleFunc("GET /checkpoints/{n}", s.serveCheckpoint)
	s.mux.HandleFunc("GET /finality/latest", s.serveFinalityLatest)
	s.mux.HandleFunc("GET /evidence", s.serveEvidence)
	s.mux.HandleFunc("GET /peers", s.servePeers)
	s.mux.HandleFunc("GET /authorities", s.serveAuthorities)
	s.mux.HandleFunc("GET /accounts/{address}", s.serveAccount)
	s.mux.HandleFunc("GET /blocks/{id}", s.serveBlock)
	s.mux.HandleFunc("POST /tx", s.serveSubmitTx)
	s.mux.HandleFunc("GET /tx/{hash}", s.serveTx)
	s.mux.HandleFunc("GET /tx/{hash}/watch", s.serveWatchTx)
	return s
}

// Register adds every API route to mux.
func (s *Server) Register(mux *http.ServeMux) {
	for _, p := range Paths {
		if p == "/tx" {
			mux.Handle("POST "+p, s.mux)
			continue
		}
		mux.Handle("GET "+p, s.mux)
	}
}

// ServeHTTP serves the API routes (404 for others).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Error is the JSON body of every 4xx and 5xx answer but /readyz's.
type Error struct {
	// Error says what went wrong, in one line.
	Error string `json:"error"`
	// Code is a stable machine-readable reason: bad_request, unknown,
	// pruned, no_finality, internal or busy.
	Code string `json:"code"`
}

// Error codes.
const (
	CodeBadRequest = "bad_request"
	CodeUnknown    = "unknown"
	CodePruned     = "pruned"
	CodeNoFinality = "no_finality"
	CodeInternal   = "internal"
)

// apiError is an answer other than 200.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: CodeBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, code: code, msg: fmt.Sprintf(format, args...)}
}

func internal(err error) *apiError {
	return &apiError{status: http.StatusInternalServerError, code: CodeInternal, msg: err.Error()}
}

func errNoFinality() *apiError {
	return notFound(CodeNoFinality, "the finality gadget is off (--enable-asf not set): no checkpoint levels")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = internal(err)
	}
	if ae.status >= 500 {
		s.log.Warn("API request failed", zap.String("path", r.URL.Path), zap.Error(err))
	}
	writeJSON(w, ae.status, Error{Error: ae.msg, Code: ae.code})
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) servePeers(w http.ResponseWriter, _ *http.Request) {
	peers := s.src.Network.PeerInfos()
	if peers == nil {
		peers = []p2p.PeerInfo{}
	}
	writeJSON(w, http.StatusOK, peers)
}

package api

import (
	"fmt"
	"net/http"
	"time"
)

// StallIntervals is K of /readyz: finality counts as stalled when it has not
// advanced for K checkpoint intervals of slot time (K * checkpoint_interval
// * slot duration; 32 s on the dev chain), measured from the last advance
// in this process or, before the first, from the start of the network.
// Finality advances once per checkpoint interval when the network is
// healthy; 8 intervals ride out a few missed slots or a lost round of votes
// (the gadget re-broadcasts after 3 intervals) without flapping.
const StallIntervals = 8

// Readiness reasons.
const (
	// ReasonStarting: the network is not started yet, or no status exchange
	// with a peer has shown the node current since it started.
	ReasonStarting = "starting"
	// ReasonSyncing: a catch-up with a peer is making progress.
	ReasonSyncing = "syncing"
	// ReasonSignerInitialising: a fresh signer record is being initialised
	// (catch up, then listen two checkpoint intervals for the key).
	ReasonSignerInitialising = "signer_initialising"
	// ReasonNoPeers: no peer connected on a node that needs peers (a chain
	// of more than one authority, or a node with bootnodes).
	ReasonNoPeers = "no_peers"
	// ReasonFinalityStalled: finality has not advanced for StallIntervals
	// checkpoint intervals.
	ReasonFinalityStalled = "finality_stalled"
	// ReasonHalted: a persisted safety alarm stopped voting (one reason per
	// alarm).
	ReasonHalted = "halted"
	// ReasonSelfIDConflict: another node runs with this node's key (a copy
	// of its base path) at an address a bootnode, the address book or a
	// peer gave for this node's peer id (one reason per address).
	ReasonSelfIDConflict = "self_id_conflict"
)

// Reason is one reason the node is not ready.
type Reason struct {
	// Reason is a stable code (starting, syncing, signer_initialising,
	// no_peers, finality_stalled, halted, self_id_conflict).
	Reason string `json:"reason"`
	// Message explains it in one line.
	Message string `json:"message"`
}

// Readiness is the JSON document of GET /readyz.
type Readiness struct {
	Ready   bool     `json:"ready"`
	Reasons []Reason `json:"reasons"`
}

// readiness decides /readyz.
func (s *Server) readiness() Readiness {
	var out []Reason
	add := func(reason, format string, args ...any) {
		out = append(out, Reason{Reason: reason, Message: fmt.Sprintf(format, args...)})
	}
	now := s.src.Now()
	startedAt, started := s.src.Started()
	switch {
	case !started:
		add(ReasonStarting, "the node is starting: its network is not started yet")
	case !s.src.Engine.CaughtUp():
		add(ReasonStarting, "the node is starting: no status exchange with a peer has shown it current yet")
	}
	if s.src.Engine.Syncing() {
		add(ReasonSyncing, "catching up with a peer")
	}
	if s.src.Engine.SignerPending() {
		add(ReasonSignerInitialising, "a fresh signer record is being initialised: the validator catches up, then listens for votes signed with its key before its first vote")
	}
	if in, out := s.src.Network.PeerCounts(); s.info.ExpectsPeers && in+out == 0 {
		add(ReasonNoPeers, "no peer connected (chain of %d authorities)", s.info.Authorities)
	}
	for _, a := range s.src.Network.SelfIDConflicts() {
		add(ReasonSelfIDConflict, "another node uses this node's key at %s; two copies of one base path must never run", a)
	}
	if f := s.src.Finality; f != nil && started {
		limit := time.Duration(StallIntervals) * time.Duration(s.info.CheckpointInterval) * s.info.SlotDuration
		since, what := startedAt, "the node started"
		if at := s.src.Engine.LastFinalizedAt(); at.After(since) {
			since, what = at, "finality last advanced"
		}
		if d := now.Sub(since); d > limit {
			add(ReasonFinalityStalled, "finality stalled: %s %s ago, more than %d checkpoint intervals (%s); finalized checkpoint %d",
				what, d.Round(time.Second), StallIntervals, limit, f.LatestFinalized().Number)
		}
		if f.Halted() {
			hs := f.Halts()
			for _, h := range hs {
				add(ReasonHalted, "voting halted on a safety alarm: %s at checkpoint %d: %s (flare-node checkpoints clear-halt)", h.Reason, h.Checkpoint, h.Detail)
			}
			if len(hs) == 0 {
				add(ReasonHalted, "voting halted on a safety alarm")
			}
		}
	}
	if out == nil {
		out = []Reason{}
	}
	return Readiness{Ready: len(out) == 0, Reasons: out}
}

// Ready reports whether GET /readyz answers 200.
func (s *Server) Ready() bool { return s.readiness().Ready }

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	r := s.readiness()
	status := http.StatusOK
	if !r.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, r)
}

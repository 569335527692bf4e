package engine

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// RequestKind is the kind of a catch-up request.
type RequestKind int

// Request kinds.
const (
	ReqStatus RequestKind = iota + 1
	ReqBlocks
	ReqCertificates
	ReqFinalityProof
	// ReqVotes: the votes signed by one validator key (Request.Key) that
	// the peer stores, with target number >= Start, at most Count, in
	// increasing target order (a fresh or restarted signer record learns
	// its key's past from them).
	ReqVotes
	// ReqBlocksByHash: the block with hash Request.Hash and up to Count-1
	// of its ancestors, newest first (a parent the gossip path lacks).
	ReqBlocksByHash
)

func (k RequestKind) String() string {
	switch k {
	case ReqStatus:
		return "status"
	case ReqBlocks:
		return "blocks"
	case ReqCertificates:
		return "certificates"
	case ReqFinalityProof:
		return "finality-proof"
	case ReqVotes:
		return "votes"
	case ReqBlocksByHash:
		return "blocks-by-hash"
	default:
		return "unknown"
	}
}

// Request is a catch-up request to one peer.
type Request struct {
	Kind  RequestKind
	Start uint64
	Count uint32
	// Key is the validator key of a ReqVotes request.
	Key ed25519.PublicKey
	// Hash is the block of a ReqBlocksByHash request.
	Hash checkpoint.Hash
}

// Status is a node's view of its chain and finality.
type Status struct {
	Genesis   checkpoint.Hash
	Best      checkpoint.Checkpoint // number is a block number
	Justified checkpoint.Checkpoint
	Finalized checkpoint.Checkpoint
}

// Response is a peer's answer to a Request.
type Response struct {
	Status       Status
	Blocks       []asf.Block
	Certificates []checkpoint.Certificate
	Proof        *checkpoint.FinalityProof
	Votes        []checkpoint.SignedVote
	// Unavailable: the peer does not hold the start of the range (or has
	// no proof).
	Unavailable bool
	// Err is a transport failure, a timeout or the peer's error.
	Err error
}

// maxProofsPerRound bounds the finality proofs one catch-up round asks
// for.
const maxProofsPerRound = 3

// ErrRequestTimeout is the failure of a request that got no answer in
// time.
var ErrRequestTimeout = errors.New("request timed out")

type peerState struct {
	status   *Status
	lastPoll time.Time
	polling  bool
	// suspect is the peer's finalized checkpoint that contradicted our
	// canonical chain, once its proof was asked for (asked once).
	suspect checkpoint.Checkpoint
	// votesAsked: the votes of our key it stores were asked for (in
	// flight or answered); votesPages bounds the pages asked.
	votesAsked    bool
	votesAnswered bool
	votesPages    int
}

// backoff down-scores a peer whose last round fed nothing new or failed:
// no catch-up round with it before until; d doubles per bad round. It
// outlives a disconnection (a reconnect does not clear it).
type backoff struct {
	until time.Time
	d     time.Duration
}

// inBackoff reports whether peer p is down-scored at now.
func (e *Engine) inBackoff(p PeerID, now time.Time) bool {
	b, ok := e.backoffs[p]
	return ok && now.Before(b.until)
}

type pendingRequest struct {
	peer   PeerID
	req    Request
	sentAt time.Time
}

type syncPhase int

const (
	phaseBlocks syncPhase = iota + 1
	phaseCertificates
	phaseProof
	// phaseAncestry: a verified proof's finalized block is on a chain the
	// range fetch could not connect to ours: its ancestry is fetched by
	// hash down to our finalized height to tell a fork from conflicting
	// finality.
	phaseAncestry
)

// Catch-up round limits.
const (
	// maxIdleResponses: a round ends after this many consecutive
	// responses that brought nothing new (known blocks are not progress).
	maxIdleResponses = 3
	// roundIdleTimeouts: a round ends when it made no progress for this
	// many request time-outs.
	roundIdleTimeouts = 3
	// maxBackoff caps the per-peer back-off after bad rounds.
	maxBackoff = time.Minute
	// maxAncestryBlocks bounds the blocks fetched by hash to check a
	// proof's ancestry.
	maxAncestryBlocks = 4096
	// maxOrphans bounds the gossip blocks kept while their parent is
	// fetched by hash; maxParentDepth the by-hash requests per fetch.
	maxOrphans     = 64
	maxParentDepth = 4
	// behindLagSlots: the node is behind when its best block is at least
	// this many slots old and several peers show blocks above it.
	behindLagSlots = 3
	// maxBackoffs bounds the remembered back-offs (expired ones go first).
	maxBackoffs = 1024
)

// syncRound is a catch-up with one peer: blocks, then certificates (or a
// finality proof when the peer pruned them).
type syncRound struct {
	peer      PeerID
	target    Status
	phase     syncPhase
	next      uint64
	restarted bool
	// proof is a verified finality proof above our finalized checkpoint
	// whose block is being fetched (nil: none).
	proof *checkpoint.FinalityProof
	// ancestry: blocks fetched by hash from the proof's finalized block
	// down (newest first); cursor the next hash to fetch.
	ancestry []asf.Block
	cursor   checkpoint.Hash
	// idle counts consecutive responses without progress; lastProgress is
	// when the round last brought something new.
	idle         int
	lastProgress time.Time
	// asked is the count of the blocks request in flight; short counts
	// answers with fewer blocks than asked while the peer claims more (a
	// trickle: honest peers fill their answers).
	asked      uint32
	short      int
	progressed bool
	blocks     int
	certs      int
	proofs     int
	start      time.Time
	request    uint64 // id of the request in flight
}

func (e *Engine) requestLocked(p PeerID, req Request) uint64 {
	e.nextID++
	id := e.nextID
	if e.requests == nil {
		e.requests = make(map[uint64]pendingRequest)
	}
	e.requests[id] = pendingRequest{peer: p, req: req, sentAt: e.clock.Now()}
	e.net.Request(p, id, req)
	return id
}

// OnPeerConnected starts a status handshake with a new peer.
func (e *Engine) OnPeerConnected(ctx context.Context, p PeerID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fatal != nil {
		return
	}
	if _, ok := e.peers[p]; !ok {
		e.peers[p] = &peerState{}
	}
	e.pollLocked(p)
}

// OnPeerDisconnected forgets a peer.
func (e *Engine) OnPeerDisconnected(p PeerID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.peers, p)
	if e.sync != nil && e.sync.peer == p {
		e.endSyncLocked(context.Background(), "peer disconnected")
	}
}

// Peers returns the peers the engine knows, with their last status.
func (e *Engine) Peers() map[PeerID]*Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[PeerID]*Status, len(e.peers))
	for p, ps := range e.peers {
		if ps.status != nil {
			st := *ps.status
			out[p] = &st
		} else {
			out[p] = nil
		}
	}
	return out
}

func (e *Engine) pollLocked(p PeerID) {
	ps := e.peers[p]
	if ps == nil || ps.polling {
		return
	}
	ps.polling = true
	ps.lastPoll = e.clock.Now()
	e.requestLocked(p, Request{Kind: ReqStatus})
}

// startSyncLocked asks p for its status (an unknown parent arrived from it);
// the catch-up starts from the answer.
func (e *Engine) startSyncLocked(_ context.Context, p PeerID) {
	if _, ok := e.peers[p]; !ok {
		e.peers[p] = &peerState{}
	}
	e.pollLocked(p)
}

func (e *Engine) tickSyncLocked(ctx context.Context, now time.Time) {
	for _, id := range sortedKeys(e.requests) {
		if r, ok := e.requests[id]; ok && now.Sub(r.sentAt) >= e.cfg.RequestTimeout {
			e.onResponseLocked(ctx, r.peer, id, Response{Err: ErrRequestTimeout})
		}
	}
	if s := e.sync; s != nil && now.Sub(s.lastProgress) >= roundIdleTimeouts*e.cfg.RequestTimeout {
		e.endSyncLocked(ctx, "no progress for "+now.Sub(s.lastProgress).String())
	}
	e.refreshBehindLocked(ctx)
	for _, p := range sortedKeys(e.peers) {
		ps := e.peers[p]
		if ps != nil && !ps.polling && now.Sub(ps.lastPoll) >= e.cfg.SyncInterval {
			e.pollLocked(p)
		}
	}
}

// sortedKeys returns the keys of m in order (map iteration is random; the
// engine must be deterministic).
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// OnResponse handles the answer to request id.
func (e *Engine) OnResponse(ctx context.Context, p PeerID, id uint64, resp Response) error {
	if err := e.enter(); err != nil {
		e.mu.Unlock()
		return err
	}
	defer e.mu.Unlock()
	e.onResponseLocked(ctx, p, id, resp)
	return e.fatal
}

func (e *Engine) onResponseLocked(ctx context.Context, p PeerID, id uint64, resp Response) {
	r, ok := e.requests[id]
	if !ok || r.peer != p {
		return // expired or unknown
	}
	delete(e.requests, id)
	if resp.Err != nil {
		e.stats.RequestsFailed++
		e.log.Debug("sync request failed", zap.String("peer", string(p)), zap.Stringer("kind", r.req.Kind), zap.Error(resp.Err))
	}
	switch r.req.Kind {
	case ReqStatus:
		if ps := e.peers[p]; ps != nil {
			ps.polling = false
			if resp.Err == nil {
				st := resp.Status
				ps.status = &st
			}
		}
		if resp.Err == nil {
			e.onStatusLocked(ctx, p, resp.Status)
		}
		return
	case ReqVotes:
		e.onVotesLocked(ctx, p, r.req, resp)
		return
	}
	if r.req.Kind == ReqBlocksByHash && e.parents[id] != nil {
		e.onParentBlocksLocked(ctx, p, id, r.req, resp)
		return
	}
	s := e.sync
	if s == nil || s.peer != p || s.request != id {
		return
	}
	s.request = 0
	if resp.Err != nil {
		e.endSyncLocked(ctx, "request failed: "+resp.Err.Error())
		return
	}
	switch r.req.Kind {
	case ReqBlocks:
		e.onBlocksLocked(ctx, resp)
	case ReqCertificates:
		e.onCertificatesLocked(ctx, resp)
	case ReqFinalityProof:
		e.onProofLocked(ctx, resp)
	case ReqBlocksByHash:
		e.onAncestryLocked(ctx, resp)
	}
}

// ourStatus is this node's status.
func (e *Engine) ourStatus() Status {
	best := e.chain.Best()
	st := Status{
		Genesis:   e.cfg.Genesis,
		Best:      checkpoint.Checkpoint{Number: best.Number, Hash: best.Hash()},
		Finalized: e.chain.Finalized(),
		Justified: e.chain.Justified(),
	}
	if e.gadget != nil {
		st.Justified = e.gadget.LatestJustified()
		st.Finalized = e.gadget.LatestFinalized()
	}
	return st
}

func (e *Engine) behind(st Status) (blocks, certs bool) {
	ours := e.ourStatus()
	// Ahead, or on a branch we do not know at our height or above (an
	// equivocating proposer showed us another block first): its chain is
	// fetched so that fork choice can compare both.
	blocks = st.Best.Number > ours.Best.Number+1 ||
		(st.Best.Number >= ours.Best.Number && st.Best.Number > 0 && !e.chain.HasBlock(st.Best.Hash))
	if e.gadget != nil {
		certs = st.Justified.Number > ours.Justified.Number || st.Finalized.Number > ours.Finalized.Number
	}
	// The chain lacks the finalized checkpoint: its blocks are needed even
	// when the peer is not ahead by our best block's measure.
	if !e.chainCurrent() && st.Best.Number >= e.gadget.LatestFinalized().Number*e.interval {
		blocks = true
	}
	return blocks, certs
}

func (e *Engine) onStatusLocked(ctx context.Context, p PeerID, st Status) {
	if st.Genesis != e.cfg.Genesis {
		e.log.Debug("peer of another chain", zap.String("peer", string(p)))
		return
	}
	e.askVotesLocked(p)
	e.refreshBehindLocked(ctx)
	now := e.clock.Now()
	if blocks, certs := e.behind(st); !blocks && !certs && !e.suspectClaimLocked(st) {
		// Nothing ahead at this peer: caught up, even while a round with
		// another (perhaps lying) peer runs.
		if !e.caughtUp && e.chainCurrent() {
			e.caughtUp = true
			e.log.Debug("caught up with peers", zap.String("peer", string(p)))
		}
		return
	}
	if s := e.sync; s != nil {
		// A round runs: an honest peer's status is still heard; when the
		// round's peer fed nothing new in its last answer and this one
		// has something, the round moves to it.
		if s.peer == p || (s.idle == 0 && s.short == 0) || e.inBackoff(p, now) {
			return
		}
		e.endSyncLocked(ctx, fmt.Sprintf("peer %s offers more", p))
		if e.sync != nil {
			return
		}
	}
	if e.inBackoff(p, now) {
		return
	}
	if e.gadget != nil && e.suspectLocked(p, st) {
		// The peer claims a finalized checkpoint that is not on our
		// finalized chain. The claim is unsigned: it only makes us ask
		// for the peer's finality proof, which is judged on its own
		// (signed) merits.
		s := &syncRound{peer: p, target: st, start: now, lastProgress: now, phase: phaseProof}
		e.sync = s
		e.stats.SyncRounds++
		e.log.Info("Peer claims a finalized checkpoint that is not on our chain; asking for its finality proof",
			zap.String("peer", string(p)), zap.Stringer("peer_finalized", st.Finalized), zap.Stringer("finalized", e.gadget.LatestFinalized()))
		s.request = e.requestLocked(p, Request{Kind: ReqFinalityProof})
		return
	}
	blocks, certs := e.behind(st)
	if !blocks && !certs {
		if !e.caughtUp && e.chainCurrent() {
			e.caughtUp = true
			e.log.Debug("caught up with peers", zap.String("peer", string(p)))
		}
		return
	}
	s := &syncRound{peer: p, target: st, start: now, lastProgress: now}
	e.sync = s
	e.stats.SyncRounds++
	ours := e.ourStatus()
	e.log.Info("Syncing with peer", zap.String("peer", string(p)),
		zap.Uint64("our_best", ours.Best.Number), zap.Uint64("peer_best", st.Best.Number),
		zap.Uint64("our_justified", ours.Justified.Number), zap.Uint64("peer_justified", st.Justified.Number),
		zap.Uint64("our_finalized", ours.Finalized.Number), zap.Uint64("peer_finalized", st.Finalized.Number))
	if blocks {
		s.phase = phaseBlocks
		s.next = ours.Best.Number + 1
		if !e.chainCurrent() || st.Best.Number <= ours.Best.Number+1 {
			// Another branch (or a chain missing the finalized
			// checkpoint): fetch from our finalized block, the fork point
			// is above it.
			s.next = e.chain.Finalized().Number*e.interval + 1
		}
		e.requestBlocksLocked()
		return
	}
	e.certificatePhaseLocked(ctx)
}

// suspectClaimLocked reports whether st claims a finalized checkpoint at
// or below ours that is not on our finalized chain (without the once-per-
// claim bookkeeping of suspectLocked).
func (e *Engine) suspectClaimLocked(st Status) bool {
	if e.gadget == nil {
		return false
	}
	f, pf := e.gadget.LatestFinalized(), st.Finalized
	if pf.Number == 0 || pf.Number > f.Number || pf.Number*e.interval > e.chain.Best().Number {
		return false
	}
	if e.chain.Finalized().Number < pf.Number {
		return false // our chain is behind our own finality: nothing to compare with
	}
	h, ok := e.chain.CanonicalHash(pf.Number * e.interval)
	return ok && h != pf.Hash
}

// suspectLocked reports (once per claim) that a peer's finalized checkpoint
// is at or below ours but not on our finalized chain.
func (e *Engine) suspectLocked(p PeerID, st Status) bool {
	if !e.suspectClaimLocked(st) {
		return false
	}
	ps := e.peers[p]
	if ps == nil || ps.suspect == st.Finalized {
		return false
	}
	ps.suspect = st.Finalized
	return true
}

func (e *Engine) requestBlocksLocked() {
	s := e.sync
	if s.next > s.target.Best.Number {
		return
	}
	count := uint32(min(uint64(BlocksPerRequest), s.target.Best.Number-s.next+1))
	s.asked = count
	s.request = e.requestLocked(s.peer, Request{Kind: ReqBlocks, Start: s.next, Count: count})
}

// progressLocked notes that the round brought something new.
func (e *Engine) progressLocked() {
	s := e.sync
	s.idle = 0
	s.progressed = true
	s.lastProgress = e.clock.Now()
}

// idleLocked notes an answer that brought nothing new; false when the round
// ended for it.
func (e *Engine) idleLocked(ctx context.Context) bool {
	s := e.sync
	s.idle++
	if s.idle >= maxIdleResponses {
		e.endSyncLocked(ctx, fmt.Sprintf("%d answers in a row brought nothing new", s.idle))
		return false
	}
	return true
}

func (e *Engine) onBlocksLocked(ctx context.Context, resp Response) {
	s := e.sync
	if resp.Unavailable || len(resp.Blocks) == 0 {
		e.certificatePhaseLocked(ctx)
		return
	}
	fresh := 0
	for _, b := range resp.Blocks {
		v, err := e.importLocked(ctx, b, "", true)
		if errors.Is(err, asf.ErrUnknownParent) && !s.restarted {
			// We are on a fork the peer does not have: start again from
			// our finalized block.
			s.restarted = true
			s.next = e.chain.Finalized().Number*e.interval + 1
			e.requestBlocksLocked()
			return
		}
		if errors.Is(err, asf.ErrEquivocation) {
			continue
		}
		if (errors.Is(err, asf.ErrConflictsFinalized) || errors.Is(err, asf.ErrUnknownParent)) && e.gadget != nil {
			// The peer's best chain does not contain our finalized block
			// (it forks below it). That is an orphan branch unless a
			// verified finality proof says otherwise: the peer's proof is
			// asked for, and only a verified one has its ancestry fetched
			// and judged.
			switch {
			case s.proof != nil:
				e.ancestryPhaseLocked(ctx)
			case s.proofs < maxProofsPerRound:
				s.request = e.requestLocked(s.peer, Request{Kind: ReqFinalityProof})
			default:
				e.endSyncLocked(ctx, fmt.Sprintf("peer's chain at block #%d does not contain our finalized block", b.Header.Number))
			}
			return
		}
		if err != nil {
			if e.fatal != nil {
				return
			}
			e.endSyncLocked(ctx, fmt.Sprintf("peer sent block #%d that does not import: %v", b.Header.Number, err))
			return
		}
		s.next = b.Header.Number + 1
		if v == Accept || e.cfg.Mutations.CountKnownBlocksAsProgress {
			fresh++
			s.blocks++
			e.stats.SyncedBlocks++
		}
	}
	if uint32(len(resp.Blocks)) < s.asked && s.next <= s.target.Best.Number && !e.cfg.Mutations.CountKnownBlocksAsProgress {
		// Fewer blocks than asked though the peer claims more: a trickle
		// keeps a round alive but slower than the chain grows.
		s.short++
		if s.short >= maxIdleResponses {
			s.progressed = false // backed off like an idle peer
			e.endSyncLocked(ctx, fmt.Sprintf("%d short answers: the peer trickles its blocks", s.short))
			return
		}
	}
	if fresh > 0 {
		e.progressLocked()
		if e.cfg.Mutations.CountKnownBlocksAsProgress {
			e.setSyncingLocked(ctx, true)
		}
	} else if !e.idleLocked(ctx) {
		return
	}
	if s.next <= s.target.Best.Number {
		e.requestBlocksLocked()
		return
	}
	if s.proof != nil && s.phase == phaseBlocks {
		// The proof's block should be here now: judge the proof again.
		p := *s.proof
		e.onProofLocked(ctx, Response{Proof: &p})
		return
	}
	e.certificatePhaseLocked(ctx)
}

// certificatePhaseLocked fetches certificates from the finalized checkpoint
// up to the peer's justified one (or ends the round when there is nothing
// more to fetch).
func (e *Engine) certificatePhaseLocked(ctx context.Context) {
	s := e.sync
	if e.gadget == nil {
		e.endSyncLocked(ctx, "")
		return
	}
	f, j := e.gadget.LatestFinalized().Number, e.gadget.LatestJustified().Number
	if s.target.Justified.Number <= j && s.target.Finalized.Number <= f {
		e.endSyncLocked(ctx, "")
		return
	}
	if s.phase != phaseCertificates {
		s.phase = phaseCertificates
		s.next = f + 1
	}
	s.next = max(s.next, f+1)
	if s.next > s.target.Justified.Number {
		e.endSyncLocked(ctx, "")
		return
	}
	count := uint32(min(uint64(CertificatesPerRequest), s.target.Justified.Number-s.next+1))
	s.request = e.requestLocked(s.peer, Request{Kind: ReqCertificates, Start: s.next, Count: count})
}

func (e *Engine) onCertificatesLocked(ctx context.Context, resp Response) {
	s := e.sync
	if resp.Unavailable {
		// The peer pruned the certificates we would replay: ask for a
		// proof of its finalized checkpoint instead.
		if s.proofs < maxProofsPerRound {
			s.phase = phaseProof
			s.request = e.requestLocked(s.peer, Request{Kind: ReqFinalityProof})
			return
		}
		e.endSyncLocked(ctx, "")
		return
	}
	if len(resp.Certificates) == 0 {
		e.endSyncLocked(ctx, "")
		return
	}
	progress := false
	for _, c := range resp.Certificates {
		before := e.gadget.LatestJustified()
		verdict, err := e.gadget.OnCertificate(ctx, c)
		if err != nil {
			e.fail(fmt.Errorf("finality gadget (synced certificate): %w", err))
			return
		}
		if verdict == finality.VerdictReject {
			e.endSyncLocked(ctx, fmt.Sprintf("peer sent an invalid certificate for checkpoint %d", c.Target.Number))
			return
		}
		if verdict == finality.VerdictAccept {
			s.certs++
			e.stats.SyncedCertificates++
			if e.gadget.LatestJustified() != before {
				progress = true
			}
		}
		s.next = max(s.next, c.Target.Number+1)
	}
	if progress {
		e.progressLocked()
	} else if !e.idleLocked(ctx) {
		return
	}
	e.certificatePhaseLocked(ctx)
}

func (e *Engine) onProofLocked(ctx context.Context, resp Response) {
	s := e.sync
	s.proofs++
	if resp.Unavailable || resp.Proof == nil {
		e.endSyncLocked(ctx, "")
		return
	}
	p := *resp.Proof
	if err := e.gadget.VerifyFinalityProof(p); err != nil {
		e.endSyncLocked(ctx, "peer sent an invalid finality proof: "+err.Error())
		return
	}
	if err := CheckTrusted(p, e.cfg.TrustedCheckpoint); err != nil {
		e.endSyncLocked(ctx, "peer sent a finality proof without the trusted checkpoint: "+err.Error())
		return
	}
	fin := p.Finalizing.Source
	ours := e.gadget.LatestFinalized()
	switch {
	case fin.Number <= ours.Number:
		// Nothing to jump to; the gadget compares it with the finalized
		// chain it knows (and halts on a signed conflict).
	case e.cfg.Mutations.HaltOnUnsignedClaim && s.target.Finalized.Number <= ours.Number && s.target.Finalized.Number > 0:
		// Mutant: the old rule trusted the peer's unsigned claim.
		e.conflictLocked(ctx, fin, fmt.Sprintf("peer %s proves checkpoint %s finalized on a chain that does not contain our finalized checkpoint %s", s.peer, fin, ours))
		return
	case e.chain.HasBlock(fin.Hash):
		if !e.chain.IsDescendant(fin.Hash, ours) {
			e.conflictLocked(ctx, fin, fmt.Sprintf("peer %s proves checkpoint %s finalized, which does not descend from our finalized checkpoint %s", s.peer, fin, ours))
			return
		}
	default:
		// Its block is not here yet (we are behind, or the peer finalized
		// more while we fetched its blocks): fetch up to it, then judge
		// the proof again.
		if h := fin.Number * e.interval; s.proofs < maxProofsPerRound {
			s.proof = &p
			s.target.Best.Number = max(s.target.Best.Number, h)
			if h <= e.chain.Best().Number || s.phase == phaseBlocks {
				// The range fetch did not bring it: its ancestry decides.
				e.ancestryPhaseLocked(ctx)
				return
			}
			s.phase = phaseBlocks
			s.next = e.chain.Best().Number + 1
			e.requestBlocksLocked()
			return
		}
		e.endSyncLocked(ctx, "")
		return
	}
	e.applyProofLocked(ctx, p)
}

func (e *Engine) applyProofLocked(ctx context.Context, p checkpoint.FinalityProof) {
	s := e.sync
	moved, err := e.gadget.ApplyFinalityProof(ctx, p)
	if errors.Is(err, finality.ErrBadProof) {
		e.endSyncLocked(ctx, "peer sent an invalid finality proof: "+err.Error())
		return
	}
	if err != nil {
		e.fail(fmt.Errorf("finality gadget (finality proof): %w", err))
		return
	}
	s.proof = nil
	if moved {
		e.stats.ProofsApplied++
		e.progressLocked()
		e.log.Info("Caught up finality from a peer's finality proof", zap.String("peer", string(s.peer)),
			zap.Stringer("finalized", e.gadget.LatestFinalized()), zap.Stringer("justified", e.gadget.LatestJustified()))
	}
	if e.sync == nil || e.fatal != nil || e.gadget.Halted() {
		e.endSyncLocked(ctx, "")
		return
	}
	// Certificates above the proof's checkpoints, if the peer has more.
	e.certificatePhaseLocked(ctx)
}

// ancestryPhaseLocked starts (or continues) fetching the ancestry of the
// verified proof's finalized block by hash.
func (e *Engine) ancestryPhaseLocked(ctx context.Context) {
	s := e.sync
	if s.phase != phaseAncestry {
		s.phase = phaseAncestry
		s.ancestry = nil
		s.cursor = s.proof.Finalizing.Source.Hash
	}
	if len(s.ancestry) >= maxAncestryBlocks {
		e.log.Warn("A peer's finality proof finalizes a block whose ancestry is too long to check here; not following it",
			zap.String("peer", string(s.peer)), zap.Stringer("proof_finalized", s.proof.Finalizing.Source))
		e.endSyncLocked(ctx, "proof ancestry too long")
		return
	}
	s.request = e.requestLocked(s.peer, Request{Kind: ReqBlocksByHash, Hash: s.cursor, Count: BlocksByHashPerRequest})
}

// onAncestryLocked judges a verified proof by the hash-linked ancestry of
// its finalized block: it descends from our finalized checkpoint (a fork we
// did not follow: import it and apply the proof) or it does not (signed
// conflicting finality: halt with the evidence).
func (e *Engine) onAncestryLocked(ctx context.Context, resp Response) {
	s := e.sync
	if s.phase != phaseAncestry || s.proof == nil {
		e.endSyncLocked(ctx, "unexpected blocks-by-hash answer")
		return
	}
	if resp.Unavailable || len(resp.Blocks) == 0 {
		e.endSyncLocked(ctx, "peer cannot show the ancestry of the block its proof finalizes")
		return
	}
	ours := e.gadget.LatestFinalized()
	if !e.chain.HasBlock(ours.Hash) {
		e.endSyncLocked(ctx, "our chain lacks our finalized block: cannot judge the proof's ancestry yet")
		return
	}
	ourHeight := ours.Number * e.interval
	fin := s.proof.Finalizing.Source
	for _, b := range resp.Blocks {
		if b.Hash() != s.cursor || b.Header.Number == 0 {
			e.endSyncLocked(ctx, "peer sent a block that is not the one asked for")
			return
		}
		s.ancestry = append(s.ancestry, b)
		s.cursor = b.Header.ParentHash
		known := e.chain.HasBlock(s.cursor)
		if known && e.chain.IsDescendant(s.cursor, ours) {
			e.importAncestryLocked(ctx)
			return
		}
		if known || b.Header.Number-1 <= ourHeight {
			// The hash-linked chain under a block that a verified proof
			// finalizes passes our finalized height without our block.
			e.conflictLocked(ctx, fin, fmt.Sprintf("peer %s proves checkpoint %s finalized; its ancestry (%d blocks fetched by hash) does not contain our finalized checkpoint %s", s.peer, fin, len(s.ancestry), ours))
			return
		}
	}
	e.progressLocked()
	e.ancestryPhaseLocked(ctx)
}

// importAncestryLocked imports the fetched ancestry oldest first, then
// applies the proof.
func (e *Engine) importAncestryLocked(ctx context.Context) {
	s := e.sync
	for i := len(s.ancestry) - 1; i >= 0; i-- {
		b := s.ancestry[i]
		v, err := e.importLocked(ctx, b, "", true)
		if err != nil && !errors.Is(err, asf.ErrEquivocation) {
			if e.fatal == nil {
				e.endSyncLocked(ctx, fmt.Sprintf("block #%d of the proof's ancestry does not import: %v", b.Header.Number, err))
			}
			return
		}
		if v == Accept {
			s.blocks++
			e.stats.SyncedBlocks++
		}
	}
	s.ancestry = nil
	e.progressLocked()
	e.applyProofLocked(ctx, *s.proof)
}

// conflictLocked halts on verified conflicting finality found by sync.
func (e *Engine) conflictLocked(ctx context.Context, fin checkpoint.Checkpoint, detail string) {
	h := checkpoint.Halt{Reason: checkpoint.HaltConflictingFinality, Checkpoint: fin.Number, Detail: detail}
	if len(h.Detail) > checkpoint.MaxHaltDetail {
		h.Detail = h.Detail[:checkpoint.MaxHaltDetail]
	}
	if err := e.gadget.RaiseAlarm(ctx, h); err != nil {
		e.fail(fmt.Errorf("finality gadget: %w", err))
		return
	}
	e.endSyncLocked(ctx, "conflicting finality")
}

func (e *Engine) setSyncingLocked(ctx context.Context, on bool) {
	if e.syncing == on {
		return
	}
	e.syncing = on
	if e.gadget != nil {
		if err := e.gadget.SetPaused(ctx, !e.votingAllowed()); err != nil {
			e.fail(fmt.Errorf("finality gadget: %w", err))
		}
	}
}

// behindNowLocked reports whether the node is really behind: its best
// block is at least behindLagSlots slots old and several peers (two, or the
// only one with a status) that are not down-scored show blocks above it.
// One peer's claim alone never makes a node with other peers behind.
func (e *Engine) behindNowLocked(now time.Time) bool {
	best := e.chain.Best()
	if asf.SlotAt(e.spec, now) < best.Slot+behindLagSlots {
		return false
	}
	ahead, total := 0, 0
	for p, ps := range e.peers {
		if ps.status == nil || e.inBackoff(p, now) {
			continue
		}
		total++
		if ps.status.Best.Number >= best.Number+2 {
			ahead++
		}
	}
	return total > 0 && ahead >= min(2, total)
}

// refreshBehindLocked recomputes whether voting and authoring pause because
// the node is behind.
func (e *Engine) refreshBehindLocked(ctx context.Context) {
	on := e.behindNowLocked(e.clock.Now())
	if e.cfg.Mutations.CountKnownBlocksAsProgress && e.sync != nil && e.sync.progressed {
		on = true
	}
	e.setSyncingLocked(ctx, on)
}

// endSyncLocked ends the round; a caught-up validator offers the best
// chain's latest checkpoint to the gadget at once.
func (e *Engine) endSyncLocked(ctx context.Context, problem string) {
	s := e.sync
	if s == nil {
		return
	}
	e.sync = nil
	if s.request != 0 {
		delete(e.requests, s.request)
	}
	now := e.clock.Now()
	switch {
	case problem != "" && !s.progressed:
		// Down-score: no round with it for a while (doubling).
		if e.backoffs == nil {
			e.backoffs = make(map[PeerID]backoff)
		}
		b := e.backoffs[s.peer]
		b.d = min(maxBackoff, max(2*b.d, e.cfg.RequestTimeout))
		b.until = now.Add(b.d)
		e.backoffs[s.peer] = b
		if len(e.backoffs) > maxBackoffs {
			for p, old := range e.backoffs {
				if !now.Before(old.until) {
					delete(e.backoffs, p)
				}
			}
		}
	case s.progressed:
		delete(e.backoffs, s.peer)
	}
	if problem != "" {
		e.log.Info("Sync round ended early", zap.String("peer", string(s.peer)), zap.String("reason", problem))
	} else if s.blocks > 0 || s.certs > 0 || s.proofs > 0 {
		e.log.Info("Sync round complete", zap.String("peer", string(s.peer)), zap.Int("blocks", s.blocks),
			zap.Int("certificates", s.certs), zap.Int("proofs", s.proofs), zap.Duration("took", now.Sub(s.start)))
	}
	e.refreshBehindLocked(ctx)
	e.updateHeadLocked(ctx)
	// Another round right away if this peer (or another) is still ahead;
	// after a failed round, ask the other peers at once instead of waiting
	// for the next poll.
	switch {
	case problem == "" && s.progressed:
		e.pollLocked(s.peer)
	case problem != "":
		for _, p := range sortedKeys(e.peers) {
			if p != s.peer {
				e.pollLocked(p)
			}
		}
	}
}

// --- Serving peers (read-only; no engine lock) --------------------------

// Serve answers a request with the Serve* method of its kind (unavailable
// for an unknown kind): a transport that carries Request and Response as
// they are (the simulator, tests) calls this one.
func (e *Engine) Serve(ctx context.Context, req Request) Response {
	switch req.Kind {
	case ReqStatus:
		return Response{Status: e.ServeStatus()}
	case ReqBlocks:
		blocks, unavailable := e.ServeBlocks(req.Start, req.Count)
		return Response{Blocks: blocks, Unavailable: unavailable}
	case ReqCertificates:
		certs, unavailable := e.ServeCertificates(ctx, req.Start, req.Count)
		return Response{Certificates: certs, Unavailable: unavailable}
	case ReqFinalityProof:
		p, ok := e.ServeFinalityProof()
		return Response{Proof: p, Unavailable: !ok}
	case ReqVotes:
		votes, unavailable := e.ServeVotes(ctx, req.Key, req.Start, req.Count)
		return Response{Votes: votes, Unavailable: unavailable}
	case ReqBlocksByHash:
		blocks, unavailable := e.ServeBlocksByHash(req.Hash, req.Count)
		return Response{Blocks: blocks, Unavailable: unavailable}
	}
	return Response{Unavailable: true}
}

// ServeStatus answers a peer's status request.
func (e *Engine) ServeStatus() Status { return e.ourStatus() }

// ServeBlocks answers a blocks-by-range request: up to count best-chain
// blocks from start; unavailable when start is above the best block.
func (e *Engine) ServeBlocks(start uint64, count uint32) ([]asf.Block, bool) {
	blocks, err := e.chain.BlocksByRange(start, int(count))
	if err != nil || len(blocks) == 0 {
		return nil, true
	}
	return blocks, false
}

// ServeCertificates answers a certificates-by-range request: the stored
// certificates with a target in [start, start+count); unavailable when
// start is below what this node retains (it pruned them: ask for a finality
// proof) or nothing is stored there.
func (e *Engine) ServeCertificates(ctx context.Context, start uint64, count uint32) ([]checkpoint.Certificate, bool) {
	if e.certs == nil || count == 0 {
		return nil, true
	}
	if start < e.certs.OldestRetained() {
		return nil, true
	}
	certs, err := e.certs.Certificates(ctx, start, start+uint64(count)-1, int(count))
	if err != nil || len(certs) == 0 {
		return nil, true
	}
	return certs, false
}

// ServeFinalityProof answers a finality-proof request with the proof of
// this node's finalized (and latest justified) checkpoint.
func (e *Engine) ServeFinalityProof() (*checkpoint.FinalityProof, bool) {
	if e.gadget != nil {
		if p, ok := e.gadget.FinalityProof(); ok {
			return &p, true
		}
	}
	if p, ok, err := e.chain.FinalityProof(); err == nil && ok {
		return &p, true
	}
	return nil, false
}

// Limits of the requests that learn a key's votes and fetch a parent.
const (
	VotesPerRequest        = 64
	BlocksByHashPerRequest = 32
)

// ServeVotes answers a votes-by-validator request: the stored votes (and
// those held by stored certificates) of the validator with key pub whose
// target is at least from, in increasing target order, at most count
// (clamped to VotesPerRequest); unavailable when the key is not in the
// authority set or nothing is stored.
func (e *Engine) ServeVotes(ctx context.Context, pub ed25519.PublicKey, from uint64, count uint32) ([]checkpoint.SignedVote, bool) {
	if e.cfg.Votes == nil || count == 0 {
		return nil, true
	}
	idx, ok := e.authorityIndex(pub)
	if !ok {
		return nil, true
	}
	votes, err := e.cfg.Votes.VotesByValidator(ctx, idx, from, int(min(count, VotesPerRequest)))
	if err != nil || len(votes) == 0 {
		return nil, true
	}
	return votes, false
}

// authorityIndex is pub's validator index in the authority set in force.
func (e *Engine) authorityIndex(pub ed25519.PublicKey) (checkpoint.ValidatorIndex, bool) {
	keys := e.spec.AuthoritySet().Keys
	if e.gadget != nil {
		// The set in force (votes are stored by index; after a hand-off a
		// key's index is its index in the new set).
		keys = e.gadget.Authorities().Set.Keys
	}
	for i, k := range keys {
		if k.Equal(pub) {
			return checkpoint.ValidatorIndex(i), true
		}
	}
	return 0, false
}

// ServeBlocksByHash answers a blocks-by-hash request: the block with hash h
// and up to count-1 (count clamped to BlocksByHashPerRequest) of its
// ancestors, newest first, never the genesis block; unavailable when h is
// unknown.
func (e *Engine) ServeBlocksByHash(h checkpoint.Hash, count uint32) ([]asf.Block, bool) {
	count = min(count, BlocksByHashPerRequest)
	var out []asf.Block
	for uint32(len(out)) < count {
		b, ok, err := e.chain.BlockByHash(h)
		if err != nil || !ok || b.Header.Number == 0 {
			break
		}
		out = append(out, b)
		h = b.Header.ParentHash
	}
	return out, len(out) == 0
}

// ErrTrustedCheckpoint: a finality proof, or the finalized chain, does not
// hold the --checkpoint-sync checkpoint.
var ErrTrustedCheckpoint = errors.New("finality does not contain the trusted checkpoint")

// CheckTrusted applies --checkpoint-sync to a verified proof: one that
// finalizes a checkpoint at or above the trusted one must name it among
// its checkpoints (a hand-off's, the finalizing or the justified
// certificate's source or target); one below it is not judged. With a
// hand-off checkpoint as the trusted one (GET /authorities "started_at"),
// every later proof names it.
func CheckTrusted(p checkpoint.FinalityProof, trusted *checkpoint.Checkpoint) error {
	if trusted == nil || p.Finalizing.Source.Number < trusted.Number {
		return nil
	}
	certs := append([]checkpoint.Certificate{p.Finalizing}, p.HandOffs...)
	if p.Justified != nil {
		certs = append(certs, *p.Justified)
	}
	for _, c := range certs {
		for _, cp := range []checkpoint.Checkpoint{c.Source, c.Target} {
			if cp.Number != trusted.Number {
				continue
			}
			if cp.Hash != trusted.Hash {
				return fmt.Errorf("%w: the proof names %s at checkpoint %d, the trusted checkpoint is %s", ErrTrustedCheckpoint, cp.Hash, cp.Number, trusted.Hash)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: the proof finalizes %s and does not name checkpoint %d", ErrTrustedCheckpoint, p.Finalizing.Source, trusted.Number)
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// learned summarises the verified votes of our key that peers stored.
type learned struct {
	votes     int
	maxSource uint64
	maxTarget uint64
}

// startCheck holds back the first vote of a signer record that this start
// did not create (a restart, an imported record, a copied base path) until
// the node heard from the network: a status round (caught up) and the votes
// of our key that peers store. A vote among them that this record did not
// sign halts (doppelganger) before any vote of ours leaves. With
// Config.DoppelgangerListen it also listens for doppelgangerIntervals
// checkpoint intervals.
type startCheck struct {
	began   time.Time // when the node first caught up (zero: not yet)
	until   time.Time // end of the full listen (zero: none)
	loggedW time.Time
}

// needVotesLocked: the votes of our key are being learned.
func (e *Engine) needVotesLocked() bool {
	return e.signer != nil && e.gadget != nil && (e.init != nil || e.startCheck != nil) &&
		!e.cfg.Mutations.SkipStoredVotesFetch
}

// askVotesLocked asks p for the votes of our key it stores (once per peer
// while they are needed).
func (e *Engine) askVotesLocked(p PeerID) {
	ps := e.peers[p]
	if ps == nil || ps.votesAsked || !e.needVotesLocked() {
		return
	}
	ps.votesAsked = true
	e.requestLocked(p, Request{Kind: ReqVotes, Key: e.signer.PublicKey(), Start: e.gadget.LatestFinalized().Number + 1, Count: VotesPerRequest})
}

// maxVotePages bounds the pages of votes asked from one peer.
const maxVotePages = 8

func (e *Engine) onVotesLocked(ctx context.Context, p PeerID, req Request, resp Response) {
	ps := e.peers[p]
	if resp.Err != nil {
		if ps != nil {
			ps.votesAsked = false // asked again after its next status
		}
		return
	}
	if ps != nil {
		ps.votesAnswered = true
	}
	e.votesHeard++
	sched := e.gadget.Schedule()
	last := req.Start
	for _, v := range resp.Votes {
		set, known := sched.Set(v.SetID)
		own, in := set.IndexOf(e.signer.PublicKey())
		if !known || !in || v.Validator != own || v.Genesis != e.cfg.Genesis || v.Target.Number < req.Start {
			e.log.Debug("peer answered the votes of our key with another vote", zap.String("peer", string(p)))
			return
		}
		if err := set.VerifyVote(v); err != nil {
			e.log.Debug("peer sent an invalid vote of our key", zap.String("peer", string(p)), zap.Error(err))
			return
		}
		e.learn.votes++
		e.learn.maxSource = max(e.learn.maxSource, v.Source.Number)
		e.learn.maxTarget = max(e.learn.maxTarget, v.Target.Number)
		last = max(last, v.Target.Number)
		// The gadget judges it as any vote of our key: history while a
		// fresh record listens, a doppelganger when it is not ours.
		if _, err := e.gadget.OnVote(ctx, v); err != nil {
			e.fail(fmt.Errorf("finality gadget (stored vote of our key): %w", err))
			return
		}
	}
	if len(resp.Votes) == int(req.Count) && ps != nil && ps.votesPages < maxVotePages && last < ^uint64(0) {
		ps.votesPages++
		e.requestLocked(p, Request{Kind: ReqVotes, Key: req.Key, Start: last + 1, Count: req.Count})
	}
}

// tickStartCheckLocked ends the start check once the network was heard.
func (e *Engine) tickStartCheckLocked(ctx context.Context, now time.Time) {
	sc := e.startCheck
	if sc == nil || e.gadget == nil || e.gadget.Halted() || e.fatal != nil {
		return
	}
	if !e.caughtUp || !e.chainCurrent() {
		e.waitLogLocked(&sc.loggedW, now, "Restarted signer record: waiting to hear from peers before the first vote")
		return
	}
	if sc.began.IsZero() {
		sc.began = now
		if e.cfg.DoppelgangerListen {
			sc.until = now.Add(e.listenDuration())
			e.log.Info("Doppelganger listen: watching the network for votes of this validator key before the first vote",
				zap.Duration("for", e.listenDuration()))
		}
	}
	if now.Before(sc.until) {
		return
	}
	if !e.cfg.Mutations.SkipStoredVotesFetch {
		if e.votesHeard == 0 {
			e.waitLogLocked(&sc.loggedW, now, "Restarted signer record: waiting for a peer to answer with the votes of this validator key it stores")
			return
		}
		if !e.allVotesAnsweredLocked() && now.Sub(sc.began) < 2*e.cfg.RequestTimeout {
			return
		}
	}
	e.startCheck = nil
	e.log.Info("Signer record checked against the network; voting from the next checkpoint",
		zap.Int("peers_answered", e.votesHeard), zap.Int("own_votes_stored_by_peers", e.learn.votes))
	e.updateHeadLocked(ctx)
}

func (e *Engine) allVotesAnsweredLocked() bool {
	for _, ps := range e.peers {
		if ps.status != nil && ps.status.Genesis == e.cfg.Genesis && !ps.votesAnswered {
			return false
		}
	}
	return true
}

func (e *Engine) waitLogLocked(last *time.Time, now time.Time, msg string) {
	if now.Sub(*last) < 10*time.Second {
		return
	}
	*last = now
	e.log.Info(msg, zap.Int("peers", len(e.peers)), zap.Bool("caught_up", e.caughtUp), zap.Bool("behind", e.syncing))
}

// --- Missing parents of gossip blocks ---------------------------------------

// parentFetch is a blocks-by-hash fetch of a gossip block's missing
// ancestry.
type parentFetch struct {
	want      checkpoint.Hash // the parent the orphans wait for
	depth     int
	tried     map[PeerID]bool
	collected []asf.Block // newest first
}

// fetchParentLocked keeps b until its parent arrives and asks from (the
// peer that sent it) for the parent by hash.
func (e *Engine) fetchParentLocked(from PeerID, b asf.Block) {
	parent := b.Header.ParentHash
	if e.orphanCount >= maxOrphans {
		e.orphans, e.orphanCount = nil, 0
	}
	if e.orphans == nil {
		e.orphans = make(map[checkpoint.Hash][]asf.Block)
	}
	waiting := e.orphans[parent]
	for _, o := range waiting {
		if o.Hash() == b.Hash() {
			return
		}
	}
	e.orphans[parent] = append(waiting, b)
	e.orphanCount++
	if len(waiting) > 0 {
		return // already asked for
	}
	e.requestParentLocked(from, &parentFetch{want: parent, tried: map[PeerID]bool{}}, parent)
}

func (e *Engine) requestParentLocked(p PeerID, pf *parentFetch, h checkpoint.Hash) {
	pf.tried[p] = true
	id := e.requestLocked(p, Request{Kind: ReqBlocksByHash, Hash: h, Count: BlocksByHashPerRequest})
	if e.parents == nil {
		e.parents = make(map[uint64]*parentFetch)
	}
	e.parents[id] = pf
}

func (e *Engine) onParentBlocksLocked(ctx context.Context, p PeerID, id uint64, req Request, resp Response) {
	pf := e.parents[id]
	delete(e.parents, id)
	ok := resp.Err == nil && !resp.Unavailable && len(resp.Blocks) > 0
	if ok {
		want := req.Hash
		for _, b := range resp.Blocks {
			if b.Hash() != want || b.Header.Number == 0 {
				ok = false
				break
			}
			want = b.Header.ParentHash
		}
	}
	if !ok {
		// A lost or useless answer: ask another peer at once.
		for _, q := range sortedKeys(e.peers) {
			if ps := e.peers[q]; !pf.tried[q] && ps.status != nil {
				e.requestParentLocked(q, pf, req.Hash)
				return
			}
		}
		return // the next catch-up round brings it
	}
	pf.collected = append(pf.collected, resp.Blocks...)
	oldest := pf.collected[len(pf.collected)-1]
	if !e.chain.HasBlock(oldest.Header.ParentHash) {
		if pf.depth++; pf.depth < maxParentDepth {
			e.requestParentLocked(p, pf, oldest.Header.ParentHash)
		}
		return
	}
	for i := len(pf.collected) - 1; i >= 0; i-- {
		b := pf.collected[i]
		if _, err := e.importLocked(ctx, b, "", true); err != nil && !errors.Is(err, asf.ErrEquivocation) {
			e.log.Debug("fetched parent does not import", zap.Uint64("number", b.Header.Number), zap.Error(err))
			return
		}
		e.releaseOrphansLocked(ctx, b.Hash())
	}
}

// releaseOrphansLocked imports the kept blocks that wait for parent (and
// theirs).
func (e *Engine) releaseOrphansLocked(ctx context.Context, parent checkpoint.Hash) {
	queue := []checkpoint.Hash{parent}
	for len(queue) > 0 && e.fatal == nil {
		h := queue[0]
		queue = queue[1:]
		kids := e.orphans[h]
		delete(e.orphans, h)
		e.orphanCount -= len(kids)
		for _, k := range kids {
			if _, err := e.importLocked(ctx, k, "", false); err == nil || errors.Is(err, asf.ErrEquivocation) {
				queue = append(queue, k.Hash())
			}
		}
	}
}

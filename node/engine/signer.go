package engine

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// signerInit is the first-use procedure of a fresh signer record:
//
//  1. catch up: at least one peer's status shows nothing ahead of us (or
//     the node is alone) and the chain contains the finalized checkpoint;
//  2. listen for doppelgangerIntervals checkpoint intervals of slot time:
//     votes signed with our key for checkpoints above the head we caught
//     up to mean another instance runs with the key now (the gadget
//     halts), older ones are history of an earlier life of the key;
//  3. meanwhile ask every peer for the votes of our key it stores
//     (ReqVotes: live gossip alone never shows votes of an earlier life);
//  4. initialise the record (synced) with source watermark at or above
//     the latest justified checkpoint and every source seen or fetched,
//     and target watermark at or above the head and every target seen or
//     fetched; when no peer answered, the source watermark is the head
//     checkpoint itself (above every earlier vote of the key): the first
//     vote can conflict with nothing the key signed before.
type signerInit struct {
	listening bool
	mark      uint64
	until     time.Time
	lastWait  time.Time
}

// listenDuration is how long a fresh record listens.
func (e *Engine) listenDuration() time.Duration {
	return doppelgangerIntervals * time.Duration(e.interval) * e.spec.SlotDuration()
}

func (e *Engine) tickSignerInitLocked(ctx context.Context, now time.Time) {
	in := e.init
	if in == nil || e.gadget == nil || e.gadget.Halted() || e.fatal != nil {
		return
	}
	if !in.listening {
		if !e.caughtUp || e.syncing || !e.chainCurrent() {
			if now.Sub(in.lastWait) >= 10*time.Second {
				in.lastWait = now
				e.log.Info("Fresh signer record: waiting to catch up with peers before listening for this validator key",
					zap.Int("peers", len(e.peers)), zap.Bool("syncing", e.syncing))
			}
			return
		}
		head, _ := e.headCheckpoint()
		in.listening = true
		in.mark = head.Number
		in.until = now.Add(e.listenDuration())
		if err := e.gadget.BeginSignerInit(ctx, in.mark); err != nil {
			e.fail(fmt.Errorf("finality gadget: %w", err))
			return
		}
		if e.cfg.NoListen {
			e.log.Info("Fresh signer record: no listen on the built-in dev chain (its key is public); voting from the next checkpoint",
				zap.Uint64("head_checkpoint", in.mark))
		} else {
			e.log.Info("Fresh signer record: listening for votes signed with this validator key before the first vote",
				zap.Uint64("head_checkpoint", in.mark), zap.Duration("for", e.listenDuration()))
			return
		}
	}
	if now.Before(in.until) && !e.cfg.Mutations.SkipDoppelgangerListen && !e.cfg.NoListen {
		return
	}
	seen := e.gadget.OwnSeen()
	head, _ := e.headCheckpoint()
	minTarget := max(in.mark, head.Number, seen.MaxTarget, e.learn.maxTarget)
	minSource := max(e.gadget.LatestJustified().Number, seen.MaxSource, e.learn.maxSource)
	if e.votesHeard == 0 && !e.cfg.Alone && !e.cfg.Mutations.SkipStoredVotesFetch {
		// No peer could show the votes of our key: the first vote's
		// source must be at or above the head we caught up to, which is
		// above every vote the key signed before (safe by construction;
		// the price: the first vote waits for the network to justify that
		// checkpoint without us).
		minSource = max(minSource, in.mark)
		e.log.Warn("Fresh signer record: no peer answered with the votes of this validator key it stores; the first vote waits for a source at or above the head checkpoint",
			zap.Uint64("head_checkpoint", in.mark))
	}
	if err := e.signer.Initialise(ctx, minSource, minTarget); err != nil {
		e.fail(fmt.Errorf("initialise the signer record: %w", err))
		return
	}
	if err := e.gadget.SignerInitialised(ctx); err != nil {
		e.fail(fmt.Errorf("finality gadget: %w", err))
		return
	}
	e.init = nil
	e.log.Info("Signer record initialised; voting from the next checkpoint",
		zap.Uint64("min_source", minSource), zap.Uint64("min_target", minTarget),
		zap.Int("own_votes_seen", seen.Votes), zap.Int("own_votes_stored_by_peers", e.learn.votes), zap.Int("peers_answered", e.votesHeard))
	if e.cfg.OnSignerInitialised != nil {
		e.cfg.OnSignerInitialised()
	}
	e.updateHeadLocked(ctx)
}

package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/internal/storagefault"
)

// maintenanceTick is how often the maintenance task asks the gadget whether
// a flush or prune is due (the gadget decides by FlushInterval and
// PruneInterval on its clock).
const maintenanceTick = 500 * time.Millisecond

// tickInterval drives the gadget's re-broadcast logic.
const tickInterval = time.Second

// statusInterval is how often a one-line status is logged.
const statusInterval = 5 * time.Second

// diskCheckInterval is how often the free-disk-space watchdog reads the
// base path's file system (statfs: microseconds).
const diskCheckInterval = 2 * time.Second

// every calls fn every interval until ctx is done; an error from fn (other
// than the context's own) ends the task, and so stops the node.
func every(ctx context.Context, interval time.Duration, what string, fn func(context.Context) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := fn(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("%s: %w", what, err)
			}
		}
	}
}

// runMaintenance is the essential checkpoint maintenance task: flush and
// prune. Any storage error ends it and so stops the node.
func (n *Node) runMaintenance(ctx context.Context) error {
	return every(ctx, maintenanceTick, "checkpoint maintenance", n.gadget.PerformPeriodicMaintenance)
}

// runDiskWatch is the free-disk-space watchdog (like geth's
// monitorFreeDiskSpace): it stops the node with an error wrapping
// ErrLowDiskSpace when the base path's file system has less than
// --min-free-disk free, before the databases run into a full disk; it warns
// once when free space falls below twice that. A failing statfs is logged
// once and retried.
func (n *Node) runDiskWatch(ctx context.Context) error {
	minFree := n.cfg.MinFreeDiskBytes()
	warned, statfsFailed := false, false
	t := time.NewTicker(n.diskEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		free, err := freeBytes(n.cfg.BasePath)
		if err != nil {
			if !statfsFailed {
				n.log.Warn("Cannot read the free disk space of the base path", zap.String("base_path", n.cfg.BasePath), zap.Error(err))
			}
			statfsFailed = true
			continue
		}
		statfsFailed = false
		switch {
		case free < minFree:
			return fmt.Errorf("%w: %s free on the file system of base path %s, below the minimum of %s (--min-free-disk %d)",
				ErrLowDiskSpace, storagefault.FormatBytes(free), n.cfg.BasePath, storagefault.FormatBytes(minFree), n.cfg.MinFreeDiskMiB)
		case free < 2*minFree && !warned:
			warned = true
			n.log.Warn("Free disk space is low: the node stops below --min-free-disk",
				zap.String("free", storagefault.FormatBytes(free)), zap.String("minimum", storagefault.FormatBytes(minFree)),
				zap.String("base_path", n.cfg.BasePath))
		case free >= 2*minFree:
			warned = false
		}
	}
}

// runTick drives the gadget's re-broadcast of a stalled round.
func (n *Node) runTick(ctx context.Context) error {
	return every(ctx, tickInterval, "finality tick", n.gadget.Tick)
}

// runProducer authors a block in each of our PPFA slots. A slot that is less
// than half over (at start-up, typically) is still used, so a restarted
// validator does not wait a whole slot for its first block.
func (n *Node) runProducer(ctx context.Context) error {
	var last uint64
	for {
		now := n.clock.Now()
		slot := asf.SlotAt(n.spec, now)
		if slot <= last || now.Sub(asf.SlotStart(n.spec, slot)) > n.spec.SlotDuration()/2 {
			slot = max(slot, last) + 1
		}
		last = slot
		wait := max(asf.SlotStart(n.spec, slot).Sub(now), 0)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		if n.syncing() {
			continue // never author on a stale head while catching up
		}
		n.importMu.Lock()
		b, res, err := n.producer.Produce(ctx, slot)
		n.importMu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, asf.ErrSlotNotReached) {
				continue // the wall clock lags the timer (clock adjustment): wait again
			}
			if errors.Is(err, asf.ErrInvalidBlock) {
				n.log.Warn("could not author block", zap.Uint64("slot", slot), zap.Error(err))
				continue
			}
			return fmt.Errorf("author block: %w", err)
		}
		if b == nil {
			continue
		}
		n.noteFirstBlock(b.Header.Number)
		if err := n.net.PublishBlock(ctx, asf.BlockToPB(*b)); err != nil && ctx.Err() == nil {
			n.log.Warn("publish block", zap.Uint64("number", b.Header.Number), zap.Error(err))
		}
		n.onCheckpoints(ctx, res.Checkpoints)
	}
}

func (n *Node) noteFirstBlock(number uint64) {
	n.timings.mu.Lock()
	defer n.timings.mu.Unlock()
	if !n.timings.firstBlock {
		n.timings.firstBlock = true
		n.log.Info("First new block since start", zap.Uint64("number", number),
			zap.Duration("since_start", time.Since(processStart)))
	}
}

// onCheckpoints hands checkpoint blocks that became part of the best chain to
// the gadget (which may vote on them).
func (n *Node) onCheckpoints(ctx context.Context, cps []checkpoint.Checkpoint) {
	if n.gadget == nil || n.syncing() {
		return
	}
	for _, cp := range cps {
		if err := n.gadget.OnCheckpointBlock(ctx, cp); err != nil {
			if ctx.Err() == nil {
				n.fail(fmt.Errorf("finality gadget: %w", err))
			}
			return
		}
	}
}

// runStatus logs a one-line status periodically.
func (n *Node) runStatus(ctx context.Context) error {
	t := time.NewTicker(statusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			n.importMu.Lock()
			best := n.chain.Best()
			n.importMu.Unlock()
			fields := []zap.Field{zap.Int("peers", len(n.net.Peers())), zap.Uint64("best", best.Number), zap.Stringer("best_hash", best.Hash())}
			if n.gadget != nil {
				fields = append(fields, zap.Uint64("justified", n.gadget.LatestJustified().Number),
					zap.Uint64("finalized", n.gadget.LatestFinalized().Number))
			}
			n.log.Info("Idle", fields...)
		}
	}
}

// finalityEvent is a justified or finalized checkpoint reported by the gadget.
type finalityEvent struct {
	finalized bool
	cp        checkpoint.Checkpoint
}

// eventQueue implements finality.Observer without ever blocking the gadget
// (which reports events while holding its lock): events are queued and
// handled by runEvents.
type eventQueue struct {
	mu     sync.Mutex
	queue  []finalityEvent
	signal chan struct{}
}

func newEventQueue() *eventQueue { return &eventQueue{signal: make(chan struct{}, 1)} }

func (q *eventQueue) push(e finalityEvent) {
	q.mu.Lock()
	q.queue = append(q.queue, e)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *eventQueue) drain() []finalityEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.queue
	q.queue = nil
	return out
}

// Justified implements finality.Observer.
func (q *eventQueue) Justified(cp checkpoint.Checkpoint) { q.push(finalityEvent{cp: cp}) }

// Finalized implements finality.Observer.
func (q *eventQueue) Finalized(cp checkpoint.Checkpoint) {
	q.push(finalityEvent{finalized: true, cp: cp})
}

// runEvents applies justified/finalized checkpoints to the chain: fork choice
// follows the latest justified checkpoint and finalized blocks are marked
// final.
func (n *Node) runEvents(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.events.signal:
		}
		for _, e := range n.events.drain() {
			if e.finalized {
				n.importMu.Lock()
				err := n.chain.SetFinalized(ctx, e.cp)
				n.importMu.Unlock()
				if err != nil {
					n.log.Warn("chain cannot mark finalized checkpoint yet", zap.Stringer("checkpoint", e.cp), zap.Error(err))
				}
				n.log.Info(fmt.Sprintf("FINALITY ADVANCED: checkpoint=%d", e.cp.Number),
					zap.Uint64("checkpoint", e.cp.Number), zap.Stringer("hash", e.cp.Hash),
					zap.Uint64("block", e.cp.Number*n.spec.CheckpointInterval))
				n.noteFirstFinalized(e.cp.Number)
				if n.status != nil {
					n.status.lastFinality.Store(time.Now().UnixNano())
				}
				continue
			}
			n.importMu.Lock()
			cps, err := n.chain.SetJustified(ctx, e.cp)
			n.importMu.Unlock()
			if err != nil {
				n.log.Debug("justified checkpoint not on a known chain yet", zap.Stringer("checkpoint", e.cp), zap.Error(err))
				continue
			}
			n.log.Info("Checkpoint justified", zap.Uint64("checkpoint", e.cp.Number), zap.Stringer("hash", e.cp.Hash))
			n.onCheckpoints(ctx, cps)
		}
	}
}

func (n *Node) noteFirstFinalized(number uint64) {
	n.timings.mu.Lock()
	defer n.timings.mu.Unlock()
	if !n.timings.firstFinalized {
		n.timings.firstFinalized = true
		n.log.Info("First new finalized checkpoint since start", zap.Uint64("checkpoint", number),
			zap.Duration("since_start", time.Since(processStart)))
	}
}

package node

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/internal/storagefault"
)

// maintenanceTick is how often the maintenance task asks the gadget whether
// a flush or prune is due (the gadget decides by FlushInterval and
// PruneInterval on its clock).
const maintenanceTick = 500 * time.Millisecond

// tickInterval drives the engine's periodic work (sync polls, request
// time-outs, signer first use, re-broadcast).
const tickInterval = 250 * time.Millisecond

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
	return every(ctx, maintenanceTick, "checkpoint maintenance", n.engine.Maintenance)
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

// runTick drives the engine's periodic work: status polls and request
// time-outs, the fresh signer record's listening phase and the gadget's
// re-broadcast of a stalled round.
func (n *Node) runTick(ctx context.Context) error {
	return every(ctx, tickInterval, "engine tick", n.engine.Tick)
}

// runProducer authors a block in each of our PPFA slots (the engine decides
// whether it may: not while catching up, not on a chain that lacks the
// finalized checkpoint). A slot that is less than half over (at start-up,
// typically) is still used, so a restarted validator does not wait a whole
// slot for its first block.
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
		b, err := n.engine.OnSlot(ctx, slot)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("author block: %w", err)
		}
		if b != nil {
			n.noteFirstBlock(b.Header.Number)
		}
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

// runStatus logs a one-line status periodically.
func (n *Node) runStatus(ctx context.Context) error {
	t := time.NewTicker(statusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			best := n.chain.Best()
			fields := []zap.Field{zap.Int("peers", len(n.net.Peers())), zap.Uint64("best", best.Number), zap.Stringer("best_hash", best.Hash())}
			if g := n.engine.Gadget(); g != nil {
				fields = append(fields, zap.Uint64("justified", g.LatestJustified().Number),
					zap.Uint64("finalized", g.LatestFinalized().Number))
				if g.Halted() {
					fields = append(fields, zap.Bool("halted", true))
				}
			}
			if n.engine.Syncing() {
				fields = append(fields, zap.Bool("syncing", true))
			}
			if n.engine.SignerPending() {
				fields = append(fields, zap.Bool("signer_initialising", true))
			}
			n.log.Info("Idle", fields...)
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

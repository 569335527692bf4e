package finality

import (
	"context"
	"fmt"

	"go.uber.org/zap"
)

// Tick re-broadcasts the own latest vote and the latest certificate when
// finality has not advanced for RebroadcastAfter (and at most once per
// RebroadcastAfter), so peers that missed them catch up. Broadcast failures
// are logged, not returned.
func (g *CheckpointFinality) Tick(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := g.clock.Now()
	g.mu.Lock()
	if now.Sub(g.lastProgress) < g.rebroadcastAfter || now.Sub(g.lastRebroadcast) < g.rebroadcastAfter {
		g.mu.Unlock()
		return nil
	}
	g.lastRebroadcast = now
	var sent []zap.Field
	if g.lastOwn != nil && !g.halted.Load() && g.lastOwn.Target.Number > g.latestF.Number {
		g.enqueue(event{kind: evVote, vote: *g.lastOwn})
		sent = append(sent, cpField("vote_target", g.lastOwn.Target))
	}
	if c, ok := g.certs[g.latestJ.Number]; ok && g.latestJ.Number > 0 {
		g.enqueue(event{kind: evCertificate, cert: c})
		sent = append(sent, cpField("certificate_target", c.Target))
	}
	stalled := now.Sub(g.lastProgress)
	deliver := g.needsDeliveryLocked()
	g.mu.Unlock()
	if len(sent) > 0 {
		g.log.Info("Finality stalled: re-broadcasting latest vote and certificate", append(sent, zap.Duration("since_last_finality", stalled))...)
	}
	if deliver {
		g.deliver(ctx)
	}
	return nil
}

// PerformPeriodicMaintenance flushes the database when FlushInterval elapsed
// since the last flush and prunes it to RetentionCheckpoints when
// PruneInterval elapsed since the last prune (both by the injected clock),
// and drops in-memory state below the finalized checkpoint. Storage errors
// are returned; the node stops on them.
func (g *CheckpointFinality) PerformPeriodicMaintenance(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.maintMu.Lock()
	defer g.maintMu.Unlock()
	g.mu.Lock()
	g.pruneMemoryLocked()
	store, persisting := g.store, g.persisting()
	g.mu.Unlock()
	if !persisting {
		return nil
	}
	now := g.clock.Now()
	if now.Sub(g.lastFlush) >= g.persistCfg.FlushInterval {
		g.log.Info("Auto-flushing checkpoint database", zap.Duration("interval", g.persistCfg.FlushInterval))
		if err := store.Flush(ctx); err != nil {
			return fmt.Errorf("flush checkpoint database: %w", err)
		}
		g.lastFlush = now
	}
	if now.Sub(g.lastPrune) >= g.persistCfg.PruneInterval {
		g.log.Info("Auto-pruning old checkpoint data", zap.Uint64("retention_checkpoints", g.persistCfg.RetentionCheckpoints))
		n, err := store.Prune(ctx, g.persistCfg.RetentionCheckpoints)
		if err != nil {
			return fmt.Errorf("prune checkpoint database: %w", err)
		}
		g.lastPrune = now
		if n > 0 {
			g.log.Info(fmt.Sprintf("Pruned %d old checkpoints", n), zap.Int("pruned", n), zap.Uint64("retention_checkpoints", g.persistCfg.RetentionCheckpoints))
		}
	}
	return nil
}

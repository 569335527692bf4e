package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/flarechain/flare-node/checkpointdb"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/internal/storagefault"
)

// checkHWMWritable refuses a start whose checkpoint high-water mark
// (checkpointdb.HWMPath, next to the database directory) could not be
// written: the file itself where it exists (the database rewrites it in
// place after every synced write, the first one at the first vote) and its
// directory (a temporary file is created and renamed there when the file is
// created or grows). Without the check the node would start and stop with
// exit 1 at its first vote.
func checkHWMWritable(hwm string) error {
	for _, check := range []func() error{
		func() error { return storagefault.CheckWritable(filepath.Dir(hwm)) },
		func() error { return storagefault.CheckWritableFile(hwm) },
	} {
		if err := check(); err != nil {
			return fmt.Errorf("%w: cannot write the checkpoint database's high-water mark %s (rewritten after every vote and finalized checkpoint): %w", ErrStartup, hwm, err)
		}
	}
	return nil
}

// ErrFinalizedChainLost refuses a validator start whose chain database lacks the
// finalized checkpoint the checkpoint high-water mark recorded, while the
// checkpoint database cannot restore it either (both databases were lost or
// replaced, the mark survived) and no bootnode is configured: the node would
// otherwise restore finality 0 and build a new chain from genesis, a fork of
// its own finalized checkpoint.
var ErrFinalizedChainLost = errors.New("the chain database lacks the finalized checkpoint of the high-water mark")

// lostChainError is the one-line refusal of ErrFinalizedChainLost.
func (n *Node) lostChainError(mark checkpointdb.HighWaterMark) error {
	f := mark.Finalized
	signed := ""
	var top uint64
	for _, w := range mark.Signers {
		top = max(top, w.Target)
	}
	if top > 0 {
		signed = fmt.Sprintf(" and signed targets up to %d", top)
	}
	return fmt.Errorf("%w: %w: the high-water mark %s records finalized checkpoint %d (block #%d)%s, but neither the chain database at %s nor the checkpoint database at %s holds it (both were lost or replaced) and no bootnode is configured: refusing to start, because the node would build a new chain from genesis that forks its own finalized checkpoint; start with --bootnodes so it syncs the missing chain from peers before it authors, or restore a chain database that holds block #%d (the signer watermarks stay in the high-water mark; 'flare-node signer export'/'signer import' move them, they do not restore the chain)",
		ErrStartup, ErrFinalizedChainLost, mark.Path, f.Number, f.Number*n.spec.CheckpointInterval, signed,
		n.cfg.ChainDBPath(), n.cfg.CheckpointDBPath(), f.Number*n.spec.CheckpointInterval)
}

// refuseLostChainEarly refuses, before anything is created, a start on a
// base path whose chain and checkpoint databases are both gone while the
// high-water mark next to them recorded a finalized checkpoint, when no
// bootnode is configured (ErrFinalizedChainLost). A mark that cannot be
// read is left to the checkpoint database's open, which refuses it.
func (n *Node) refuseLostChainEarly(earlier earlierRun) error {
	cfg := n.cfg
	if !cfg.EnableASF || !cfg.Persistence.Enabled || !earlier.hwm || earlier.chainDB || earlier.checkpointDB || len(cfg.P2P.Bootnodes) > 0 {
		return nil
	}
	mark, err := checkpointdb.ReadHighWaterMark(cfg.CheckpointDBPath())
	if err != nil || mark.Finalized == nil || mark.Finalized.Number == 0 {
		return nil
	}
	return n.lostChainError(mark)
}

// checkLostChain runs once both databases are open, before the engine
// restores: when the high-water mark recorded a finalized checkpoint that
// neither database holds (the checkpoint database restores a lower one and
// the chain lacks its block), the node must not author a new chain from
// what it has. Without bootnodes it refuses (ErrFinalizedChainLost, also
// when an earlier start already created the directories); with bootnodes it
// warns and authors no block until the chain, synced from peers, holds that
// checkpoint (awaitMark, see runProducerAfterMark). The signer watermarks
// in the mark keep the key from signing at or below its last target
// meanwhile.
func (n *Node) checkLostChain(ctx context.Context) error {
	if n.cpdb == nil {
		return nil
	}
	mark := n.cpdb.HighWaterMark()
	f := mark.Finalized
	if f == nil || f.Number == 0 || n.chainHolds(*f) {
		return nil
	}
	_, fin, err := n.cpdb.Pointers(ctx)
	if err != nil {
		return fmt.Errorf("%w: read the checkpoint database's finalized checkpoint: %w", ErrStartup, err)
	}
	if fin != nil && fin.Number >= f.Number {
		return nil // the checkpoint database holds it: the engine reconciles
	}
	if len(n.cfg.P2P.Bootnodes) == 0 {
		return n.lostChainError(mark)
	}
	n.awaitMark = checkpointPtr(*f)
	n.log.Warn("The chain and checkpoint databases lack the finalized checkpoint of the high-water mark: no block is authored until the chain synced from the bootnodes holds it",
		zap.String("high_water_mark", mark.Path), zap.Uint64("finalized", f.Number),
		zap.Uint64("block", f.Number*n.spec.CheckpointInterval), zap.Uint64("best", n.chain.Best().Number))
	return nil
}

func checkpointPtr(c checkpoint.Checkpoint) *checkpoint.Checkpoint { return &c }

// chainHolds reports whether the chain's canonical block at the checkpoint
// height is the checkpoint's block.
func (n *Node) chainHolds(cp checkpoint.Checkpoint) bool {
	h, ok := n.chain.CanonicalHash(cp.Number * n.spec.CheckpointInterval)
	return ok && h == cp.Hash
}

// runProducerAfterMark runs the block producer, once the chain holds the
// high-water mark's finalized checkpoint when checkLostChain found it
// missing (polled once a slot).
func (n *Node) runProducerAfterMark(ctx context.Context) error {
	if cp := n.awaitMark; cp != nil {
		t := time.NewTicker(n.spec.SlotDuration())
		for !n.chainHolds(*cp) {
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		t.Stop()
		n.log.Info("The chain holds the high-water mark's finalized checkpoint again: block production resumes",
			zap.Uint64("finalized", cp.Number), zap.Uint64("best", n.chain.Best().Number))
	}
	return n.runProducer(ctx)
}

package asf

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// MaxTips bounds the chain tips (blocks without children) the Chain keeps,
// so that fork choice, finalization and pruning, which visit every tip, cost
// the same however many side branches hostile or stale blocks start.
const MaxTips = 64

// ErrTipLimit is returned by Import for a block that would start a new
// branch while MaxTips tips exist and it ranks below every tip that could
// make room (see Chain.Import). The block is not stored. It does not wrap
// ErrInvalidBlock: the block may be valid and its branch may grow; a child
// of it arriving later triggers a sync (ErrUnknownParent), and sync
// (ImportSynced) never refuses a block for this reason.
var ErrTipLimit = errors.New("too many chain tips: the block starts a branch that ranks below all of them")

// TipStats describes the chain tips.
type TipStats struct {
	// Count is the number of tips now.
	Count int
	// Evicted is the number of tips evicted to stay within MaxTips since the
	// Chain was opened; Refused the number of blocks refused with
	// ErrTipLimit.
	Evicted uint64
	Refused uint64
}

// Stats are the counters of a Chain since it was opened, for metrics.
type Stats struct {
	Equivocations EquivocationStats
	Tips          TipStats
}

// Stats returns the chain's counters.
func (c *Chain) Stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return Stats{
		Equivocations: c.equiv,
		Tips:          TipStats{Count: len(c.tips), Evicted: c.tipsEvicted, Refused: c.tipRefused},
	}
}

// rankedTip is a tip and whether its chain contains the latest justified
// checkpoint block.
type rankedTip struct {
	tip       checkpoint.Tip
	justified bool
}

// lessWorth orders tips from least to most worth keeping: a tip whose chain
// does not contain the latest justified checkpoint block (fork choice cannot
// pick it while that checkpoint stands) ranks below every tip whose chain
// does; among either kind the fork-choice order decides (a lower block
// number, then a later slot, then a higher hash ranks lower).
func lessWorth(a, b rankedTip) int {
	switch {
	case a.justified != b.justified:
		if !a.justified {
			return -1
		}
		return 1
	case a.tip == b.tip:
		return 0
	case b.tip.Beats(a.tip):
		return -1
	default:
		return 1
	}
}

// makeRoomForTip decides, when newTip starts a new branch, which tips to
// evict so that at most MaxTips remain. The eviction rule:
//
//   - the best tip (best, after this import) is never evicted;
//   - a block imported by sync (protectNew) is never the victim either: it
//     is on a peer's best chain;
//   - the victims are the tips worth least by tipRank: first the tips whose
//     chain does not contain the latest justified checkpoint, the lowest and
//     latest-slotted first, then the lowest of the others.
//
// If newTip itself is among the victims, refuse is true and nothing is
// evicted: the block is not imported (ErrTipLimit). Otherwise the victims'
// branches are deleted from batch (evictBranch) and their hashes returned.
// Reads go through batch, which holds the new block and canonical index.
// c.mu is held.
func (c *Chain) makeRoomForTip(batch *pebble.Batch, newTip, best checkpoint.Tip, protectNew bool) (victims []checkpoint.Tip, refuse bool, err error) {
	excess := len(c.tips) + 1 - MaxTips
	if excess <= 0 {
		return nil, false, nil
	}
	jh, _ := c.height(c.justified.Number)
	candidates := make([]rankedTip, 0, len(c.tips)+1)
	for _, t := range append(c.tipList(), newTip) {
		if t.Hash == best.Hash || (protectNew && t.Hash == newTip.Hash) {
			continue
		}
		anc, ok, err := c.ancestorAt(batch, t.Hash, jh)
		if err != nil {
			return nil, false, err
		}
		candidates = append(candidates, rankedTip{tip: t, justified: ok && anc == c.justified.Hash})
	}
	slices.SortFunc(candidates, lessWorth)
	for _, r := range candidates[:min(excess, len(candidates))] {
		if r.tip.Hash == newTip.Hash {
			return nil, true, nil
		}
		victims = append(victims, r.tip)
	}
	return victims, false, nil
}

// evictBranches deletes (in batch) the tips victims and every block that
// only they descend from: from each victim back to the first block that is
// canonical or an ancestor of a tip that stays (keep). It returns the
// deleted block hashes. c.mu is held.
func (c *Chain) evictBranches(batch *pebble.Batch, victims []checkpoint.Tip, keep []checkpoint.Tip) ([]checkpoint.Hash, error) {
	// The non-canonical blocks of each victim's branch, tip first.
	doomed := make(map[checkpoint.Hash]bool)
	var order []checkpoint.Hash
	for _, v := range victims {
		if err := batch.Delete(hashKey(tagTip, v.Hash), nil); err != nil {
			return nil, err
		}
		err := c.walkSideBranch(batch, v.Hash, func(h checkpoint.Hash) bool {
			if doomed[h] {
				return false // shared with another victim, walked already
			}
			doomed[h] = true
			order = append(order, h)
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	// Spare what a remaining tip still descends from. A tip has no
	// children, so when only the victims themselves are doomed (one-block
	// branches, the common case of a flood) there is nothing to spare.
	if len(order) == len(victims) {
		keep = nil
	}
	for _, k := range keep {
		err := c.walkSideBranch(batch, k.Hash, func(h checkpoint.Hash) bool {
			if doomed[h] {
				delete(doomed, h)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	var deleted []checkpoint.Hash
	for _, h := range order {
		if !doomed[h] {
			continue
		}
		for _, tag := range []byte{tagHeader, tagBlock} {
			if err := batch.Delete(hashKey(tag, h), nil); err != nil {
				return nil, err
			}
		}
		if err := c.exec.Discard(batch, h); err != nil {
			return nil, fmt.Errorf("discard the state of evicted block %s: %w", h.Short(), err)
		}
		deleted = append(deleted, h)
	}
	return deleted, nil
}

// walkSideBranch calls visit for h and each ancestor of h, down to (not
// including) the first block on the best chain (canonical in r), while visit
// returns true.
func (c *Chain) walkSideBranch(r pebble.Reader, h checkpoint.Hash, visit func(checkpoint.Hash) bool) error {
	for cur := h; ; {
		hdr, ok, err := c.header(r, cur)
		if err != nil {
			return err
		}
		if !ok {
			return c.corrupted("block %s below tip %s missing", cur.Short(), h.Short())
		}
		canon, ok, err := c.canonical(r, hdr.Number)
		if err != nil {
			return err
		}
		if ok && canon == cur {
			return nil
		}
		if !visit(cur) {
			return nil
		}
		cur = hdr.ParentHash
	}
}

// DiskUsageBytes is Pebble's estimate of the chain database's files
// (sstables, WAL, MANIFEST); 0 once closed. Cheap: no I/O.
func (c *Chain) DiskUsageBytes() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return 0
	}
	return c.db.Metrics().DiskSpaceUsage()
}

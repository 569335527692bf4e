package checkpoint

// Tip is a chain head candidate for fork choice.
type Tip struct {
	Hash   Hash
	Number uint64 // block number
	Slot   uint64 // slot of the tip block
}

// Beats reports whether t ranks above o in fork choice among tips that both
// contain the latest justified checkpoint block: the higher block number
// wins; at equal numbers the lower slot (the block that could be seen
// earlier) wins; at equal slots the lower hash. Two different tips with equal
// number and slot are two blocks of one authority for one slot, which the
// chain imports at most once through gossip (one block per authority per
// slot), so the hash comparison only decides between an equivocation and
// the block it equivocates against.
func (t Tip) Beats(o Tip) bool {
	if t.Number != o.Number {
		return t.Number > o.Number
	}
	if t.Slot != o.Slot {
		return t.Slot < o.Slot
	}
	return t.Hash.Less(o.Hash)
}

// BestChain applies the fork-choice rule the gadget expects from the chain:
// among tips whose chain contains the latest justified checkpoint block
// (contains(tip, justifiedBlock) reports that), pick the one that beats all
// others (Tip.Beats: longest, then lowest slot, then lowest hash). It returns
// false when no tip qualifies.
func BestChain(tips []Tip, justifiedBlock Hash, contains func(tip Tip, block Hash) bool) (Tip, bool) {
	var best Tip
	found := false
	for _, t := range tips {
		if !contains(t, justifiedBlock) {
			continue
		}
		if !found || t.Beats(best) {
			best, found = t, true
		}
	}
	return best, found
}

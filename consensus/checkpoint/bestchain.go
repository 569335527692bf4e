package checkpoint

// Tip is a chain head candidate for fork choice.
type Tip struct {
	Hash   Hash
	Number uint64 // block number
}

// BestChain applies the fork-choice rule the gadget expects from the chain:
// among tips whose chain contains the latest justified checkpoint block
// (contains(tip, justifiedBlock) reports that), pick the longest; ties are
// broken by the lowest hash. It returns false when no tip qualifies.
func BestChain(tips []Tip, justifiedBlock Hash, contains func(tip Tip, block Hash) bool) (Tip, bool) {
	var best Tip
	found := false
	for _, t := range tips {
		if !contains(t, justifiedBlock) {
			continue
		}
		if !found || t.Number > best.Number || (t.Number == best.Number && t.Hash.Less(best.Hash)) {
			best, found = t, true
		}
	}
	return best, found
}

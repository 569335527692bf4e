package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Evidence page sizes.
const (
	DefaultEvidenceLimit = 100
	MaxEvidenceLimit     = asf.MaxEvidenceList
)

// EvidencePage is the JSON document of GET /evidence.
type EvidencePage struct {
	// CheckpointEvidence is the retained evidence of the checkpoint
	// database with checkpoint >= from_checkpoint, ascending: double and
	// surround votes (first, second) and conflicting finality (certificate).
	CheckpointEvidence []Evidence `json:"checkpoint_evidence"`
	// NextFromCheckpoint is the from_checkpoint of the next page (null: this
	// page is the last).
	NextFromCheckpoint *uint64 `json:"next_from_checkpoint"`
	// BlockEquivocations are the proposer equivocations the chain database
	// stored with slot >= from_slot, ascending (never pruned).
	BlockEquivocations []BlockEquivocation `json:"block_equivocations"`
	// NextFromSlot is the from_slot of the next page (null: last page).
	NextFromSlot *uint64 `json:"next_from_slot"`
	// Halts are the active safety alarms.
	Halts []Halt `json:"halts"`
}

// cut returns how many of items (sorted by key) a page of limit holds
// without splitting one key's group, and the key that starts the next
// page. A single group larger than limit is returned whole.
func cut[T any](items []T, limit int, key func(T) uint64) (int, *uint64) {
	if len(items) <= limit {
		return len(items), nil
	}
	k := key(items[limit])
	n := limit
	for n > 0 && key(items[n-1]) == k {
		n--
	}
	if n == 0 {
		for n < len(items) && key(items[n]) == k {
			n++
		}
		if n == len(items) {
			return n, nil
		}
	}
	next := key(items[n])
	return n, &next
}

func (s *Server) serveEvidence(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := DefaultEvidenceLimit
	var fromCP, fromSlot uint64
	for k := range q {
		v := q.Get(k)
		var err error
		switch k {
		case "limit":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 16)
			if err == nil && (n < 1 || n > MaxEvidenceLimit) {
				err = fmt.Errorf("out of range")
			}
			limit = int(n)
		case "from_checkpoint":
			fromCP, err = strconv.ParseUint(v, 10, 64)
		case "from_slot":
			fromSlot, err = strconv.ParseUint(v, 10, 64)
		default:
			s.writeError(w, r, badRequest("unknown query parameter %q (limit, from_checkpoint, from_slot)", k))
			return
		}
		if err != nil {
			s.writeError(w, r, badRequest("%s %q: want an integer (limit: 1 to %d)", k, v, MaxEvidenceLimit))
			return
		}
	}
	page := EvidencePage{CheckpointEvidence: []Evidence{}, BlockEquivocations: []BlockEquivocation{}, Halts: []Halt{}}
	if db := s.src.DB; db != nil {
		all, err := db.Evidence(r.Context())
		if err != nil {
			s.writeError(w, r, internal(fmt.Errorf("checkpoint evidence: %w", err)))
			return
		}
		var sel []checkpoint.Evidence
		for _, e := range all {
			if e.Checkpoint >= fromCP {
				sel = append(sel, e)
			}
		}
		n, next := cut(sel, limit, func(e checkpoint.Evidence) uint64 { return e.Checkpoint })
		for _, e := range sel[:n] {
			page.CheckpointEvidence = append(page.CheckpointEvidence, evidenceJSON(e))
		}
		page.NextFromCheckpoint = next
	}
	blocks, err := s.src.Chain.BlockEvidence(fromSlot, limit+1)
	if err == nil && len(blocks) == limit+1 && blocks[0].Slot == blocks[limit].Slot {
		// One slot holds more than limit records: fetch it whole.
		blocks, err = s.src.Chain.BlockEvidence(fromSlot, MaxEvidenceLimit)
	}
	if err != nil {
		s.writeError(w, r, internal(fmt.Errorf("block evidence: %w", err)))
		return
	}
	n, next := cut(blocks, limit, func(e asf.BlockEquivocation) uint64 { return e.Slot })
	for _, e := range blocks[:n] {
		page.BlockEquivocations = append(page.BlockEquivocations, BlockEquivocation{Proposer: uint32(e.Proposer), Slot: e.Slot,
			First: headerJSON(e.First), Second: headerJSON(e.Second)})
	}
	page.NextFromSlot = next
	if f := s.src.Finality; f != nil {
		page.Halts = haltsJSON(f.Halts())
	}
	writeJSON(w, http.StatusOK, page)
}

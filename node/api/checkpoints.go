package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// MaxCheckpointPage bounds the checkpoints one GET /checkpoints returns.
const MaxCheckpointPage = 100

// Checkpoint sources.
const (
	// FromMemory: the finality gadget's memory (numbers at or above the
	// finalized checkpoint).
	FromMemory = "memory"
	// FromDatabase: the checkpoint database (finalized numbers below the
	// finalized checkpoint, within the retention window).
	FromDatabase = "database"
)

// Checkpoint is the JSON document of GET /checkpoints/{n}.
type Checkpoint struct {
	Number uint64 `json:"number"`
	// Block is the checkpoint block's number (Number * checkpoint_interval).
	Block uint64 `json:"block"`
	// Hash is the checkpoint block's hash the level refers to.
	Hash string `json:"hash"`
	// Level is the checkpoint's place on the ascending scale
	// (checkpoint.Level.String).
	Level string `json:"level"`
	// Weight is the number of distinct validators counted for the link
	// that gives the level; Quorum is floor(2n/3)+1.
	Weight int `json:"weight"`
	Quorum int `json:"quorum"`
	// Signers are the validators behind the level: the certificate's
	// signers when there is one, else those whose votes were counted.
	Signers []uint32 `json:"signers"`
	// Certificate is the certificate whose target is this checkpoint (null
	// when none is known).
	Certificate *Certificate `json:"certificate"`
	// Source is memory or database.
	Source string `json:"source"`
}

// CheckpointPage is the JSON document of GET /checkpoints.
type CheckpointPage struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	// Checkpoints are the known checkpoints in [From, To], ascending;
	// unknown and pruned numbers are left out.
	Checkpoints []Checkpoint `json:"checkpoints"`
	// Head is the best chain's latest checkpoint number.
	Head uint64 `json:"head"`
	// OldestRetained is the lowest checkpoint number the checkpoint
	// database keeps (0 without one).
	OldestRetained uint64 `json:"oldest_retained"`
}

func parseNumber(name, v string) (uint64, *apiError) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badRequest("%s %q: want a checkpoint number (a non-negative decimal integer)", name, v)
	}
	return n, nil
}

func (s *Server) serveCheckpoint(w http.ResponseWriter, r *http.Request) {
	n, perr := parseNumber("checkpoint", r.PathValue("n"))
	if perr != nil {
		s.writeError(w, r, perr)
		return
	}
	if s.src.Finality == nil {
		s.writeError(w, r, errNoFinality())
		return
	}
	cp, err := s.checkpoint(r.Context(), n)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

func (s *Server) serveCheckpoints(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "from" && k != "to" {
			s.writeError(w, r, badRequest("unknown query parameter %q (from, to)", k))
			return
		}
	}
	if s.src.Finality == nil {
		s.writeError(w, r, errNoFinality())
		return
	}
	head := s.src.Chain.Best().Number / s.info.CheckpointInterval
	head = max(head, s.src.Finality.LatestJustified().Number)
	var from, to uint64
	var perr *apiError
	hasFrom, hasTo := q.Has("from"), q.Has("to")
	if hasFrom {
		if from, perr = parseNumber("from", q.Get("from")); perr != nil {
			s.writeError(w, r, perr)
			return
		}
	}
	if hasTo {
		if to, perr = parseNumber("to", q.Get("to")); perr != nil {
			s.writeError(w, r, perr)
			return
		}
	}
	switch {
	case hasFrom && !hasTo:
		to = from + min(MaxCheckpointPage-1, ^uint64(0)-from)
	case !hasFrom:
		if !hasTo {
			to = head
		}
		from = to - min(to, MaxCheckpointPage-1)
	}
	switch {
	case from > to:
		s.writeError(w, r, badRequest("from %d is above to %d", from, to))
		return
	case to-from >= MaxCheckpointPage:
		s.writeError(w, r, badRequest("from %d to %d spans %d checkpoints; at most %d per request", from, to, to-from+1, MaxCheckpointPage))
		return
	}
	page := CheckpointPage{From: from, To: to, Checkpoints: []Checkpoint{}, Head: head}
	if s.src.DB != nil {
		page.OldestRetained = s.src.DB.OldestRetained()
	}
	for n := from; ; n++ {
		cp, err := s.checkpoint(r.Context(), n)
		switch {
		case err == nil:
			page.Checkpoints = append(page.Checkpoints, cp)
		case err.status != http.StatusNotFound:
			s.writeError(w, r, err)
			return
		}
		if n == to {
			break
		}
	}
	writeJSON(w, http.StatusOK, page)
}

// checkpoint returns what is known about checkpoint n: from the gadget's
// memory at or above the finalized checkpoint, from the checkpoint database
// below it. Unknown and pruned numbers are 404 (code unknown or pruned).
func (s *Server) checkpoint(ctx context.Context, n uint64) (Checkpoint, *apiError) {
	f := s.src.Finality
	fin := f.LatestFinalized()
	out := Checkpoint{Number: n, Block: n * s.info.CheckpointInterval, Quorum: s.info.Quorum(), Signers: []uint32{}}
	var hash checkpoint.Hash
	var cert checkpoint.Certificate
	var hasCert bool
	switch db := s.src.DB; {
	case n >= fin.Number || db == nil:
		st := f.Status(n)
		if st.Level == checkpoint.LevelNone {
			best := s.src.Chain.Best().Number
			return out, notFound(CodeUnknown, "checkpoint %d is unknown: no vote, certificate or finality seen for it (the best block is #%d, checkpoint %d; finalized checkpoint %d)",
				n, best, best/s.info.CheckpointInterval, fin.Number)
		}
		out.Source, out.Level, out.Weight, hash = FromMemory, st.Level.String(), st.Weight, st.Hash
		cert, hasCert = f.Certificate(n)
		out.Signers = validators(f.Signers(n))
	default:
		if oldest := db.OldestRetained(); n > 0 && n < oldest {
			return out, notFound(CodePruned, "checkpoint %d was pruned: the checkpoint database keeps checkpoints from %d on (--checkpoint-retention); it is final (finalized checkpoint %d)",
				n, oldest, fin.Number)
		}
		st, err := db.Status(ctx, n, out.Quorum)
		if err != nil {
			return out, internal(fmt.Errorf("checkpoint %d: %w", n, err))
		}
		if cert, hasCert, err = db.Certificate(ctx, n); err != nil {
			return out, internal(fmt.Errorf("checkpoint %d certificate: %w", n, err))
		}
		votes, err := db.Votes(ctx, n)
		if err != nil {
			return out, internal(fmt.Errorf("checkpoint %d votes: %w", n, err))
		}
		out.Source, out.Level, out.Weight, hash = FromDatabase, st.Level.String(), st.Weight, st.Hash
		if hasCert && cert.Target.Hash == hash {
			for _, sig := range cert.Signatures {
				out.Signers = append(out.Signers, uint32(sig.Validator))
			}
		} else {
			for _, v := range votes {
				if v.Target.Hash == hash {
					out.Signers = append(out.Signers, uint32(v.Validator))
				}
			}
		}
		out.Signers = validators(toIndices(out.Signers))
	}
	if hash.IsZero() && n <= fin.Number {
		// A finalized number whose hash the gadget or the database does not
		// keep (finality jumped over it): the chain's canonical block is it.
		if h, ok := s.src.Chain.CanonicalHash(out.Block); ok {
			hash = h
		}
	}
	if hash.IsZero() {
		return out, notFound(CodeUnknown, "checkpoint %d is unknown: its block hash is not known (finalized checkpoint %d)", n, fin.Number)
	}
	out.Hash = hash.String()
	if hasCert && cert.Target.Hash == hash {
		out.Certificate = certificateJSON(cert)
	}
	out.Weight = max(out.Weight, len(out.Signers))
	return out, nil
}

func toIndices(vs []uint32) []checkpoint.ValidatorIndex {
	out := make([]checkpoint.ValidatorIndex, len(vs))
	for i, v := range vs {
		out[i] = checkpoint.ValidatorIndex(v)
	}
	return out
}

package api

import (
	"net/http"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// FinalityLatest is the JSON document of GET /finality/latest: the
// finalized and the latest justified checkpoint with the certificates that
// prove them (what a light client needs to check finality itself).
type FinalityLatest struct {
	Finalized BlockPoint `json:"finalized"`
	Justified BlockPoint `json:"justified"`
	// FinalizingCertificate is the certificate that finalized Finalized: the
	// link Finalized -> Finalized+1 (null at genesis, or after a restart
	// that restored a bare finalized pointer).
	FinalizingCertificate *Certificate `json:"finalizing_certificate"`
	// JustifyingCertificate is the certificate whose target is Justified
	// (null at genesis or when not known).
	JustifyingCertificate *Certificate `json:"justifying_certificate"`
}

// BlockPoint is a checkpoint with its block number.
type BlockPoint struct {
	Number uint64 `json:"number"`
	Hash   string `json:"hash"`
	Block  uint64 `json:"block"`
}

func (s *Server) serveFinalityLatest(w http.ResponseWriter, r *http.Request) {
	f := s.src.Finality
	if f == nil {
		s.writeError(w, r, errNoFinality())
		return
	}
	j, fin := f.LatestJustified(), f.LatestFinalized()
	bp := func(c checkpoint.Checkpoint) BlockPoint {
		return BlockPoint{Number: c.Number, Hash: c.Hash.String(), Block: c.Number * s.info.CheckpointInterval}
	}
	out := FinalityLatest{Finalized: bp(fin), Justified: bp(j)}
	p, ok := f.FinalityProof()
	if ok && p.Finalizing.Source == fin {
		out.FinalizingCertificate = certificateJSON(p.Finalizing)
		if p.Finalizing.Target == j {
			out.JustifyingCertificate = out.FinalizingCertificate
		}
	}
	if out.JustifyingCertificate == nil && j.Number > 0 {
		if c, ok := f.Certificate(j.Number); ok && c.Target == j {
			out.JustifyingCertificate = certificateJSON(c)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

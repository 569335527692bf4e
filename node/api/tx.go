package api

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/state"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/txpool"
)

// Pool is the transaction pool as the API uses it (txpool.Pool).
type Pool interface {
	Add(raw []byte) (tx.Hash, txpool.Status, error)
	Get(h tx.Hash) (*tx.Tx, txpool.Status, bool)
	// NextNonce is the next nonce of a sender with ready pooled
	// transactions (txpool.Pool.NextNonce).
	NextNonce(a tx.Address) (uint64, bool)
}

// TxIndex finds the blocks holding a transaction (state.DB).
type TxIndex interface {
	TxLocations(h tx.Hash) ([]state.TxLocation, error)
}

// MaxTxBody bounds the body of POST /tx.
const MaxTxBody = 4 << 10

// Transaction statuses of POST /tx and GET /tx/{hash}: the ascending scale
// of a transaction.
const (
	// TxValidated: admitted to the pool, waiting for a block.
	TxValidated = "validated"
	// TxIncluded: in a block of the best chain above the justified
	// checkpoint.
	TxIncluded = "included"
	// TxJustified and TxFinalized: its block is at or below the justified
	// / finalized checkpoint's block.
	TxJustified = "justified"
	TxFinalized = "finalized"
	// TxRefused: POST /tx did not admit it (reason says why).
	TxRefused = "refused"
)

// TxSubmit is the JSON request body of POST /tx (the other accepted body
// is the raw encoding with Content-Type application/octet-stream).
type TxSubmit struct {
	// Tx is the canonical encoding (docs/wire.md, "Transactions") as 0x-hex.
	Tx string `json:"tx"`
}

// TxStatus is the JSON document of POST /tx and GET /tx/{hash}.
type TxStatus struct {
	Hash   string `json:"hash,omitempty"` // absent only for bytes that are no transaction
	Status string `json:"status"`
	// Reason is the refusal reason (txpool vocabulary), with
	// ExpectedNonce for the nonce reasons.
	Reason        string  `json:"reason,omitempty"`
	ExpectedNonce *uint64 `json:"expected_nonce,omitempty"`
	// Block and Index locate an included transaction.
	Block     *uint64 `json:"block,omitempty"`
	BlockHash string  `json:"block_hash,omitempty"`
	Index     *uint32 `json:"index,omitempty"`
}

func (s *Server) serveSubmitTx(w http.ResponseWriter, r *http.Request) {
	if s.src.Pool == nil {
		s.writeError(w, r, notFound(CodeUnknown, "this node accepts no transactions"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxTxBody+1))
	if err != nil {
		s.writeError(w, r, badRequest("read body: %v", err))
		return
	}
	if len(body) > MaxTxBody {
		s.writeError(w, r, badRequest("body larger than %d bytes", MaxTxBody))
		return
	}
	raw := body
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/octet-stream") {
		var req TxSubmit
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.writeError(w, r, badRequest("body: want {\"tx\": \"0x…\"} or application/octet-stream bytes: %v", err))
			return
		}
		if !strings.HasPrefix(req.Tx, "0x") {
			s.writeError(w, r, badRequest("tx must be 0x-hex"))
			return
		}
		if raw, err = hex.DecodeString(req.Tx[2:]); err != nil {
			s.writeError(w, r, badRequest("tx is not hex: %v", err))
			return
		}
	}
	h, _, err := s.src.Pool.Add(raw)
	var re *txpool.RefusedError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, TxStatus{Hash: h.String(), Status: TxValidated})
	case errors.As(err, &re) && re.Reason == txpool.ReasonAlreadyKnown:
		// Idempotent by hash: the pool holds it, or a block does.
		if st, ok := s.txStatus(h); ok {
			writeJSON(w, http.StatusOK, st)
			return
		}
		writeJSON(w, http.StatusOK, TxStatus{Hash: h.String(), Status: TxValidated})
	case errors.As(err, &re):
		out := TxStatus{Status: TxRefused, Reason: string(re.Reason)}
		if t, derr := tx.Decode(raw); derr == nil {
			out.Hash = t.Hash().String()
			if st, ok := s.txStatus(t.Hash()); ok && re.Reason == txpool.ReasonNonceTooLow && rank(st.Status) >= 2 {
				writeJSON(w, http.StatusOK, st) // already in a block: idempotent
				return
			}
		}
		if re.Reason == txpool.ReasonNonceTooLow || re.Reason == txpool.ReasonNonceTooHigh {
			n := re.ExpectedNonce
			out.ExpectedNonce = &n
		}
		writeJSON(w, http.StatusBadRequest, out)
	default:
		s.writeError(w, r, err)
	}
}

// txStatus finds h in the best chain's blocks (with its level) or the pool.
func (s *Server) txStatus(h tx.Hash) (TxStatus, bool) {
	if s.src.TxIndex != nil && s.src.Blocks != nil {
		locs, err := s.src.TxIndex.TxLocations(h)
		if err == nil {
			for _, l := range locs {
				hdr, ok, err := s.src.Blocks.HeaderByHash(l.Block)
				if err != nil || !ok {
					continue
				}
				level := s.levelOf(hdr)
				if level == LevelFork {
					continue
				}
				st := TxStatus{Hash: h.String(), Status: TxIncluded, BlockHash: l.Block.String()}
				switch level {
				case LevelJustified:
					st.Status = TxJustified
				case LevelFinalized:
					st.Status = TxFinalized
				}
				num, idx := hdr.Number, l.Index
				st.Block, st.Index = &num, &idx
				return st, true
			}
		}
	}
	if s.src.Pool != nil {
		if _, _, ok := s.src.Pool.Get(h); ok {
			return TxStatus{Hash: h.String(), Status: TxValidated}, true
		}
	}
	if s.src.Removals != nil {
		if status, reason, ok := s.src.Removals.Removed(h); ok {
			return TxStatus{Hash: h.String(), Status: status, Reason: reason}, true
		}
	}
	return TxStatus{}, false
}

func (s *Server) serveTx(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("hash")
	b, err := hex.DecodeString(strings.TrimPrefix(id, "0x"))
	if err != nil || len(b) != checkpoint.HashSize || !strings.HasPrefix(id, "0x") {
		s.writeError(w, r, badRequest("transaction hash %q: want 0x and 64 hex characters", id))
		return
	}
	st, ok := s.txStatus(checkpoint.Hash(b))
	if !ok {
		s.writeError(w, r, notFound(CodeUnknown, "transaction %s is neither pooled nor in a retained block of the best chain", id))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

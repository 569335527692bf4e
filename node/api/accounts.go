package api

import (
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/state"
	"github.com/flarechain/flare-node/tx"
)

// State is the account state as the API reads it (state.DB).
type State interface {
	Account(root checkpoint.Hash, a tx.Address) (state.Account, bool, error)
	Prove(root checkpoint.Hash, a tx.Address) ([][]byte, error)
}

// Blocks is the block store as the API reads it (asf.Chain).
type Blocks interface {
	BlockByHash(h checkpoint.Hash) (asf.Block, bool, error)
	HeaderByHash(h checkpoint.Hash) (asf.Header, bool, error)
	Justified() checkpoint.Checkpoint
	Finalized() checkpoint.Checkpoint
	IsDescendant(block checkpoint.Hash, ancestor checkpoint.Checkpoint) bool
}

// Block levels: a block's place on the ascending scale, the words of
// /tx/{hash} as well.
const (
	// LevelBest: on the best chain, not yet at or below the justified
	// checkpoint.
	LevelBest = "best"
	// LevelJustified: at or below the latest justified checkpoint's block.
	LevelJustified = "justified"
	// LevelFinalized: at or below the finalized checkpoint's block.
	LevelFinalized = "finalized"
	// LevelFork: known but not on the best chain.
	LevelFork = "fork"
)

// At is the block a state read refers to.
type At struct {
	Number    uint64 `json:"number"`
	Hash      string `json:"hash"`
	StateRoot string `json:"state_root"`
	Level     string `json:"level"`
}

// Account is the JSON document of GET /accounts/{address}.
type Account struct {
	Address string `json:"address"`
	// Balance is a decimal string (64-bit integers do not survive
	// JavaScript numbers).
	Balance string `json:"balance"`
	Nonce   uint64 `json:"nonce"`
	// PendingNonce is the nonce the account's next transaction should use:
	// Nonce plus its ready transactions in this node's pool (reads at the
	// best block only; absent at=finalized).
	PendingNonce *uint64 `json:"pending_nonce,omitempty"`
	// Exists is false for an account the state does not hold (balance
	// and nonce 0).
	Exists bool `json:"exists"`
	At     At   `json:"at"`
	// Proof is present with ?proof=1.
	Proof *AccountProof `json:"proof,omitempty"`
}

// AccountProof lets a light client check an account with nothing but the
// chain spec: the finalized checkpoint's header (whose hash is the
// checkpoint hash and whose state root the Merkle proof is against), the
// certificate that finalizes the checkpoint, and the trie nodes from the
// root to the account's leaf (or to where it would be). docs/state.md,
// "Verifying an account".
type AccountProof struct {
	Header      BlockHeader  `json:"header"`
	Certificate *Certificate `json:"certificate"`
	// Nodes are the RLP-encoded trie nodes, root first, 0x-hex.
	Nodes []string `json:"nodes"`
}

// Block is the JSON document of GET /blocks/{number|hash}.
type Block struct {
	BlockHeader
	Level        string        `json:"level"`
	Transactions []Transaction `json:"transactions"`
}

// Transaction is a transaction of a block with its receipt: every
// transaction of a block executed successfully (a block with a failing one
// is invalid), so the receipt is its position and the fee it paid.
type Transaction struct {
	Hash   string `json:"hash"`
	Index  uint32 `json:"index"`
	From   string `json:"from"`
	To     string `json:"to"`
	Amount string `json:"amount"`
	Fee    string `json:"fee"`
	Nonce  uint64 `json:"nonce"`
	Status string `json:"status"`
}

// levelOf is the level of a known block.
func (s *Server) levelOf(h asf.Header) string {
	b := s.src.Blocks
	hash := h.Hash()
	canon, ok := s.src.Chain.CanonicalHash(h.Number)
	if !ok || canon != hash {
		return LevelFork
	}
	interval := s.info.CheckpointInterval
	if f := b.Finalized(); h.Number <= f.Number*interval {
		return LevelFinalized
	}
	if j := b.Justified(); h.Number <= j.Number*interval {
		return LevelJustified
	}
	return LevelBest
}

func (s *Server) serveAccount(w http.ResponseWriter, r *http.Request) {
	if s.src.State == nil || s.src.Blocks == nil {
		s.writeError(w, r, notFound(CodeUnknown, "this node serves no account state"))
		return
	}
	addr, err := tx.ParseAddress(r.PathValue("address"))
	if err != nil {
		s.writeError(w, r, badRequest("%v", err))
		return
	}
	q := r.URL.Query()
	withProof := q.Get("proof") == "1" || q.Get("proof") == "true"
	at := q.Get("at")
	if withProof && at == "" {
		at = "finalized"
	}
	var hdr asf.Header
	switch at {
	case "", "best":
		if withProof {
			s.writeError(w, r, badRequest("proof=1 is served against the finalized checkpoint: use at=finalized"))
			return
		}
		hdr = s.src.Chain.Best()
	case "finalized":
		f := s.src.Blocks.Finalized()
		h, ok, err := s.src.Blocks.HeaderByHash(f.Hash)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !ok {
			s.writeError(w, r, notFound(CodeUnknown, "the finalized block %s is not stored", f.Hash.Short()))
			return
		}
		hdr = h
	default:
		s.writeError(w, r, badRequest("at must be best or finalized, not %q", at))
		return
	}
	acc, exists, err := s.src.State.Account(hdr.StateRoot, addr)
	if errors.Is(err, state.ErrMissingState) {
		s.writeError(w, r, notFound(CodePruned, "the state of block #%d is not available", hdr.Number))
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := Account{
		Address: addr.String(), Balance: strconv.FormatUint(acc.Balance, 10), Nonce: acc.Nonce, Exists: exists,
		At: At{Number: hdr.Number, Hash: hdr.Hash().String(), StateRoot: hdr.StateRoot.String(), Level: s.levelOf(hdr)},
	}
	if at == "" || at == "best" {
		next := acc.Nonce
		if s.src.Pool != nil {
			if n, ok := s.src.Pool.NextNonce(addr); ok && n > next {
				next = n
			}
		}
		out.PendingNonce = &next
	}
	if withProof {
		p, err := s.accountProof(hdr, addr)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out.Proof = p
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) accountProof(hdr asf.Header, addr tx.Address) (*AccountProof, error) {
	nodes, err := s.src.State.Prove(hdr.StateRoot, addr)
	if err != nil {
		return nil, err
	}
	p := &AccountProof{Header: headerJSON(hdr), Nodes: make([]string, len(nodes))}
	for i, n := range nodes {
		p.Nodes[i] = hexString(n)
	}
	if hdr.Number > 0 {
		f := s.src.Finality
		if f == nil {
			return nil, errNoFinality()
		}
		fp, ok := f.FinalityProof()
		if !ok || fp.Finalizing.Source.Hash != hdr.Hash() {
			return nil, notFound(CodeUnknown, "no certificate finalizing block #%d is held", hdr.Number)
		}
		p.Certificate = certificateJSON(fp.Finalizing)
	}
	return p, nil
}

func (s *Server) serveBlock(w http.ResponseWriter, r *http.Request) {
	if s.src.Blocks == nil {
		s.writeError(w, r, notFound(CodeUnknown, "this node serves no blocks"))
		return
	}
	id := r.PathValue("id")
	var hash checkpoint.Hash
	if strings.HasPrefix(id, "0x") {
		b, err := hex.DecodeString(id[2:])
		if err != nil || len(b) != checkpoint.HashSize {
			s.writeError(w, r, badRequest("block %q: want a number or 0x and 64 hex characters", id))
			return
		}
		copy(hash[:], b)
	} else {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			s.writeError(w, r, badRequest("block %q: want a number or 0x and 64 hex characters", id))
			return
		}
		h, ok := s.src.Chain.CanonicalHash(n)
		if !ok {
			s.writeError(w, r, notFound(CodeUnknown, "no block #%d on the best chain", n))
			return
		}
		hash = h
	}
	b, ok, err := s.src.Blocks.BlockByHash(hash)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !ok {
		s.writeError(w, r, notFound(CodeUnknown, "block %s is not stored", hash.Short()))
		return
	}
	out := Block{BlockHeader: headerJSON(b.Header), Level: s.levelOf(b.Header), Transactions: []Transaction{}}
	for i, raw := range b.Extrinsics {
		t, err := tx.Decode(raw)
		if err != nil {
			s.writeError(w, r, internal(err))
			return
		}
		out.Transactions = append(out.Transactions, Transaction{
			Hash: t.Hash().String(), Index: uint32(i), From: t.From.String(), To: t.To.String(),
			Amount: strconv.FormatUint(t.Amount, 10), Fee: strconv.FormatUint(t.Fee, 10), Nonce: t.Nonce, Status: "ok",
		})
	}
	writeJSON(w, http.StatusOK, out)
}

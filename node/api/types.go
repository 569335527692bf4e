package api

import (
	"encoding/hex"
	"slices"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Role kinds.
const (
	// RoleValidator authors blocks in its slots and votes on checkpoints.
	RoleValidator = "validator"
	// RoleValidatorWithoutASF authors blocks but runs no finality gadget
	// (--enable-asf not set): it never votes.
	RoleValidatorWithoutASF = "validator-without-asf"
	// RoleValidatorWithoutPersistence authors blocks and follows finality
	// but never votes (checkpoint persistence is off).
	RoleValidatorWithoutPersistence = "validator-without-persistence"
	// RoleFullNode follows the chain without a key of the authority set.
	RoleFullNode = "full-node"
)

// Role is what the node does on its chain.
type Role struct {
	// Kind is one of validator, validator-without-asf,
	// validator-without-persistence, full-node.
	Kind string `json:"kind"`
	// ValidatorIndex is the key's index in the authority set (validators
	// only).
	ValidatorIndex *uint32 `json:"validator_index,omitempty"`
	// AuthorsBlocks and Votes say what the role does.
	AuthorsBlocks bool `json:"authors_blocks"`
	Votes         bool `json:"votes"`
}

// NewRole returns the role of a node: authority tells whether its key is in
// the authority set (index is then its index), asf whether the finality
// gadget runs, persistence whether checkpoint persistence is on.
func NewRole(authority bool, index uint32, asf, persistence bool) Role {
	if !authority {
		return Role{Kind: RoleFullNode}
	}
	r := Role{ValidatorIndex: &index, AuthorsBlocks: true}
	switch {
	case !asf:
		r.Kind = RoleValidatorWithoutASF
	case !persistence:
		r.Kind = RoleValidatorWithoutPersistence
	default:
		r.Kind, r.Votes = RoleValidator, true
	}
	return r
}

// Point is a checkpoint (number and hash).
type Point struct {
	Number uint64 `json:"number"`
	Hash   string `json:"hash"`
}

func point(c checkpoint.Checkpoint) Point { return Point{Number: c.Number, Hash: c.Hash.String()} }

// Signature is one validator's signature of a certificate.
type Signature struct {
	Validator uint32 `json:"validator"`
	Signature string `json:"signature"`
}

// Certificate is a quorum certificate: the link Source -> Target signed by
// Signers (Signatures are ed25519 over the vote's signing bytes, see
// docs/wire.md).
type Certificate struct {
	SetID      uint64      `json:"set_id"`
	Source     Point       `json:"source"`
	Target     Point       `json:"target"`
	Finalizes  bool        `json:"finalizes"`
	Signers    []uint32    `json:"signers"`
	Signatures []Signature `json:"signatures"`
}

func certificateJSON(c checkpoint.Certificate) *Certificate {
	out := &Certificate{SetID: c.SetID, Source: point(c.Source), Target: point(c.Target), Finalizes: c.Finalizes(),
		Signers: []uint32{}, Signatures: []Signature{}}
	for _, s := range c.Signatures {
		out.Signers = append(out.Signers, uint32(s.Validator))
		out.Signatures = append(out.Signatures, Signature{Validator: uint32(s.Validator), Signature: hexString(s.Signature[:])})
	}
	return out
}

// Vote is one validator's signed vote.
type Vote struct {
	Validator uint32 `json:"validator"`
	SetID     uint64 `json:"set_id"`
	Source    Point  `json:"source"`
	Target    Point  `json:"target"`
	Signature string `json:"signature"`
}

func voteJSON(v *checkpoint.SignedVote) *Vote {
	if v == nil {
		return nil
	}
	return &Vote{Validator: uint32(v.Validator), SetID: v.SetID, Source: point(v.Source), Target: point(v.Target), Signature: hexString(v.Signature[:])}
}

// Evidence is stored proof of a validator's misbehaviour (double-vote,
// surround-vote: First and Second are its two votes) or of conflicting
// finality (Certificate is the valid certificate that contradicts the
// finalized chain).
type Evidence struct {
	Kind        string       `json:"kind"`
	Validator   uint32       `json:"validator"`
	Checkpoint  uint64       `json:"checkpoint"`
	First       *Vote        `json:"first"`
	Second      *Vote        `json:"second"`
	Certificate *Certificate `json:"certificate"`
}

func evidenceJSON(e checkpoint.Evidence) Evidence {
	out := Evidence{Kind: e.Kind.String(), Validator: uint32(e.Validator), Checkpoint: e.Checkpoint, First: voteJSON(e.First), Second: voteJSON(e.Second)}
	if e.Certificate != nil {
		out.Certificate = certificateJSON(*e.Certificate)
	}
	return out
}

// Halt is a persisted safety alarm: the validator stopped voting until an
// operator clears it (flare-node checkpoints clear-halt).
type Halt struct {
	// Reason is conflicting-finality or doppelganger.
	Reason     string    `json:"reason"`
	Checkpoint uint64    `json:"checkpoint"`
	Detail     string    `json:"detail"`
	Evidence   *Evidence `json:"evidence"`
	Vote       *Vote     `json:"vote"`
}

func haltsJSON(hs []checkpoint.Halt) []Halt {
	out := make([]Halt, 0, len(hs))
	for _, h := range hs {
		j := Halt{Reason: h.Reason.String(), Checkpoint: h.Checkpoint, Detail: h.Detail, Vote: voteJSON(h.Vote)}
		if h.Evidence != nil {
			e := evidenceJSON(*h.Evidence)
			j.Evidence = &e
		}
		out = append(out, j)
	}
	return out
}

// BlockHeader identifies one signed block header.
type BlockHeader struct {
	Number      uint64 `json:"number"`
	Hash        string `json:"hash"`
	ParentHash  string `json:"parent_hash"`
	Slot        uint64 `json:"slot"`
	Proposer    uint32 `json:"proposer"`
	TimestampMs uint64 `json:"timestamp_ms"`
	BodyRoot    string `json:"body_root"`
	// StateRoot is the account state root after the block (0x-hex).
	StateRoot string `json:"state_root"`
	Signature string `json:"signature"`
}

func headerJSON(h asf.Header) BlockHeader {
	return BlockHeader{Number: h.Number, Hash: h.Hash().String(), ParentHash: h.ParentHash.String(), Slot: h.Slot,
		Proposer: uint32(h.Proposer), TimestampMs: h.TimestampMs, BodyRoot: h.BodyRoot.String(),
		StateRoot: h.StateRoot.String(), Signature: hexString(h.Signature[:])}
}

// BlockEquivocation is the proof that Proposer signed two different blocks
// for Slot.
type BlockEquivocation struct {
	Proposer uint32      `json:"proposer"`
	Slot     uint64      `json:"slot"`
	First    BlockHeader `json:"first"`
	Second   BlockHeader `json:"second"`
}

func hexString(b []byte) string { return "0x" + hex.EncodeToString(b) }

func validators(vs []checkpoint.ValidatorIndex) []uint32 {
	out := make([]uint32, 0, len(vs))
	for _, v := range vs {
		out = append(out, uint32(v))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

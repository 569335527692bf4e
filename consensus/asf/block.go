package asf

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// BlockDomain is the domain tag that begins every header's signing bytes.
const BlockDomain = "flare/block/v2"

// BodyDomain is the domain tag of the body root.
const BodyDomain = "flare/body/v1"

// Size limits of a block. They bound allocation on decode and are enforced on
// every decoded or imported block.
const (
	// MaxExtrinsics is the most extrinsics one block may carry.
	MaxExtrinsics = 10_000
	// MaxExtrinsicSize is the largest single extrinsic.
	MaxExtrinsicSize = 1 << 20
	// MaxBodySize bounds the sum of the extrinsic sizes of one block.
	MaxBodySize = 4 << 20
	// MaxEncodedBlockSize bounds the protobuf encoding DecodeBlock accepts.
	MaxEncodedBlockSize = MaxBodySize + 64<<10
)

// headerSigningSize is the length of Header.SigningBytes.
const headerSigningSize = len(BlockDomain) + checkpoint.HashSize + 8 + 8 + 4 + 8 + checkpoint.HashSize + checkpoint.HashSize

// headerStoredSize is the length of the stored header: signing bytes and
// signature.
const headerStoredSize = headerSigningSize + checkpoint.SignatureSize

var (
	// ErrInvalidBlock is returned (wrapped with the reason) for a block that
	// is malformed or breaks a consensus rule.
	ErrInvalidBlock = errors.New("invalid block")
	// ErrUnknownParent is returned by Import when the parent block is not
	// known; the caller should sync the missing ancestors and retry.
	ErrUnknownParent = errors.New("unknown parent block")
	// ErrConflictsFinalized is returned when a block or checkpoint does not
	// descend from (or is at or below the height of) the finalized block. It
	// wraps ErrInvalidBlock.
	ErrConflictsFinalized = fmt.Errorf("%w: conflicts with the finalized block", ErrInvalidBlock)
)

// Header is a block header.
type Header struct {
	ParentHash  checkpoint.Hash
	Number      uint64
	Slot        uint64
	Proposer    checkpoint.ValidatorIndex
	TimestampMs uint64
	BodyRoot    checkpoint.Hash
	// StateRoot is the root of the account state after executing the
	// block's body on its parent's state (package state).
	StateRoot checkpoint.Hash
	Signature checkpoint.Signature
}

// SigningBytes returns the bytes the proposer signs and the block hash
// covers (every field but the signature):
//
//	"flare/block/v2" | parent(32) | number u64 BE | slot u64 BE |
//	proposer u32 BE | timestamp_ms u64 BE | body_root(32) | state_root(32)
func (h Header) SigningBytes() []byte {
	b := make([]byte, 0, headerStoredSize)
	return h.appendSigningBytes(b)
}

func (h Header) appendSigningBytes(b []byte) []byte {
	b = append(b, BlockDomain...)
	b = append(b, h.ParentHash[:]...)
	b = binary.BigEndian.AppendUint64(b, h.Number)
	b = binary.BigEndian.AppendUint64(b, h.Slot)
	b = binary.BigEndian.AppendUint32(b, uint32(h.Proposer))
	b = binary.BigEndian.AppendUint64(b, h.TimestampMs)
	b = append(b, h.BodyRoot[:]...)
	b = append(b, h.StateRoot[:]...)
	return b
}

// Hash returns the block hash: BLAKE2b-256 of SigningBytes.
func (h Header) Hash() checkpoint.Hash { return checkpoint.HashOf(h.SigningBytes()) }

// Sign sets the signature with key.
func (h *Header) Sign(key ed25519.PrivateKey) {
	copy(h.Signature[:], ed25519.Sign(key, h.SigningBytes()))
}

// VerifySignature checks the proposer signature against pub.
func (h Header) VerifySignature(pub ed25519.PublicKey) bool {
	return checkpoint.VerifySignature(pub, h.SigningBytes(), h.Signature[:])
}

// marshalHeader returns the fixed-layout stored form of h.
func marshalHeader(h Header) []byte {
	b := make([]byte, 0, headerStoredSize)
	b = h.appendSigningBytes(b)
	return append(b, h.Signature[:]...)
}

// unmarshalHeader parses the stored form of a header.
func unmarshalHeader(b []byte) (Header, error) {
	var h Header
	if len(b) != headerStoredSize || string(b[:len(BlockDomain)]) != BlockDomain {
		return h, fmt.Errorf("stored header of %d bytes is not a %s header", len(b), BlockDomain)
	}
	p := b[len(BlockDomain):]
	copy(h.ParentHash[:], p)
	p = p[checkpoint.HashSize:]
	h.Number = binary.BigEndian.Uint64(p)
	h.Slot = binary.BigEndian.Uint64(p[8:])
	h.Proposer = checkpoint.ValidatorIndex(binary.BigEndian.Uint32(p[16:]))
	h.TimestampMs = binary.BigEndian.Uint64(p[20:])
	p = p[28:]
	copy(h.BodyRoot[:], p)
	copy(h.StateRoot[:], p[checkpoint.HashSize:])
	copy(h.Signature[:], p[2*checkpoint.HashSize:])
	return h, nil
}

// Block is a header and its body, an ordered list of opaque extrinsics.
type Block struct {
	Header     Header
	Extrinsics [][]byte
}

// Hash returns the block hash (the header hash).
func (b Block) Hash() checkpoint.Hash { return b.Header.Hash() }

// BodyRoot commits to the ordered extrinsics:
//
//	BLAKE2b-256("flare/body/v1" | count u32 BE | for each: len u32 BE | bytes)
func BodyRoot(extrinsics [][]byte) checkpoint.Hash {
	parts := make([][]byte, 0, 2+2*len(extrinsics))
	parts = append(parts, []byte(BodyDomain), binary.BigEndian.AppendUint32(nil, uint32(len(extrinsics))))
	for _, x := range extrinsics {
		parts = append(parts, binary.BigEndian.AppendUint32(nil, uint32(len(x))), x)
	}
	return checkpoint.HashOf(parts...)
}

// checkBody enforces the size limits of a body.
func checkBody(extrinsics [][]byte) error {
	if len(extrinsics) > MaxExtrinsics {
		return fmt.Errorf("%w: %d extrinsics, at most %d", ErrInvalidBlock, len(extrinsics), MaxExtrinsics)
	}
	total := 0
	for i, x := range extrinsics {
		if len(x) > MaxExtrinsicSize {
			return fmt.Errorf("%w: extrinsic %d is %d bytes, at most %d", ErrInvalidBlock, i, len(x), MaxExtrinsicSize)
		}
		total += len(x)
	}
	if total > MaxBodySize {
		return fmt.Errorf("%w: body is %d bytes, at most %d", ErrInvalidBlock, total, MaxBodySize)
	}
	return nil
}

// GenesisBlock returns the genesis block of spec: number 0, slot 0, zero
// parent, proposer 0, the genesis timestamp, BodyRoot = spec.Hash(),
// StateRoot = stateRoot (the root of the spec's genesis balances, see
// state.GenesisRoot), no extrinsics and a zero signature.
func GenesisBlock(spec *chainspec.Spec, stateRoot checkpoint.Hash) Block {
	return Block{Header: Header{TimestampMs: spec.GenesisTimestampMs, BodyRoot: spec.Hash(), StateRoot: stateRoot}}
}

// BlockToPB converts a block to its wire form.
func BlockToPB(b Block) *flarepb.Block {
	h := b.Header
	return &flarepb.Block{
		Header: &flarepb.BlockHeader{
			ParentHash:  h.ParentHash[:],
			Number:      h.Number,
			Slot:        h.Slot,
			Proposer:    uint32(h.Proposer),
			TimestampMs: h.TimestampMs,
			BodyRoot:    h.BodyRoot[:],
			Signature:   h.Signature[:],
			StateRoot:   h.StateRoot[:],
		},
		Extrinsics: b.Extrinsics,
	}
}

// BlockFromPB checks the shape of a wire block (field lengths, size limits)
// and converts it. Nothing that needs the chain (parent, proposer, body
// root, signature) is checked. Errors wrap ErrInvalidBlock and
// checkpoint.ErrMalformed.
func BlockFromPB(p *flarepb.Block) (Block, error) {
	var b Block
	if p == nil || p.GetHeader() == nil {
		return b, malformed("missing block header")
	}
	ph := p.GetHeader()
	var err error
	if b.Header.ParentHash, err = checkpoint.HashFromBytes(ph.GetParentHash()); err != nil {
		return b, malformed("parent hash: %v", err)
	}
	if b.Header.BodyRoot, err = checkpoint.HashFromBytes(ph.GetBodyRoot()); err != nil {
		return b, malformed("body root: %v", err)
	}
	if b.Header.StateRoot, err = checkpoint.HashFromBytes(ph.GetStateRoot()); err != nil {
		return b, malformed("state root: %v", err)
	}
	if len(ph.GetSignature()) != checkpoint.SignatureSize {
		return b, malformed("signature is %d bytes, want %d", len(ph.GetSignature()), checkpoint.SignatureSize)
	}
	copy(b.Header.Signature[:], ph.GetSignature())
	b.Header.Number = ph.GetNumber()
	b.Header.Slot = ph.GetSlot()
	b.Header.Proposer = checkpoint.ValidatorIndex(ph.GetProposer())
	b.Header.TimestampMs = ph.GetTimestampMs()
	if err := checkBody(p.GetExtrinsics()); err != nil {
		return Block{}, fmt.Errorf("%w: %w", err, checkpoint.ErrMalformed)
	}
	if len(p.GetExtrinsics()) > 0 {
		b.Extrinsics = p.GetExtrinsics()
	}
	return b, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrInvalidBlock, checkpoint.ErrMalformed, fmt.Sprintf(format, args...))
}

var strict = proto.UnmarshalOptions{DiscardUnknown: false}

// EncodeBlock returns the protobuf encoding of b. It fails for a block
// above the size limits.
func EncodeBlock(b Block) ([]byte, error) {
	if err := checkBody(b.Extrinsics); err != nil {
		return nil, err
	}
	return proto.Marshal(BlockToPB(b))
}

// DecodeBlock decodes and shape-checks a protobuf block (see BlockFromPB).
func DecodeBlock(data []byte) (Block, error) {
	if len(data) > MaxEncodedBlockSize {
		return Block{}, malformed("encoded block is %d bytes, at most %d", len(data), MaxEncodedBlockSize)
	}
	var p flarepb.Block
	if err := strict.Unmarshal(data, &p); err != nil {
		return Block{}, malformed("%v", err)
	}
	return BlockFromPB(&p)
}

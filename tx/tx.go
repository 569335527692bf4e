package tx

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// Domain is the tag that begins the signing bytes of transaction v1.
const Domain = "flare/tx/v1"

// Sizes of transaction v1.
const (
	// SigningSize is the length of SigningBytes.
	SigningSize = len(Domain) + checkpoint.HashSize + 2*AddressSize + 3*8
	// SignatureSize is the length of the ed25519 signature.
	SignatureSize = ed25519.SignatureSize
	// MaxEncodedSize bounds the encoding Decode accepts. A canonical v1
	// encoding is at most 2+32 + 2+32 + 2+32 + 3*(1+10) + 2+64 = 201 bytes;
	// anything larger is refused before it is parsed.
	MaxEncodedSize = 256
)

var (
	// ErrMalformed is returned (wrapped with the reason) by Decode for bytes
	// that are not the canonical encoding of a transaction v1.
	ErrMalformed = errors.New("malformed transaction")
	// ErrTooLarge is returned by Decode for an encoding above MaxEncodedSize.
	ErrTooLarge = errors.New("transaction too large")
	// ErrBadSignature is returned by Verify when the signature does not
	// verify against the sender.
	ErrBadSignature = errors.New("bad signature")
)

// Hash is a transaction hash: BLAKE2b-256 of signing bytes | signature.
type Hash = checkpoint.Hash

// Tx is a transaction v1: a transfer of Amount from From to To that pays Fee
// and uses From's nonce Nonce, on the chain whose genesis hash is Genesis.
type Tx struct {
	Genesis   checkpoint.Hash
	From      Address
	To        Address
	Amount    uint64
	Fee       uint64
	Nonce     uint64
	Signature [SignatureSize]byte
}

// SigningBytes returns the bytes the sender signs:
//
//	"flare/tx/v1" | genesis(32) | from(32) | to(32) |
//	amount u64 BE | fee u64 BE | nonce u64 BE
func (t *Tx) SigningBytes() []byte {
	b := make([]byte, 0, SigningSize+SignatureSize)
	return t.appendSigningBytes(b)
}

func (t *Tx) appendSigningBytes(b []byte) []byte {
	b = append(b, Domain...)
	b = append(b, t.Genesis[:]...)
	b = append(b, t.From[:]...)
	b = append(b, t.To[:]...)
	b = binary.BigEndian.AppendUint64(b, t.Amount)
	b = binary.BigEndian.AppendUint64(b, t.Fee)
	b = binary.BigEndian.AppendUint64(b, t.Nonce)
	return b
}

// Hash returns the transaction hash: BLAKE2b-256(signing bytes | signature).
// It covers every field, so two encodings with one hash are one transaction.
func (t *Tx) Hash() Hash {
	b := make([]byte, 0, SigningSize+SignatureSize)
	b = t.appendSigningBytes(b)
	b = append(b, t.Signature[:]...)
	return checkpoint.HashOf(b)
}

// Sign sets From to key's public key and signs the transaction.
func (t *Tx) Sign(key ed25519.PrivateKey) {
	t.From = AddressOf(key.Public().(ed25519.PublicKey))
	copy(t.Signature[:], ed25519.Sign(key, t.SigningBytes()))
}

// Verify checks the signature against From (ErrBadSignature).
func (t *Tx) Verify() error {
	if !checkpoint.VerifySignature(t.From.PublicKey(), t.SigningBytes(), t.Signature[:]) {
		return fmt.Errorf("%w: transaction %s from %s", ErrBadSignature, t.Hash().Short(), t.From.Short())
	}
	return nil
}

// ToPB returns the wire message.
func (t *Tx) ToPB() *flarepb.Transaction {
	return &flarepb.Transaction{
		Genesis:   t.Genesis[:],
		From:      t.From[:],
		To:        t.To[:],
		Amount:    t.Amount,
		Fee:       t.Fee,
		Nonce:     t.Nonce,
		Signature: t.Signature[:],
	}
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// Encode returns the canonical encoding: the protobuf message with fields in
// field-number order, minimal varints, zero integers omitted.
func (t *Tx) Encode() []byte {
	b, err := deterministic.Marshal(t.ToPB())
	if err != nil {
		panic(err) // a message of fixed-size bytes and integers always marshals
	}
	return b
}

// FromPB checks the field lengths of a wire transaction and converts it.
func FromPB(p *flarepb.Transaction) (*Tx, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: missing", ErrMalformed)
	}
	t := &Tx{Amount: p.GetAmount(), Fee: p.GetFee(), Nonce: p.GetNonce()}
	for _, f := range []struct {
		name string
		dst  []byte
		src  []byte
	}{
		{"genesis", t.Genesis[:], p.GetGenesis()},
		{"from", t.From[:], p.GetFrom()},
		{"to", t.To[:], p.GetTo()},
		{"signature", t.Signature[:], p.GetSignature()},
	} {
		if len(f.src) != len(f.dst) {
			return nil, fmt.Errorf("%w: %s is %d bytes, want %d", ErrMalformed, f.name, len(f.src), len(f.dst))
		}
		copy(f.dst, f.src)
	}
	if t.From.IsZero() || t.To.IsZero() {
		return nil, fmt.Errorf("%w: the all-zero key is not an account", ErrMalformed)
	}
	return t, nil
}

// Decode parses the canonical encoding of a transaction v1: at most
// MaxEncodedSize bytes, every field present with its exact length, no
// unknown field, and byte-for-byte equal to Encode of the result (so one
// transaction has exactly one encoding). The signature is not checked.
func Decode(b []byte) (*Tx, error) {
	if len(b) > MaxEncodedSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), MaxEncodedSize)
	}
	var p flarepb.Transaction
	if err := proto.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(p.ProtoReflect().GetUnknown()) > 0 {
		return nil, fmt.Errorf("%w: unknown fields", ErrMalformed)
	}
	t, err := FromPB(&p)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(t.Encode(), b) {
		return nil, fmt.Errorf("%w: not the canonical encoding", ErrMalformed)
	}
	return t, nil
}

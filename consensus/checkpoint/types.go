package checkpoint

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/crypto/blake2b"
)

// HashSize is the size of a BLAKE2b-256 hash.
const HashSize = 32

// SignatureSize is the size of an ed25519 signature.
const SignatureSize = 64

// Hash is a BLAKE2b-256 digest.
type Hash [HashSize]byte

// ZeroHash is the all-zero hash.
var ZeroHash Hash

// HashOf returns the BLAKE2b-256 hash of the concatenation of parts.
func HashOf(parts ...[]byte) Hash {
	h, _ := blake2b.New256(nil) // cannot fail without a key
	for _, p := range parts {
		h.Write(p)
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

// HashFromBytes copies b into a Hash; b must be exactly HashSize bytes.
func HashFromBytes(b []byte) (Hash, error) {
	var h Hash
	if len(b) != HashSize {
		return h, fmt.Errorf("%w: hash is %d bytes, want %d", ErrMalformed, len(b), HashSize)
	}
	copy(h[:], b)
	return h, nil
}

// ParseHash parses a hex string (with or without 0x) into a Hash.
func ParseHash(s string) (Hash, error) {
	if len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s = s[2:]
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return Hash{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return HashFromBytes(b)
}

func (h Hash) String() string { return "0x" + hex.EncodeToString(h[:]) }

// Short returns the first 4 bytes in hex, for logs.
func (h Hash) Short() string { return "0x" + hex.EncodeToString(h[:4]) }

// IsZero reports whether h is the zero hash.
func (h Hash) IsZero() bool { return h == ZeroHash }

// Less orders hashes bytewise.
func (h Hash) Less(o Hash) bool { return bytes.Compare(h[:], o[:]) < 0 }

// Checkpoint is checkpoint number Number, the block at height
// Number*checkpoint_interval whose hash is Hash. Checkpoint 0 is genesis.
type Checkpoint struct {
	Number uint64
	Hash   Hash
}

func (c Checkpoint) String() string { return fmt.Sprintf("%d/%s", c.Number, c.Hash.Short()) }

// ValidatorIndex is a position in the ordered authority set.
type ValidatorIndex uint32

// Signature is an ed25519 signature.
type Signature [SignatureSize]byte

// Sentinel errors of this package.
var (
	// ErrMalformed: bytes or fields that cannot be decoded or are out of shape.
	ErrMalformed = errors.New("malformed")
	// ErrWrongChain: the genesis hash is not ours.
	ErrWrongChain = errors.New("wrong chain (genesis hash mismatch)")
	// ErrWrongSet: the authority set id is not the current one.
	ErrWrongSet = errors.New("wrong authority set id")
	// ErrUnknownValidator: the validator index is outside the authority set.
	ErrUnknownValidator = errors.New("validator index outside the authority set")
	// ErrBadSignature: an ed25519 signature does not verify.
	ErrBadSignature = errors.New("invalid signature")
	// ErrBadLink: target number not above source number.
	ErrBadLink = errors.New("vote target must be above its source")
	// ErrNoQuorum: a certificate with fewer than a quorum of distinct signers.
	ErrNoQuorum = errors.New("certificate below quorum")
	// ErrDuplicateSigner: a certificate with a signer listed twice or out of order.
	ErrDuplicateSigner = errors.New("certificate signers not strictly increasing")
	// ErrSlashable: signing would contradict an earlier own vote.
	ErrSlashable = errors.New("refusing to sign: slashable against an earlier own vote")
)

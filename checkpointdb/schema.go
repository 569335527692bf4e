package checkpointdb

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// This file is the one place where the on-disk key layout is defined. Every
// key starts with a one-byte prefix; integers are big-endian so that Pebble's
// bytewise order is numeric order. Values are the protobuf codecs of package
// consensus/checkpoint unless noted. docs/storage.md mirrors this table.
//
//	prefix  key                                      value
//	0x01    0x01 'v'                                 schema version, u32 BE
//	0x01    0x01 'g'                                 genesis hash, 32 bytes
//	0x02    0x02 | ed25519 public key (32)           EncodeSignerRecord
//	0x03    0x03 | target u64 BE | validator u32 BE  EncodeVote
//	0x04    0x04 | target u64 BE                     EncodeCertificate
//	0x05    0x05 'j' (justified) / 0x05 'f' (final)  EncodeCheckpoint
//	0x06    0x06 | checkpoint u64 BE | id (32)       EncodeEvidence
//	0x07    0x07                                     prune base u64 BE | evidence base u64 BE
//	0x08    0x08 | number u64 BE                     empty: number has (had) a vote or certificate
//	0x01    0x01 'r'                                 rebuild floor u64 BE (schema 2)
//	0x09    0x09 | checkpoint u64 BE | id (32)       EncodeHalt (schema 2)
//	0x0A    0x0A | set id u64 BE                     EncodeCertificate: hand-off of the set (schema 3)
//
// SchemaVersion is bumped on any change of this table that an older release
// could misread: version 2 adds the rebuild floor and the halts, which a
// version-1 release would take for corruption; version 3 adds the hand-off
// certificates, which a version-2 release would take for corruption. A
// database records the lowest version that can read it: it stays at version
// 1 (readable by older releases) until it stores a record only a later
// version defines, and the version is raised in the same synced batch as
// that record (to 2 by the first halt or rebuild floor, to 3 by the first
// hand-off).
const SchemaVersion uint32 = 3

// minSchemaVersion is the oldest schema version this build opens.
const minSchemaVersion uint32 = 1

// Key prefixes.
const (
	prefixMeta      byte = 0x01
	prefixSigner    byte = 0x02
	prefixVote      byte = 0x03
	prefixCert      byte = 0x04
	prefixPointer   byte = 0x05
	prefixEvidence  byte = 0x06
	prefixPruneBase byte = 0x07
	// prefixIndex keys mark the checkpoint numbers that got a vote or a
	// certificate, written in the same batch as the record. Prune counts
	// removed checkpoints from these tiny keys instead of reading the
	// records.
	prefixIndex byte = 0x08
	// prefixHalt keys hold persisted safety alarms (schema 2); never
	// pruned.
	prefixHalt byte = 0x09
	// prefixHandOff keys hold the hand-off certificates of the authority
	// sets, by set id (schema 3); never pruned.
	prefixHandOff byte = 0x0a
	// prefixEnd is one past the last prefix in use: the upper bound of a
	// whole-keyspace iteration.
	prefixEnd byte = 0x0b
)

// Key lengths, used by the key decoders to reject malformed keys.
const (
	voteKeyLen     = 1 + 8 + 4
	certKeyLen     = 1 + 8
	indexKeyLen    = 1 + 8
	signerKeyLen   = 1 + ed25519.PublicKeySize
	evidenceKeyLen = 1 + 8 + checkpoint.HashSize
	haltKeyLen     = 1 + 8 + checkpoint.HashSize
	handOffKeyLen  = 1 + 8
	pruneValueLen  = 8 + 8
)

var (
	keySchemaVersion = []byte{prefixMeta, 'v'}
	keyGenesis       = []byte{prefixMeta, 'g'}
	keyRebuildFloor  = []byte{prefixMeta, 'r'}
	keyJustified     = []byte{prefixPointer, 'j'}
	keyFinalized     = []byte{prefixPointer, 'f'}
	keyPruneBase     = []byte{prefixPruneBase}
)

// prefixStart returns the first key of prefix p, prefixUpper the first key
// after every key of p.
func prefixStart(p byte) []byte { return []byte{p} }
func prefixUpper(p byte) []byte { return []byte{p + 1} }

func signerKey(pub ed25519.PublicKey) []byte {
	k := make([]byte, 0, signerKeyLen)
	k = append(k, prefixSigner)
	return append(k, pub...)
}

func voteKey(target uint64, validator checkpoint.ValidatorIndex) []byte {
	k := make([]byte, voteKeyLen)
	k[0] = prefixVote
	binary.BigEndian.PutUint64(k[1:9], target)
	binary.BigEndian.PutUint32(k[9:13], uint32(validator))
	return k
}

// voteThrough is the first key after every vote with target <= number.
func voteThrough(number uint64) []byte {
	if number == math.MaxUint64 {
		return prefixUpper(prefixVote)
	}
	return voteKey(number+1, 0)
}

func certKey(target uint64) []byte {
	k := make([]byte, certKeyLen)
	k[0] = prefixCert
	binary.BigEndian.PutUint64(k[1:], target)
	return k
}

// certThrough is the first key after every certificate with target <= number.
func certThrough(number uint64) []byte {
	if number == math.MaxUint64 {
		return prefixUpper(prefixCert)
	}
	return certKey(number + 1)
}

func evidenceKey(number uint64, id checkpoint.Hash) []byte {
	k := make([]byte, evidenceKeyLen)
	k[0] = prefixEvidence
	binary.BigEndian.PutUint64(k[1:9], number)
	copy(k[9:], id[:])
	return k
}

func haltKey(number uint64, id checkpoint.Hash) []byte {
	k := make([]byte, haltKeyLen)
	k[0] = prefixHalt
	binary.BigEndian.PutUint64(k[1:9], number)
	copy(k[9:], id[:])
	return k
}

func handOffKey(setID uint64) []byte {
	k := make([]byte, handOffKeyLen)
	k[0] = prefixHandOff
	binary.BigEndian.PutUint64(k[1:], setID)
	return k
}

func indexKey(number uint64) []byte {
	k := make([]byte, indexKeyLen)
	k[0] = prefixIndex
	binary.BigEndian.PutUint64(k[1:], number)
	return k
}

// evidenceFrom is the first evidence key with checkpoint >= number.
func evidenceFrom(number uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixEvidence
	binary.BigEndian.PutUint64(k[1:], number)
	return k
}

// KeyKind names the record a key belongs to (for key decoding, tools and
// fuzzing).
type KeyKind int

// Key kinds.
const (
	KeyUnknown KeyKind = iota
	KeySchemaVersion
	KeyGenesis
	KeySignerRecord
	KeyVote
	KeyCertificate
	KeyJustified
	KeyFinalized
	KeyEvidence
	KeyPruneBase
	KeyIndex
	KeyRebuildFloor
	KeyHalt
	KeyHandOff
)

func (k KeyKind) String() string {
	switch k {
	case KeySchemaVersion:
		return "schema-version"
	case KeyGenesis:
		return "genesis"
	case KeySignerRecord:
		return "signer-record"
	case KeyVote:
		return "vote"
	case KeyCertificate:
		return "certificate"
	case KeyJustified:
		return "justified"
	case KeyFinalized:
		return "finalized"
	case KeyEvidence:
		return "evidence"
	case KeyPruneBase:
		return "prune-base"
	case KeyIndex:
		return "index"
	case KeyRebuildFloor:
		return "rebuild-floor"
	case KeyHalt:
		return "halt"
	case KeyHandOff:
		return "hand-off"
	default:
		return "unknown"
	}
}

// Key is a decoded database key. Only the fields of its Kind are set.
type Key struct {
	Kind      KeyKind
	Number    uint64                    // vote/certificate target, evidence/halt checkpoint, index number, hand-off set id
	Validator checkpoint.ValidatorIndex // vote
	PublicKey ed25519.PublicKey         // signer record
	ID        checkpoint.Hash           // evidence/halt id
}

// Encode returns the key bytes of k (the inverse of DecodeKey).
func (k Key) Encode() ([]byte, error) {
	switch k.Kind {
	case KeySchemaVersion:
		return append([]byte(nil), keySchemaVersion...), nil
	case KeyGenesis:
		return append([]byte(nil), keyGenesis...), nil
	case KeySignerRecord:
		if len(k.PublicKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: public key is %d bytes", checkpoint.ErrMalformed, len(k.PublicKey))
		}
		return signerKey(k.PublicKey), nil
	case KeyVote:
		return voteKey(k.Number, k.Validator), nil
	case KeyCertificate:
		return certKey(k.Number), nil
	case KeyJustified:
		return append([]byte(nil), keyJustified...), nil
	case KeyFinalized:
		return append([]byte(nil), keyFinalized...), nil
	case KeyEvidence:
		return evidenceKey(k.Number, k.ID), nil
	case KeyPruneBase:
		return append([]byte(nil), keyPruneBase...), nil
	case KeyIndex:
		return indexKey(k.Number), nil
	case KeyRebuildFloor:
		return append([]byte(nil), keyRebuildFloor...), nil
	case KeyHalt:
		return haltKey(k.Number, k.ID), nil
	case KeyHandOff:
		return handOffKey(k.Number), nil
	default:
		return nil, fmt.Errorf("%w: unknown key kind %d", checkpoint.ErrMalformed, k.Kind)
	}
}

// DecodeKey parses a database key. It returns an error wrapping
// checkpoint.ErrMalformed for any key this schema does not define.
func DecodeKey(b []byte) (Key, error) {
	bad := func(what string) (Key, error) {
		return Key{}, fmt.Errorf("%w: %s key of %d bytes", checkpoint.ErrMalformed, what, len(b))
	}
	if len(b) == 0 {
		return bad("empty")
	}
	switch b[0] {
	case prefixMeta:
		if len(b) == 2 && b[1] == 'v' {
			return Key{Kind: KeySchemaVersion}, nil
		}
		if len(b) == 2 && b[1] == 'g' {
			return Key{Kind: KeyGenesis}, nil
		}
		if len(b) == 2 && b[1] == 'r' {
			return Key{Kind: KeyRebuildFloor}, nil
		}
		return bad("meta")
	case prefixSigner:
		if len(b) != signerKeyLen {
			return bad("signer record")
		}
		return Key{Kind: KeySignerRecord, PublicKey: append(ed25519.PublicKey(nil), b[1:]...)}, nil
	case prefixVote:
		if len(b) != voteKeyLen {
			return bad("vote")
		}
		return Key{
			Kind:      KeyVote,
			Number:    binary.BigEndian.Uint64(b[1:9]),
			Validator: checkpoint.ValidatorIndex(binary.BigEndian.Uint32(b[9:13])),
		}, nil
	case prefixCert:
		if len(b) != certKeyLen {
			return bad("certificate")
		}
		return Key{Kind: KeyCertificate, Number: binary.BigEndian.Uint64(b[1:])}, nil
	case prefixPointer:
		if len(b) == 2 && b[1] == 'j' {
			return Key{Kind: KeyJustified}, nil
		}
		if len(b) == 2 && b[1] == 'f' {
			return Key{Kind: KeyFinalized}, nil
		}
		return bad("pointer")
	case prefixEvidence:
		if len(b) != evidenceKeyLen {
			return bad("evidence")
		}
		k := Key{Kind: KeyEvidence, Number: binary.BigEndian.Uint64(b[1:9])}
		copy(k.ID[:], b[9:])
		return k, nil
	case prefixPruneBase:
		if len(b) != 1 {
			return bad("prune base")
		}
		return Key{Kind: KeyPruneBase}, nil
	case prefixIndex:
		if len(b) != indexKeyLen {
			return bad("index")
		}
		return Key{Kind: KeyIndex, Number: binary.BigEndian.Uint64(b[1:])}, nil
	case prefixHalt:
		if len(b) != haltKeyLen {
			return bad("halt")
		}
		k := Key{Kind: KeyHalt, Number: binary.BigEndian.Uint64(b[1:9])}
		copy(k.ID[:], b[9:])
		return k, nil
	case prefixHandOff:
		if len(b) != handOffKeyLen {
			return bad("hand-off")
		}
		return Key{Kind: KeyHandOff, Number: binary.BigEndian.Uint64(b[1:])}, nil
	default:
		return Key{}, fmt.Errorf("%w: unknown key prefix 0x%02x", checkpoint.ErrMalformed, b[0])
	}
}

// pruneBase is the value of the prune-base marker: every vote and
// certificate with a target below Base, and every evidence with a checkpoint
// below EvidenceBase, is deleted (or about to be) and invisible to reads.
type pruneBase struct {
	Base         uint64
	EvidenceBase uint64
}

func encodePruneBase(p pruneBase) []byte {
	b := make([]byte, pruneValueLen)
	binary.BigEndian.PutUint64(b[0:8], p.Base)
	binary.BigEndian.PutUint64(b[8:16], p.EvidenceBase)
	return b
}

func decodePruneBase(b []byte) (pruneBase, error) {
	if len(b) != pruneValueLen {
		return pruneBase{}, fmt.Errorf("%w: prune base value is %d bytes, want %d", checkpoint.ErrMalformed, len(b), pruneValueLen)
	}
	return pruneBase{Base: binary.BigEndian.Uint64(b[0:8]), EvidenceBase: binary.BigEndian.Uint64(b[8:16])}, nil
}

func encodeSchemaVersion(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func decodeSchemaVersion(b []byte) (uint32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("%w: schema version value is %d bytes, want 4", checkpoint.ErrMalformed, len(b))
	}
	return binary.BigEndian.Uint32(b), nil
}

// schemaOf returns the lowest schema version that can read a record of kind
// k.
func schemaOf(k KeyKind) uint32 {
	switch k {
	case KeyRebuildFloor, KeyHalt:
		return 2
	case KeyHandOff:
		return 3
	default:
		return 1
	}
}

func encodeU64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeU64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: value is %d bytes, want 8", checkpoint.ErrMalformed, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

package asf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// SchemaVersion is the layout version of the chain database. Version 2 added
// the slot index, block evidence and the finality proof; version 3 stores
// flare/block/v2 headers (with a state root) and the account state. Older
// layouts hold blocks of another protocol and are refused (ErrSchema).
const SchemaVersion uint32 = 3

// Key layout of the chain database. Every key starts with a one-byte table
// tag.
//
//	'm' "schema"    -> u32 BE SchemaVersion
//	'm' "genesis"   -> chain identity (spec hash, 32)
//	'm' "best"      -> best block hash (32)
//	'm' "justified" -> checkpoint number u64 BE | hash (32)
//	'm' "finalized" -> checkpoint number u64 BE | hash (32)
//	'm' "finproof"  -> protobuf FinalityProof (absent until one is stored)
//	'm' "statepruned" -> u64 BE: canonical states of blocks below this
//	                   number are pruned (Executor.Prune was applied)
//	'N' 'J' 'X' 'Y' -> the account state, owned by the Executor (package
//	                   state, see docs/state.md)
//	'h' hash        -> stored header (signing bytes | signature)
//	'b' hash        -> protobuf block
//	'c' number BE   -> canonical (best chain) block hash at that number
//	't' hash        -> block number u64 BE: the block is a tip (no children)
//	's' slot BE | proposer u32 BE -> stored header of the first block
//	                   imported for (proposer, slot); kept for slots above the
//	                   finalized block's slot
//	'e' slot BE | proposer u32 BE -> block evidence: the stored header of
//	                   the first block | the stored header of a second,
//	                   different block for the same (proposer, slot); kept
//	                   for good, one record per (proposer, slot)
var (
	keySchema      = []byte("mschema")
	keyGenesis     = []byte("mgenesis")
	keyBest        = []byte("mbest")
	keyJustified   = []byte("mjustified")
	keyFinalized   = []byte("mfinalized")
	keyFinalProof  = []byte("mfinproof")
	keyStatePruned = []byte("mstatepruned")
)

const (
	tagHeader    = 'h'
	tagBlock     = 'b'
	tagCanonical = 'c'
	tagTip       = 't'
	tagSlot      = 's'
	tagEvidence  = 'e'
)

// slotKey is the key of (proposer, slot) in the slot index (tagSlot) or the
// evidence table (tagEvidence). Keys sort by slot first, so everything up to
// a slot is one range.
func slotKey(tag byte, slot uint64, proposer checkpoint.ValidatorIndex) []byte {
	k := make([]byte, 0, 1+8+4)
	k = append(k, tag)
	k = binary.BigEndian.AppendUint64(k, slot)
	return binary.BigEndian.AppendUint32(k, uint32(proposer))
}

func hashKey(tag byte, h checkpoint.Hash) []byte {
	k := make([]byte, 1+checkpoint.HashSize)
	k[0] = tag
	copy(k[1:], h[:])
	return k
}

func canonicalKey(n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagCanonical}, n)
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func marshalCheckpoint(c checkpoint.Checkpoint) []byte {
	return append(binary.BigEndian.AppendUint64(nil, c.Number), c.Hash[:]...)
}

func unmarshalCheckpoint(b []byte) (checkpoint.Checkpoint, error) {
	if len(b) != 8+checkpoint.HashSize {
		return checkpoint.Checkpoint{}, fmt.Errorf("stored checkpoint is %d bytes", len(b))
	}
	c := checkpoint.Checkpoint{Number: binary.BigEndian.Uint64(b)}
	copy(c.Hash[:], b[8:])
	return c, nil
}

// get returns a copy of the value of key, or found=false.
func get(r pebble.Reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	if err := closer.Close(); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// headerCache keeps recently used headers in memory so that fork choice and
// ancestry walks over recent blocks do not hit the database. It evicts in
// insertion order.
type headerCache struct {
	mu   sync.Mutex
	m    map[checkpoint.Hash]Header
	ring []checkpoint.Hash
	next int
}

func newHeaderCache(capacity int) *headerCache {
	return &headerCache{m: make(map[checkpoint.Hash]Header, capacity), ring: make([]checkpoint.Hash, 0, capacity)}
}

func (c *headerCache) get(h checkpoint.Hash) (Header, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	hdr, ok := c.m[h]
	return hdr, ok
}

func (c *headerCache) put(h checkpoint.Hash, hdr Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[h]; ok {
		return
	}
	if len(c.ring) < cap(c.ring) {
		c.ring = append(c.ring, h)
	} else {
		delete(c.m, c.ring[c.next])
		c.ring[c.next] = h
		c.next = (c.next + 1) % len(c.ring)
	}
	c.m[h] = hdr
}

func (c *headerCache) remove(h checkpoint.Hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The ring slot stays; evicting it later deletes nothing (or a re-added
	// entry early, which is harmless for a cache).
	delete(c.m, h)
}

package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethdb"
	"github.com/ethereum/go-ethereum/trie"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// ErrBadChunk is returned (wrapped) for a chunk that does not prove a range
// of the state.
var ErrBadChunk = errors.New("bad state chunk")

// Chunk is a consecutive range of the leaves of a state: 32-byte trie keys
// (keccak256 of the address) in ascending order from a start key, their
// 16-byte account values, the range proof, and whether leaves follow.
type Chunk struct {
	Keys, Values [][]byte
	Proof        [][]byte // nodes proving start and the last key; empty when the chunk is the whole state
	More         bool
}

// ExportChunk returns the leaves of the state root from start (inclusive),
// at most maxAccounts of them and about maxBytes of keys and values (at
// least one leaf when any follows start; zero or negative: no bound).
func (d *DB) ExportChunk(root checkpoint.Hash, start [32]byte, maxAccounts int, maxBytes int) (Chunk, error) {
	var c Chunk
	tr, err := d.openTrie(root)
	if err != nil {
		return c, err
	}
	nit, err := tr.NodeIterator(start[:])
	if err != nil {
		return c, missing(err)
	}
	it := trie.NewIterator(nit)
	size := 0
	for it.Next() {
		if (maxAccounts > 0 && len(c.Keys) >= maxAccounts) || (maxBytes > 0 && size >= maxBytes) {
			c.More = true
			break
		}
		c.Keys = append(c.Keys, append([]byte(nil), it.Key...))
		c.Values = append(c.Values, append([]byte(nil), it.Value...))
		size += len(it.Key) + len(it.Value)
	}
	if it.Err != nil {
		return Chunk{}, missing(it.Err)
	}
	if start == ([32]byte{}) && !c.More {
		return c, nil // the whole state: the leaves alone prove it
	}
	var p proofList
	if err := tr.Prove(start[:], &p); err != nil {
		return Chunk{}, missing(err)
	}
	if n := len(c.Keys); n > 0 {
		var last proofList
		if err := tr.Prove(c.Keys[n-1], &last); err != nil {
			return Chunk{}, missing(err)
		}
		seen := make(map[string]bool, len(p))
		for _, b := range p {
			seen[string(b)] = true
		}
		for _, b := range last {
			if !seen[string(b)] {
				p = append(p, b)
			}
		}
	}
	c.Proof = p
	return c, nil
}

// VerifyChunk checks that c is the range of the state root that starts at
// start: keys of 32 bytes ascending from start, 16-byte values, no gap, and
// More true exactly when leaves follow. Any other chunk is an error wrapping
// ErrBadChunk.
func VerifyChunk(root checkpoint.Hash, start [32]byte, c Chunk) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadChunk, fmt.Sprintf(format, args...))
	}
	if len(c.Keys) != len(c.Values) {
		return bad("%d keys, %d values", len(c.Keys), len(c.Values))
	}
	for i := range c.Keys {
		if len(c.Keys[i]) != 32 || len(c.Values[i]) != AccountSize {
			return bad("leaf %d: key %d bytes, value %d bytes", i, len(c.Keys[i]), len(c.Values[i]))
		}
	}
	if len(c.Keys) > 0 && bytes.Compare(c.Keys[0], start[:]) < 0 {
		return bad("first key below the start")
	}
	if c.More && len(c.Keys) == 0 {
		return bad("no leaves, but more follow")
	}
	var proof ethdb.KeyValueReader // nil: the chunk claims the whole state
	if len(c.Proof) > 0 {
		proof = newProofSet(c.Proof)
	}
	more, err := trie.VerifyRangeProof(common.Hash(root), start[:], c.Keys, c.Values, proof)
	if err != nil {
		return bad("%v", err)
	}
	if more != c.More {
		return bad("more is %v, the proof says %v", c.More, more)
	}
	return nil
}

// Staging keys of a sync of root:
//
//	'Y' | root | 0x00        -> next start(32) | done(1) | leaves u64 BE
//	'Y' | root | 0x01 | key  -> value(16)
func syncKey(root checkpoint.Hash, kind byte, key []byte) []byte {
	k := make([]byte, 0, 1+32+1+len(key))
	k = append(k, tagSync)
	k = append(k, root[:]...)
	k = append(k, kind)
	return append(k, key...)
}

// Syncer fetches the state at a (finalized) root in chunks, verifies each
// against the root, and stages it under 'Y' with its progress, one synced
// Pebble batch per chunk, so that a sync resumes where it stopped after a
// crash. Finish writes the nodes of the root as a committed version. A
// Syncer is not safe for concurrent use.
type Syncer struct {
	d      *DB
	root   checkpoint.Hash
	next   [32]byte
	done   bool
	leaves uint64
}

// NewSyncer starts the sync of the state root, or resumes the one staged in
// the database.
func (d *DB) NewSyncer(root checkpoint.Hash) (*Syncer, error) {
	s := &Syncer{d: d, root: root}
	v, err := get(d.db, syncKey(root, 0, nil))
	if err != nil {
		return nil, err
	}
	if v != nil {
		if len(v) != 32+1+8 {
			return nil, fmt.Errorf("%w: sync progress", ErrCorrupt)
		}
		copy(s.next[:], v)
		s.done = v[32] == 1
		s.leaves = binary.BigEndian.Uint64(v[33:])
		d.log.Info("state: resuming sync", zap.String("root", root.Short()), zap.Uint64("accounts", s.leaves))
	}
	return s, nil
}

// Root returns the root being synced.
func (s *Syncer) Root() checkpoint.Hash { return s.root }

// Next returns the start key of the next chunk to fetch, or done when every
// leaf is staged.
func (s *Syncer) Next() (start [32]byte, done bool) { return s.next, s.done }

// Accounts returns the number of staged leaves.
func (s *Syncer) Accounts() uint64 { return s.leaves }

// Add verifies c as the chunk of the root from Next and stages it with the
// new progress in one synced batch. A bad chunk (ErrBadChunk) changes
// nothing.
func (s *Syncer) Add(c Chunk) error {
	if s.done {
		return errors.New("state: sync already complete")
	}
	if err := VerifyChunk(s.root, s.next, c); err != nil {
		return err
	}
	b := s.d.db.NewBatch()
	defer b.Close()
	for i, k := range c.Keys {
		if err := b.Set(syncKey(s.root, 1, k), c.Values[i], nil); err != nil {
			return err
		}
	}
	next, done := s.next, !c.More
	if c.More {
		next = [32]byte(c.Keys[len(c.Keys)-1])
		if !increment(&next) {
			done = true
		}
	}
	leaves := s.leaves + uint64(len(c.Keys))
	p := make([]byte, 0, 41)
	p = append(p, next[:]...)
	if done {
		p = append(p, 1)
	} else {
		p = append(p, 0)
	}
	p = binary.BigEndian.AppendUint64(p, leaves)
	if err := b.Set(syncKey(s.root, 0, nil), p, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	s.next, s.done, s.leaves = next, done, leaves
	return nil
}

// increment adds one to k (big-endian); false when it wraps.
func increment(k *[32]byte) bool {
	for i := 31; i >= 0; i-- {
		k[i]++
		if k[i] != 0 {
			return true
		}
	}
	return false
}

// Finish adds to w the nodes of the synced root, rebuilt from the staged
// leaves, as the committed version of block blockHash (each node one
// reference more; its journal lists every node as created, nothing dropped,
// so that Discard(blockHash) removes it and Prune(blockHash) releases
// nothing), and the deletion of the staging. The caller commits w (with its
// record that the block's state is present). It holds the node hashes of the
// state in memory.
func (s *Syncer) Finish(w pebble.Writer, blockHash checkpoint.Hash) error {
	if !s.done {
		return errors.New("state: sync not complete")
	}
	lo := syncKey(s.root, 1, nil)
	it, err := s.d.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return err
	}
	var (
		created []common.Hash
		blobs   = map[common.Hash][]byte{}
	)
	st := trie.NewStackTrie(func(_ []byte, h common.Hash, blob []byte) {
		created = append(created, h)
		if _, ok := blobs[h]; !ok {
			blobs[h] = append([]byte(nil), blob...)
		}
	})
	n := uint64(0)
	for ok := it.First(); ok; ok = it.Next() {
		if err := st.Update(it.Key()[len(lo):], it.Value()); err != nil {
			_ = it.Close()
			return err
		}
		n++
	}
	if err := it.Close(); err != nil {
		return err
	}
	root := st.Hash()
	if checkpoint.Hash(root) != s.root {
		return fmt.Errorf("%w: staged leaves hash to %x, want %x", ErrCorrupt, root, s.root)
	}
	if n != s.leaves {
		return fmt.Errorf("%w: %d staged leaves, progress says %d", ErrCorrupt, n, s.leaves)
	}
	sortHashes(created)
	r := &Result{Root: s.root, db: s.d}
	if err := r.writeNodes(w, blockHash, created, blobs, nil); err != nil {
		return err
	}
	return s.d.AbortSync(w, s.root)
}

// AbortSync deletes (in w) the staging of a sync of root.
func (d *DB) AbortSync(w pebble.Writer, root checkpoint.Hash) error {
	lo := syncKey(root, 0, nil)[:33]
	return w.DeleteRange(lo, prefixEnd(lo), nil)
}

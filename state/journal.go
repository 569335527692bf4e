package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
)

// journalVersion is the first byte of a journal record.
const journalVersion = 1

// journal is what one version (block) did to the node store:
//
//	version(1) | root(32) | parent(32) |
//	u32 BE n | n created node hashes(32) |
//	u32 BE n | n dropped node hashes(32) |
//	u32 BE n | n tx hashes(32)
//
// A hash appears once per trie path it was created (or dropped) at, so a
// list may repeat a hash.
type journal struct {
	root, parent checkpoint.Hash
	created      []common.Hash
	dropped      []common.Hash
	txs          []tx.Hash
}

func (j *journal) encode() []byte {
	n := 1 + 64 + 12 + 32*(len(j.created)+len(j.dropped)+len(j.txs))
	b := make([]byte, 0, n)
	b = append(b, journalVersion)
	b = append(b, j.root[:]...)
	b = append(b, j.parent[:]...)
	for _, l := range [][]common.Hash{j.created, j.dropped, hashes(j.txs)} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(l)))
		for _, h := range l {
			b = append(b, h[:]...)
		}
	}
	return b
}

func hashes(t []tx.Hash) []common.Hash {
	out := make([]common.Hash, len(t))
	for i, h := range t {
		out[i] = common.Hash(h)
	}
	return out
}

func decodeJournal(b []byte) (*journal, error) {
	bad := func(what string) error { return fmt.Errorf("%w: journal: %s", ErrCorrupt, what) }
	if len(b) < 1+64 || b[0] != journalVersion {
		return nil, bad("header")
	}
	j := &journal{}
	copy(j.root[:], b[1:33])
	copy(j.parent[:], b[33:65])
	b = b[65:]
	var lists [3][]common.Hash
	for i := range lists {
		if len(b) < 4 {
			return nil, bad("length")
		}
		n := int(binary.BigEndian.Uint32(b))
		b = b[4:]
		if len(b) < 32*n {
			return nil, bad("truncated list")
		}
		l := make([]common.Hash, n)
		for k := range l {
			copy(l[k][:], b[32*k:])
		}
		lists[i] = l
		b = b[32*n:]
	}
	if len(b) != 0 {
		return nil, bad("trailing bytes")
	}
	j.created, j.dropped = lists[0], lists[1]
	j.txs = make([]tx.Hash, len(lists[2]))
	for i, h := range lists[2] {
		j.txs[i] = tx.Hash(h)
	}
	return j, nil
}

// created returns the hashed nodes of the result, one per trie path, with
// their blobs; dropped returns the hashes of the committed nodes they
// replaced or deleted (the NodeSet's origins).
func (r *Result) changes() (created []common.Hash, blobs map[common.Hash][]byte, dropped []common.Hash) {
	if r.nodes == nil {
		return nil, nil, nil
	}
	blobs = make(map[common.Hash][]byte, len(r.nodes.Nodes))
	created = make([]common.Hash, 0, len(r.nodes.Nodes))
	for _, n := range r.nodes.Nodes {
		if n.IsDeleted() {
			continue
		}
		created = append(created, n.Hash)
		blobs[n.Hash] = n.Blob
	}
	kh := crypto.NewKeccakState()
	dropped = make([]common.Hash, 0, len(r.nodes.Origins))
	for _, o := range r.nodes.Origins {
		if len(o) == 0 {
			continue // the path held no stored node before
		}
		var h common.Hash
		kh.Reset()
		kh.Write(o)
		kh.Read(h[:])
		dropped = append(dropped, h)
	}
	sortHashes(created)
	sortHashes(dropped)
	return created, blobs, dropped
}

// Write adds every write of the result to w (the chain's import batch): the
// new trie nodes (reference count +1 per trie path that holds them), the
// block's journal (keyed by blockHash), and the tx index entries (tx hash |
// block hash -> index). Nothing is written to the DB directly; the caller
// commits w with its block. A blockHash whose journal is already committed
// (or in w, when w is an indexed batch) is left as it is.
func (r *Result) Write(w pebble.Writer, blockHash checkpoint.Hash) error {
	created, blobs, dropped := r.changes()
	return r.writeNodes(w, blockHash, created, blobs, dropped)
}

func (r *Result) writeNodes(w pebble.Writer, blockHash checkpoint.Hash, created []common.Hash, blobs map[common.Hash][]byte, dropped []common.Hash) error {
	d := r.db
	if d == nil {
		return fmt.Errorf("state: result without a DB")
	}
	g := d.reader(w)
	if old, err := get(g, journalKey(blockHash)); err != nil {
		return err
	} else if old != nil {
		return nil
	}
	if err := d.addRefs(w, g, created, blobs); err != nil {
		return err
	}
	j := journal{root: r.Root, parent: r.parent, created: created, dropped: dropped, txs: make([]tx.Hash, len(r.Receipts))}
	var idx [4]byte
	for i, rc := range r.Receipts {
		j.txs[i] = rc.Hash
		binary.BigEndian.PutUint32(idx[:], rc.Index)
		if err := w.Set(txIndexKey(rc.Hash, blockHash), idx[:], nil); err != nil {
			return err
		}
	}
	return w.Set(journalKey(blockHash), j.encode(), nil)
}

func sortHashes(hs []common.Hash) {
	slices.SortFunc(hs, func(a, b common.Hash) int { return bytes.Compare(a[:], b[:]) })
}

// addRefs adds one reference per occurrence of a hash in hs (sorted),
// writing the blob of each node that was not stored.
func (d *DB) addRefs(w pebble.Writer, g getter, hs []common.Hash, blobs map[common.Hash][]byte) error {
	for i := 0; i < len(hs); {
		h := hs[i]
		n := 1
		for i+n < len(hs) && hs[i+n] == h {
			n++
		}
		i += n
		k := nodeKey(h)
		old, err := get(g, k)
		if err != nil {
			return err
		}
		var v []byte
		if old == nil {
			b := blobs[h]
			v = make([]byte, 4+len(b))
			binary.BigEndian.PutUint32(v, uint32(n))
			copy(v[4:], b)
		} else {
			if len(old) < 4 {
				return fmt.Errorf("%w: node %x", ErrCorrupt, h)
			}
			v = old
			binary.BigEndian.PutUint32(v, binary.BigEndian.Uint32(v)+uint32(n))
		}
		if err := w.Set(k, v, nil); err != nil {
			return err
		}
	}
	return nil
}

// releaseRefs removes one reference per occurrence of a hash in hs (sorted),
// deleting each node whose count reaches zero. It returns the number of
// nodes deleted.
func (d *DB) releaseRefs(w pebble.Writer, g getter, hs []common.Hash) (int, error) {
	deleted := 0
	for i := 0; i < len(hs); {
		h := hs[i]
		n := 1
		for i+n < len(hs) && hs[i+n] == h {
			n++
		}
		i += n
		k := nodeKey(h)
		old, err := get(g, k)
		if err != nil {
			return deleted, err
		}
		if old == nil || len(old) < 4 {
			d.log.Warn("state: releasing an absent node", zap.String("node", common.Hash(h).Hex()))
			continue
		}
		c := binary.BigEndian.Uint32(old)
		if c <= uint32(n) {
			if c < uint32(n) {
				d.log.Warn("state: node count below its references", zap.String("node", common.Hash(h).Hex()), zap.Uint32("count", c), zap.Int("released", n))
			}
			if err := w.Delete(k, nil); err != nil {
				return deleted, err
			}
			deleted++
			continue
		}
		binary.BigEndian.PutUint32(old, c-uint32(n))
		if err := w.Set(k, old, nil); err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

func (d *DB) loadJournal(g getter, blockHash checkpoint.Hash) (*journal, error) {
	b, err := get(g, journalKey(blockHash))
	if err != nil || b == nil {
		return nil, err
	}
	return decodeJournal(b)
}

func (d *DB) forget(w pebble.Writer, blockHash checkpoint.Hash, j *journal) error {
	for _, h := range j.txs {
		if err := w.Delete(txIndexKey(h, blockHash), nil); err != nil {
			return err
		}
	}
	return w.Delete(journalKey(blockHash), nil)
}

// Discard undoes (in w) the writes of the version blockHash of an abandoned
// block (an evicted fork, or a block that is not a descendant of the
// finalized block): one reference less for each node it created, and its
// journal and tx index entries deleted. Discard every abandoned block whose
// state is no longer needed, descendants included; a block without journal
// (never written, discarded or pruned) is a no-op.
func (d *DB) Discard(w pebble.Writer, blockHash checkpoint.Hash) error {
	return d.release(w, blockHash, "discarded", func(j *journal) []common.Hash { return j.created })
}

// Prune releases (in w) what the canonical version blockHash made obsolete:
// one reference less for each node it dropped (deleted at zero), and its
// journal and tx index entries deleted (the index covers retained blocks).
// Call it for canonical blocks that fall below finalized - retention, in
// ascending order, after discarding the abandoned forks below them. After
// Prune(B) the states of B and its descendants stay complete; the states of
// B's ancestors may become incomplete. A block without journal is a no-op.
func (d *DB) Prune(w pebble.Writer, blockHash checkpoint.Hash) error {
	return d.release(w, blockHash, "pruned", func(j *journal) []common.Hash { return j.dropped })
}

// release takes one reference from each node of the list pick chooses in
// blockHash's journal (deleting nodes at zero), then forgets the journal
// and its tx index entries. A block without journal is a no-op.
func (d *DB) release(w pebble.Writer, blockHash checkpoint.Hash, what string, pick func(*journal) []common.Hash) error {
	g := d.reader(w)
	j, err := d.loadJournal(g, blockHash)
	if err != nil || j == nil {
		return err
	}
	hs := pick(j)
	n, err := d.releaseRefs(w, g, hs)
	if err != nil {
		return err
	}
	d.log.Debug("state: "+what+" version", zap.String("block", blockHash.Short()), zap.Int("released", len(hs)), zap.Int("deleted", n))
	return d.forget(w, blockHash, j)
}

// TxLocation is where a transaction was included.
type TxLocation struct {
	Block checkpoint.Hash
	Index uint32
}

// TxLocations returns every retained block that includes the transaction
// hash (more than one on forks), in block hash order.
func (d *DB) TxLocations(hash tx.Hash) ([]TxLocation, error) {
	lo := make([]byte, 33)
	lo[0] = tagTxIndex
	copy(lo[1:], hash[:])
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return nil, err
	}
	var out []TxLocation
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 65 || len(v) != 4 {
			_ = it.Close()
			return nil, fmt.Errorf("%w: tx index entry", ErrCorrupt)
		}
		var l TxLocation
		copy(l.Block[:], k[33:])
		l.Index = binary.BigEndian.Uint32(v)
		out = append(out, l)
	}
	if err := it.Error(); err != nil {
		_ = it.Close()
		return nil, err
	}
	return out, it.Close()
}

// prefixEnd returns the smallest key above every key with prefix p.
func prefixEnd(p []byte) []byte {
	e := append([]byte(nil), p...)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] < 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return nil
}

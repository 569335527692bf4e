package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/triedb/database"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
)

// Key tags of the state package in the chain database. The chain's own
// records use 'm','h','b','c','t','s','e'.
const (
	tagNode    = 'N' // 'N' | node hash(32)            -> refcount u32 BE | node blob
	tagJournal = 'J' // 'J' | block hash(32)           -> journal (see journal.go)
	tagTxIndex = 'X' // 'X' | tx hash(32) | block(32)  -> index u32 BE
	tagSync    = 'Y' // 'Y' | root(32) | ...           -> state-sync staging
)

// AccountSize is the length of an account leaf value: balance u64 BE |
// nonce u64 BE.
const AccountSize = 16

// EmptyRoot is the root of the state without accounts (the Ethereum empty
// trie root, keccak256(rlp(""))).
var EmptyRoot = checkpoint.Hash(types.EmptyRootHash)

var (
	// ErrMissingState is returned (wrapped) when the state of a root is not
	// in the database: unknown, discarded, or pruned.
	ErrMissingState = errors.New("missing state")
	// ErrBadProof is returned (wrapped) by VerifyProof for a proof that does
	// not prove the account against the root.
	ErrBadProof = errors.New("bad proof")
	// ErrCorrupt is returned (wrapped) for a database record this package
	// cannot decode.
	ErrCorrupt = errors.New("corrupt state record")
)

// CacheBytes is the size of the clean-node cache of a DB: 32 MiB, which
// holds the whole state of about 200,000 accounts (110 bytes a node on
// average, 1.4 nodes an account). Nodes are content-addressed, so a cached
// node is never stale; it may outlive its deletion by Prune or Discard,
// which is harmless (HasState and Execute check the root on disk).
const CacheBytes = 32 << 20

// DB is the state store: the committed trie nodes of every retained version
// in the chain database, and the execution of block bodies on them. Reads
// are safe for concurrent use. Write, Discard, Prune and Syncer.Finish
// read-modify-write reference counts: callers serialize them and commit each
// batch before the next (or pass one indexed batch to all of them).
type DB struct {
	db    *pebble.DB
	log   *zap.Logger
	cache *fastcache.Cache
}

// Open returns the state store over db, which holds the committed nodes.
func Open(db *pebble.DB, log *zap.Logger) *DB {
	if log == nil {
		log = zap.NewNop()
	}
	return &DB{db: db, log: log, cache: fastcache.New(CacheBytes)}
}

func nodeKey(h common.Hash) []byte {
	k := make([]byte, 1+32)
	k[0] = tagNode
	copy(k[1:], h[:])
	return k
}

func journalKey(block checkpoint.Hash) []byte {
	k := make([]byte, 1+32)
	k[0] = tagJournal
	copy(k[1:], block[:])
	return k
}

func txIndexKey(h tx.Hash, block checkpoint.Hash) []byte {
	k := make([]byte, 1+64)
	k[0] = tagTxIndex
	copy(k[1:], h[:])
	copy(k[33:], block[:])
	return k
}

// getter is the read side of the DB or of an indexed batch.
type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// reader returns w when it is an indexed batch (so that several operations
// in one batch see each other), else the committed DB.
func (d *DB) reader(w pebble.Writer) getter {
	if b, ok := w.(*pebble.Batch); ok && b.Indexed() {
		return b
	}
	return d.db
}

// get returns a copy of the value of key, nil when absent.
func get(g getter, key []byte) ([]byte, error) {
	v, c, err := g.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(v))
	copy(out, v)
	if err := c.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// node returns the blob of the committed node h, nil when absent.
func (d *DB) node(h common.Hash) ([]byte, error) {
	if b, ok := d.cache.HasGet(nil, h[:]); ok {
		return b, nil
	}
	v, err := get(d.db, nodeKey(h))
	if err != nil || v == nil {
		return nil, err
	}
	if len(v) < 4 {
		return nil, fmt.Errorf("%w: node %x is %d bytes", ErrCorrupt, h, len(v))
	}
	b := v[4:]
	d.cache.Set(h[:], b)
	return b, nil
}

// HasState reports whether the root node of root is in the database (the
// empty root always is). It does not walk the trie: after Prune, the state
// of an ancestor of the pruned block may have its root but miss nodes below.
func (d *DB) HasState(root checkpoint.Hash) (bool, error) {
	if root == EmptyRoot {
		return true, nil
	}
	v, c, err := d.db.Get(nodeKey(common.Hash(root)))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_ = v
	return true, c.Close()
}

// nodeDB adapts DB to go-ethereum's triedb/database.NodeDatabase: one reader
// for every root, nodes looked up by hash (path and owner are ignored).
type nodeDB struct{ d *DB }

func (n nodeDB) NodeReader(common.Hash) (database.NodeReader, error) { return n, nil }

func (n nodeDB) Node(_ common.Hash, _ []byte, h common.Hash) ([]byte, error) {
	return n.d.node(h)
}

// memNodes is a NodeDatabase without any node, for tries built in memory.
type memNodes struct{}

func (memNodes) NodeReader(common.Hash) (database.NodeReader, error) { return memNodes{}, nil }
func (memNodes) Node(common.Hash, []byte, common.Hash) ([]byte, error) {
	return nil, nil
}

// Account is the state of one address.
type Account struct{ Balance, Nonce uint64 }

func (a Account) encode(b *[AccountSize]byte) {
	binary.BigEndian.PutUint64(b[:8], a.Balance)
	binary.BigEndian.PutUint64(b[8:], a.Nonce)
}

func decodeAccount(v []byte) (Account, error) {
	if len(v) != AccountSize {
		return Account{}, fmt.Errorf("%w: account value is %d bytes, want %d", ErrCorrupt, len(v), AccountSize)
	}
	return Account{Balance: binary.BigEndian.Uint64(v[:8]), Nonce: binary.BigEndian.Uint64(v[8:])}, nil
}

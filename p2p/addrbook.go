package p2p

import (
	"cmp"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Address book limits.
const (
	// AddressBookVersion is the version of the address book file format.
	AddressBookVersion = 1
	// MaxAddressBookPeers bounds the peers kept; the least recently seen
	// are dropped first.
	MaxAddressBookPeers = 256
	// MaxAddressBookAddrs bounds the addresses kept per peer.
	MaxAddressBookAddrs = 8
	// maxAddressBookFileSize bounds what is read from the file.
	maxAddressBookFileSize = 1 << 20
	// addressBookRefresh: a known peer seen again with the same addresses
	// is rewritten at most this often (its last_seen is refreshed).
	addressBookRefresh = 10 * time.Minute
)

// addressBookFile is the JSON document of the address book. It is local to
// one node and never sent to peers.
type addressBookFile struct {
	Version int                `json:"version"`
	Genesis string             `json:"genesis"`
	Peers   []addressBookEntry `json:"peers"`
}

type addressBookEntry struct {
	ID       string    `json:"id"`
	Addrs    []string  `json:"addrs"`
	LastSeen time.Time `json:"last_seen"`
}

type bookPeer struct {
	addrs    []ma.Multiaddr
	lastSeen time.Time
}

// addressBook remembers peers that completed a handshake on this chain's
// protocols (identify listing the chain's sync protocol), with the listen
// addresses they announced, so that a restarted node reconnects without a
// bootnode. It is written atomically (temporary file, fsync, rename, fsync
// of the directory) and bounded to MaxAddressBookPeers.
type addressBook struct {
	path    string
	genesis checkpoint.Hash

	mu      sync.Mutex
	peers   map[peer.ID]*bookPeer
	dirty   bool
	changed chan struct{} // signalled (non-blocking) when dirty becomes true
}

// loadAddressBook reads the address book at path. A missing file is an
// empty book. The book is a cache: a file that cannot be decoded, belongs to
// another chain or has another version is reported (as an error next to a
// usable empty book) and replaced at the next save.
func loadAddressBook(path string, genesis checkpoint.Hash, keep func(ma.Multiaddr) bool) (*addressBook, error) {
	b := &addressBook{path: path, genesis: genesis, peers: make(map[peer.ID]*bookPeer), changed: make(chan struct{}, 1)}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return b, fmt.Errorf("open address book: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxAddressBookFileSize+1))
	if err != nil {
		return b, fmt.Errorf("read address book %s: %w", path, err)
	}
	if len(raw) > maxAddressBookFileSize {
		return b, fmt.Errorf("address book %s is larger than %d bytes", path, maxAddressBookFileSize)
	}
	var doc addressBookFile
	if err := json.Unmarshal(raw, &doc); err != nil {
		return b, fmt.Errorf("address book %s: %w", path, err)
	}
	if doc.Version != AddressBookVersion {
		return b, fmt.Errorf("address book %s has version %d, want %d", path, doc.Version, AddressBookVersion)
	}
	if doc.Genesis != hex.EncodeToString(genesis[:]) {
		return b, fmt.Errorf("address book %s belongs to genesis %s", path, doc.Genesis)
	}
	for _, e := range doc.Peers {
		id, err := peer.Decode(e.ID)
		if err != nil {
			continue
		}
		var addrs []ma.Multiaddr
		for _, s := range e.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil && keep(a) && len(addrs) < MaxAddressBookAddrs {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) > 0 {
			b.peers[id] = &bookPeer{addrs: addrs, lastSeen: e.LastSeen}
		}
	}
	b.trimLocked()
	return b, nil
}

// record remembers p at addrs (already filtered by the dial policy).
func (b *addressBook) record(p peer.ID, addrs []ma.Multiaddr, now time.Time) {
	if len(addrs) == 0 {
		return
	}
	if len(addrs) > MaxAddressBookAddrs {
		addrs = addrs[:MaxAddressBookAddrs]
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.peers[p]; ok && now.Sub(old.lastSeen) < addressBookRefresh &&
		slices.EqualFunc(old.addrs, addrs, func(x, y ma.Multiaddr) bool { return x.Equal(y) }) {
		return
	}
	b.peers[p] = &bookPeer{addrs: slices.Clone(addrs), lastSeen: now}
	b.trimLocked()
	b.markDirtyLocked()
}

func (b *addressBook) markDirtyLocked() {
	b.dirty = true
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// trimLocked drops the least recently seen peers beyond the bound.
func (b *addressBook) trimLocked() {
	for len(b.peers) > MaxAddressBookPeers {
		var oldest peer.ID
		var at time.Time
		first := true
		for id, e := range b.peers {
			if first || e.lastSeen.Before(at) || (e.lastSeen.Equal(at) && id < oldest) {
				oldest, at, first = id, e.lastSeen, false
			}
		}
		delete(b.peers, oldest)
	}
}

// entries returns the remembered peers, most recently seen first.
func (b *addressBook) entries() []peer.AddrInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	type item struct {
		id peer.ID
		e  *bookPeer
	}
	items := make([]item, 0, len(b.peers))
	for id, e := range b.peers {
		items = append(items, item{id, e})
	}
	slices.SortFunc(items, func(x, y item) int {
		if c := y.e.lastSeen.Compare(x.e.lastSeen); c != 0 {
			return c
		}
		return cmp.Compare(string(x.id), string(y.id))
	})
	out := make([]peer.AddrInfo, len(items))
	for i, it := range items {
		out[i] = peer.AddrInfo{ID: it.id, Addrs: slices.Clone(it.e.addrs)}
	}
	return out
}

// save writes the book when it changed since the last save.
func (b *addressBook) save() error {
	b.mu.Lock()
	if !b.dirty {
		b.mu.Unlock()
		return nil
	}
	doc := addressBookFile{Version: AddressBookVersion, Genesis: hex.EncodeToString(b.genesis[:])}
	for id, e := range b.peers {
		entry := addressBookEntry{ID: id.String(), LastSeen: e.lastSeen.UTC()}
		for _, a := range e.addrs {
			entry.Addrs = append(entry.Addrs, a.String())
		}
		doc.Peers = append(doc.Peers, entry)
	}
	b.dirty = false
	b.mu.Unlock()
	slices.SortFunc(doc.Peers, func(x, y addressBookEntry) int {
		if c := y.LastSeen.Compare(x.LastSeen); c != 0 {
			return c
		}
		return cmp.Compare(x.ID, y.ID)
	})
	data, err := json.MarshalIndent(doc, "", "  ")
	if err == nil {
		err = writeFileAtomic(b.path, append(data, '\n'))
	}
	if err != nil {
		b.mu.Lock()
		b.markDirtyLocked() // try again later
		b.mu.Unlock()
		return fmt.Errorf("save address book: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data (mode 0600): a temporary file in
// the same directory is written and synced, renamed over path, and the
// directory is synced. A crash leaves either the old or the new file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpName, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// saveLoop saves the book shortly after it changes (changes arriving within
// debounce are written together), until the network closes; Close saves
// once more.
func (n *Network) saveLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.book.changed:
		}
		if !sleepCtx(n.ctx, n.bookDebounce) {
			return
		}
		if err := n.book.save(); err != nil {
			n.log.Warn("address book not saved", zap.Error(err))
		}
	}
}

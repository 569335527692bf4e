package checkpointdb

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// The high-water mark (HWM) is a small file next to the database directory
// (<path>.hwm), kept apart from Pebble's WAL, that records what the database
// acknowledged as durable: the latest finalized checkpoint and, per signer
// record, the highest signed target and source numbers. It is written after
// the synced Pebble write it describes and before that write's call returns,
// so it is never ahead of an acknowledged state and never behind one. Open
// compares the database with it: a database whose finalized checkpoint is
// below the HWM's lost synced writes (a damaged WAL, an older backup) and is
// refused (ErrBehindHighWaterMark); signer watermarks are merged raise-only
// (a lost or older signer record cannot lower them).
//
// Format (docs/storage.md): two slots of S bytes (S a multiple of 512, 512
// for up to 8 keys), slot i at offset i*S, file size 2*S. Each slot, big
// endian:
//
//	off  len  field
//	0    8    magic "FLAREHWM"
//	8    2    format version (1)
//	10   2    reserved, 0
//	12   4    slot size S
//	16   8    sequence number (>= 1; slot index = sequence mod 2)
//	24   32   genesis hash
//	56   8    finalized number (0 with a zero hash: none)
//	64   32   finalized hash
//	96   4    key count n
//	100  48n  n entries, strictly increasing by key: ed25519 public key (32) |
//	          highest signed target u64 | highest signed source u64
//	...       zero padding
//	S-4  4    CRC-32C (Castagnoli) of bytes [0, S-4)
//
// A write raises the sequence number and overwrites, in place, the slot that
// does not hold the newest valid state (pwrite, then fdatasync), so a torn
// write leaves the previous state readable. The reader takes the valid slot
// with the highest sequence number. A write that needs bigger slots (more
// keys) writes a new file atomically (temporary file, fsync, rename,
// directory fsync).
const (
	hwmSuffix        = ".hwm"
	hwmMagic         = "FLAREHWM"
	hwmFormatVersion = 1
	hwmUnit          = 512
	hwmHeaderLen     = 100
	hwmEntryLen      = ed25519.PublicKeySize + 8 + 8
	hwmCRCLen        = 4
	// hwmMaxSlot bounds the slot size (about 1,360 keys).
	hwmMaxSlot = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrBehindHighWaterMark: the database restored a finalized checkpoint below
// the one its high-water mark recorded as durable (synced writes were lost,
// or the directory is an older copy). Open refuses it.
var ErrBehindHighWaterMark = errors.New("checkpoint database behind its high-water mark")

// errHWMFormat marks a high-water-mark file of a newer format version.
var errHWMFormat = errors.New("unsupported high-water mark format version")

// HWMPath returns the high-water-mark file of the database directory path.
func HWMPath(path string) string { return strings.TrimRight(path, `/\`) + hwmSuffix }

// SignerWatermark is the high-water mark of one key: the highest target and
// source numbers it signed (or was raised to) on this database.
type SignerWatermark struct {
	PublicKey ed25519.PublicKey
	Target    uint64
	Source    uint64
}

// HighWaterMark is what the high-water-mark file records, as merged by Open
// (never below what the database holds).
type HighWaterMark struct {
	// Path is the file.
	Path string
	// Existed reports whether the file existed before this Open (false on a
	// first start, after an upgrade from a release without it, or when it
	// was deleted).
	Existed bool
	// Finalized is the highest finalized checkpoint the database
	// acknowledged (nil: none). After the database directory was replaced by
	// a fresh one it is above what the database holds.
	Finalized *checkpoint.Checkpoint
	// Signers are the per-key watermarks, ordered by public key.
	Signers []SignerWatermark
	// Problem is, for a read-only open, why a writable open would refuse
	// (a damaged file, another chain's file, a database behind it); nil
	// otherwise.
	Problem error
}

// hwmState is the content of one slot.
type hwmState struct {
	genesis   checkpoint.Hash
	finalized *checkpoint.Checkpoint
	signers   []SignerWatermark // strictly increasing by key
}

func (s hwmState) clone() hwmState {
	c := hwmState{genesis: s.genesis, signers: make([]SignerWatermark, len(s.signers))}
	if s.finalized != nil {
		c.finalized = checkpointPtr(*s.finalized)
	}
	for i, w := range s.signers {
		c.signers[i] = SignerWatermark{PublicKey: slices.Clone(w.PublicKey), Target: w.Target, Source: w.Source}
	}
	return c
}

func (s hwmState) signer(pub ed25519.PublicKey) (SignerWatermark, bool) {
	i, found := slices.BinarySearchFunc(s.signers, pub, func(w SignerWatermark, k ed25519.PublicKey) int {
		return bytes.Compare(w.PublicKey, k)
	})
	if !found {
		return SignerWatermark{}, false
	}
	return s.signers[i], true
}

// raiseSigner raises the watermarks of pub; it reports whether anything
// changed. A key seen for the first time is added (unless both numbers are
// zero: a key that never signed has no watermark).
func (s *hwmState) raiseSigner(pub ed25519.PublicKey, target, source uint64) bool {
	if target == 0 && source == 0 {
		return false
	}
	i, found := slices.BinarySearchFunc(s.signers, pub, func(w SignerWatermark, k ed25519.PublicKey) int {
		return bytes.Compare(w.PublicKey, k)
	})
	if !found {
		s.signers = slices.Insert(s.signers, i, SignerWatermark{PublicKey: slices.Clone(pub), Target: target, Source: source})
		return true
	}
	w := &s.signers[i]
	if target <= w.Target && source <= w.Source {
		return false
	}
	w.Target, w.Source = max(w.Target, target), max(w.Source, source)
	return true
}

// raiseFinalized raises the finalized checkpoint; it reports whether it
// changed.
func (s *hwmState) raiseFinalized(c checkpoint.Checkpoint) bool {
	if c.Number == 0 || (s.finalized != nil && c.Number <= s.finalized.Number) {
		return false
	}
	s.finalized = checkpointPtr(c)
	return true
}

func hwmSlotSize(keys int) int {
	n := hwmHeaderLen + keys*hwmEntryLen + hwmCRCLen
	return (n + hwmUnit - 1) / hwmUnit * hwmUnit
}

func encodeHWMSlot(st hwmState, seq uint64, size int) []byte {
	b := make([]byte, size)
	copy(b[0:8], hwmMagic)
	binary.BigEndian.PutUint16(b[8:10], hwmFormatVersion)
	binary.BigEndian.PutUint32(b[12:16], uint32(size))
	binary.BigEndian.PutUint64(b[16:24], seq)
	copy(b[24:56], st.genesis[:])
	if st.finalized != nil {
		binary.BigEndian.PutUint64(b[56:64], st.finalized.Number)
		copy(b[64:96], st.finalized.Hash[:])
	}
	binary.BigEndian.PutUint32(b[96:100], uint32(len(st.signers)))
	off := hwmHeaderLen
	for _, w := range st.signers {
		copy(b[off:off+32], w.PublicKey)
		binary.BigEndian.PutUint64(b[off+32:off+40], w.Target)
		binary.BigEndian.PutUint64(b[off+40:off+48], w.Source)
		off += hwmEntryLen
	}
	binary.BigEndian.PutUint32(b[size-hwmCRCLen:], crc32.Checksum(b[:size-hwmCRCLen], castagnoli))
	return b
}

// decodeHWMSlot decodes one slot of size bytes.
func decodeHWMSlot(b []byte) (hwmState, uint64, error) {
	size := len(b)
	var st hwmState
	if string(b[0:8]) != hwmMagic {
		return st, 0, errors.New("bad magic")
	}
	if crc32.Checksum(b[:size-hwmCRCLen], castagnoli) != binary.BigEndian.Uint32(b[size-hwmCRCLen:]) {
		return st, 0, errors.New("checksum mismatch")
	}
	if v := binary.BigEndian.Uint16(b[8:10]); v != hwmFormatVersion {
		return st, 0, fmt.Errorf("%w %d (this build reads version %d)", errHWMFormat, v, hwmFormatVersion)
	}
	if got := binary.BigEndian.Uint32(b[12:16]); int(got) != size {
		return st, 0, fmt.Errorf("slot size field %d, slot is %d bytes", got, size)
	}
	seq := binary.BigEndian.Uint64(b[16:24])
	if seq == 0 {
		return st, 0, errors.New("sequence number 0")
	}
	copy(st.genesis[:], b[24:56])
	if n := binary.BigEndian.Uint64(b[56:64]); n > 0 {
		c := checkpoint.Checkpoint{Number: n}
		copy(c.Hash[:], b[64:96])
		st.finalized = &c
	} else if !bytes.Equal(b[64:96], make([]byte, 32)) {
		return st, 0, errors.New("finalized hash without a number")
	}
	count := binary.BigEndian.Uint32(b[96:100])
	if uint64(count) > uint64((size-hwmHeaderLen-hwmCRCLen)/hwmEntryLen) {
		return st, 0, fmt.Errorf("%d keys do not fit a slot of %d bytes", count, size)
	}
	off := hwmHeaderLen
	for i := 0; i < int(count); i++ {
		w := SignerWatermark{
			PublicKey: bytes.Clone(b[off : off+32]),
			Target:    binary.BigEndian.Uint64(b[off+32 : off+40]),
			Source:    binary.BigEndian.Uint64(b[off+40 : off+48]),
		}
		if i > 0 && bytes.Compare(st.signers[i-1].PublicKey, w.PublicKey) >= 0 {
			return st, 0, errors.New("keys not strictly increasing")
		}
		st.signers = append(st.signers, w)
		off += hwmEntryLen
	}
	return st, seq, nil
}

// parseHWM decodes a whole file: the valid slot with the highest sequence
// number.
func parseHWM(raw []byte) (hwmState, uint64, int, error) {
	size := len(raw) / 2
	if len(raw)%2 != 0 || size%hwmUnit != 0 || size < hwmUnit || size > hwmMaxSlot {
		return hwmState{}, 0, 0, fmt.Errorf("file is %d bytes, not two slots of a multiple of %d bytes", len(raw), hwmUnit)
	}
	var (
		best    hwmState
		bestSeq uint64
		errs    []error
	)
	for i := 0; i < 2; i++ {
		st, seq, err := decodeHWMSlot(raw[i*size : (i+1)*size])
		if err == nil && seq%2 != uint64(i) {
			err = fmt.Errorf("sequence %d in slot %d", seq, i)
		}
		if err != nil {
			if errors.Is(err, errHWMFormat) {
				return hwmState{}, 0, 0, fmt.Errorf("slot %d: %w", i, err)
			}
			errs = append(errs, fmt.Errorf("slot %d: %w", i, err))
			continue
		}
		if seq > bestSeq {
			best, bestSeq = st, seq
		}
	}
	if bestSeq == 0 {
		return hwmState{}, 0, 0, errors.Join(errs...)
	}
	return best, bestSeq, size, nil
}

// hwmFile is the open high-water-mark file of a database.
type hwmFile struct {
	fs       vfs.FS
	path     string
	readOnly bool
	existed  bool

	mu      sync.Mutex
	f       vfs.File // nil until created; nil for read-only opens
	size    int      // slot size of the file on disk
	seq     uint64   // sequence number of the newest slot on disk
	st      hwmState // the durable state (a failed write leaves it)
	problem error    // read-only: why a writable open would refuse
	failed  error    // a write failed: the file's state is unknown
	// disabled turns the file off (benchmarks measuring its cost only).
	disabled bool
}

// openHWM reads the high-water mark of the database at dbPath. When the
// directory holds no database yet (fresh), it also checks that the file
// belongs to genesis (unless zero), before anything is created; otherwise
// the database's own genesis check comes first and reconcileHWM checks the
// file's. A file that cannot be trusted refuses a writable open; a read-only
// open records the problem (HighWaterMark) and goes on. A writable open
// removes a temporary file left by a crash. The file is opened for writing
// later (reconcileHWM), once the database opened.
func openHWM(fs vfs.FS, dbPath string, readOnly, fresh bool, genesis checkpoint.Hash) (*hwmFile, error) {
	h := &hwmFile{fs: fs, path: HWMPath(dbPath), readOnly: readOnly}
	if !fresh {
		genesis = checkpoint.ZeroHash
	}
	err := h.load(genesis)
	if err != nil && readOnly {
		h.problem, err = err, nil
	}
	return h, err
}

func (h *hwmFile) load(genesis checkpoint.Hash) error {
	if !h.readOnly {
		if err := h.fs.Remove(h.path + ".tmp"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s.tmp: %w", h.path, err)
		}
	}
	f, err := h.fs.Open(h.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open high-water mark %s: %w", h.path, err)
	}
	raw, err := io.ReadAll(io.LimitReader(f, 2*hwmMaxSlot+1))
	_ = f.Close()
	if err != nil {
		return fmt.Errorf("read high-water mark %s: %w", h.path, err)
	}
	h.existed = true
	st, seq, size, err := parseHWM(raw)
	if err != nil {
		return hwmUnreadable(h.path, err)
	}
	h.st, h.seq, h.size = st, seq, size
	if !genesis.IsZero() && st.genesis != genesis {
		return hwmWrongChain(h.path, st.genesis, genesis)
	}
	return nil
}

func hwmUnreadable(path string, cause error) error {
	if errors.Is(cause, errHWMFormat) {
		return &refusal{
			msg: fmt.Sprintf("high-water mark file %s was written by a newer flare-node (%s): refusing to start; run a flare-node release that reads it",
				path, oneLine(cause.Error())),
			errs: []error{ErrSchemaVersion, cause},
		}
	}
	return &refusal{
		msg: fmt.Sprintf("high-water mark file %s is damaged (%s): refusing to start; if the checkpoint database next to it is intact, move %s away and start again (it is rebuilt from the database); otherwise import a signer export newer than the key's last vote ('flare-node signer import FILE' of a file 'flare-node signer export' wrote): never restore an older backup of the database or of this file, which would let the key sign again at or below its last target",
			path, oneLine(cause.Error()), path),
		errs: []error{ErrCorrupted, cause},
	}
}

func hwmWrongChain(path string, stored, want checkpoint.Hash) error {
	return &refusal{
		msg: fmt.Sprintf("high-water mark file %s belongs to the chain with genesis %s, not %s: refusing to start; it does not belong next to this chain's checkpoint database: move it back to its chain's data directory",
			path, stored, want),
		errs: []error{ErrCorrupted, checkpoint.ErrWrongChain},
	}
}

func behindHWM(dbPath, hwmPath string, restored, recorded uint64) error {
	return &refusal{
		msg: fmt.Sprintf("checkpoint database at %s restored finalized checkpoint %d but its high-water mark %s recorded finalized checkpoint %d as durable (synced writes were lost, or this is an older copy of the database): refusing to start; the signer records are safe (the high-water mark keeps their watermarks); move the directory %s away to rebuild finality from the chain database and peers, or restore a newer copy",
			dbPath, restored, hwmPath, recorded, dbPath),
		errs: []error{ErrBehindHighWaterMark},
	}
}

// state returns a copy of the durable state.
func (h *hwmFile) state() hwmState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st.clone()
}

// raise applies fn to a copy of the state and, when fn reports a change,
// writes it durably before returning. A failed write makes every later
// raise fail (the file's durable state is unknown).
func (h *hwmFile) raise(fn func(*hwmState) bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.disabled {
		return nil
	}
	if h.failed != nil {
		return h.failed
	}
	next := h.st.clone()
	if !fn(&next) {
		return nil
	}
	if err := h.writeLocked(next); err != nil {
		h.failed = fmt.Errorf("write high-water mark %s: %w", h.path, err)
		return h.failed
	}
	h.st = next
	return nil
}

// writeLocked makes next durable: in place when it fits the slots, else as
// a new file.
func (h *hwmFile) writeLocked(next hwmState) error {
	if h.readOnly {
		return ErrReadOnly
	}
	need := hwmSlotSize(len(next.signers))
	if need > hwmMaxSlot {
		return fmt.Errorf("%d keys do not fit the high-water mark (at most %d)", len(next.signers), (hwmMaxSlot-hwmHeaderLen-hwmCRCLen)/hwmEntryLen)
	}
	if h.size == 0 || need > h.size {
		return h.replaceLocked(next, need)
	}
	if h.f == nil {
		f, err := h.fs.OpenReadWrite(h.path, vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		h.f = f
	}
	seq := h.seq + 1
	slot := encodeHWMSlot(next, seq, h.size)
	if _, err := h.f.WriteAt(slot, int64(seq%2)*int64(h.size)); err != nil {
		return err
	}
	if err := h.f.SyncData(); err != nil {
		return err
	}
	h.seq = seq
	return nil
}

// replaceLocked writes a new file with both slots holding next (temporary
// file, fsync, rename, directory fsync) and reopens it.
func (h *hwmFile) replaceLocked(next hwmState, size int) error {
	size = max(size, h.size, hwmUnit)
	seq := h.seq + 2
	buf := make([]byte, 2*size)
	copy(buf[(seq-1)%2*uint64(size):], encodeHWMSlot(next, seq-1, size))
	copy(buf[seq%2*uint64(size):], encodeHWMSlot(next, seq, size))
	tmp := h.path + ".tmp"
	f, err := h.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if h.f != nil {
		_ = h.f.Close()
		h.f = nil
	}
	if err := h.fs.Rename(tmp, h.path); err != nil {
		return err
	}
	if err := syncDir(h.fs, h.fs.PathDir(h.path)); err != nil {
		return err
	}
	if h.f, err = h.fs.OpenReadWrite(h.path, vfs.WriteCategoryUnspecified); err != nil {
		return err
	}
	h.size, h.seq = size, seq
	return nil
}

// close closes the file.
func (h *hwmFile) close() error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f == nil {
		return nil
	}
	err := h.f.Close()
	h.f = nil
	return err
}

// ReadHighWaterMark reads the high-water mark of the database directory
// dbPath without opening the database and without writing anything (a
// start-up check before anything is created). A missing file is no error
// (Existed false); a file that cannot be read or parsed is (Open would
// refuse it as well).
func ReadHighWaterMark(dbPath string) (HighWaterMark, error) {
	h := &hwmFile{fs: vfs.Default, path: HWMPath(dbPath), readOnly: true}
	if err := h.load(checkpoint.ZeroHash); err != nil {
		return HighWaterMark{Path: h.path, Existed: h.existed}, err
	}
	st := h.st.clone()
	return HighWaterMark{Path: h.path, Existed: h.existed, Finalized: st.finalized, Signers: st.signers}, nil
}

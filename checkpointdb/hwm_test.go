package checkpointdb

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

func pubOf(i int) ed25519.PublicKey { return testKeys[i].Public().(ed25519.PublicKey) }

// readHWMFile parses the high-water-mark file of the database "db" on fs.
func readHWMFile(t testing.TB, fs vfs.FS) (hwmState, uint64, []byte) {
	t.Helper()
	f, err := fs.Open("db.hwm")
	require.NoError(t, err)
	raw, err := io.ReadAll(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	st, seq, _, err := parseHWM(raw)
	require.NoError(t, err)
	return st, seq, raw
}

func writeHWMFile(t testing.TB, fs vfs.FS, raw []byte) {
	t.Helper()
	f, err := fs.Create("db.hwm", vfs.WriteCategoryUnspecified)
	require.NoError(t, err)
	_, err = f.Write(bytes.Clone(raw)) // vfs.File.Write may modify its argument
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
}

// TestHWMSlotLayout pins the documented byte layout (docs/storage.md).
func TestHWMSlotLayout(t *testing.T) {
	fin := cp(7)
	st := hwmState{genesis: testGenesis, finalized: &fin, signers: []SignerWatermark{
		{PublicKey: make(ed25519.PublicKey, 32), Target: 9, Source: 8},
		{PublicKey: append(make(ed25519.PublicKey, 31), 1), Target: 3, Source: 1},
	}}
	b := encodeHWMSlot(st, 5, 512)
	require.Len(t, b, 512)
	require.Equal(t, "FLAREHWM", string(b[0:8]))
	require.Equal(t, uint16(1), binary.BigEndian.Uint16(b[8:10]))
	require.Equal(t, []byte{0, 0}, b[10:12])
	require.Equal(t, uint32(512), binary.BigEndian.Uint32(b[12:16]))
	require.Equal(t, uint64(5), binary.BigEndian.Uint64(b[16:24]))
	require.Equal(t, testGenesis[:], b[24:56])
	require.Equal(t, uint64(7), binary.BigEndian.Uint64(b[56:64]))
	require.Equal(t, fin.Hash[:], b[64:96])
	require.Equal(t, uint32(2), binary.BigEndian.Uint32(b[96:100]))
	require.Equal(t, uint64(9), binary.BigEndian.Uint64(b[100+32:100+40]))
	require.Equal(t, uint64(8), binary.BigEndian.Uint64(b[100+40:100+48]))
	require.Equal(t, byte(1), b[148+31])
	require.Equal(t, uint64(3), binary.BigEndian.Uint64(b[148+32:148+40]))
	require.Equal(t, make([]byte, 512-196-4), b[196:508], "zero padding")
	require.Equal(t, crc32.Checksum(b[:508], crc32.MakeTable(crc32.Castagnoli)), binary.BigEndian.Uint32(b[508:]))
	got, seq, err := decodeHWMSlot(b)
	require.NoError(t, err)
	require.Equal(t, uint64(5), seq)
	require.Equal(t, st, got)

	// 8 keys fit 512-byte slots, the 9th needs 1024.
	require.Equal(t, 512, hwmSlotSize(0))
	require.Equal(t, 512, hwmSlotSize(8))
	require.Equal(t, 1024, hwmSlotSize(9))

	// No finalized checkpoint: number 0 and a zero hash.
	b = encodeHWMSlot(hwmState{genesis: testGenesis}, 1, 512)
	require.Equal(t, make([]byte, 40), b[56:96])
	got, _, err = decodeHWMSlot(b)
	require.NoError(t, err)
	require.Nil(t, got.finalized)
}

func TestHWMParseRefusesDamage(t *testing.T) {
	st := hwmState{genesis: testGenesis, signers: []SignerWatermark{{PublicKey: pubOf(0), Target: 4, Source: 3}}}
	file := func(seq0, seq1 uint64) []byte {
		raw := append(encodeHWMSlot(st, seq0, 512), encodeHWMSlot(st, seq1, 512)...)
		return raw
	}
	good := file(2, 3)
	_, seq, size, err := parseHWM(good)
	require.NoError(t, err)
	require.Equal(t, uint64(3), seq)
	require.Equal(t, 512, size)

	flip := func(raw []byte, off int) []byte {
		c := append([]byte(nil), raw...)
		c[off] ^= 0x40
		return c
	}
	// A torn newest slot leaves the older one.
	_, seq, _, err = parseHWM(flip(good, 512+30))
	require.NoError(t, err)
	require.Equal(t, uint64(2), seq)
	_, seq, _, err = parseHWM(flip(good, 30))
	require.NoError(t, err)
	require.Equal(t, uint64(3), seq)

	for name, raw := range map[string][]byte{
		"both slots damaged":       flip(flip(good, 30), 512+30),
		"truncated":                good[:700],
		"empty":                    nil,
		"odd size":                 append(append([]byte(nil), good...), 0),
		"sequence in wrong slot":   file(3, 2),
		"zeroed":                   make([]byte, 1024),
		"slot size field mismatch": append(encodeHWMSlot(st, 2, 1024)[:512], encodeHWMSlot(st, 3, 1024)[:512]...),
	} {
		t.Run(name, func(t *testing.T) {
			_, _, _, err := parseHWM(raw)
			require.Error(t, err)
			require.NotErrorIs(t, err, errHWMFormat)
		})
	}
	// A newer format version is told apart from damage.
	newer := encodeHWMSlot(st, 2, 512)
	binary.BigEndian.PutUint16(newer[8:10], 2)
	binary.BigEndian.PutUint32(newer[508:], crc32.Checksum(newer[:508], castagnoli))
	_, _, _, err = parseHWM(append(newer, good[512:]...))
	require.ErrorIs(t, err, errHWMFormat)
}

// TestHWMFollowsAcknowledgedWrites: the file holds the finalized checkpoint
// and each key's watermarks once the calls returned, alternating slots.
func TestHWMFollowsAcknowledgedWrites(t *testing.T) {
	fs := vfs.NewMem()
	db := openAt(t, fs, "db")
	require.True(t, db.Created())
	hw := db.HighWaterMark()
	require.False(t, hw.Existed)
	require.Equal(t, "db.hwm", hw.Path)
	require.Nil(t, hw.Finalized)
	require.Empty(t, hw.Signers)
	st, seq0, raw := readHWMFile(t, fs)
	require.Len(t, raw, 1024)
	require.Equal(t, testGenesis, st.genesis)

	signer := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[0]), 0, testGenesis)
	_, err := signer.SignVote(bg, linkVote(3, 0))
	require.NoError(t, err)
	st, seq1, _ := readHWMFile(t, fs)
	require.Equal(t, seq0+1, seq1)
	require.Equal(t, []SignerWatermark{{PublicKey: pubOf(0), Target: 3, Source: 2}}, st.signers)

	fillChain(t, db, 5, 4) // finalized 4
	st, _, _ = readHWMFile(t, fs)
	require.Equal(t, cpPtr(4), st.finalized)
	hw = db.HighWaterMark()
	require.Equal(t, cpPtr(4), hw.Finalized)
	require.Equal(t, st.signers, hw.Signers)

	// A call that changes nothing does not write.
	_, _, before := readHWMFile(t, fs)
	require.NoError(t, db.StoreCertificate(bg, certOf(t, linkVote(5, 0), 0, 1, 2), cpPtr(5), cpPtr(4)))
	_, _, after := readHWMFile(t, fs)
	require.Equal(t, before, after)

	require.NoError(t, db.Close())
	db = openAt(t, fs, "db")
	require.False(t, db.Created())
	require.True(t, db.HighWaterMark().Existed)
	require.Equal(t, cpPtr(4), db.HighWaterMark().Finalized)
}

// TestHWMGrowsForManyKeys: more keys than a 512-byte slot holds make the
// file grow atomically; everything reads back.
func TestHWMGrowsForManyKeys(t *testing.T) {
	fs := vfs.NewMem()
	db := openAt(t, fs, "db")
	const keys = 20
	for i := 0; i < keys; i++ {
		rec := checkpoint.SignerRecord{PublicKey: pubOf(i), Genesis: testGenesis, Last: ptrVote(signed(linkVote(uint64(10+i), 0), i))}
		require.NoError(t, db.StoreSignerRecord(bg, rec))
	}
	st, _, raw := readHWMFile(t, fs)
	require.Len(t, raw, 2*hwmSlotSize(keys))
	require.Len(t, st.signers, keys)
	_, err := fs.Stat("db.hwm.tmp")
	require.True(t, errors.Is(err, os.ErrNotExist), "no temporary file left")
	require.NoError(t, db.Close())
	db = openAt(t, fs, "db")
	for i := 0; i < keys; i++ {
		w, ok := db.hwm.signer(pubOf(i))
		require.True(t, ok)
		require.Equal(t, uint64(10+i), w.Target)
	}
}

// history builds a database on a crashable file system and returns crash
// clones (all synced data) taken at finality 5 with signer target 6, and at
// the end (finality 10, target 11).
func history(t *testing.T) (older, newer *vfs.MemFS) {
	t.Helper()
	mem := vfs.NewCrashableMem()
	db, err := Open("db", Options{FS: mem, Genesis: testGenesis})
	require.NoError(t, err)
	signer := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[0]), 0, testGenesis)
	for n := uint64(1); n <= 11; n++ {
		_, err := signer.SignVote(bg, linkVote(n, 0))
		require.NoError(t, err)
		var f *checkpoint.Checkpoint
		if n > 1 {
			f = cpPtr(n - 1)
		}
		require.NoError(t, db.StoreCertificate(bg, certOf(t, linkVote(n, 0), 0, 1, 2), cpPtr(n), f))
		if n == 6 {
			older = mem.CrashClone(vfs.CrashCloneCfg{})
		}
	}
	require.NoError(t, db.Close())
	return older, mem
}

// replaceDB puts the database directory of src in place of dst's, keeping
// dst's high-water mark: an older backup restored, or a WAL that lost its
// synced tail.
func replaceDB(t *testing.T, dst, src *vfs.MemFS) *vfs.MemFS {
	t.Helper()
	out := cloneMem(src)
	_, _, raw := readHWMFile(t, dst)
	writeHWMFile(t, out, raw)
	return out
}

func TestOpenRefusesDatabaseBehindHWM(t *testing.T) {
	older, newer := history(t)
	fs := replaceDB(t, newer, older)

	_, err := Open("db", Options{FS: fs, Genesis: testGenesis})
	requireRefusal(t, err, ErrBehindHighWaterMark)
	require.Contains(t, err.Error(), "restored finalized checkpoint 5")
	require.Contains(t, err.Error(), "recorded finalized checkpoint 10")
	require.Contains(t, err.Error(), "db.hwm")
	require.Contains(t, err.Error(), "move the directory db away")
	// Refused again: the refusal changed nothing.
	_, err = Open("db", Options{FS: fs, Genesis: testGenesis})
	require.ErrorIs(t, err, ErrBehindHighWaterMark)
	_, _, raw := readHWMFile(t, fs)
	_, _, want := readHWMFile(t, newer)
	require.Equal(t, want, raw, "the high-water mark is not lowered")

	// A read-only open reports.
	ro, err := Open("db", Options{FS: fs, Genesis: testGenesis, ReadOnly: true})
	require.NoError(t, err)
	hw := ro.HighWaterMark()
	require.ErrorIs(t, hw.Problem, ErrBehindHighWaterMark)
	require.Equal(t, uint64(10), hw.Finalized.Number)
	require.NoError(t, ro.Close())

	// Moving the directory away starts a fresh database: accepted, the
	// high-water mark keeps finality 10 and the signer's watermarks.
	require.NoError(t, fs.RemoveAll("db"))
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err)
	require.True(t, db.Created())
	hw = db.HighWaterMark()
	require.True(t, hw.Existed, "a lost database is told apart from a new validator")
	require.Equal(t, uint64(10), hw.Finalized.Number)
	rec, found, err := db.LoadSignerRecord(bg, pubOf(0))
	require.NoError(t, err)
	require.True(t, found, "the high-water mark keeps the key's record alive")
	require.Nil(t, rec.Last)
	require.Equal(t, uint64(11), rec.MinTarget)
	require.Equal(t, uint64(10), rec.MinSource)
	s := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[0]), 0, testGenesis)
	_, err = s.SignVote(bg, checkpoint.Vote{Genesis: testGenesis, SetID: 1, Source: cp(0), Target: cp(7)})
	require.ErrorIs(t, err, checkpoint.ErrSlashable, "the surround vote of issue 7 is refused")
	_, err = s.SignVote(bg, linkVote(12, 0))
	require.NoError(t, err)
	// Rebuilding finality from below the floor survives restarts.
	require.NoError(t, db.StoreCertificate(bg, certOf(t, linkVote(3, 0), 0, 1, 2), cpPtr(3), cpPtr(2)))
	require.NoError(t, db.Close())
	db, err = Open("db", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err, "a rebuilding database is not behind its high-water mark")
	require.False(t, db.Created())
	require.Equal(t, uint64(10), db.HighWaterMark().Finalized.Number)
	require.NoError(t, db.Close())
}

// TestSignerRecordBehindHWMIsRaised: a database that lost the last signer
// record (no finality involved) opens, and the record is raised to the
// high-water mark with a warning naming both numbers.
func TestSignerRecordBehindHWMIsRaised(t *testing.T) {
	mem := vfs.NewCrashableMem()
	db, err := Open("db", Options{FS: mem, Genesis: testGenesis})
	require.NoError(t, err)
	signer := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[0]), 0, testGenesis)
	var older *vfs.MemFS
	for n := uint64(1); n <= 9; n++ {
		_, err := signer.SignVote(bg, linkVote(n, 0))
		require.NoError(t, err)
		if n == 4 {
			older = mem.CrashClone(vfs.CrashCloneCfg{})
		}
	}
	require.NoError(t, db.Close())
	fs := replaceDB(t, mem, older)

	core, logs := observer.New(zapcore.InfoLevel)
	db, err = Open("db", Options{FS: fs, Genesis: testGenesis, Logger: zap.New(core)})
	require.NoError(t, err)
	defer db.Close()
	rec, found, err := db.LoadSignerRecord(bg, pubOf(0))
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, uint64(4), rec.Last.Target.Number, "the stored last vote is kept")
	require.Equal(t, uint64(9), rec.MinTarget)
	require.Equal(t, uint64(8), rec.MinSource)
	warns := logs.FilterMessageSnippet("Signer record behind its high-water mark").All()
	require.Len(t, warns, 1)
	require.Equal(t, zapcore.WarnLevel, warns[0].Level)
	fields := warns[0].ContextMap()
	require.Equal(t, uint64(4), fields["record_target"])
	require.Equal(t, uint64(9), fields["hwm_target"])
	s := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[0]), 0, testGenesis)
	for n := uint64(5); n <= 9; n++ {
		_, err := s.SignVote(bg, linkVote(n, 1))
		require.ErrorIs(t, err, checkpoint.ErrSlashable, "target %d was signed before the loss", n)
	}
	_, err = s.SignVote(bg, linkVote(10, 0))
	require.NoError(t, err)
	recs, err := db.SignerRecords(bg)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, uint64(10), recs[0].Last.Target.Number)
}

func TestHWMDamagedOrForeignIsRefused(t *testing.T) {
	base := vfs.NewCrashableMem()
	db := openAt(t, base, "db")
	fillChain(t, db, 4, 4)
	require.NoError(t, db.Close())
	_, _, good := readHWMFile(t, base)

	damaged := append([]byte(nil), good...)
	damaged[40] ^= 1
	damaged[512+40] ^= 1
	other := checkpoint.HashOf([]byte("other chain"))
	st, seq, _, err := parseHWM(good)
	require.NoError(t, err)
	st.genesis = other
	foreign := append(encodeHWMSlot(st, seq+1, 512), encodeHWMSlot(st, seq, 512)...)
	if (seq+1)%2 == 1 {
		foreign = append(encodeHWMSlot(st, seq, 512), encodeHWMSlot(st, seq+1, 512)...)
	}

	for _, tc := range []struct {
		name string
		raw  []byte
		want error
		msg  string
	}{
		{"both slots damaged", damaged, ErrCorrupted, "high-water mark file db.hwm is damaged"},
		{"truncated", good[:100], ErrCorrupted, "move db.hwm away"},
		{"another chain", foreign, ErrCorrupted, "belongs to the chain with genesis " + other.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := cloneMem(base)
			writeHWMFile(t, fs, tc.raw)
			_, err := Open("db", Options{FS: fs, Genesis: testGenesis})
			require.ErrorIs(t, err, tc.want)
			require.NotContains(t, err.Error(), "\n")
			require.Contains(t, err.Error(), tc.msg)
			require.Contains(t, err.Error(), "refusing to start")
			if errors.Is(err, ErrCorrupted) && !errors.Is(err, checkpoint.ErrWrongChain) {
				// The remedy for a lost mark is a signer export newer than
				// the last vote, never an older backup (it would let the
				// key sign again at or below its last target).
				require.Contains(t, err.Error(), "signer export newer than the key's last vote ('flare-node signer import FILE'")
				require.NotContains(t, err.Error(), "restore both from a backup")
			}
			// Read-only inspection still works and reports it.
			ro, err := Open("db", Options{FS: fs, Genesis: testGenesis, ReadOnly: true})
			require.NoError(t, err)
			require.ErrorIs(t, ro.HighWaterMark().Problem, tc.want)
			require.NoError(t, ro.Close())
			// The database itself is intact: moving the file away recreates it.
			require.NoError(t, fs.Remove("db.hwm"))
			db, err := Open("db", Options{FS: fs, Genesis: testGenesis})
			require.NoError(t, err)
			require.False(t, db.HighWaterMark().Existed)
			require.Equal(t, cpPtr(3), db.HighWaterMark().Finalized)
			require.NoError(t, db.Close())
		})
	}

	t.Run("another chain next to a fresh directory creates no database", func(t *testing.T) {
		fs := vfs.NewMem()
		writeHWMFile(t, fs, foreign)
		_, err := Open("db", Options{FS: fs, Genesis: testGenesis})
		require.ErrorIs(t, err, ErrCorrupted)
		require.ErrorIs(t, err, checkpoint.ErrWrongChain)
		names, err := fs.List("db")
		require.NoError(t, err)
		require.Subset(t, []string{"LOCK"}, names, "refused before Pebble created anything")
	})
}

func TestHWMRecreatedWhenMissing(t *testing.T) {
	fs := vfs.NewMem()
	db := openAt(t, fs, "db")
	fillChain(t, db, 6, 4)
	require.NoError(t, db.StoreSignerRecord(bg, checkpoint.SignerRecord{PublicKey: pubOf(0), Genesis: testGenesis, Last: ptrVote(signed(linkVote(6, 0), 0))}))
	require.NoError(t, db.Close())
	require.NoError(t, fs.Remove("db.hwm"))

	core, logs := observer.New(zapcore.InfoLevel)
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis, Logger: zap.New(core)})
	require.NoError(t, err)
	defer db.Close()
	require.False(t, db.Created())
	hw := db.HighWaterMark()
	require.False(t, hw.Existed)
	require.Equal(t, cpPtr(5), hw.Finalized)
	require.Equal(t, []SignerWatermark{{PublicKey: pubOf(0), Target: 6, Source: 5}}, hw.Signers)
	require.Len(t, logs.FilterMessageSnippet("High-water mark file missing").All(), 1)
	st, _, _ := readHWMFile(t, fs)
	require.Equal(t, hw.Signers, st.signers)
}

// TestHWMWriteFailureStopsTheSigner: a failing high-water-mark write is a
// failed signer-record write: the vote is not released and the database
// stops (ErrFatal).
func TestHWMWriteFailureStopsTheSigner(t *testing.T) {
	var fail atomic.Bool
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if fail.Load() && strings.HasSuffix(op.Path, ".hwm") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errorfs.ErrInjected
		}
		return nil
	}))
	core, logs := observer.New(zapcore.InfoLevel)
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis, Logger: zap.New(core)})
	require.NoError(t, err)
	signer := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[0]), 0, testGenesis)
	_, err = signer.SignVote(bg, linkVote(1, 0))
	require.NoError(t, err)
	fail.Store(true)
	_, err = signer.SignVote(bg, linkVote(2, 0))
	require.ErrorIs(t, err, ErrFatal)
	require.ErrorIs(t, err, finality.ErrSignerFailed)
	failed := logs.FilterMessage("High-water mark write failed: checkpoint database stops accepting calls").All()
	require.Len(t, failed, 1)
	require.Equal(t, zapcore.ErrorLevel, failed[0].Level)
	require.ErrorIs(t, db.StoreVote(bg, signed(linkVote(2, 0), 1)), ErrFatal)
	_ = db.Close()

	// A certificate's finality raise likewise.
	fail.Store(false)
	db2, err := Open("db2", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err)
	fail.Store(true)
	err = db2.StoreCertificate(bg, certOf(t, linkVote(2, 0), 0, 1, 2), cpPtr(2), cpPtr(1))
	require.ErrorIs(t, err, ErrFatal)
	_ = db2.Close()
}

// TestHWMRaisedAfterInterruptedWrite: a database ahead of its high-water
// mark (a crash between the synced Pebble write and the mark's write) is
// not an error; Open raises the mark and says so.
func TestHWMRaisedAfterInterruptedWrite(t *testing.T) {
	fs := vfs.NewMem()
	db := openAt(t, fs, "db")
	db.hwm.disabled = true // the mark's writes are "lost"
	fillChain(t, db, 5, 4)
	require.NoError(t, db.StoreSignerRecord(bg, checkpoint.SignerRecord{PublicKey: pubOf(0), Genesis: testGenesis, Last: ptrVote(signed(linkVote(5, 0), 0))}))
	require.NoError(t, db.Close())
	st, _, _ := readHWMFile(t, fs)
	require.Nil(t, st.finalized)

	core, logs := observer.New(zapcore.InfoLevel)
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis, Logger: zap.New(core)})
	require.NoError(t, err)
	defer db.Close()
	entries := logs.FilterMessage("High-water mark raised to the checkpoint database (a write was interrupted)").All()
	require.Len(t, entries, 1)
	require.Equal(t, true, entries[0].ContextMap()["finalized"])
	require.Equal(t, int64(1), entries[0].ContextMap()["keys"])
	st, _, _ = readHWMFile(t, fs)
	require.Equal(t, cpPtr(4), st.finalized)
	require.Equal(t, []SignerWatermark{{PublicKey: pubOf(0), Target: 5, Source: 4}}, st.signers)
	require.Empty(t, logs.FilterMessageSnippet("Signer record behind").All(), "a database ahead of its mark is not a warning")
}

func TestHWMNewerFormatIsRefused(t *testing.T) {
	fs := vfs.NewMem()
	db := openAt(t, fs, "db")
	require.NoError(t, db.Close())
	_, _, raw := readHWMFile(t, fs)
	for i := 0; i < 2; i++ {
		slot := raw[i*512 : (i+1)*512]
		binary.BigEndian.PutUint16(slot[8:10], 2)
		binary.BigEndian.PutUint32(slot[508:], crc32.Checksum(slot[:508], castagnoli))
	}
	writeHWMFile(t, fs, raw)
	_, err := Open("db", Options{FS: fs, Genesis: testGenesis})
	require.ErrorIs(t, err, ErrSchemaVersion)
	require.Contains(t, err.Error(), "high-water mark file db.hwm was written by a newer flare-node")
	require.NotContains(t, err.Error(), "\n")
}

// TestHWMConcurrentWriters: signer records of several keys and finalizing
// certificates written concurrently leave the mark at the maximum of each
// (raise-only under concurrency; run with -race).
func TestHWMConcurrentWriters(t *testing.T) {
	fs := vfs.NewMem()
	db := openAt(t, fs, "db")
	const keys, rounds = 4, 30
	var wg sync.WaitGroup
	for k := 0; k < keys; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			s := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[k]), checkpoint.ValidatorIndex(k), testGenesis)
			for n := uint64(1); n <= rounds; n++ {
				if _, err := s.SignVote(bg, linkVote(n, 0)); err != nil {
					t.Error(err)
					return
				}
			}
		}(k)
	}
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := uint64(2 + w); n <= rounds; n += 2 {
				c := quorumCert(n, 4)
				if err := db.StoreCertificate(bg, c, cpPtr(n), cpPtr(n-1)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	st, _, _ := readHWMFile(t, fs)
	require.Equal(t, cpPtr(rounds-1), st.finalized)
	require.Len(t, st.signers, keys)
	for _, w := range st.signers {
		require.Equal(t, uint64(rounds), w.Target)
		require.Equal(t, uint64(rounds-1), w.Source)
	}
}

package checkpointdb

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// readFile returns the content of name on fs.
func readFile(t *testing.T, fs vfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(name)
	require.NoError(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	return b
}

func writeFile(t *testing.T, fs vfs.FS, name string, b []byte) {
	t.Helper()
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
}

// filesWith lists the files of dir whose name matches.
func filesWith(t *testing.T, fs vfs.FS, dir string, match func(string) bool) []string {
	t.Helper()
	names, err := fs.List(dir)
	require.NoError(t, err)
	var out []string
	for _, n := range names {
		if match(n) {
			out = append(out, fs.PathJoin(dir, n))
		}
	}
	slices.Sort(out)
	return out
}

// cloneMem copies a MemFS (a crash clone that keeps everything).
func cloneMem(fs *vfs.MemFS) *vfs.MemFS {
	return fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 1))})
}

// requireRefusal checks a one-line refusal wrapping want that says what to
// do, and that the database was not replaced by a fresh one.
func requireRefusal(t *testing.T, err error, want error) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, want)
	msg := err.Error()
	require.NotContains(t, msg, "\n", "refusal must be one line")
	require.True(t, strings.HasPrefix(msg, "checkpoint database at db "), msg)
	require.Contains(t, msg, "refusing to start", msg)
}

// buildDB creates a database with signer records, votes, certificates and
// evidence; with flush the memtable is written to sstables (compact: and
// compacted), otherwise everything stays in the WAL.
func buildDB(t *testing.T, flush, compact bool) *vfs.MemFS {
	fs := vfs.NewCrashableMem()
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err)
	fillChain(t, db, 60, 7)
	require.NoError(t, db.StoreEvidence(bg, doubleVoteEvidence(59, 3)))
	rec := checkpoint.SignerRecord{PublicKey: testKeys[0].Public().(ed25519.PublicKey), Genesis: testGenesis, Last: ptrVote(signed(linkVote(60, 0), 0))}
	require.NoError(t, db.StoreSignerRecord(bg, rec))
	if flush {
		require.NoError(t, db.db.Flush())
	}
	if compact {
		require.NoError(t, db.db.Compact(bg, []byte{0}, []byte{prefixEnd}, false))
	}
	require.NoError(t, db.Close())
	return fs
}

func TestOpenRefusesCorruptedFiles(t *testing.T) {
	flip := func(at float64) func([]byte) []byte {
		return func(b []byte) []byte {
			b = slices.Clone(b)
			i := int(float64(len(b)-1) * at)
			b[i] ^= 0x10
			return b
		}
	}
	truncate := func(frac float64) func([]byte) []byte {
		return func(b []byte) []byte { return slices.Clone(b[:int(float64(len(b))*frac)]) }
	}
	isSST := func(n string) bool { return strings.HasSuffix(n, ".sst") }
	isManifest := func(n string) bool { return strings.HasPrefix(n, "MANIFEST-") }
	isWAL := func(n string) bool { return strings.HasSuffix(n, ".log") }

	type fixture struct {
		name           string
		flush, compact bool
		// crashed removes the clean-shutdown record: the files as a crash
		// leaves them, so only Pebble's and Open's own checks apply.
		crashed bool
	}
	wal := fixture{"wal", false, false, false}
	walCrashed := fixture{"wal crashed", false, false, true}
	flushed := fixture{"flushed", true, false, false}
	compacted := fixture{"compacted", true, true, false}
	flushedCrashed := fixture{"flushed crashed", true, false, true}
	compactedCrashed := fixture{"compacted crashed", true, true, true}
	tests := []struct {
		name   string
		fix    fixture
		file   func(string) bool
		mutate func([]byte) []byte
	}{
		{"manifest truncated", flushed, isManifest, truncate(0.5)},
		{"manifest bit flip start", flushed, isManifest, flip(0.05)},
		{"manifest bit flip middle", flushed, isManifest, flip(0.5)},
		{"manifest bit flip end", flushed, isManifest, flip(0.98)},
		{"manifest emptied", flushed, isManifest, truncate(0)},
		{"sstable truncated after flush", flushed, isSST, truncate(0.6)},
		{"sstable truncated after compaction", compacted, isSST, truncate(0.3)},
		{"sstable footer cut", compacted, isSST, func(b []byte) []byte { return slices.Clone(b[:len(b)-10]) }},
		{"sstable truncated after crash", compactedCrashed, isSST, truncate(0.5)},
		{"sstable deleted", compacted, isSST, nil},
		{"sstable deleted after crash", compactedCrashed, isSST, nil},
		{"wal bit flip middle", wal, isWAL, flip(0.5)},
		{"wal bit flip early", wal, isWAL, flip(0.2)},
		{"wal bit flip late", wal, isWAL, flip(0.95)},
		{"wal truncated", wal, isWAL, truncate(0.7)},
		{"wal bit flip middle after crash", walCrashed, isWAL, flip(0.5)},
		{"wal bit flip early after crash", walCrashed, isWAL, flip(0.2)},
	}
	// Bit flips all over the sstables, after a flush and after a compaction.
	for _, fix := range []fixture{flushed, compacted, flushedCrashed, compactedCrashed} {
		for _, at := range []float64{0.01, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.97, 0.995, 1} {
			tests = append(tests, struct {
				name   string
				fix    fixture
				file   func(string) bool
				mutate func([]byte) []byte
			}{fmt.Sprintf("sstable bit flip at %.3f %s", at, fix.name), fix, isSST, flip(at)})
		}
	}

	fixtures := map[fixture]*vfs.MemFS{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base, ok := fixtures[tc.fix]
			if !ok {
				base = buildDB(t, tc.fix.flush, tc.fix.compact)
				fixtures[tc.fix] = base
			}
			fs := cloneMem(base)
			if tc.fix.crashed {
				require.NoError(t, fs.Remove("db/"+cleanFileName))
			}
			files := filesWith(t, fs, "db", tc.file)
			require.NotEmpty(t, files, "fixture has no such file")
			for _, f := range files {
				if tc.mutate == nil {
					require.NoError(t, fs.Remove(f))
					continue
				}
				if b := readFile(t, fs, f); len(b) > 0 {
					writeFile(t, fs, f, tc.mutate(b))
				}
			}
			db, err := Open("db", Options{FS: fs, Genesis: testGenesis})
			if err == nil {
				db.Close()
			}
			requireRefusal(t, err, ErrCorrupted)
			require.Contains(t, err.Error(), "is corrupted")
			require.Contains(t, err.Error(), "restore a backup or move the directory away")
			if tc.mutate != nil {
				// The damaged files are still there (nothing was replaced).
				require.Equal(t, files, filesWith(t, fs, "db", tc.file))
			}
		})
	}
}

func TestOpenRefusesMissingManifest(t *testing.T) {
	fs := cloneMem(buildDB(t, true, false))
	// Without the clean-shutdown record (which would report the missing
	// marker first), Pebble's "does not exist" is refused as corruption.
	require.NoError(t, fs.Remove("db/"+cleanFileName))
	for _, f := range filesWith(t, fs, "db", func(n string) bool { return strings.HasPrefix(n, "marker.manifest") }) {
		require.NoError(t, fs.Remove(f))
	}
	ssts := filesWith(t, fs, "db", func(n string) bool { return strings.HasSuffix(n, ".sst") })
	_, err := Open("db", Options{FS: fs, Genesis: testGenesis})
	requireRefusal(t, err, ErrCorrupted)
	require.ErrorIs(t, err, pebble.ErrDBDoesNotExist)
	require.Equal(t, ssts, filesWith(t, fs, "db", func(n string) bool { return strings.HasSuffix(n, ".sst") }), "sstables must not be deleted")
}

func TestOpenRefusesBadRecords(t *testing.T) {
	pub := testKeys[0].Public().(ed25519.PublicKey)
	goodVote, err := checkpoint.EncodeVote(signed(linkVote(60, 0), 5))
	require.NoError(t, err)
	tests := []struct {
		name string
		key  []byte
		val  []byte
		want error
	}{
		{"garbage signer record", signerKey(pub), []byte{0xff, 0x01, 0x02}, ErrCorrupted},
		{"signer record of another key", signerKey(testKeys[1].Public().(ed25519.PublicKey)), mustEncodeSigner(t, pub), ErrCorrupted},
		{"garbage vote above finalized", voteKey(60, 2), []byte("not a vote"), ErrCorrupted},
		{"garbage vote in retained history", voteKey(3, 2), []byte{0x0a, 0x05}, ErrCorrupted},
		{"vote under another key", voteKey(60, 4), goodVote, ErrCorrupted},
		{"garbage certificate", certKey(10), []byte{0x12, 0x80}, ErrCorrupted},
		{"garbage justified pointer", keyJustified, []byte{0x12, 0x01, 0x00}, ErrCorrupted},
		{"garbage finalized pointer", keyFinalized, []byte{0xff}, ErrCorrupted},
		{"garbage prune base", keyPruneBase, []byte{1, 2, 3}, ErrCorrupted},
		{"garbage evidence", evidenceKey(59, checkpoint.HashOf([]byte("x"))), []byte{0x08, 0x01}, ErrCorrupted},
		{"unknown key prefix", []byte{0x42, 1, 2}, []byte{1}, ErrCorrupted},
		{"index key with a value", indexKey(30), []byte{1}, ErrCorrupted},
		{"malformed index key", []byte{prefixIndex, 1}, nil, ErrCorrupted},
		{"malformed vote key", []byte{prefixVote, 1, 2}, goodVote, ErrCorrupted},
		{"garbage schema version", keySchemaVersion, []byte{1}, ErrCorrupted},
		{"wrong schema version", keySchemaVersion, encodeSchemaVersion(SchemaVersion + 1), ErrSchemaVersion},
		{"garbage genesis", keyGenesis, []byte{1, 2, 3}, ErrCorrupted},
		{"wrong genesis", keyGenesis, func() []byte { h := checkpoint.HashOf([]byte("other")); return h[:] }(), ErrWrongChain},
	}
	base := buildDB(t, true, false)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := cloneMem(base)
			// Editing with a raw Pebble changes the files the clean-shutdown
			// record describes; drop it to reach the record checks.
			require.NoError(t, fs.Remove("db/"+cleanFileName))
			raw, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: newPebbleLogger(testLogger(t))})
			require.NoError(t, err)
			require.NoError(t, raw.Set(tc.key, tc.val, pebble.Sync))
			require.NoError(t, raw.Close())

			_, err = Open("db", Options{FS: fs, Genesis: testGenesis})
			requireRefusal(t, err, tc.want)
			// Refused twice: the refusal changed nothing.
			_, err = Open("db", Options{FS: fs, Genesis: testGenesis})
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func mustEncodeSigner(t *testing.T, pub ed25519.PublicKey) []byte {
	b, err := checkpoint.EncodeSignerRecord(checkpoint.SignerRecord{PublicKey: pub, Genesis: testGenesis})
	require.NoError(t, err)
	return b
}

func TestOpenRefusesWrongChainAndVersionMessages(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	other := checkpoint.HashOf([]byte("other"))
	_, err = Open("db", Options{FS: fs, Genesis: other})
	requireRefusal(t, err, ErrWrongChain)
	require.ErrorIs(t, err, checkpoint.ErrWrongChain)
	require.Contains(t, err.Error(), testGenesis.String())
	require.Contains(t, err.Error(), other.String())

	require.NoError(t, fs.Remove("db/"+cleanFileName))
	raw, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: newPebbleLogger(testLogger(t))})
	require.NoError(t, err)
	require.NoError(t, raw.Set(keySchemaVersion, encodeSchemaVersion(7), pebble.Sync))
	require.NoError(t, raw.Close())
	_, err = Open("db", Options{FS: fs, Genesis: testGenesis})
	requireRefusal(t, err, ErrSchemaVersion)
	require.Contains(t, err.Error(), "schema version 7")
}

func TestOpenRefusesForeignPebbleDatabase(t *testing.T) {
	fs := vfs.NewMem()
	raw, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: newPebbleLogger(testLogger(t))})
	require.NoError(t, err)
	require.NoError(t, raw.Set([]byte("some other app"), []byte("value"), pebble.Sync))
	require.NoError(t, raw.Close())
	_, err = Open("db", Options{FS: fs, Genesis: testGenesis})
	requireRefusal(t, err, ErrCorrupted)
}

func TestCorruptionFoundAtRuntimeIsErrCorrupted(t *testing.T) {
	db := openMem(t)
	fillChain(t, db, 5, 4)
	require.NoError(t, db.db.Set(certKey(3), []byte{0xff}, pebble.NoSync))
	_, _, err := db.Certificate(bg, 3)
	require.ErrorIs(t, err, ErrCorrupted)
	_, err = db.Certificates(bg, 0, 10, 0)
	require.ErrorIs(t, err, ErrCorrupted)
	_, err = db.Status(bg, 3, 3)
	require.ErrorIs(t, err, ErrCorrupted)
	require.NoError(t, db.db.Set(voteKey(5, 9), []byte{0xff}, pebble.NoSync))
	_, err = db.Restore(bg)
	require.ErrorIs(t, err, ErrCorrupted, "Restore never skips a bad record")
}

func TestCleanShutdownRecord(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err)
	fillChain(t, db, 5, 4)
	_, err = fs.Stat("db/" + cleanFileName)
	require.Error(t, err, "no clean-shutdown record while open")
	require.NoError(t, db.Close())
	_, err = fs.Stat("db/" + cleanFileName)
	require.NoError(t, err, "Close writes the clean-shutdown record")

	// A read-only open checks and keeps it; a read-write open removes it.
	ro, err := Open("db", Options{FS: fs, Genesis: testGenesis, ReadOnly: true})
	require.NoError(t, err)
	require.NoError(t, ro.Close())
	_, err = fs.Stat("db/" + cleanFileName)
	require.NoError(t, err)
	db, err = Open("db", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err)
	_, err = fs.Stat("db/" + cleanFileName)
	require.Error(t, err)
	require.NoError(t, db.Close())

	// A damaged record refuses to open.
	b := readFile(t, fs, "db/"+cleanFileName)
	b[len(b)/2] ^= 1
	writeFile(t, fs, "db/"+cleanFileName, b)
	_, err = Open("db", Options{FS: fs, Genesis: testGenesis})
	requireRefusal(t, err, ErrCorrupted)
	require.Contains(t, err.Error(), cleanFileName)
}

// TestOpenRefusesLostManifestHistory: a MANIFEST cut back to before the
// first flush (after a crash, so no clean-shutdown record) makes Pebble see
// an empty store although sstables exist. That is refused, never
// initialized as a fresh database.
func TestOpenRefusesLostManifestHistory(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	// The MANIFEST as it was right after creation (before any flush).
	manifests := filesWith(t, fs, "db", func(n string) bool { return strings.HasPrefix(n, "MANIFEST-") })
	require.Len(t, manifests, 1)
	early := readFile(t, fs, manifests[0])

	db, err = Open("db", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err)
	fillChain(t, db, 10, 4)
	require.NoError(t, db.db.Flush())
	require.NoError(t, db.Close())
	require.NoError(t, fs.Remove("db/"+cleanFileName))
	for _, m := range filesWith(t, fs, "db", func(n string) bool { return strings.HasPrefix(n, "MANIFEST-") }) {
		writeFile(t, fs, m, early[:min(len(early), 40)])
	}
	for _, w := range filesWith(t, fs, "db", func(n string) bool { return strings.HasSuffix(n, ".log") }) {
		require.NoError(t, fs.Remove(w))
	}
	_, err = Open("db", Options{FS: fs, Genesis: testGenesis})
	requireRefusal(t, err, ErrCorrupted)
}

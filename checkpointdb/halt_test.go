package checkpointdb

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// storedSchema reads the schema version the database holds.
func storedSchema(t *testing.T, db *CheckpointDB) uint32 {
	t.Helper()
	val, found, err := getValue(db.db, keySchemaVersion)
	require.NoError(t, err)
	require.True(t, found)
	v, err := decodeSchemaVersion(val)
	require.NoError(t, err)
	return v
}

func conflictingFinalityEvidence(t *testing.T, n uint64) checkpoint.Evidence {
	c := certOf(t, linkVote(n, 1), 0, 1, 2)
	return checkpoint.Evidence{Kind: checkpoint.EvidenceConflictingFinality, Certificate: &c, Checkpoint: n}
}

func TestHalts(t *testing.T) {
	fs := vfs.NewMem()
	core, logs := observer.New(zapcore.InfoLevel)
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis, Logger: zap.New(core)})
	require.NoError(t, err)
	require.Equal(t, uint32(1), storedSchema(t, db), "a new database stays readable by schema-1 releases")
	ev := conflictingFinalityEvidence(t, 4)
	vote := signed(linkVote(6, 1), 0)
	cf := checkpoint.Halt{Reason: checkpoint.HaltConflictingFinality, Checkpoint: 4, Detail: "certificate 3->4' conflicts with finalized 4", Evidence: &ev}
	dg := checkpoint.Halt{Reason: checkpoint.HaltDoppelganger, Checkpoint: 6, Detail: "our key signed 5->6' elsewhere", Vote: &vote}

	require.NoError(t, db.StoreHalt(bg, dg))
	require.NoError(t, db.StoreHalt(bg, cf))
	require.NoError(t, db.StoreHalt(bg, cf), "idempotent")
	require.Equal(t, uint32(2), storedSchema(t, db), "the first halt raises the schema version")
	halts, err := db.Halts(bg)
	require.NoError(t, err)
	require.Equal(t, []checkpoint.Halt{cf, dg}, halts, "ordered by checkpoint")
	stored := logs.FilterMessage("Stored halt: this validator stops voting until an operator clears it (flare-node checkpoints clear-halt)").All()
	require.Len(t, stored, 2, "logged once per stored halt")
	require.Equal(t, zapcore.ErrorLevel, stored[0].Level)
	st, err := db.Restore(bg)
	require.NoError(t, err)
	require.Equal(t, halts, st.Halts)

	// Never pruned, kept by purge-chain, durable across restarts.
	fillChain(t, db, 30, 4)
	_, err = db.Prune(bg, 2)
	require.NoError(t, err)
	require.NoError(t, db.PurgeKeepingSignerRecords(bg))
	require.NoError(t, db.Close())
	db, err = Open("db", Options{FS: fs, Genesis: testGenesis, Logger: zap.New(core)})
	require.NoError(t, err)
	st, err = db.Restore(bg)
	require.NoError(t, err)
	require.Equal(t, halts, st.Halts)
	require.NoError(t, db.Close())

	ro, err := Open("db", Options{FS: fs, Genesis: testGenesis, ReadOnly: true})
	require.NoError(t, err)
	got, err := ro.Halts(bg)
	require.NoError(t, err)
	require.Equal(t, halts, got)
	_, err = ro.ClearHalts(bg)
	require.ErrorIs(t, err, ErrReadOnly)
	require.NoError(t, ro.Close())

	db, err = Open("db", Options{FS: fs, Genesis: testGenesis, Logger: zap.New(core)})
	require.NoError(t, err)
	n, err := db.ClearHalts(bg)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	cleared := logs.FilterMessage("Cleared halt").All()
	require.Len(t, cleared, 2)
	require.Equal(t, zapcore.WarnLevel, cleared[0].Level)
	require.Equal(t, "conflicting-finality", cleared[0].ContextMap()["reason"])
	n, err = db.ClearHalts(bg)
	require.NoError(t, err)
	require.Zero(t, n)
	require.NoError(t, db.Close())
	db = openAt(t, fs, "db")
	got, err = db.Halts(bg)
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestStoreHaltRejectsMalformed(t *testing.T) {
	db := openMem(t)
	bad := checkpoint.Evidence{Kind: checkpoint.EvidenceDoubleVote}
	for _, h := range []checkpoint.Halt{
		{Checkpoint: 3},
		{Reason: checkpoint.HaltDoppelganger, Detail: "\xff"},
		{Reason: checkpoint.HaltConflictingFinality, Evidence: &bad},
	} {
		require.ErrorIs(t, db.StoreHalt(bg, h), checkpoint.ErrMalformed)
	}
	halts, err := db.Halts(bg)
	require.NoError(t, err)
	require.Empty(t, halts)
	require.Equal(t, uint32(1), storedSchema(t, db), "a refused halt changes nothing")
}

// TestSchemaVersions: a schema-2 record in a database that says version 1
// is corruption; version 2 databases open; unknown versions are refused.
func TestSchemaVersions(t *testing.T) {
	base := vfs.NewCrashableMem()
	db, err := Open("db", Options{FS: base, Genesis: testGenesis})
	require.NoError(t, err)
	fillChain(t, db, 3, 4)
	require.NoError(t, db.Close())
	h := checkpoint.Halt{Reason: checkpoint.HaltDoppelganger, Checkpoint: 2}
	val, err := checkpoint.EncodeHalt(h)
	require.NoError(t, err)

	edit := func(kvs ...[]byte) *vfs.MemFS {
		fs := cloneMem(base)
		require.NoError(t, fs.Remove("db/"+cleanFileName))
		raw, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: newPebbleLogger(testLogger(t))})
		require.NoError(t, err)
		for i := 0; i < len(kvs); i += 2 {
			require.NoError(t, raw.Set(kvs[i], kvs[i+1], pebble.Sync))
		}
		require.NoError(t, raw.Close())
		return fs
	}
	_, err = Open("db", Options{FS: edit(haltKey(2, h.ID()), val), Genesis: testGenesis})
	requireRefusal(t, err, ErrCorrupted)
	_, err = Open("db", Options{FS: edit(keyRebuildFloor, encodeU64(3)), Genesis: testGenesis})
	requireRefusal(t, err, ErrCorrupted)

	db, err = Open("db", Options{FS: edit(keySchemaVersion, encodeSchemaVersion(2), haltKey(2, h.ID()), val), Genesis: testGenesis})
	require.NoError(t, err)
	halts, err := db.Halts(bg)
	require.NoError(t, err)
	require.Equal(t, []checkpoint.Halt{h}, halts)
	require.NoError(t, db.Close())

	_, err = Open("db", Options{FS: edit(keySchemaVersion, encodeSchemaVersion(2), haltKey(3, h.ID()), val), Genesis: testGenesis})
	requireRefusal(t, err, ErrCorrupted) // a halt under the key of another
	_, err = Open("db", Options{FS: edit(keySchemaVersion, encodeSchemaVersion(SchemaVersion+1)), Genesis: testGenesis})
	requireRefusal(t, err, ErrSchemaVersion)
	_, err = Open("db", Options{FS: edit(keySchemaVersion, encodeSchemaVersion(0)), Genesis: testGenesis})
	requireRefusal(t, err, ErrSchemaVersion)
}

// TestConflictingFinalityEvidenceNeverExpires: evidence retention removes
// vote evidence but keeps conflicting-finality evidence whatever its age.
func TestConflictingFinalityEvidenceNeverExpires(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis, EvidenceRetention: 5})
	require.NoError(t, err)
	cf := conflictingFinalityEvidence(t, 2)
	dv := doubleVoteEvidence(2, 3)
	require.NoError(t, db.StoreEvidence(bg, cf))
	require.NoError(t, db.StoreEvidence(bg, dv))
	fillChain(t, db, 30, 4) // finalized 29: evidence base 24
	_, err = db.Prune(bg, 3)
	require.NoError(t, err)
	require.Equal(t, uint64(24), db.Stats().EvidenceBase)
	evs, err := db.Evidence(bg)
	require.NoError(t, err)
	require.Equal(t, []checkpoint.Evidence{cf}, evs)
	// Stored below the evidence base: kept.
	late := conflictingFinalityEvidence(t, 5)
	require.NoError(t, db.StoreEvidence(bg, late))
	require.NoError(t, db.StoreEvidence(bg, doubleVoteEvidence(5, 1)), "vote evidence below the base is ignored")
	evs, err = db.Evidence(bg)
	require.NoError(t, err)
	require.Equal(t, []checkpoint.Evidence{cf, late}, evs)
	// Pruning again and reopening (which sweeps prune leftovers) keeps them.
	fillChain(t, db, 40, 4)
	_, err = db.Prune(bg, 3)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	db, err = Open("db", Options{FS: fs, Genesis: testGenesis, EvidenceRetention: 5})
	require.NoError(t, err)
	defer db.Close()
	st, err := db.Restore(bg)
	require.NoError(t, err)
	require.Equal(t, []checkpoint.Evidence{cf, late}, st.Evidence)
	var keys int
	require.NoError(t, scan(bg, db.db, prefixStart(prefixEvidence), prefixUpper(prefixEvidence), func(_, _ []byte) error { keys++; return nil }))
	require.Equal(t, 2, keys, "vote evidence below the base is deleted from disk")
}

// TestPurgeKeepsFinalityHistoryConsistentWithHWM: after purge-chain the
// database has no finality but its high-water mark does; the rebuild floor
// written by the purge keeps the next Open from taking it for lost writes.
func TestPurgeKeepsFinalityHistoryConsistentWithHWM(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db := openAt(t, fs, "db")
	fillChain(t, db, 8, 4)
	require.NoError(t, db.PurgeKeepingSignerRecords(bg))
	require.Equal(t, uint32(2), storedSchema(t, db))
	floor, err := db.readRebuildFloor(db.db)
	require.NoError(t, err)
	require.Equal(t, uint64(7), floor)
	require.NoError(t, db.Close())
	purged := cloneMem(fs)
	db = openAt(t, fs, "db")
	require.Equal(t, cpPtr(7), db.HighWaterMark().Finalized, "the high-water mark keeps what was finalized")
	_, f, err := db.Pointers(bg)
	require.NoError(t, err)
	require.Nil(t, f)
	// Finality rebuilt past the floor; the purged copy of the database is
	// then behind the high-water mark.
	fillChain(t, db, 12, 4)
	require.NoError(t, db.Close())
	db = openAt(t, fs, "db")
	require.Equal(t, cpPtr(11), db.HighWaterMark().Finalized)
	require.NoError(t, db.Close())
	_, err = Open("db", Options{FS: replaceDB(t, fs, purged), Genesis: testGenesis})
	requireRefusal(t, err, ErrBehindHighWaterMark)
	require.Contains(t, err.Error(), "restored finalized checkpoint 7")
}

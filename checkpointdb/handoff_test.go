package checkpointdb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// handOffVote is the finalizing link (n-1 -> n, fork f) of set setID.
func handOffVote(setID, n uint64, fork int) checkpoint.Vote {
	v := linkVote(n, fork)
	v.SetID = setID
	return v
}

// handOff is the hand-off certificate of set setID finalizing n-1 (with
// target n) signed by validators.
func handOff(t testing.TB, setID, n uint64, validators ...int) checkpoint.Certificate {
	return certOf(t, handOffVote(setID, n, 0), validators...)
}

// handOffs are the hand-offs of sets 1, 2 and 3.
func testHandOffs(t testing.TB) []checkpoint.Certificate {
	return []checkpoint.Certificate{handOff(t, 1, 5, 0, 1, 2), handOff(t, 2, 10, 0, 1, 3), handOff(t, 3, 15, 1, 2, 3)}
}

func mustEncodeCert(t testing.TB, c checkpoint.Certificate) []byte {
	t.Helper()
	b, err := checkpoint.EncodeCertificate(c)
	require.NoError(t, err)
	return b
}

// openDisk opens the database at dir (on disk) and closes it at test end.
func openDisk(t *testing.T, dir string) *CheckpointDB {
	t.Helper()
	db, err := Open(dir, Options{Genesis: testGenesis, Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// rawEdit applies edit to the closed database at dir with a raw Pebble,
// dropping the clean-shutdown record first (it describes the files the edit
// changes; keeping it would refuse the open for the wrong reason).
func rawEdit(t *testing.T, dir string, edit func(*pebble.DB) error) {
	t.Helper()
	require.NoError(t, os.Remove(filepath.Join(dir, cleanFileName)))
	raw, err := pebble.Open(dir, &pebble.Options{Logger: newPebbleLogger(testLogger(t))})
	require.NoError(t, err)
	require.NoError(t, edit(raw))
	require.NoError(t, raw.Close())
}

// requireDiskRefusal is requireRefusal for a database on disk.
func requireDiskRefusal(t *testing.T, err error, want error, dir string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, want)
	msg := err.Error()
	require.NotContains(t, msg, "\n", "refusal must be one line")
	require.True(t, strings.HasPrefix(msg, "checkpoint database at "+dir+" "), msg)
	require.Contains(t, msg, "refusing to start", msg)
}

func TestHandOffsRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db := openDisk(t, dir)
	st, err := db.Restore(bg)
	require.NoError(t, err)
	require.Empty(t, st.HandOffs)
	want := testHandOffs(t)
	for _, h := range want {
		require.NoError(t, db.StoreHandOff(bg, h))
	}
	require.Equal(t, uint32(3), storedSchema(t, db), "the first hand-off raises the schema version")
	got, err := db.HandOffs(bg)
	require.NoError(t, err)
	require.Equal(t, want, got)
	st, err = db.Restore(bg)
	require.NoError(t, err)
	require.Equal(t, want, st.HandOffs)
	require.NoError(t, db.Close())

	db = openDisk(t, dir)
	st, err = db.Restore(bg)
	require.NoError(t, err)
	require.Equal(t, want, st.HandOffs, "durable across close and reopen")
	// A set before the first stored one keeps the set ids consecutive.
	set0 := handOff(t, 0, 2, 0, 1, 2)
	require.NoError(t, db.StoreHandOff(bg, set0))
	require.NoError(t, db.Close())

	want = append([]checkpoint.Certificate{set0}, want...)
	ro, err := Open(dir, Options{Genesis: testGenesis, ReadOnly: true})
	require.NoError(t, err)
	defer ro.Close()
	got, err = ro.HandOffs(bg)
	require.NoError(t, err)
	require.Equal(t, want, got)
	st, err = ro.Restore(bg)
	require.NoError(t, err)
	require.Equal(t, want, st.HandOffs)
	require.ErrorIs(t, ro.StoreHandOff(bg, handOff(t, 4, 20, 0, 1, 2)), ErrReadOnly)
}

func TestStoreHandOffIdempotent(t *testing.T) {
	first := handOff(t, 2, 10, 0, 1, 2)
	tests := []struct {
		name  string
		again checkpoint.Certificate
	}{
		{"identical", first},
		{"same link, fewer signatures", handOff(t, 2, 10, 1, 2)},
		{"same link, more signatures", handOff(t, 2, 10, 0, 1, 2, 3)},
		{"same link, other signers", handOff(t, 2, 10, 3, 4, 5)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			db := openDisk(t, dir)
			require.NoError(t, db.StoreHandOff(bg, first))
			require.NoError(t, db.StoreHandOff(bg, tc.again))
			got, err := db.HandOffs(bg)
			require.NoError(t, err)
			require.Equal(t, []checkpoint.Certificate{first}, got, "the first certificate is kept")
			require.NoError(t, db.Close())
			db = openDisk(t, dir)
			got, err = db.HandOffs(bg)
			require.NoError(t, err)
			require.Equal(t, []checkpoint.Certificate{first}, got)
		})
	}
}

func TestStoreHandOffConflict(t *testing.T) {
	first := handOff(t, 2, 10, 0, 1, 2)
	otherSource := first
	otherSource.Source.Hash = cpHash(9, 1)
	tests := []struct {
		name  string
		other checkpoint.Certificate
	}{
		{"other target hash", certOf(t, handOffVote(2, 10, 1), 0, 1, 2)},
		{"other source hash", otherSource},
		{"other checkpoint", handOff(t, 2, 11, 0, 1, 2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openDisk(t, filepath.Join(t.TempDir(), "db"))
			require.NoError(t, db.StoreHandOff(bg, first))
			err := db.StoreHandOff(bg, tc.other)
			require.ErrorIs(t, err, finality.ErrHandOffConflict)
			require.Contains(t, err.Error(), "set 2")
			got, err := db.HandOffs(bg)
			require.NoError(t, err)
			require.Equal(t, []checkpoint.Certificate{first}, got, "the stored hand-off is kept")
		})
	}
}

func TestStoreHandOffRejects(t *testing.T) {
	nonFinalizing := certOf(t, checkpoint.Vote{Genesis: testGenesis, SetID: 1, Source: cp(3), Target: cp(5)}, 0, 1, 2)
	otherChain := handOff(t, 1, 5, 0, 1, 2)
	otherChain.Genesis = checkpoint.HashOf([]byte("other"))
	unsigned := handOff(t, 1, 5, 0)
	unsigned.Signatures = nil
	unsorted := handOff(t, 1, 5, 0, 1)
	unsorted.Signatures[0], unsorted.Signatures[1] = unsorted.Signatures[1], unsorted.Signatures[0]
	tests := []struct {
		name string
		cert checkpoint.Certificate
		want error
	}{
		{"not finalizing", nonFinalizing, checkpoint.ErrMalformed},
		{"another chain", otherChain, ErrWrongChain},
		{"no signatures", unsigned, checkpoint.ErrNoQuorum},
		{"signers not increasing", unsorted, checkpoint.ErrDuplicateSigner},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openDisk(t, filepath.Join(t.TempDir(), "db"))
			require.ErrorIs(t, db.StoreHandOff(bg, tc.cert), tc.want)
			got, err := db.HandOffs(bg)
			require.NoError(t, err)
			require.Empty(t, got)
			require.Equal(t, uint32(1), storedSchema(t, db), "a refused hand-off changes nothing")
		})
	}

	t.Run("gap", func(t *testing.T) {
		db := openDisk(t, filepath.Join(t.TempDir(), "db"))
		h := testHandOffs(t)
		require.NoError(t, db.StoreHandOff(bg, h[1])) // set 2
		for _, c := range []checkpoint.Certificate{handOff(t, 4, 20, 0, 1, 2), handOff(t, 0, 2, 0, 1, 2)} {
			err := db.StoreHandOff(bg, c)
			require.ErrorIs(t, err, ErrHandOffGap)
			require.Contains(t, err.Error(), "stored sets 2..2")
		}
		require.NoError(t, db.StoreHandOff(bg, h[2])) // set 3: next
		require.NoError(t, db.StoreHandOff(bg, h[0])) // set 1: before the first
		got, err := db.HandOffs(bg)
		require.NoError(t, err)
		require.Equal(t, h, got)
	})
}

// TestHandOffsNeverPruned: Prune (even keeping one checkpoint) and
// purge-chain keep every hand-off, also those far below the prune base.
func TestHandOffsNeverPruned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db := openDisk(t, dir)
	want := testHandOffs(t)
	for _, h := range want {
		require.NoError(t, db.StoreHandOff(bg, h))
	}
	fillChain(t, db, 60, 4)
	n, err := db.Prune(bg, 1)
	require.NoError(t, err)
	require.Positive(t, n)
	require.Equal(t, uint64(59), db.OldestRetained())
	st, err := db.Restore(bg)
	require.NoError(t, err)
	require.Equal(t, want, st.HandOffs)
	require.NoError(t, db.Close())

	db = openDisk(t, dir) // Open sweeps what Prune left below the base
	st, err = db.Restore(bg)
	require.NoError(t, err)
	require.Equal(t, want, st.HandOffs)
	require.NoError(t, db.PurgeKeepingSignerRecords(bg))
	require.NoError(t, db.Close())

	db = openDisk(t, dir)
	st, err = db.Restore(bg)
	require.NoError(t, err)
	require.Nil(t, st.Finalized, "purged")
	require.Equal(t, want, st.HandOffs, "kept by purge-chain")
	require.Equal(t, uint32(3), storedSchema(t, db))
}

// TestHandOffCorruption: a hand-off that does not decode, is not the one its
// key names, is not a finalizing certificate of this chain, or leaves a gap
// in the set ids is refused by Open and, on an open database, by Restore
// and HandOffs (ErrCorrupted, never skipped).
func TestHandOffCorruption(t *testing.T) {
	h := testHandOffs(t) // sets 1, 2, 3
	otherChain := handOff(t, 2, 10, 0, 1)
	otherChain.Genesis = checkpoint.HashOf([]byte("other"))
	set := func(key, val []byte) func(*pebble.DB) error {
		return func(d *pebble.DB) error { return d.Set(key, val, pebble.Sync) }
	}
	tests := []struct {
		name string
		edit func(*pebble.DB) error
		// openOnly: only Open checks it (the schema version is read at
		// open).
		openOnly bool
	}{
		{"garbage value", set(handOffKey(2), []byte{0xff, 0x01}), false},
		{"empty value", set(handOffKey(2), []byte{}), false},
		{"set id does not match the key", set(handOffKey(2), mustEncodeCert(t, h[2])), false},
		{"not finalizing", set(handOffKey(2), mustEncodeCert(t, certOf(t, checkpoint.Vote{Genesis: testGenesis, SetID: 2, Source: cp(8), Target: cp(10)}, 0, 1))), false},
		{"another chain", set(handOffKey(2), mustEncodeCert(t, otherChain)), false},
		{"gap after the last", set(handOffKey(5), mustEncodeCert(t, handOff(t, 5, 25, 0, 1))), false},
		{"gap in the middle", func(d *pebble.DB) error { return d.Delete(handOffKey(2), pebble.Sync) }, false},
		{"malformed key", set([]byte{prefixHandOff, 0, 2}, mustEncodeCert(t, h[1])), true},
		{"hand-off in a version-2 database", set(keySchemaVersion, encodeSchemaVersion(2)), true},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/open", func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			db := openDisk(t, dir)
			for _, c := range h {
				require.NoError(t, db.StoreHandOff(bg, c))
			}
			require.NoError(t, db.Close())
			rawEdit(t, dir, tc.edit)
			_, err := Open(dir, Options{Genesis: testGenesis})
			requireDiskRefusal(t, err, ErrCorrupted, dir)
			require.Contains(t, err.Error(), "hand-off")
			_, err = Open(dir, Options{Genesis: testGenesis})
			require.ErrorIs(t, err, ErrCorrupted, "refused twice: the refusal changed nothing")
		})
		if tc.openOnly {
			continue
		}
		t.Run(tc.name+"/restore", func(t *testing.T) {
			db := openDisk(t, filepath.Join(t.TempDir(), "db"))
			for _, c := range h {
				require.NoError(t, db.StoreHandOff(bg, c))
			}
			require.NoError(t, tc.edit(db.db))
			_, err := db.Restore(bg)
			require.ErrorIs(t, err, ErrCorrupted)
			require.Contains(t, err.Error(), "hand-off record")
			_, err = db.HandOffs(bg)
			require.ErrorIs(t, err, ErrCorrupted)
			require.ErrorIs(t, db.Verify(bg), ErrCorrupted)
		})
	}
}

// TestHandOffSchema: a database without hand-offs keeps its schema version
// (1, or 2 once it holds a halt) across reopen, prune and purge; the first
// hand-off raises it to 3 in its own batch, which a version-2 release
// refuses with the schema message (ver > its SchemaVersion) instead of
// taking the 0x0A keys for corruption.
func TestHandOffSchema(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db := openDisk(t, dir)
	fillChain(t, db, 10, 4)
	_, err := db.Prune(bg, 2)
	require.NoError(t, err)
	require.Equal(t, uint32(1), storedSchema(t, db), "no hand-off: still readable by schema-1 releases")
	require.NoError(t, db.Close())
	db = openDisk(t, dir)
	require.Equal(t, uint32(1), storedSchema(t, db))
	require.NoError(t, db.StoreHalt(bg, checkpoint.Halt{Reason: checkpoint.HaltDoppelganger, Checkpoint: 3}))
	require.NoError(t, db.PurgeKeepingSignerRecords(bg))
	require.Equal(t, uint32(2), storedSchema(t, db), "halts and the rebuild floor need version 2, not 3")
	require.NoError(t, db.Close())
	db = openDisk(t, dir)
	require.Equal(t, uint32(2), storedSchema(t, db))

	require.NoError(t, db.StoreHandOff(bg, handOff(t, 1, 12, 0)))
	require.Equal(t, uint32(3), storedSchema(t, db))
	require.Equal(t, uint32(3), schemaOf(KeyHandOff))
	require.Equal(t, uint32(3), SchemaVersion)
	require.NoError(t, db.Close())

	// What a version-2 release does with it: its initMeta refuses any
	// stored version above its own SchemaVersion.
	const olderSchemaVersion = 2
	raw, err := pebble.Open(dir, &pebble.Options{Logger: newPebbleLogger(testLogger(t)), ReadOnly: true})
	require.NoError(t, err)
	val, closer, err := raw.Get(keySchemaVersion)
	require.NoError(t, err)
	ver, err := decodeSchemaVersion(val)
	require.NoError(t, closer.Close())
	require.NoError(t, raw.Close())
	require.NoError(t, err)
	require.Greater(t, ver, uint32(olderSchemaVersion))
	refusal := schemaVersionError(dir, ver)
	require.ErrorIs(t, refusal, ErrSchemaVersion)
	require.Contains(t, refusal.Error(), "run a flare-node release that supports version 3")

	// This build refuses the next version the same way.
	rawEdit(t, dir, func(d *pebble.DB) error {
		return d.Set(keySchemaVersion, encodeSchemaVersion(SchemaVersion+1), pebble.Sync)
	})
	_, err = Open(dir, Options{Genesis: testGenesis})
	requireDiskRefusal(t, err, ErrSchemaVersion, dir)
	require.False(t, errors.Is(err, ErrCorrupted))
}

// TestStoreHandOffConcurrent: concurrent stores of the same hand-offs (and
// of conflicting ones) keep exactly one certificate per set.
func TestStoreHandOffConcurrent(t *testing.T) {
	db := openDisk(t, filepath.Join(t.TempDir(), "db"))
	want := testHandOffs(t)
	var others []checkpoint.Certificate // another link for every set
	for _, h := range want {
		others = append(others, certOf(t, handOffVote(h.SetID, h.Target.Number, 1), 0, 1))
	}
	errs := make(chan error, 8*len(want))
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			certs := want
			if g%2 == 1 {
				certs = others
			}
			for _, c := range certs {
				errs <- db.StoreHandOff(bg, c)
			}
		}()
	}
	for g := 0; g < 8; g++ {
		<-done
	}
	close(errs)
	conflicts := 0
	for err := range errs {
		if err != nil {
			require.ErrorIs(t, err, finality.ErrHandOffConflict)
			conflicts++
		}
	}
	got, err := db.HandOffs(bg)
	require.NoError(t, err)
	require.Len(t, got, len(want))
	for i, c := range got {
		require.Equal(t, want[i].SetID, c.SetID)
	}
	require.Equal(t, 4*len(want), conflicts, "the losing link of every set is refused by each of its 4 writers")
}

package checkpointdb

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sync/errgroup"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

func TestReopenPersistsOnDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "checkpoints")
	db, err := Open(dir, Options{Genesis: testGenesis})
	require.NoError(t, err)

	pub := testKeys[0].Public().(ed25519.PublicKey)
	last := signed(linkVote(7, 0), 0)
	rec := checkpoint.SignerRecord{PublicKey: pub, Genesis: testGenesis, Last: &last}
	require.NoError(t, db.StoreSignerRecord(bg, rec))
	for n := uint64(1); n <= 8; n++ {
		for v := 0; v < 4; v++ {
			require.NoError(t, db.StoreVote(bg, signed(linkVote(n, 0), v)))
		}
	}
	require.NoError(t, db.StoreCertificate(bg, certOf(t, linkVote(6, 0), 0, 1, 2), cpPtr(6), cpPtr(5)))
	ev := doubleVoteEvidence(8, 3)
	require.NoError(t, db.StoreEvidence(bg, ev))
	require.NoError(t, db.Flush(bg))
	require.NoError(t, db.Close())

	db, err = Open(dir, Options{Genesis: testGenesis})
	require.NoError(t, err)
	defer db.Close()
	got, found, err := db.LoadSignerRecord(bg, pub)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, rec, got)
	j, f, err := db.Pointers(bg)
	require.NoError(t, err)
	require.Equal(t, cpPtr(6), j)
	require.Equal(t, cpPtr(5), f)
	for n := uint64(1); n <= 8; n++ {
		votes, err := db.Votes(bg, n)
		require.NoError(t, err)
		require.Len(t, votes, 4, "checkpoint %d", n)
		for v, sv := range votes {
			require.Equal(t, signed(linkVote(n, 0), v), sv)
		}
	}
	c, found, err := db.Certificate(bg, 6)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, certOf(t, linkVote(6, 0), 0, 1, 2), c)
	evs, err := db.Evidence(bg)
	require.NoError(t, err)
	require.Equal(t, []checkpoint.Evidence{ev}, evs)
}

func doubleVoteEvidence(n uint64, validator int) checkpoint.Evidence {
	a, b := signed(linkVote(n, 0), validator), signed(linkVote(n, 1), validator)
	return checkpoint.Evidence{Kind: checkpoint.EvidenceDoubleVote, Validator: checkpoint.ValidatorIndex(validator), First: &a, Second: &b, Checkpoint: n}
}

func TestStoreVoteFirstWins(t *testing.T) {
	tests := []struct {
		name  string
		votes []checkpoint.SignedVote
		want  []checkpoint.SignedVote
	}{
		{"single", []checkpoint.SignedVote{signed(linkVote(3, 0), 1)}, []checkpoint.SignedVote{signed(linkVote(3, 0), 1)}},
		{"identical twice", []checkpoint.SignedVote{signed(linkVote(3, 0), 1), signed(linkVote(3, 0), 1)}, []checkpoint.SignedVote{signed(linkVote(3, 0), 1)}},
		{"conflict keeps first", []checkpoint.SignedVote{signed(linkVote(3, 1), 1), signed(linkVote(3, 0), 1)}, []checkpoint.SignedVote{signed(linkVote(3, 1), 1)}},
		{"other validators kept", []checkpoint.SignedVote{signed(linkVote(3, 0), 2), signed(linkVote(3, 1), 1), signed(linkVote(3, 0), 0)},
			[]checkpoint.SignedVote{signed(linkVote(3, 0), 0), signed(linkVote(3, 1), 1), signed(linkVote(3, 0), 2)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openMem(t)
			for _, v := range tc.votes {
				require.NoError(t, db.StoreVote(bg, v))
			}
			got, err := db.Votes(bg, 3)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestStoreVoteRejects(t *testing.T) {
	db := openMem(t)
	other := linkVote(3, 0)
	other.Genesis = checkpoint.HashOf([]byte("other chain"))
	require.ErrorIs(t, db.StoreVote(bg, signed(other, 0)), ErrWrongChain)
	bad := linkVote(3, 0)
	bad.Source = cp(3)
	require.ErrorIs(t, db.StoreVote(bg, signed(bad, 0)), checkpoint.ErrBadLink)
}

func TestPointersNeverMoveBackwards(t *testing.T) {
	type step struct{ j, f *checkpoint.Checkpoint }
	fork := func(n uint64) *checkpoint.Checkpoint {
		return &checkpoint.Checkpoint{Number: n, Hash: cpHash(n, 9)}
	}
	tests := []struct {
		name         string
		steps        []step
		wantJ, wantF *checkpoint.Checkpoint
	}{
		{"none", []step{{nil, nil}}, nil, nil},
		{"raise", []step{{cpPtr(2), cpPtr(1)}, {cpPtr(5), cpPtr(4)}}, cpPtr(5), cpPtr(4)},
		{"lower ignored", []step{{cpPtr(5), cpPtr(4)}, {cpPtr(3), cpPtr(2)}}, cpPtr(5), cpPtr(4)},
		{"equal number keeps first hash", []step{{cpPtr(5), cpPtr(4)}, {fork(5), fork(4)}}, cpPtr(5), cpPtr(4)},
		{"nil keeps", []step{{cpPtr(5), cpPtr(4)}, {nil, nil}}, cpPtr(5), cpPtr(4)},
		{"independent", []step{{cpPtr(5), nil}, {cpPtr(2), cpPtr(4)}}, cpPtr(5), cpPtr(4)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			db := openAt(t, fs, "db")
			for i, s := range tc.steps {
				n := uint64(i + 1)
				require.NoError(t, db.StoreCertificate(bg, certOf(t, linkVote(n, 0), 0, 1, 2), s.j, s.f))
			}
			check := func(db *CheckpointDB) {
				j, f, err := db.Pointers(bg)
				require.NoError(t, err)
				require.Equal(t, tc.wantJ, j)
				require.Equal(t, tc.wantF, f)
				st, err := db.Restore(bg)
				require.NoError(t, err)
				require.Equal(t, tc.wantJ, st.Justified)
				require.Equal(t, tc.wantF, st.Finalized)
			}
			check(db)
			require.NoError(t, db.Close())
			check(openAt(t, fs, "db"))
		})
	}
}

func TestConcurrentPointerUpdatesNoLostUpdate(t *testing.T) {
	db := openMem(t)
	certs := make([]checkpoint.Certificate, 202)
	for n := uint64(2); n <= 201; n++ {
		certs[n] = certOf(t, linkVote(n, 0), 0, 1, 2)
	}
	var eg errgroup.Group
	for g := 0; g < 8; g++ {
		eg.Go(func() error {
			for i := 0; i < 25; i++ {
				n := uint64(g*25 + i + 2)
				if err := db.StoreCertificate(bg, certs[n], cpPtr(n), cpPtr(n-1)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	require.NoError(t, eg.Wait())
	j, f, err := db.Pointers(bg)
	require.NoError(t, err)
	require.Equal(t, cpPtr(201), j)
	require.Equal(t, cpPtr(200), f)
}

func TestConcurrentConflictingVotesOneWins(t *testing.T) {
	db := openMem(t)
	var eg errgroup.Group
	for g := 0; g < 16; g++ {
		v := signed(linkVote(4, g), 0)
		eg.Go(func() error { return db.StoreVote(bg, v) })
	}
	require.NoError(t, eg.Wait())
	votes, err := db.Votes(bg, 4)
	require.NoError(t, err)
	require.Len(t, votes, 1)
}

func TestCertificateFoldsVotes(t *testing.T) {
	fs := vfs.NewMem()
	db := openAt(t, fs, "db")
	v := linkVote(5, 0)
	for i := 0; i < 4; i++ {
		require.NoError(t, db.StoreVote(bg, signed(v, i)))
	}
	// Validator 4 voted for a fork first; its certificate signature is kept
	// next to it.
	require.NoError(t, db.StoreVote(bg, signed(linkVote(5, 1), 4)))
	require.NoError(t, db.StoreCertificate(bg, certOf(t, v, 0, 1, 2, 4), cpPtr(5), nil))

	// Only the votes the certificate does not hold remain on disk.
	var raw []Key
	require.NoError(t, scan(bg, db.db, prefixStart(prefixVote), prefixUpper(prefixVote), func(k, _ []byte) error {
		dk, err := DecodeKey(k)
		raw = append(raw, dk)
		return err
	}))
	require.Equal(t, []Key{{Kind: KeyVote, Number: 5, Validator: 3}, {Kind: KeyVote, Number: 5, Validator: 4}}, raw)

	want := []checkpoint.SignedVote{signed(v, 0), signed(v, 1), signed(v, 2), signed(v, 3), signed(linkVote(5, 1), 4), signed(v, 4)}
	check := func(db *CheckpointDB) {
		got, err := db.Votes(bg, 5)
		require.NoError(t, err)
		require.Equal(t, want, got)
		st, err := db.Restore(bg)
		require.NoError(t, err)
		require.Equal(t, want, st.Votes)
	}
	check(db)
	// Late votes of certificate signers are already known.
	require.NoError(t, db.StoreVote(bg, signed(v, 1)))
	require.NoError(t, db.StoreVote(bg, signed(linkVote(5, 2), 2)))
	check(db)
	require.NoError(t, db.Close())
	db = openAt(t, fs, "db")
	check(db)
	require.NoError(t, db.StoreVote(bg, signed(linkVote(5, 2), 2)))
	check(db)
}

func TestCertificateMergeAndConflict(t *testing.T) {
	db := openMem(t)
	v := linkVote(5, 0)
	require.NoError(t, db.StoreCertificate(bg, certOf(t, v, 0, 1, 2), nil, nil))
	require.NoError(t, db.StoreCertificate(bg, certOf(t, v, 2, 3, 4), nil, nil))
	c, found, err := db.Certificate(bg, 5)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, certOf(t, v, 0, 1, 2, 3, 4), c)

	// A certificate for another hash of the same number is not stored, but
	// its pointers are applied.
	require.NoError(t, db.StoreCertificate(bg, certOf(t, linkVote(5, 1), 0, 1, 2), cpPtr(5), nil))
	c, _, err = db.Certificate(bg, 5)
	require.NoError(t, err)
	require.Equal(t, certOf(t, v, 0, 1, 2, 3, 4), c)
	j, _, err := db.Pointers(bg)
	require.NoError(t, err)
	require.Equal(t, cpPtr(5), j)
}

func TestStoreCertificateRejects(t *testing.T) {
	db := openMem(t)
	good := certOf(t, linkVote(5, 0), 0, 1, 2)
	tests := []struct {
		name   string
		mutate func(c *checkpoint.Certificate)
		want   error
	}{
		{"other chain", func(c *checkpoint.Certificate) { c.Genesis = checkpoint.HashOf([]byte("x")) }, ErrWrongChain},
		{"bad link", func(c *checkpoint.Certificate) { c.Source = cp(6) }, checkpoint.ErrBadLink},
		{"no signatures", func(c *checkpoint.Certificate) { c.Signatures = nil }, checkpoint.ErrNoQuorum},
		{"duplicate signer", func(c *checkpoint.Certificate) { c.Signatures[1].Validator = 0 }, checkpoint.ErrDuplicateSigner},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.Signatures = append([]checkpoint.CertSignature(nil), good.Signatures...)
			tc.mutate(&c)
			require.ErrorIs(t, db.StoreCertificate(bg, c, cpPtr(5), nil), tc.want)
			j, _, err := db.Pointers(bg)
			require.NoError(t, err)
			require.Nil(t, j, "a refused certificate must not move pointers")
		})
	}
}

// fillChain stores, for n in 1..upto, votes of validators 0..vals-1 on link
// n-1 -> n and a certificate of the first quorum of them; pointers follow
// (justified n, finalized n-1).
func fillChain(t testing.TB, db *CheckpointDB, upto uint64, vals int) {
	t.Helper()
	q := checkpoint.Quorum(vals)
	for n := uint64(1); n <= upto; n++ {
		v := linkVote(n, 0)
		for i := 0; i < vals; i++ {
			require.NoError(t, db.StoreVote(bg, fakeSigned(v, i)))
		}
		votes := make([]checkpoint.SignedVote, q)
		for i := range votes {
			votes[i] = fakeSigned(v, i)
		}
		c, err := checkpoint.NewCertificate(votes)
		require.NoError(t, err)
		var f *checkpoint.Checkpoint
		if n > 1 {
			f = cpPtr(n - 1)
		}
		require.NoError(t, db.StoreCertificate(bg, c, cpPtr(n), f))
	}
}

func TestPruneRetentionBoundary(t *testing.T) {
	tests := []struct {
		name        string
		finalized   uint64
		keep        uint64
		wantRemoved int
		wantLowest  uint64
	}{
		{"keep=10 F=20", 20, 10, 10, 11},
		{"keep=1 F=20", 20, 1, 19, 20},
		{"keep=0 is 1", 20, 0, 19, 20},
		{"keep=F", 20, 20, 0, 1},
		{"keep>F", 20, 50, 0, 1},
		{"keep=19 F=20", 20, 19, 1, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			db := openAt(t, fs, "db")
			fillChain(t, db, tc.finalized+1, 4) // finalized = tc.finalized, justified = F+1
			ev := doubleVoteEvidence(3, 1)
			require.NoError(t, db.StoreEvidence(bg, ev))
			pub := testKeys[0].Public().(ed25519.PublicKey)
			last := signed(linkVote(2, 0), 0)
			rec := checkpoint.SignerRecord{PublicKey: pub, Genesis: testGenesis, Last: &last}
			require.NoError(t, db.StoreSignerRecord(bg, rec))

			removed, err := db.Prune(bg, tc.keep)
			require.NoError(t, err)
			require.Equal(t, tc.wantRemoved, removed)
			again, err := db.Prune(bg, tc.keep)
			require.NoError(t, err)
			require.Zero(t, again, "pruning twice removes nothing more")

			check := func(db *CheckpointDB) {
				for n := uint64(1); n <= tc.finalized+1; n++ {
					votes, err := db.Votes(bg, n)
					require.NoError(t, err)
					_, found, err := db.Certificate(bg, n)
					require.NoError(t, err)
					if n < tc.wantLowest {
						require.Empty(t, votes, "checkpoint %d must be gone", n)
						require.False(t, found, "certificate %d must be gone", n)
					} else {
						require.Len(t, votes, 4, "checkpoint %d must remain", n)
						require.True(t, found, "certificate %d must remain", n)
					}
				}
				certs, err := db.Certificates(bg, 0, 1000, 0)
				require.NoError(t, err)
				require.Len(t, certs, int(tc.finalized+1-tc.wantLowest+1))
				require.Equal(t, tc.wantLowest, certs[0].Target.Number)
				_, f, err := db.Pointers(bg)
				require.NoError(t, err)
				require.Equal(t, cpPtr(tc.finalized), f)
				got, found, err := db.LoadSignerRecord(bg, pub)
				require.NoError(t, err)
				require.True(t, found)
				require.Equal(t, rec, got)
				evs, err := db.Evidence(bg)
				require.NoError(t, err)
				require.Equal(t, []checkpoint.Evidence{ev}, evs, "evidence younger than the retention is kept")
				wantBase := uint64(0)
				if k := max(tc.keep, 1); tc.finalized+1 > k {
					wantBase = tc.finalized - k + 1
				}
				require.Equal(t, wantBase, db.Stats().OldestRetained)
			}
			check(db)
			require.NoError(t, db.Close())
			check(openAt(t, fs, "db"))
		})
	}
}

func TestPruneWithoutFinalityIsNoop(t *testing.T) {
	db := openMem(t)
	require.NoError(t, db.StoreVote(bg, signed(linkVote(1, 0), 0)))
	n, err := db.Prune(bg, 1)
	require.NoError(t, err)
	require.Zero(t, n)
	votes, err := db.Votes(bg, 1)
	require.NoError(t, err)
	require.Len(t, votes, 1)
}

func TestPruneIgnoresWritesBelowBase(t *testing.T) {
	db := openMem(t)
	fillChain(t, db, 21, 4)
	_, err := db.Prune(bg, 10)
	require.NoError(t, err)
	require.NoError(t, db.StoreVote(bg, signed(linkVote(5, 1), 7)))
	require.NoError(t, db.StoreCertificate(bg, certOf(t, linkVote(4, 0), 0, 1, 2), nil, nil))
	votes, err := db.Votes(bg, 5)
	require.NoError(t, err)
	require.Empty(t, votes)
	_, found, err := db.Certificate(bg, 4)
	require.NoError(t, err)
	require.False(t, found)
}

func TestEvidenceRetention(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis, EvidenceRetention: 5})
	require.NoError(t, err)
	defer db.Close()
	var evs []checkpoint.Evidence
	for n := uint64(2); n <= 12; n += 2 {
		e := doubleVoteEvidence(n, int(n))
		evs = append(evs, e)
		require.NoError(t, db.StoreEvidence(bg, e))
		require.NoError(t, db.StoreEvidence(bg, e)) // idempotent
	}
	fillChain(t, db, 12, 4) // finalized 11
	_, err = db.Prune(bg, 100)
	require.NoError(t, err)
	got, err := db.Evidence(bg)
	require.NoError(t, err)
	// Kept while checkpoint >= F - retention = 6.
	require.Equal(t, evs[2:], got)
	st, err := db.Restore(bg)
	require.NoError(t, err)
	require.Equal(t, evs[5:], st.Evidence, "restore returns evidence above finalized")
	// Evidence below the retention is not stored.
	require.NoError(t, db.StoreEvidence(bg, doubleVoteEvidence(3, 1)))
	got, err = db.Evidence(bg)
	require.NoError(t, err)
	require.Equal(t, evs[2:], got)
}

func TestStoreEvidenceRejectsMalformed(t *testing.T) {
	db := openMem(t)
	e := doubleVoteEvidence(3, 1)
	e.Second = nil
	require.ErrorIs(t, db.StoreEvidence(bg, e), checkpoint.ErrMalformed)
	require.ErrorIs(t, db.StoreEvidence(bg, checkpoint.Evidence{Kind: checkpoint.EvidenceConflictingFinality}), checkpoint.ErrMalformed)
}

func TestRestoreWindow(t *testing.T) {
	db := openMem(t)
	fillChain(t, db, 30, 4) // justified 30, finalized 29
	// Votes above the justified checkpoint, with no certificate yet.
	for i := 0; i < 2; i++ {
		require.NoError(t, db.StoreVote(bg, signed(linkVote(31, 0), i)))
	}
	ev := doubleVoteEvidence(31, 3)
	require.NoError(t, db.StoreEvidence(bg, ev))
	require.NoError(t, db.StoreEvidence(bg, doubleVoteEvidence(20, 3)))

	st, err := db.Restore(bg)
	require.NoError(t, err)
	require.Equal(t, cpPtr(30), st.Justified)
	require.Equal(t, cpPtr(29), st.Finalized)
	require.Len(t, st.Certificates, 2)
	require.Equal(t, uint64(29), st.Certificates[0].Target.Number)
	require.Equal(t, uint64(30), st.Certificates[1].Target.Number)
	var targets []uint64
	for _, v := range st.Votes {
		targets = append(targets, v.Target.Number)
	}
	require.Equal(t, []uint64{30, 30, 30, 30, 31, 31}, targets)
	require.Equal(t, []checkpoint.Evidence{ev}, st.Evidence)
}

func TestRestoreWithoutFinality(t *testing.T) {
	db := openMem(t)
	st, err := db.Restore(bg)
	require.NoError(t, err)
	require.Equal(t, finality.RestoredState{}, st)
	require.NoError(t, db.StoreVote(bg, signed(linkVote(1, 0), 0)))
	require.NoError(t, db.StoreCertificate(bg, certOf(t, linkVote(2, 0), 0, 1, 2), cpPtr(2), nil))
	st, err = db.Restore(bg)
	require.NoError(t, err)
	require.Nil(t, st.Finalized)
	require.Len(t, st.Certificates, 1)
	require.Len(t, st.Votes, 4)
}

func TestCertificatesRange(t *testing.T) {
	db := openMem(t)
	fillChain(t, db, 20, 4)
	tests := []struct {
		from, to uint64
		limit    int
		want     []uint64
	}{
		{1, 5, 0, []uint64{1, 2, 3, 4, 5}},
		{18, 100, 0, []uint64{18, 19, 20}},
		{3, 10, 2, []uint64{3, 4}},
		{10, 9, 0, nil},
		{0, ^uint64(0), 3, []uint64{1, 2, 3}},
		{21, 30, 0, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d-%d-%d", tc.from, tc.to, tc.limit), func(t *testing.T) {
			certs, err := db.Certificates(bg, tc.from, tc.to, tc.limit)
			require.NoError(t, err)
			var got []uint64
			for _, c := range certs {
				got = append(got, c.Target.Number)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestStatusLevels(t *testing.T) {
	db := openMem(t)
	fillChain(t, db, 10, 4)   // justified 10, finalized 9; certificates 1..10
	_, err := db.Prune(bg, 5) // keeps 5..9 (and 10)
	require.NoError(t, err)
	// 11: votes below quorum; 12: quorum of votes without certificate;
	// 13: split votes, best hash has 2.
	for i := 0; i < 2; i++ {
		require.NoError(t, db.StoreVote(bg, signed(linkVote(11, 0), i)))
	}
	for i := 0; i < 3; i++ {
		require.NoError(t, db.StoreVote(bg, signed(linkVote(12, 0), i)))
	}
	require.NoError(t, db.StoreVote(bg, signed(linkVote(13, 1), 0)))
	require.NoError(t, db.StoreVote(bg, signed(linkVote(13, 2), 1)))
	require.NoError(t, db.StoreVote(bg, signed(linkVote(13, 2), 2)))

	tests := []struct {
		number  uint64
		quorum  int
		level   Level
		weight  int
		hash    checkpoint.Hash
		hasCert bool
	}{
		{2, 3, LevelFinality, 0, checkpoint.Hash{}, false}, // pruned
		{9, 3, LevelFinality, 4, cpHash(9, 0), true},
		{10, 3, LevelCommitment, 4, cpHash(10, 0), true},
		{11, 3, LevelPreCommitment, 2, cpHash(11, 0), false},
		{12, 3, LevelCommitment, 3, cpHash(12, 0), false},
		{12, 0, LevelPreCommitment, 3, cpHash(12, 0), false},
		{13, 3, LevelPreCommitment, 2, cpHash(13, 2), false},
		{14, 3, LevelNone, 0, checkpoint.Hash{}, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d/q%d", tc.number, tc.quorum), func(t *testing.T) {
			st, err := db.Status(bg, tc.number, tc.quorum)
			require.NoError(t, err)
			require.Equal(t, CheckpointStatus{Number: tc.number, Level: tc.level, Weight: tc.weight, Hash: tc.hash, HasCertificate: tc.hasCert}, st)
		})
	}
	require.Equal(t, "none", LevelNone.String())
	require.Equal(t, "pre-commitment", LevelPreCommitment.String())
	require.Equal(t, "commitment", LevelCommitment.String())
	require.Equal(t, "finality", LevelFinality.String())
}

func TestSignerRecords(t *testing.T) {
	db := openMem(t)
	pub := func(i int) ed25519.PublicKey { return testKeys[i].Public().(ed25519.PublicKey) }
	_, found, err := db.LoadSignerRecord(bg, pub(0))
	require.NoError(t, err)
	require.False(t, found)
	_, _, err = db.LoadSignerRecord(bg, []byte{1, 2})
	require.ErrorIs(t, err, checkpoint.ErrMalformed)

	v5 := signed(linkVote(5, 0), 0)
	v5fork := signed(linkVote(5, 1), 0)
	v7 := signed(linkVote(7, 0), 0)
	base := checkpoint.SignerRecord{PublicKey: pub(0), Genesis: testGenesis, Last: &v5}
	require.NoError(t, db.StoreSignerRecord(bg, base))

	tests := []struct {
		name string
		rec  checkpoint.SignerRecord
		want error
	}{
		{"same record", base, nil},
		{"other chain", checkpoint.SignerRecord{PublicKey: pub(0), Genesis: checkpoint.HashOf([]byte("x")), Last: &v7}, ErrWrongChain},
		{"short key", checkpoint.SignerRecord{PublicKey: []byte{1}, Genesis: testGenesis}, checkpoint.ErrMalformed},
		{"lower target", checkpoint.SignerRecord{PublicKey: pub(0), Genesis: testGenesis, Last: ptrVote(signed(linkVote(4, 0), 0))}, ErrSignerRegression},
		{"drop last", checkpoint.SignerRecord{PublicKey: pub(0), Genesis: testGenesis}, ErrSignerRegression},
		{"double vote", checkpoint.SignerRecord{PublicKey: pub(0), Genesis: testGenesis, Last: &v5fork}, ErrSignerRegression},
		{"forward", checkpoint.SignerRecord{PublicKey: pub(0), Genesis: testGenesis, Last: &v7}, nil},
		{"back after forward", base, ErrSignerRegression},
		{"watermark forward", checkpoint.SignerRecord{PublicKey: pub(0), Genesis: testGenesis, Last: &v7, MinTarget: 9, MinSource: 8}, nil},
		{"watermark back", checkpoint.SignerRecord{PublicKey: pub(0), Genesis: testGenesis, Last: &v7, MinTarget: 8, MinSource: 8}, ErrSignerRegression},
		{"source watermark back", checkpoint.SignerRecord{PublicKey: pub(0), Genesis: testGenesis, Last: &v7, MinTarget: 9, MinSource: 7}, ErrSignerRegression},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := db.StoreSignerRecord(bg, tc.rec)
			if tc.want == nil {
				require.NoError(t, err)
				got, found, err := db.LoadSignerRecord(bg, tc.rec.PublicKey)
				require.NoError(t, err)
				require.True(t, found)
				require.Equal(t, tc.rec, got)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}
	other := checkpoint.SignerRecord{PublicKey: pub(1), Genesis: testGenesis, MinTarget: 3}
	require.NoError(t, db.StoreSignerRecord(bg, other))
	recs, err := db.SignerRecords(bg)
	require.NoError(t, err)
	require.Len(t, recs, 2)
}

func ptrVote(v checkpoint.SignedVote) *checkpoint.SignedVote { return &v }

func TestPurgeKeepingSignerRecords(t *testing.T) {
	fs := vfs.NewMem()
	db := openAt(t, fs, "db")
	fillChain(t, db, 10, 4)
	require.NoError(t, db.StoreEvidence(bg, doubleVoteEvidence(9, 1)))
	_, err := db.Prune(bg, 3)
	require.NoError(t, err)
	pub := testKeys[0].Public().(ed25519.PublicKey)
	rec := checkpoint.SignerRecord{PublicKey: pub, Genesis: testGenesis, Last: ptrVote(signed(linkVote(10, 0), 0))}
	require.NoError(t, db.StoreSignerRecord(bg, rec))

	require.NoError(t, db.PurgeKeepingSignerRecords(bg))
	check := func(db *CheckpointDB) {
		st, err := db.Restore(bg)
		require.NoError(t, err)
		require.Equal(t, finality.RestoredState{}, st)
		certs, err := db.Certificates(bg, 0, 100, 0)
		require.NoError(t, err)
		require.Empty(t, certs)
		evs, err := db.Evidence(bg)
		require.NoError(t, err)
		require.Empty(t, evs)
		got, found, err := db.LoadSignerRecord(bg, pub)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, rec, got)
		require.Zero(t, db.Stats().OldestRetained)
	}
	check(db)
	// The purged database accepts the chain again from scratch.
	require.NoError(t, db.StoreVote(bg, signed(linkVote(2, 0), 1)))
	votes, err := db.Votes(bg, 2)
	require.NoError(t, err)
	require.Len(t, votes, 1)
	require.NoError(t, db.Close())
	db = openAt(t, fs, "db")
	votes, err = db.Votes(bg, 2)
	require.NoError(t, err)
	require.Len(t, votes, 1)
}

func TestReadOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	_, err := Open(dir, Options{Genesis: testGenesis, ReadOnly: true})
	require.ErrorIs(t, err, ErrNotExist)
	_, statErr := os.Stat(dir)
	require.True(t, os.IsNotExist(statErr), "read-only open must not create the directory")

	db, err := Open(dir, Options{Genesis: testGenesis})
	require.NoError(t, err)
	fillChain(t, db, 5, 4)
	require.NoError(t, db.Close())

	for _, g := range []checkpoint.Hash{testGenesis, {}} {
		ro, err := Open(dir, Options{Genesis: g, ReadOnly: true})
		require.NoError(t, err)
		require.Equal(t, testGenesis, ro.Genesis())
		certs, err := ro.Certificates(bg, 0, 10, 0)
		require.NoError(t, err)
		require.Len(t, certs, 5)
		require.ErrorIs(t, ro.StoreVote(bg, signed(linkVote(6, 0), 0)), ErrReadOnly)
		_, err = ro.Prune(bg, 1)
		require.ErrorIs(t, err, ErrReadOnly)
		require.NoError(t, ro.Flush(bg))
		require.True(t, ro.Stats().ReadOnly)
		require.NoError(t, ro.Close())
	}
	_, err = Open(dir, Options{Genesis: checkpoint.HashOf([]byte("x")), ReadOnly: true})
	require.ErrorIs(t, err, ErrWrongChain)
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db, err := Open(dir, Options{Genesis: testGenesis})
	require.NoError(t, err)
	for _, ro := range []bool{false, true} {
		_, err = Open(dir, Options{Genesis: testGenesis, ReadOnly: ro})
		require.ErrorIs(t, err, ErrLocked)
		require.Contains(t, err.Error(), "checkpoint database at "+dir+" is in use by another process")
		require.NotContains(t, err.Error(), "\n")
	}
	require.NoError(t, db.Close())
	db, err = Open(dir, Options{Genesis: testGenesis})
	require.NoError(t, err, "the lock is released by Close")
	require.NoError(t, db.Close())
}

func TestClosed(t *testing.T) {
	db, err := Open("db", Options{FS: vfs.NewMem(), Genesis: testGenesis})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	require.NoError(t, db.Close())
	require.ErrorIs(t, db.StoreVote(bg, signed(linkVote(1, 0), 0)), ErrClosed)
	_, err = db.Restore(bg)
	require.ErrorIs(t, err, ErrClosed)
	_, _, err = db.LoadSignerRecord(bg, testKeys[0].Public().(ed25519.PublicKey))
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, db.Flush(bg), ErrClosed)
	require.True(t, db.Stats().Closed)
	require.Equal(t, "db", db.Path())
}

func TestContextCanceled(t *testing.T) {
	db := openMem(t)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	require.ErrorIs(t, db.StoreVote(ctx, signed(linkVote(1, 0), 0)), context.Canceled)
	_, err := db.Restore(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestFlushIsDurabilityBarrier(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err)
	defer db.Close()
	for i := 0; i < 5; i++ {
		require.NoError(t, db.StoreVote(bg, signed(linkVote(3, 0), i)))
	}
	before := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	require.NoError(t, db.Flush(bg))
	after := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})

	count := func(fs vfs.FS) int {
		db, err := Open("db", Options{FS: fs, Genesis: testGenesis})
		require.NoError(t, err)
		defer db.Close()
		votes, err := db.Votes(bg, 3)
		require.NoError(t, err)
		return len(votes)
	}
	require.Zero(t, count(before), "NoSync votes are not durable before Flush")
	require.Equal(t, 5, count(after))
}

func TestLogLines(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	db, err := Open("db", Options{FS: vfs.NewMem(), Genesis: testGenesis, Logger: zap.New(core)})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.StoreVote(bg, signed(linkVote(3, 0), 0)))
	require.NoError(t, db.StoreVote(bg, signed(linkVote(3, 0), 1)))
	require.NoError(t, db.StoreCertificate(bg, certOf(t, linkVote(3, 0), 0, 1, 2), cpPtr(3), cpPtr(2)))
	fillChain(t, db, 20, 4)
	_, err = db.Prune(bg, 5)
	require.NoError(t, err)

	find := func(msg string) []map[string]any {
		var out []map[string]any
		for _, e := range logs.FilterMessage(msg).All() {
			require.Equal(t, "checkpointdb", e.LoggerName)
			out = append(out, e.ContextMap())
		}
		require.NotEmpty(t, out, "no %q line", msg)
		return out
	}
	require.Equal(t, "db", find("Opening checkpoint database at db")[0]["path"])
	find("Checkpoint database opened successfully")
	sig := find("Stored signature")
	require.Equal(t, map[string]any{"checkpoint": uint64(3), "validator": uint32(1), "total": int64(2)}, sig[1])
	require.Equal(t, map[string]any{"checkpoint": uint64(3), "signatures": int64(3)}, find("Stored certificate")[0])
	require.Equal(t, uint64(2), find("Updated last finalized checkpoint")[0]["checkpoint"])
	require.Equal(t, int64(14), find("Pruned old checkpoints")[0]["count"])
}

func TestStats(t *testing.T) {
	db := openMem(t)
	fillChain(t, db, 30, 4)
	_, err := db.Prune(bg, 10)
	require.NoError(t, err)
	require.NoError(t, db.db.Flush())
	s := db.Stats()
	require.Equal(t, uint64(20), s.OldestRetained)
	require.Equal(t, cpPtr(30), s.Justified)
	require.Equal(t, cpPtr(29), s.Finalized)
	require.NotZero(t, s.DiskUsageBytes)
	require.NotZero(t, s.SSTables)
	require.NoError(t, s.Fatal)
}

func TestVerify(t *testing.T) {
	db := openMem(t)
	fillChain(t, db, 10, 4)
	require.NoError(t, db.Verify(bg))
	require.NoError(t, db.db.Set(voteKey(9, 2), []byte("garbage"), nil))
	err := db.Verify(bg)
	require.ErrorIs(t, err, ErrCorrupted)
	_, err = db.Votes(bg, 9)
	require.ErrorIs(t, err, ErrCorrupted, "reads never skip a bad record")
	require.True(t, strings.Contains(err.Error(), "vote record"))
}

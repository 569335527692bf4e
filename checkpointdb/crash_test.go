package checkpointdb

import (
	"crypto/ed25519"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// crashRecorder wraps a crashable MemFS so that, while armed, every
// write-side file-system operation (create, write, sync, rename, remove, ...)
// first takes a crash clone of the file system: the state a power loss at
// that instant could leave. Each clone carries a copy of the test's
// "acknowledged" state at that instant.
type crashRecorder[S any] struct {
	mem *vfs.MemFS
	fs  vfs.FS

	mu     sync.Mutex
	armed  bool
	rng    *rand.Rand
	state  S
	copyFn func(S) S
	points []crashPoint[S]
}

type crashPoint[S any] struct {
	fs      *vfs.MemFS
	percent int
	op      errorfs.Op
	acked   S
}

func newCrashRecorder[S any](seed uint64, copyFn func(S) S) *crashRecorder[S] {
	r := &crashRecorder[S]{mem: vfs.NewCrashableMem(), rng: rand.New(rand.NewPCG(seed, 7)), copyFn: copyFn}
	r.fs = errorfs.Wrap(r.mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() != errorfs.OpIsWrite {
			return nil
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if !r.armed {
			return nil
		}
		// Half the points keep exactly the synced data, the rest a random
		// share of the unsynced data too.
		pct := 0
		if r.rng.IntN(2) == 1 {
			pct = 1 + r.rng.IntN(100)
		}
		clone := r.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: r.rng})
		r.points = append(r.points, crashPoint[S]{fs: clone, percent: pct, op: op, acked: r.copyFn(r.state)})
		return nil
	}))
	return r
}

func (r *crashRecorder[S]) arm(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed = on
}

// ack updates the acknowledged state (after the call that made it durable
// returned).
func (r *crashRecorder[S]) ack(fn func(*S)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(&r.state)
}

// ownVoteState is what the node was told is durable.
type ownVoteState struct {
	returned []checkpoint.SignedVote // votes SignVote returned, in order
	certs    []checkpoint.Certificate
	final    uint64
}

func copyOwnVoteState(s ownVoteState) ownVoteState {
	return ownVoteState{returned: slices.Clone(s.returned), certs: slices.Clone(s.certs), final: s.final}
}

// TestCrashOwnVotePath crashes at every write and sync point of
// sign -> persist -> return (and of the certificate, peer-vote and flush
// writes around it): after reopening any crash image, every vote SignVote
// returned is covered by the signer record, a conflicting vote for any of
// those targets is refused as slashable, and every certificate and pointer
// StoreCertificate acknowledged is present.
func TestCrashOwnVotePath(t *testing.T) {
	rec := newCrashRecorder[ownVoteState](1, copyOwnVoteState)
	db, err := Open("db", Options{FS: rec.fs, Genesis: testGenesis})
	require.NoError(t, err)
	const me = 0
	signer := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[me]), me, testGenesis)

	rec.arm(true)
	const rounds = 30
	for n := uint64(1); n <= rounds; n++ {
		for i := 1; i < 4; i++ {
			require.NoError(t, db.StoreVote(bg, signed(linkVote(n, 0), i)))
		}
		sv, err := signer.SignVote(bg, linkVote(n, 0))
		require.NoError(t, err)
		rec.ack(func(s *ownVoteState) { s.returned = append(s.returned, sv) })
		require.NoError(t, db.StoreVote(bg, sv))
		if n%3 == 0 {
			c := certOf(t, linkVote(n, 0), 0, 1, 2)
			require.NoError(t, db.StoreCertificate(bg, c, cpPtr(n), cpPtr(n-1)))
			rec.ack(func(s *ownVoteState) { s.certs = append(s.certs, c); s.final = n - 1 })
		}
		if n%7 == 0 {
			require.NoError(t, db.Flush(bg))
		}
	}
	rec.arm(false)
	require.NoError(t, db.Close())
	kinds := map[errorfs.OpKind]int{}
	for _, p := range rec.points {
		kinds[p.op.Kind]++
	}
	t.Logf("%d crash points by op kind: %v", len(rec.points), kinds)
	require.GreaterOrEqual(t, kinds[errorfs.OpFileSync]+kinds[errorfs.OpFileSyncData]+kinds[errorfs.OpFileSyncTo], rounds, "a crash point at every sync")

	pub := testKeys[me].Public().(ed25519.PublicKey)
	for i, p := range rec.points {
		db, err := Open("db", Options{FS: p.fs, Genesis: testGenesis})
		require.NoError(t, err, "crash point %d (%+v, %d%% unsynced)", i, p.op, p.percent)
		r, found, err := db.LoadSignerRecord(bg, pub)
		require.NoError(t, err)
		if n := len(p.acked.returned); n > 0 {
			last := p.acked.returned[n-1]
			require.True(t, found, "crash point %d: signer record lost", i)
			require.NotNil(t, r.Last)
			require.GreaterOrEqual(t, r.Last.Target.Number, last.Target.Number, "crash point %d: signer record behind a returned vote", i)
			s2 := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[me]), me, testGenesis)
			for _, sv := range p.acked.returned {
				_, err := s2.SignVote(bg, linkVote(sv.Target.Number, 1))
				require.ErrorIs(t, err, checkpoint.ErrSlashable, "crash point %d: conflicting vote for returned target %d signed", i, sv.Target.Number)
			}
			if r.Last.Target.Number == last.Target.Number {
				again, err := s2.SignVote(bg, last.Vote)
				require.NoError(t, err)
				require.Equal(t, last, again, "identical request returns the identical signature")
			}
		}
		for _, c := range p.acked.certs {
			got, found, err := db.Certificate(bg, c.Target.Number)
			require.NoError(t, err)
			require.True(t, found, "crash point %d: acknowledged certificate %d lost", i, c.Target.Number)
			require.Equal(t, c.Vote(), got.Vote())
		}
		if p.acked.final > 0 {
			_, f, err := db.Pointers(bg)
			require.NoError(t, err)
			require.NotNil(t, f)
			require.GreaterOrEqual(t, f.Number, p.acked.final)
		}
		_, err = db.Restore(bg)
		require.NoError(t, err)
		require.NoError(t, db.Close())
	}
}

// pruneState is the acknowledged state of the prune crash test.
type pruneState struct{ base uint64 }

// checkPruneImage opens a crash image of a store filled by fillChain(top)
// and pruned towards newBase from oldBase, and checks it is consistent.
// A base in [oldBase, newBase] other than those two is an error; acked
// requires newBase.
func checkPruneImage(t *testing.T, fs vfs.FS, top, oldBase, newBase uint64, acked bool, rec checkpoint.SignerRecord) {
	t.Helper()
	db, err := Open("db", Options{FS: fs, Genesis: testGenesis})
	require.NoError(t, err)
	defer db.Close()
	base := db.Stats().OldestRetained
	if acked {
		require.Equal(t, newBase, base, "acknowledged prune base lost")
	} else {
		require.Contains(t, []uint64{oldBase, newBase}, base)
	}
	for n := uint64(1); n <= top; n++ {
		votes, err := db.Votes(bg, n)
		require.NoError(t, err)
		_, found, err := db.Certificate(bg, n)
		require.NoError(t, err)
		if n < base {
			require.Empty(t, votes, "checkpoint %d below base %d visible", n, base)
			require.False(t, found)
		} else {
			require.Len(t, votes, 4, "checkpoint %d at/above base %d incomplete", n, base)
			require.True(t, found)
		}
	}
	certs, err := db.Certificates(bg, 0, top, 0)
	require.NoError(t, err)
	require.Equal(t, max(base, 1), certs[0].Target.Number)
	_, f, err := db.Pointers(bg)
	require.NoError(t, err)
	require.Equal(t, cpPtr(top-1), f)
	_, found, err := db.Certificate(bg, top-1)
	require.NoError(t, err)
	require.True(t, found, "finalized certificate lost")
	got, found, err := db.LoadSignerRecord(bg, rec.PublicKey)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, rec, got)
	st, err := db.Restore(bg)
	require.NoError(t, err)
	require.Equal(t, top-1, st.Certificates[0].Target.Number)

	// Opening swept what an interrupted prune left below the base, and
	// pruning again completes an interrupted prune.
	var below int
	require.NoError(t, scan(bg, db.db, prefixStart(prefixVote), voteKey(base, 0), func(_, _ []byte) error { below++; return nil }))
	require.Zero(t, below, "records below the base remain after open")
	_, err = db.Prune(bg, top-newBase)
	require.NoError(t, err)
	require.Equal(t, newBase, db.Stats().OldestRetained)
	require.NoError(t, scan(bg, db.db, prefixStart(prefixVote), voteKey(newBase, 0), func(_, _ []byte) error { below++; return nil }))
	require.Zero(t, below, "records below the base remain on disk")
}

func fillForPrune(t *testing.T, db *CheckpointDB, top uint64) checkpoint.SignerRecord {
	fillChain(t, db, top, 4) // justified top, finalized top-1
	rec := checkpoint.SignerRecord{PublicKey: testKeys[0].Public().(ed25519.PublicKey), Genesis: testGenesis, Last: ptrVote(signed(linkVote(top, 0), 0))}
	require.NoError(t, db.StoreSignerRecord(bg, rec))
	// Flush the memtable so the prune has sstables to delete from.
	require.NoError(t, db.db.Flush())
	return rec
}

// TestCrashBetweenPruneMarkerAndDeletes crashes exactly after the synced
// prune-base marker and before any range deletion.
func TestCrashBetweenPruneMarkerAndDeletes(t *testing.T) {
	mem := vfs.NewCrashableMem()
	db, err := Open("db", Options{FS: mem, Genesis: testGenesis})
	require.NoError(t, err)
	const top = 31 // finalized 30
	rec := fillForPrune(t, db, top)
	var image *vfs.MemFS
	db.testAfterPruneMarker = func() { image = mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0}) }
	removed, err := db.Prune(bg, 10) // base 21
	require.NoError(t, err)
	require.Equal(t, 20, removed)
	require.NoError(t, db.Close())
	require.NotNil(t, image)

	// The image has the new base but all the old records on disk (a
	// read-only open does not sweep them).
	raw, err := Open("db", Options{FS: image, Genesis: testGenesis, ReadOnly: true})
	require.NoError(t, err)
	require.Equal(t, uint64(21), raw.Stats().OldestRetained)
	var rawVotes int
	require.NoError(t, scan(bg, raw.db, prefixStart(prefixVote), voteKey(21, 0), func(_, _ []byte) error { rawVotes++; return nil }))
	require.Positive(t, rawVotes, "the crash image should still hold the records below the base")
	require.NoError(t, raw.Close())

	checkPruneImage(t, image, top, 0, 21, true, rec)
}

// TestCrashDuringPrune crashes at every write and sync point of a prune,
// keeping random shares of unsynced data.
func TestCrashDuringPrune(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		rec := newCrashRecorder[pruneState](seed, func(s pruneState) pruneState { return s })
		db, err := Open("db", Options{FS: rec.fs, Genesis: testGenesis})
		require.NoError(t, err)
		const top = 41 // finalized 40
		srec := fillForPrune(t, db, top)
		_, err = db.Prune(bg, 30) // base 11
		require.NoError(t, err)
		rec.arm(true)
		_, err = db.Prune(bg, 10) // base 31
		require.NoError(t, err)
		rec.ack(func(s *pruneState) { s.base = 31 })
		// Writes after the prune (a flush, a compaction) are crash points too.
		require.NoError(t, db.db.Flush())
		rec.arm(false)
		require.NoError(t, db.Close())
		require.NotEmpty(t, rec.points)
		for _, p := range rec.points {
			checkPruneImage(t, p.fs, top, 11, 31, p.acked.base == 31, srec)
		}
	}
}

// TestCrashHWMOrdering crashes at every write and sync point of own votes
// and finalizing certificates — among them the points between a synced
// Pebble write and its high-water-mark write, and inside the
// high-water-mark write (pwrite before its fdatasync). Every image must open
// (a crash never makes a restart refuse), and after opening, the high-water
// mark and the signer record must be at or above everything acknowledged
// and at or above what the image's high-water-mark file held (nothing is
// ever lowered). A clean restart after that open succeeds too.
func TestCrashHWMOrdering(t *testing.T) {
	rec := newCrashRecorder[ownVoteState](7, copyOwnVoteState)
	db, err := Open("db", Options{FS: rec.fs, Genesis: testGenesis})
	require.NoError(t, err)
	const me = 0
	signer := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[me]), me, testGenesis)
	rec.arm(true)
	const rounds = 12
	for n := uint64(1); n <= rounds; n++ {
		sv, err := signer.SignVote(bg, linkVote(n, 0))
		require.NoError(t, err)
		rec.ack(func(s *ownVoteState) { s.returned = append(s.returned, sv) })
		var f *checkpoint.Checkpoint
		if n > 1 {
			f = cpPtr(n - 1)
		}
		c := certOf(t, linkVote(n, 0), 0, 1, 2)
		require.NoError(t, db.StoreCertificate(bg, c, cpPtr(n), f))
		rec.ack(func(s *ownVoteState) {
			s.certs = append(s.certs, c)
			if f != nil {
				s.final = f.Number
			}
		})
	}
	rec.arm(false)
	require.NoError(t, db.Close())

	hwmPoints := 0
	for _, p := range rec.points {
		if p.op.Path == "db.hwm" {
			hwmPoints++
		}
	}
	t.Logf("%d crash points, %d on the high-water mark", len(rec.points), hwmPoints)
	require.GreaterOrEqual(t, hwmPoints, 2*rounds, "crash points inside every high-water-mark write")

	pub := testKeys[me].Public().(ed25519.PublicKey)
	for i, p := range rec.points {
		// What the image's high-water mark holds before Open touches it.
		var before hwmState
		if f, err := p.fs.Open("db.hwm"); err == nil {
			raw, _ := io.ReadAll(f)
			_ = f.Close()
			before, _, _, err = parseHWM(raw)
			require.NoError(t, err, "crash point %d (%+v): a torn write must leave a readable slot", i, p.op)
		}
		for restart := 0; restart < 2; restart++ {
			db, err := Open("db", Options{FS: p.fs, Genesis: testGenesis})
			require.NoError(t, err, "crash point %d (%+v, %d%% unsynced), restart %d", i, p.op, p.percent, restart)
			hw := db.HighWaterMark()
			fin := uint64(0)
			if hw.Finalized != nil {
				fin = hw.Finalized.Number
			}
			require.GreaterOrEqual(t, fin, p.acked.final, "crash point %d: high-water mark below acknowledged finality", i)
			if before.finalized != nil {
				require.GreaterOrEqual(t, fin, before.finalized.Number, "crash point %d: high-water mark lowered", i)
			}
			_, f, err := db.Pointers(bg)
			require.NoError(t, err)
			if p.acked.final > 0 {
				require.GreaterOrEqual(t, f.Number, p.acked.final)
			}
			r, found, err := db.LoadSignerRecord(bg, pub)
			require.NoError(t, err)
			if n := len(p.acked.returned); n > 0 {
				require.True(t, found)
				target, _, _ := effective(r)
				require.GreaterOrEqual(t, target, p.acked.returned[n-1].Target.Number, "crash point %d: signer below a released vote", i)
				w, ok := db.hwm.signer(pub)
				require.True(t, ok)
				require.GreaterOrEqual(t, w.Target, p.acked.returned[n-1].Target.Number)
			}
			if bw, ok := before.signer(pub); ok {
				w, _ := db.hwm.signer(pub)
				require.GreaterOrEqual(t, w.Target, bw.Target, "crash point %d: signer high-water mark lowered", i)
			}
			require.NoError(t, db.Close())
		}
	}
}

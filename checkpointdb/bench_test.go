package checkpointdb

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
)

// Benchmarks run on disk (b.TempDir). Custom metrics carry the numbers the
// performance targets are about; see docs/storage.md.
//
//	go test -run='^$' -bench=. ./checkpointdb/
//	FLARE_BENCH_LARGE=1 adds Restore at 100,000 retained x 100 validators.

// quorumCert returns the certificate of the first quorum of vals validators
// on link n-1 -> n (fake signatures: the database never verifies them).
func quorumCert(n uint64, vals int) checkpoint.Certificate {
	v := linkVote(n, 0)
	q := checkpoint.Quorum(vals)
	c := checkpoint.Certificate{Genesis: v.Genesis, SetID: v.SetID, Source: v.Source, Target: v.Target}
	for i := 0; i < q; i++ {
		c.Signatures = append(c.Signatures, checkpoint.CertSignature{Validator: checkpoint.ValidatorIndex(i), Signature: fakeSigned(v, i).Signature})
	}
	return c
}

// cheapSig is an incompressible-looking fake signature without hashing
// (bulk loads): a xorshift stream seeded by (n, i).
func cheapSig(n uint64, i int) checkpoint.Signature {
	var s checkpoint.Signature
	x := n*0x9e3779b97f4a7c15 + uint64(i)*0xbf58476d1ce4e5b9 + 1
	for j := 0; j < len(s); j += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(s[j:], x)
	}
	return s
}

// bulkCert is quorumCert with cheap signatures.
func bulkCert(v checkpoint.Vote, vals int) checkpoint.Certificate {
	c := checkpoint.Certificate{Genesis: v.Genesis, SetID: v.SetID, Source: v.Source, Target: v.Target}
	for i := 0; i < checkpoint.Quorum(vals); i++ {
		c.Signatures = append(c.Signatures, checkpoint.CertSignature{Validator: checkpoint.ValidatorIndex(i), Signature: cheapSig(v.Target.Number, i)})
	}
	return c
}

// bulkLoad writes checkpoints from..to as the API leaves them (a quorum
// certificate holding its signers' votes, the other validators' votes
// stored), with unsynced batches, then sets the pointers through the API
// (justified to, finalized to-1).
func bulkLoad(tb testing.TB, db *CheckpointDB, from, to uint64, vals int) {
	tb.Helper()
	q := checkpoint.Quorum(vals)
	const batchBytes = 8 << 20
	b := db.db.NewBatchWithSize(batchBytes)
	for n := from; n <= to; n++ {
		v := linkVote(n, 0)
		val, err := checkpoint.EncodeCertificate(bulkCert(v, vals))
		require.NoError(tb, err)
		require.NoError(tb, b.Set(certKey(n), val, nil))
		require.NoError(tb, b.Set(indexKey(n), nil, nil))
		for i := q; i < vals; i++ {
			val, err := checkpoint.EncodeVote(checkpoint.SignedVote{Vote: v, Validator: checkpoint.ValidatorIndex(i), Signature: cheapSig(n, i)})
			require.NoError(tb, err)
			require.NoError(tb, b.Set(voteKey(n, checkpoint.ValidatorIndex(i)), val, nil))
		}
		if b.Len() > batchBytes-(64<<10) || n == to {
			require.NoError(tb, db.db.Apply(b, pebble.NoSync))
			require.NoError(tb, b.Close())
			b = db.db.NewBatchWithSize(batchBytes)
		}
	}
	require.NoError(tb, b.Close())
	db.wmu.Lock()
	clear(db.covers)
	db.wmu.Unlock()
	require.NoError(tb, db.StoreCertificate(bg, quorumCert(to, vals), cpPtr(to), cpPtr(to-1)))
}

func dirSize(tb testing.TB, dir string) int64 {
	var total int64
	require.NoError(tb, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			total += fi.Size()
		}
		return err
	}))
	return total
}

func BenchmarkRestore(b *testing.B) {
	sizes := []struct{ retained, vals int }{{1000, 100}, {1000, 21}, {100000, 21}}
	if os.Getenv("FLARE_BENCH_LARGE") != "" {
		sizes = append(sizes, struct{ retained, vals int }{100000, 100})
	}
	for _, sz := range sizes {
		b.Run(fmt.Sprintf("retained=%d/validators=%d", sz.retained, sz.vals), func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "db")
			db, err := Open(dir, Options{Genesis: testGenesis})
			require.NoError(b, err)
			top := uint64(sz.retained) + 1 // finalized = retained: checkpoints 1..F retained
			bulkLoad(b, db, 1, top, sz.vals)
			// Votes for the next checkpoint are in flight.
			for i := 0; i < sz.vals/2; i++ {
				require.NoError(b, db.StoreVote(bg, fakeSigned(linkVote(top+1, 0), i)))
			}
			require.NoError(b, db.db.Compact(bg, []byte{0}, []byte{prefixEnd}, true))
			require.NoError(b, db.Close())
			start := time.Now()
			db, err = Open(dir, Options{Genesis: testGenesis})
			require.NoError(b, err)
			openTime := time.Since(start)
			defer db.Close()

			var st finality.RestoredState
			for b.Loop() {
				st, err = db.Restore(bg)
				if err != nil {
					b.Fatal(err)
				}
			}
			require.Len(b, st.Certificates, 2)
			require.Equal(b, sz.vals+sz.vals/2, len(st.Votes))
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/restore")
			b.ReportMetric(openTime.Seconds()*1000, "ms/open+verify")
			b.ReportMetric(float64(dirSize(b, dir))/(1<<20), "MiB-on-disk")
		})
	}
}

// BenchmarkStorage stores 1000 checkpoints x 21 validators through the API
// (every vote, then a quorum certificate with pointers), compacts, and
// reports the size.
func BenchmarkStorage(b *testing.B) {
	const checkpoints, vals = 1000, 21
	var bytesOnDisk, pebbleBytes, sstBytes int64
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), "db")
		db, err := Open(dir, Options{Genesis: testGenesis})
		require.NoError(b, err)
		for n := uint64(1); n <= checkpoints; n++ {
			for i := 0; i < vals; i++ {
				require.NoError(b, db.StoreVote(bg, fakeSigned(linkVote(n, 0), i)))
			}
			var f *checkpoint.Checkpoint
			if n > 1 {
				f = cpPtr(n - 1)
			}
			require.NoError(b, db.StoreCertificate(bg, quorumCert(n, vals), cpPtr(n), f))
		}
		require.NoError(b, db.db.Compact(bg, []byte{0}, []byte{prefixEnd}, true))
		st := db.Stats()
		pebbleBytes, sstBytes = int64(st.DiskUsageBytes), st.SSTableBytes
		require.NoError(b, db.Close())
		bytesOnDisk = dirSize(b, dir)
		// Everything is still there.
		db, err = Open(dir, Options{Genesis: testGenesis, ReadOnly: true})
		require.NoError(b, err)
		votes, err := db.Votes(bg, 500)
		require.NoError(b, err)
		require.Len(b, votes, vals)
		require.NoError(b, db.Close())
	}
	// The data is the sstables; du and Pebble's disk usage add the WAL files
	// Pebble keeps for recycling (bounded by a few memtables, not by data).
	b.ReportMetric(float64(sstBytes)/1e6, "MB-sstables")
	b.ReportMetric(float64(bytesOnDisk)/1e6, "MB-du")
	b.ReportMetric(float64(pebbleBytes)/1e6, "MB-pebble-disk-usage")
	b.ReportMetric(float64(sstBytes)/(checkpoints*vals), "sst-bytes/vote")
}

// BenchmarkStoreVote is peer-vote ingest through the database alone
// (signatures made beforehand, not verified): "live" votes target
// checkpoints above the finalized one (first-vote-wins from memory), "late"
// votes target finalized checkpoints (first-vote-wins reads the store).
func BenchmarkStoreVote(b *testing.B) {
	for _, late := range []bool{false, true} {
		name := "live"
		if late {
			name = "late"
		}
		b.Run(name, func(b *testing.B) { benchStoreVote(b, late) })
	}
}

func benchStoreVote(b *testing.B, late bool) {
	const vals = 100
	db, err := Open(filepath.Join(b.TempDir(), "db"), Options{Genesis: testGenesis})
	require.NoError(b, err)
	defer db.Close()
	if late {
		far := uint64(1) << 40
		require.NoError(b, db.StoreCertificate(bg, quorumCert(far, 4), cpPtr(far), cpPtr(far-1)))
	}
	const pool = 200000
	votes := make([]checkpoint.SignedVote, pool)
	for i := range votes {
		votes[i] = fakeSigned(linkVote(uint64(i/vals)+1, 0), i%vals)
	}
	i := 0
	for b.Loop() {
		if i == pool {
			b.StopTimer()
			for j := range votes {
				votes[j].Target.Number += pool / vals
				votes[j].Source.Number += pool / vals
			}
			i = 0
			b.StartTimer()
		}
		if err := db.StoreVote(bg, votes[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "votes/s")
}

// BenchmarkOwnVote compares an own vote (sign + synced signer record, what
// SafeSigner.SignVote does before it returns) with a bare fsync of a small
// file in the same directory, measured alternately in the same loop. Two
// probes: "fsync" overwrites 8 bytes in place (the cheapest durable write),
// "append-fsync" appends a 200-byte record (what any durable log pays when
// its file grows). The database is first brought to its steady state, where
// the WAL is a recycled file overwritten in place; "fresh-WAL" variants run
// on a new database whose first WAL still grows.
func BenchmarkOwnVote(b *testing.B) {
	for _, steady := range []bool{true, false} {
		name := "steady-WAL"
		if !steady {
			name = "fresh-WAL"
		}
		b.Run(name, func(b *testing.B) { benchOwnVote(b, steady) })
	}
}

func benchOwnVote(b *testing.B, steady bool) {
	dir := filepath.Join(b.TempDir(), "db")
	db, err := Open(dir, Options{Genesis: testGenesis})
	require.NoError(b, err)
	defer db.Close()
	if steady {
		// Rotate through a few WALs so the live one is recycled.
		for round := uint64(0); round < 4; round++ {
			for i := 0; i < 20000; i++ {
				require.NoError(b, db.StoreVote(bg, fakeSigned(linkVote(1+round*1000+uint64(i/20), 0), 1+i%20)))
			}
			require.NoError(b, db.db.Flush())
		}
	}
	signer := finality.NewSafeSigner(db, finality.NewKeySigner(testKeys[0]), 0, testGenesis)
	probe, err := os.Create(filepath.Join(dir, "fsync-probe"))
	require.NoError(b, err)
	defer probe.Close()
	appendProbe, err := os.Create(filepath.Join(dir, "fsync-append-probe"))
	require.NoError(b, err)
	defer appendProbe.Close()
	record := make([]byte, 200)
	var vote, fsync, appendFsync time.Duration
	n := uint64(100000)
	for b.Loop() {
		t0 := time.Now()
		if _, err := signer.SignVote(bg, linkVote(n, 0)); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := probe.WriteAt([]byte("probe..."), 0); err != nil {
			b.Fatal(err)
		}
		if err := probe.Sync(); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := appendProbe.Write(record); err != nil {
			b.Fatal(err)
		}
		if err := appendProbe.Sync(); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		vote += t1.Sub(t0)
		fsync += t2.Sub(t1)
		appendFsync += t3.Sub(t2)
		n++
	}
	b.ReportMetric(float64(vote.Microseconds())/float64(b.N), "µs/own-vote")
	b.ReportMetric(float64(fsync.Microseconds())/float64(b.N), "µs/fsync")
	b.ReportMetric(float64(appendFsync.Microseconds())/float64(b.N), "µs/append-fsync")
	b.ReportMetric(float64(vote)/float64(fsync), "ratio-vs-fsync")
	b.ReportMetric(float64(vote)/float64(appendFsync), "ratio-vs-append-fsync")
}

// BenchmarkPrune prunes 1000 checkpoints x 21 validators at a time: each
// round loads 1000 more checkpoints and raises finality, then prunes to keep
// 1000. Only the Prune calls are timed (ms/prune, max-ms/prune); ns/op covers
// a whole run of rounds, whose setup dwarfs the prunes.
func BenchmarkPrune(b *testing.B) {
	const step, vals, rounds = 1000, 21, 25
	var total, worst time.Duration
	prunes := 0
	for b.Loop() {
		db, err := Open(filepath.Join(b.TempDir(), "db"), Options{Genesis: testGenesis})
		require.NoError(b, err)
		top := uint64(step + 1)
		bulkLoad(b, db, 1, top, vals)
		for r := 0; r < rounds; r++ {
			bulkLoad(b, db, top+1, top+step, vals)
			top += step
			require.NoError(b, db.db.Flush())
			start := time.Now()
			n, err := db.Prune(bg, step)
			d := time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			require.Equal(b, step, n)
			total += d
			worst = max(worst, d)
			prunes++
		}
		require.NoError(b, db.Close())
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(prunes), "ms/prune")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms/prune")
	b.ReportMetric(step, "checkpoints/prune")
}

// BenchmarkHWMCost measures what the high-water mark adds to the two calls
// that write it: an own vote (sign + synced signer record + HWM pwrite and
// fdatasync) and a certificate that raises finality (synced batch + HWM).
// Each iteration does the call on a database with the high-water mark and
// on one with it switched off (same directory, steady-state WAL), and a
// bare in-place fsync, alternately, so that all three see the same disk.
func BenchmarkHWMCost(b *testing.B) {
	b.Run("own-vote", func(b *testing.B) { benchHWMCost(b, false) })
	b.Run("finalizing-certificate", func(b *testing.B) { benchHWMCost(b, true) })
}

func benchHWMCost(b *testing.B, cert bool) {
	dir := b.TempDir()
	open := func(name string, hwm bool) *CheckpointDB {
		db, err := Open(filepath.Join(dir, name), Options{Genesis: testGenesis})
		require.NoError(b, err)
		db.hwm.disabled = !hwm
		// Rotate through a few WALs so the live one is recycled.
		for round := uint64(0); round < 4; round++ {
			for i := 0; i < 20000; i++ {
				require.NoError(b, db.StoreVote(bg, fakeSigned(linkVote(1+round*1000+uint64(i/20), 0), 1+i%20)))
			}
			require.NoError(b, db.db.Flush())
		}
		return db
	}
	with, without := open("with", true), open("without", false)
	defer with.Close()
	defer without.Close()
	signers := map[*CheckpointDB]*finality.SafeSigner{
		with:    finality.NewSafeSigner(with, finality.NewKeySigner(testKeys[0]), 0, testGenesis),
		without: finality.NewSafeSigner(without, finality.NewKeySigner(testKeys[0]), 0, testGenesis),
	}
	probe, err := os.Create(filepath.Join(dir, "fsync-probe"))
	require.NoError(b, err)
	defer probe.Close()
	n := uint64(100000)
	call := func(db *CheckpointDB) {
		var err error
		if cert {
			err = db.StoreCertificate(bg, quorumCert(n, 4), cpPtr(n), cpPtr(n-1))
		} else {
			_, err = signers[db].SignVote(bg, linkVote(n, 0))
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	var tWith, tWithout, tFsync time.Duration
	for b.Loop() {
		t0 := time.Now()
		call(with)
		t1 := time.Now()
		call(without)
		t2 := time.Now()
		if _, err := probe.WriteAt([]byte("probe..."), 0); err != nil {
			b.Fatal(err)
		}
		if err := probe.Sync(); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		tWith += t1.Sub(t0)
		tWithout += t2.Sub(t1)
		tFsync += t3.Sub(t2)
		n++
	}
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(us(tWith), "µs/with-hwm")
	b.ReportMetric(us(tWithout), "µs/without-hwm")
	b.ReportMetric(us(tWith)-us(tWithout), "µs/added")
	b.ReportMetric(float64(tWith)/float64(tWithout), "ratio")
	b.ReportMetric(us(tFsync), "µs/fsync")
}

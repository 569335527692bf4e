package checkpointdb

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

var testGenesis = checkpoint.HashOf([]byte("flare test genesis"))

// testKey returns the deterministic ed25519 key of validator i.
func testKey(i int) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	binary.BigEndian.PutUint64(seed, uint64(i)+1)
	copy(seed[8:], "flare-node checkpointdb tests")
	return ed25519.NewKeyFromSeed(seed)
}

// testKeys caches validator keys (signing is the slow part of big setups).
var testKeys = func() []ed25519.PrivateKey {
	ks := make([]ed25519.PrivateKey, 128)
	for i := range ks {
		ks[i] = testKey(i)
	}
	return ks
}()

// cpHash returns the hash of checkpoint n on fork f (0 = canonical).
func cpHash(n uint64, fork int) checkpoint.Hash {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], n)
	binary.BigEndian.PutUint64(b[8:], uint64(fork))
	return checkpoint.HashOf(b[:])
}

func cp(n uint64) checkpoint.Checkpoint { return checkpoint.Checkpoint{Number: n, Hash: cpHash(n, 0)} }

func cpPtr(n uint64) *checkpoint.Checkpoint { c := cp(n); return &c }

// linkVote is the canonical vote (n-1 -> n) on fork f.
func linkVote(n uint64, fork int) checkpoint.Vote {
	return checkpoint.Vote{
		Genesis: testGenesis,
		SetID:   1,
		Source:  cp(n - 1),
		Target:  checkpoint.Checkpoint{Number: n, Hash: cpHash(n, fork)},
	}
}

// signed signs v as validator i.
func signed(v checkpoint.Vote, i int) checkpoint.SignedVote {
	sv := checkpoint.SignedVote{Vote: v, Validator: checkpoint.ValidatorIndex(i)}
	copy(sv.Signature[:], ed25519.Sign(testKeys[i], v.SigningBytes()))
	return sv
}

// fakeSigned is signed() with a cheap fake signature (for big setups and
// benchmarks; the database never verifies signatures).
func fakeSigned(v checkpoint.Vote, i int) checkpoint.SignedVote {
	sv := checkpoint.SignedVote{Vote: v, Validator: checkpoint.ValidatorIndex(i)}
	h := checkpoint.HashOf(v.SigningBytes(), []byte{byte(i), byte(i >> 8)})
	copy(sv.Signature[:32], h[:])
	h = checkpoint.HashOf(h[:])
	copy(sv.Signature[32:], h[:])
	return sv
}

// certOf builds the certificate of vote v signed by validators.
func certOf(t testing.TB, v checkpoint.Vote, validators ...int) checkpoint.Certificate {
	t.Helper()
	votes := make([]checkpoint.SignedVote, len(validators))
	for i, val := range validators {
		votes[i] = signed(v, val)
	}
	c, err := checkpoint.NewCertificate(votes)
	require.NoError(t, err)
	return c
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// openAt opens the database at path on fs and closes it at test end.
func openAt(t testing.TB, fs vfs.FS, path string) *CheckpointDB {
	t.Helper()
	db, err := Open(path, Options{FS: fs, Genesis: testGenesis, Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// openMem opens a fresh in-memory database.
func openMem(t testing.TB) *CheckpointDB {
	t.Helper()
	return openAt(t, vfs.NewMem(), "db")
}

func testLogger(t testing.TB) *zap.Logger {
	if tt, ok := t.(*testing.T); ok && testing.Verbose() {
		return zaptest.NewLogger(tt, zaptest.Level(zap.InfoLevel))
	}
	return zap.NewNop()
}

var bg = context.Background()

package finality

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// TestMemoryStaysBounded drives an observer without persistence through
// many checkpoints and checks that in-memory state stays within the window
// around the finalized checkpoint.
func TestMemoryStaysBounded(t *testing.T) {
	ctx := context.Background()
	const n, window, rounds = 4, 16, 400
	genesis := checkpoint.HashOf([]byte("memory test genesis"))
	keys := make([]ed25519.PrivateKey, n)
	auth := checkpoint.AuthoritySet{Genesis: genesis, SetID: 1}
	for i := range keys {
		var seed [ed25519.SeedSize]byte
		binary.BigEndian.PutUint32(seed[:], uint32(i+1))
		keys[i] = ed25519.NewKeyFromSeed(seed[:])
		auth.Keys = append(auth.Keys, keys[i].Public().(ed25519.PublicKey))
	}
	cpAt := func(k uint64) checkpoint.Checkpoint {
		if k == 0 {
			return checkpoint.Checkpoint{Hash: genesis}
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], k)
		return checkpoint.Checkpoint{Number: k, Hash: checkpoint.HashOf(genesis[:], b[:])}
	}
	vote := func(i int, src, tgt checkpoint.Checkpoint) checkpoint.SignedVote {
		v := checkpoint.Vote{Genesis: genesis, SetID: 1, Source: src, Target: tgt}
		return checkpoint.SignedVote{Vote: v, Validator: checkpoint.ValidatorIndex(i), Signature: NewKeySigner(keys[i]).Sign(v.SigningBytes())}
	}
	const perValidator = 8
	g, err := New(Config{Authorities: auth, FutureWindow: window, VotesPerValidator: perValidator}, Deps{})
	require.NoError(t, err)

	for k := uint64(1); k <= rounds; k++ {
		// Validator 3 floods votes for every checkpoint in the window above
		// the latest justified one and beyond it (from an old source; they
		// never reach a quorum alone).
		j := g.LatestJustified().Number
		f := g.LatestFinalized().Number
		for tgt := j + 1; tgt <= j+window+4; tgt++ {
			verdict, err := g.OnVote(ctx, vote(3, cpAt(f), cpAt(tgt)))
			require.NoError(t, err)
			if tgt > j+window {
				require.Equal(t, VerdictIgnore, verdict, "beyond the window above the best known checkpoint")
			}
		}
		for i := range 3 {
			_, err := g.OnVote(ctx, vote(i, cpAt(k-1), cpAt(k)))
			require.NoError(t, err)
		}
		require.Equal(t, k, g.LatestJustified().Number)
		require.Equal(t, k-1, g.LatestFinalized().Number)

		sz := g.Sizes()
		require.LessOrEqual(t, sz.Votes, 4*perValidator, "round %d: votes", k)
		require.LessOrEqual(t, sz.Targets, 4*perValidator, "round %d: target numbers", k)
		require.LessOrEqual(t, sz.Justified, 2, "round %d: justified", k)
		require.LessOrEqual(t, sz.Certificates, 2, "round %d: certificates", k)
		require.LessOrEqual(t, sz.Canon, maxCanon+2, "round %d: finalized chain", k)
		require.Zero(t, sz.Pending)
	}
	_, ok := g.Certificate(rounds - 2)
	require.False(t, ok, "below finalized: dropped")
	_, ok = g.Certificate(rounds)
	require.True(t, ok)
	require.Positive(t, g.Metrics().VotesEvicted, "the flooding validator's oldest votes were evicted")
}

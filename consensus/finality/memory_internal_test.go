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
	g, err := New(Config{Authorities: auth, FutureWindow: window}, Deps{})
	require.NoError(t, err)

	for k := uint64(1); k <= rounds; k++ {
		// Validator 3 floods votes for every checkpoint in the window
		// (from an old source; they never reach a quorum alone).
		f := g.LatestFinalized().Number
		for tgt := f + 1; tgt <= f+window+4; tgt++ {
			verdict, err := g.OnVote(ctx, vote(3, cpAt(f), cpAt(tgt)))
			require.NoError(t, err)
			if tgt > f+window {
				require.Equal(t, VerdictIgnore, verdict, "beyond the window")
			}
		}
		for i := range 3 {
			_, err := g.OnVote(ctx, vote(i, cpAt(k-1), cpAt(k)))
			require.NoError(t, err)
		}
		require.Equal(t, k, g.LatestJustified().Number)
		require.Equal(t, k-1, g.LatestFinalized().Number)

		g.mu.RLock()
		require.LessOrEqual(t, g.tally.Len(), 3+window, "round %d: votes", k)
		require.LessOrEqual(t, g.tally.Numbers(), window, "round %d: target numbers", k)
		require.LessOrEqual(t, len(g.justified), 2, "round %d: justified", k)
		require.LessOrEqual(t, len(g.certs), 2, "round %d: certificates", k)
		require.LessOrEqual(t, len(g.canon), window+2, "round %d: finalized chain", k)
		require.Empty(t, g.pending)
		require.Empty(t, g.jobs)
		require.Empty(t, g.inflight)
		require.Empty(t, g.outbox)
		g.mu.RUnlock()
	}
	_, ok := g.Certificate(rounds - 2)
	require.False(t, ok, "below finalized: dropped")
	_, ok = g.Certificate(rounds)
	require.True(t, ok)
}

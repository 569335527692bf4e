package checkpointdb

import (
	"crypto/ed25519"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

func targetsOf(votes []checkpoint.SignedVote) []uint64 {
	out := []uint64{}
	for _, v := range votes {
		out = append(out, v.Target.Number)
	}
	return out
}

// TestVotesByValidator: a validator's stored votes and its signatures in
// stored certificates, from a target on, in target order, deduplicated,
// bounded, above the prune base (Pebble on disk).
func TestVotesByValidator(t *testing.T) {
	db := openAt(t, vfs.Default, t.TempDir())
	for _, sv := range []checkpoint.SignedVote{
		signed(linkVote(2, 0), 1), signed(linkVote(3, 0), 1), signed(linkVote(5, 0), 1),
		signed(linkVote(3, 0), 2), signed(linkVote(4, 0), 2),
		signed(linkVote(6, 1), 1), // another link than the certificate of 6
		signed(linkVote(3, 0), 0), signed(linkVote(7, 0), 3),
	} {
		require.NoError(t, db.StoreVote(bg, sv))
	}
	// Validator 1's vote for 4 is only in the certificate; validator 2's
	// stored vote for 4 is the certificate's (stored once, read once).
	require.NoError(t, db.StoreCertificate(bg, certOf(t, linkVote(4, 0), 0, 1, 2), cpPtr(4), cpPtr(3)))
	require.NoError(t, db.StoreCertificate(bg, certOf(t, linkVote(6, 0), 1, 2, 3), cpPtr(6), cpPtr(5)))

	votes := func(validator int, from uint64, limit int) []checkpoint.SignedVote {
		t.Helper()
		out, err := db.VotesByValidator(bg, checkpoint.ValidatorIndex(validator), from, limit)
		require.NoError(t, err)
		for _, v := range out {
			require.Equal(t, checkpoint.ValidatorIndex(validator), v.Validator)
			require.True(t, ed25519.Verify(testKeys[validator].Public().(ed25519.PublicKey), v.SigningBytes(), v.Signature[:]))
		}
		return out
	}
	all := votes(1, 0, 100)
	require.Equal(t, []uint64{2, 3, 4, 5, 6, 6}, targetsOf(all))
	require.Equal(t, signed(linkVote(6, 1), 1), all[4], "the stored vote first")
	require.Equal(t, signed(linkVote(6, 0), 1), all[5], "then the certificate's")
	require.Equal(t, signed(linkVote(4, 0), 1), all[2])

	require.Equal(t, []uint64{4, 5, 6, 6}, targetsOf(votes(1, 4, 100)))
	require.Equal(t, []uint64{2, 3}, targetsOf(votes(1, 0, 2)))
	require.Equal(t, []uint64{2, 3, 4}, targetsOf(votes(1, 0, 3)), "a certificate vote below the last stored one")
	require.Equal(t, []uint64{6}, targetsOf(votes(1, 6, 1)))
	require.Equal(t, []uint64{3, 4, 6}, targetsOf(votes(2, 0, 100)))
	require.Equal(t, []uint64{3, 4}, targetsOf(votes(0, 0, 100)))
	require.Equal(t, []uint64{6, 7}, targetsOf(votes(3, 0, 100)))
	require.Empty(t, votes(4, 0, 100))
	require.Empty(t, votes(1, 7, 100))
	require.Empty(t, votes(1, 0, 0))

	// Pruned checkpoints are not served: keep 2 at and below finalized 5.
	_, err := db.Prune(bg, 2)
	require.NoError(t, err)
	require.Equal(t, uint64(4), db.OldestRetained())
	require.Equal(t, []uint64{4, 5, 6, 6}, targetsOf(votes(1, 0, 100)))
	require.Equal(t, []uint64{4, 6}, targetsOf(votes(2, 1, 100)))
}

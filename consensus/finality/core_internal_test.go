package finality

import (
	"crypto/ed25519"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

type allDescend struct{}

func (allDescend) IsDescendant(checkpoint.Hash, checkpoint.Checkpoint) bool { return true }

// TestOwnVotesBelowWatermarksAreHistory: a record that holds only
// watermarks (imported, or the high-water mark of a lost database) cannot
// tell which older votes the key signed: votes signed with the key at or
// below the watermarks are history, above them another instance signs.
func TestOwnVotesBelowWatermarksAreHistory(t *testing.T) {
	genesis := checkpoint.HashOf([]byte("watermark genesis"))
	var keys []ed25519.PrivateKey
	auth := checkpoint.AuthoritySet{Genesis: genesis, SetID: 1}
	for i := range 4 {
		var seed [ed25519.SeedSize]byte
		binary.BigEndian.PutUint32(seed[:], uint32(i+7))
		keys = append(keys, ed25519.NewKeyFromSeed(seed[:]))
		auth.Keys = append(auth.Keys, keys[i].Public().(ed25519.PublicKey))
	}
	cp := func(n uint64) checkpoint.Checkpoint {
		return checkpoint.Checkpoint{Number: n, Hash: checkpoint.HashOf(genesis[:], []byte{byte(n)})}
	}
	sign := func(src, tgt uint64) checkpoint.SignedVote {
		v := checkpoint.Vote{Genesis: genesis, SetID: 1, Source: cp(src), Target: cp(tgt)}
		return checkpoint.SignedVote{Vote: v, Validator: 0, Signature: NewKeySigner(keys[0]).Sign(v.SigningBytes())}
	}
	tests := []struct {
		name     string
		src, tgt uint64
		halt     bool
	}{
		{"at both watermarks", 2, 5, false},
		{"below both", 1, 3, false},
		{"target above the target watermark", 2, 6, true},
		{"source above the source watermark", 3, 4, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			own := checkpoint.ValidatorIndex(0)
			c, err := NewCore(CoreConfig{Authorities: auth, Own: &own}, allDescend{}, time.Unix(0, 0))
			require.NoError(t, err)
			rec := checkpoint.SignerRecord{PublicKey: auth.Keys[0], Genesis: genesis, MinSource: 2, MinTarget: 5}
			c.Restore(RestoredState{}, &rec, time.Unix(0, 0))
			c.TakeReady()
			c.AddVote(sign(tc.src, tc.tgt), time.Unix(1, 0))
			require.Equal(t, tc.halt, c.Halted())
		})
	}
}

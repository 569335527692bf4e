package checkpoint_test

import (
	"crypto/ed25519"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

func scheduleKeys(n int) []ed25519.PublicKey {
	var out []ed25519.PublicKey
	for i := range n {
		var seed [ed25519.SeedSize]byte
		binary.BigEndian.PutUint32(seed[:], uint32(i+900))
		out = append(out, ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey))
	}
	return out
}

// TestCheckChangeOverlaps: how much of a set may change per hand-off, by
// how the new set overlaps the old one (CometBFT's light client table:
// all kept, two thirds kept, one third kept, less).
func TestCheckChangeOverlaps(t *testing.T) {
	k := scheduleKeys(20)
	tests := []struct {
		name     string
		old, new []ed25519.PublicKey
		ok       bool
	}{
		{"same keys, one added (4 -> 5)", k[:4], k[:5], true},
		{"one removed (5 -> 4)", k[:5], k[1:5], true},
		{"one rotated of 4", k[:4], append(append([]ed25519.PublicKey{}, k[1:4]...), k[10]), true},
		{"two thirds kept of 9 (3 rotated)", k[:9], append(append([]ed25519.PublicKey{}, k[:6]...), k[10:13]...), true},
		{"one third kept of 9 (6 rotated)", k[:9], append(append([]ed25519.PublicKey{}, k[:3]...), k[10:16]...), false},
		{"nothing kept", k[:4], k[10:14], false},
		{"two added to 4", k[:4], k[:6], false},
		{"two removed of 6", k[:6], k[2:6], true},
		{"three removed of 6", k[:6], k[3:6], false},
		{"empty set", k[:4], nil, false},
		{"set of one", k[:2], k[:1], false},
		{"key twice", k[:4], []ed25519.PublicKey{k[0], k[1], k[2], k[2]}, false},
		{"no change", k[:4], k[:4], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkpoint.CheckChange(tc.old, tc.new)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, checkpoint.ErrBadSchedule)
			}
		})
	}
}

func TestScheduleValidate(t *testing.T) {
	k := scheduleKeys(6)
	g := checkpoint.AuthoritySet{SetID: 3, Keys: k[:4]}
	good := []checkpoint.SetChange{{SetID: 4, HandOff: 5, Keys: k[:5]}, {SetID: 5, HandOff: 9, Keys: k[1:5]}}
	tests := []struct {
		name    string
		changes []checkpoint.SetChange
		ok      bool
	}{
		{"none", nil, true},
		{"two in order", good, true},
		{"set id gap", []checkpoint.SetChange{{SetID: 5, HandOff: 5, Keys: k[:5]}}, false},
		{"hand-off at 0", []checkpoint.SetChange{{SetID: 4, HandOff: 0, Keys: k[:5]}}, false},
		{"hand-offs not increasing", []checkpoint.SetChange{good[0], {SetID: 5, HandOff: 5, Keys: k[1:5]}}, false},
		{"too large a change", []checkpoint.SetChange{{SetID: 4, HandOff: 5, Keys: k[2:6]}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := checkpoint.Schedule{Genesis: g, Changes: tc.changes}
			if tc.ok {
				require.NoError(t, s.Validate())
			} else {
				require.ErrorIs(t, s.Validate(), checkpoint.ErrBadSchedule)
			}
		})
	}
	s := checkpoint.Schedule{Genesis: g, Changes: good}
	set, ok := s.Set(5)
	require.True(t, ok)
	require.Equal(t, k[1:5], set.Keys)
	_, ok = s.Set(6)
	require.False(t, ok)
	_, ok = s.Set(2)
	require.False(t, ok)
	ch, ok := s.Next(3)
	require.True(t, ok)
	require.Equal(t, uint64(5), ch.HandOff)
	_, ok = s.Next(5)
	require.False(t, ok)
	require.True(t, s.IsHandOffLink(3, checkpoint.Vote{SetID: 3, Source: checkpoint.Checkpoint{Number: 5}, Target: checkpoint.Checkpoint{Number: 6}}))
	require.False(t, s.IsHandOffLink(3, checkpoint.Vote{SetID: 3, Source: checkpoint.Checkpoint{Number: 4}, Target: checkpoint.Checkpoint{Number: 5}}))
	require.False(t, s.IsHandOffLink(3, checkpoint.Vote{SetID: 3, Source: checkpoint.Checkpoint{Number: 5}, Target: checkpoint.Checkpoint{Number: 7}}))
}

// TestSignerRecordHandOffRules: a key signs one hand-off link per set and
// never goes back to an earlier set.
func TestSignerRecordHandOffRules(t *testing.T) {
	k := scheduleKeys(5)
	var g checkpoint.Hash
	s := checkpoint.Schedule{Genesis: checkpoint.AuthoritySet{Genesis: g, SetID: 0, Keys: k[:4]},
		Changes: []checkpoint.SetChange{{SetID: 1, HandOff: 3, Keys: k[:5]}}}
	cp := func(n uint64) checkpoint.Checkpoint {
		return checkpoint.Checkpoint{Number: n, Hash: checkpoint.HashOf([]byte{byte(n)})}
	}
	vote := func(set, src, tgt uint64) checkpoint.Vote {
		return checkpoint.Vote{Genesis: g, SetID: set, Source: cp(src), Target: cp(tgt)}
	}
	signed := func(v checkpoint.Vote) *checkpoint.SignedVote { return &checkpoint.SignedVote{Vote: v} }
	tests := []struct {
		name string
		last checkpoint.Vote
		next checkpoint.Vote
		ok   bool
	}{
		{"after the hand-off link, nothing more of set 0", vote(0, 3, 4), vote(0, 4, 5), false},
		{"after the hand-off link, a jump of set 0 neither", vote(0, 3, 4), vote(0, 3, 6), false},
		{"after the hand-off link, set 1", vote(0, 3, 4), vote(1, 4, 5), true},
		{"the same hand-off vote again", vote(0, 3, 4), vote(0, 3, 4), true},
		{"below the hand-off, a finalizing link is free", vote(0, 1, 2), vote(0, 2, 3), true},
		{"a jump above the hand-off does not close the set", vote(0, 3, 5), vote(0, 5, 6), true},
		{"back to an earlier set", vote(1, 4, 5), vote(0, 5, 6), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := checkpoint.SignerRecord{Genesis: g, Last: signed(tc.last)}
			_, err := rec.CheckInSchedule(tc.next, s)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, checkpoint.ErrSlashable)
			}
		})
	}
}

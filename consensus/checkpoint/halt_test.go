package checkpoint_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

func TestHaltCodec(t *testing.T) {
	privs, set := keys(4)
	v := sign(privs[0], 0, checkpoint.Vote{Genesis: set.Genesis, SetID: 1, Source: cp(3), Target: cp(4)})
	cert, err := checkpoint.NewCertificate([]checkpoint.SignedVote{v, sign(privs[1], 1, v.Vote), sign(privs[2], 2, v.Vote)})
	require.NoError(t, err)
	cfEvidence := &checkpoint.Evidence{Kind: checkpoint.EvidenceConflictingFinality, Certificate: &cert, Checkpoint: 4}
	foreign := sign(privs[0], 0, checkpoint.Vote{Genesis: set.Genesis, SetID: 1, Source: cp(4), Target: cp(5)})

	good := []checkpoint.Halt{
		{Reason: checkpoint.HaltConflictingFinality, Checkpoint: 4, Detail: "certificate 3->4 conflicts with finalized 4", Evidence: cfEvidence},
		{Reason: checkpoint.HaltDoppelganger, Checkpoint: 5, Detail: "vote for 5 signed with our key elsewhere", Vote: &foreign},
		{Reason: checkpoint.HaltDoppelganger, Checkpoint: 9},
		{Reason: checkpoint.HaltConflictingFinality, Detail: strings.Repeat("é", checkpoint.MaxHaltDetail/2)},
	}
	for i, h := range good {
		b, err := checkpoint.EncodeHalt(h)
		require.NoError(t, err, "halt %d", i)
		got, err := checkpoint.DecodeHalt(b)
		require.NoError(t, err, "halt %d", i)
		require.Equal(t, h, got, "halt %d", i)
		require.Equal(t, h.ID(), got.ID())
		require.Equal(t, checkpoint.HashOf(b), h.ID())
	}
	require.NotEqual(t, good[0].ID(), good[1].ID())
	require.Equal(t, "conflicting-finality", checkpoint.HaltConflictingFinality.String())
	require.Equal(t, "doppelganger", checkpoint.HaltDoppelganger.String())

	bad := []struct {
		name string
		h    checkpoint.Halt
	}{
		{"unspecified reason", checkpoint.Halt{Checkpoint: 1}},
		{"unknown reason", checkpoint.Halt{Reason: 7}},
		{"detail too long", checkpoint.Halt{Reason: checkpoint.HaltDoppelganger, Detail: strings.Repeat("x", checkpoint.MaxHaltDetail+1)}},
		{"detail not UTF-8", checkpoint.Halt{Reason: checkpoint.HaltDoppelganger, Detail: "\xff\xfe"}},
		{"evidence without certificate", checkpoint.Halt{Reason: checkpoint.HaltConflictingFinality, Evidence: &checkpoint.Evidence{Kind: checkpoint.EvidenceConflictingFinality}}},
		{"evidence of unknown kind", checkpoint.Halt{Reason: checkpoint.HaltConflictingFinality, Evidence: &checkpoint.Evidence{Kind: 9}}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.h.Validate(), checkpoint.ErrMalformed)
			_, err := checkpoint.EncodeHalt(tc.h)
			require.ErrorIs(t, err, checkpoint.ErrMalformed)
			// The same shapes written by someone else are refused on decode.
			b, err := proto.Marshal(checkpoint.HaltToPB(tc.h))
			if err != nil {
				return // protobuf itself refuses invalid UTF-8
			}
			_, err = checkpoint.DecodeHalt(b)
			require.ErrorIs(t, err, checkpoint.ErrMalformed)
		})
	}
	for _, raw := range [][]byte{nil, {0xff, 0xff, 0xff}} {
		_, err := checkpoint.DecodeHalt(raw)
		require.ErrorIs(t, err, checkpoint.ErrMalformed)
	}
	// A vote of the wrong shape inside a halt is refused.
	p := checkpoint.HaltToPB(good[1])
	p.Vote.Signature = []byte{1, 2}
	b, err := proto.Marshal(p)
	require.NoError(t, err)
	_, err = checkpoint.DecodeHalt(b)
	require.ErrorIs(t, err, checkpoint.ErrMalformed)
}

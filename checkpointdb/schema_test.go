package checkpointdb

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func TestKeyLayout(t *testing.T) {
	pub := testKeys[0].Public().(ed25519.PublicKey)
	id := checkpoint.HashOf([]byte("evidence"))
	tests := []struct {
		key  Key
		want string // hex
	}{
		{Key{Kind: KeySchemaVersion}, "0176"},
		{Key{Kind: KeyGenesis}, "0167"},
		{Key{Kind: KeySignerRecord, PublicKey: pub}, "02" + hexOf(pub)},
		{Key{Kind: KeyVote, Number: 0x0102, Validator: 7}, "03" + "0000000000000102" + "00000007"},
		{Key{Kind: KeyCertificate, Number: 5}, "04" + "0000000000000005"},
		{Key{Kind: KeyJustified}, "056a"},
		{Key{Kind: KeyFinalized}, "0566"},
		{Key{Kind: KeyEvidence, Number: 9, ID: id}, "06" + "0000000000000009" + hexOf(id[:])},
		{Key{Kind: KeyPruneBase}, "07"},
		{Key{Kind: KeyIndex, Number: 3}, "08" + "0000000000000003"},
		{Key{Kind: KeyRebuildFloor}, "0172"},
		{Key{Kind: KeyHalt, Number: 4, ID: id}, "09" + "0000000000000004" + hexOf(id[:])},
		{Key{Kind: KeyHandOff, Number: 0x0203}, "0a" + "0000000000000203"},
	}
	for _, tc := range tests {
		t.Run(tc.key.Kind.String(), func(t *testing.T) {
			b, err := tc.key.Encode()
			require.NoError(t, err)
			require.Equal(t, tc.want, hexOf(b))
			k, err := DecodeKey(b)
			require.NoError(t, err)
			require.Equal(t, tc.key, k)
		})
	}
	_, err := Key{Kind: KeyUnknown}.Encode()
	require.ErrorIs(t, err, checkpoint.ErrMalformed)
	_, err = Key{Kind: KeySignerRecord, PublicKey: pub[:3]}.Encode()
	require.ErrorIs(t, err, checkpoint.ErrMalformed)
}

// Big-endian keys sort numerically: the bounded iterations depend on it.
func TestKeysSortNumerically(t *testing.T) {
	nums := []uint64{0, 1, 255, 256, 65535, 1 << 32, math.MaxUint64 - 1, math.MaxUint64}
	var keys [][]byte
	for _, n := range nums {
		keys = append(keys, voteKey(n, 0), voteKey(n, math.MaxUint32))
	}
	require.True(t, slices.IsSortedFunc(keys, bytes.Compare))
	require.Equal(t, prefixUpper(prefixVote), voteThrough(math.MaxUint64))
	require.Equal(t, voteKey(8, 0), voteThrough(7))
	require.Equal(t, certKey(8), certThrough(7))
	require.Equal(t, prefixUpper(prefixCert), certThrough(math.MaxUint64))
	for p := prefixMeta; p < prefixEnd; p++ {
		require.Less(t, bytes.Compare(prefixStart(p), prefixUpper(p)), 0)
	}
}

func TestPruneBaseCodec(t *testing.T) {
	p := pruneBase{Base: 11, EvidenceBase: math.MaxUint64}
	got, err := decodePruneBase(encodePruneBase(p))
	require.NoError(t, err)
	require.Equal(t, p, got)
	_, err = decodePruneBase([]byte{1})
	require.ErrorIs(t, err, checkpoint.ErrMalformed)
}

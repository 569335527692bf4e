package checkpoint_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// FuzzDecodeFinalityProof: DecodeFinalityProof never panics, rejects with
// ErrMalformed only, and whatever decodes round-trips:
// decode(encode(decode(b))) == decode(b). Verifying what decodes against an
// authority set never panics either. Seeds live in
// testdata/fuzz/FuzzDecodeFinalityProof (valid proofs with and without the
// justified certificate, and near misses). The other codecs' targets are in
// checkpointdb/fuzz_test.go. Run with
// `go test -run=^$ -fuzz=FuzzDecodeFinalityProof -fuzztime=20s ./consensus/checkpoint/`.
func FuzzDecodeFinalityProof(f *testing.F) {
	f.Add([]byte{})
	_, set := keys(4)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := checkpoint.DecodeFinalityProof(b)
		if err != nil {
			require.ErrorIs(t, err, checkpoint.ErrMalformed)
			return
		}
		require.LessOrEqual(t, len(p.Finalizing.Signatures), checkpoint.MaxCertificateSignatures)
		enc, err := checkpoint.EncodeFinalityProof(p)
		require.NoError(t, err)
		p2, err := checkpoint.DecodeFinalityProof(enc)
		require.NoError(t, err)
		require.Equal(t, p, p2)
		if _, _, err := set.VerifyFinalityProof(p2); err != nil {
			require.ErrorIs(t, err, checkpoint.ErrBadProof)
		}
	})
}

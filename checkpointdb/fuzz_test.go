package checkpointdb

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Fuzz targets for every decoder the database trusts with bytes from disk:
// the consensus/checkpoint codecs and this package's key and value decoders.
// None may panic, and whatever decodes must round-trip:
// decode(encode(decode(b))) == decode(b). Seed corpora live in
// testdata/fuzz/<FuzzName>/ (valid encodings and near misses). Run one with
// e.g. `go test -run=^$ -fuzz=FuzzDecodeVote -fuzztime=20s ./checkpointdb/`.

func FuzzDecodeVote(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := checkpoint.DecodeVote(b)
		if err != nil {
			require.ErrorIs(t, err, checkpoint.ErrMalformed)
			return
		}
		enc, err := checkpoint.EncodeVote(v)
		require.NoError(t, err)
		v2, err := checkpoint.DecodeVote(enc)
		require.NoError(t, err)
		require.Equal(t, v, v2)
	})
}

func FuzzDecodeCertificate(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := checkpoint.DecodeCertificate(b)
		if err != nil {
			require.ErrorIs(t, err, checkpoint.ErrMalformed)
			return
		}
		require.LessOrEqual(t, len(c.Signatures), checkpoint.MaxCertificateSignatures)
		enc, err := checkpoint.EncodeCertificate(c)
		require.NoError(t, err)
		c2, err := checkpoint.DecodeCertificate(enc)
		require.NoError(t, err)
		require.Equal(t, c, c2)
	})
}

func FuzzDecodeEvidence(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := checkpoint.DecodeEvidence(b)
		if err != nil {
			require.ErrorIs(t, err, checkpoint.ErrMalformed)
			return
		}
		enc, err := checkpoint.EncodeEvidence(e)
		require.NoError(t, err)
		e2, err := checkpoint.DecodeEvidence(enc)
		require.NoError(t, err)
		require.Equal(t, e, e2)
		require.Equal(t, e.ID(), e2.ID())
	})
}

func FuzzDecodeSignerRecord(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := checkpoint.DecodeSignerRecord(b)
		if err != nil {
			require.ErrorIs(t, err, checkpoint.ErrMalformed)
			return
		}
		enc, err := checkpoint.EncodeSignerRecord(r)
		require.NoError(t, err)
		r2, err := checkpoint.DecodeSignerRecord(enc)
		require.NoError(t, err)
		require.Equal(t, r, r2)
		// What decodes is safe to check votes against.
		_, _ = r2.Check(checkpoint.Vote{Genesis: r2.Genesis, Source: checkpoint.Checkpoint{Number: 1}, Target: checkpoint.Checkpoint{Number: 2}})
	})
}

func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := checkpoint.DecodeCheckpoint(b)
		if err != nil {
			require.ErrorIs(t, err, checkpoint.ErrMalformed)
			return
		}
		enc, err := checkpoint.EncodeCheckpoint(c)
		require.NoError(t, err)
		c2, err := checkpoint.DecodeCheckpoint(enc)
		require.NoError(t, err)
		require.Equal(t, c, c2)
	})
}

// FuzzDecodeKey: keys are canonical, so a decoded key re-encodes to the same
// bytes.
func FuzzDecodeKey(f *testing.F) {
	f.Add([]byte{prefixVote, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := DecodeKey(b)
		if err != nil {
			require.ErrorIs(t, err, checkpoint.ErrMalformed)
			require.Equal(t, KeyUnknown, k.Kind)
			return
		}
		require.NotEqual(t, KeyUnknown, k.Kind)
		enc, err := k.Encode()
		require.NoError(t, err)
		require.True(t, bytes.Equal(b, enc), "key %x re-encodes to %x", b, enc)
		k2, err := DecodeKey(enc)
		require.NoError(t, err)
		require.Equal(t, k, k2)
	})
}

// FuzzDecodePruneBase covers the prune-base marker value.
func FuzzDecodePruneBase(f *testing.F) {
	f.Add(encodePruneBase(pruneBase{Base: 11, EvidenceBase: 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePruneBase(b)
		if err != nil {
			require.ErrorIs(t, err, checkpoint.ErrMalformed)
			return
		}
		require.Equal(t, b, encodePruneBase(p))
	})
}

// FuzzParseCleanRecord covers the clean-shutdown record parser.
func FuzzParseCleanRecord(f *testing.F) {
	f.Add([]byte(cleanHeader + "\nend 00\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := parseCleanRecord(b)
		if err != nil {
			return
		}
		for _, d := range ds {
			require.NotEmpty(t, d.name)
		}
	})
}

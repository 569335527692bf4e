package checkpointdb

import (
	"bytes"
	"strings"
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

func FuzzDecodeHalt(f *testing.F) {
	f.Add([]byte{})
	if b, err := checkpoint.EncodeHalt(checkpoint.Halt{Reason: checkpoint.HaltDoppelganger, Checkpoint: 3, Detail: "x"}); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := checkpoint.DecodeHalt(b)
		if err != nil {
			require.ErrorIs(t, err, checkpoint.ErrMalformed)
			return
		}
		enc, err := checkpoint.EncodeHalt(h)
		require.NoError(t, err)
		h2, err := checkpoint.DecodeHalt(enc)
		require.NoError(t, err)
		require.Equal(t, h, h2)
	})
}

// FuzzParseHWM covers the high-water-mark file reader: whatever it accepts
// re-encodes to a file it reads back the same.
func FuzzParseHWM(f *testing.F) {
	st := hwmState{genesis: checkpoint.HashOf([]byte("g")), signers: []SignerWatermark{{PublicKey: make([]byte, 32), Target: 2, Source: 1}}}
	f.Add(append(encodeHWMSlot(st, 2, 512), encodeHWMSlot(st, 1, 512)...))
	f.Add(make([]byte, 1024))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, seq, size, err := parseHWM(b)
		if err != nil {
			return
		}
		require.GreaterOrEqual(t, size, hwmUnit)
		raw := make([]byte, 2*size)
		copy(raw[seq%2*uint64(size):], encodeHWMSlot(st, seq, size))
		copy(raw[(seq+1)%2*uint64(size):], encodeHWMSlot(st, seq+1, size))
		st2, seq2, _, err := parseHWM(raw)
		require.NoError(t, err)
		require.Equal(t, seq+1, seq2)
		require.Equal(t, st, st2)
	})
}

// FuzzParseInterchange covers the signer-record import parser: no panic,
// every error wraps ErrInterchange, accepted keys are unique and sorted.
func FuzzParseInterchange(f *testing.F) {
	f.Add([]byte(`{"metadata":{"interchange_format_version":"5","genesis_hash":"0x` + strings.Repeat("00", 32) + `"},"data":[]}`))
	f.Add([]byte(handWritten(checkpoint.HashOf([]byte("g")), make([]byte, 32), bytes.Repeat([]byte{1}, 32))))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := ParseInterchange(b)
		if err != nil {
			require.ErrorIs(t, err, ErrInterchange)
			return
		}
		for i, k := range doc.Keys {
			require.Len(t, k.PublicKey, 32)
			require.Less(t, k.Source, k.Target)
			if i > 0 {
				require.Negative(t, bytes.Compare(doc.Keys[i-1].PublicKey, k.PublicKey))
			}
		}
	})
}

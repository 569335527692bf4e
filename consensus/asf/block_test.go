package asf

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/blake2b"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/wire/flarepb"
)

func sampleHeader() Header {
	h := Header{Number: 0x0102030405060708, Slot: 0x1112131415161718, Proposer: 0x21222324, TimestampMs: 0x3132333435363738}
	for i := range h.ParentHash {
		h.ParentHash[i] = byte(0xa0 + i%16)
		h.BodyRoot[i] = byte(0xb0 + i%16)
		h.StateRoot[i] = byte(0xc0 + i%16)
	}
	return h
}

func TestHeaderSigningBytesLayout(t *testing.T) {
	h := sampleHeader()
	// Built by hand from the documented layout.
	var want bytes.Buffer
	want.WriteString("flare/block/v2")
	want.Write(h.ParentHash[:])
	want.Write([]byte{1, 2, 3, 4, 5, 6, 7, 8})
	want.Write([]byte{0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18})
	want.Write([]byte{0x21, 0x22, 0x23, 0x24})
	want.Write([]byte{0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38})
	want.Write(h.BodyRoot[:])
	want.Write(h.StateRoot[:])
	require.Equal(t, want.Bytes(), h.SigningBytes())
	require.Len(t, h.SigningBytes(), 138)

	sum := blake2b.Sum256(want.Bytes())
	require.Equal(t, checkpoint.Hash(sum), h.Hash())

	// The signature is not covered by the hash; every other field is.
	signed := h
	signed.Signature[0] = 1
	require.Equal(t, h.Hash(), signed.Hash())
	mutations := []func(*Header){
		func(h *Header) { h.ParentHash[31]++ },
		func(h *Header) { h.StateRoot[0]++ },
		func(h *Header) { h.Number++ },
		func(h *Header) { h.Slot++ },
		func(h *Header) { h.Proposer++ },
		func(h *Header) { h.TimestampMs++ },
		func(h *Header) { h.BodyRoot[0]++ },
	}
	for i, m := range mutations {
		x := h
		m(&x)
		require.NotEqual(t, h.Hash(), x.Hash(), "mutation %d", i)
	}
}

func TestHeaderStoredForm(t *testing.T) {
	h := sampleHeader()
	h.Signature[63] = 9
	enc := marshalHeader(h)
	require.Len(t, enc, headerStoredSize)
	back, err := unmarshalHeader(enc)
	require.NoError(t, err)
	require.Equal(t, h, back)
	_, err = unmarshalHeader(enc[:len(enc)-1])
	require.Error(t, err)
	bad := bytes.Clone(enc)
	bad[0] = 'F'
	_, err = unmarshalHeader(bad)
	require.Error(t, err)
}

func TestSignAndVerify(t *testing.T) {
	spec := localSpec(t)
	keys := specKeys(t, spec)
	h := sampleHeader()
	h.Sign(keys[1])
	require.True(t, h.VerifySignature(keys[1].Public().(ed25519.PublicKey)))
	require.False(t, h.VerifySignature(keys[2].Public().(ed25519.PublicKey)))
	require.False(t, h.VerifySignature(nil))
	h.Slot++
	require.False(t, h.VerifySignature(keys[1].Public().(ed25519.PublicKey)))
}

func TestBodyRoot(t *testing.T) {
	manual := func(xs ...[]byte) checkpoint.Hash {
		var b []byte
		b = append(b, "flare/body/v1"...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(xs)))
		for _, x := range xs {
			b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
			b = append(b, x...)
		}
		return blake2b.Sum256(b)
	}
	cases := [][][]byte{nil, {{}}, {[]byte("a")}, {[]byte("ab"), []byte("c")}, {[]byte("a"), []byte("bc")}}
	seen := map[checkpoint.Hash]int{}
	for i, xs := range cases {
		r := BodyRoot(xs)
		require.Equal(t, manual(xs...), r, "case %d", i)
		j, dup := seen[r]
		require.False(t, dup, "case %d collides with %d", i, j)
		seen[r] = i
	}
	require.Equal(t, BodyRoot(nil), BodyRoot([][]byte{}))
}

func TestGenesisBlock(t *testing.T) {
	spec := localSpec(t)
	g := GenesisBlock(spec, checkpoint.ZeroHash)
	require.Equal(t, uint64(0), g.Header.Number)
	require.Equal(t, uint64(0), g.Header.Slot)
	require.True(t, g.Header.ParentHash.IsZero())
	require.Equal(t, spec.GenesisTimestampMs, g.Header.TimestampMs)
	require.Equal(t, spec.Hash(), g.Header.BodyRoot)
	require.Equal(t, checkpoint.Signature{}, g.Header.Signature)
	require.Empty(t, g.Extrinsics)
	require.Equal(t, g.Hash(), GenesisBlock(spec, checkpoint.ZeroHash).Hash())

	dev, err := chainspec.Builtin("dev")
	require.NoError(t, err)
	require.NotEqual(t, g.Hash(), GenesisBlock(dev, checkpoint.ZeroHash).Hash())
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	spec := localSpec(t)
	keys := specKeys(t, spec)
	g := GenesisBlock(spec, checkpoint.ZeroHash)
	blocks := []Block{
		g,
		makeBlock(spec, keys, g.Header, 1),
		makeBlock(spec, keys, g.Header, 7, []byte("tx1"), []byte{}, bytes.Repeat([]byte{0xff}, 1000)),
	}
	for i, b := range blocks {
		enc, err := EncodeBlock(b)
		require.NoError(t, err)
		back, err := DecodeBlock(enc)
		require.NoError(t, err, "block %d", i)
		require.Equal(t, b.Header, back.Header)
		require.Equal(t, len(b.Extrinsics), len(back.Extrinsics))
		for j := range b.Extrinsics {
			require.True(t, bytes.Equal(b.Extrinsics[j], back.Extrinsics[j]))
		}
		require.Equal(t, b.Hash(), back.Hash())
		require.Equal(t, BodyRoot(b.Extrinsics), BodyRoot(back.Extrinsics))
	}
}

func TestBlockFromPBRejects(t *testing.T) {
	spec := localSpec(t)
	keys := specKeys(t, spec)
	good := BlockToPB(makeBlock(spec, keys, GenesisBlock(spec, checkpoint.ZeroHash).Header, 1, []byte("x")))
	tests := []struct {
		name   string
		mutate func(p *flarepb.Block)
		errSub string
	}{
		{"missing header", func(p *flarepb.Block) { p.Header = nil }, "missing block header"},
		{"short parent", func(p *flarepb.Block) { p.Header.ParentHash = p.Header.ParentHash[:31] }, "parent hash"},
		{"long body root", func(p *flarepb.Block) { p.Header.BodyRoot = append(p.Header.BodyRoot, 0) }, "body root"},
		{"no signature", func(p *flarepb.Block) { p.Header.Signature = nil }, "signature is 0 bytes"},
		{"too many extrinsics", func(p *flarepb.Block) { p.Extrinsics = make([][]byte, MaxExtrinsics+1) }, "extrinsics, at most"},
		{"extrinsic too large", func(p *flarepb.Block) { p.Extrinsics = [][]byte{make([]byte, MaxExtrinsicSize+1)} }, "extrinsic 0 is"},
		{"body too large", func(p *flarepb.Block) {
			p.Extrinsics = make([][]byte, 5)
			for i := range p.Extrinsics {
				p.Extrinsics[i] = make([]byte, MaxExtrinsicSize)
			}
		}, "body is"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := proto.Clone(good).(*flarepb.Block)
			tc.mutate(p)
			_, err := BlockFromPB(p)
			require.ErrorIs(t, err, ErrInvalidBlock)
			require.ErrorIs(t, err, checkpoint.ErrMalformed)
			require.Contains(t, err.Error(), tc.errSub)
		})
	}
	_, err := BlockFromPB(nil)
	require.ErrorIs(t, err, checkpoint.ErrMalformed)
}

func TestDecodeBlockRejects(t *testing.T) {
	_, err := DecodeBlock([]byte{0xff, 0xff, 0xff})
	require.ErrorIs(t, err, checkpoint.ErrMalformed)
	_, err = DecodeBlock(nil)
	require.ErrorIs(t, err, checkpoint.ErrMalformed)
	require.Contains(t, err.Error(), "missing block header")
	_, err = DecodeBlock(make([]byte, MaxEncodedBlockSize+1))
	require.ErrorIs(t, err, checkpoint.ErrMalformed)
	require.True(t, strings.Contains(err.Error(), "at most"))

	_, err = EncodeBlock(Block{Extrinsics: make([][]byte, MaxExtrinsics+1)})
	require.ErrorIs(t, err, ErrInvalidBlock)
}

// TestHeaderWorkedExample pins the signed-header example of docs/wire.md
// ("BlockHeader"): every field, the signing bytes, the hash and alice's
// signature.
func TestHeaderWorkedExample(t *testing.T) {
	var h Header
	for i := range h.ParentHash {
		h.ParentHash[i], h.BodyRoot[i], h.StateRoot[i] = 0x11, 0x22, 0x33
	}
	h.Number, h.Slot, h.Proposer, h.TimestampMs = 1, 7, 0, 1767225603500
	alice, err := chainspec.DevKey("alice")
	require.NoError(t, err)
	h.Sign(alice)
	require.Equal(t, "666c6172652f626c6f636b2f7632"+strings.Repeat("11", 32)+
		"0000000000000001"+"0000000000000007"+"00000000"+"0000019b76dab5ac"+
		strings.Repeat("22", 32)+strings.Repeat("33", 32), hex.EncodeToString(h.SigningBytes()))
	require.Len(t, h.SigningBytes(), 138)
	require.Equal(t, "0x29cba5c3dd3d0c4f5f675135ca6ed911655d2ecc13581b9c5af577833b04e8fd", h.Hash().String())
	require.Equal(t, "9bc6f25a76b699421a092273b3ba84cb4a82dc59acb5a711f012f90e8249c6f4"+
		"afffa487e1b1b165cf20b9d09951336486c3d7797b1cc452a3b518751621ca08", hex.EncodeToString(h.Signature[:]))
}

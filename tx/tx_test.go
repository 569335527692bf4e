package tx_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
)

func devKey(t testing.TB, name string) ed25519.PrivateKey {
	t.Helper()
	k, err := chainspec.DevKey(name)
	require.NoError(t, err)
	return k
}

func sample(t testing.TB) *tx.Tx {
	t.Helper()
	var g checkpoint.Hash
	for i := range g {
		g[i] = 0x11
	}
	bob := devKey(t, "bob").Public().(ed25519.PublicKey)
	x := &tx.Tx{Genesis: g, To: tx.AddressOf(bob), Amount: 5, Fee: 1, Nonce: 0}
	x.Sign(devKey(t, "alice"))
	return x
}

func TestRoundTripAndVerify(t *testing.T) {
	x := sample(t)
	require.NoError(t, x.Verify())
	enc := x.Encode()
	require.LessOrEqual(t, len(enc), tx.MaxEncodedSize)
	y, err := tx.Decode(enc)
	require.NoError(t, err)
	require.Equal(t, x, y)
	require.Equal(t, x.Hash(), y.Hash())
	require.Len(t, x.SigningBytes(), tx.SigningSize)

	// Every signed field is covered by the signature and the hash.
	for name, mut := range map[string]func(*tx.Tx){
		"genesis": func(t *tx.Tx) { t.Genesis[0] ^= 1 },
		"from":    func(t *tx.Tx) { t.From = tx.AddressOf(t.To.PublicKey()) },
		"to":      func(t *tx.Tx) { t.To[31] ^= 1 },
		"amount":  func(t *tx.Tx) { t.Amount++ },
		"fee":     func(t *tx.Tx) { t.Fee++ },
		"nonce":   func(t *tx.Tx) { t.Nonce++ },
		"sig":     func(t *tx.Tx) { t.Signature[0] ^= 1 },
	} {
		z := *x
		mut(&z)
		require.ErrorIs(t, z.Verify(), tx.ErrBadSignature, name)
		require.NotEqual(t, x.Hash(), z.Hash(), name)
	}
}

// TestWorkedExample pins the example of docs/wire.md "Transactions": key,
// signing bytes, signature, encoding and hash.
func TestWorkedExample(t *testing.T) {
	x := sample(t)
	require.Equal(t, "0xedc8f5f63243dccd9c4cde67dc546d8537555db81357aab2956104cc21717654", x.From.String())
	require.Equal(t, "0xd388d44a877d798facec822bce1a1b605fb7b76ed682408421a93fb4e5eb6021", x.To.String())
	require.Equal(t, "666c6172652f74782f7631"+strings.Repeat("11", 32)+
		"edc8f5f63243dccd9c4cde67dc546d8537555db81357aab2956104cc21717654"+
		"d388d44a877d798facec822bce1a1b605fb7b76ed682408421a93fb4e5eb6021"+
		"0000000000000005"+"0000000000000001"+"0000000000000000", hex.EncodeToString(x.SigningBytes()))
	const sig = "9ebd77e14708dedde25411e6593e9e6d6bb7e7084b379b59dec1a5612c6fa8cd" +
		"3c716a235e672301078652642c3c071ea7471ca34bab814fc8bdb969a007350d"
	require.Equal(t, sig, hex.EncodeToString(x.Signature[:]))
	require.Equal(t, "0a20"+strings.Repeat("11", 32)+
		"1220edc8f5f63243dccd9c4cde67dc546d8537555db81357aab2956104cc21717654"+
		"1a20d388d44a877d798facec822bce1a1b605fb7b76ed682408421a93fb4e5eb6021"+
		"2005"+"2801"+"3a40"+sig, hex.EncodeToString(x.Encode()), "nonce 0 is omitted")
	require.Len(t, x.Encode(), 172, "docs/wire.md")
	require.Equal(t, "0x52069720fa669e6b504cf784c9d2a0d2ea3a533558ced87d7220c34bfc0c12cc", x.Hash().String())
}

func TestDecodeRefuses(t *testing.T) {
	x := sample(t)
	enc := x.Encode()
	field := func(num protowire.Number, v []byte) []byte {
		b := protowire.AppendTag(nil, num, protowire.BytesType)
		return protowire.AppendBytes(b, v)
	}
	// Fields in another order: same message, not canonical.
	var reordered []byte
	reordered = append(reordered, field(2, x.From[:])...)
	reordered = append(reordered, field(1, x.Genesis[:])...)
	reordered = append(reordered, enc[2+32+2+32:]...)
	// A non-minimal varint for the amount (5 as two bytes).
	var padded []byte
	padded = append(padded, enc[:2+32+2+32+2+32]...)
	padded = append(padded, 0x20, 0x85, 0x00)
	padded = append(padded, enc[2+32+2+32+2+32+2:]...)
	short := *x
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, tx.ErrMalformed},
		{"garbage", []byte{0xff, 0xff, 0xff}, tx.ErrMalformed},
		{"too large", make([]byte, tx.MaxEncodedSize+1), tx.ErrTooLarge},
		{"truncated", enc[:len(enc)-1], tx.ErrMalformed},
		{"unknown field", append(append([]byte{}, enc...), field(9, []byte{1})...), tx.ErrMalformed},
		{"reordered", reordered, tx.ErrMalformed},
		{"non-minimal varint", padded, tx.ErrMalformed},
		{"duplicate field", append(append([]byte{}, enc...), field(3, short.To[:])...), tx.ErrMalformed},
		{"short genesis", append(field(1, x.Genesis[:31]), enc[34:]...), tx.ErrMalformed},
		{"zero recipient", (&tx.Tx{Genesis: x.Genesis, From: x.From, Fee: 1, Signature: x.Signature}).Encode(), tx.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := tx.Decode(c.b)
			require.ErrorIs(t, err, c.want)
		})
	}
}

func TestParseAddress(t *testing.T) {
	a := tx.AddressOf(devKey(t, "alice").Public().(ed25519.PublicKey))
	s := a.String()
	require.Regexp(t, `^0x[0-9a-f]{64}$`, s)
	cases := []struct {
		in   string
		ok   bool
		want string
	}{
		{s, true, s},
		{"0x" + strings.ToUpper(s[2:]), true, s},
		{s[2:], false, "must start with 0x"},
		{s[:65], false, "hex characters"},
		{s + "0", false, "hex characters"},
		{"0x" + strings.Repeat("zz", 32), false, "not hex"},
		{"0x" + strings.Repeat("00", 32), false, "all-zero"},
	}
	for _, c := range cases {
		got, err := tx.ParseAddress(c.in)
		if c.ok {
			require.NoError(t, err, c.in)
			require.Equal(t, c.want, got.String())
			continue
		}
		require.ErrorIs(t, err, tx.ErrBadAddress, c.in)
		require.Contains(t, err.Error(), c.want)
	}
	b, err := a.MarshalText()
	require.NoError(t, err)
	var back tx.Address
	require.NoError(t, back.UnmarshalText(b))
	require.Equal(t, a, back)
}

func TestSigCache(t *testing.T) {
	x := sample(t)
	c := tx.NewSigCache(2)
	require.NoError(t, c.Verify(x, x.Hash()))
	require.Equal(t, 1, c.Len())
	bad := *x
	bad.Signature[1] ^= 1
	require.True(t, errors.Is(c.Verify(&bad, bad.Hash()), tx.ErrBadSignature))
	require.Equal(t, 1, c.Len(), "a failed signature is not cached")
	var nilCache *tx.SigCache
	require.NoError(t, nilCache.Verify(x, x.Hash()))
}

func FuzzDecode(f *testing.F) {
	f.Add(sample(f).Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := tx.Decode(b)
		if err != nil {
			return
		}
		require.Equal(t, b, x.Encode(), "a decoded transaction re-encodes to its input")
	})
}

func BenchmarkVerify(b *testing.B) {
	x := sample(b)
	for b.Loop() {
		if err := x.Verify(); err != nil {
			b.Fatal(err)
		}
	}
}

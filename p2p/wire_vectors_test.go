package p2p

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// The vectors of the "Example" sections of docs/wire.md.
const (
	vecPublicKey    = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
	vecSigningBytes = "666c6172652f6173662f766f74652f7631" +
		"1111111111111111111111111111111111111111111111111111111111111111" +
		"0000000000000001" +
		"0000000000000000" +
		"2222222222222222222222222222222222222222222222222222222222222222" +
		"0000000000000001" +
		"3333333333333333333333333333333333333333333333333333333333333333"
	vecSignature = "3fe980d8c64e716ad960418e3fd423a47625af290b11cb4a942ad4082038cbd0397834ca6c78028f5f2a184cac5e8ce615e307d1942d84f915f049123ae72e08"
	vecEnvelope  = `080112b2010a20111111111111111111111111111111111111111111111111111111111111111110011a221220222222
222222222222222222222222222222222222222222222222222222222222240801122033333333333333333333333333
33333333333333333333333333333333333333280232403fe980d8c64e716ad960418e3fd423a47625af290b11cb4a94
2ad4082038cbd0397834ca6c78028f5f2a184cac5e8ce615e307d1942d84f915f049123ae72e08`
	vecMessageID     = "0ddae3c374649023dd1c823f2f6056032a06ee04808a0d42ad4d80325ee88c4d"
	vecBlocksRequest = "0a08011a0608ac02108001"
	vecStatusRequest = "0408011200"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, "\n", ""))
	require.NoError(t, err)
	return b
}

func TestWireVectors(t *testing.T) {
	var genesis checkpoint.Hash
	copy(genesis[:], bytes.Repeat([]byte{0x11}, 32))
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x01}, 32))
	require.Equal(t, vecPublicKey, hex.EncodeToString(key.Public().(ed25519.PublicKey)))

	// Decoding the documented envelope yields the documented vote.
	env := unhex(t, vecEnvelope)
	require.Len(t, env, 183)
	p, reason := checkEnvelope(env, kindVotes, genesis, DefaultMaxMessageSize)
	require.Equal(t, reasonNone, reason)
	v := *p.vote
	require.Equal(t, uint64(1), v.SetID)
	require.Equal(t, checkpoint.ValidatorIndex(2), v.Validator)
	require.Equal(t, uint64(0), v.Source.Number)
	require.Equal(t, uint64(1), v.Target.Number)

	// Its signing bytes and signature are the documented ones and verify.
	require.Equal(t, vecSigningBytes, hex.EncodeToString(v.SigningBytes()))
	require.Len(t, v.SigningBytes(), 137)
	require.Equal(t, vecSignature, hex.EncodeToString(v.Signature[:]))
	require.True(t, ed25519.Verify(key.Public().(ed25519.PublicKey), unhex(t, vecSigningBytes), unhex(t, vecSignature)))
	require.Equal(t, hex.EncodeToString(ed25519.Sign(key, v.SigningBytes())), vecSignature)

	// Encoding it again gives the documented bytes; the message id is H(data).
	again, err := proto.Marshal(voteEnvelope(v))
	require.NoError(t, err)
	require.Equal(t, env, again)
	id := checkpoint.HashOf(env)
	require.Equal(t, vecMessageID, hex.EncodeToString(id[:]))

	// The block header layout used by the tests is the documented 106 bytes.
	require.Len(t, headerSigningBytes(testBlock(1, genesis).GetHeader()), 14+32+8+8+4+8+32)

	// Sync requests, length prefix included.
	for _, tc := range []struct {
		hex string
		req *flarepb.SyncRequest
	}{
		{vecBlocksRequest, &flarepb.SyncRequest{Version: 1, Request: &flarepb.SyncRequest_Blocks{Blocks: &flarepb.BlocksByRange{Start: 300, Count: 128}}}},
		{vecStatusRequest, &flarepb.SyncRequest{Version: 1, Request: &flarepb.SyncRequest_Status{Status: &flarepb.StatusRequest{}}}},
	} {
		var buf bytes.Buffer
		require.NoError(t, writeDelimited(&buf, tc.req, MaxSyncRequestSize))
		require.Equal(t, tc.hex, hex.EncodeToString(buf.Bytes()))
		var got flarepb.SyncRequest
		require.NoError(t, readDelimited(bufio.NewReader(bytes.NewReader(unhex(t, tc.hex))), &got, MaxSyncRequestSize))
		require.True(t, proto.Equal(tc.req, &got))
	}
}

// TestSyncRequestVectors: the request examples of docs/wire.md ("Sync
// protocol"), length prefix included.
func TestSyncRequestVectors(t *testing.T) {
	for want, req := range map[string]*flarepb.SyncRequest{
		"0a08011a0608ac02108001": {Version: 1, Request: &flarepb.SyncRequest_Blocks{Blocks: &flarepb.BlocksByRange{Start: 300, Count: 128}}},
		"0408011200":             {Version: 1, Request: &flarepb.SyncRequest_Status{Status: &flarepb.StatusRequest{}}},
		"0408012a00":             {Version: 1, Request: &flarepb.SyncRequest_FinalityProof{FinalityProof: &flarepb.FinalityProofRequest{}}},
		"2a080132260a20" + strings.Repeat("11", 32) + "10051840": {Version: 1, Request: &flarepb.SyncRequest_Votes{Votes: &flarepb.VotesByValidator{PublicKey: bytes.Repeat([]byte{0x11}, 32), FromTarget: 5, Count: 64}}},
		"2808013a240a20" + strings.Repeat("22", 32) + "1020":     {Version: 1, Request: &flarepb.SyncRequest_BlocksByHash{BlocksByHash: &flarepb.BlocksByHash{Hash: bytes.Repeat([]byte{0x22}, 32), Count: 32}}},
	} {
		var b bytes.Buffer
		_, err := protodelim.MarshalTo(&b, req)
		require.NoError(t, err)
		require.Equal(t, want, hex.EncodeToString(b.Bytes()))
	}
}

// The transaction envelope of docs/wire.md ("Transactions topic"): the
// worked example transaction of "Transactions" (alice to bob, 5, fee 1,
// nonce 0, genesis 11 x 32) on /flare/1111…1111/txs/1.
const (
	vecTxEncoding = "0a20" + "1111111111111111111111111111111111111111111111111111111111111111" +
		"1220edc8f5f63243dccd9c4cde67dc546d8537555db81357aab2956104cc21717654" +
		"1a20d388d44a877d798facec822bce1a1b605fb7b76ed682408421a93fb4e5eb6021" +
		"2005" + "2801" + "3a40" +
		"9ebd77e14708dedde25411e6593e9e6d6bb7e7084b379b59dec1a5612c6fa8cd" +
		"3c716a235e672301078652642c3c071ea7471ca34bab814fc8bdb969a007350d"
	vecTxEnvelopePrefix = "08012aac01"
	vecTxMessageID      = "29d5371d4e3854d7d3b5db4a6406e37db00a67de76c8d072967dfbe3e567d02c"
)

func TestTransactionEnvelopeVector(t *testing.T) {
	var genesis checkpoint.Hash
	copy(genesis[:], bytes.Repeat([]byte{0x11}, 32))
	alice, err := chainspec.DevKey("alice")
	require.NoError(t, err)
	bob, err := chainspec.DevKey("bob")
	require.NoError(t, err)
	x := &tx.Tx{Genesis: genesis, To: tx.AddressOf(bob.Public().(ed25519.PublicKey)), Amount: 5, Fee: 1}
	x.Sign(alice)
	require.Equal(t, vecTxEncoding, hex.EncodeToString(x.Encode()))

	env := transactionEnvelope(x.Encode())
	require.Len(t, env, 177)
	require.Equal(t, vecTxEnvelopePrefix+vecTxEncoding, hex.EncodeToString(env))
	id := checkpoint.HashOf(env)
	require.Equal(t, vecTxMessageID, hex.EncodeToString(id[:]))
	p, reason := checkEnvelope(env, kindTxs, genesis, DefaultMaxMessageSize)
	require.Equal(t, reasonNone, reason)
	require.Equal(t, *x, *p.tx)
	require.Equal(t, "/flare/"+strings.Repeat("11", 32)+"/txs/1", TransactionsTopic(genesis))
}

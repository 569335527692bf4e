package p2p

// Fuzz targets for every decoder of untrusted wire bytes in this package:
//
//   - FuzzCheckEnvelope: the structural gossip checks (checkEnvelope) of
//     every topic, at a fuzzed size limit.
//   - FuzzGossipValidator: the whole topic validator (checks, handler,
//     verdict, stats) of a network.
//   - FuzzSyncRequest: the server's length-prefixed SyncRequest reader and
//     the answer it builds (serve).
//   - FuzzSyncResponse: the client's length-prefixed SyncResponse reader.
//   - FuzzSyncClient: RequestStatus / RequestBlocks / RequestCertificates
//     against a peer that answers with the fuzzed bytes, checked against an
//     independent decoding of the same bytes.
//
// The seed corpora are in testdata/fuzz/<target>/; `go test` runs them as
// unit tests. FLARE_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus
// ./p2p/ regenerates the generated seed files.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// ---- allocation bound ----

// allocSlack absorbs the coarse accounting of small allocations by the
// runtime (counted per cached span, not per object).
const allocSlack = 1 << 20

// allocPerInputByte bounds the heap bytes a protobuf decode may allocate per
// input byte (message structs and slice growth for tiny nested entries).
const allocPerInputByte = 128

// heapAllocated returns the bytes allocated on the heap so far.
func heapAllocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// measureAlloc runs f and returns roughly the heap bytes it allocated.
func measureAlloc(f func()) uint64 {
	before := heapAllocated()
	f()
	return heapAllocated() - before
}

// ---- seeds ----

var (
	fuzzSeedsOnce sync.Once
	fuzzSeeds     map[string][][]any
)

// delimited returns m's encoding with its uvarint length prefix.
func delimited(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	var buf bytes.Buffer
	require.NoError(tb, writeDelimited(&buf, m, MaxSyncResponseSize))
	return buf.Bytes()
}

// seedCorpus returns the seed inputs of every target, by target name.
func seedCorpus(tb testing.TB) map[string][][]any {
	fuzzSeedsOnce.Do(func() {
		other := checkpoint.HashOf([]byte("other"))
		vote := voteEnvelope(signedVote(testGenesis, 1, 5))
		cert := certEnvelope(certificate(6))
		block := blockEnvelope(testBlock(7, checkpoint.HashOf([]byte("parent")), []byte("tx1"), []byte("tx2")))
		first := blockEnvelope(testBlock(1, testGenesis))
		foreignVote := voteEnvelope(signedVote(other, 1, 5))
		badSig := voteEnvelope(signedVote(testGenesis, 1, 5))
		badSig.GetVote().Signature[0] ^= 1
		v2 := voteEnvelope(signedVote(testGenesis, 2, 9))
		v2.Version = 2
		txEnv := transactionEnvelope(signedTx(testGenesis, 0, 5, 1).Encode())
		badTx := signedTx(testGenesis, 1, 5, 1)
		badTx.Signature[3] ^= 1
		foreignTx := transactionEnvelope(signedTx(other, 0, 5, 1).Encode())
		twiceTx := append(transactionEnvelope(signedTx(testGenesis, 2, 5, 1).Encode()), txEnv[2:]...)
		envelopes := [][]byte{
			encode(tb, vote), encode(tb, cert), encode(tb, block), encode(tb, first),
			txEnv, transactionEnvelope(badTx.Encode()), foreignTx, twiceTx,
			encode(tb, foreignVote), encode(tb, badSig), encode(tb, v2),
			encode(tb, &flarepb.Envelope{Version: EnvelopeVersion}),
			encode(tb, blockEnvelope(&flarepb.Block{})),
			{}, {0x0f, 0xde, 0xad}, encode(tb, vote)[:20],
		}
		var gossip, validator [][]any
		for i, e := range envelopes {
			gossip = append(gossip, []any{e, uint16(i * 997)})
			validator = append(validator, []any{e, uint8(i % int(numKinds+1))})
		}
		// Every well-formed payload on its own topic.
		validator = append(validator,
			[]any{encode(tb, vote), uint8(kindVotes)},
			[]any{encode(tb, cert), uint8(kindCerts)},
			[]any{encode(tb, block), uint8(kindBlocks)},
			[]any{encode(tb, first), uint8(kindBlocks)},
			[]any{txEnv, uint8(kindTxs)},
			[]any{transactionEnvelope(badTx.Encode()), uint8(kindTxs)},
			[]any{twiceTx, uint8(kindTxs)})

		statusReq := &flarepb.SyncRequest{Version: SyncVersion, Request: &flarepb.SyncRequest_Status{Status: &flarepb.StatusRequest{}}}
		blocksReq := func(start uint64, count uint32) *flarepb.SyncRequest {
			return &flarepb.SyncRequest{Version: SyncVersion, Request: &flarepb.SyncRequest_Blocks{Blocks: &flarepb.BlocksByRange{Start: start, Count: count}}}
		}
		certsReq := func(start uint64, count uint32) *flarepb.SyncRequest {
			return &flarepb.SyncRequest{Version: SyncVersion, Request: &flarepb.SyncRequest_Certificates{Certificates: &flarepb.CertificatesByRange{Start: start, Count: count}}}
		}
		requests := [][]byte{
			delimited(tb, statusReq),
			delimited(tb, blocksReq(20, 5)),
			delimited(tb, blocksReq(1, ^uint32(0))),
			delimited(tb, blocksReq(^uint64(0)-5, 10)),
			delimited(tb, certsReq(3, 300)),
			delimited(tb, certsReq(5, 0)),
			delimited(tb, &flarepb.SyncRequest{Version: SyncVersion, Request: &flarepb.SyncRequest_Votes{Votes: &flarepb.VotesByValidator{PublicKey: testSet.Keys[1], FromTarget: 3, Count: 200}}}),
			delimited(tb, &flarepb.SyncRequest{Version: SyncVersion, Request: &flarepb.SyncRequest_Votes{Votes: &flarepb.VotesByValidator{PublicKey: testSet.Keys[1][:31], Count: 2}}}),
			delimited(tb, &flarepb.SyncRequest{Version: SyncVersion, Request: &flarepb.SyncRequest_BlocksByHash{BlocksByHash: &flarepb.BlocksByHash{Hash: make([]byte, 32), Count: 100}}}),
			delimited(tb, &flarepb.SyncRequest{Version: SyncVersion, Request: &flarepb.SyncRequest_BlocksByHash{BlocksByHash: &flarepb.BlocksByHash{Hash: make([]byte, 32)}}}),
			delimited(tb, &flarepb.SyncRequest{Version: 2, Request: statusReq.Request}),
			delimited(tb, &flarepb.SyncRequest{Version: SyncVersion}),
			{0x81, 0x08},             // length 1025, over the request limit
			{10, 1, 2},               // short body
			{0xff, 0xff, 0xff, 0xff}, // unterminated varint
			{},
		}

		chain := testChain(8)
		bestHash := checkpoint.HashOf(headerSigningBytes(chain[7].Header))
		status := &flarepb.Status{
			GenesisHash: testGenesis[:],
			Best:        &flarepb.Checkpoint{Number: 8, Hash: bestHash[:]},
			Justified:   &flarepb.Checkpoint{Number: 2, Hash: make([]byte, 32)},
			Finalized:   &flarepb.Checkpoint{Number: 1, Hash: make([]byte, 32)},
		}
		resp := func(f func(r *flarepb.SyncResponse)) []byte {
			r := &flarepb.SyncResponse{Version: SyncVersion}
			f(r)
			return delimited(tb, r)
		}
		certsPB := func(targets ...uint64) []*flarepb.Certificate {
			var out []*flarepb.Certificate
			for _, t := range targets {
				out = append(out, checkpoint.CertificateToPB(certificate(t)))
			}
			return out
		}
		// votesPB: validator 1's votes for the targets (a repeated target
		// is the same vote twice).
		votesPB := func(targets ...uint64) []*flarepb.Vote {
			var out []*flarepb.Vote
			for _, t := range targets {
				out = append(out, checkpoint.VoteToPB(signedVote(testGenesis, 1, t)))
			}
			return out
		}
		foreignCert := certificate(21)
		foreignCert.Genesis = other
		responses := [][]byte{
			resp(func(r *flarepb.SyncResponse) { r.Status = status }),
			resp(func(r *flarepb.SyncResponse) { r.Status = &flarepb.Status{GenesisHash: other[:]} }),
			resp(func(r *flarepb.SyncResponse) { r.Unavailable = true }),
			resp(func(r *flarepb.SyncResponse) { r.Blocks = chain[2:6] }),
			resp(func(r *flarepb.SyncResponse) { r.Blocks = []*flarepb.Block{chain[4], chain[3]} }),
			resp(func(r *flarepb.SyncResponse) { r.Blocks = []*flarepb.Block{{}} }),
			resp(func(r *flarepb.SyncResponse) { r.Certificates = certsPB(3, 4, 6) }),
			resp(func(r *flarepb.SyncResponse) { r.Certificates = certsPB(6, 4) }),
			resp(func(r *flarepb.SyncResponse) {
				r.Certificates = []*flarepb.Certificate{checkpoint.CertificateToPB(foreignCert)}
			}),
			resp(func(r *flarepb.SyncResponse) { r.Error = "count is zero" }),
			resp(func(r *flarepb.SyncResponse) { r.Version = 7 }),
			{0x81, 0x80, 0x80, 0x08}, // length 16 MiB + 1, over the response limit
			{0x80, 0x80, 0x80, 0x08}, // length 16 MiB, no body
			{10, 1, 2},
			{},
		}

		var syncReq, syncResp, client [][]any
		for _, r := range requests {
			syncReq = append(syncReq, []any{r})
		}
		for i, r := range responses {
			syncResp = append(syncResp, []any{r})
			// Every response against every kind of request, over a range
			// that holds the seed blocks and certificates.
			client = append(client, []any{uint8(i % 3), uint64(3), uint32(5), r})
		}
		client = append(client,
			[]any{uint8(0), uint64(0), uint32(0), responses[0]},
			[]any{uint8(1), uint64(3), uint32(4), responses[3]},
			[]any{uint8(1), uint64(4), uint32(4), responses[3]},
			[]any{uint8(1), uint64(3), uint32(3), responses[3]},
			[]any{uint8(1), ^uint64(0) - 2, uint32(200), responses[3]},
			[]any{uint8(2), uint64(3), uint32(4), responses[6]},
			[]any{uint8(2), uint64(1), uint32(1000), responses[8]},
			[]any{uint8(3), uint64(3), uint32(5), resp(func(r *flarepb.SyncResponse) { r.Votes = votesPB(3, 4, 4, 7) })},
			[]any{uint8(3), uint64(4), uint32(5), resp(func(r *flarepb.SyncResponse) { r.Votes = votesPB(3, 4) })},
			[]any{uint8(3), uint64(0), uint32(1), resp(func(r *flarepb.SyncResponse) { r.Votes = votesPB(3, 4) })},
			[]any{uint8(3), uint64(0), uint32(9), resp(func(r *flarepb.SyncResponse) { r.Votes = votesPB(5, 4) })},
			[]any{uint8(4), uint64(0), uint32(5), resp(func(r *flarepb.SyncResponse) { r.Blocks = []*flarepb.Block{chain[5], chain[4], chain[3]} })},
			[]any{uint8(4), uint64(0), uint32(5), resp(func(r *flarepb.SyncResponse) { r.Blocks = []*flarepb.Block{chain[5], chain[3]} })},
			[]any{uint8(4), uint64(0), uint32(2), resp(func(r *flarepb.SyncResponse) { r.Blocks = []*flarepb.Block{chain[1], chain[0]} })},
		)
		fuzzSeeds = map[string][][]any{
			"FuzzCheckEnvelope":   gossip,
			"FuzzGossipValidator": validator,
			"FuzzSyncRequest":     syncReq,
			"FuzzSyncResponse":    syncResp,
			"FuzzSyncClient":      client,
		}
	})
	return fuzzSeeds
}

// corpusFile renders values in the `go test fuzz v1` format.
func corpusFile(values []any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range values {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case uint8:
			fmt.Fprintf(&b, "byte(%d)\n", v)
		case uint16:
			fmt.Fprintf(&b, "uint16(%d)\n", v)
		case uint32:
			fmt.Fprintf(&b, "uint32(%d)\n", v)
		case uint64:
			fmt.Fprintf(&b, "uint64(%d)\n", v)
		default:
			panic(fmt.Sprintf("corpus value of type %T", v))
		}
	}
	return b.Bytes()
}

// TestWriteFuzzCorpus writes the seed corpora to testdata/fuzz/ (only with
// FLARE_WRITE_FUZZ_CORPUS=1).
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("FLARE_WRITE_FUZZ_CORPUS") != "1" {
		t.Skip("set FLARE_WRITE_FUZZ_CORPUS=1 to regenerate the seed corpora")
	}
	for name, seeds := range seedCorpus(t) {
		dir := filepath.Join("testdata", "fuzz", name)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for _, s := range seeds {
			data := corpusFile(s)
			sum := sha256.Sum256(data)
			file := filepath.Join(dir, "seed-"+hex.EncodeToString(sum[:8]))
			require.NoError(t, os.WriteFile(file, data, 0o644))
		}
	}
}

// ---- gossip ----

// FuzzCheckEnvelope runs the structural checks of every topic on arbitrary
// bytes. An accepted message is within the size limit, decodes to a version-1
// envelope whose payload is of the topic's type and of this chain, is accepted
// on no other topic, and re-encodes to a message accepted with the same
// payload.
func FuzzCheckEnvelope(f *testing.F) {
	f.Add([]byte{}, uint16(0))
	f.Add([]byte{0x08, 0x01}, uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		maxSize := 1<<10 + 4*int(limit) // [1 KiB, ~257 KiB], DefaultMaxMessageSize included
		accepted := 0
		for kind := range numKinds + 1 { // numKinds: an invalid kind
			var p payload
			var reason rejectReason
			alloc := measureAlloc(func() { p, reason = checkEnvelope(data, kind, testGenesis, maxSize) })
			if len(data) > maxSize {
				require.Equal(t, reasonOversize, reason)
				require.Less(t, alloc, uint64(allocSlack), "allocation for an oversized message")
			} else {
				require.NotEqual(t, reasonOversize, reason)
				require.LessOrEqual(t, alloc, uint64(allocPerInputByte*len(data)+allocSlack), "allocation out of proportion to the input")
			}
			if reason != reasonNone {
				require.Equal(t, payload{}, p, "rejected message with a payload")
				continue
			}
			accepted++
			checkAcceptedPayload(t, data, kind, p, maxSize)
		}
		require.LessOrEqual(t, accepted, 1, "message accepted on several topics")
	})
}

// checkAcceptedPayload checks the invariants of a payload checkEnvelope
// accepted from data on kind's topic.
func checkAcceptedPayload(t *testing.T, data []byte, kind topicKind, p payload, maxSize int) {
	t.Helper()
	require.LessOrEqual(t, len(data), maxSize)
	var env flarepb.Envelope
	require.NoError(t, proto.Unmarshal(data, &env))
	require.Equal(t, uint32(EnvelopeVersion), env.GetVersion())
	var again *flarepb.Envelope
	switch kind {
	case kindVotes:
		require.NotNil(t, p.vote)
		require.Nil(t, p.cert)
		require.Nil(t, p.block)
		require.NotNil(t, env.GetVote())
		require.Equal(t, testGenesis, p.vote.Genesis)
		back, err := checkpoint.VoteFromPB(checkpoint.VoteToPB(*p.vote))
		require.NoError(t, err)
		require.Equal(t, *p.vote, back, "vote round trip")
		again = voteEnvelope(*p.vote)
	case kindCerts:
		require.NotNil(t, p.cert)
		require.Nil(t, p.vote)
		require.Nil(t, p.block)
		require.NotNil(t, env.GetCertificate())
		require.Equal(t, testGenesis, p.cert.Genesis)
		require.LessOrEqual(t, len(p.cert.Signatures), checkpoint.MaxCertificateSignatures)
		back, err := checkpoint.CertificateFromPB(checkpoint.CertificateToPB(*p.cert))
		require.NoError(t, err)
		require.Equal(t, *p.cert, back, "certificate round trip")
		again = certEnvelope(*p.cert)
	case kindBlocks:
		require.NotNil(t, p.block)
		require.Nil(t, p.vote)
		require.Nil(t, p.cert)
		require.True(t, proto.Equal(env.GetBlock(), p.block))
		h := p.block.GetHeader()
		require.NotNil(t, h)
		require.NotZero(t, h.GetNumber())
		require.Len(t, h.GetParentHash(), blockHashSize)
		require.Len(t, h.GetBodyRoot(), blockHashSize)
		require.Len(t, h.GetSignature(), blockSignatureSize)
		if h.GetNumber() == 1 {
			require.Equal(t, testGenesis[:], h.GetParentHash())
		}
		again = blockEnvelope(p.block)
	case kindTxs:
		require.NotNil(t, p.tx)
		require.Nil(t, p.vote)
		require.Nil(t, p.cert)
		require.Nil(t, p.block)
		require.LessOrEqual(t, len(data), MaxTransactionEnvelopeSize)
		require.Equal(t, testGenesis, p.tx.Genesis)
		raw, ok := envelopeTransactionBytes(data)
		require.True(t, ok)
		require.Equal(t, raw, p.tx.Encode(), "accepted a non-canonical transaction")
		again = &flarepb.Envelope{Version: EnvelopeVersion, Payload: &flarepb.Envelope_Transaction{Transaction: p.tx.ToPB()}}
	default:
		t.Fatalf("message accepted on invalid topic kind %d", kind)
	}
	// The canonical re-encoding (unknown fields dropped by the conversion of
	// votes and certificates) is accepted with the same payload.
	b, err := proto.Marshal(again)
	require.NoError(t, err)
	p2, reason := checkEnvelope(b, kind, testGenesis, max(maxSize, len(b)))
	require.Equal(t, reasonNone, reason, "re-encoded payload rejected")
	switch kind {
	case kindVotes:
		require.Equal(t, *p.vote, *p2.vote)
	case kindCerts:
		require.Equal(t, *p.cert, *p2.cert)
	case kindBlocks:
		require.True(t, proto.Equal(p.block, p2.block))
	case kindTxs:
		require.Equal(t, *p.tx, *p2.tx)
		require.Equal(t, transactionEnvelope(p.tx.Encode()), b, "envelope layout")
	}
}

// FuzzGossipValidator runs a network's topic validator (structural checks,
// then the gossip handler, which verifies signatures against the test
// authority set) on arbitrary bytes from a remote peer. It accepts only
// messages the structural checks accept and whose signatures verify, hands
// the decoded payload on as ValidatorData, rejects (and counts) structurally
// invalid messages, and never calls the handler for them.
func FuzzGossipValidator(f *testing.F) {
	f.Add([]byte{}, uint8(kindVotes))
	n := newTestNetwork(f, nil)
	h := newTestHandler()
	n.gossip = h // the validator is called directly: no need to Start
	// One remote peer sends every input: no rate limit here.
	n.txLimit.reconfigure(1e12, 1<<30, 1<<30, 16)
	from := peer.ID("fuzz remote peer")
	validators := make([]pubsub.ValidatorEx, numKinds+1)
	for k := range numKinds + 1 {
		validators[k] = n.validator(k)
	}
	f.Fuzz(func(t *testing.T, data []byte, k uint8) {
		kind := topicKind(k % uint8(numKinds+1))
		topic := topicName(testGenesis, kind)
		msg := &pubsub.Message{Message: &pb.Message{Data: data, Topic: &topic}, ReceivedFrom: from}
		want, reason := checkEnvelope(data, kind, testGenesis, n.cfg.MaxMessageSize)
		before := n.stats.get(kind, pubsub.ValidationReject, reason)
		seen := h.sawVote
		var votesBefore int
		if want.vote != nil {
			votesBefore = seen(*want.vote)
		}

		res := validators[kind](context.Background(), from, msg)

		if reason != reasonNone {
			require.Equal(t, pubsub.ValidationReject, res)
			require.Nil(t, msg.ValidatorData)
			require.Equal(t, before+1, n.stats.get(kind, pubsub.ValidationReject, reason), "rejection not counted")
			return
		}
		got, ok := msg.ValidatorData.(payload)
		require.True(t, ok, "accepted structure without payload")
		var verified bool
		switch kind {
		case kindVotes:
			require.Equal(t, *want.vote, *got.vote)
			require.Equal(t, votesBefore+1, seen(*want.vote), "vote not handed to the handler")
			verified = testSet.VerifyVote(*got.vote) == nil
		case kindCerts:
			require.Equal(t, *want.cert, *got.cert)
			verified = testSet.VerifyCertificate(*got.cert) == nil
		case kindBlocks:
			require.True(t, proto.Equal(want.block, got.block))
			hd := got.block.GetHeader()
			verified = int(hd.GetProposer()) < len(testSet.Keys) &&
				ed25519.Verify(testSet.Keys[hd.GetProposer()], headerSigningBytes(hd), hd.GetSignature())
		case kindTxs:
			require.Equal(t, *want.tx, *got.tx)
			verified = got.tx.Verify() == nil && got.tx.Fee > 0
		default:
			t.Fatalf("accepted on invalid kind %d", kind)
		}
		if verified {
			require.Equal(t, pubsub.ValidationAccept, res)
		} else {
			require.Equal(t, pubsub.ValidationReject, res)
		}
	})
}

// ---- sync ----

// uvarintPrefix decodes the length prefix of stream and returns it with its
// length in bytes; ok is false if it is not a complete uvarint.
func uvarintPrefix(stream []byte) (size uint64, n int, ok bool) {
	size, n = binary.Uvarint(stream)
	return size, n, n > 0
}

// readAlloc runs readDelimited on stream into m with limit, checks that the
// length prefix is enforced before anything is allocated for the body, and
// returns the error.
func readAlloc(t *testing.T, stream []byte, m proto.Message, limit int) error {
	t.Helper()
	var err error
	r := bufio.NewReader(bytes.NewReader(stream))
	alloc := measureAlloc(func() { err = readDelimited(r, m, limit) })
	size, _, ok := uvarintPrefix(stream)
	switch {
	case !ok:
		require.Error(t, err, "message without a complete length prefix")
		require.NotErrorIs(t, err, errLimit)
		require.Less(t, alloc, uint64(allocSlack))
	case size > uint64(limit):
		require.ErrorIs(t, err, errLimit, "length prefix over the limit not refused")
		require.Less(t, alloc, uint64(allocSlack), "allocation for a refused length prefix")
	default:
		require.NotErrorIs(t, err, errLimit)
		// The body buffer is the prefix's size (at most limit), the rest is
		// proportional to the bytes actually received.
		require.LessOrEqual(t, alloc, size+uint64(allocPerInputByte*len(stream)+allocSlack))
		if int(size) > len(stream) {
			require.Error(t, err, "message longer than the stream decoded")
		}
	}
	if err == nil {
		require.LessOrEqual(t, proto.Size(m), limit)
	}
	return err
}

// roundTrip checks that m re-encodes (within limit) and decodes to itself.
func roundTrip(t *testing.T, m, empty proto.Message, limit int) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, writeDelimited(&buf, m, limit))
	require.NoError(t, readDelimited(bufio.NewReader(&buf), empty, limit))
	require.True(t, proto.Equal(m, empty), "round trip changed the message")
	require.Zero(t, buf.Len(), "bytes left after one message")
}

// FuzzSyncRequest feeds arbitrary stream bytes to the server's request
// reader and, for requests that decode, to serve (the server's answer over
// a 40-block chain, with certificates). A decoded request is within the
// request limit and round-trips; serve answers version-1 requests of a known
// kind with a range whose count is non-zero and does not overflow, with at
// most the clamped count of blocks (certificates), in order, in range, and a
// response within the response limit.
func FuzzSyncRequest(f *testing.F) {
	f.Add([]byte{0x04, 0x08, 0x01, 0x12, 0x00})
	h := newTestHandler()
	chain := testChain(40)
	var certs []checkpoint.Certificate
	for target := uint64(1); target <= 40; target++ {
		if target%3 != 0 {
			certs = append(certs, certificate(target))
		}
	}
	var votes []checkpoint.SignedVote
	for target := uint64(1); target <= 100; target++ {
		votes = append(votes, signedVote(testGenesis, int(target%2), target))
	}
	h.configure(func(h *testHandler) {
		h.chain = chain
		h.prunedBelow = 5
		h.certStore = certs
		h.voteStore = votes
		h.status = &flarepb.Status{GenesisHash: testGenesis[:]}
	})
	n := &Network{syncH: h} // serve only uses the sync handler
	f.Fuzz(func(t *testing.T, stream []byte) {
		var req flarepb.SyncRequest
		if err := readAlloc(t, stream, &req, MaxSyncRequestSize); err != nil {
			return
		}
		roundTrip(t, &req, &flarepb.SyncRequest{}, MaxSyncRequestSize)

		resp, problem := n.serve(context.Background(), &req)
		var start uint64
		var count, limit uint32
		switch r := req.GetRequest().(type) {
		case *flarepb.SyncRequest_Blocks:
			start, count, limit = r.Blocks.GetStart(), r.Blocks.GetCount(), MaxBlocksPerRequest
		case *flarepb.SyncRequest_Certificates:
			start, count, limit = r.Certificates.GetStart(), r.Certificates.GetCount(), MaxCertificatesPerRequest
		case *flarepb.SyncRequest_Votes:
			count, limit = r.Votes.GetCount(), MaxVotesPerRequest
			start = 0 // from_target is not a range start: it never overflows
		case *flarepb.SyncRequest_BlocksByHash:
			count, limit = r.BlocksByHash.GetCount(), MaxBlocksByHashPerRequest
		}
		badKey := len(req.GetVotes().GetPublicKey()) != ed25519.PublicKeySize
		badHash := len(req.GetBlocksByHash().GetHash()) != checkpoint.HashSize
		clamped := min(count, limit)
		switch {
		case req.GetVersion() != SyncVersion, req.GetRequest() == nil,
			req.GetVotes() != nil && badKey, req.GetBlocksByHash() != nil && badHash,
			limit != 0 && (count == 0 || start > ^uint64(0)-uint64(clamped)):
			require.NotEmpty(t, problem, "malformed request served")
			require.Nil(t, resp)
			return
		}
		require.Empty(t, problem, "well-formed request refused")
		require.Equal(t, uint32(SyncVersion), resp.GetVersion())
		require.Empty(t, resp.GetError())
		var buf bytes.Buffer
		require.NoError(t, writeDelimited(&buf, resp, responseLimit(&req)), "response over the limit")
		switch req.GetRequest().(type) {
		case *flarepb.SyncRequest_Status:
			require.True(t, proto.Equal(h.status, resp.GetStatus()))
			require.Empty(t, resp.GetBlocks())
			require.Empty(t, resp.GetCertificates())
		case *flarepb.SyncRequest_Blocks:
			require.Empty(t, resp.GetCertificates())
			require.LessOrEqual(t, len(resp.GetBlocks()), int(clamped))
			for i, b := range resp.GetBlocks() {
				require.Equal(t, start+uint64(i), b.GetHeader().GetNumber())
			}
		case *flarepb.SyncRequest_Certificates:
			require.Empty(t, resp.GetBlocks())
			require.LessOrEqual(t, len(resp.GetCertificates()), int(clamped))
			for i, pc := range resp.GetCertificates() {
				c, err := checkpoint.CertificateFromPB(pc)
				require.NoError(t, err)
				require.GreaterOrEqual(t, c.Target.Number, start)
				require.Less(t, c.Target.Number-start, uint64(clamped))
				if i > 0 {
					require.Greater(t, c.Target.Number, resp.GetCertificates()[i-1].GetTarget().GetNumber())
				}
			}
		case *flarepb.SyncRequest_Votes:
			require.Empty(t, resp.GetBlocks())
			require.LessOrEqual(t, len(resp.GetVotes()), int(clamped))
			for _, pv := range resp.GetVotes() {
				require.GreaterOrEqual(t, pv.GetTarget().GetNumber(), req.GetVotes().GetFromTarget())
			}
		case *flarepb.SyncRequest_BlocksByHash:
			require.Empty(t, resp.GetVotes())
			require.LessOrEqual(t, len(resp.GetBlocks()), int(clamped))
			for i, b := range resp.GetBlocks() {
				require.Equal(t, resp.GetBlocks()[0].GetHeader().GetNumber()-uint64(i), b.GetHeader().GetNumber())
			}
		}
	})
}

// FuzzSyncResponse feeds arbitrary stream bytes to the client's response
// reader. Length prefixes over the response limit are refused with errLimit
// before any allocation; a decoded response is within the limit, consumed
// exactly its prefix and body, and round-trips.
func FuzzSyncResponse(f *testing.F) {
	f.Add([]byte{0x02, 0x08, 0x01})
	f.Fuzz(func(t *testing.T, stream []byte) {
		var resp flarepb.SyncResponse
		if err := readAlloc(t, stream, &resp, MaxSyncResponseSize); err != nil {
			return
		}
		size, n, _ := uvarintPrefix(stream)
		require.LessOrEqual(t, n+int(size), len(stream), "decoded more than the stream holds")
		roundTrip(t, &resp, &flarepb.SyncResponse{}, MaxSyncResponseSize)
	})
}

// syncServer is a bare libp2p host that answers every sync request of a
// client with the bytes of the running fuzz input.
type syncServer struct {
	answer atomic.Pointer[[]byte]
	reqs   chan *flarepb.SyncRequest
}

// FuzzSyncClient sends a status, blocks or certificates request (op) from a
// started network to a peer that answers with the fuzzed stream bytes, and
// checks the client's result against an independent decoding of the same
// bytes: a response that does not decode, carries an error, has another
// version or breaks the documented constraints of its request fails (with
// ErrBadResponse, ErrRemote or the read error); any other response is
// returned as sent.
func FuzzSyncClient(f *testing.F) {
	f.Add(uint8(0), uint64(0), uint32(0), []byte{})
	client := startNode(f, newTestNetwork(f, nil))
	hst, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.DisableMetrics())
	require.NoError(f, err)
	f.Cleanup(func() { _ = hst.Close() })
	srv := &syncServer{reqs: make(chan *flarepb.SyncRequest, 1)}
	hst.SetStreamHandler(SyncProtocolID(testGenesis), func(s network.Stream) {
		defer func() { _ = s.Close() }()
		var req flarepb.SyncRequest
		if err := readDelimited(bufio.NewReader(s), &req, MaxSyncRequestSize); err != nil {
			_ = s.Reset()
			srv.reqs <- nil
			return
		}
		srv.reqs <- &req
		if a := srv.answer.Load(); a != nil {
			_, _ = s.Write(*a)
		}
	})
	// The client only dials bootnodes: the server connects to it.
	require.NoError(f, hst.Connect(context.Background(), peer.AddrInfo{ID: client.ID(), Addrs: client.host.Addrs()}))
	server := hst.ID()

	f.Fuzz(func(t *testing.T, op uint8, start uint64, count uint32, stream []byte) {
		srv.answer.Store(&stream)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		// The independent decoding: the outcome every request shares.
		var resp flarepb.SyncResponse
		limit := []int{MaxStatusResponseSize, MaxSyncResponseSize, MaxSyncResponseSize, MaxVotesResponseSize, MaxSyncResponseSize}[op%5]
		decodeErr := readDelimited(bufio.NewReader(bytes.NewReader(stream)), &resp, limit)
		common := func(t *testing.T, err error) (done bool) {
			t.Helper()
			switch {
			case decodeErr != nil:
				require.Error(t, err, "undecodable response accepted")
				if errors.Is(decodeErr, errLimit) {
					require.ErrorIs(t, err, ErrBadResponse)
				}
				return true
			case resp.GetError() != "":
				require.ErrorIs(t, err, ErrRemote)
				return true
			case resp.GetVersion() != SyncVersion:
				require.ErrorIs(t, err, ErrBadResponse)
				return true
			}
			return false
		}
		sent := func(t *testing.T) *flarepb.SyncRequest {
			t.Helper()
			select {
			case r := <-srv.reqs:
				require.NotNil(t, r, "client request does not decode")
				require.Equal(t, uint32(SyncVersion), r.GetVersion())
				return r
			case <-ctx.Done():
				t.Fatal("request never reached the server")
				return nil
			}
		}

		switch op % 5 {
		case 0:
			st, err := client.RequestStatus(ctx, server)
			require.NotNil(t, sent(t).GetStatus())
			if common(t, err) {
				return
			}
			switch {
			case resp.GetStatus() == nil:
				require.ErrorIs(t, err, ErrBadResponse)
			case !bytes.Equal(resp.GetStatus().GetGenesisHash(), testGenesis[:]):
				require.ErrorIs(t, err, checkpoint.ErrWrongChain)
				require.True(t, proto.Equal(resp.GetStatus(), st))
			default:
				require.NoError(t, err)
				require.True(t, proto.Equal(resp.GetStatus(), st), "status changed in transit")
			}
		case 1:
			blocks, unavailable, err := client.RequestBlocks(ctx, server, start, count)
			r := sent(t).GetBlocks()
			require.Equal(t, start, r.GetStart())
			require.Equal(t, count, r.GetCount())
			if common(t, err) {
				return
			}
			clamped := uint64(min(count, MaxBlocksPerRequest))
			valid := uint64(len(resp.GetBlocks())) <= clamped
			for i, b := range resp.GetBlocks() {
				num := b.GetHeader().GetNumber()
				valid = valid && b.GetHeader() != nil && num >= start && num-start < clamped &&
					(i == 0 || num > resp.GetBlocks()[i-1].GetHeader().GetNumber())
			}
			if err == nil {
				// Whatever the client accepts meets the constraints.
				require.True(t, valid, "invalid blocks accepted")
				require.Equal(t, resp.GetUnavailable(), unavailable)
				require.Len(t, blocks, len(resp.GetBlocks()))
				for i := range blocks {
					require.True(t, proto.Equal(resp.GetBlocks()[i], blocks[i]))
				}
				return
			}
			require.ErrorIs(t, err, ErrBadResponse)
			// Everything that meets them is accepted, except when the range
			// end overflows (a range every server refuses).
			if start <= ^uint64(0)-clamped {
				require.False(t, valid, "valid blocks refused: %v", err)
			}
		case 2:
			certs, unavailable, err := client.RequestCertificates(ctx, server, start, count)
			r := sent(t).GetCertificates()
			require.Equal(t, start, r.GetStart())
			require.Equal(t, count, r.GetCount())
			if common(t, err) {
				return
			}
			clamped := uint64(min(count, MaxCertificatesPerRequest))
			pcs := resp.GetCertificates()
			valid := uint64(len(pcs)) <= clamped
			var want []checkpoint.Certificate
			for i, pc := range pcs {
				c, cerr := checkpoint.CertificateFromPB(pc)
				tn := c.Target.Number
				valid = valid && cerr == nil && c.Genesis == testGenesis && tn >= start && tn-start < clamped &&
					(i == 0 || tn > want[i-1].Target.Number)
				want = append(want, c)
			}
			if err == nil {
				require.True(t, valid, "invalid certificates accepted")
				require.Equal(t, resp.GetUnavailable(), unavailable)
				require.Equal(t, len(want), len(certs))
				for i := range certs {
					require.Equal(t, want[i], certs[i])
				}
				return
			}
			require.ErrorIs(t, err, ErrBadResponse)
			if start <= ^uint64(0)-clamped {
				require.False(t, valid, "valid certificates refused: %v", err)
			}
		case 3:
			votes, unavailable, err := client.RequestVotes(ctx, server, testSet.Keys[1], start, count)
			r := sent(t).GetVotes()
			require.Equal(t, []byte(testSet.Keys[1]), r.GetPublicKey())
			require.Equal(t, start, r.GetFromTarget())
			require.Equal(t, count, r.GetCount())
			if common(t, err) {
				return
			}
			pvs := resp.GetVotes()
			valid := uint64(len(pvs)) <= uint64(min(count, MaxVotesPerRequest))
			var want []checkpoint.SignedVote
			for i, pv := range pvs {
				v, verr := checkpoint.VoteFromPB(pv)
				valid = valid && verr == nil && v.Genesis == testGenesis && v.Target.Number >= start
				for j := range i {
					valid = valid && v != want[j]
				}
				if i > 0 {
					valid = valid && v.Validator == want[i-1].Validator && v.Target.Number >= want[i-1].Target.Number
				}
				want = append(want, v)
			}
			if err == nil {
				require.True(t, valid, "invalid votes accepted")
				require.Equal(t, resp.GetUnavailable(), unavailable)
				require.Equal(t, len(want), len(votes))
				for i := range votes {
					require.Equal(t, want[i], votes[i])
				}
				return
			}
			require.ErrorIs(t, err, ErrBadResponse)
			require.False(t, valid, "valid votes refused: %v", err)
		case 4:
			hash := checkpoint.HashOf([]byte("wanted"))
			blocks, unavailable, err := client.RequestBlocksByHash(ctx, server, hash, count)
			r := sent(t).GetBlocksByHash()
			require.Equal(t, hash[:], r.GetHash())
			require.Equal(t, count, r.GetCount())
			if common(t, err) {
				return
			}
			pbs := resp.GetBlocks()
			valid := uint64(len(pbs)) <= uint64(min(count, MaxBlocksByHashPerRequest))
			for i, b := range pbs {
				h := b.GetHeader()
				valid = valid && h != nil && h.GetNumber() > 0 && len(h.GetParentHash()) == 32 && len(h.GetBodyRoot()) == 32 &&
					len(h.GetSignature()) == 64 && (h.GetNumber() != 1 || bytes.Equal(h.GetParentHash(), testGenesis[:])) &&
					(i == 0 || h.GetNumber()+1 == pbs[i-1].GetHeader().GetNumber())
			}
			if err == nil {
				require.True(t, valid, "invalid blocks accepted")
				require.Equal(t, resp.GetUnavailable(), unavailable)
				require.Len(t, blocks, len(pbs))
				for i := range blocks {
					require.True(t, proto.Equal(pbs[i], blocks[i]))
				}
				return
			}
			require.ErrorIs(t, err, ErrBadResponse)
			require.False(t, valid, "valid blocks refused: %v", err)
		}
	})
}

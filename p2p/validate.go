package p2p

import (
	"bytes"
	"context"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/tx"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// Verdict is a GossipHandler's decision on a gossip message.
type Verdict int

const (
	// Accept: the message is valid and useful; it is delivered and forwarded.
	Accept Verdict = iota + 1
	// Ignore: the message cannot be judged or is not useful (duplicate, stale,
	// from an unknown future set, ...); it is dropped without penalty.
	Ignore
	// Reject: the message is objectively invalid (bad signature, unknown
	// validator, malformed block); it is dropped and the sender is
	// penalized. Only reject what every honest node would reject too.
	Reject
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Ignore:
		return "ignore"
	case Reject:
		return "reject"
	default:
		return "invalid"
	}
}

// GossipHandler processes gossip messages inside the topic validators
// (implemented by the node). It verifies and applies the message and returns
// its verdict; ctx is cancelled when the validator times out or the network
// closes. Calls are concurrent.
type GossipHandler interface {
	HandleVote(ctx context.Context, from peer.ID, v checkpoint.SignedVote) Verdict
	HandleCertificate(ctx context.Context, from peer.ID, c checkpoint.Certificate) Verdict
	HandleBlock(ctx context.Context, from peer.ID, b *flarepb.Block) Verdict
	// HandleTransaction judges a transaction of this chain in canonical
	// encoding (decoded, signature not verified): the node admits it to its
	// pool, which verifies the signature once (tx.SigCache). Accept relays
	// it; Ignore drops it (races an honest node can lose: known, included
	// meanwhile, pool full, nonce gap, balance); Reject penalizes the sender
	// (what no honest node sends: bad signature, fee below the chain
	// minimum).
	HandleTransaction(ctx context.Context, from peer.ID, t *tx.Tx) Verdict
}

// rejectReason names the validation step that rejected a message (empty
// when the structural checks passed).
type rejectReason string

const (
	reasonNone      rejectReason = ""
	reasonOversize  rejectReason = "oversize"
	reasonDecode    rejectReason = "decode"
	reasonVersion   rejectReason = "version"
	reasonWrongType rejectReason = "wrong_type"
	reasonGenesis   rejectReason = "wrong_chain"
	reasonMalformed rejectReason = "malformed"
	// reasonRateLimited: the sender exceeded its transaction rate (ignored).
	reasonRateLimited rejectReason = "rate_limited"
	// reasonStrike: ignored as rate-limited, and the excess is sustained:
	// the sender earned a strike (application-specific score).
	reasonStrike rejectReason = "rate_limited_strike"
	// reasonBusy: every transaction handler slot stayed busy until the
	// validation deadline (ignored).
	reasonBusy rejectReason = "busy"
)

// payload is a structurally valid gossip message.
type payload struct {
	vote  *checkpoint.SignedVote
	cert  *checkpoint.Certificate
	block *flarepb.Block
	tx    *tx.Tx
}

// block header field sizes.
const (
	blockHashSize      = checkpoint.HashSize
	blockSignatureSize = checkpoint.SignatureSize
)

// checkEnvelope runs the structural steps of a topic validator on data, in
// order, cheapest first: size, decode, version, payload type against topic,
// genesis hash of the payload, shape decode (for a transaction: canonical
// decode, then genesis hash). It performs no signature verification. The
// size limit of the transactions topic is MaxTransactionEnvelopeSize (or
// maxSize when smaller).
func checkEnvelope(data []byte, kind topicKind, genesis checkpoint.Hash, maxSize int) (payload, rejectReason) {
	if kind == kindTxs {
		maxSize = min(maxSize, MaxTransactionEnvelopeSize)
	}
	if len(data) > maxSize {
		return payload{}, reasonOversize
	}
	var env flarepb.Envelope
	if err := proto.Unmarshal(data, &env); err != nil {
		return payload{}, reasonDecode
	}
	if env.GetVersion() != EnvelopeVersion {
		return payload{}, reasonVersion
	}
	switch kind {
	case kindVotes:
		pv := env.GetVote()
		if pv == nil {
			return payload{}, reasonWrongType
		}
		if !bytes.Equal(pv.GetGenesisHash(), genesis[:]) {
			return payload{}, reasonGenesis
		}
		v, err := checkpoint.VoteFromPB(pv)
		if err != nil {
			return payload{}, reasonMalformed
		}
		return payload{vote: &v}, reasonNone
	case kindCerts:
		pc := env.GetCertificate()
		if pc == nil {
			return payload{}, reasonWrongType
		}
		if !bytes.Equal(pc.GetGenesisHash(), genesis[:]) {
			return payload{}, reasonGenesis
		}
		c, err := checkpoint.CertificateFromPB(pc)
		if err != nil {
			return payload{}, reasonMalformed
		}
		return payload{cert: &c}, reasonNone
	case kindBlocks:
		b := env.GetBlock()
		if b == nil {
			return payload{}, reasonWrongType
		}
		if reason := checkBlock(b, genesis); reason != reasonNone {
			return payload{}, reason
		}
		return payload{block: b}, reasonNone
	case kindTxs:
		if env.GetTransaction() == nil {
			return payload{}, reasonWrongType
		}
		raw, ok := envelopeTransactionBytes(data)
		if !ok {
			return payload{}, reasonMalformed
		}
		t, err := tx.Decode(raw)
		if err != nil {
			return payload{}, reasonMalformed
		}
		if t.Genesis != genesis {
			return payload{}, reasonGenesis
		}
		return payload{tx: t}, reasonNone
	default:
		return payload{}, reasonWrongType
	}
}

// envelopeTransactionBytes returns the bytes of the envelope's transaction
// field (5): it must occur exactly once (protobuf would merge repeated
// occurrences, and the transaction must be judged on the exact bytes its
// signer encoded). data decoded as an Envelope already.
func envelopeTransactionBytes(data []byte) ([]byte, bool) {
	var raw []byte
	found := 0
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return nil, false
		}
		data = data[n:]
		if num == envelopeTransactionField && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(data)
			if m < 0 {
				return nil, false
			}
			raw, found = v, found+1
			data = data[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, data)
		if m < 0 {
			return nil, false
		}
		data = data[m:]
	}
	return raw, found == 1
}

// envelopeTransactionField is the field number of Envelope.transaction.
const envelopeTransactionField = 5

// transactionEnvelope returns the envelope of the canonical transaction
// encoding raw: 08 01 2a <len> raw (what proto.Marshal of the Envelope
// gives too).
func transactionEnvelope(raw []byte) []byte {
	b := make([]byte, 0, len(raw)+5)
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, EnvelopeVersion)
	b = protowire.AppendTag(b, envelopeTransactionField, protowire.BytesType)
	return protowire.AppendBytes(b, raw)
}

// checkBlock checks a block's chain identity and shape. A block carries no
// genesis hash; the only chain-identity check possible without chain state
// is that block 1 builds on genesis.
func checkBlock(b *flarepb.Block, genesis checkpoint.Hash) rejectReason {
	h := b.GetHeader()
	if h == nil {
		return reasonMalformed
	}
	if h.GetNumber() == 1 && !bytes.Equal(h.GetParentHash(), genesis[:]) {
		return reasonGenesis
	}
	switch {
	case h.GetNumber() == 0, // the genesis block is never transmitted
		len(h.GetParentHash()) != blockHashSize,
		len(h.GetBodyRoot()) != blockHashSize,
		len(h.GetSignature()) != blockSignatureSize:
		return reasonMalformed
	}
	return reasonNone
}

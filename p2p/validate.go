package p2p

import (
	"bytes"
	"context"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/consensus/checkpoint"
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
)

// payload is a structurally valid gossip message.
type payload struct {
	vote  *checkpoint.SignedVote
	cert  *checkpoint.Certificate
	block *flarepb.Block
}

// block header field sizes.
const (
	blockHashSize      = checkpoint.HashSize
	blockSignatureSize = checkpoint.SignatureSize
)

// checkEnvelope runs the structural steps of a topic validator on data, in
// order, cheapest first: size, decode, version, payload type against topic,
// genesis hash of the payload, shape decode. It performs no signature
// verification.
func checkEnvelope(data []byte, kind topicKind, genesis checkpoint.Hash, maxSize int) (payload, rejectReason) {
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
	default:
		return payload{}, reasonWrongType
	}
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

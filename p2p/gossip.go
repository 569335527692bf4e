package p2p

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/wire/flarepb"
)

// Gossip tunables.
const (
	// seenMessagesTTL is how long a message id is remembered (duplicates
	// inside it are dropped before validation).
	seenMessagesTTL = 2 * time.Minute
	// validatorTimeout bounds one validation, handler included.
	validatorTimeout = 5 * time.Second
	// validatorConcurrency bounds concurrent validations per topic.
	validatorConcurrency = 256
	// validateThrottle bounds concurrent validations overall.
	validateThrottle = 1024
	// validateQueueSize is the validation pipeline queue.
	validateQueueSize = 1024
	// subscriptionBuffer is the delivered-message buffer of each topic.
	subscriptionBuffer = 256
	// peerOutboundQueue is the per-peer RPC queue; gossipsub drops RPCs to
	// a peer whose queue is full, and a checkpoint produces a burst of one
	// vote per validator.
	peerOutboundQueue = 512

	// Score thresholds.
	gossipThreshold   = -10
	publishThreshold  = -50
	graylistThreshold = -80
	// invalidMessageWeight is P4: the score of one invalid message is
	// invalidMessageWeight * count^2 (decaying), so one invalid message
	// suppresses gossip to the sender, three graylist it.
	invalidMessageWeight = -10
	scoreDecayInterval   = time.Second
	scoreDecayToZero     = 0.01
)

// scoreDecay returns the per-interval decay factor that takes a counter of 1
// to scoreDecayToZero in d.
func scoreDecay(d time.Duration) float64 {
	ticks := float64(d) / float64(scoreDecayInterval)
	return math.Pow(scoreDecayToZero, 1/ticks)
}

func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight: 1,
		// P1: a little credit for time in the mesh (at most +1).
		TimeInMeshWeight:  0.01,
		TimeInMeshQuantum: time.Second,
		TimeInMeshCap:     100,
		// P2: credit for first deliveries (at most +10).
		FirstMessageDeliveriesWeight: 0.5,
		FirstMessageDeliveriesDecay:  scoreDecay(5 * time.Minute),
		FirstMessageDeliveriesCap:    20,
		// P3/P3b (mesh delivery deficits) are off: message rates on a small
		// validator network are too low and bursty to judge mesh peers by.
		MeshMessageDeliveriesDecay: scoreDecay(time.Minute),
		MeshFailurePenaltyDecay:    scoreDecay(time.Minute),
		// P4: invalid messages.
		InvalidMessageDeliveriesWeight: invalidMessageWeight,
		InvalidMessageDeliveriesDecay:  scoreDecay(10 * time.Minute),
	}
}

func loopbackNets() []*net.IPNet {
	_, v4, _ := net.ParseCIDR("127.0.0.0/8")
	_, v6, _ := net.ParseCIDR("::1/128")
	return []*net.IPNet{v4, v6}
}

func (n *Network) peerScoreParams() (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	topics := make(map[string]*pubsub.TopicScoreParams, numKinds)
	for k := range numKinds {
		topics[topicName(n.genesis, k)] = topicScoreParams()
	}
	topics[topicName(n.genesis, kindTxs)] = txTopicScoreParams()
	params := &pubsub.PeerScoreParams{
		Topics:        topics,
		TopicScoreCap: 30,
		// P5: strikes for sustained transaction floods (txLimiter).
		AppSpecificScore:  func(p peer.ID) float64 { return n.txLimit.score(p, time.Now()) },
		AppSpecificWeight: 1,
		// Many peers behind one address are suspicious, except on loopback
		// (local test networks).
		IPColocationFactorWeight:    -5,
		IPColocationFactorThreshold: 10,
		IPColocationFactorWhitelist: loopbackNets(),
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       scoreDecay(10 * time.Minute),
		DecayInterval:               scoreDecayInterval,
		DecayToZero:                 scoreDecayToZero,
		// A penalized peer keeps its score across reconnects.
		RetainScore: 10 * time.Minute,
		SeenMsgTTL:  seenMessagesTTL,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:             gossipThreshold,
		PublishThreshold:            publishThreshold,
		GraylistThreshold:           graylistThreshold,
		AcceptPXThreshold:           100, // peer exchange is off anyway
		OpportunisticGraftThreshold: 1,
	}
	return params, thresholds
}

// messageID is the BLAKE2b-256 hash of the message bytes.
func messageID(m *pb.Message) string {
	h := checkpoint.HashOf(m.GetData())
	return string(h[:])
}

// pubsubFrameLimit is the router's RPC size limit: twice the message limit,
// so that moderately oversized messages reach the validator (and penalize
// their sender) instead of only resetting the stream.
func (n *Network) pubsubFrameLimit() int { return 2*n.cfg.MaxMessageSize + 4<<10 }

// Gossipsub parameters for validator networks of 4 to 100 nodes; the
// reasoning and the measurements behind them are in docs/network.md
// ("Gossip parameters"). Discovery connects every validator to up to 4/5 of
// --max-peers others and flood publishing delivers a node's own messages to
// all of them in one hop, so the mesh is the redundant path: a small degree
// keeps duplicate deliveries (and their CPU) down.
const (
	gossipD       = 4 // mesh degree per topic
	gossipDlo     = 3 // graft when the mesh has fewer
	gossipDhi     = 8 // prune when the mesh has more
	gossipDscore  = 2 // mesh peers kept by score when pruning
	gossipDout    = 1 // outbound mesh peers kept (must be < Dlo and < D/2)
	gossipDlazy   = 6 // peers receiving IHAVE gossip per heartbeat
	gossipHistory = 5 // heartbeats of message cache (5 s)
	// gossipHistoryGossip: heartbeats of messages advertised in IHAVE (3 s).
	gossipHistoryGossip = 3
	gossipHeartbeat     = time.Second
	// gossipFanoutTTL: the node publishes only on topics it subscribes to,
	// so fanout state is never used.
	gossipFanoutTTL = time.Minute
	// gossipIDontWantThreshold: messages at least this large (blocks with a
	// body, certificates) are announced with IDONTWANT to mesh peers so that
	// they are not sent again; votes are too small for it to pay.
	gossipIDontWantThreshold = 1024
	gossipIDontWantTTL       = 3 // heartbeats
)

// gossipParams returns the router parameters (explicitly set; the library
// defaults are tuned for large open networks).
func gossipParams() pubsub.GossipSubParams {
	gs := pubsub.DefaultGossipSubParams()
	gs.D, gs.Dlo, gs.Dhi = gossipD, gossipDlo, gossipDhi
	gs.Dscore, gs.Dout, gs.Dlazy = gossipDscore, gossipDout, gossipDlazy
	gs.HistoryLength, gs.HistoryGossip = gossipHistory, gossipHistoryGossip
	gs.HeartbeatInterval = gossipHeartbeat
	gs.FanoutTTL = gossipFanoutTTL
	gs.IDontWantMessageThreshold = gossipIDontWantThreshold
	gs.IDontWantMessageTTL = gossipIDontWantTTL
	return gs
}

// gossipProtocols are the pubsub protocols the node speaks and advertises:
// gossipsub 1.1 and later. Not /meshsub/1.0.0 (no peer scoring or
// prune backoff on the remote side) nor /floodsub/1.0.0 (no mesh), which
// the library offers by default: every flare node speaks 1.1 or later.
var gossipProtocols = []protocol.ID{pubsub.GossipSubID_v13, pubsub.GossipSubID_v12, pubsub.GossipSubID_v11}

func (n *Network) pubsubOptions() ([]pubsub.Option, error) {
	params, thresholds := n.peerScoreParams()
	gs := gossipParams()
	return []pubsub.Option{
		pubsub.WithGossipSubProtocols(gossipProtocols, pubsub.GossipSubDefaultFeatures),
		pubsub.WithRawTracer(n.mesh),
		pubsub.WithGossipSubParams(gs),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithMaxMessageSize(n.pubsubFrameLimit()),
		pubsub.WithSeenMessagesTTL(seenMessagesTTL),
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(n.updateScores), n.scoreInspectPeriod),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(false),
		pubsub.WithValidateThrottle(validateThrottle),
		pubsub.WithValidateQueueSize(validateQueueSize),
		pubsub.WithPeerOutboundQueueSize(peerOutboundQueue),
	}, nil
}

// SyncHandler serves sync requests from peers (implemented by the node).
// Returned slices are clamped to the (clamped) request count.
type SyncHandler interface {
	// Status returns the local chain status.
	Status(ctx context.Context) *flarepb.Status
	// BlocksByRange returns blocks start, start+1, ... (at most count) of
	// the best chain; unavailable reports that (part of) the range is
	// pruned or unknown.
	BlocksByRange(ctx context.Context, start uint64, count uint32) (blocks []*flarepb.Block, unavailable bool)
	// CertificatesByRange returns the stored certificates whose target
	// checkpoint number is in [start, start+count), in increasing target
	// order; unavailable reports that (part of) the range is pruned or
	// unknown.
	CertificatesByRange(ctx context.Context, start uint64, count uint32) (certs []checkpoint.Certificate, unavailable bool)
	// FinalityProof returns the proof of the local finalized (and latest
	// justified) checkpoint; ok is false when there is none.
	FinalityProof(ctx context.Context) (p *checkpoint.FinalityProof, ok bool)
	// VotesByValidator returns the stored votes (alone or held by a stored
	// certificate) signed by the validator with key pub (32 bytes) whose
	// target checkpoint number is at least from, in increasing target
	// order, at most count; unavailable reports that the key is unknown or
	// nothing is stored.
	VotesByValidator(ctx context.Context, pub ed25519.PublicKey, from uint64, count uint32) (votes []checkpoint.SignedVote, unavailable bool)
	// BlocksByHash returns the block with hash h and up to count-1 of its
	// ancestors, newest first, never the genesis block; unavailable
	// reports that h is unknown.
	BlocksByHash(ctx context.Context, h checkpoint.Hash, count uint32) (blocks []*flarepb.Block, unavailable bool)
}

// Start joins the gossip topics with their validators, registers the sync
// protocol handler and starts peer discovery (DHT, connector, mDNS when
// configured, address book). g and s are
// called concurrently until Close returns. ctx bounds only the start-up.
func (n *Network) Start(ctx context.Context, g GossipHandler, s SyncHandler) error {
	if g == nil || s == nil {
		return fmt.Errorf("%w: nil handler", ErrInvalidConfig)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return ErrClosed
	case n.started:
		return ErrAlreadyStarted
	}
	n.gossip, n.syncH = g, s

	opts, err := n.pubsubOptions()
	if err != nil {
		return err
	}
	ps, err := pubsub.NewGossipSub(n.ctx, n.host, opts...)
	if err != nil {
		return fmt.Errorf("start gossipsub: %w", err)
	}
	var topics [numKinds]*pubsub.Topic
	var subs [numKinds]*pubsub.Subscription
	cleanup := func() {
		for k := range numKinds {
			if subs[k] != nil {
				subs[k].Cancel()
			}
			if topics[k] != nil {
				_ = ps.UnregisterTopicValidator(topicName(n.genesis, k))
				_ = topics[k].Close()
			}
		}
	}
	for k := range numKinds {
		name := topicName(n.genesis, k)
		if topics[k], err = ps.Join(name); err != nil {
			cleanup()
			return fmt.Errorf("join %s: %w", name, err)
		}
		timeout, concurrency := validatorTimeout, validatorConcurrency
		if k == kindTxs {
			timeout, concurrency = txValidatorTimeout, txValidatorConcurrency
		}
		err = ps.RegisterTopicValidator(name, n.validator(k),
			pubsub.WithValidatorTimeout(timeout),
			pubsub.WithValidatorConcurrency(concurrency))
		if err != nil {
			cleanup()
			return fmt.Errorf("register validator for %s: %w", name, err)
		}
		if subs[k], err = topics[k].Subscribe(pubsub.WithBufferSize(subscriptionBuffer)); err != nil {
			cleanup()
			return fmt.Errorf("subscribe to %s: %w", name, err)
		}
	}
	n.ps, n.topics, n.subs = ps, topics, subs
	for k := range numKinds {
		n.wg.Add(1)
		go n.drain(subs[k])
	}
	n.host.SetStreamHandler(n.syncProto, n.handleSyncStream)
	if err := n.startDiscovery(); err != nil {
		n.host.RemoveStreamHandler(n.syncProto)
		for _, s := range subs {
			s.Cancel()
		}
		return err
	}
	n.started = true
	n.log.Info("p2p network started",
		zap.String("votes_topic", topicName(n.genesis, kindVotes)),
		zap.String("sync_protocol", string(n.syncProto)),
		zap.Int("bootnodes", len(n.bootnodes)))
	return nil
}

// drain consumes delivered messages: everything was processed by the
// validator already.
func (n *Network) drain(sub *pubsub.Subscription) {
	defer n.wg.Done()
	for {
		if _, err := sub.Next(n.ctx); err != nil {
			return
		}
	}
}

// validator returns the topic validator of kind.
func (n *Network) validator(kind topicKind) pubsub.ValidatorEx {
	return func(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		res, reason := n.validate(ctx, kind, from, msg)
		n.stats.record(kind, res, reason)
		if reason != reasonNone && reason != reasonRateLimited && reason != reasonStrike && !msg.Local {
			n.log.Debug("dropped gossip message", zap.String("result", resultName(res)), zap.Stringer("topic", kind),
				zap.Stringer("from", from), zap.String("reason", string(reason)), zap.Int("size", len(msg.GetData())))
		}
		if n.observe != nil {
			n.observe(kind, from, msg.GetData(), res, reason)
		}
		return res
	}
}

func (n *Network) validate(ctx context.Context, kind topicKind, from peer.ID, msg *pubsub.Message) (pubsub.ValidationResult, rejectReason) {
	local := msg.Local || from == n.host.ID()
	if kind == kindTxs && !local {
		// Size first, then the sender's token bucket, before any decoding.
		if len(msg.GetData()) > min(n.cfg.MaxMessageSize, MaxTransactionEnvelopeSize) {
			return pubsub.ValidationReject, reasonOversize
		}
		switch n.txLimit.allow(from, time.Now()) {
		case limitIgnore:
			return pubsub.ValidationIgnore, reasonRateLimited
		case limitStrike:
			return pubsub.ValidationIgnore, reasonStrike
		}
	}
	p, reason := checkEnvelope(msg.GetData(), kind, n.genesis, n.cfg.MaxMessageSize)
	if reason != reasonNone {
		return pubsub.ValidationReject, reason
	}
	msg.ValidatorData = p
	if local {
		return pubsub.ValidationAccept, reasonNone
	}
	if !n.enter() {
		return pubsub.ValidationIgnore, reasonNone
	}
	defer n.leave()
	if p.tx != nil {
		return n.handleTx(ctx, from, p.tx)
	}
	var v Verdict
	switch {
	case p.vote != nil:
		v = n.gossip.HandleVote(ctx, from, *p.vote)
	case p.cert != nil:
		v = n.gossip.HandleCertificate(ctx, from, *p.cert)
	default:
		v = n.gossip.HandleBlock(ctx, from, p.block)
	}
	switch v {
	case Accept:
		return pubsub.ValidationAccept, reasonNone
	case Reject:
		return pubsub.ValidationReject, reasonNone
	default:
		return pubsub.ValidationIgnore, reasonNone
	}
}

// PublishVote gossips a signed vote.
func (n *Network) PublishVote(ctx context.Context, v checkpoint.SignedVote) error {
	return n.publish(ctx, kindVotes, &flarepb.Envelope{
		Version: EnvelopeVersion,
		Payload: &flarepb.Envelope_Vote{Vote: checkpoint.VoteToPB(v)},
	})
}

// PublishCertificate gossips a certificate.
func (n *Network) PublishCertificate(ctx context.Context, c checkpoint.Certificate) error {
	return n.publish(ctx, kindCerts, &flarepb.Envelope{
		Version: EnvelopeVersion,
		Payload: &flarepb.Envelope_Certificate{Certificate: checkpoint.CertificateToPB(c)},
	})
}

// PublishBlock gossips a block.
func (n *Network) PublishBlock(ctx context.Context, b *flarepb.Block) error {
	if b == nil {
		return fmt.Errorf("publish blocks: nil block")
	}
	return n.publish(ctx, kindBlocks, &flarepb.Envelope{
		Version: EnvelopeVersion,
		Payload: &flarepb.Envelope_Block{Block: b},
	})
}

// publish encodes env and publishes it on kind's topic. The local validator
// runs the structural checks, so a malformed message fails here.
func (n *Network) publish(ctx context.Context, kind topicKind, env *flarepb.Envelope) error {
	data, err := proto.Marshal(env)
	if err != nil {
		return fmt.Errorf("publish %s: encode: %w", kind, err)
	}
	return n.publishData(ctx, kind, data)
}

// publishData publishes an encoded envelope on kind's topic.
func (n *Network) publishData(ctx context.Context, kind topicKind, data []byte) error {
	n.mu.Lock()
	t, closed := n.topics[kind], n.closed
	n.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case t == nil:
		return ErrNotStarted
	}
	limit := n.cfg.MaxMessageSize
	if kind == kindTxs {
		limit = min(limit, MaxTransactionEnvelopeSize)
	}
	if len(data) > limit {
		return fmt.Errorf("publish %s: %w: %d bytes, limit %d", kind, ErrMessageTooLarge, len(data), limit)
	}
	if err := t.Publish(ctx, data); err != nil {
		return fmt.Errorf("publish %s: %w", kind, err)
	}
	return nil
}

// stats counts validation outcomes by topic, result and reject reason.
type stats struct {
	mu     sync.Mutex
	counts map[string]uint64
}

func resultName(r pubsub.ValidationResult) string {
	switch r {
	case pubsub.ValidationAccept:
		return "accept"
	case pubsub.ValidationReject:
		return "reject"
	default:
		return "ignore"
	}
}

func statKey(kind topicKind, res pubsub.ValidationResult, reason rejectReason) string {
	k := kind.String() + "/" + resultName(res)
	if reason != reasonNone {
		k += "/" + string(reason)
	}
	return k
}

func (s *stats) record(kind topicKind, res pubsub.ValidationResult, reason rejectReason) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts = make(map[string]uint64)
	}
	s.counts[statKey(kind, res, reason)]++
}

func (s *stats) get(kind topicKind, res pubsub.ValidationResult, reason rejectReason) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[statKey(kind, res, reason)]
}

// GossipCount is how many messages of one topic got one validation verdict
// for one reason (Reason empty: no particular reason, e.g. accepted).
type GossipCount struct {
	Topic, Verdict, Reason string
	Count                  uint64
}

// GossipCounts returns the gossip validation counters, sorted by topic,
// verdict and reason.
func (n *Network) GossipCounts() []GossipCount {
	n.stats.mu.Lock()
	defer n.stats.mu.Unlock()
	out := make([]GossipCount, 0, len(n.stats.counts))
	for k, c := range n.stats.counts {
		parts := strings.SplitN(k, "/", 3)
		gc := GossipCount{Topic: parts[0], Count: c}
		if len(parts) > 1 {
			gc.Verdict = parts[1]
		}
		if len(parts) > 2 {
			gc.Reason = parts[2]
		}
		out = append(out, gc)
	}
	slices.SortFunc(out, func(a, b GossipCount) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), strings.Compare(a.Verdict, b.Verdict), strings.Compare(a.Reason, b.Reason))
	})
	return out
}

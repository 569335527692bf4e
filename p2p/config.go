package p2p

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/protocol"
	"go.uber.org/zap"

	"github.com/flarechain/flare-node/consensus/checkpoint"
)

// Protocol constants.
const (
	// EnvelopeVersion is the only gossip envelope version this node accepts.
	EnvelopeVersion = 1
	// SyncVersion is the version of sync requests and responses.
	SyncVersion = 1

	// DefaultMaxMessageSize bounds an encoded gossip envelope when
	// Config.MaxMessageSize is 0.
	DefaultMaxMessageSize = 256 << 10
	// MaxTransactionEnvelopeSize bounds an encoded envelope on the
	// transactions topic (a v1 transaction is at most tx.MaxEncodedSize =
	// 256 bytes; its envelope adds 5). It applies whatever
	// Config.MaxMessageSize says.
	MaxTransactionEnvelopeSize = 512
	// DefaultMaxPeers is the peer limit when Config.MaxPeers is 0.
	DefaultMaxPeers = 50

	// MaxBlocksPerRequest is the most blocks one sync response carries;
	// larger requests are clamped.
	MaxBlocksPerRequest = 128
	// MaxCertificatesPerRequest is the most certificates one sync response
	// carries; larger requests are clamped.
	MaxCertificatesPerRequest = 256
	// MaxVotesPerRequest is the most votes one votes-by-validator response
	// carries; larger requests are clamped (engine.VotesPerRequest).
	MaxVotesPerRequest = 64
	// MaxBlocksByHashPerRequest is the most blocks one blocks-by-hash
	// response carries; larger requests are clamped
	// (engine.BlocksByHashPerRequest).
	MaxBlocksByHashPerRequest = 32
	// MaxSyncRequestSize bounds an encoded SyncRequest.
	MaxSyncRequestSize = 1 << 10
	// MaxSyncResponseSize bounds an encoded SyncResponse to a blocks,
	// blocks-by-hash or certificates request. A server stops adding blocks
	// (certificates) to a response before it would exceed it; the client
	// asks again for the rest.
	MaxSyncResponseSize = 16 << 20
	// MaxStatusResponseSize bounds an encoded SyncResponse to a status
	// request (a status encodes in under 200 bytes). It is also the bound
	// of an error response, whatever the request.
	MaxStatusResponseSize = 4 << 10
	// MaxCertificateEncodedSize bounds the encoding of a certificate of at
	// most checkpoint.MaxCertificateSignatures signatures: 160 bytes of
	// genesis hash, set id and checkpoints, and 74 bytes per signature
	// (field tag, length, validator index, 64-byte signature).
	MaxCertificateEncodedSize = 160 + 74*checkpoint.MaxCertificateSignatures
	// MaxFinalityProofResponseSize bounds an encoded SyncResponse to a
	// finality-proof request: two certificates, at most
	// checkpoint.MaxHandOffs hand-off certificates and 1 KiB of framing.
	MaxFinalityProofResponseSize = (2+checkpoint.MaxHandOffs)*MaxCertificateEncodedSize + 1<<10
	// MaxVoteEncodedSize bounds the encoding of one vote (211 bytes at
	// most, with its field tag and length).
	MaxVoteEncodedSize = 256
	// MaxVotesResponseSize bounds an encoded SyncResponse to a
	// votes-by-validator request: MaxVotesPerRequest votes and 1 KiB of
	// framing.
	MaxVotesResponseSize = MaxVotesPerRequest*MaxVoteEncodedSize + 1<<10
)

// Sentinel errors.
var (
	// ErrInvalidConfig: the configuration cannot be used.
	ErrInvalidConfig = errors.New("invalid p2p config")
	// ErrNotStarted: Publish or a request before Start.
	ErrNotStarted = errors.New("p2p network not started")
	// ErrAlreadyStarted: Start called twice.
	ErrAlreadyStarted = errors.New("p2p network already started")
	// ErrClosed: the network was closed.
	ErrClosed = errors.New("p2p network closed")
	// ErrMessageTooLarge: an encoded message exceeds its size limit.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrRemote: the peer answered a sync request with an error.
	ErrRemote = errors.New("peer answered with an error")
	// ErrBadResponse: the peer's sync response violates the protocol.
	ErrBadResponse = errors.New("invalid sync response")
	// ErrNodeKey: the node key file cannot be used.
	ErrNodeKey = errors.New("invalid node key file")
	// ErrListen: a listen address could not be bound (typically the port is
	// in use by another process). New wraps the operating system's error and
	// names the address; nothing is written to disk in that case.
	ErrListen = errors.New("cannot listen")
)

// DefaultListenAddrs are the addresses a node listens on when no listen
// address is configured: every IPv4 interface on TCP port.
func DefaultListenAddrs(port int) []string {
	return []string{fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", port)}
}

// Config configures a Network.
type Config struct {
	// ListenAddrs are multiaddrs to listen on; empty means
	// /ip4/0.0.0.0/tcp/<Port>.
	ListenAddrs []string
	// Port is the TCP port used when ListenAddrs is empty; 0 picks a random
	// free port.
	Port int
	// Bootnodes are multiaddrs ending in /p2p/<peer-id>. They seed peer
	// discovery: they are dialled (with backoff) while the node has fewer
	// peers than its target, and seed the DHT. Their configured addresses
	// are always dialable, whatever AllowPrivateIP says.
	Bootnodes []string
	// AllowPrivateIP lets the node dial discovered addresses that are not
	// publicly routable (loopback, RFC 1918, link-local, unique local, ...).
	// When false only public addresses learned from peers are dialled and
	// only public addresses enter the DHT; configured bootnode addresses
	// are dialled either way.
	AllowPrivateIP bool
	// MDNS announces the node on the local network and dials peers of the
	// same chain found there (service name MDNSServiceName(Genesis)). It is
	// started only when at least one listen address is not a loopback
	// address (a loopback-only node has nothing to announce).
	MDNS bool
	// AddressBookPath is the JSON file in which peers that completed a
	// handshake on this chain's protocols are remembered across restarts;
	// empty disables the address book.
	AddressBookPath string
	// NodeKeyPath is the persistent libp2p identity, created with mode 0600
	// when missing. Empty means an ephemeral identity (tests, tools).
	NodeKeyPath string
	// Genesis namespaces topics and protocol ids, and is the chain identity
	// checked on every gossip payload.
	Genesis checkpoint.Hash
	// MaxMessageSize bounds an encoded gossip envelope; 0 means
	// DefaultMaxMessageSize.
	MaxMessageSize int
	// MaxPeers bounds connected peers (resource manager and connection
	// manager limits); 0 means DefaultMaxPeers.
	MaxPeers int
	// Logger receives the network's logs; nil discards them.
	Logger *zap.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Genesis.IsZero() {
		return c, fmt.Errorf("%w: genesis hash is zero", ErrInvalidConfig)
	}
	if c.Port < 0 || c.Port > 65535 {
		return c, fmt.Errorf("%w: port %d", ErrInvalidConfig, c.Port)
	}
	if c.MaxMessageSize < 0 || c.MaxPeers < 0 {
		return c, fmt.Errorf("%w: negative limit", ErrInvalidConfig)
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxMessageSize < 1<<10 {
		return c, fmt.Errorf("%w: max message size %d below 1 KiB", ErrInvalidConfig, c.MaxMessageSize)
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = DefaultListenAddrs(c.Port)
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c, nil
}

func namespace(genesis checkpoint.Hash) string {
	return "/flare/" + hex.EncodeToString(genesis[:])
}

// BlocksTopic returns the gossip topic of blocks: /flare/<genesis hex>/blocks/1.
func BlocksTopic(genesis checkpoint.Hash) string { return namespace(genesis) + "/blocks/1" }

// VotesTopic returns the gossip topic of checkpoint votes: /flare/<genesis hex>/votes/1.
func VotesTopic(genesis checkpoint.Hash) string { return namespace(genesis) + "/votes/1" }

// CertificatesTopic returns the gossip topic of checkpoint certificates:
// /flare/<genesis hex>/certs/1.
func CertificatesTopic(genesis checkpoint.Hash) string { return namespace(genesis) + "/certs/1" }

// DHTProtocolPrefix returns the Kademlia protocol prefix /flare/<genesis hex>;
// the DHT protocol id is DHTProtocolID.
func DHTProtocolPrefix(genesis checkpoint.Hash) protocol.ID { return protocol.ID(namespace(genesis)) }

// DHTProtocolID returns the Kademlia protocol id: /flare/<genesis hex>/kad/1.0.0.
func DHTProtocolID(genesis checkpoint.Hash) protocol.ID {
	return DHTProtocolPrefix(genesis) + "/kad/1.0.0"
}

// MDNSServiceName returns the mDNS (DNS-SD) service name of the chain:
// _flare-<first 16 bytes of the genesis hash in hex>._udp (a DNS label holds
// at most 63 bytes, so the full hash does not fit).
func MDNSServiceName(genesis checkpoint.Hash) string {
	return "_flare-" + hex.EncodeToString(genesis[:16]) + "._udp"
}

// SyncProtocolID returns the sync stream protocol id: /flare/<genesis hex>/sync/1.
func SyncProtocolID(genesis checkpoint.Hash) protocol.ID {
	return protocol.ID(namespace(genesis) + "/sync/1")
}

// TransactionsTopic returns the gossip topic of signed transactions:
// /flare/<genesis hex>/txs/1.
func TransactionsTopic(genesis checkpoint.Hash) string { return namespace(genesis) + "/txs/1" }

// topicKind is one of the four gossip topics.
type topicKind int

const (
	kindBlocks topicKind = iota
	kindVotes
	kindCerts
	kindTxs
	numKinds
)

func (k topicKind) String() string {
	switch k {
	case kindBlocks:
		return "blocks"
	case kindVotes:
		return "votes"
	case kindCerts:
		return "certs"
	case kindTxs:
		return "txs"
	default:
		return "unknown"
	}
}

func topicName(genesis checkpoint.Hash, k topicKind) string {
	switch k {
	case kindBlocks:
		return BlocksTopic(genesis)
	case kindVotes:
		return VotesTopic(genesis)
	case kindTxs:
		return TransactionsTopic(genesis)
	default:
		return CertificatesTopic(genesis)
	}
}

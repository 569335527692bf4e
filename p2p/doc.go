// Package p2p is the networking layer of flare-node: a libp2p host with a
// persistent identity, gossipsub topics for blocks, checkpoint votes and
// checkpoint certificates, and a request/response protocol that lets a node
// catch up on blocks and certificates it missed.
//
// # Host
//
// New builds a TCP-only libp2p host (Noise, yamux) with the persistent node
// key of Config.NodeKeyPath, connection limits enforced by libp2p's resource
// manager and a connection manager, and a connection gater that only lets the
// host dial the configured bootnodes at their configured addresses. There is
// no NAT port mapping, no relay, no mDNS, no DHT and no peer exchange: the
// node never dials an address it was not given. Bootnodes are redialled with
// exponential backoff whenever their connection drops, until Close.
//
// # Gossip
//
// Start joins three gossipsub topics namespaced by the genesis hash:
//
//	/flare/<genesis hex>/blocks/1
//	/flare/<genesis hex>/votes/1
//	/flare/<genesis hex>/certs/1
//
// Every message is a protobuf flarepb.Envelope (version 1). The router runs
// without pubsub signatures or author fields (StrictNoSign): authenticity
// comes from the ed25519 signatures inside the payload, which the node
// verifies. Message ids are the BLAKE2b-256 hash of the message bytes.
//
// One topic validator per topic runs the cheapest checks first: size,
// protobuf decoding, envelope version, payload type against the topic,
// genesis hash of the payload, shape decoding (checkpoint.VoteFromPB,
// checkpoint.CertificateFromPB, block header field lengths), and only then
// the node's GossipHandler, which verifies and applies the message inside
// the validator. Its Verdict maps to pubsub's accept / ignore / reject:
// rejected messages are dropped, not forwarded, and count as invalid message
// deliveries in the sender's gossipsub score; ignored messages are dropped
// without penalty. Messages the node publishes itself are accepted without
// calling the handler.
//
// # Sync
//
// The stream protocol /flare/<genesis hex>/sync/1 carries exactly one
// uvarint-length-prefixed flarepb.SyncRequest and one length-prefixed
// flarepb.SyncResponse per stream: a status handshake, blocks by range (at
// most MaxBlocksPerRequest) and certificates by range (at most
// MaxCertificatesPerRequest). The wire format is specified in docs/wire.md.
package p2p

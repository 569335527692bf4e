// Package p2p is the networking layer of flare-node: a libp2p host with a
// persistent identity, gossipsub topics for blocks, checkpoint votes,
// checkpoint certificates and transactions, and a request/response protocol that lets a node
// catch up on blocks and certificates it missed.
//
// # Host
//
// New builds a TCP-only libp2p host (Noise, yamux, no SO_REUSEPORT) with the
// persistent node key of Config.NodeKeyPath, connection limits enforced by
// libp2p's resource manager and a connection manager, and a connection gater
// that applies the dial policy: configured bootnode addresses are always
// dialable; learned addresses must be TCP, not unspecified, and publicly
// routable unless Config.AllowPrivateIP. New binds every listen address
// before it writes a newly generated node key; a bind failure is ErrListen.
// There is no NAT port mapping and no relay.
//
// # Discovery
//
// Start runs a Kademlia DHT in server mode under the chain's protocol prefix
// (/flare/<genesis hex>/kad/1.0.0; providers and values disabled: it only
// finds peers), seeded by the bootnodes and the address book. A connector
// loop dials known peers (bootnodes, address book, DHT, identify, mDNS) with
// per-peer exponential backoff until the node has targetPeers connections
// (4/5 of MaxPeers, the connection manager's low water mark) or has dialled
// half of them itself (the rest is left to inbound connections), and runs
// random DHT walks while it has fewer. Peers that complete identify
// listing the chain's sync protocol are kept in the address book
// (Config.AddressBookPath, JSON, written atomically, at most
// MaxAddressBookPeers). With Config.MDNS, and a listen address that is not
// loopback, the node also announces itself and finds peers over mDNS under
// MDNSServiceName. gossipsub protects the peers of every topic mesh in the
// connection manager (its tag tracer), so trimming never cuts mesh links.
// docs/network.md describes all of it.
//
// # Gossip
//
// Start joins four gossipsub topics namespaced by the genesis hash:
//
//	/flare/<genesis hex>/blocks/1
//	/flare/<genesis hex>/votes/1
//	/flare/<genesis hex>/certs/1
//	/flare/<genesis hex>/txs/1
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
// The transactions topic (envelopes of at most MaxTransactionEnvelopeSize
// bytes holding a canonical tx encoding) checks the sender's token bucket
// (DefaultTxRate, DefaultTxBurst; sustained excess earns the sender strikes
// in its application-specific score, see DefaultTxExcessReject) right after
// the size, before decoding; it has its
// own smaller validation concurrency and at most a few concurrent
// HandleTransaction calls, and score parameters that earn at most +1, so a
// transaction flood cannot delay votes, certificates and blocks much nor buy
// a peer score (docs/wire.md, "Transactions topic").
//
// # Sync
//
// The stream protocol /flare/<genesis hex>/sync/1 carries exactly one
// uvarint-length-prefixed flarepb.SyncRequest and one length-prefixed
// flarepb.SyncResponse per stream: a status handshake, blocks by range (at
// most MaxBlocksPerRequest) and certificates by range (at most
// MaxCertificatesPerRequest). The wire format is specified in docs/wire.md.
package p2p

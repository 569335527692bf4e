// Package engine is the deterministic core of a flare-node: everything a
// node decides, without the network transport, the timers or the process
// around it. It owns the chain (consensus/asf) and the finality gadget
// (consensus/finality) and decides:
//
//   - block import from gossip and sync (verdicts for the gossip layer, one
//     block per authority and slot, unknown parents trigger a sync);
//   - block production in the validator's PPFA slots, only on a head that is
//     known current and that contains the finalized checkpoint;
//   - catch-up: a status handshake with every peer, blocks by range,
//     certificates by range from the finalized checkpoint, and — when the
//     peer pruned those — a finality proof ("warp") that is verified and
//     jumped to;
//   - when to vote: the gadget votes on the best chain's latest checkpoint,
//     paused while catching up and while a fresh signer record is being
//     initialised (catch up first, then listen two checkpoint intervals for
//     votes signed with the local key, then set the record's watermarks
//     above everything seen);
//   - what follows justification and finality: fork choice moves to the
//     justified checkpoint, finalized blocks are marked final with their
//     finality proof kept in the chain database, and a gadget finality that
//     contradicts the chain raises a persisted alarm.
//
// The engine is driven through its methods (OnSlot, OnBlock, OnVote,
// OnCertificate, OnPeerConnected, OnResponse, Tick, Maintenance) and acts
// on the world only through the injected Network (publish, request) and the
// databases. Time comes from the injected Clock (the optional Metrics hook
// alone measures wall-clock durations, for the node's metrics; no decision
// reads them). The node package drives it
// with libp2p and real timers; integration/sim drives many engines in one
// goroutine with a simulated network and clock, seed by seed.
//
// All methods are safe for concurrent use: they are serialized by one
// mutex (the Serve* methods that answer peers only read and do not take
// it).
package engine

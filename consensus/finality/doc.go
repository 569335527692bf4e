// Package finality implements ASF checkpoint finality for FlareChain: the
// CheckpointFinality gadget, its checkpoint database interface
// (CheckpointStorage), persistence settings and the slashing-protected
// signer (SafeSigner).
//
// Every checkpoint interval I, the block at height c*I is checkpoint c;
// genesis is checkpoint 0, justified and finalized by definition. A
// validator whose best chain reaches a checkpoint block that descends from
// the latest justified checkpoint J it knows signs the link J -> c (a
// Casper-FFG style vote) through SafeSigner, which refuses any vote that
// would be slashable against its own persisted history and persists the new
// record before the signature is released. When a quorum of
// floor(2n/3)+1 distinct validators signed the identical link and its source
// is justified, the target becomes justified and the votes form a
// certificate anyone can re-verify. A certificate whose target directly
// follows its source (c_t = c_s + 1) finalizes the source and all its
// ancestors; finality never moves backwards.
//
// # Core and driver
//
// The rules live in Core, a deterministic state machine in the style of
// etcd-raft's RawNode: it performs no I/O and reads no clock; each input
// (the best chain's latest checkpoint, a vote, a certificate, a finality
// proof, a tick with the time) updates its memory and accumulates a Ready:
// what to persist (halts, evidence, certificates with the pointers they
// raise, votes), at most one own vote to sign, and the messages and events
// that may only leave once all of that is durable. CheckpointFinality is
// the driver: it serializes calls, verifies signatures outside its lock,
// performs each Ready in that order (signing through SafeSigner, whose
// record is synced before the signature exists), delivers broadcasts and
// observer events afterwards, and stops for good on a storage failure.
//
// The gadget is fed by the node: the best chain's latest checkpoint
// (OnCheckpointBlock), votes and certificates from gossip or sync (OnVote,
// OnCertificate, which return a Verdict for the gossip layer), finality
// proofs from catch-up (ApplyFinalityProof) and a periodic Tick and
// PerformPeriodicMaintenance driven by an injected Clock. Errors returned
// by these methods are local failures (storage) the node treats as fatal;
// bad input is only ever a Verdict.
//
// Memory is bounded without a finality horizon: each validator's newest
// VotesPerValidator votes are held, votes more than FutureWindow above the
// best known checkpoint (not above finality) are ignored, and pending
// certificates and justified checkpoints are capped, so however long
// finality stalls, an honest quorum that comes back finalizes within two
// checkpoints.
//
// Misbehaviour is recorded, not trusted: double and surround votes of a peer
// are stored as evidence and the offender is counted once; a valid
// certificate that contradicts the finalized chain (names another block at
// a finalized number, or jumps over the finalized checkpoint, surrounding
// the link that finalized it) is stored as conflicting-finality evidence
// and stops this node from voting (Halted), and so does a vote signed with
// our own key that our signer record does not know (another instance
// running with the same key). Alarms are persisted as halts: they survive
// restarts and never lift by themselves.
//
// The vote counting itself lives in the subpackage tally. The protocol and
// its safety argument are written down in docs/protocol.md.
package finality

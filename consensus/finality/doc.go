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
// The gadget is fed by the node: checkpoint blocks imported on the best
// chain (OnCheckpointBlock), votes and certificates from gossip or sync
// (OnVote, OnCertificate, which return a Verdict for the gossip layer) and a
// periodic Tick and PerformPeriodicMaintenance driven by an injected Clock.
// Errors returned by these methods are local failures (storage) the node
// treats as fatal; bad input is only ever a Verdict.
//
// Misbehaviour is recorded, not trusted: double and surround votes of a peer
// are stored as evidence and the offender is counted once; a valid
// certificate that contradicts the finalized chain is stored as
// conflicting-finality evidence and stops this node from voting (Halted),
// and so does a vote signed with our own key that our signer record does not
// know (another instance running with the same key).
//
// The vote counting itself lives in the subpackage tally. The protocol and
// its safety argument are written down in docs/protocol.md.
package finality

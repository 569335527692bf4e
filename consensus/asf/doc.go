// Package asf is the block side of FlareChain consensus: the block format,
// slot-based proposer selection (PPFA: the authority at index slot mod n
// proposes in slot s), block production, the persistent chain database and
// the fork-choice rule ASF checkpoint finality relies on.
//
// # Blocks
//
// A block header is hashed and signed over fixed-layout signing bytes (see
// Header.SigningBytes); protobuf (wire/flarepb) is only the transport and
// storage encoding. The genesis block is derived from the chain spec: it
// commits to the spec hash in its body root and carries no signature.
//
// # Chain database
//
// Chain keeps every imported block in its own Pebble database, together with
// the set of chain tips, a canonical number->hash index of the best chain and
// the latest justified and finalized checkpoints, so that opening the
// database reads a handful of keys and never scans the chain. Every state
// change (import, justification, finalization) is one synced batch: once
// Import returns, the block survives a crash.
//
// # One block per authority per slot
//
// The chain database indexes the first block imported for each (proposer,
// slot) above the finalized block. A different, validly signed block for a
// taken pair is an equivocation: both headers are stored once as evidence
// (BlockEvidence). Import (the gossip path) keeps the second version — the
// one the evidence names — as a side branch (stored, reported with
// ErrEquivocation so that it is not relayed), so a child built on it attaches
// without a sync round, and refuses third and later versions;
// ImportSynced (the sync path) imports every version, so a node can follow
// the half of the network that built on any of them. At most MaxTips tips are
// kept: a new branch evicts the tips worth least, or is refused
// (ErrTipLimit) when it is worth least itself. The chain database also keeps
// the latest verified finality proof (StoreFinalityProof).
//
// # Fork choice
//
// The best chain is the longest chain that contains the latest justified
// checkpoint block; among equally long ones the tip with the lower slot wins,
// then the lower block hash (checkpoint.BestChain, checkpoint.Tip.Beats). Checkpoint c is the block at height
// c*checkpoint_interval; checkpoint 0 is the genesis block. A finalized
// checkpoint is never reverted: blocks at or below its height that are not
// already known, and blocks that do not descend from it, are rejected, and
// forks that do not descend from it are pruned when it is set.
package asf

// Package sim is a deterministic simulation of a whole flare-node network
// in one goroutine, in the style of FoundationDB's simulation testing and
// TigerBeetle's VOPR: every node runs the real code — the engine
// (node/engine) with its import validation, PPFA production, fork choice
// and catch-up logic, the finality core and driver with SafeSigner, the
// chain database and the checkpoint database on Pebble's crashable
// in-memory file system — and only the clock and the network are
// simulated.
//
// A run is fully determined by its seed: the chain parameters, the fault
// schedule (message delays and drops, duplicates, reordering, partitions
// including one-way ones, crashes that lose every unsynced write and
// restarts, outages longer than the checkpoint retention, late joiners,
// purge-chain, clock skew) and the byzantine validators (equivocating
// proposers, double and surround voters, a doppelganger, forged
// certificates, replayed and stale messages, blocks that break the
// transfer rules) are drawn from it, and every step is folded into a trace
// hash: the same seed gives the same hash. Every scenario carries random
// transfers (wallet.go: valid ones, invalid ones, replays, nonce gaps)
// through each node's real transaction pool and block builder.
//
// After every step the checker verifies the invariants (see check.go): no
// slashable pair signed by an honest validator, checked from everything it
// broadcast and from its persisted signer record; no two conflicting
// finalized checkpoints among honest nodes while fewer than a third
// misbehave; every honest node that holds conflicting finality halts;
// finality monotone per node across restarts; bounded memory; liveness
// once the network heals with an honest quorum up; and the finalized
// account state of every honest node equal to a reference replay of the
// finalized chain, issuance conserved (statecheck.go).
//
// Half of the random seeds (and five named scenarios) schedule authority
// set hand-offs (handoff.go): joins, leaves and rotations, joiners that
// catch up by finality proof through them, removed validators that turn
// byzantine, faults timed around the hand-offs; invariant 12
// (handoffcheck.go) checks that honest nodes hand off at the same links,
// that the certificates they hold verify with the set in force there, and
// liveness after every hand-off.
//
// Mutants (mutants.go) switch deliberately broken rules on in the real
// components, to prove the checker catches them.
//
// scripts/sim.sh runs seeds, one seed, or the mutants (see cmd/flare-sim).
package sim

package sim

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/flarechain/flare-node/consensus/asf"
	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/node/engine"
	"github.com/flarechain/flare-node/state"
)

// mutant is a deliberately broken rule in the real components.
type mutant struct {
	name     string
	doc      string
	finality finality.Mutations
	signer   finality.SignerMutations
	engine   engine.Mutations
	state    state.Mutations
	exec     execMutations
	// scenario is a named scenario that exposes the mutant quickly (the
	// mutants run also over random seeds).
	scenario string
}

// Mutants are the mutants the checker must catch.
var Mutants = []mutant{
	{name: "signer-skips-surround-check", doc: "the signer (and the core) ignore the source watermark: a vote may surround an earlier own vote",
		finality: finality.Mutations{SkipSourceCheck: true}, signer: finality.SignerMutations{SkipSourceCheck: true}, scenario: "reinstalled-validator"},
	{name: "vote-released-before-synced-write", doc: "the signer record is written after the vote is released (at the next signing)",
		signer: finality.SignerMutations{DeferRecordWrite: true}},
	{name: "quorum-one-short", doc: "a link is justified with one vote less than the quorum",
		finality: finality.Mutations{QuorumOneShort: true}},
	{name: "duplicate-signer-counted", doc: "a certificate listing one signer several times counts each listing",
		finality: finality.Mutations{AcceptDuplicateSigners: true}},
	{name: "finalize-non-consecutive", doc: "any justified source is finalized, not only by a link to the next checkpoint",
		finality: finality.Mutations{FinalizeNonConsecutive: true}},
	{name: "no-conflict-alarm", doc: "certificates that contradict finality raise no alarm",
		finality: finality.Mutations{IgnoreConflicts: true}, scenario: "conflicting-finality"},
	{name: "no-doppelganger-listen", doc: "a fresh signer record votes as soon as the node caught up, without listening for its key",
		engine: engine.Mutations{SkipDoppelgangerListen: true}, scenario: "doppelganger"},
	{name: "vote-equivocator-checkpoints", doc: "a checkpoint block of a proposer known to equivocate is voted on import, before a block builds on it",
		engine: engine.Mutations{VoteEquivocatorCheckpoints: true}, scenario: "equivocating-checkpoint-proposer"},
	{name: "halt-on-unsigned-claim", doc: "a verified finality proof above our finalized checkpoint halts the node after a peer's unsigned status claimed a conflicting finalized checkpoint, without checking the proof's ancestry",
		engine: engine.Mutations{HaltOnUnsignedClaim: true}, scenario: "keyless-liar"},
	{name: "known-blocks-count-as-progress", doc: "synced blocks that were already known count as catch-up progress (the node keeps syncing and does not vote)",
		engine: engine.Mutations{CountKnownBlocksAsProgress: true}, scenario: "keyless-far-ahead"},
	{name: "skip-stored-votes-fetch", doc: "a fresh signer record starts without asking peers for the votes of its key they store",
		engine: engine.Mutations{SkipStoredVotesFetch: true}, scenario: "reinstalled-validator"},
	{name: "skip-nonce-check", doc: "execution applies a transfer whatever its nonce (a replayed transfer executes again)",
		state: state.Mutations{SkipNonceCheck: true}, scenario: "bad-blocks"},
	{name: "skip-balance-check", doc: "execution applies a transfer its sender cannot pay for (the balance wraps around)",
		state: state.Mutations{SkipBalanceCheck: true}, scenario: "bad-blocks"},
	{name: "accept-bad-state-root", doc: "import takes the header's state root instead of comparing it with the root the body produces",
		exec: execMutations{acceptBadStateRoot: true}, scenario: "bad-blocks"},
	{name: "reapply-on-fork-switch", doc: "a block whose parent is not the best block executes on the best block's state (and the header's root is trusted; when that breaks a rule, on its parent's): the classic double apply on a fork switch",
		exec: execMutations{reapplyOnForkSwitch: true}, scenario: "fork-switch"},
	{name: "enact-on-justify", doc: "the next set takes over as soon as the old set justifies a checkpoint above the hand-off, without finalizing a hand-off link",
		finality: finality.Mutations{EnactOnJustified: true}, scenario: "handoff-partition"},
	{name: "wrong-set-certificate", doc: "after a hand-off, certificates of the previous set are verified with that set and applied",
		finality: finality.Mutations{OldSetCertificates: true}, scenario: "handoff-long-range"},
	{name: "skip-set-proof", doc: "a finality proof is accepted when its certificates verify with the set they name, without the hand-offs that lead to that set",
		finality: finality.Mutations{SkipHandOffProofs: true}, scenario: "handoff-warp"},
	{name: "removed-key-counts", doc: "after a hand-off, votes of the previous set count as votes of the current set at the same index",
		finality: finality.Mutations{CountRemovedVotes: true}, scenario: "handoff-join-leave"},
}

// execMutations are broken import rules, in a wrapper around the chain's
// executor (the chain itself stays correct).
type execMutations struct {
	// acceptBadStateRoot: the execution reports the header's state root as
	// the one the body produced (the chain's comparison always passes).
	acceptBadStateRoot bool
	// reapplyOnForkSwitch: a block whose parent is not the best block is
	// executed on the best block's state, and the header's root trusted.
	reapplyOnForkSwitch bool
}

// mutExec is the executor wrapper of an executor mutant. best is the
// node's best block as the wrapper knows it: refreshed after every step
// (world.syncPools) and advanced by the blocks it executes on it (the
// chain's lock is held during Execute, so it cannot ask the chain).
type mutExec struct {
	m       execMutations
	inner   asf.Executor
	best    asf.Header
	hasBest bool
}

func (x *mutExec) wrap(f asf.ExecutorFactory) asf.ExecutorFactory {
	return func(db *pebble.DB) (asf.Executor, error) {
		e, err := f(db)
		if err != nil {
			return nil, err
		}
		x.inner = e
		return x, nil
	}
}

func (x *mutExec) GenesisRoot() checkpoint.Hash { return x.inner.GenesisRoot() }
func (x *mutExec) WriteGenesis(w pebble.Writer, g checkpoint.Hash) error {
	return x.inner.WriteGenesis(w, g)
}
func (x *mutExec) Discard(w pebble.Writer, b checkpoint.Hash) error { return x.inner.Discard(w, b) }
func (x *mutExec) Prune(w pebble.Writer, b checkpoint.Hash) error   { return x.inner.Prune(w, b) }

func (x *mutExec) Execute(parent asf.Header, b asf.Block) (asf.Execution, error) {
	on, trust := parent, x.m.acceptBadStateRoot
	onBest := x.hasBest && parent.Hash() == x.best.Hash()
	if x.m.reapplyOnForkSwitch && x.hasBest && !onBest {
		on, trust = x.best, true
	}
	res, err := x.inner.Execute(on, b)
	if err != nil && on != parent {
		// The double apply broke a rule: this bug then falls back to the
		// parent's state (a node that refused every fork block would only
		// stall, which the liveness check catches without invariant 11).
		on, trust = parent, x.m.acceptBadStateRoot
		res, err = x.inner.Execute(on, b)
	}
	if err != nil {
		return nil, err
	}
	if onBest {
		x.best = b.Header
	}
	if trust {
		return trustedExecution{res, b.Header.StateRoot}, nil
	}
	return res, nil
}

// trustedExecution writes what the body produced and reports root.
type trustedExecution struct {
	asf.Execution
	root checkpoint.Hash
}

func (t trustedExecution) Root() checkpoint.Hash { return t.root }

// MutantNames lists the mutants.
func MutantNames() []string {
	out := make([]string, len(Mutants))
	for i, m := range Mutants {
		out[i] = m.name
	}
	return out
}

// MutantScenario returns the named scenario that exposes mutant name ("" for
// none).
func MutantScenario(name string) string { return lookupMutant(name).scenario }

func lookupMutant(name string) mutant {
	if name == "" {
		return mutant{}
	}
	for _, m := range Mutants {
		if m.name == name {
			return m
		}
	}
	panic(fmt.Sprintf("unknown mutant %q (known: %v)", name, MutantNames()))
}

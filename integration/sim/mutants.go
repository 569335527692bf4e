package sim

import (
	"fmt"

	"github.com/flarechain/flare-node/consensus/finality"
	"github.com/flarechain/flare-node/node/engine"
)

// mutant is a deliberately broken rule in the real components.
type mutant struct {
	name     string
	doc      string
	finality finality.Mutations
	signer   finality.SignerMutations
	engine   engine.Mutations
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
}

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

// Package chainspec describes a FlareChain network: its name and identity,
// the genesis timestamp, the slot duration of block production, the
// checkpoint interval of ASF finality, the ordered authority set that
// produces blocks (round robin by slot) and votes on checkpoints, and the
// scheduled hand-offs of that set to later ones (authority_changes,
// Spec.Schedule).
//
// A Spec is either one of the builtin development chains ("dev" with the
// single validator alice, "local" with alice, bob, charlie and dave) or a
// JSON file decoded strictly (unknown fields are an error). The spec's
// canonical JSON encoding (CanonicalJSON) is hashed with BLAKE2b-256 into
// the spec hash (Hash), which is the body root of the genesis block; the
// genesis block's hash is the chain identity (the "genesis hash") that every
// vote, certificate and database of the node is bound to, so two nodes agree
// on a chain exactly when their specs encode to the same canonical bytes.
// docs/wire.md ("Chain identity") specifies the encoding byte for byte.
//
// DevKey derives the well-known, publicly known development keys; they must
// never secure anything of value.
package chainspec

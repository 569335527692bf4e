// Package tx defines FlareChain accounts and transactions: the address text
// form, transaction v1 (a signed transfer), its signing bytes, hash and
// canonical encoding, and a cache of verified signatures.
//
// An address is an ed25519 public key, written everywhere (CLI, API, logs,
// chain spec) as "0x" followed by 64 lowercase hex characters. A transaction
// moves Amount from From to To, pays Fee to the block proposer and uses the
// sender's next Nonce; it is bound to one chain by its genesis hash. The
// wire format is specified in docs/wire.md ("Transactions").
//
// The package is pure: no I/O, no clock. Execution rules (nonces, balances,
// the minimum fee) live in package state; pool rules in package txpool.
package tx

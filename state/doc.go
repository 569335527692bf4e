// Package state is the account state of flare-node: balances and nonces in
// an Ethereum-compatible Merkle-Patricia "secure trie" (go-ethereum's trie
// package), the execution of block bodies of transfers on it, and the
// versioned node store in the chain database.
//
// # Accounts and trie
//
// An account is a balance and a nonce. The trie key of address a (an
// ed25519 public key) is keccak256(a); the leaf value is balance u64 BE |
// nonce u64 BE (16 bytes). Accounts are never deleted. The state root is the
// trie root; proofs (Prove, VerifyProof) are lists of RLP-encoded trie
// nodes, root first, that verify with any standard MPT library.
//
// # Execution
//
// Execute applies an encoded body on a parent root; the first failing
// transaction makes the body invalid (ErrInvalidTx wrapping a rule error and
// naming the transaction index). Checks, in order: canonical encoding
// (ErrMalformed), genesis (ErrWrongChain), fee >= MinFee (ErrFeeTooLow),
// amount+fee fits 64 bits (ErrOverflow), signature through the SigCache
// (ErrBadSignature), nonce equal to the account nonce (ErrNonceTooLow,
// ErrNonceTooHigh), balance >= amount+fee (ErrInsufficientBalance); then the
// sender pays amount+fee and its nonce increments, the recipient receives the
// amount (created when absent) and the proposer the fee (untouched when the
// fee is zero); a recipient or proposer overflow is ErrOverflow. Total
// issuance is conserved exactly. Build assembles a body from candidates with
// the same code.
//
// # Node store
//
// Nodes are stored by hash: 'N' | keccak256(node) -> refcount u32 BE |
// node. A Result's writes (Result.Write) go into the caller's batch with its
// block: the new nodes, the journal 'J' | block hash (created and dropped
// node hashes, tx hashes) and the tx index 'X' | tx hash | block hash ->
// index u32 BE.
package state

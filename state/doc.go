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
// index u32 BE. Execute reads committed nodes only, so a block's batch is
// committed before its children execute. Write, Discard, Prune and
// Syncer.Finish read-modify-write reference counts from the committed DB (or
// from w when it is an indexed batch): callers serialize them.
//
// # Versions, forks and pruning
//
// Each written block is a version. It creates the hashed nodes of its
// NodeSet (+1 reference per trie path) and drops the nodes its NodeSet's
// origins name (the parent's nodes it replaced or deleted); its journal
// keeps both lists and its tx hashes.
//
//   - Discard(B), for an abandoned block (evicted fork, or not a descendant
//     of the finalized block): -1 for each node B created, deleted at zero;
//     journal and tx index entries deleted.
//   - Prune(B), for canonical blocks below finalized - retention in
//     ascending order, after the forks off B's parent are discarded: -1 for
//     each node B dropped, deleted at zero; journal and tx index entries
//     deleted (the index covers retained blocks).
//
// Every decrement matches a distinct increment, and the creation holding a
// path of a retained state is only consumed by discarding its (retained)
// creator or by pruning a later canonical block on the retained state's own
// chain that changed the path — which cannot exist. So B's state and its
// descendants' stay complete after Prune(B); older states lose what B
// replaced. Forks that create the same nodes, identical-content blocks
// under two hashes, and nodes recreated later are separate references.
// docs/state.md has the full argument and the layout.
//
// # State sync
//
// A joiner fetches the state at a finalized root in chunks (Chunk: trie
// keys ascending from a start key, values, a range proof of the start and
// the last key, More). The serving side calls ExportChunk; the joiner:
//
//	sy, _ := db.NewSyncer(root) // starts, or resumes the staging under 'Y'
//	for {
//		start, done := sy.Next()
//		if done {
//			break
//		}
//		c := fetchFromPeer(root, start) // a peer's ExportChunk
//		if err := sy.Add(c); err != nil {
//			// ErrBadChunk: nothing changed; ask another peer
//		}
//	}
//	b := pebbleDB.NewBatch()
//	_ = sy.Finish(b, blockHash) // rebuilds the nodes, checks the root
//	_ = b.Commit(pebble.Sync)   // with the chain's own record of the block
//
// Add verifies the chunk (VerifyChunk) against the root and Next's start
// and commits the leaves with the new progress in one synced batch, so a
// sync killed at any point resumes at Next after NewSyncer. Finish rebuilds
// the trie from the staged leaves with a StackTrie, writes each node with
// one reference more and a journal under blockHash listing every node as
// created and none as dropped (so Discard(blockHash) removes the synced
// state and later prunes of descendants release what they replace), and
// deletes the staging. AbortSync deletes the staging of an abandoned sync.
package state

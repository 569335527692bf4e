// Package txpool is the transaction pool core: it admits signed transfers
// (package tx) from the API and from gossip, keeps them per sender in a
// ready queue and a future queue, offers the ready ones to the block
// proposer, and follows the best chain. It is deterministic: no goroutines,
// no I/O of its own, time from an injected Clock, state from an injected
// StateReader. One mutex makes it safe for concurrent use. The full
// description, with defaults and the sources of each rule, is docs/txpool.md.
//
// # Admission (Add, AddTx)
//
// Checks run cheapest first and the first failure is the refusal, a
// *RefusedError with a Reason from a fixed vocabulary:
//
//  1. size > tx.MaxEncodedSize                       "too large"
//  2. not the canonical encoding (tx.Decode)          "malformed"
//  3. genesis hash of another chain                   "wrong chain"
//  4. fee < Config.MinFee                             "fee too low"
//  5. nonce < the account's nonce at the head         "nonce too low" (ExpectedNonce = account nonce)
//     nonce >= account nonce + MaxPerAccount + MaxFuturePerAccount
//     "nonce too high" (ExpectedNonce = account nonce + ready count)
//  6. the hash is pooled                              "already known" (with the current Status)
//  7. signature, via the shared tx.SigCache           "bad signature"
//  8. amount+fee overflows, or the sender's pooled cost (all its pooled
//     transactions, the replaced one excluded) plus this one exceeds the
//     balance at the head                            "insufficient balance"
//  9. same (sender, nonce) pooled and fee < old*(100+PriceBumpPercent)/100
//     or fee <= old                                  "replacement underpriced"
//  10. the sender's future queue is at MaxFuturePerAccount, or the pool is
//     at MaxTxs / MaxBytes / MaxFuture and nothing may be evicted  "pool full"
//
// The signature is verified without the lock held; steps 5, 6 and 8-10 then
// run again under it. Checking the sender's whole pooled cost (not only
// this transaction's) keeps every pooled transaction fundable at the head:
// an account with balance B can never hold more than B of pending spends
// (the "overdraft"/MemPurge bugs: geth PR #28076, #33492, Nethermind #3173),
// and a replacement that drains the account is refused instead of
// invalidating the sender's later transactions (geth #21460 "hammer").
// "already known" also returns the hash and the current status, so the API
// can answer a resubmission idempotently (cosmos-sdk#3878).
//
// # Queues
//
// Per sender, the ready queue is the longest run of consecutive nonces from
// the account nonce, at most MaxPerAccount long; every other pooled
// transaction of the sender is future (a nonce gap, or an executable one
// waiting for the ready queue to drain). Invariants, checked by the tests
// after every operation: one transaction per (sender, nonce); ready queues
// contiguous from the account nonce; the sender's pooled cost <= balance;
// per-account and global caps hold; counters and byte accounting exact.
// Because of them, everything Pending returns executes in order on the
// head state.
//
// # Eviction
//
// When a new transaction would exceed MaxTxs, MaxBytes or MaxFuture, it may
// evict transactions of other senders that pay a strictly lower fee: first
// the lowest-fee future transaction, then — only if the newcomer itself
// will be ready — the lowest-fee last-nonce ready transaction of a sender
// (ties: the latest arrival goes first). A future transaction never evicts a
// ready one, since its fee is not payable until the gap fills (the
// DETER/DETER-X attacks, Besu #4525, BSC "fix txpool dos attack"); evicting
// only a sender's last ready nonce never demotes the rest of its queue
// (daeji #408); the victims are chosen before anything is removed, and the
// loop stops exactly when the room is found (tempo PR #3053). Otherwise
// "pool full". A sender never evicts itself.
//
// # Following the chain (Update)
//
// After every new best block Update gets the head state, the transactions
// of the blocks that became canonical (included) and of those that left it
// (retracted). Included ones leave silently (the caller knows them); every
// pooled account is re-read and normalized: nonces below the account nonce
// go as Invalid "nonce too low" (included elsewhere, or usurped by another
// transaction with that nonce), transactions the balance no longer covers
// (walking in nonce order) go as Invalid "insufficient balance", and the
// queues are rebuilt, emitting Promoted and Demoted. Retracted transactions
// not included again come back with the Add rules (Restored, or
// Invalid/Dropped with the refusal reason), in (sender, nonce) order; the
// global future cap is enforced once afterwards.
//
// # Events
//
// Update and Expire return, and TakeEvents drains, the events for a status
// tracker: Promoted, Demoted, Replaced (By = the new hash; Substrate's
// Usurped), Restored, Dropped (policy: "pool full", "expired", or the
// reason given to Remove) and Invalid (cannot execute: "nonce too low",
// "insufficient balance", "bad signature", ...). A transaction leaves the
// pool with exactly one of Dropped, Invalid or Replaced, or silently by
// inclusion. Events of Add and Remove wait in a buffer bounded at
// max(4096, 4·MaxTxs); overflow is counted in Stats.EventsLost.
//
// # Expiry
//
// Expire removes transactions admitted (or replaced) at least Lifetime ago
// by the clock, as Dropped "expired"; the sender's later ready
// transactions are demoted, like after Remove.
package txpool

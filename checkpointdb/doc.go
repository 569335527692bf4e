// Package checkpointdb is the Pebble (v2) database of ASF checkpoint
// finality: the signer records that keep the local validator from double
// signing, peer and own votes, certificates, the justified and finalized
// pointers, evidence of misbehaviour, persisted halts, the hand-off
// certificates of the authority sets, and the prune base.
// CheckpointDB implements finality.CheckpointStorage and the read APIs the
// node and the `flare-node checkpoints` CLI use.
//
// # Layout
//
// Keys are big-endian with a one-byte prefix per record kind; schema.go is
// the single definition (mirrored in docs/storage.md). Values are the
// protobuf codecs of package consensus/checkpoint. The schema version and the
// genesis hash are written with a synced batch on first open; a database of
// another chain or an unknown schema version refuses to open.
//
// # Durability
//
//   - StoreSignerRecord is a synced write that returns only once durable; it
//     refuses records that would move the stored one backwards.
//   - StoreCertificate writes the certificate and the raised justified and
//     finalized pointers in one synced batch; pointers never move backwards.
//   - StoreVote is unsynced (pebble.NoSync) and keeps the first vote per
//     (target, validator); Flush is a WAL sync barrier that makes every
//     earlier write durable (so does every synced write).
//   - StoreEvidence, StoreHalt and StoreHandOff are synced.
//
// A certificate holds its signers' votes: StoreCertificate deletes the stored
// votes it contains verbatim in the same synced batch, and every read
// (Votes, Restore, Status) re-expands them, so readers see the union of
// stored votes and certificate signatures while the disk holds each
// signature once.
//
// # Retention
//
// Prune keeps the last keep checkpoints at and below the finalized one and
// everything above it. It first moves a persisted prune-base marker (synced)
// and then range-deletes below it; every read ignores records below the
// marker, so a crash between the two steps leaves a consistent store.
// Evidence is kept for Options.EvidenceRetention checkpoints beyond its
// checkpoint, conflicting-finality evidence forever. Signer records, halts
// and hand-offs are never pruned.
//
// # High-water mark and halts
//
// A small file next to the directory (<path>.hwm, hwm.go) records what the
// database acknowledged: the latest finalized checkpoint and each signer
// record's highest signed target and source. StoreSignerRecord and a
// finality-raising StoreCertificate write it after their synced batch and
// before they return. Open refuses a database whose finality fell below it
// (ErrBehindHighWaterMark: lost synced writes, an older copy) and raises
// signer watermarks to it; HighWaterMark and Created tell the node what it
// found. Halts (halt.go) are persisted safety alarms, never pruned, cleared
// only by ClearHalts. Hand-offs (handoff.go, schema version 3) are the
// certificates that finalized each authority-set hand-off, one per set id,
// consecutive; they survive purge-chain. Import and export of signer records follow EIP-3076
// (export.go, docs/signer.md).
//
// # Corruption and fatal errors
//
// Open validates every retained record (Verify) and maps Pebble's corruption
// errors, undecodable records and records that contradict their keys to a
// one-line refusal wrapping ErrCorrupted; it never replaces a damaged
// database with a fresh one. Pebble's Logger.Fatalf neither exits nor panics:
// the adapter logs it at error level and records it, the write in progress
// reports it instead of success, and every later call returns it (ErrFatal),
// so the node can stop cleanly and reopen the database on restart.
package checkpointdb

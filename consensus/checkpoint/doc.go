// Package checkpoint holds the leaf types of ASF checkpoint finality that both
// the finality gadget (consensus/finality) and the checkpoint database
// (checkpointdb) use: hashes, checkpoints, votes, certificates, evidence, the
// authority set with its quorum and signature checks, finality proofs, the
// fork-choice tip order, the signer record with the voter safety rules, and
// their canonical encodings.
//
// Signatures are computed over fixed-layout signing bytes that begin with a
// domain tag (see SigningBytes); protobuf (package wire/flarepb) is only the
// transport and storage encoding. Every decoder in this package validates
// field lengths and returns ErrMalformed on anything it cannot trust.
//
// The package has no I/O and no clock.
package checkpoint

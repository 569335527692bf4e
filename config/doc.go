// Package config holds flare-node's run configuration: which chain to follow,
// where its data lives (the base path), whether and with which key the node
// validates, whether the ASF finality gadget runs, networking, logging,
// checkpoint persistence and the optional metrics listener.
//
// A Config is built in layers by cmd/flare-node: Default, then an optional
// TOML file (LoadTOML, strict: an unknown key is an error), then the command
// line flags and FLARE_* environment variables that were actually given, and
// finally Validate, which checks every field, resolves the chain
// specification into Spec and writes nothing to disk. Only after Validate
// succeeds does the node create directories.
//
// On disk a node keeps one directory per chain below its base path:
//
//	<base>/chains/<spec id>/db/chain              chain database
//	<base>/chains/<spec id>/db/checkpoints        checkpoint database
//	<base>/chains/<spec id>/network/secret_ed25519 libp2p node key
//
// The package uses only the standard library, BurntSushi/toml and chainspec.
package config

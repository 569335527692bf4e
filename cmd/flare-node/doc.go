// Command flare-node runs a FlareChain validator or full node and offers the
// operator tools around it.
//
// Without a subcommand it runs the node: the configuration is built from
// config.Default, an optional TOML file (--config), then every flag or
// FLARE_* environment variable actually given, and validated before anything
// is written to disk. Logs go to standard output (text or JSON) or to a
// rotated --log-file; standard error carries only the final "Error: ..."
// line of a failed run. --pid-file records the process id of a running node.
//
// Subcommands:
//
//	build-spec            print a chain specification as JSON
//	key generate          create a validator key (hex ed25519 seed file, mode 0600)
//	key inspect           show a validator key's public key and authority index
//	key inspect-node-key  show the libp2p peer id of a node key file
//	account new           write a fresh account key file and print its address
//	account show          an account's address; with --rpc its balance and nonce
//	tx transfer           sign a transfer, submit it to a node and follow its status
//	purge-chain           delete a chain's database, keeping the signer records
//	checkpoints list|show look into the checkpoint database of a stopped node
//	checkpoints clear-halt clear persisted safety halts after confirmation
//	signer export|import  EIP-3076-style signer record interchange
//	testnet               write keys, a chain spec and command lines for N local validators
//	version               print version, commit and Go version
//	completion bash|zsh   print a shell completion script
//
// Exit codes: 0 after a clean stop, 1 when the running node fails or a
// command fails at run time, 2 for bad input (flags, configuration, unknown
// chain, unreadable spec, a base path in use by another process, a declined
// confirmation), 130 when a second interrupt forces the exit.
package main

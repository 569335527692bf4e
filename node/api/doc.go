// Package api is the running node's read-only HTTP API: /healthz,
// /readyz, /status, /checkpoints/{n}, /checkpoints, /finality/latest,
// /evidence and /peers, all JSON but /healthz (docs/api/openapi.yaml
// describes every response). The node serves it on its metrics listener or
// on its own --rpc-addr.
//
// Handlers read the node through small interfaces declared here (Chain,
// Engine, Finality, CheckpointDB, Network), implemented by the node's
// chain, engine, finality gadget, checkpoint database and p2p network. Every
// read is a cheap accessor (atomic loads, short locks) or a bounded
// database read on a snapshot; nothing waits for the engine's work to
// finish, and a request never changes the node.
//
// Checkpoint levels are named by checkpoint.Level's String method (the one
// vocabulary of the ascending scale), never spelled out here.
package api

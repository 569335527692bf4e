// Package api is the running node's HTTP API: /healthz, /readyz, /status,
// /checkpoints/{n}, /checkpoints, /finality/latest, /evidence, /peers,
// /accounts/{address}, /blocks/{id}, POST /tx and /tx/{hash}, all JSON but
// /healthz, and /tx/{hash}/watch, a Server-Sent Events stream of a
// transaction's status (docs/api/openapi.yaml describes every response).
// The node serves it on its metrics listener or on its own --rpc-addr.
// POST /tx is the one request that changes the node (it admits a
// transaction to the pool).
//
// Handlers read the node through small interfaces declared here (Chain,
// Engine, Finality, CheckpointDB, Network), implemented by the node's
// chain, engine, finality gadget, checkpoint database and p2p network. Every
// read is a cheap accessor (atomic loads, short locks) or a bounded
// database read on a snapshot; nothing waits for the engine's work to
// finish, and no other request changes the node; a watch stream re-reads
// the status every WatchPoll and at most MaxWatchers run at once.
//
// Checkpoint levels are named by checkpoint.Level's String method (the one
// vocabulary of the ascending scale), never spelled out here.
package api

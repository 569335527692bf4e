// Package node is flare-node's composition root: the only place that wires
// the chain (consensus/asf), the ASF finality gadget (consensus/finality), the
// checkpoint database (checkpointdb) and the libp2p network bridge (p2p).
//
// Lifecycle:
//
//	New:  open the chain DB, open the checkpoint DB, restore checkpoint state,
//	      create the libp2p host (nothing runs yet).
//	Run:  start the network, then the supervised tasks under one errgroup:
//	      block production (validators), the checkpoint maintenance task
//	      (flush every FlushInterval, prune every PruneInterval; essential),
//	      the gadget tick, the finality event loop, the catch-up syncer, and
//	      the HTTP servers of the listeners New bound: /metrics (metrics.go,
//	      docs/metrics.md) and the read-only JSON API (node/api,
//	      docs/api/openapi.yaml) on the metrics listener or on --rpc-addr.
//	      Any essential task that returns, with or without an error, stops
//	      the node. A fatal storage error reported from any goroutine
//	      (node.fail) stops it as well.
//	Stop: (context cancelled or a task ended) stop producing, close the
//	      network, flush and close the checkpoint DB, close the chain DB.
//
// Run returns nil after a requested shutdown and the first error otherwise;
// cmd/flare-node turns that into exit codes 0 and 1.
package node

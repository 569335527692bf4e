package sim

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/flarechain/flare-node/consensus/checkpoint"
	"github.com/flarechain/flare-node/node/engine"
)

// Keyless peers: network endpoints without any validator key, only a
// network identity (a libp2p peer id anyone can make). They connect to
// every engine like a normal peer and answer its sync requests, but sign
// nothing: whatever they send is either unsigned (a status) or genuine data
// they relayed from the honest network. Nothing they do may halt an honest
// validator or keep it from voting (invariants 9 and 10 in
// docs/simulation.md).

// keylessBehaviour is what a keyless peer does.
type keylessBehaviour struct {
	// lieFinalized: its status claims a finalized checkpoint at or below
	// the asker's own (learnt by polling the asker first) with a random
	// hash: an unsigned claim of conflicting finality.
	lieFinalized bool
	// farAhead: its status claims best block farAheadBest.
	farAhead bool
	// relayProof: finality-proof requests get the honest network's real
	// finality proof (taken from the most finalized honest node).
	relayProof bool
	// trickle: block-range requests get one honest block (Count clamped to
	// 1): the block at the start of the range, or the one below it when the
	// honest chain has none there — by the time it arrives, just inside the
	// request time-out, the asker has it from gossip anyway.
	trickle bool
	// withholdP: the probability that a request is never answered.
	withholdP float64
	// poll: it polls every engine's status each second (as a peer may).
	poll bool
}

func (b keylessBehaviour) String() string {
	s := ""
	add := func(on bool, name string) {
		if on {
			if s != "" {
				s += "+"
			}
			s += name
		}
	}
	add(b.lieFinalized, "lie-finalized")
	add(b.farAhead, "far-ahead")
	add(b.relayProof, "relay-proof")
	add(b.trickle, "trickle")
	add(b.withholdP > 0, fmt.Sprintf("withhold(%.2f)", b.withholdP))
	add(b.poll, "poll")
	if s == "" {
		s = "unavailable"
	}
	return s
}

// farAheadBest is the best block number a far-ahead keyless peer claims.
const farAheadBest = 1 << 40

// keylessRequestTimeout is the request time-out of the simulated engines
// (node.go sets it in their Config, the engine's slot-scaled default): a
// trickling peer answers just inside it.
func (w *world) keylessRequestTimeout() time.Duration {
	return engine.RequestTimeoutFor(w.spec.SlotDuration())
}

// trickleMargin: a trickled answer arrives this long before the asker's
// time-out (its Tick runs every tickEvery, so it never fires first).
const trickleMargin = 250 * time.Millisecond

type keylessState struct {
	b keylessBehaviour
	// victims: the last status polled from each node.
	victims map[int]engine.Status
	// counters for the trace
	answered, withheld, lies int
}

// addKeyless adds a keyless peer (started by installKeyless).
func (w *world) addKeyless(b keylessBehaviour) *simNode {
	nd := w.addNode(-1, false)
	nd.name = fmt.Sprintf("n%d(keyless)", nd.id)
	nd.passive = true
	nd.keyless = &keylessState{b: b, victims: make(map[int]engine.Status)}
	return nd
}

// installKeyless adds the scenario's keyless peers, starts them now and
// starts their polling.
func installKeyless(w *world) {
	for _, b := range w.sc.keyless {
		k := w.addKeyless(b)
		w.record("%s: keyless peer %s", k.name, b)
		k.start() // the engines connect to it as they start
		if b.poll {
			var poll func()
			poll = func() {
				for _, v := range w.nodes {
					if v.eng != nil && v.up {
						w.keylessPoll(k, v, nil)
					}
				}
				w.after(time.Second, k.id, "keyless poll", poll)
			}
			w.after(time.Second, k.id, "keyless poll", poll)
		}
	}
}

// keylessPoll asks v for its status over the network and remembers it;
// then (if any) runs once the answer is in.
func (w *world) keylessPoll(k, v *simNode, then func()) {
	if !w.net.passes(k.id, v.id) {
		return
	}
	there := w.net.fate()
	if len(there) == 0 {
		return
	}
	w.after(there[0], v.id, "keyless poll", func() {
		st := v.eng.ServeStatus()
		if !w.net.passes(v.id, k.id) {
			return
		}
		back := w.net.fate()
		if len(back) == 0 {
			return
		}
		w.after(back[0], k.id, "keyless poll answer", func() {
			k.keyless.victims[v.id] = st
			if then != nil {
				then()
			}
		})
	})
}

// keylessRequest: engine node from asked keyless peer k (request id).
func (w *world) keylessRequest(from, k *simNode, id uint64, req engine.Request) {
	fates := w.net.fate()
	if len(fates) == 0 {
		w.record("%s -> %s request %d %s: dropped", from.name, k.name, id, req.Kind)
		return
	}
	gen, sentAt := from.gen, w.now
	ks := k.keyless
	w.after(fates[0], k.id, "keyless request", func() {
		if ks.b.withholdP > 0 && w.krng.Float64() < ks.b.withholdP {
			ks.withheld++
			w.record("%s withholds the answer to %s's request %d %s", k.name, from.name, id, req.Kind)
			return
		}
		switch req.Kind {
		case engine.ReqStatus:
			answer := func() {
				w.keylessRespond(k, from, gen, id, engine.Response{Status: w.keylessStatus(k, from)}, time.Time{})
			}
			if ks.b.lieFinalized {
				// Learn the asker's finality first (well inside its
				// time-out), then claim a conflicting one at or below it.
				w.keylessPoll(k, from, answer)
				return
			}
			answer()
		case engine.ReqFinalityProof:
			resp := engine.Response{Unavailable: true}
			if src := w.honestSource(false); ks.b.relayProof && src != nil {
				resp = src.eng.Serve(w.ctx, engine.Request{Kind: engine.ReqFinalityProof})
			}
			w.keylessRespond(k, from, gen, id, resp, time.Time{})
		case engine.ReqBlocks:
			if !ks.b.trickle {
				w.keylessRespond(k, from, gen, id, engine.Response{Unavailable: true}, time.Time{})
				return
			}
			// One block, arriving just inside the time-out the asker's
			// engine uses.
			w.keylessRespond(k, from, gen, id, w.trickleBlocks(req), sentAt.Add(w.keylessRequestTimeout()-trickleMargin))
		default:
			// Certificates, votes by validator, blocks by hash: it stores
			// nothing.
			w.keylessRespond(k, from, gen, id, engine.Response{Unavailable: true}, time.Time{})
		}
	})
}

// keylessRespond sends resp from k to the asker (subject to the network);
// at, when set, pins the arrival time (a trickled answer).
func (w *world) keylessRespond(k, to *simNode, gen int, id uint64, resp engine.Response, at time.Time) {
	if !w.net.passes(k.id, to.id) {
		return
	}
	back := w.net.fate()
	if len(back) == 0 {
		return
	}
	k.keyless.answered++
	when := w.now.Add(back[0])
	if !at.IsZero() {
		when = at
	}
	w.schedule(when, to.id, "keyless response", func() {
		if to.gen != gen || to.eng == nil {
			return
		}
		if err := to.eng.OnResponse(w.ctx, engine.PeerID(k.name), id, resp); err != nil {
			to.failed(err)
		}
	})
}

// keylessStatus is the status k claims to asker: the most finalized honest
// node's, with its lies on top.
func (w *world) keylessStatus(k, asker *simNode) engine.Status {
	var st engine.Status
	if src := w.honestSource(false); src != nil {
		st = src.eng.ServeStatus()
	} else {
		st.Genesis = w.genesis
	}
	ks := k.keyless
	if vs, ok := ks.victims[asker.id]; ks.b.lieFinalized && ok && vs.Finalized.Number > 0 {
		n := vs.Finalized.Number
		if n > 1 && w.krng.IntN(3) == 0 {
			n-- // at or below the asker's
		}
		st.Finalized = checkpoint.Checkpoint{Number: n, Hash: w.randomHash()}
		if st.Justified.Number < n {
			st.Justified = st.Finalized
		}
		ks.lies++
		w.record("%s tells %s: finalized %s (its own: %s)", k.name, asker.name, st.Finalized, vs.Finalized)
	}
	if ks.b.farAhead {
		st.Best = checkpoint.Checkpoint{Number: farAheadBest, Hash: w.randomHash()}
	}
	return st
}

// trickleBlocks is a trickling peer's answer to a block-range request: one
// honest block.
func (w *world) trickleBlocks(req engine.Request) engine.Response {
	src := w.honestSource(true)
	if src == nil {
		return engine.Response{Unavailable: true}
	}
	blocks, unavailable := src.eng.ServeBlocks(req.Start, 1)
	if (unavailable || len(blocks) == 0) && req.Start > 1 {
		blocks, unavailable = src.eng.ServeBlocks(req.Start-1, 1)
	}
	if unavailable || len(blocks) == 0 {
		return engine.Response{Unavailable: true}
	}
	return engine.Response{Blocks: blocks[:1]}
}

// honestSource is the up honest engine node with the highest finalized
// checkpoint (byBest: the highest best block), lowest id on a tie.
func (w *world) honestSource(byBest bool) *simNode {
	var best *simNode
	var bestN uint64
	for _, nd := range w.nodes {
		if !nd.up || !nd.honest || nd.eng == nil || nd.id == w.sc.doppelganger {
			continue
		}
		n := nd.eng.Gadget().LatestFinalized().Number
		if byBest {
			n = nd.chain.Best().Number
		}
		if best == nil || n > bestN {
			best, bestN = nd, n
		}
	}
	return best
}

func (w *world) randomHash() checkpoint.Hash {
	var h checkpoint.Hash
	for i := 0; i < len(h); i += 8 {
		binary.BigEndian.PutUint64(h[i:], w.krng.Uint64())
	}
	return h
}

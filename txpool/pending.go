package txpool

import (
	"container/heap"

	"github.com/flarechain/flare-node/tx"
)

// cursor walks one sender's ready queue.
type cursor struct {
	a    *account
	next int
}

func (c *cursor) head() *entry { return c.a.entryAt(c.next) }

// byFee orders senders by the fee of their next ready transaction, highest
// first, ties by arrival (earliest first).
type byFee []*cursor

func (h byFee) Len() int { return len(h) }
func (h byFee) Less(i, j int) bool {
	a, b := h[i].head(), h[j].head()
	if a.tx.Fee != b.tx.Fee {
		return a.tx.Fee > b.tx.Fee
	}
	return a.seq < b.seq
}
func (h byFee) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *byFee) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *byFee) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Pending returns ready transactions for a block proposal: each sender's in
// nonce order; across senders the next transaction with the highest fee
// first (ties: earliest arrival); at most max transactions and maxBytes
// canonical encoded bytes (0 or less: no limit). A sender whose next
// transaction does not fit in the remaining bytes is skipped for the rest of
// the call (its later nonces cannot go first). The transactions belong to
// the pool: do not modify them. The pool is not changed; Update removes what
// a block includes.
func (p *Pool) Pending(max, maxBytes int) []*tx.Tx {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := make(byFee, 0, len(p.accounts))
	for _, a := range p.accounts {
		if a.ready > 0 {
			h = append(h, &cursor{a: a})
		}
	}
	heap.Init(&h)
	n := p.ready
	if max > 0 && max < n {
		n = max
	}
	out := make([]*tx.Tx, 0, n)
	used := 0
	for len(h) > 0 && (max <= 0 || len(out) < max) {
		c := h[0]
		e := c.head()
		if maxBytes > 0 && used+e.size > maxBytes {
			heap.Pop(&h)
			continue
		}
		out = append(out, e.tx)
		used += e.size
		c.next++
		if c.next < c.a.ready {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return out
}

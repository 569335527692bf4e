package txpool

import (
	"fmt"
	"slices"

	"github.com/flarechain/flare-node/tx"
)

// checkLocked verifies the pool's invariants; tests and the fuzz target call
// it after every operation. It returns the first violation.
func (p *Pool) checkLocked() error {
	type key struct {
		from  tx.Address
		nonce uint64
	}
	seen := map[key]bool{}
	ready, future, size, count := 0, 0, 0, 0
	for addr, a := range p.accounts {
		if a.addr != addr {
			return fmt.Errorf("account %s filed under %s", a.addr.Short(), addr.Short())
		}
		if len(a.txs) == 0 || len(a.txs) != len(a.nonces) {
			return fmt.Errorf("account %s: %d txs, %d nonces", addr.Short(), len(a.txs), len(a.nonces))
		}
		if !slices.IsSorted(a.nonces) {
			return fmt.Errorf("account %s: nonces not sorted %v", addr.Short(), a.nonces)
		}
		if a.ready > p.cfg.MaxPerAccount || a.futures() > p.cfg.MaxFuturePerAccount {
			return fmt.Errorf("account %s: %d ready, %d future over the caps", addr.Short(), a.ready, a.futures())
		}
		if a.ready < p.cfg.MaxPerAccount && a.ready < len(a.nonces) && a.nonces[a.ready] == a.nonce+uint64(a.ready) {
			return fmt.Errorf("account %s: nonce %d is executable but future", addr.Short(), a.nonces[a.ready])
		}
		var cost uint64
		for i, n := range a.nonces {
			e, ok := a.txs[n]
			if !ok || e.tx.Nonce != n || e.tx.From != addr {
				return fmt.Errorf("account %s: nonce %d misfiled", addr.Short(), n)
			}
			if i > 0 && a.nonces[i-1] == n {
				return fmt.Errorf("account %s: nonce %d twice", addr.Short(), n)
			}
			if n < a.nonce {
				return fmt.Errorf("account %s: nonce %d below account nonce %d", addr.Short(), n, a.nonce)
			}
			k := key{addr, n}
			if seen[k] {
				return fmt.Errorf("two transactions with sender %s nonce %d", addr.Short(), n)
			}
			seen[k] = true
			if i < a.ready {
				if n != a.nonce+uint64(i) {
					return fmt.Errorf("account %s: ready queue not contiguous from %d at %d", addr.Short(), a.nonce, n)
				}
				if e.status != Ready {
					return fmt.Errorf("account %s: nonce %d in the ready queue is %v", addr.Short(), n, e.status)
				}
				ready++
			} else {
				if e.status != Future {
					return fmt.Errorf("account %s: nonce %d in the future queue is %v", addr.Short(), n, e.status)
				}
				future++
			}
			if p.byHash[e.hash] != e {
				return fmt.Errorf("transaction %s not indexed by hash", e.hash.Short())
			}
			enc := e.tx.Encode()
			d, err := tx.Decode(enc)
			if err != nil || *d != *e.tx || len(enc) != e.size || e.tx.Hash() != e.hash {
				return fmt.Errorf("transaction %s does not round-trip (%v)", e.hash.Short(), err)
			}
			if e.cost != e.tx.Amount+e.tx.Fee || e.cost < e.tx.Fee {
				return fmt.Errorf("transaction %s: cost %d", e.hash.Short(), e.cost)
			}
			if e.tx.Fee < p.cfg.MinFee || e.tx.Genesis != p.cfg.Genesis {
				return fmt.Errorf("transaction %s: fee or genesis", e.hash.Short())
			}
			cost += e.cost
			if cost < e.cost || cost > a.balance {
				return fmt.Errorf("account %s: pooled cost over balance %d", addr.Short(), a.balance)
			}
			size += e.size
			count++
		}
	}
	if count != len(p.byHash) {
		return fmt.Errorf("%d in accounts, %d by hash", count, len(p.byHash))
	}
	if ready != p.ready || future != p.future || size != p.bytes {
		return fmt.Errorf("counters ready %d/%d future %d/%d bytes %d/%d", p.ready, ready, p.future, future, p.bytes, size)
	}
	if count > p.cfg.MaxTxs || size > p.cfg.MaxBytes || future > p.cfg.MaxFuture {
		return fmt.Errorf("global caps: %d txs, %d bytes, %d future", count, size, future)
	}
	return nil
}

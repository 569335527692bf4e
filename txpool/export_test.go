package txpool

// CheckInvariants exposes checkLocked to the external tests.
func (p *Pool) CheckInvariants() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.checkLocked()
}

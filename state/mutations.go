package state

// Mutations are deliberately broken execution rules, for the network
// simulator's mutation tests (integration/sim): each must be caught by its
// invariants. They travel in Env (per Execute or Build call); the zero value,
// which production code always passes, breaks nothing; a flag is read only
// after its check failed, so a valid transfer pays nothing for it.
type Mutations struct {
	// SkipNonceCheck applies a transfer whatever its nonce (a replay or a
	// nonce gap executes; the account nonce still increments).
	SkipNonceCheck bool
	// SkipBalanceCheck applies a transfer the sender cannot pay for (the
	// balance wraps around, as an unchecked subtraction would).
	SkipBalanceCheck bool
}

package checkpoint

// FinalityProof proves a finalized checkpoint F and, optionally, a later
// justified checkpoint: Finalizing is a certificate (F, F+1) and Justified
// the certificate of the latest justified checkpoint.
type FinalityProof struct {
	Finalizing Certificate
	Justified  *Certificate
}

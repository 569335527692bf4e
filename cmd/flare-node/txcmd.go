package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/node"
	"github.com/flarechain/flare-node/node/api"
	"github.com/flarechain/flare-node/tx"
)

// waitLevels are the values of tx transfer --wait, in ascending order.
var waitLevels = []string{api.TxValidated, api.TxIncluded, api.TxJustified, api.TxFinalized}

// Polling fallback of tx transfer --wait when the watch stream breaks.
var (
	txPollInterval = 200 * time.Millisecond
	// txGoneAfter: a transaction the node does not know for that long is
	// reported dropped.
	txGoneAfter = 5 * time.Second
)

func txCommand() *cli.Command {
	return &cli.Command{
		Name:   "tx",
		Usage:  "sign and submit transactions to a node",
		Action: groupAction,
		Subcommands: []*cli.Command{
			{
				Name: "transfer",
				Usage: "sign a transfer locally, submit it to a node's POST /tx and follow its status " +
					"(prints the transaction hash, then one line per status reached with the time since submit)",
				Flags: []cli.Flag{
					chainFlag(),
					&cli.StringFlag{Name: "key", Usage: "sign with the dev key `NAME` (alice, bob, ...; dev and local chains) or the key file KEYFILE"},
					&cli.StringFlag{Name: "to", Usage: "recipient `ADDRESS` (0x and 64 hex characters)"},
					&cli.Uint64Flag{Name: "amount", Usage: "amount to transfer (`N`, a whole number)"},
					&cli.Uint64Flag{Name: "fee", Usage: "fee to pay (`N`; default: the chain spec's min_fee)"},
					&cli.Uint64Flag{Name: "nonce", Usage: "sender nonce `N` (default: the account's next nonce at the node: its nonce at the best block plus its transactions waiting in the node's pool)"},
					rpcFlag(true),
					&cli.StringFlag{Name: "wait", Value: api.TxValidated, Usage: "exit 0 once the transaction is `included`, `justified` or `finalized` (default: validated, admitted to the pool)"},
					&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "give up (exit 1) when --wait is not reached within `D`"},
				},
				Action: txTransfer,
			},
		},
	}
}

// transferArgs are the checked flags of tx transfer.
type transferArgs struct {
	spec    *chainspec.Spec
	key     ed25519.PrivateKey
	to      tx.Address
	amount  uint64
	fee     uint64
	nonce   *uint64
	rpc     *rpcClient
	wait    string
	timeout time.Duration
	warning string
}

func parseTransfer(c *cli.Context) (*transferArgs, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	for _, f := range []string{"chain", "key", "to", "amount", "rpc"} {
		if !c.IsSet(f) || c.String(f) == "" && f != "amount" {
			return nil, usageError(fmt.Errorf("tx transfer needs --%s (see '%s --help')", f, helpName(c)))
		}
	}
	a := &transferArgs{amount: c.Uint64("amount"), wait: c.String("wait"), timeout: c.Duration("timeout")}
	var err error
	if a.spec, err = chainspec.Resolve(c.String("chain")); err != nil {
		return nil, usageError(err)
	}
	if a.key, err = resolveKey(c.String("key"), "--key", a.spec); err != nil {
		return nil, err
	}
	if k := c.String("key"); !slices.Contains(chainspec.DevKeyNames(), k) {
		if err := config.CheckKeyFileMode(k); err != nil {
			a.warning = err.Error()
		}
	}
	if a.to, err = tx.ParseAddress(c.String("to")); err != nil {
		return nil, usageError(fmt.Errorf("--to: %w", err))
	}
	a.fee = a.spec.MinFee
	if c.IsSet("fee") {
		a.fee = c.Uint64("fee")
	}
	if c.IsSet("nonce") {
		n := c.Uint64("nonce")
		a.nonce = &n
	}
	if a.rpc, err = parseRPC(c.String("rpc")); err != nil {
		return nil, err
	}
	if !slices.Contains(waitLevels, a.wait) {
		return nil, usageError(fmt.Errorf("invalid value %q for flag --wait: use included, justified or finalized (or validated)", a.wait))
	}
	if a.timeout <= 0 {
		return nil, usageError(fmt.Errorf("invalid value %s for flag --timeout: use a positive duration, such as 30s or 2m", a.timeout))
	}
	return a, nil
}

// statusLine renders a status for the output: the word, the block for a
// transaction in one, the reason for a removal, and the time since submit.
func statusLine(st api.TxStatus, since time.Duration) string {
	var b strings.Builder
	b.WriteString(st.Status)
	if st.Block != nil {
		fmt.Fprintf(&b, " block #%d", *st.Block)
		if st.Index != nil {
			fmt.Fprintf(&b, " index %d", *st.Index)
		}
	}
	if st.Reason != "" {
		fmt.Fprintf(&b, " (%s)", st.Reason)
	}
	fmt.Fprintf(&b, " +%s", roundSince(since))
	return b.String()
}

// roundSince keeps a duration readable: ms below 10 s, then 0.1 s.
func roundSince(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func levelOf(status string) int { return slices.Index(waitLevels, status) + 1 }

// follower prints the statuses a transaction reaches, each once and in
// order (a level the node passed between two reads is printed too: a
// justified transaction was included).
type follower struct {
	w       io.Writer
	start   time.Time
	want    int // level of --wait
	level   int // last printed level (0: none)
	blk     string
	removed *api.TxStatus // dropped or invalid
}

// see handles one status and reports whether following is over (the
// awaited level, finalized, or a removal).
func (f *follower) see(st api.TxStatus) bool {
	since := time.Since(f.start)
	switch st.Status {
	case api.TxDropped, api.TxInvalid:
		fmt.Fprintln(f.w, statusLine(st, since))
		f.removed = &st
		return true
	case api.TxRetracted:
		if f.level >= 2 {
			fmt.Fprintln(f.w, statusLine(st, since))
			f.level, f.blk = 1, ""
		}
		return false
	}
	lv := levelOf(st.Status)
	if lv == 0 {
		return false
	}
	if f.level >= 2 && (lv == 1 || st.BlockHash != f.blk) {
		// Seen by polling: its block left the best chain.
		fmt.Fprintln(f.w, statusLine(api.TxStatus{Hash: st.Hash, Status: api.TxRetracted}, since))
		f.level, f.blk = 1, ""
	}
	for l := f.level + 1; l <= lv; l++ {
		e := st
		e.Status = waitLevels[l-1]
		if l == 1 {
			e = api.TxStatus{Hash: st.Hash, Status: api.TxValidated}
		}
		fmt.Fprintln(f.w, statusLine(e, since))
	}
	if lv > f.level {
		f.level, f.blk = lv, st.BlockHash
	}
	return f.level >= f.want
}

func txTransfer(c *cli.Context) error {
	a, err := parseTransfer(c)
	if err != nil {
		return err
	}
	if a.warning != "" {
		fmt.Fprintf(c.App.ErrWriter, "Warning: %s\n", a.warning)
	}
	ctx, cancel := context.WithTimeout(c.Context, a.timeout)
	defer cancel()
	if err := checkNodeChain(ctx, a.rpc, a.spec); err != nil {
		return err
	}
	from := tx.AddressOf(a.key.Public().(ed25519.PublicKey))
	t := &tx.Tx{Genesis: node.GenesisHash(a.spec), To: a.to, Amount: a.amount, Fee: a.fee}
	if a.nonce != nil {
		t.Nonce = *a.nonce
	} else {
		acc, err := a.rpc.account(ctx, from, "best")
		if err != nil {
			return err
		}
		t.Nonce = acc.Nonce
		if acc.PendingNonce != nil && *acc.PendingNonce > t.Nonce {
			t.Nonce = *acc.PendingNonce // after the sender's transactions waiting in the pool
		}
	}
	t.Sign(a.key)
	h := t.Hash()

	start := time.Now()
	st, err := a.rpc.submit(ctx, t)
	if err != nil {
		return err
	}
	if st.Status == api.TxRefused {
		msg := "transaction refused: " + st.Reason
		if st.ExpectedNonce != nil {
			msg += fmt.Sprintf(" (expected nonce %d, this transaction has nonce %d)", *st.ExpectedNonce, t.Nonce)
		}
		return errors.New(msg)
	}
	if st.Hash != h.String() {
		return fmt.Errorf("the node answered for transaction %s, not %s", st.Hash, h)
	}
	w := c.App.Writer
	fmt.Fprintln(w, h)
	f := &follower{w: w, start: start, want: levelOf(a.wait)}
	if f.see(st) {
		return f.result()
	}
	werr := a.rpc.watch(ctx, h, f.see)
	if errors.Is(werr, errStreamBroken) {
		werr = f.poll(ctx, a.rpc, h)
	}
	if werr != nil && ctx.Err() != nil {
		return fmt.Errorf("timed out after %s waiting for %s %s (last status: %s)", a.timeout, h, a.wait, waitLevelName(f.level))
	}
	if werr != nil {
		return werr
	}
	return f.result()
}

func waitLevelName(level int) string {
	if level == 0 {
		return "none"
	}
	return waitLevels[level-1]
}

// result is the outcome once following is over.
func (f *follower) result() error {
	if f.removed != nil {
		if f.removed.Reason == "" {
			return fmt.Errorf("transaction %s %s: the node no longer knows it (neither pooled nor in a block of the best chain)", f.removed.Hash, f.removed.Status)
		}
		return fmt.Errorf("transaction %s %s by the pool: %s", f.removed.Hash, f.removed.Status, f.removed.Reason)
	}
	if f.level < f.want {
		return fmt.Errorf("the node's status stream ended at %s, before %s", waitLevelName(f.level), waitLevels[f.want-1])
	}
	return nil
}

// poll follows the status with GET /tx/{hash} (the watch stream broke).
func (f *follower) poll(ctx context.Context, rpc *rpcClient, h tx.Hash) error {
	var goneSince time.Time
	tick := time.NewTicker(txPollInterval)
	defer tick.Stop()
	for {
		st, err := rpc.txStatus(ctx, h)
		var se *apiStatusError
		switch {
		case err == nil:
			goneSince = time.Time{}
			if f.see(st) {
				return nil
			}
		case errors.As(err, &se) && se.status == http.StatusNotFound:
			if goneSince.IsZero() {
				goneSince = time.Now()
			} else if time.Since(goneSince) >= txGoneAfter {
				f.see(api.TxStatus{Hash: h.String(), Status: api.TxDropped})
				return nil
			}
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			// A node restarting: keep polling until the timeout.
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/internal/storagefault"
	"github.com/flarechain/flare-node/node"
	"github.com/flarechain/flare-node/node/api"
	"github.com/flarechain/flare-node/tx"
)

func rpcFlag(required bool) cli.Flag {
	usage := "read the account from the node API at `URL` (http://HOST:PORT, HOST:PORT or :PORT; the node's --rpc-addr or --metrics-addr)"
	if required {
		usage = "submit to the node API at `URL` (http://HOST:PORT, HOST:PORT or :PORT; the node's --rpc-addr or --metrics-addr)"
	}
	return &cli.StringFlag{Name: "rpc", Usage: usage}
}

func accountCommand() *cli.Command {
	return &cli.Command{
		Name:   "account",
		Usage:  "account (transfer key) tools: create a key, show an address, balance and nonce",
		Action: groupAction,
		Subcommands: []*cli.Command{
			{
				Name:  "new",
				Usage: "write a fresh ed25519 key to a new file (mode 0600, the format of 'key generate --output') and print its address",
				Flags: []cli.Flag{
					&cli.PathFlag{Name: "output", Aliases: []string{"o"}, TakesFile: true,
						Usage: "write the key to `FILE` (a new file in an existing directory; never overwritten)"},
				},
				Action: accountNew,
			},
			{
				Name: "show",
				Usage: "print an account's address; with --rpc also its balance and nonce as the node reads them. " +
					"The account is a dev key NAME (alice, bob, ...; dev and local chains), an ADDRESS (0x and 64 hex) or a KEYFILE " +
					"(write ./NAME for a file named like a dev key)",
				ArgsUsage: "NAME|ADDRESS|KEYFILE",
				Flags: []cli.Flag{
					chainFlag(),
					rpcFlag(false),
					&cli.StringFlag{Name: "at", Value: "best", Usage: "with --rpc: read the state at the `best` block or the finalized checkpoint (finalized)"},
					&cli.BoolFlag{Name: "json", Usage: "print one JSON object (address; with --rpc balance, nonce and at)"},
				},
				Action: accountShow,
			},
		},
	}
}

// writeNewKeyFile writes a fresh key to out, a new file in an existing
// directory (mode 0600), and returns the key. Bad paths are usage errors.
func writeNewKeyFile(out string) (ed25519.PrivateKey, error) {
	// The directory must exist: the key is never written into a
	// directory this command would have to invent the owner and mode of.
	dir := filepath.Dir(out)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		what := "does not exist"
		if err == nil {
			what = "is not a directory"
		} else if !errors.Is(err, os.ErrNotExist) {
			what = "cannot be read (" + err.Error() + ")"
		}
		return nil, usageError(fmt.Errorf("cannot write key file %s: directory %s %s; create it first (mode 0700 is advised)", out, dir, what))
	}
	if _, err := os.Lstat(out); err == nil {
		return nil, usageError(fmt.Errorf("%s already exists; refusing to overwrite a key", out))
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	if err := config.WriteKeyFile(out, key); err != nil {
		switch {
		case errors.Is(err, os.ErrExist):
			return nil, usageError(fmt.Errorf("%s already exists; refusing to overwrite a key", out))
		case storagefault.IsOperatorError(err):
			return nil, usageError(err)
		}
		return nil, err
	}
	return key, nil
}

func accountNew(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	out := c.Path("output")
	if out == "" {
		return usageError(errors.New("account new needs --output FILE (the key is never printed)"))
	}
	key, err := writeNewKeyFile(out)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.App.Writer, tx.AddressOf(key.Public().(ed25519.PublicKey)))
	return err
}

// devKeysAllowed reports whether dev key names may name accounts on spec:
// the builtin dev and local chains only (nil: no chain given, the names
// are the dev chains' keys).
func devKeysAllowed(spec *chainspec.Spec) bool {
	return spec == nil || slices.Contains(chainspec.BuiltinNames(), spec.ID)
}

// resolveKey reads the signing key arg names: a dev key name or a key file.
// what names the flag or argument in messages.
func resolveKey(arg, what string, spec *chainspec.Spec) (ed25519.PrivateKey, error) {
	if slices.Contains(chainspec.DevKeyNames(), arg) {
		if !devKeysAllowed(spec) {
			return nil, usageError(fmt.Errorf("%s %s: dev key names are for the dev and local chains, not %q; give a key file (./%s for a file of that name)", what, arg, spec.ID, arg))
		}
		return chainspec.DevKey(arg)
	}
	if arg == "" {
		return nil, usageError(fmt.Errorf("%s: give a dev key name (%s) or a key file", what, strings.Join(chainspec.DevKeyNames(), ", ")))
	}
	if _, err := os.Stat(arg); errors.Is(err, os.ErrNotExist) {
		return nil, usageError(fmt.Errorf("%s %q: neither a dev key name (%s) nor an existing key file", what, arg, strings.Join(chainspec.DevKeyNames(), ", ")))
	}
	key, err := config.ReadKeyFile(arg)
	if err != nil {
		return nil, usageError(fmt.Errorf("%s: %w", what, err))
	}
	return key, nil
}

// resolveAccount returns the address arg names: an address, a dev key name
// or a key file.
func resolveAccount(arg string, spec *chainspec.Spec) (tx.Address, error) {
	if strings.HasPrefix(arg, "0x") || strings.HasPrefix(arg, "0X") {
		a, err := tx.ParseAddress(arg)
		if err != nil {
			return tx.Address{}, usageError(err)
		}
		return a, nil
	}
	key, err := resolveKey(arg, "account", spec)
	if err != nil {
		return tx.Address{}, err
	}
	return tx.AddressOf(key.Public().(ed25519.PublicKey)), nil
}

// optionalSpec resolves --chain when it is given.
func optionalSpec(c *cli.Context) (*chainspec.Spec, error) {
	name := c.String("chain")
	if name == "" {
		return nil, nil
	}
	spec, err := chainspec.Resolve(name)
	if err != nil {
		return nil, usageError(err)
	}
	return spec, nil
}

// checkNodeChain refuses a node that runs another chain than spec.
func checkNodeChain(ctx context.Context, rpc *rpcClient, spec *chainspec.Spec) error {
	st, err := rpc.status(ctx)
	if err != nil {
		return err
	}
	if want := node.GenesisHash(spec).String(); st.Genesis != want {
		return usageError(fmt.Errorf("--chain %s has genesis %s, the node at %s runs chain %q with genesis %s", spec.ID, want, rpc.base, st.Chain, st.Genesis))
	}
	return nil
}

// accountJSON is the --json output of account show.
type accountJSON struct {
	Address string  `json:"address"`
	Balance *string `json:"balance,omitempty"`
	Nonce   *uint64 `json:"nonce,omitempty"`
	At      *api.At `json:"at,omitempty"`
}

func accountShow(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError(fmt.Errorf("account show takes one NAME|ADDRESS|KEYFILE, got %d arguments", c.NArg()))
	}
	spec, err := optionalSpec(c)
	if err != nil {
		return err
	}
	addr, err := resolveAccount(c.Args().First(), spec)
	if err != nil {
		return err
	}
	at := c.String("at")
	if at != "best" && at != "finalized" {
		return usageError(fmt.Errorf("invalid value %q for flag --at: use best or finalized", at))
	}
	out := accountJSON{Address: addr.String()}
	if raw := c.String("rpc"); raw != "" {
		rpc, err := parseRPC(raw)
		if err != nil {
			return err
		}
		if spec != nil {
			if err := checkNodeChain(c.Context, rpc, spec); err != nil {
				return err
			}
		}
		acc, err := rpc.account(c.Context, addr, at)
		if err != nil {
			return err
		}
		out.Balance, out.Nonce, out.At = &acc.Balance, &acc.Nonce, &acc.At
	} else if c.IsSet("at") {
		return usageError(errors.New("--at needs --rpc URL"))
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(w, "Address:  %s\n", out.Address)
	if out.At != nil {
		fmt.Fprintf(w, "Balance:  %s\n", *out.Balance)
		fmt.Fprintf(w, "Nonce:    %d\n", *out.Nonce)
		fmt.Fprintf(w, "At:       block #%d %s (%s)\n", out.At.Number, out.At.Hash, out.At.Level)
	}
	return nil
}

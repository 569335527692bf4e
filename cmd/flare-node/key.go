package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/flarechain/flare-node/chainspec"
	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/p2p"
)

func keyCommand() *cli.Command {
	return &cli.Command{
		Name:   "key",
		Usage:  "validator and node key tools",
		Action: groupAction,
		Subcommands: []*cli.Command{
			{
				Name:  "generate",
				Usage: "generate a validator key (ed25519); with --output it is written to a new file with mode 0600",
				Flags: []cli.Flag{
					&cli.PathFlag{Name: "output", Aliases: []string{"o"}, TakesFile: true,
						Usage: "write the hex seed to `FILE` (never overwritten) instead of printing it"},
				},
				Action: keyGenerate,
			},
			{
				Name:      "inspect",
				Usage:     "show the public key of a validator key file or dev key and its index in a chain's authority set",
				ArgsUsage: "[FILE]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "dev-name", Usage: "inspect the dev key `NAME` (alice, bob, ...) instead of a file"},
					chainFlag(),
				},
				Action: keyInspect,
			},
			{
				Name:      "inspect-node-key",
				Usage:     "print the libp2p peer id of a node key file (<base>/chains/<id>/network/secret_ed25519)",
				ArgsUsage: "FILE",
				Flags: []cli.Flag{
					&cli.PathFlag{Name: "file", TakesFile: true, Usage: "node key `FILE` (the same as the FILE argument)"},
				},
				Action: keyInspectNodeKey,
			},
		},
	}
}

func keyGenerate(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	w := c.App.Writer
	if out := c.Path("output"); out != "" {
		key, err := writeNewKeyFile(out)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "Key file:    %s (mode 0600)\n", out)
		fmt.Fprintf(w, "Public key:  %s\n", hex.EncodeToString(key.Public().(ed25519.PublicKey)))
		return nil
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	fmt.Fprintf(w, "Secret seed: %s\n", hex.EncodeToString(key.Seed()))
	fmt.Fprintf(w, "Public key:  %s\n", hex.EncodeToString(key.Public().(ed25519.PublicKey)))
	return nil
}

func keyInspect(c *cli.Context) error {
	devName := c.String("dev-name")
	var (
		key ed25519.PrivateKey
		err error
	)
	switch {
	case c.NArg() > 1:
		return usageError(fmt.Errorf("key inspect takes one FILE, got %d arguments", c.NArg()))
	case devName != "" && c.NArg() == 1:
		return usageError(fmt.Errorf("%w: give a FILE or --dev-name, not both", errConflict))
	case devName != "":
		key, err = chainspec.DevKey(devName)
	case c.NArg() == 1:
		key, err = config.ReadKeyFile(c.Args().First())
	default:
		return usageError(errors.New("key inspect needs a key FILE or --dev-name NAME"))
	}
	if err != nil {
		return usageError(err)
	}
	names := chainspec.BuiltinNames()
	if name := c.String("chain"); name != "" {
		names = []string{name}
	}
	specs := make([]*chainspec.Spec, len(names))
	for i, name := range names {
		if specs[i], err = chainspec.Resolve(name); err != nil {
			return usageError(err)
		}
	}

	pub := key.Public().(ed25519.PublicKey)
	w := c.App.Writer
	fmt.Fprintf(w, "Public key:  %s\n", hex.EncodeToString(pub))
	if c.NArg() == 1 {
		if err := config.CheckKeyFileMode(c.Args().First()); err != nil {
			fmt.Fprintf(w, "Warning:     %v\n", err)
		}
	}
	for _, spec := range specs {
		printAuthorityIndex(w, spec, pub)
	}
	return nil
}

func printAuthorityIndex(w io.Writer, spec *chainspec.Spec, pub ed25519.PublicKey) {
	set := spec.AuthoritySet()
	if i, ok := set.IndexOf(pub); ok {
		fmt.Fprintf(w, "Chain %s:  authority index %d of %d (%s)\n", spec.ID, i, set.Len(), spec.Authorities[i].Name)
		return
	}
	fmt.Fprintf(w, "Chain %s:  not an authority (%d authorities)\n", spec.ID, set.Len())
}

func keyInspectNodeKey(c *cli.Context) error {
	file := c.Path("file")
	switch {
	case c.NArg() > 1:
		return usageError(fmt.Errorf("key inspect-node-key takes one FILE, got %d arguments", c.NArg()))
	case c.NArg() == 1 && file != "":
		return usageError(fmt.Errorf("%w: give the node key as FILE or --file FILE, not both", errConflict))
	case c.NArg() == 1:
		file = c.Args().First()
	case file == "":
		return usageError(errors.New("key inspect-node-key needs a node key FILE (or --file FILE)"))
	}
	id, err := p2p.PeerIDFromKeyFile(file)
	if err != nil {
		return usageError(err)
	}
	_, err = fmt.Fprintln(c.App.Writer, id.String())
	return err
}

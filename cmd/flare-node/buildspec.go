package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/flarechain/flare-node/chainspec"
)

func buildSpecCommand() *cli.Command {
	return &cli.Command{
		Name:  "build-spec",
		Usage: "print a chain specification as JSON (edit it and pass the file to --chain)",
		Flags: []cli.Flag{
			chainFlag(), devFlag(),
			&cli.BoolFlag{Name: "canonical", Usage: "print the canonical encoding whose BLAKE2b-256 hash is the genesis hash"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			name := c.String("chain")
			switch {
			case c.Bool("dev") && name != "" && name != "dev":
				return usageError(fmt.Errorf("%w: --dev and --chain %s", errConflict, name))
			case c.Bool("dev"), name == "":
				name = "dev"
			}
			spec, err := chainspec.Resolve(name)
			if err != nil {
				return usageError(err)
			}
			if c.Bool("canonical") {
				_, err = fmt.Fprintf(c.App.Writer, "%s\n", spec.CanonicalJSON())
				return err
			}
			out, err := json.MarshalIndent(spec, "", "  ")
			if err != nil {
				return fmt.Errorf("encode chain spec: %w", err)
			}
			_, err = fmt.Fprintf(c.App.Writer, "%s\n", out)
			return err
		},
	}
}

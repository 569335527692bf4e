package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/flarechain/flare-node/internal/buildinfo"
)

// versionString is the version with the short commit when the build knows
// it (see internal/buildinfo for -ldflags overrides).
func versionString() string { return buildinfo.Short() }

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print version, commit and Go version",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			w := c.App.Writer
			fmt.Fprintf(w, "flare-node %s\n", buildinfo.Version())
			commit := buildinfo.Commit()
			if buildinfo.Modified() {
				commit += " (modified)"
			}
			fmt.Fprintf(w, "commit: %s\n", commit)
			fmt.Fprintf(w, "go: %s %s/%s\n", buildinfo.GoVersion(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

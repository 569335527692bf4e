package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/flarechain/flare-node/internal/buildinfo"
)

// version is internal/buildinfo's, which the node also reports (set it at
// build time with -ldflags "-X github.com/flarechain/flare-node/internal/buildinfo.version=...").
var version = buildinfo.Version()

// versionString is the version with the VCS revision when the build knows it.
func versionString() string {
	if rev := buildSetting("vcs.revision"); rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return version + "+" + rev
	}
	return version
}

func buildSetting(key string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range info.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print version information",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			w := c.App.Writer
			fmt.Fprintf(w, "flare-node %s\n", versionString())
			fmt.Fprintf(w, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
			if rev := buildSetting("vcs.revision"); rev != "" {
				fmt.Fprintf(w, "commit: %s\n", rev)
			}
			return nil
		},
	}
}

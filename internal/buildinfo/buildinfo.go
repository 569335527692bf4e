package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// version is the release version; set it at build time with
// -ldflags "-X github.com/flarechain/flare-node/internal/buildinfo.version=1.2.3".
var version = "0.1.0-dev"

// commit, when set at build time (-ldflags "-X
// github.com/flarechain/flare-node/internal/buildinfo.commit=$(git rev-parse HEAD)"),
// names the commit of a build made without VCS information (a source tree
// without .git, as in a container build, or GOFLAGS=-buildvcs=false).
var commit = ""

// Unknown is reported for a commit the build does not know (a build outside
// a VCS checkout, or with -buildvcs=false).
const Unknown = "unknown"

// Version returns the release version.
func Version() string { return version }

// Commit returns the commit set at link time, else the full VCS revision
// the Go toolchain stamped into the binary (vcs.revision) with "-dirty" when
// the tree had uncommitted changes, else Unknown.
func Commit() string {
	if commit != "" {
		return commit
	}
	rev, modified := setting("vcs.revision"), setting("vcs.modified")
	if rev == "" {
		return Unknown
	}
	if modified == "true" {
		rev += "-dirty"
	}
	return rev
}

// GoVersion returns the Go version the binary was built with.
func GoVersion() string { return runtime.Version() }

func setting(key string) string {
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

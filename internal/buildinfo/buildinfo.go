package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Set with -ldflags "-X github.com/flarechain/flare-node/internal/buildinfo.version=..."
// (and .commit=...). Empty or default values fall back to the build's own
// information.
var (
	version = "0.1.0-dev"
	commit  = ""
)

// Unknown is the commit of a build that carries no VCS information and was
// given none with -ldflags.
const Unknown = "unknown"

var settings = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return m
	}
	for _, s := range info.Settings {
		m[s.Key] = s.Value
	}
	return m
})

// Version is the release version of this build ("0.1.0-dev" unless set
// with -ldflags).
func Version() string { return version }

// Commit is the full VCS revision this build was made from: the -ldflags
// value if set, else the vcs.revision Go embedded, else Unknown.
func Commit() string {
	if commit != "" {
		return commit
	}
	if rev := settings()["vcs.revision"]; rev != "" {
		return rev
	}
	return Unknown
}

// Modified reports whether the build's working tree had uncommitted changes
// (vcs.modified). It is false when the build carries no VCS information.
func Modified() bool { return commit == "" && settings()["vcs.modified"] == "true" }

// GoVersion is the version of the Go toolchain that built the binary.
func GoVersion() string { return runtime.Version() }

// Short is the version with the first 12 characters of the commit
// ("0.1.0-dev+0123456789ab", with "-dirty" appended for a modified tree), or
// the version alone when the commit is unknown.
func Short() string {
	c := Commit()
	if c == Unknown {
		return version
	}
	if len(c) > 12 {
		c = c[:12]
	}
	s := version + "+" + c
	if Modified() {
		s += "-dirty"
	}
	return s
}

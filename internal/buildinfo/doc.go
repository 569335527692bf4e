// Package buildinfo tells which build of flare-node is running: its version,
// the VCS commit it was built from, and the Go toolchain that built it.
//
// The commit comes from the build itself: `go build` of a git checkout
// embeds vcs.revision (runtime/debug.ReadBuildInfo), so an ordinary build
// knows its commit without any flag. Builds without VCS information (a
// source tarball, `go build -buildvcs=false`, a Docker context without .git)
// can set both values with the linker:
//
//	go build -ldflags "-X github.com/flarechain/flare-node/internal/buildinfo.version=1.2.3 \
//	  -X github.com/flarechain/flare-node/internal/buildinfo.commit=$(git rev-parse HEAD)" ./cmd/flare-node
//
// A linker-set value wins over the embedded one. The CLI's version command
// and the node's flare_build_info metric read this package.
package buildinfo

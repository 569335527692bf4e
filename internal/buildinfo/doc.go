// Package buildinfo tells which build of flare-node is running: its
// version (set at link time), the VCS commit the Go toolchain stamped into
// the binary, and the Go version. The CLI's version command and the node's
// /status and flare_build_info metric read it.
package buildinfo

// Package integration holds end-to-end tests that run the real flare-node
// binary as a subprocess on temporary base paths and 127.0.0.1 ports: the dev
// validator's finality, clean restart and kill -9 recovery, and (with
// FLARE_NET_TESTS or by default where noted) multi-validator networks.
//
// The harness (harness_test.go) builds the binary once per test run, starts
// nodes with JSON logs, and waits for log events with bounded timeouts.
package integration

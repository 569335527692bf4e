// Package tally counts checkpoint votes for the ASF finality gadget.
//
// A Tally keeps, for every target checkpoint number inside the gadget's
// window, the votes grouped by link (source, target), and for every
// validator the votes it contributed. A validator contributes at most one
// vote per target number: its first one. A later different vote of the same
// validator for the same target number is a double vote, and a vote that
// surrounds (or is surrounded by) one of its counted votes is a surround
// vote; both are reported to the caller as conflicts with the earlier vote
// and never counted.
//
// The package does no I/O and verifies no signatures: the caller adds only
// votes whose signatures it has verified (or that it restored from its own
// database). A Tally is not safe for concurrent use; the gadget guards it
// with its mutex.
package tally

package main

import (
	"errors"
	"strings"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitForced  = 130
)

// exitError carries the exit code an error ends the process with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks err as bad input (exit code 2).
func usageError(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitUsage, err: err}
}

// exitCodeOf returns the exit code for err: 0 for nil, the code of a wrapped
// exitError, and 1 otherwise.
func exitCodeOf(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

// errorLine renders err as the single line printed on standard error.
func errorLine(err error) string {
	return "Error: " + strings.Join(strings.Fields(err.Error()), " ")
}

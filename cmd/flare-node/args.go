package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed lets flags follow positional arguments ("checkpoints show 5
// --json"), which urfave/cli v2 (like the standard flag package) does not
// parse: within the arguments of the command the line selects, positional
// arguments are moved behind the flags. Flag values, "--flag=value" and
// everything after "--" are kept in place.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	flags, cmds := app.Flags, app.Commands
	i := 1
	// Walk down the command path.
	for i < len(args) {
		a := args[i]
		if a == "--" {
			return args
		}
		if strings.HasPrefix(a, "-") {
			if takesValue(flags, a) {
				i++
			}
			i++
			continue
		}
		cmd := findCommand(cmds, a)
		if cmd == nil {
			break // a positional argument of the current command
		}
		flags, cmds = cmd.Flags, cmd.Subcommands
		i++
		if len(cmds) == 0 {
			break // a leaf command: reorder its arguments
		}
	}
	if len(cmds) > 0 || i >= len(args) {
		return args
	}
	head := append([]string{}, args[:i]...)
	var flagArgs, positional []string
	for j := i; j < len(args); j++ {
		a := args[j]
		switch {
		case a == "--":
			positional = append(positional, args[j:]...)
			j = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			flagArgs = append(flagArgs, a)
			if takesValue(flags, a) && j+1 < len(args) {
				j++
				flagArgs = append(flagArgs, args[j])
			}
		default:
			positional = append(positional, a)
		}
	}
	return append(append(head, flagArgs...), positional...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether the flag argument a ("--name" or "-n") names a
// defined flag that takes its value from the next argument.
func takesValue(flags []cli.Flag, a string) bool {
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if dv, ok := f.(cli.DocGenerationFlag); ok {
				return dv.TakesValue()
			}
			return true
		}
	}
	return false
}

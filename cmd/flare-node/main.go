package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code. Every
// failure is reported as one "Error: ..." line on stderr.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	if len(args) == 0 || args[len(args)-1] != completionFlag {
		// Completion requests keep their order: the flag must stay last.
		args = interspersed(app, args)
	}
	err := app.RunContext(context.Background(), args)
	if err != nil {
		fmt.Fprintln(stderr, errorLine(err))
	}
	return exitCodeOf(err)
}

// env is the environment variable of flag name: FLARE_<NAME>.
func env(name string) []string {
	return []string{"FLARE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

// newApp builds the command line application.
func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:  "flare-node",
		Usage: "FlareChain validator node with ASF checkpoint finality",
		UsageText: "flare-node [options]                 run a node\n" +
			"flare-node --dev --enable-asf --tmp  run a throw-away single-validator dev chain\n" +
			"flare-node command [options]         run a tool (see COMMANDS)",
		Version:              versionString(),
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		Flags:                runFlags(),
		Action:               runNode,
		EnableBashCompletion: true, // completionFlag, for the scripts of 'completion'
		// Errors are printed by run, once, as one line.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			buildSpecCommand(),
			keyCommand(),
			accountCommand(),
			txCommand(),
			purgeChainCommand(),
			checkpointsCommand(),
			authoritiesCommand(),
			signerCommand(),
			testnetCommand(),
			benchCommand(),
			versionCommand(),
			completionCommand(),
		},
	}
	app.OnUsageError = onUsageError
	for _, c := range app.Commands {
		setUsageError(c)
	}
	return app
}

// onUsageError turns a flag parsing error into a one-line usage error
// instead of urfave/cli's help dump.
func onUsageError(c *cli.Context, err error, isSubcommand bool) error {
	if msg, ok := badFlagValue(c, err.Error()); ok {
		return usageError(fmt.Errorf("%s (see '%s --help')", msg, helpName(c)))
	}
	msg := goFlagName.ReplaceAllStringFunc(err.Error(), func(m string) string {
		i := strings.Index(m, " -") + 1
		if len(m)-i > 2 { // long flag: -port -> --port
			return m[:i] + "-" + m[i:]
		}
		return m
	})
	msg = strings.Replace(msg, "flag provided but not defined:", "unknown flag", 1)
	return usageError(fmt.Errorf("%s (see '%s --help')", msg, helpName(c)))
}

// Flag value errors as the standard flag package ("parse error" for any
// number or duration it cannot read) and urfave/cli (a FLARE_* variable)
// word them.
var (
	badFlagValueRe = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-([A-Za-z][A-Za-z0-9-]*): (.*)$`)
	badEnvValueRe  = regexp.MustCompile(`^could not parse "(.*)" as \S+ value from environment variable "([A-Z0-9_]+)" for flag ([A-Za-z][A-Za-z0-9-]*): (.*)$`)
)

// badFlagValue rewrites a flag value error into one line that names the
// flag (and its variable) and the expected form, e.g.
// `invalid value "5" for flag --checkpoint-flush-interval: use a duration
// with a unit, such as 5s, 500ms or 2m`.
func badFlagValue(c *cli.Context, msg string) (string, bool) {
	var value, name, where, cause string
	if m := badFlagValueRe.FindStringSubmatch(msg); m != nil {
		value, name, cause = m[1], m[2], m[3]
		where = "flag --" + name
	} else if m := badEnvValueRe.FindStringSubmatch(msg); m != nil {
		value, name, cause = m[1], m[3], m[4]
		where = m[2] + " (--" + name + ")"
	} else {
		return "", false
	}
	if len(name) == 1 {
		where = strings.Replace(where, "--", "-", 1)
	}
	if hint := valueHint(findFlag(c, name)); hint != "" {
		cause = hint
	}
	return fmt.Sprintf("invalid value %q for %s: %s", value, where, cause), true
}

// valueHint names the form a flag's value must have.
func valueHint(f cli.Flag) string {
	switch f.(type) {
	case *cli.DurationFlag:
		return "use a duration with a unit, such as 5s, 500ms or 2m"
	case *cli.Uint64Flag, *cli.UintFlag:
		return "use a non-negative whole number, such as 100"
	case *cli.IntFlag, *cli.Int64Flag:
		return "use a whole number"
	case *cli.BoolFlag:
		return "use true or false"
	}
	return ""
}

// findFlag returns the flag called name of c's command (or an enclosing
// one), or nil.
func findFlag(c *cli.Context, name string) cli.Flag {
	var sets [][]cli.Flag
	for _, cc := range c.Lineage() {
		if cc.Command != nil {
			sets = append(sets, cc.Command.Flags)
		}
	}
	sets = append(sets, c.App.Flags)
	for _, flags := range sets {
		for _, f := range flags {
			for _, n := range f.Names() {
				if n == name {
					return f
				}
			}
		}
	}
	return nil
}

// goFlagName matches a flag name as the standard flag package prints it
// ("-port"), so that it can be shown as it is typed ("--port").
var goFlagName = regexp.MustCompile(`(: |flag )-[A-Za-z][A-Za-z0-9_-]*`)

// helpName is the command path of c ("flare-node key generate").
func helpName(c *cli.Context) string {
	if c.Command != nil && c.Command.HelpName != "" {
		return c.Command.HelpName
	}
	return c.App.Name
}

// isRoot reports whether c is the context of the root command.
func isRoot(c *cli.Context) bool { return helpName(c) == c.App.Name }

func setUsageError(c *cli.Command) {
	c.OnUsageError = onUsageError
	for _, s := range c.Subcommands {
		setUsageError(s)
	}
}

// noArgs rejects positional arguments.
func noArgs(c *cli.Context) error {
	if c.Args().Present() {
		what := "argument"
		if isRoot(c) {
			what = "command"
		}
		return usageError(fmt.Errorf("unknown %s %q (see '%s --help')", what, c.Args().First(), helpName(c)))
	}
	return nil
}

// groupAction is the action of a command that only groups subcommands.
func groupAction(c *cli.Context) error {
	if c.Args().Present() {
		return usageError(fmt.Errorf("unknown command %q (see '%s --help')", c.Args().First(), helpName(c)))
	}
	return usageError(fmt.Errorf("missing subcommand (see '%s --help')", helpName(c)))
}

// lookupSet returns the innermost context in which flag name was given (on
// the command line or through its environment variable), or nil.
func lookupSet(c *cli.Context, name string) *cli.Context {
	for _, cc := range c.Lineage() {
		if cc.Command == nil {
			continue
		}
		if hasFlag(cc.Command, name) && cc.IsSet(name) {
			return cc
		}
	}
	return nil
}

// hasFlag reports whether cmd defines flag name.
func hasFlag(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

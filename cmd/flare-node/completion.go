package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// completionFlag is urfave/cli's hidden flag (EnableBashCompletion): given
// as the last argument, the command line prints the words that may follow
// (subcommands, or flags after a "-") instead of running.
const completionFlag = "--generate-bash-completion"

// The shell scripts ask the binary itself for the candidates, so that they
// never go stale: the words typed so far, plus completionFlag.
const bashCompletion = `# bash completion for flare-node
# Install: flare-node completion bash > /etc/bash_completion.d/flare-node
#      or: source <(flare-node completion bash)   (in ~/.bashrc)
_flare_node_complete() {
  local cur words
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  local candidates
  if [[ "$cur" == -* ]]; then
    candidates=$("${words[@]}" "$cur" ` + completionFlag + ` 2>/dev/null)
  else
    candidates=$("${words[@]}" ` + completionFlag + ` 2>/dev/null)
  fi
  if [[ -z "$candidates" ]]; then
    compopt -o default 2>/dev/null
    return 0
  fi
  COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
}
complete -o bashdefault -o default -F _flare_node_complete flare-node
`

const zshCompletion = `#compdef flare-node
# zsh completion for flare-node
# Install: flare-node completion zsh > "${fpath[1]}/_flare-node"
#      or: source <(flare-node completion zsh)   (in ~/.zshrc, after compinit)
_flare_node() {
  local -a candidates
  local cur=${words[CURRENT]}
  if [[ "$cur" == -* ]]; then
    candidates=("${(@f)$(${words[1,CURRENT-1]} $cur ` + completionFlag + ` 2>/dev/null)}")
  else
    candidates=("${(@f)$(${words[1,CURRENT-1]} ` + completionFlag + ` 2>/dev/null)}")
  fi
  if [[ -n "${candidates[1]}" ]]; then
    _describe 'flare-node' candidates
  else
    _files
  fi
}
compdef _flare_node flare-node
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash or zsh)",
		ArgsUsage: "bash|zsh",
		Description: "bash: flare-node completion bash > /etc/bash_completion.d/flare-node (or source <(flare-node completion bash))\n" +
			"zsh:  flare-node completion zsh > \"${fpath[1]}/_flare-node\"",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(fmt.Errorf("completion needs one shell, bash or zsh (see '%s --help')", helpName(c)))
			}
			var script string
			switch shell := c.Args().First(); shell {
			case "bash":
				script = bashCompletion
			case "zsh":
				script = zshCompletion
			default:
				return usageError(fmt.Errorf("completion: unknown shell %q: want bash or zsh", shell))
			}
			_, err := fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}

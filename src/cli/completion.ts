import type { Command as Commander } from 'commander';
import { AppError } from '../kit/errors';

/**
 * `circuit completion bash|zsh`: a shell script that completes command names, each command's
 * flags, and anchor paths. Commands and flags are written into the script from the program's
 * own table; anchors are asked of the server at completion time (`circuit ls DIR`, with the
 * -d/--socket/--hmac the command line already has), so they are always the live ones. zsh
 * runs the same function through its bash-completion emulation (bashcompinit).
 */
export function completionScript(shell: string, program: Commander): string {
  if (shell !== 'bash' && shell !== 'zsh') throw new AppError('EINVAL', `completion: unknown shell ${JSON.stringify(shell)} (want bash or zsh)`);
  const cmds = program.commands;
  const names = cmds.map((c) => c.name()).sort();
  const flagCases = cmds
    .map((c) => {
      const flags = c.options.flatMap((o) => [o.long, o.short].filter((f): f is string => Boolean(f))).sort();
      return `    ${c.name().replace(/[^A-Za-z0-9@_-]/g, '')}) flags=${q(flags.join(' '))} ;;`;
    })
    .join('\n');
  const fn = `# circuit completion for ${shell}; load it with: source <(circuit completion ${shell})
_circuit() {
  local cur=\${COMP_WORDS[COMP_CWORD]} cmd=\${COMP_WORDS[1]} flags='' dial=() i
  if [ "$COMP_CWORD" -le 1 ]; then
    COMPREPLY=($(compgen -W ${q(names.join(' '))} -- "$cur"))
    return
  fi
  case "$cmd" in
${flagCases}
  esac
  case "$cmd:$cur" in
    completion:*)
      COMPREPLY=($(compgen -W 'bash zsh' -- "$cur"))
      ;;
    *:-*)
      COMPREPLY=($(compgen -W "$flags" -- "$cur"))
      ;;
    *:/*)
      # The server to ask: whatever -d, --dial, --socket or --hmac the line already names.
      for ((i = 2; i < COMP_CWORD; i++)); do
        case "\${COMP_WORDS[i]}" in
          -d|--dial|-dial|--socket|-socket|--hmac|-hmac) dial+=("\${COMP_WORDS[i]}" "\${COMP_WORDS[i+1]}") ;;
        esac
      done
      local dir=\${cur%/*}
      [ -n "$dir" ] || dir=/
      local IFS=$'\\n'
      COMPREPLY=($(compgen -W "$(circuit ls "\${dial[@]}" "$dir" 2>/dev/null | sed 's|$|/|')" -- "$cur"))
      compopt -o nospace 2>/dev/null
      ;;
  esac
}
`;
  const hook = shell === 'bash' ? 'complete -o default -F _circuit circuit\n' : 'autoload -U +X bashcompinit && bashcompinit\ncomplete -o default -F _circuit circuit\n';
  return fn + hook;
}

/** Single-quoted for the shell. */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

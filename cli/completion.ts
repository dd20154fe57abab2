import type { Command } from "./command.ts";

/**
 * `mesh completion bash|zsh`: a shell completion script generated from the
 * dispatch table itself, so it knows every command, every flag and the
 * choices a synopsis spells `a|b|c` (docs/cli.md). Nothing is hand-listed.
 */

interface Completable {
  name: string;
  flags: string[];
  /** choices of the first positional argument, from a synopsis word like `routes|authz|quotas` */
  choices: string[];
}

function completables(commands: Readonly<Record<string, Command>>): Completable[] {
  return Object.entries(commands).map(([name, c]) => {
    const flags = Object.entries(c.args.flags).flatMap(([flag, f]) => [`--${flag}`, ...(f.short ? [`-${f.short}`] : [])]);
    const word = c.synopsis.split(/\s+/).slice(1).find((w) => /^[a-z-]+(\|[a-z-]+)+$/.test(w));
    // A COMMAND argument (mesh help COMMAND) completes to the commands themselves.
    const choices = word ? word.split("|") : c.args.positionals?.names === "COMMAND" ? Object.keys(commands) : [];
    return { name, flags: [...flags, "--help"], choices };
  });
}

/** Only command, flag and choice names go into the script; they are [a-z-] words by construction, checked here anyway. */
const words = (list: string[]) => list.filter((w) => /^-{0,2}[A-Za-z0-9-]+$/.test(w)).join(" ");

export function bashCompletion(commands: Readonly<Record<string, Command>>): string {
  const cases = completables(commands).map(
    (c) => `    ${c.name}) flags="${words(c.flags)}"; choices="${words(c.choices)}" ;;`,
  );
  return [
    "# mesh completion for bash: source <(mesh completion bash)",
    "_mesh() {",
    '  local cur="${COMP_WORDS[COMP_CWORD]}" flags="" choices=""',
    "  if [ \"$COMP_CWORD\" -eq 1 ]; then",
    `    COMPREPLY=($(compgen -W "${words(Object.keys(commands))} --version --help" -- "$cur"))`,
    "    return",
    "  fi",
    '  case "${COMP_WORDS[1]}" in',
    ...cases,
    "  esac",
    '  if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$flags" -- "$cur"))',
    '  elif [ "$COMP_CWORD" -eq 2 ] && [ -n "$choices" ]; then COMPREPLY=($(compgen -W "$choices" -- "$cur"))',
    "  else COMPREPLY=($(compgen -f -- \"$cur\"))",
    "  fi",
    "}",
    "complete -F _mesh mesh",
    "",
  ].join("\n");
}

export function zshCompletion(commands: Readonly<Record<string, Command>>): string {
  const cases = completables(commands).map((c) => `    ${c.name}) flags=(${words(c.flags)}); choices=(${words(c.choices)}) ;;`);
  return [
    "#compdef mesh",
    "# mesh completion for zsh: source <(mesh completion zsh), or save as _mesh in a directory of $fpath",
    "_mesh() {",
    "  local -a flags choices",
    "  if (( CURRENT == 2 )); then",
    `    compadd -- ${words(Object.keys(commands))} --version --help`,
    "    return",
    "  fi",
    '  case "${words[2]}" in',
    ...cases,
    "  esac",
    '  if [[ "$PREFIX" == -* ]]; then compadd -- $flags',
    "  elif (( CURRENT == 3 && ${#choices} > 0 )); then compadd -- $choices",
    "  else _files",
    "  fi",
    "}",
    'if [[ "$funcstack[1]" == _mesh ]]; then _mesh "$@"; else compdef _mesh mesh; fi',
    "",
  ].join("\n");
}

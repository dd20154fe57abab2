import type { ArgsSpec, Parsed } from "./args.ts";

/** One row of the CLI's dispatch table (cli/main.ts). */
export interface Command {
  /** what follows `mesh` in usage, e.g. `get routes|authz|quotas [SERVICE] [-o json]` */
  synopsis: string;
  summary: string;
  args: ArgsSpec;
  /** more text for `mesh <command> --help` */
  details?: string;
  /** returns the exit code; throws CliError (exit code and message) on failure */
  run(parsed: Parsed): Promise<number>;
}

/**
 * The contract between the `mandate` dispatcher (run-cli.ts) and one subcommand. A subcommand declares
 * its options and positionals so that the dispatcher can parse them (`node:util` parseArgs), print
 * `--help` and report usage errors uniformly; it receives parsed values and returns an exit code.
 *
 * `src/cli/serve-command.ts` and `src/cli/demo-command.ts` implement this contract: each exports a
 * `CliCommand` named `serveCommand` / `demoCommand`, loaded lazily by the dispatch table.
 */

/** Exit status: success (and `allow` for `policy eval`). */
export const EXIT_OK = 0;
/** Exit status: the command ran and the answer is negative (invalid set, failing test, deny, lint finding). */
export const EXIT_FAILURE = 1;
/** Exit status: the command line is wrong (unknown command or option, malformed option value). */
export const EXIT_USAGE = 2;

/** Where a command reads and writes. The real process streams in production, buffers in tests. */
export interface CliIo {
  /** Writes to standard output; callers include the trailing newline. */
  stdout(text: string): void;
  /** Writes to standard error; callers include the trailing newline. */
  stderr(text: string): void;
  /** Reads all of standard input (for `--request -`). */
  readStdin(): Promise<string>;
  /** Directory relative paths resolve against. */
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
}

/** One option of a command, as parseArgs takes it plus what `--help` prints. */
export interface CliOption {
  type: 'string' | 'boolean';
  short?: string;
  /** The option may be repeated; its value is then a list. */
  multiple?: boolean;
  /** Placeholder shown in help, e.g. `DIR`. */
  placeholder?: string;
  description: string;
}

/** A positional argument, for help and arity checks. */
export interface CliPositional {
  name: string;
  description: string;
  /** Value used when the argument is absent. */
  default?: string;
}

/** Parsed command line handed to `run`. */
export interface CliArgs {
  /** Option values by long name: `string`, `boolean`, or a list for `multiple` options; absent when not given. */
  values: Record<string, string | boolean | string[] | undefined>;
  /** Positionals, with defaults filled in. */
  positionals: string[];
}

/** A subcommand of `mandate`. */
export interface CliCommand {
  /** One line for the parent's command list. */
  summary: string;
  /** The synopsis after the command path, e.g. `[dir] [--json]`. */
  usage: string;
  /** Paragraphs printed by `--help` after the synopsis. */
  description: string;
  options: Record<string, CliOption>;
  positionals: readonly CliPositional[];
  /** Example invocations printed by `--help`. */
  examples?: readonly string[];
  /** Exit statuses this command uses, printed by `--help`. */
  exitCodes?: readonly string[];
  /** Runs the command; resolves to its exit status. Throws `CliUsageError` for usage mistakes. */
  run(args: CliArgs, io: CliIo): Promise<number>;
}

/**
 * A mistake on the command line: exit status 2, printed as one line with the command's usage hint.
 * Not a `MandateError`: nothing reaches a client, and the taxonomy's codes are a wire contract.
 */
export class CliUsageError extends Error {
  /** Stable code printed with the message. */
  readonly code = 'ERR_USAGE';

  constructor(message: string) {
    super(message);
    this.name = 'CliUsageError';
  }
}

/**
 * The `mandate` dispatcher: one table of commands, argument parsing with `node:util` parseArgs, `--help` at
 * every level, and the one place where errors become output and exit statuses.
 *
 * Errors print as one line, `mandate: <CODE>: <message>`; a stack trace only with `MANDATE_DEBUG=1`.
 * Exit statuses: 0 ok, 1 failure (or a negative answer where the command documents one), 2 usage error.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { looksLikeJwt } from '../audit/audit-event.ts';
import { isMandateError } from '../core/errors.ts';
import { CliUsageError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type CliArgs, type CliCommand, type CliIo } from './command.ts';

/** A leaf of the dispatch table: a command loaded on demand, so that `mandate policy ...` never loads the server. */
export interface CommandEntry {
  kind: 'command';
  summary: string;
  load: () => Promise<CliCommand>;
}

/** A node of the dispatch table: a group of subcommands (`mandate policy ...`). */
export interface GroupEntry {
  kind: 'group';
  summary: string;
  commands: Readonly<Record<string, CommandEntry | GroupEntry>>;
}

const command = (summary: string, load: () => Promise<CliCommand>): CommandEntry => ({ kind: 'command', summary, load });

/** Every command of `mandate`. */
export const COMMANDS: GroupEntry = {
  kind: 'group',
  summary: 'Identity and authorization for AI agents',
  commands: {
    serve: command('Run the Mandate server (production: no demo parts)', async () => (await import('./serve-command.ts')).serveCommand),
    demo: command('Run the local demo (bound to 127.0.0.1)', async () => (await import('./demo-command.ts')).demoCommand),
    policy: {
      kind: 'group',
      summary: 'Validate, test, format, evaluate and analyze Cedar policy directories',
      commands: {
        validate: command('Parse and strictly validate a policy directory', async () => (await import('./policy-validate-command.ts')).policyValidateCommand),
        test: command('Run the *.test.yaml cases of a policy directory', async () => (await import('./policy-test-command.ts')).policyTestCommand),
        fmt: command('Format .cedar files (without losing comments)', async () => (await import('./policy-fmt-command.ts')).policyFmtCommand),
        eval: command('Decide one request and explain the decision', async () => (await import('./policy-eval-command.ts')).policyEvalCommand),
        analyze: command('Access matrix, diff against another set, lint for over-broad permits', async () => (await import('./policy-analyze-command.ts')).policyAnalyzeCommand),
      },
    },
    agents: {
      kind: 'group',
      summary: 'Register, list, show, suspend and retire agents and services',
      commands: {
        add: command('Register an agent or a service', async () => (await import('./agents-add-command.ts')).agentsAddCommand),
        list: command('List registered agents and services', async () => (await import('./agents-list-command.ts')).agentsListCommand),
        show: command('Show one agent or service, credentials included', async () => (await import('./agents-show-command.ts')).agentsShowCommand),
        suspend: command('Suspend an agent or service (it can no longer authenticate)', async () => (await import('./agents-status-command.ts')).agentsSuspendCommand),
        retire: command('Retire an agent or service for good (kept for the record)', async () => (await import('./agents-status-command.ts')).agentsRetireCommand),
      },
    },
    tasks: {
      kind: 'group',
      summary: 'List, show and end tasks',
      commands: {
        list: command('List tasks (newest first)', async () => (await import('./tasks-list-command.ts')).tasksListCommand),
        show: command('Show one task', async () => (await import('./tasks-list-command.ts')).tasksShowCommand),
        end: command('End a task now, revoking every mandate it holds', async () => (await import('./tasks-end-command.ts')).tasksEndCommand),
      },
    },
    approvals: {
      kind: 'group',
      summary: "List, show, approve and deny requests for a person's approval",
      commands: {
        list: command('List approval requests (newest first)', async () => (await import('./approvals-list-command.ts')).approvalsListCommand),
        show: command('Show one approval request', async () => (await import('./approvals-list-command.ts')).approvalsShowCommand),
        approve: command('Approve a pending request: the agent may make exactly that call, once', async () => (await import('./approvals-decide-command.ts')).approvalsApproveCommand),
        deny: command('Deny a pending request: the call stays refused', async () => (await import('./approvals-decide-command.ts')).approvalsDenyCommand),
      },
    },
    users: {
      kind: 'group',
      summary: 'Disable and enable users, list the disabled ones',
      commands: {
        disable: command('Disable a user: revoke their open tasks, refuse mandates for them', async () => (await import('./users-commands.ts')).usersDisableCommand),
        enable: command('Enable a disabled user again', async () => (await import('./users-commands.ts')).usersEnableCommand),
        list: command('List disabled users', async () => (await import('./users-commands.ts')).usersListCommand),
      },
    },
    lockdown: {
      kind: 'group',
      summary: 'The break-glass switch: revoke every task and mandate, refuse new ones',
      commands: {
        on: command('Engage lockdown: revoke every open task and mandate, refuse new ones', async () => (await import('./lockdown-command.ts')).lockdownOnCommand),
        off: command('Lift lockdown: mandates are issued again', async () => (await import('./lockdown-command.ts')).lockdownOffCommand),
        status: command('Say whether Mandate is in lockdown, since when, by whom and why', async () => (await import('./lockdown-command.ts')).lockdownStatusCommand),
      },
    },
    keys: {
      kind: 'group',
      summary: 'List and rotate the token signing keys',
      commands: {
        list: command('List the token signing keys (public facts only)', async () => (await import('./keys-list-command.ts')).keysListCommand),
        rotate: command('Rotate the token signing key (the old one stays published for the overlap)', async () => (await import('./keys-rotate-command.ts')).keysRotateCommand),
      },
    },
    gateway: {
      kind: 'group',
      summary: 'Review the MCP gateway upstreams',
      commands: {
        tools: command("List an upstream's tools and their pinning state, with the YAML that approves them", async () => (await import('./gateway-tools-command.ts')).gatewayToolsCommand),
      },
    },
    token: {
      kind: 'group',
      summary: 'Inspect mandates',
      commands: {
        inspect: command('Decode and verify a mandate, and explain why it would be accepted or refused', async () => (await import('./token-inspect-command.ts')).tokenInspectCommand),
      },
    },
  },
};

/**
 * Runs `mandate` with `argv` (without the node and script paths) and resolves to the exit status.
 * Never throws: every error is printed here.
 */
export async function runCli(argv: readonly string[], io: CliIo, table: GroupEntry = COMMANDS): Promise<number> {
  const debug = io.env.MANDATE_DEBUG === '1';
  let path: string[] = [];
  try {
    let node: CommandEntry | GroupEntry = table;
    let i = 0;
    // Walk the table while the next word names a subcommand; `help <path>` is `<path> --help`.
    let helpRequested = false;
    if (argv[0] === 'help') {
      helpRequested = true;
      i = 1;
    }
    while (node.kind === 'group') {
      const word = argv[i];
      if (word === undefined && !helpRequested) {
        // A group alone is an incomplete command line: show what it holds, as a usage error.
        io.stderr(groupHelp(path, node));
        return EXIT_USAGE;
      }
      if (word === undefined || word === '--help' || word === '-h') {
        io.stdout(groupHelp(path, node));
        return EXIT_OK;
      }
      if (word === '--version') {
        io.stdout(`mandate ${await packageVersion()}\n`);
        return EXIT_OK;
      }
      const next: CommandEntry | GroupEntry | undefined = Object.hasOwn(node.commands, word) ? node.commands[word] : undefined;
      if (!next) {
        const what = word.startsWith('-') ? `unknown option ${word}` : `unknown command ${JSON.stringify(word)}`;
        throw new CliUsageError(`${what} for mandate${path.map((p) => ` ${p}`).join('')}; commands: ${Object.keys(node.commands).join(', ')}`);
      }
      path = [...path, word];
      node = next;
      i++;
    }
    const cmd = await node.load();
    const rest = argv.slice(i);
    if (helpRequested || rest.includes('--help') || rest.includes('-h')) {
      io.stdout(commandHelp(path, cmd));
      return EXIT_OK;
    }
    return await cmd.run(parseCommandArgs(path, cmd, rest), io);
  } catch (err) {
    return reportError(err, path, io, debug);
  }
}

/** Parses `args` for `cmd` with parseArgs; unknown options and wrong arity are usage errors. */
export function parseCommandArgs(path: readonly string[], cmd: CliCommand, args: readonly string[]): CliArgs {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, o] of Object.entries(cmd.options)) {
    options[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  }
  let parsed: { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (err) {
    // parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes; its messages name the option and say what is wrong.
    const message = err instanceof Error ? err.message.split('\n')[0] ?? err.message : String(err);
    throw new CliUsageError(message.replace(/\. To specify a positional argument.*$/, ''));
  }
  const max = cmd.positionals.length;
  if (parsed.positionals.length > max) {
    // A stray argument may be a token or a secret pasted twice: never echo a JWT, and never a long value whole.
    const shown = (p: string) => (looksLikeJwt(p) ? '<a JWT, not shown>' : JSON.stringify(p.length > 40 ? `${p.slice(0, 12)}…` : p));
    const extra = parsed.positionals.slice(max).map(shown).join(', ');
    throw new CliUsageError(`unexpected argument${parsed.positionals.length - max === 1 ? '' : 's'} ${extra}; usage: mandate ${path.join(' ')} ${cmd.usage}`);
  }
  const positionals = cmd.positionals.map((p, index) => parsed.positionals[index] ?? p.default).filter((p): p is string => p !== undefined);
  const values: CliArgs['values'] = {};
  for (const [k, v] of Object.entries(parsed.values)) {
    values[k] = Array.isArray(v) ? v.map(String) : v;
  }
  return { values, positionals };
}

function reportError(err: unknown, path: readonly string[], io: CliIo, debug: boolean): number {
  const where = path.length > 0 ? ` ${path.join(' ')}` : '';
  if (err instanceof CliUsageError) {
    io.stderr(`mandate${where}: ${err.code}: ${err.message}\n`);
    io.stderr(`Run 'mandate${where} --help' for usage.\n`);
    if (debug && err.stack) io.stderr(`${err.stack}\n`);
    return EXIT_USAGE;
  }
  if (isMandateError(err)) {
    io.stderr(`mandate${where}: ${err.code}: ${err.description}\n`);
  } else {
    const message = err instanceof Error ? err.message : String(err);
    io.stderr(`mandate${where}: ERR_INTERNAL: ${message.split('\n')[0]}${debug ? '' : ' (set MANDATE_DEBUG=1 for the stack trace)'}\n`);
  }
  if (debug && err instanceof Error && err.stack) io.stderr(`${err.stack}\n`);
  return EXIT_FAILURE;
}

function groupHelp(path: readonly string[], group: GroupEntry): string {
  const name = ['mandate', ...path].join(' ');
  const width = Math.max(...Object.keys(group.commands).map((k) => k.length));
  const lines = [
    `${name} — ${group.summary}`,
    '',
    `Usage: ${name} <command> [options]`,
    '',
    'Commands:',
    ...Object.entries(group.commands).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`),
    '',
    `Run '${name} <command> --help' for a command's options.`,
  ];
  if (path.length === 0) {
    lines.push('', 'Exit status: 0 ok, 1 failure (or a negative answer where a command says so), 2 usage error.', 'Set MANDATE_DEBUG=1 to print stack traces.');
  }
  return `${lines.join('\n')}\n`;
}

/** Renders `--help` for a command. */
export function commandHelp(path: readonly string[], cmd: CliCommand): string {
  const name = ['mandate', ...path].join(' ');
  const lines = [`Usage: ${name} ${cmd.usage}`, '', cmd.summary, ''];
  if (cmd.description) lines.push(cmd.description.trim(), '');
  if (cmd.positionals.length > 0) {
    lines.push('Arguments:');
    const w = Math.max(...cmd.positionals.map((p) => p.name.length));
    for (const p of cmd.positionals) lines.push(`  ${p.name.padEnd(w)}  ${p.description}${p.default !== undefined ? ` (default: ${p.default})` : ''}`);
    lines.push('');
  }
  const opts = Object.entries(cmd.options).map(([k, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${k}${o.type === 'string' ? ` ${o.placeholder ?? 'VALUE'}` : ''}`;
    return [flag, `${o.description}${o.multiple ? ' (repeatable)' : ''}`] as const;
  });
  opts.push(['-h, --help', 'Show this help']);
  const w = Math.max(...opts.map(([f]) => f.length));
  lines.push('Options:', ...opts.map(([f, d]) => `  ${f.padEnd(w)}  ${d}`), '');
  if (cmd.exitCodes?.length) lines.push('Exit status:', ...cmd.exitCodes.map((e) => `  ${e}`), '');
  if (cmd.examples?.length) lines.push('Examples:', ...cmd.examples.map((e) => `  ${e}`), '');
  return `${lines.join('\n').trimEnd()}\n`;
}

async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

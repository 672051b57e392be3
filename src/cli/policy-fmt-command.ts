/**
 * `mandate policy fmt [dir|file]`: Cedar's formatter over policy files, refusing any file whose comments
 * the formatter would drop or move.
 */
import { readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { formatPolicyFile, type FormatResult } from '../policy/format-policy-file.ts';
import { CliUsageError, EXIT_FAILURE, EXIT_OK, type CliCommand } from './command.ts';
import { formatDiagnostic, oneLine, resolvePath } from './policy-directory-io.ts';

/** The `policy fmt` command. */
export const policyFmtCommand: CliCommand = {
  summary: 'Format .cedar files (without losing comments)',
  usage: '[dir|file] [--check | --write] [--line-width N] [--indent-width N]',
  description: `Formats policies with Cedar's formatter. For a single file, prints the formatted text; for a
directory, lists the .cedar files (recursively) that would change. --check fails if any file would change;
--write rewrites them in place.

A file whose comments the formatter would drop or move, or whose policies it would change, is never
rewritten: it is reported with the reason and the command fails.`,
  positionals: [{ name: 'path', description: 'a policy directory or one .cedar file', default: 'policies' }],
  options: {
    check: { type: 'boolean', description: 'Exit 1 and list the files that are not formatted' },
    write: { type: 'boolean', short: 'w', description: 'Rewrite the files that are not formatted' },
    'line-width': { type: 'string', placeholder: 'N', description: 'Maximum line width (default 80)' },
    'indent-width': { type: 'string', placeholder: 'N', description: 'Indentation width (default 2)' },
  },
  exitCodes: [
    '0  done (default mode), or nothing to change (--check), or all files written (--write)',
    '1  a file would change (--check), a file does not parse, or a file was refused to keep its comments',
    '2  usage error',
  ],
  examples: ['mandate policy fmt examples/policies --check', 'mandate policy fmt examples/policies/users.cedar', 'mandate policy fmt policies --write'],
  async run(args, io) {
    if (args.values.check && args.values.write) throw new CliUsageError('--check and --write exclude each other');
    const options = { lineWidth: intOption(args.values['line-width'], '--line-width', 20, 1000) ?? 80, indentWidth: intOption(args.values['indent-width'], '--indent-width', 1, 16) ?? 2 };
    const target = args.positionals[0] as string;
    const abs = resolvePath(io, target);
    const st = await stat(abs).catch(() => undefined);
    if (!st) throw new CliUsageError(`${target} does not exist`);

    const single = st.isFile();
    const files = single ? [abs] : await cedarFiles(abs);
    const shown = (f: string) => (single ? target : join(target, relative(abs, f)));
    let failed = false;
    let changed = 0;
    for (const file of files) {
      const text = await readFile(file, 'utf8');
      const result: FormatResult = formatPolicyFile(shown(file), text, options);
      if (result.status === 'invalid') {
        failed = true;
        for (const d of result.diagnostics) io.stdout(formatDiagnostic('', d));
        continue;
      }
      if (result.status === 'refused') {
        failed = true;
        io.stdout(`${result.path}${result.line ? `:${result.line}` : ''}: not formatted: ${oneLine(result.reason)}\n`);
        continue;
      }
      if (single && !args.values.check && !args.values.write) {
        io.stdout(result.formatted);
        continue;
      }
      if (result.status === 'unchanged') continue;
      changed++;
      if (args.values.write) {
        // Write beside and rename, so that a crash never leaves a half-written policy file.
        const tmp = `${file}.mandate-fmt-${process.pid}`;
        await writeFile(tmp, result.formatted, { mode: st.isFile() ? st.mode : (await stat(file)).mode });
        await rename(tmp, file);
        io.stdout(`formatted ${result.path}\n`);
      } else {
        io.stdout(`${args.values.check ? 'not formatted' : 'would reformat'}: ${result.path}\n`);
      }
    }
    if (!single && files.length === 0) io.stdout(`no .cedar files in ${target}\n`);
    if (args.values.check && changed > 0) failed = true;
    return failed ? EXIT_FAILURE : EXIT_OK;
  },
};

async function cedarFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile() && entry.name.endsWith('.cedar')) out.push(p);
    }
  };
  await walk(dir);
  return out.sort((a, b) => (a.split(sep).join('/') < b.split(sep).join('/') ? -1 : 1));
}

function intOption(value: unknown, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new CliUsageError(`${flag} must be an integer from ${min} to ${max}`);
  return n;
}

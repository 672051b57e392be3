/**
 * `mandate policy test [dir]`: runs the directory's `*.test.yaml` cases and reports like `opa test`: one
 * block per failure, then `PASS: n/total` (and `FAIL: n/total`).
 */
import { join } from 'node:path';
import { PolicySetInvalidError } from '../core/errors.ts';
import { readPolicyDirectory, type PolicyDirectory } from '../policy/read-policy-directory.ts';
import { DEFAULT_TEST_TIME, runPolicyTests, type PolicyTestReport, type PolicyTestResult } from '../policy/run-policy-tests.ts';
import { CliUsageError, EXIT_FAILURE, EXIT_OK, type CliCommand, type CliIo } from './command.ts';
import { diagnosticsOf, oneLine, printRefusal, resolvePath } from './policy-directory-io.ts';

const RULE = '-'.repeat(80);

/** The `policy test` command. */
export const policyTestCommand: CliCommand = {
  summary: 'Run the *.test.yaml cases of a policy directory',
  usage: '[dir] [--verbose] [--run PATTERN] [--json]',
  description: `Loads the directory as the server would (a refused set runs no case), then decides every case of
every *.test.yaml file at a fixed time (${DEFAULT_TEST_TIME} unless the file or the case sets now:) and
compares the outcome, and the determining policies if listed, with the expectation. A case whose request
Mandate refuses fails with the error code, unless it expects exactly that (expect: error, code: ERR_...).
See docs/policy-testing.md for the file format.`,
  positionals: [{ name: 'dir', description: 'policy directory', default: 'policies' }],
  options: {
    verbose: { type: 'boolean', short: 'v', description: 'Also list the cases that pass' },
    run: { type: 'string', placeholder: 'PATTERN', description: 'Run only cases whose name or file matches this regular expression' },
    json: { type: 'boolean', description: 'Print the full report as JSON' },
  },
  exitCodes: ['0  every case passed', '1  a case failed, a test file is invalid, there are no cases, or the set does not load', '2  usage error'],
  examples: ['mandate policy test examples/policies', 'mandate policy test examples/policies --run refund -v'],
  async run(args, io) {
    const dir = args.positionals[0] as string;
    let filter: ((file: string, name: string) => boolean) | undefined;
    if (typeof args.values.run === 'string') {
      let re: RegExp;
      try {
        re = new RegExp(args.values.run);
      } catch (err) {
        throw new CliUsageError(`--run ${JSON.stringify(args.values.run)} is not a valid regular expression: ${err instanceof Error ? err.message : String(err)}`);
      }
      filter = (file, name) => re.test(name) || re.test(file);
    }
    let report: PolicyTestReport;
    try {
      const contents: PolicyDirectory = await readPolicyDirectory(resolvePath(io, dir));
      report = runPolicyTests(contents, filter ? { filter } : {});
    } catch (err) {
      if (!(err instanceof PolicySetInvalidError)) throw err;
      if (args.values.json) io.stdout(`${JSON.stringify({ error: err.code, diagnostics: diagnosticsOf(err) }, null, 2)}\n`);
      else printRefusal(io, dir, diagnosticsOf(err));
      return EXIT_FAILURE;
    }
    if (args.values.json) {
      io.stdout(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      printReport(io, dir, report, args.values.verbose === true);
    }
    return report.failed === 0 && report.invalidFiles.length === 0 && report.total > 0 ? EXIT_OK : EXIT_FAILURE;
  },
};

function printReport(io: CliIo, dir: string, report: PolicyTestReport, verbose: boolean): void {
  for (const f of report.invalidFiles) {
    const where = f.line === undefined ? '' : `:${f.line}${f.column === undefined ? '' : `:${f.column}`}`;
    io.stdout(`ERROR ${join(dir, f.file)}${where}: ${oneLine(f.message)}\n`);
  }
  for (const r of report.results) {
    if (r.passed) {
      if (verbose) io.stdout(`PASS ${join(dir, r.file)}:${r.line}: ${r.name}\n`);
      continue;
    }
    io.stdout(formatFailure(dir, r));
  }
  if (report.total === 0 && report.invalidFiles.length === 0) {
    io.stdout(`no test cases found in ${dir} (test files are named *.test.yaml)\n`);
    return;
  }
  io.stdout(`${RULE}\n`);
  io.stdout(`PASS: ${report.passed}/${report.total}\n`);
  if (report.failed > 0) io.stdout(`FAIL: ${report.failed}/${report.total}\n`);
  if (report.invalidFiles.length > 0) io.stdout(`ERROR: ${report.invalidFiles.length} invalid test file${report.invalidFiles.length === 1 ? '' : 's'}\n`);
}

function formatFailure(dir: string, r: PolicyTestResult): string {
  const lines = [`FAIL ${join(dir, r.file)}:${r.line}: ${r.name}`];
  const expected = r.expected === 'error' ? `error ${r.expectedCode ?? ''}`.trim() : r.expected;
  const actual = r.actual === 'error' ? `error ${r.errorCode ?? ''}`.trim() : r.actual;
  lines.push(`  expected: ${expected}`, `  actual:   ${actual}`);
  if (r.failure && r.expected === r.actual) lines.push(`  why:      ${r.failure}`);
  if (r.errorMessage) lines.push(`  error:    ${oneLine(r.errorMessage)}`);
  for (const reason of r.reasons) lines.push(`  reason:   ${oneLine(reason)}`);
  for (const e of r.errors) lines.push(`  eval error in ${e.policyId} for ${e.principal}: ${oneLine(e.message)}`);
  return `${lines.join('\n')}\n`;
}

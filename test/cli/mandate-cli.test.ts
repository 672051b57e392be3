/**
 * The `mandate` command as users run it: a child process (`node bin/mandate.js ...`), asserting exit
 * statuses and output lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writePolicyDir } from '../fixtures/policy-dir.ts';
import { CLEAN_POLICIES, FAILING_TESTS, INVALID_POLICY, INVALID_TESTS, OVERBROAD_POLICIES, PASSING_TESTS } from './policy-fixtures.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/mandate.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function mandate(args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = { ...process.env, ...options.env };
    if (!options.env?.MANDATE_DEBUG) delete env.MANDATE_DEBUG;
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

async function withDir(files: Record<string, string>, fn: (dir: string) => Promise<void>): Promise<void> {
  const fx = await writePolicyDir(files);
  try {
    await fn(fx.dir);
  } finally {
    await fx.cleanup();
  }
}

test('help and usage errors: help at every level, exit 2 with one line for a wrong command line', async () => {
  const bare = await mandate([]);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /Usage: mandate <command>/);
  const help = await mandate(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^ {2}policy +Validate, test, format, evaluate and analyze/m);
  const evalHelp = await mandate(['policy', 'eval', '--help']);
  assert.equal(evalHelp.code, 0);
  assert.match(evalHelp.stdout, /^Usage: mandate policy eval --principal/);
  assert.match(evalHelp.stdout, /--actor REF +An actor acting for the principal, first delegate first \(repeatable\)/);
  assert.equal((await mandate(['help', 'policy', 'analyze'])).code, 0);

  const unknown = await mandate(['policy', 'frobnicate']);
  assert.equal(unknown.code, 2);
  assert.equal(lines(unknown.stderr)[0], 'mandate policy: ERR_USAGE: unknown command "frobnicate" for mandate policy; commands: validate, test, fmt, eval, analyze');
  const option = await mandate(['policy', 'validate', '--nope']);
  assert.equal(option.code, 2);
  assert.match(option.stderr, /^mandate policy validate: ERR_USAGE: Unknown option '--nope'/);
  assert.doesNotMatch(option.stderr, /\n\s+at /);
});

test('serve and demo are registered with their own help', async () => {
  const serve = await mandate(['serve', '--help']);
  assert.equal(serve.code, 0);
  assert.match(serve.stdout, /^Usage: mandate serve \[--config FILE\]/);
  assert.match(serve.stdout, /never starts demo parts|no demo parts/);
  const demo = await mandate(['help', 'demo']);
  assert.equal(demo.code, 0);
  assert.match(demo.stdout, /127\.0\.0\.1/);
  const bad = await mandate(['serve', '--port', '1']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /ERR_USAGE: Unknown option '--port'/);
});

test('policy validate: summary with version for a valid set; file:line:col errors and exit 1 for an invalid one', async () => {
  await withDir(CLEAN_POLICIES, async (dir) => {
    const ok = await mandate(['policy', 'validate', dir]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^3 policies, 9 entities: valid \(version sha256:[0-9a-f]{64}\)\nengine: compiled /);
  });
  await withDir({ ...CLEAN_POLICIES, 'bad.cedar': INVALID_POLICY }, async (dir) => {
    const bad = await mandate(['policy', 'validate', dir]);
    assert.equal(bad.code, 1);
    const out = lines(bad.stdout);
    assert.ok(out.length >= 2);
    for (const l of out.filter((x) => x.includes(': error: '))) assert.match(l, new RegExp(`^${dir}/bad\\.cedar:2:\\d+: error: .*attribute \`nope\``));
    assert.ok(out.some((l) => l.startsWith('  help: ')));
    assert.match(out[out.length - 1] ?? '', /: invalid \(\d+ errors?\); the set would be refused whole$/);
    const json = await mandate(['policy', 'validate', dir, '--json']);
    assert.equal(json.code, 1);
    const diags = JSON.parse(json.stdout) as Array<{ severity: string; position: { file: string; line: number } }>;
    assert.equal(diags[0]?.severity, 'error');
    assert.deepEqual([diags[0]?.position.file, diags[0]?.position.line], ['bad.cedar', 2]);
  });
  const missing = await mandate(['policy', 'validate', '/nonexistent/policies']);
  assert.equal(missing.code, 1);
  assert.match(missing.stdout, /does not exist or is not a directory/);
});

test('policy test: failures with expected vs actual and reasons, invalid files with their line, PASS/FAIL summary', async () => {
  await withDir({ ...CLEAN_POLICIES, 'a-pass.test.yaml': PASSING_TESTS }, async (dir) => {
    const ok = await mandate(['policy', 'test', dir]);
    assert.equal(ok.code, 0, ok.stdout);
    assert.deepEqual(lines(ok.stdout), ['-'.repeat(80), 'PASS: 4/4']);
    const verbose = await mandate(['policy', 'test', dir, '--verbose', '--run', 'wiki']);
    assert.deepEqual(lines(verbose.stdout), [`PASS ${dir}/a-pass.test.yaml:4: alice reads the wiki`, '-'.repeat(80), 'PASS: 1/1']);
  });
  await withDir({ ...CLEAN_POLICIES, 'a-pass.test.yaml': PASSING_TESTS, 'b-fail.test.yaml': FAILING_TESTS, 'c-invalid.test.yaml': INVALID_TESTS }, async (dir) => {
    const r = await mandate(['policy', 'test', dir]);
    assert.equal(r.code, 1);
    const out = lines(r.stdout);
    assert.ok(out.includes(`ERROR ${dir}/c-invalid.test.yaml:10:13: case #2 "not an outcome": tests[1].expect: Invalid option: expected one of "allow"|"deny"|"approval_required"|"error"`), r.stdout);
    const at = out.indexOf(`FAIL ${dir}/b-fail.test.yaml:9: bob reads the wiki`);
    assert.ok(at >= 0, r.stdout);
    assert.deepEqual(out.slice(at + 1, at + 4), ['  expected: allow', '  actual:   deny', '  reason:   User::"bob": no policy permits this']);
    assert.ok(out.includes(`FAIL ${dir}/b-fail.test.yaml:16: names the wrong policy`));
    assert.ok(out.some((l) => /^ {2}why: {6}allow as expected, but deny-high-risk was not among the determining policies/.test(l)));
    assert.ok(out.includes('  actual:   error ERR_INVALID_CONTEXT'));
    assert.deepEqual(out.slice(-3), ['PASS: 5/8', 'FAIL: 3/8', 'ERROR: 1 invalid test file']);

    const json = await mandate(['policy', 'test', dir, '--json']);
    assert.equal(json.code, 1);
    const report = JSON.parse(json.stdout) as { passed: number; failed: number; invalidFiles: Array<{ file: string }> };
    assert.deepEqual([report.passed, report.failed, report.invalidFiles.map((f) => f.file)], [5, 3, ['c-invalid.test.yaml']]);
  });
  await withDir(CLEAN_POLICIES, async (dir) => {
    const none = await mandate(['policy', 'test', dir]);
    assert.equal(none.code, 1);
    assert.match(none.stdout, /no test cases found/);
  });
  await withDir({ 'bad.cedar': INVALID_POLICY, 'a.test.yaml': PASSING_TESTS }, async (dir) => {
    const refused = await mandate(['policy', 'test', dir]);
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, new RegExp(`^${dir}/bad\\.cedar:2:\\d+: error: `, 'm'));
  });
});

test('policy eval: allow exits 0, deny 1; per principal with determining policies and file:line; strict Type::"id"', async () => {
  await withDir(CLEAN_POLICIES, async (dir) => {
    const allow = await mandate(['policy', 'eval', '--dir', dir, '--principal', 'User::"alice"', '--action', 'read', '--resource', 'Dataset::"wiki"', '--now', '2026-03-02T12:00:00Z']);
    assert.equal(allow.code, 0, allow.stderr);
    const out = lines(allow.stdout);
    assert.equal(out[0], 'ALLOW: read Dataset::"wiki" for User::"alice"');
    assert.equal(out[1], '  User::"alice"  allow  permit sales-read-internal (users.cedar:2)');

    const deny = await mandate(['policy', 'eval', '--dir', dir, '--principal', 'User::"alice"', '--actor', 'Agent::"helper"', '--action', 'Action::"read"', '--resource', 'Dataset::"wiki"', '--context', '{"risk": {"score": 90, "signals": []}}']);
    assert.equal(deny.code, 1);
    const d = lines(deny.stdout);
    assert.equal(d[0], 'DENY: read Dataset::"wiki" for User::"alice" via Agent::"helper"');
    assert.ok(d.includes('  User::"alice"    deny   forbid deny-high-risk (guards.cedar:2)'), deny.stdout);

    const json = await mandate(['policy', 'eval', '--dir', dir, '--request', '-', '--json'], { input: JSON.stringify({ principal: 'User::"bob"', action: 'read', resource: { type: 'Dataset', id: 'wiki' } }) });
    assert.equal(json.code, 1);
    const decision = JSON.parse(json.stdout) as { decision: string; principals: unknown[]; policySetVersion: string };
    assert.equal(decision.decision, 'deny');
    assert.match(decision.policySetVersion, /^sha256:/);

    const badRef = await mandate(['policy', 'eval', '--dir', dir, '--principal', 'User:alice', '--action', 'read', '--resource', 'Dataset::"wiki"']);
    assert.equal(badRef.code, 2);
    assert.equal(lines(badRef.stderr)[0], 'mandate policy eval: ERR_USAGE: --principal: "User:alice" is not an entity reference (no "::" between type and id); write Type::"id", e.g. User::"alice"');
    const badJson = await mandate(['policy', 'eval', '--dir', dir, '--principal', 'User::"alice"', '--action', 'read', '--resource', 'Dataset::"wiki"', '--context', '{nope']);
    assert.equal(badJson.code, 2);
    assert.match(badJson.stderr, /--context is not valid JSON/);
    const missing = await mandate(['policy', 'eval', '--dir', dir, '--action', 'read']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing --principal, --resource/);

    // A request the engine refuses: one line with the stable code, exit 1, no stack trace.
    const refused = await mandate(['policy', 'eval', '--dir', dir, '--principal', 'User::"alice"', '--action', 'fly', '--resource', 'Dataset::"wiki"']);
    assert.equal(refused.code, 1);
    assert.deepEqual(lines(refused.stderr), [`mandate policy eval: ERR_UNKNOWN_ACTION: action "fly" is not defined by the policy schema; known actions: ${refused.stderr.split('known actions: ')[1]?.trim()}`]);
    const debug = await mandate(['policy', 'eval', '--dir', dir, '--principal', 'User::"alice"', '--action', 'fly', '--resource', 'Dataset::"wiki"'], { env: { MANDATE_DEBUG: '1' } });
    assert.match(debug.stderr, /\n\s+at /);
  });
});

test('policy fmt: --check lists files and fails, --write rewrites keeping comments, a single file prints', async () => {
  await withDir(CLEAN_POLICIES, async (dir) => {
    const check = await mandate(['policy', 'fmt', dir, '--check']);
    assert.equal(check.code, 1);
    // guards.cedar is already formatted as Cedar's formatter would.
    assert.deepEqual(lines(check.stdout), [`not formatted: ${dir}/users.cedar`]);
    const single = await mandate(['policy', 'fmt', join(dir, 'users.cedar')]);
    assert.equal(single.code, 0);
    assert.match(single.stdout, /^\/\/ Sales reads internal data\.\n@id\("sales-read-internal"\)\npermit \(\n {2}principal in Group::"sales",\n/);
    const before = await readFile(join(dir, 'users.cedar'), 'utf8');
    assert.equal(before, CLEAN_POLICIES['users.cedar']);
    const write = await mandate(['policy', 'fmt', dir, '--write']);
    assert.equal(write.code, 0, write.stdout);
    assert.deepEqual(lines(write.stdout), [`formatted ${dir}/users.cedar`]);
    const after = await readFile(join(dir, 'users.cedar'), 'utf8');
    assert.notEqual(after, before);
    assert.match(after, /^\/\/ Sales reads internal data\.\n@id\("sales-read-internal"\)/);
    assert.match(after, /\n\n\/\/ Alice may send through the CRM tool, to Acme only\.\n/);
    assert.equal((await mandate(['policy', 'fmt', dir, '--check'])).code, 0);
    assert.equal((await mandate(['policy', 'validate', dir])).code, 0);
    assert.equal((await mandate(['policy', 'fmt', dir, '--check', '--write'])).code, 2);
  });
});

test('policy analyze: lint flags the over-broad fixture (--fail-on error exits 1), not the clean one; conditional cells show residuals', async () => {
  await withDir(OVERBROAD_POLICIES, async (dir) => {
    const r = await mandate(['policy', 'analyze', dir, '--fail-on', 'error']);
    assert.equal(r.code, 1);
    const out = lines(r.stdout);
    assert.ok(out.includes('Lint: 2 errors'), r.stdout);
    assert.ok(out.some((l) => l.startsWith(`${dir}/oops.cedar:1: error: anyone-sends [unconditioned-effect-permit]: permits send to every principal on every resource with no condition`)));
    assert.ok(out.includes(`${dir}/oops.cedar:1: error: anyone-sends [permit-any-principal]: principal is unconstrained: every user, agent and service, active or not, is permitted.`));
    assert.equal((await mandate(['policy', 'analyze', dir])).code, 0);
    assert.equal((await mandate(['policy', 'analyze', dir, '--fail-on', 'nope'])).code, 2);
  });
  await withDir(CLEAN_POLICIES, async (dir) => {
    const r = await mandate(['policy', 'analyze', dir, '--fail-on', 'warning']);
    assert.equal(r.code, 0, r.stdout);
    const out = lines(r.stdout);
    assert.ok(out.includes('Lint: no findings'));
    const alice = out.indexOf('User::"alice"');
    // The risk forbid applies to every cell alice may reach: written once, as the row's guard.
    assert.equal(out[alice + 1], '  guard: forbid deny-high-risk (guards.cedar:2): context has risk && context.risk.score >= 80');
    assert.match(out[alice + 2] ?? '', /^ {2}allow\* +read +Dataset::"wiki"$/);
    assert.match(out[alice + 3] ?? '', /^ {2}conditional +send +Tool::"crm\.update"$/);
    assert.equal(out[out.indexOf('User::"bob"') + 1], '  (deny everything)');
    assert.equal(out[alice + 4], `${' '.repeat(15)}permit alice-send-internal (users.cedar:7): context has args && context.args has recipientDomain && context.args.recipientDomain == "acme.example"`);
    const json = JSON.parse((await mandate(['policy', 'analyze', dir, '--json', '--principal', 'User::"alice"'])).stdout) as { matrix: { rows: Array<{ principal: { id: string } }> }; findings: unknown[] };
    assert.deepEqual(json.matrix.rows.map((x) => x.principal.id), ['alice']);
    assert.deepEqual(json.findings, []);
  });
});

test('policy analyze --against: the diff names what the other set newly allows', async () => {
  const clean = await writePolicyDir(CLEAN_POLICIES);
  const broad = await writePolicyDir(OVERBROAD_POLICIES);
  try {
    const r = await mandate(['policy', 'analyze', clean.dir, '--against', broad.dir]);
    assert.equal(r.code, 0, r.stderr);
    const out = lines(r.stdout);
    assert.match(out[0] ?? '', /^Changes from .* to .*: \d+ cells$/);
    assert.ok(out.includes('  newly allows User::"bob" → send Tool::"crm.update" [anyone-sends]'), r.stdout);
    assert.ok(out.includes('  newly allows Agent::"helper" → send Tool::"crm.update" (acting for User::"bob") [anyone-sends]'), r.stdout);
    assert.ok(out.includes('  no longer needs a condition: User::"alice" → send Tool::"crm.update" [anyone-sends]'), r.stdout);
    assert.ok(out.some((l) => l.startsWith(`${broad.dir}/oops.cedar:1: error: anyone-sends`)));
    const failing = await mandate(['policy', 'analyze', clean.dir, broad.dir, '--fail-on', 'error']);
    assert.equal(failing.code, 1);
    const json = JSON.parse((await mandate(['policy', 'analyze', clean.dir, '--against', broad.dir, '--json'])).stdout) as { changes: Array<{ kind: string }> };
    assert.ok(json.changes.some((c) => c.kind === 'newly-allows'));
    assert.equal((await mandate(['policy', 'analyze', clean.dir, broad.dir, '--against', broad.dir])).code, 2);
  } finally {
    await clean.cleanup();
    await broad.cleanup();
  }
});

test('the example policies: their tests pass, and analyze flags examples/overbroad and shows what it newly allows', { skip: !existsSync(join(ROOT, 'examples/overbroad/oops.cedar')) }, async () => {
  const t = await mandate(['policy', 'test', 'examples/policies']);
  assert.equal(t.code, 0, t.stdout);
  assert.match(t.stdout, /^PASS: (\d+)\/\1$/m);
  const lint = await mandate(['policy', 'analyze', 'examples/overbroad', '--fail-on', 'error']);
  assert.equal(lint.code, 1);
  assert.match(lint.stdout, /^examples\/overbroad\/oops\.cedar:\d+: error: oops-anyone-sends \[unconditioned-effect-permit\]/m);
  assert.match(lint.stdout, /^examples\/overbroad\/oops\.cedar:\d+: error: oops-anyone-writes \[unconditioned-effect-permit\]/m);
  const diff = await mandate(['policy', 'analyze', 'examples/policies', '--against', 'examples/overbroad']);
  assert.equal(diff.code, 0);
  assert.match(diff.stdout, /^ {2}newly allows Service::"crm-sync" → send .*Tool::"email\.send".* \[oops-anyone-sends\]$/m);
  assert.match(diff.stdout, /^ {2}newly allows User::"alice" → write .*Dataset::"hr-salaries".* \[oops-anyone-writes\]$/m);
});

/**
 * The two ways a person starts Mandate, run as a person would: `mandate demo` (what `npm start` runs) and
 * `mandate serve`. The demo's printed curl lines are executed as printed (their URL, header and body) and
 * must give the decisions their titles promise.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { writePolicyDir } from '../fixtures/policy-dir.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/mandate.js');

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function run(args: string[], env: Record<string, string>): Started {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function waitFor(predicate: () => boolean, what: string, started: Started, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (started.child.exitCode !== null) throw new Error(`${what}: process exited ${started.child.exitCode}\n${started.stderr()}`);
    if (Date.now() > deadline) throw new Error(`${what}: timed out\n${started.stdout()}\n${started.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Parses one printed curl line into what fetch needs; only the flags the banner uses are understood. */
function parseCurl(line: string): { url: string; headers: Record<string, string>; body: string } {
  const url = /curl -s (\S+)/.exec(line)?.[1];
  const headers: Record<string, string> = {};
  for (const m of line.matchAll(/-H (?:"([^"]*)"|'([^']*)')/g)) {
    const h = (m[1] ?? m[2]) as string;
    const i = h.indexOf(':');
    headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  const body = /-d '((?:[^']|'\\'')*)'/.exec(line)?.[1]?.replace(/'\\''/g, "'");
  assert.ok(url && body, `unparseable curl line: ${line}`);
  return { url, headers, body };
}

test('mandate demo: binds 127.0.0.1, prints curl lines that work, audits, stops cleanly on SIGTERM', async () => {
  const port = await freePort();
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-demo-'));
  const demo = run(['demo'], { MANDATE_PORT: String(port), MANDATE_DATA_DIR: dataDir, MANDATE_HOST: '0.0.0.0', MANDATE_LOG_LEVEL: 'warn' });
  try {
    await waitFor(() => demo.stdout().includes('Ctrl-C stops'), 'demo banner', demo);
    assert.match(demo.stdout(), new RegExp(`listening\\s+http://127\\.0\\.0\\.1:${port}`));
    assert.match(demo.stdout(), /DEMO ONLY/);
    assert.match(demo.stderr(), /ignoring MANDATE_HOST=0\.0\.0\.0/);

    const curls = demo.stdout().split('\n').filter((l) => l.trim().startsWith('curl -s') && l.includes('/access/v1/evaluation'));
    assert.equal(curls.length, 3);
    const results = [];
    for (const line of curls) {
      const { url, headers, body } = parseCurl(line);
      assert.ok(url.startsWith(`http://127.0.0.1:${port}/`));
      const res = await fetch(url, { method: 'POST', headers, body });
      assert.equal(res.status, 200);
      results.push((await res.json()) as { decision: boolean; context: { approval?: { required: boolean } } });
    }
    assert.deepEqual(results.map((r) => r.decision), [true, false, false]);
    assert.equal(results[2]?.context.approval?.required, true);

    // Readiness, and the other printed lines.
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 200);
    // The credential is this run's: a guessed one is refused.
    const wrong = await fetch(`http://127.0.0.1:${port}/access/v1/evaluation`, { method: 'POST', headers: { authorization: 'Bearer mandate_guess', 'content-type': 'application/json' }, body: '{}' });
    assert.equal(wrong.status, 401);
    // The printed credential never appears in a log line.
    const secret = /MANDATE_CREDENTIAL=(\S+)/.exec(demo.stdout())?.[1] as string;
    assert.ok(secret);
    assert.ok(!demo.stderr().includes(secret));

    demo.child.kill('SIGTERM');
    assert.equal(await demo.exited, 0);

    // Every decision and refusal was committed to the audit log in the demo's SQLite store.
    const db = new Database(join(dataDir, 'mandate.db'), { readonly: true });
    try {
      const rows = db.prepare('SELECT type, outcome FROM audit_events ORDER BY seq').all() as Array<{ type: string; outcome: string }>;
      assert.deepEqual(rows.filter((r) => r.type === 'decision').map((r) => r.outcome), ['allow', 'deny', 'approval_required']);
      assert.ok(rows.some((r) => r.type === 'auth.failure'));
      assert.ok(rows.some((r) => r.type === 'policy.load'));
      const all = JSON.stringify(db.prepare('SELECT * FROM audit_events').all());
      assert.ok(!all.includes(secret), 'the credential never reaches the audit log');
    } finally {
      db.close();
    }
  } finally {
    demo.child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('mandate serve: no demo parts; reloads on change and SIGHUP, refusing bad sets; refuses to start on bad policies or configuration', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-serve-'));
  const fx = await writePolicyDir({ 'p.cedar': '@id("ok") permit(principal, action == Action::"read", resource);' });
  try {
    // A valid set, no credentials configured: the node serves, and nobody can ask for a decision.
    const port = await freePort();
    const serve = run(['serve'], { MANDATE_PORT: String(port), MANDATE_DATA_DIR: dataDir, MANDATE_POLICY_DIR: fx.dir, MANDATE_LOG_LEVEL: 'warn' });
    try {
      await waitFor(() => serve.stderr().includes('serving on'), 'serve start', serve);
      assert.equal(serve.stdout().includes('DEMO'), false);
      const res = await fetch(`http://127.0.0.1:${port}/access/v1/evaluation`, { method: 'POST', headers: { authorization: 'Bearer anything', 'content-type': 'application/json' }, body: '{}' });
      assert.equal(res.status, 401);
      const version = async () => ((await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as { checks: { policy: { version?: string } } }).checks.policy.version;
      const v1 = await version();
      assert.match(v1 ?? '', /^sha256:/);

      // The directory is watched: a valid change is loaded...
      await fx.write('more.cedar', '@id("more") permit(principal, action == Action::"call", resource);');
      const deadline = Date.now() + 20_000;
      while ((await version()) === v1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const v2 = await version();
      assert.notEqual(v2, v1, 'the watcher loaded the new set');
      // ...an invalid one is refused whole, and the previous set keeps serving.
      await fx.write('broken.cedar', 'permit(principal, action, resource) when { principal.nope };');
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(await version(), v2);
      assert.match(serve.stdout() + serve.stderr(), /broken\.cedar:1:\d+/);
      await rm(join(fx.dir, 'broken.cedar'));
      serve.child.kill('SIGTERM');
      assert.equal(await serve.exited, 0);
    } finally {
      serve.child.kill('SIGKILL');
    }

    // With the watcher off, SIGHUP reloads.
    const hupPort = await freePort();
    const hupCfg = join(dataDir, 'hup.yaml');
    await writeFile(hupCfg, `server:\n  port: ${hupPort}\nstore:\n  dataDir: ${JSON.stringify(dataDir)}\npolicy:\n  dir: ${JSON.stringify(fx.dir)}\n  watch: false\nlog:\n  level: warn\n`);
    const hup = run(['serve', '--config', hupCfg], {});
    try {
      await waitFor(() => hup.stderr().includes('serving on'), 'serve start (SIGHUP)', hup);
      const version = async () => ((await (await fetch(`http://127.0.0.1:${hupPort}/readyz`)).json()) as { checks: { policy: { version?: string } } }).checks.policy.version;
      const before = await version();
      await fx.write('hup.cedar', '@id("hup") permit(principal, action == Action::"send", resource);');
      await new Promise((r) => setTimeout(r, 800));
      assert.equal(await version(), before, 'no watcher: nothing reloads by itself');
      hup.child.kill('SIGHUP');
      const deadline = Date.now() + 20_000;
      while ((await version()) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.notEqual(await version(), before, 'SIGHUP reloaded the set');
      hup.child.kill('SIGTERM');
      assert.equal(await hup.exited, 0);
    } finally {
      hup.child.kill('SIGKILL');
    }

    // An invalid policy set: refuses to start, naming file:line:col.
    await fx.write('bad.cedar', 'permit(principal, action, resource) when { principal.nope };\n');
    const bad = run(['serve'], { MANDATE_PORT: String(await freePort()), MANDATE_DATA_DIR: dataDir, MANDATE_POLICY_DIR: fx.dir });
    assert.equal(await bad.exited, 1);
    assert.match(bad.stderr(), /ERR_POLICY_INVALID/);
    assert.match(bad.stderr(), /bad\.cedar:1:\d+:/);

    // An invalid configuration file: the exact key path, what was found, what is expected.
    const cfg = join(dataDir, 'mandate.yaml');
    await writeFile(cfg, 'server:\n  port: "eighty"\n');
    const badCfg = run(['serve', '--config', cfg], {});
    assert.equal(await badCfg.exited, 1);
    assert.match(badCfg.stderr(), /ERR_CONFIG_INVALID/);
    assert.match(badCfg.stderr(), /server\.port: found .*eighty/);
  } finally {
    await fx.cleanup();
    await rm(dataDir, { recursive: true, force: true });
  }
});

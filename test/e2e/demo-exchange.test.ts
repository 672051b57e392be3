/**
 * The demo's token exchange, end to end on loopback: `mandate demo` (in process, port 0, a temp data directory)
 * with its demo IdP, agents and resources; then the `npm run demo:exchange` walk-through — alice's token from the
 * demo IdP, helpdesk-assistant's private_key_jwt + DPoP exchange through openid-client, introspection, refusals,
 * revocation — and the script itself as a person runs it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { startDemo } from '../../src/cli/demo-command.ts';
import { DEMO_CRM_RESOURCE } from '../../src/demo/demo-resources.ts';
import { DEMO_USER_TOKEN_AUDIENCE, startDemoIdp } from '../../src/demo/demo-idp.ts';
import { readDemoInfo } from '../../src/demo/demo-info.ts';
import { runDemoExchange } from '../../scripts/demo-exchange.ts';

const ROOT = new URL('../../', import.meta.url).pathname;

const mode = async (path: string) => ((await stat(path)).mode & 0o777).toString(8);

function runScript(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/demo-exchange.ts'), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

test('demo: alice\'s token is exchanged by her help desk assistant for a DPoP-bound CRM mandate with the intersected scope; refusals; revocation', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-demo-exchange-'));
  const env = { MANDATE_DATA_DIR: dataDir, MANDATE_LOG_LEVEL: 'silent' };
  let demo = await startDemo({ env, cwd: ROOT, port: 0 });
  try {
    // First run: the KEK and the agents' private keys are created, readable by their owner only.
    assert.equal(await mode(join(dataDir, 'kek')), '600');
    assert.equal(await mode(join(dataDir, 'agents')), '700');
    const info = await readDemoInfo(dataDir);
    assert.deepEqual(info.agents.map((a) => a.id), ['helpdesk-assistant', 'sales-outreach']);
    for (const agent of info.agents) assert.equal(await mode(agent.privateJwkFile), '600');
    assert.equal(info.mandate.url, demo.node.url);
    assert.match(info.mandate.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(info.idp.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);

    // demo.json names files, never holds a secret: no KEK, no private key member, no AuthZEN credential.
    const infoText = await readFile(demo.infoFile, 'utf8');
    const kek = (await readFile(join(dataDir, 'kek'), 'utf8')).trim();
    const helpdeskKey = JSON.parse(await readFile(info.agents[0]?.privateJwkFile as string, 'utf8')) as { d: string; kid: string };
    for (const secret of [kek, helpdeskKey.d, demo.secret]) assert.ok(!infoText.includes(secret));
    assert.ok(!demo.banner.includes(kek) && !demo.banner.includes(helpdeskKey.d));

    // The banner tells how to run the walk-through, both ways.
    assert.match(demo.banner, /npm run demo:exchange\n/);
    assert.ok(demo.banner.includes(`${info.idp.issuer}/demo`));
    assert.match(demo.banner, /DEMO ONLY/);

    // The token service is up, with the demo's resources.
    const metadata = (await (await fetch(`${info.mandate.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    assert.equal(metadata.issuer, info.mandate.issuer);

    const lines: string[] = [];
    const report = await runDemoExchange(info, { out: (l) => lines.push(l), say: (l) => lines.push(l) });

    assert.equal(report.userClaims.sub, 'alice');
    assert.equal(report.userClaims.iss, info.idp.issuer);
    assert.equal(report.userClaims.aud, DEMO_USER_TOKEN_AUDIENCE);

    // The mandate: sub = the user, act = the agent, one audience, the scope policy allows both, DPoP-bound.
    const { claims, response } = report.mandate;
    assert.equal(decodeProtectedHeader(report.mandate.token).typ, 'at+jwt');
    assert.equal(claims.iss, info.mandate.issuer);
    assert.equal(claims.sub, 'alice');
    assert.deepEqual(claims.act, { sub: 'helpdesk-assistant' });
    assert.equal(claims.client_id, 'helpdesk-assistant');
    assert.equal(claims.aud, DEMO_CRM_RESOURCE);
    assert.equal(report.requestedScope, 'crm.search crm.read');
    assert.equal(claims.scope, 'crm.search', 'crm.read is alice\'s but not her chat assistant\'s: the intersection');
    assert.equal(claims.cnf?.jkt, report.mandate.dpopJkt);
    assert.equal(response.token_type.toLowerCase(), 'dpop');
    assert.ok(typeof claims.exp === 'number' && typeof claims.iat === 'number' && claims.exp - claims.iat <= 300);
    assert.ok((claims.exp as number) <= (report.userClaims.exp as number), 'never outlives the user\'s token');
    assert.equal(report.verified, true);

    assert.equal(report.introspection.active, true);
    assert.equal(report.introspection.sub, 'alice');
    assert.equal(report.introspection.scope, 'crm.search');
    assert.equal(report.introspection.client_id, 'helpdesk-assistant');

    // Refusals are RFC 6749 errors.
    assert.equal(report.refusedBob.status, 400);
    assert.equal(report.refusedBob.error, 'invalid_scope');
    assert.match(report.refusedBob.description, /helpdesk-assistant/);
    assert.equal(report.refusedAutonomous.error, 'invalid_scope');
    assert.match(report.refusedAutonomous.description, /sales-outreach/);

    // Revoked: introspection says only that.
    assert.deepEqual(report.afterRevocation, { active: false });

    // The explanations name every claim the brief promises.
    const printed = lines.join('\n');
    for (const claim of ['sub ', 'act ', 'aud ', 'scope ', 'cnf.jkt ', 'exp ']) assert.ok(printed.includes(`    ${claim}`), `explains ${claim}`);

    // The script as a person runs it, against the same demo: the walk-through, and a user token for the manual path.
    const scriptEnv = { MANDATE_DATA_DIR: dataDir };
    const whole = await runScript([], scriptEnv);
    assert.equal(whole.code, 0, whole.stderr);
    assert.match(whole.stdout, /invalid_scope/);
    assert.match(whole.stdout, /"active":false/);
    const token = await runScript(['token', 'bob'], scriptEnv);
    assert.equal(token.code, 0, token.stderr);
    assert.equal(decodeJwt(token.stdout.trim()).sub, 'bob');
    const exchanged = await runScript(['exchange', '--agent', 'helpdesk-assistant', '--resource', DEMO_CRM_RESOURCE, '--scope', 'crm.search'], { ...scriptEnv, USER_TOKEN: token.stdout.trim() });
    assert.equal(exchanged.code, 0, exchanged.stderr);
    assert.deepEqual(decodeJwt(exchanged.stdout.trim()).act, { sub: 'helpdesk-assistant' });
    const refused = await runScript(['exchange', '--agent', 'helpdesk-assistant', '--resource', DEMO_CRM_RESOURCE, '--scope', 'crm.write'], { ...scriptEnv, USER_TOKEN: token.stdout.trim() });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /invalid_scope/);

    await demo.stop();

    // Issuance and revocation are in the audit log.
    const db = new Database(join(dataDir, 'mandate.db'), { readonly: true });
    try {
      const types = (db.prepare('SELECT type FROM audit_events').all() as Array<{ type: string }>).map((r) => r.type);
      assert.ok(types.includes('token.issue'));
      assert.ok(types.includes('token.revoke'));
    } finally {
      db.close();
    }

    // Second run: the same KEK and agent keys are kept; exchanges still work.
    demo = await startDemo({ env, cwd: ROOT, port: 0 });
    assert.equal((await readFile(join(dataDir, 'kek'), 'utf8')).trim(), kek);
    const again = await readDemoInfo(dataDir);
    assert.equal((JSON.parse(await readFile(again.agents[0]?.privateJwkFile as string, 'utf8')) as { kid: string }).kid, helpdeskKey.kid);
    const second = await runDemoExchange(again, { out: () => undefined, say: () => undefined });
    assert.equal(second.mandate.claims.scope, 'crm.search');
  } finally {
    await demo.stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('demo IdP: the browser flow (HTML login form, consent, callback page with the token) works with cookies only', async () => {
  const idp = await startDemoIdp();
  try {
    const cookies = new Map<string, string>();
    const send = async (url: string, init: RequestInit = {}) => {
      const res = await fetch(url, { ...init, redirect: 'manual', headers: { accept: 'text/html', cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; '), ...(init.headers ?? {}) } });
      for (const c of res.headers.getSetCookie()) {
        const [pair = ''] = c.split(';');
        const i = pair.indexOf('=');
        cookies.set(pair.slice(0, i), pair.slice(i + 1));
      }
      return res;
    };
    let res = await send(idp.browserLoginUrl);
    let html = '';
    for (let i = 0; i < 12; i += 1) {
      const location = res.headers.get('location');
      if (location !== null) {
        res = await send(new URL(location, idp.issuer).href);
        continue;
      }
      html = await res.text();
      const form = /<form method="post" action="([^"]+)">/.exec(html);
      if (form === null) break;
      const isLogin = html.includes('name="login"');
      assert.ok(html.includes('DEMO ONLY'));
      res = await send(new URL(form[1] as string, idp.issuer).href, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: isLogin ? 'login=alice' : '',
      });
    }
    assert.equal(res.status, 200);
    const token = /<textarea readonly>([^<]+)<\/textarea>/.exec(html)?.[1];
    assert.ok(token, html);
    const claims = decodeJwt(token);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.aud, DEMO_USER_TOKEN_AUDIENCE);
  } finally {
    await idp.close();
  }
});

test('demo parts are reachable only from the demo command: nothing else in src/ imports src/demo/', async () => {
  const offenders: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'demo') await walk(path);
      } else if (entry.name.endsWith('.ts') && path !== join(ROOT, 'src/cli/demo-command.ts')) {
        if (/from '[^']*\/demo\/[^']*'/.test(await readFile(path, 'utf8'))) offenders.push(path.slice(ROOT.length));
      }
    }
  };
  await walk(join(ROOT, 'src'));
  assert.deepEqual(offenders, [], 'mandate serve never starts demo parts (DESIGN.md)');
});

/**
 * The task admin API against a real node (startMandate) with the example policies and workflows: tasks are
 * opened through real token exchanges, then listed, read and ended; users disabled and enabled; lockdown engaged
 * and lifted; the revocation feed read; an agent's status change revokes its tasks. Every endpoint's scopes
 * (401/403), bad input (400 with every problem named), the store's revocations and the audit events are checked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { decodeJwt, SignJWT } from 'jose';
import { stringify } from 'yaml';
import type { AuditEvent } from '../../src/audit/audit-event.ts';
import { generateCredentialSecret, hashCredential } from '../../src/config/credentials.ts';
import { parseConfig } from '../../src/config/index.ts';
import { startMandate, type RunningMandate } from '../../src/cli/start-mandate.ts';
import { createLogger } from '../../src/server/index.ts';
import { generateKek } from '../../src/tokens/key-encryption.ts';
import { expectProblem } from './harness.ts';
import { ACCESS_TOKEN, AUD, EXAMPLES, EXCHANGE, ISS, JWT_BEARER, newKey, type Key } from '../fixtures/oauth-world.ts';

const CRM = 'https://crm.test/mcp';


/** Credentials (pre-shared, `authzen.credentials`) by the scopes they hold. */
const CREDENTIALS = {
  'tasks-reader': ['tasks:read'],
  'tasks-admin': ['tasks:write'],
  'users-reader': ['users:read'],
  'users-admin': ['users:write'],
  'lockdown-admin': ['lockdown'],
  registrar: ['principals:write'],
  pep: ['evaluate'],
} as const;
type Caller = keyof typeof CREDENTIALS;

interface World {
  node: RunningMandate;
  url: string;
  idp: Key;
  outreach: Key;
  console: Key;
  secrets: Record<Caller, string>;
  close(): Promise<void>;
}

async function startWorld(): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-task-admin-'));
  const policyDir = join(dir, 'policies');
  await cp(EXAMPLES, policyDir, { recursive: true });
  const idp = await newKey('corp');
  await writeFile(join(dir, 'corp.json'), JSON.stringify({ keys: [idp.publicJwk] }));
  const outreach = await newKey('outreach-1');
  const consoleKey = await newKey('console-1');
  const secrets = Object.fromEntries(Object.keys(CREDENTIALS).map((id) => [id, generateCredentialSecret()])) as Record<Caller, string>;
  const config = parseConfig(
    stringify({
      store: { dataDir: join(dir, 'data') },
      policy: { dir: policyDir, watch: false },
      identity: { issuers: [{ issuer: ISS, jwksFile: 'corp.json', audiences: [AUD] }] },
      authzen: { credentials: Object.entries(CREDENTIALS).map(([id, scopes]) => ({ id, hash: hashCredential(secrets[id as Caller]), scopes: [...scopes] })) },
      resources: [
        {
          uri: CRM,
          scopes: {
            'crm.search': [{ action: 'call', resource: { type: 'Tool', id: 'crm.search' } }],
            'crm.read': [{ action: 'read', resource: { type: 'Dataset', id: 'crm' } }],
          },
        },
      ],
      principals: [
        { id: 'sales-outreach', kind: 'agent', name: 'Outreach', owner: 'alice', mode: 'autonomous', workflows: ['lead-followup'], audiences: [CRM], dpop: 'optional', credentials: [{ type: 'jwks', jwks: { keys: [outreach.publicJwk] } }] },
        // An operator's console: Mandate's API through client_credentials mandates (these survive lockdown).
        { id: 'ops-console', kind: 'service', name: 'Ops console', owner: 'carol', apiScopes: ['lockdown', 'tasks:read'], dpop: 'optional', credentials: [{ type: 'jwks', jwks: { keys: [consoleKey.publicJwk] } }] },
      ],
    }),
    { source: 'test', env: {}, baseDir: dir, cwd: dir },
  );
  config.server.port = 0;
  const node = await startMandate(config, { env: { MANDATE_KEK: generateKek() }, logger: createLogger({ level: 'silent' }) });
  return {
    node,
    url: node.url,
    idp,
    outreach,
    console: consoleKey,
    secrets,
    async close() {
      await node.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let shared: Promise<World> | undefined;
const world = () => (shared ??= startWorld());
test.after(async () => {
  if (shared) await (await shared).close();
});

const nowS = () => Math.floor(Date.now() / 1000);
const userToken = (w: World, sub = 'alice') =>
  new SignJWT({ sub, jti: randomUUID(), client_id: 'corp-app' }).setProtectedHeader({ alg: 'ES256', kid: 'corp', typ: 'at+jwt' }).setIssuer(ISS).setAudience(AUD).setIssuedAt().setExpirationTime(nowS() + 600).sign(w.idp.privateKey);
const assertion = (w: World, clientId: string, key: Key) =>
  new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer(clientId).setSubject(clientId).setAudience(w.url).setIssuedAt().setExpirationTime('60s').sign(key.privateKey);

async function form(w: World, path: string, fields: Record<string, string>) {
  const res = await fetch(`${w.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields) });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown> };
}

/** Opens a lead-followup task for `user` through a real token exchange; resolves the task id and its tokens. */
async function openTask(w: World, user = 'alice') {
  const r = await form(w, '/oauth/token', {
    grant_type: EXCHANGE,
    subject_token: await userToken(w, user),
    subject_token_type: ACCESS_TOKEN,
    resource: CRM,
    scope: 'crm.search crm.read',
    authorization_details: JSON.stringify([{ type: 'mandate_task', workflow: 'lead-followup', purpose: 'follow up the ACME lead' }]),
    client_assertion_type: JWT_BEARER,
    client_assertion: await assertion(w, 'sales-outreach', w.outreach),
  });
  return {
    status: r.status,
    body: r.body,
    taskId: String((r.body.authorization_details as Array<Record<string, unknown>> | undefined)?.[0]?.task_id),
    accessToken: String(r.body.access_token),
    refreshToken: String(r.body.refresh_token),
  };
}

async function introspect(w: World, token: string) {
  return (await form(w, '/oauth/introspect', { token, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'sales-outreach', w.outreach) })).body;
}

/** Calls the admin API as a configured credential (or with a raw Authorization value, or none). */
async function call(w: World, method: string, path: string, options: { as?: Caller; authorization?: string | null; body?: unknown; raw?: string } = {}) {
  const authorization = options.authorization === undefined ? `Bearer ${w.secrets[options.as ?? 'tasks-admin']}` : options.authorization;
  const hasBody = options.body !== undefined || options.raw !== undefined;
  return fetch(`${w.url}${path}`, {
    method,
    headers: { ...(authorization === null ? {} : { authorization }), ...(hasBody ? { 'content-type': 'application/json' } : {}) },
    ...(hasBody ? { body: options.raw ?? JSON.stringify(options.body) } : {}),
  });
}
const json = async (res: Response) => (await res.json()) as Record<string, unknown>;

const events = (w: World): Promise<AuditEvent[]> => w.node.store.audit.list({ afterSeq: 0, limit: 10_000 });
const dataOf = (e: AuditEvent) => (e.data ?? {}) as Record<string, unknown>;

test('every endpoint needs its scope: 401 without a credential, 403 with the wrong one (audited), the handler never runs', async () => {
  const w = await world();
  const task = await openTask(w);
  assert.equal(task.status, 200, JSON.stringify(task.body));
  const user = { iss: ISS, sub: 'nobody' };
  const table: Array<{ method: string; path: string; body?: unknown; allowed: Caller[] }> = [
    { method: 'GET', path: '/admin/v1/tasks', allowed: ['tasks-reader', 'tasks-admin'] },
    { method: 'GET', path: `/admin/v1/tasks/${task.taskId}`, allowed: ['tasks-reader', 'tasks-admin'] },
    { method: 'POST', path: `/admin/v1/tasks/${task.taskId}/end`, body: {}, allowed: ['tasks-admin'] },
    { method: 'GET', path: '/admin/v1/revocations', allowed: ['tasks-reader', 'tasks-admin'] },
    { method: 'POST', path: '/admin/v1/users/disable', body: { ...user, reason: 'x' }, allowed: ['users-admin'] },
    { method: 'POST', path: '/admin/v1/users/enable', body: user, allowed: ['users-admin'] },
    { method: 'GET', path: '/admin/v1/users/disabled', allowed: ['users-reader', 'users-admin'] },
    { method: 'GET', path: '/admin/v1/lockdown', allowed: ['lockdown-admin'] },
    { method: 'POST', path: '/admin/v1/lockdown', body: { reason: 'x' }, allowed: ['lockdown-admin'] },
    { method: 'DELETE', path: '/admin/v1/lockdown', allowed: ['lockdown-admin'] },
  ];
  for (const row of table) {
    await expectProblem(await call(w, row.method, row.path, { authorization: null, body: row.body }), 401, 'ERR_UNAUTHENTICATED');
    for (const caller of Object.keys(CREDENTIALS) as Caller[]) {
      if (row.allowed.includes(caller)) continue;
      await expectProblem(await call(w, row.method, row.path, { as: caller, body: row.body }), 403, 'ERR_FORBIDDEN');
    }
  }
  // Nothing changed: the task is open, nobody is disabled, no lockdown.
  assert.equal((await w.node.store.tasks.get(task.taskId))?.status, 'open');
  assert.deepEqual(await w.node.store.users.list(), []);
  assert.equal((await w.node.store.lockdown.get()).active, false);
  const refused = (await events(w)).filter((e) => e.type === 'admin' && e.outcome === 'failure' && String(dataOf(e).endpoint).startsWith('admin.tasks.end'));
  assert.ok(refused.some((e) => e.actor === 'tasks-reader' && dataOf(e).code === 'ERR_FORBIDDEN'), 'the forbidden end is audited with who tried');
  await call(w, 'POST', `/admin/v1/tasks/${task.taskId}/end`, { body: {} });
});

test('listing and reading tasks: filters, limits, views; bad queries and ids are 400 with what is wrong', async () => {
  const w = await world();
  const a = await openTask(w);
  const b = await openTask(w);
  const list = await json(await call(w, 'GET', '/admin/v1/tasks?status=open&agent=sales-outreach', { as: 'tasks-reader' }));
  const tasks = list.tasks as Array<Record<string, unknown>>;
  assert.ok(tasks.some((t) => t.id === a.taskId) && tasks.some((t) => t.id === b.taskId));
  assert.ok(tasks.every((t) => t.status === 'open' && t.agent === 'sales-outreach'));
  const one = tasks.find((t) => t.id === a.taskId) as Record<string, unknown>;
  assert.deepEqual(one.user, { iss: ISS, sub: 'alice' });
  assert.equal((one.workflow as { id: string }).id, 'lead-followup');
  assert.equal(one.purpose, 'follow up the ACME lead');
  assert.equal(one.endedAt, null);
  assert.match(String(one.openedAt), /^\d{4}-\d\d-\d\dT/);
  assert.equal('recentSteps' in one, false);

  const limited = await json(await call(w, 'GET', '/admin/v1/tasks?limit=1', { as: 'tasks-reader' }));
  assert.equal((limited.tasks as unknown[]).length, 1);
  assert.equal(limited.truncated, true);
  assert.equal((await json(await call(w, 'GET', '/admin/v1/tasks?agent=no-such-agent', { as: 'tasks-reader' }))).truncated, false);

  const read = await call(w, 'GET', `/admin/v1/tasks/${a.taskId}`, { as: 'tasks-reader' });
  assert.equal(read.status, 200);
  assert.equal(read.headers.get('cache-control'), 'no-store');
  assert.equal((await json(read)).id, a.taskId);
  await expectProblem(await call(w, 'GET', '/admin/v1/tasks/task_nope', { as: 'tasks-reader' }), 404, 'ERR_NOT_FOUND', /no task task_nope/);
  await expectProblem(await call(w, 'GET', `/admin/v1/tasks/${encodeURIComponent('bad id\n')}`, { as: 'tasks-reader' }), 400, 'ERR_INVALID_REQUEST', /not a valid task id/);

  const bad: Array<[string, RegExp]> = [
    ['status=closed', /status: one of open, ended, revoked/],
    ['limit=0', /limit: 1\.\.1000/],
    ['limit=1001', /limit: 1\.\.1000/],
    ['limit=ten', /limit: a whole number/],
    ['agent=Not%20An%20Id', /agent: a principal id/],
    ['colour=red', /colour: not a known parameter/],
    ['status=open&status=ended', /status: given more than once/],
  ];
  for (const [q, detail] of bad) {
    const body = await expectProblem(await call(w, 'GET', `/admin/v1/tasks?${q}`, { as: 'tasks-reader' }), 400, 'ERR_INVALID_REQUEST', detail);
    assert.ok(Array.isArray(body.problems), q);
  }
  const reads = (await events(w)).filter((e) => e.type === 'admin' && dataOf(e).operation === 'tasks.read' && dataOf(e).taskId === a.taskId);
  assert.equal(reads.length, 1, 'a read is audited');
  assert.equal(reads[0]?.actor, 'tasks-reader');
  for (const t of [a, b]) await call(w, 'POST', `/admin/v1/tasks/${t.taskId}/end`, { body: {} });
});

test('ending a task: ended_by_admin, every mandate and refresh token revoked, a feed entry, one task.close event; twice is 409', async () => {
  const w = await world();
  const t = await openTask(w);
  const jti = String(decodeJwt(t.accessToken).jti);
  assert.equal((await introspect(w, t.accessToken)).active, true);
  const before = (await json(await call(w, 'GET', '/admin/v1/revocations', { as: 'tasks-reader' }))).next as number;

  const res = await call(w, 'POST', `/admin/v1/tasks/${t.taskId}/end`, { body: { reason: 'customer asked us to stop' } });
  assert.equal(res.status, 200);
  const view = await json(res);
  assert.equal(view.status, 'ended');
  assert.equal(view.endReason, 'ended_by_admin');

  const task = await w.node.store.tasks.get(t.taskId);
  assert.equal(task?.status, 'ended');
  assert.equal(task?.endReason, 'ended_by_admin');
  assert.ok((await w.node.store.tokens.get(jti))?.revokedAt !== undefined, 'its mandate is revoked in the store');
  assert.deepEqual(await introspect(w, t.accessToken), { active: false });
  const renewal = await form(w, '/oauth/token', { grant_type: 'refresh_token', refresh_token: t.refreshToken, resource: CRM, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'sales-outreach', w.outreach) });
  assert.equal(renewal.body.error, 'invalid_grant', 'its refresh token is dead');

  const feed = await json(await call(w, 'GET', `/admin/v1/revocations?after=${before}`, { as: 'tasks-reader' }));
  assert.deepEqual(
    (feed.revocations as Array<Record<string, unknown>>).filter((r) => r.target === t.taskId).map((r) => [r.kind, r.reason]),
    [['task', 'ended_by_admin']],
  );
  const closes = (await events(w)).filter((e) => e.type === 'task.close' && dataOf(e).taskId === t.taskId);
  assert.equal(closes.length, 1);
  assert.equal(closes[0]?.actor, 'tasks-admin');
  assert.equal(closes[0]?.subject, 'User::"alice"');
  assert.equal(dataOf(closes[0] as AuditEvent).reason, 'ended_by_admin');
  assert.equal(dataOf(closes[0] as AuditEvent).comment, 'customer asked us to stop');
  assert.equal(dataOf(closes[0] as AuditEvent).endpoint, 'admin.tasks.end');

  await expectProblem(await call(w, 'POST', `/admin/v1/tasks/${t.taskId}/end`), 409, 'ERR_CONFLICT', /already ended \(ended_by_admin\)/);
  await expectProblem(await call(w, 'POST', '/admin/v1/tasks/task_nope/end'), 404, 'ERR_NOT_FOUND');
  const other = await openTask(w);
  await expectProblem(await call(w, 'POST', `/admin/v1/tasks/${other.taskId}/end`, { body: { reason: 7 } }), 400, 'ERR_INVALID_REQUEST', /reason: required, a non-empty string/);
  await expectProblem(await call(w, 'POST', `/admin/v1/tasks/${other.taskId}/end`, { body: { why: 'x' } }), 400, 'ERR_INVALID_REQUEST', /why: not a known field/);
  await expectProblem(await call(w, 'POST', `/admin/v1/tasks/${other.taskId}/end`, { body: ['x'] }), 400, 'ERR_INVALID_REQUEST', /JSON object/);
  await expectProblem(await call(w, 'POST', `/admin/v1/tasks/${other.taskId}/end`, { raw: '{"reason":' }), 400, 'ERR_MALFORMED_JSON');
  assert.equal((await w.node.store.tasks.get(other.taskId))?.status, 'open', 'bad input changes nothing');
  // No body at all is fine.
  assert.equal((await call(w, 'POST', `/admin/v1/tasks/${other.taskId}/end`)).status, 200);
});

test('disabling a user revokes their open tasks at once and refuses new ones; enabling lets them back; bad input is 400', async () => {
  const w = await world();
  const t = await openTask(w);
  const res = await call(w, 'POST', '/admin/v1/users/disable', { as: 'users-admin', body: { iss: ISS, sub: 'alice', reason: 'left the company' } });
  assert.equal(res.status, 200);
  const body = await json(res);
  assert.equal(body.disabled, true);
  assert.ok((body.tasksRevoked as string[]).includes(t.taskId));
  const task = await w.node.store.tasks.get(t.taskId);
  assert.equal(task?.status, 'revoked');
  assert.equal(task?.endReason, 'user_disabled');
  assert.deepEqual(await introspect(w, t.accessToken), { active: false });
  assert.equal(await w.node.store.users.isDisabled({ iss: ISS, sub: 'alice' }), true);
  const refused = await openTask(w);
  assert.equal(refused.body.error, 'invalid_grant');
  assert.match(String(refused.body.error_description), /disabled/);

  const listed = await json(await call(w, 'GET', '/admin/v1/users/disabled', { as: 'users-reader' }));
  assert.deepEqual((listed.users as Array<Record<string, unknown>>).map((u) => [u.iss, u.sub, u.reason]), [[ISS, 'alice', 'left the company']]);

  const all = await events(w);
  const disable = all.find((e) => e.type === 'admin' && dataOf(e).operation === 'users.disable');
  assert.equal(disable?.actor, 'users-admin');
  assert.equal(disable?.subject, 'User::"alice"');
  const close = all.find((e) => e.type === 'task.close' && dataOf(e).taskId === t.taskId);
  assert.equal(dataOf(close as AuditEvent).reason, 'user_disabled');
  const feed = await w.node.store.revocations.since(0, 10_000);
  assert.ok(feed.some((r) => r.kind === 'user' && r.target === JSON.stringify([ISS, 'alice'])));
  assert.ok(feed.some((r) => r.kind === 'task' && r.target === t.taskId && r.reason === 'user_disabled'));

  const enabled = await call(w, 'POST', '/admin/v1/users/enable', { as: 'users-admin', body: { iss: ISS, sub: 'alice', reason: 'rehired' } });
  assert.equal(enabled.status, 200);
  assert.equal((await json(enabled)).disabled, false);
  assert.equal(await w.node.store.users.isDisabled({ iss: ISS, sub: 'alice' }), false);
  assert.ok((await events(w)).some((e) => e.type === 'admin' && dataOf(e).operation === 'users.enable' && e.actor === 'users-admin' && dataOf(e).comment === 'rehired'));
  const again = await openTask(w);
  assert.equal(again.status, 200, 'alice may have tasks again');
  await expectProblem(await call(w, 'POST', '/admin/v1/users/enable', { as: 'users-admin', body: { iss: ISS, sub: 'alice' } }), 404, 'ERR_NOT_FOUND', /not disabled/);

  const bad = await expectProblem(await call(w, 'POST', '/admin/v1/users/disable', { as: 'users-admin', body: { iss: 'corp', sub: '' } }), 400, 'ERR_INVALID_REQUEST');
  assert.deepEqual(bad.problems, [
    "iss: the issuer identifier of the user's IdP, an https URL (e.g. https://login.example.com)",
    'sub: required, a non-empty string',
    'reason: required, a non-empty string',
  ]);
  await expectProblem(await call(w, 'POST', '/admin/v1/users/disable', { as: 'users-admin', body: { iss: ISS, sub: 'a\u202eb', reason: 'x' } }), 400, 'ERR_INVALID_REQUEST', /sub: control characters/);
  await expectProblem(await call(w, 'POST', '/admin/v1/users/disable', { as: 'users-admin', body: { iss: ISS, sub: 'bob', reason: 'x'.repeat(501) } }), 400, 'ERR_INVALID_REQUEST', /reason: at most 500/);
  await expectProblem(await call(w, 'POST', '/admin/v1/users/disable', { as: 'users-admin' }), 400, 'ERR_INVALID_REQUEST', /send a JSON object with iss, sub, reason/);
  await expectProblem(await call(w, 'POST', '/admin/v1/users/enable', { as: 'users-admin', body: { iss: ISS, sub: 'bob', until: 'x' } }), 400, 'ERR_INVALID_REQUEST', /until: not a known field/);
  assert.deepEqual(await w.node.store.users.list(), []);
  await call(w, 'POST', `/admin/v1/tasks/${again.taskId}/end`);
});

test('lockdown: engaging revokes every open task and mandate but the API tokens; exchanges get 503 until it is lifted', async () => {
  const w = await world();
  const t = await openTask(w);
  // The operator's console holds a client_credentials mandate for Mandate's own API.
  const api = await form(w, '/oauth/token', { grant_type: 'client_credentials', scope: 'lockdown tasks:read', resource: w.url, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'ops-console', w.console) });
  assert.equal(api.status, 200, JSON.stringify(api.body));
  const consoleAuth = `Bearer ${String(api.body.access_token)}`;
  assert.equal((await json(await call(w, 'GET', '/admin/v1/lockdown', { authorization: consoleAuth }))).active, false);

  await expectProblem(await call(w, 'POST', '/admin/v1/lockdown', { authorization: consoleAuth, body: {} }), 400, 'ERR_INVALID_REQUEST', /reason: required/);
  await expectProblem(await call(w, 'DELETE', '/admin/v1/lockdown', { as: 'lockdown-admin' }), 409, 'ERR_CONFLICT', /not in lockdown/);

  const engaged = await call(w, 'POST', '/admin/v1/lockdown', { authorization: consoleAuth, body: { reason: 'credential leak drill' } });
  assert.equal(engaged.status, 200);
  const state = await json(engaged);
  try {
    assert.equal(state.active, true);
    assert.equal(state.by, 'ops-console');
    assert.equal(state.reason, 'credential leak drill');
    assert.ok((state.tasksRevoked as string[]).includes(t.taskId));
    // Durable before the 200: the store says so, the task's mandate is dead, new mandates are refused.
    assert.equal((await w.node.store.lockdown.get()).active, true);
    const task = await w.node.store.tasks.get(t.taskId);
    assert.equal(task?.status, 'revoked');
    assert.equal(task?.endReason, 'lockdown');
    assert.deepEqual(await introspect(w, t.accessToken), { active: false });
    const refused = await openTask(w);
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error, 'temporarily_unavailable');
    assert.equal((await w.node.store.tasks.list({ status: 'open' })).length, 0);
    // The console's API token was spared: it still reads and lifts.
    const read = await json(await call(w, 'GET', '/admin/v1/lockdown', { authorization: consoleAuth }));
    assert.deepEqual([read.active, read.by, read.reason], [true, 'ops-console', 'credential leak drill']);
    const feed = await json(await call(w, 'GET', '/admin/v1/revocations?limit=1000', { authorization: consoleAuth }));
    assert.ok((feed.revocations as Array<Record<string, unknown>>).some((r) => r.kind === 'lockdown' && r.reason === 'credential leak drill'));
  } finally {
    const lifted = await call(w, 'DELETE', '/admin/v1/lockdown', { authorization: consoleAuth });
    assert.equal(lifted.status, 200);
    assert.equal((await json(lifted)).active, false);
  }
  const after = await openTask(w);
  assert.equal(after.status, 200, 'mandates are issued again');
  const lockEvents = (await events(w)).filter((e) => e.type === 'lockdown');
  assert.deepEqual(lockEvents.map((e) => [dataOf(e).operation, e.actor]), [['lockdown.engage', 'ops-console'], ['lockdown.lift', 'ops-console']]);
  assert.equal(dataOf(lockEvents[0] as AuditEvent).reason, 'credential leak drill');
  await call(w, 'POST', `/admin/v1/tasks/${after.taskId}/end`);
});

test('the revocation feed pages by seq; bad cursors are 400', async () => {
  const w = await world();
  const first = await json(await call(w, 'GET', '/admin/v1/revocations?limit=2', { as: 'tasks-reader' }));
  const page = first.revocations as Array<Record<string, unknown>>;
  assert.equal(page.length, 2);
  assert.ok((page[0]?.seq as number) < (page[1]?.seq as number));
  assert.equal(first.next, page[1]?.seq);
  const second = await json(await call(w, 'GET', `/admin/v1/revocations?after=${String(first.next)}&limit=1`, { as: 'tasks-reader' }));
  assert.ok(((second.revocations as Array<Record<string, unknown>>)[0]?.seq as number) > (first.next as number));
  const end = await json(await call(w, 'GET', '/admin/v1/revocations?after=999999999', { as: 'tasks-reader' }));
  assert.deepEqual(end, { revocations: [], next: 999999999 });
  await expectProblem(await call(w, 'GET', '/admin/v1/revocations?after=-1', { as: 'tasks-reader' }), 400, 'ERR_INVALID_REQUEST', /after: a whole number/);
  await expectProblem(await call(w, 'GET', '/admin/v1/revocations?limit=5000', { as: 'tasks-reader' }), 400, 'ERR_INVALID_REQUEST', /limit: 1\.\.1000/);
});

test("an agent suspended through the registry API loses its open tasks (agent_suspended); re-activated, it may open new ones", async () => {
  const w = await world();
  const t = await openTask(w);
  const res = await call(w, 'POST', '/admin/v1/principals/sales-outreach/status', { as: 'registrar', body: { status: 'suspended', reason: 'odd behaviour' } });
  assert.equal(res.status, 200);
  const task = await w.node.store.tasks.get(t.taskId);
  assert.equal(task?.status, 'revoked');
  assert.equal(task?.endReason, 'agent_suspended');
  assert.ok((await w.node.store.tokens.get(String(decodeJwt(t.accessToken).jti)))?.revokedAt !== undefined);
  const close = (await events(w)).find((e) => e.type === 'task.close' && dataOf(e).taskId === t.taskId);
  assert.equal(close?.actor, 'registrar');
  assert.equal(dataOf(close as AuditEvent).comment, 'odd behaviour');
  assert.equal(dataOf(close as AuditEvent).endpoint, 'admin.principals.status');

  assert.equal((await call(w, 'POST', '/admin/v1/principals/sales-outreach/status', { as: 'registrar', body: { status: 'active' } })).status, 200);
  const again = await openTask(w);
  assert.equal(again.status, 200);
  const quarantined = await call(w, 'POST', '/admin/v1/principals/sales-outreach/status', { as: 'registrar', body: { status: 'quarantined' } });
  assert.equal(quarantined.status, 200);
  assert.equal((await w.node.store.tasks.get(again.taskId))?.endReason, 'agent_quarantined');
  await call(w, 'POST', '/admin/v1/principals/sales-outreach/status', { as: 'registrar', body: { status: 'active' } });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConflictError } from '../core/errors.ts';
import { fixedClock } from '../core/ports.ts';
import type { NewAuditEventV1 } from '../audit/audit-event.ts';
import { openSqliteStore } from './sqlite-store.ts';
import type { ApprovalRecord, IssuedTokenRecord, RefreshTokenRecord, TaskRecord } from './store.ts';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const ISS = 'https://idp.example';

async function open(t: { after(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-task-store-'));
  const store = await openSqliteStore({ dataDir: dir, clock: fixedClock(T0) });
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

let n = 0;
const event = (type: NewAuditEventV1['type'] = 'admin'): NewAuditEventV1 => ({ id: `evt-task-${++n}`, time: new Date(T0).toISOString(), type, outcome: 'success', redacted: [] });

function task(id: string, extra: Partial<TaskRecord> = {}): TaskRecord {
  return {
    id,
    userIss: ISS,
    userSub: 'alice',
    agentId: 'sales-outreach',
    workflowId: 'lead-followup',
    workflowVersion: 'sha256:abc',
    purpose: 'follow up the ACME lead',
    status: 'open',
    openedAt: T0,
    expiresAt: T0 + 3_600_000,
    idleTimeoutMs: 900_000,
    lastActivityAt: T0,
    stepsTaken: 0,
    recentSteps: [],
    ...extra,
  };
}

const refresh = (hash: string, taskId: string): RefreshTokenRecord => ({ hash, taskId, clientId: 'sales-outreach', issuedAt: T0, expiresAt: T0 + 3_600_000 });
const token = (jti: string, taskId?: string, extra: Partial<IssuedTokenRecord> = {}): IssuedTokenRecord => ({
  jti,
  clientId: 'sales-outreach',
  subject: 'alice',
  actors: ['sales-outreach'],
  audience: 'https://crm.example/mcp',
  scope: 'crm.read',
  ...(taskId === undefined ? {} : { taskId }),
  issuedAt: T0,
  expiresAt: T0 + 300_000,
  ...extra,
});

test('tasks: open writes the task, its refresh token, its first mandate and the event in one transaction', async (t) => {
  const store = await open(t);
  await store.tasks.open(task('t1'), refresh('r1', 't1'), token('m1', 't1'), event('token.issue'));
  assert.equal((await store.tasks.get('t1'))?.status, 'open');
  assert.equal((await store.tasks.refreshToken('r1'))?.taskId, 't1');
  assert.equal((await store.tokens.get('m1'))?.taskId, 't1');
  assert.equal(await store.audit.count(), 1);
  // A second open with the same id writes nothing at all.
  await assert.rejects(store.tasks.open(task('t1'), refresh('r2', 't1'), token('m2', 't1'), event()), ConflictError);
  assert.equal(await store.tasks.refreshToken('r2'), undefined);
  assert.equal(await store.tokens.get('m2'), undefined);
  assert.equal(await store.audit.count(), 1);
});

test('tasks: recordStep is compare-and-set on the step count and only on open tasks', async (t) => {
  const store = await open(t);
  await store.tasks.open(task('t1'), refresh('r1', 't1'), token('m1', 't1'), event());
  assert.equal(await store.tasks.recordStep('t1', 0, { stepsTaken: 1, recentSteps: [T0 + 1], lastActivityAt: T0 + 1 }), true);
  assert.equal(await store.tasks.recordStep('t1', 0, { stepsTaken: 1, recentSteps: [T0 + 2], lastActivityAt: T0 + 2 }), false, 'a stale read loses');
  const got = await store.tasks.get('t1');
  assert.equal(got?.stepsTaken, 1);
  assert.deepEqual(got?.recentSteps, [T0 + 1]);
  await store.tasks.close({ taskId: 't1' }, 'ended', T0 + 5, 'ended_by_agent', () => event());
  assert.equal(await store.tasks.recordStep('t1', 1, { stepsTaken: 2, recentSteps: [], lastActivityAt: T0 + 6 }), false);
});

test('tasks: close revokes every token of the task (re-delegated ones too), burns its refresh tokens, feeds the revocation', async (t) => {
  const store = await open(t);
  await store.tasks.open(task('t1'), refresh('r1', 't1'), token('m1', 't1'), event());
  await store.tokens.record(token('child', 't1', { parentJti: 'm1', clientId: 'reader', actors: ['reader', 'sales-outreach'] }), event('token.issue'));
  await store.tasks.open(task('t2', { agentId: 'triage-bot', userSub: 'bob' }), refresh('r2', 't2'), token('m2', 't2'), event());
  await store.tokens.record(token('free'), event('token.issue'));
  const closed = await store.tasks.close({ agentId: 'sales-outreach' }, 'revoked', T0 + 10, 'agent_suspended', (tk) => ({ ...event(), resource: `task:${tk.id}` }));
  assert.deepEqual(closed.map((c) => [c.id, c.status, c.endReason]), [['t1', 'revoked', 'agent_suspended']]);
  assert.match((await store.tokens.get('m1'))?.revokedReason ?? '', /task revoked: agent_suspended/);
  assert.ok((await store.tokens.get('child'))?.revokedAt !== undefined, 'the re-delegated mandate goes with the task');
  assert.equal((await store.tokens.get('m2'))?.revokedAt, undefined, 'another task is untouched');
  assert.equal((await store.tokens.get('free'))?.revokedAt, undefined);
  assert.ok((await store.tasks.refreshToken('r1'))?.usedAt !== undefined);
  const feed = await store.revocations.since(0, 10);
  assert.deepEqual(feed.map((f) => [f.kind, f.target, f.reason]), [['task', 't1', 'agent_suspended']]);
  assert.deepEqual(await store.tasks.close({ taskId: 't1' }, 'ended', T0 + 11, 'again', () => event()), [], 'closing twice closes nothing');
  assert.deepEqual((await store.tasks.list({ status: 'open' })).map((x) => x.id), ['t2']);
});

test('tasks: a refresh token rotates once; the second use is reported as reuse and writes nothing', async (t) => {
  const store = await open(t);
  await store.tasks.open(task('t1'), refresh('r1', 't1'), token('m1', 't1'), event());
  assert.equal(await store.tasks.rotate('r1', T0 + 1, refresh('r2', 't1'), token('m2', 't1'), event('token.issue')), 'rotated');
  assert.equal(await store.tasks.rotate('r1', T0 + 2, refresh('r3', 't1'), token('m3', 't1'), event('token.issue')), 'reused');
  assert.equal(await store.tasks.refreshToken('r3'), undefined);
  assert.equal(await store.tokens.get('m3'), undefined);
  assert.equal(await store.tasks.rotate('nope', T0 + 3, refresh('r4', 't1'), token('m4', 't1'), event()), 'unknown');
  assert.equal((await store.tokens.get('m2'))?.taskId, 't1');
});

test('approvals: decided once while pending and unexpired; used once, only for the exact arguments', async (t) => {
  const store = await open(t);
  const a: ApprovalRecord = {
    id: 'ap1',
    taskId: 't1',
    userIss: ISS,
    userSub: 'alice',
    actors: ['sales-outreach'],
    action: 'send',
    resource: { type: 'Tool', id: 'email.send' },
    argsHash: 'hash-A',
    summary: 'send email.send to customer.example',
    status: 'pending',
    createdAt: T0,
    expiresAt: T0 + 600_000,
  };
  await store.approvals.create(a, event());
  assert.equal((await store.approvals.list({ status: 'pending' })).length, 1);
  assert.equal(await store.approvals.consume('ap1', 'hash-A', T0 + 1, event()), false, 'not approved yet');
  const approved = await store.approvals.decide('ap1', { status: 'approved', by: 'carol', atMs: T0 + 2 }, event());
  assert.equal(approved?.status, 'approved');
  assert.equal(approved?.decidedBy, 'carol');
  assert.equal(await store.approvals.decide('ap1', { status: 'denied', by: 'dave', atMs: T0 + 3 }, event()), undefined, 'decided once');
  assert.equal(await store.approvals.consume('ap1', 'hash-B', T0 + 4, event()), false, 'other arguments');
  assert.equal(await store.approvals.consume('ap1', 'hash-A', T0 + 5, event()), true);
  assert.equal(await store.approvals.consume('ap1', 'hash-A', T0 + 6, event()), false, 'single use');
  await store.approvals.create({ ...a, id: 'ap2', expiresAt: T0 + 10 }, event());
  assert.equal(await store.approvals.decide('ap2', { status: 'approved', by: 'carol', atMs: T0 + 11 }, event()), undefined, 'expired');
});

test('users: disabling a user revokes their open tasks in the same transaction; enable lifts the deny', async (t) => {
  const store = await open(t);
  await store.tasks.open(task('t1'), refresh('r1', 't1'), token('m1', 't1'), event());
  await store.tasks.open(task('t2', { userSub: 'bob' }), refresh('r2', 't2'), token('m2', 't2'), event());
  const closed = await store.users.disable({ iss: ISS, sub: 'alice' }, T0 + 1, 'caep session-revoked', event(), () => event());
  assert.deepEqual(closed.map((c) => c.id), ['t1']);
  assert.equal(await store.users.isDisabled({ iss: ISS, sub: 'alice' }), true);
  assert.equal(await store.users.isDisabled({ iss: 'https://other', sub: 'alice' }), false, 'the same sub at another issuer is another user');
  assert.equal((await store.tasks.get('t2'))?.status, 'open');
  assert.equal(await store.users.enable({ iss: ISS, sub: 'alice' }, event()), true);
  assert.equal(await store.users.isDisabled({ iss: ISS, sub: 'alice' }), false);
  assert.deepEqual((await store.revocations.since(0, 10)).map((f) => f.kind), ['user', 'task']);
});

test("lockdown: engaging closes every open task and revokes every active mandate except Mandate's own API tokens", async (t) => {
  const store = await open(t);
  const API = 'https://mandate.example';
  await store.tasks.open(task('t1'), refresh('r1', 't1'), token('m1', 't1'), event());
  await store.tokens.record(token('free'), event('token.issue'));
  await store.tokens.record(token('api', undefined, { audience: API, subject: 'pep', actors: [] }), event('token.issue'));
  await store.tokens.record(token('old', undefined, { expiresAt: T0 - 1 }), event('token.issue'));
  assert.deepEqual(await store.lockdown.get(), { active: false });
  const closed = await store.lockdown.engage(T0 + 1, 'carol', 'incident 7', API, event(), () => event());
  assert.deepEqual(closed.map((c) => c.id), ['t1']);
  assert.deepEqual(await store.lockdown.get(), { active: true, since: T0 + 1, by: 'carol', reason: 'incident 7' });
  assert.ok((await store.tokens.get('free'))?.revokedAt !== undefined);
  assert.equal((await store.tokens.get('api'))?.revokedAt, undefined);
  assert.equal((await store.tokens.get('old'))?.revokedAt, undefined, 'expired tokens are left as they are');
  assert.equal(await store.lockdown.lift(T0 + 2, 'carol', event()), true);
  assert.equal(await store.lockdown.lift(T0 + 3, 'carol', event()), false);
  assert.equal((await store.lockdown.get()).active, false);
});

/**
 * `mandate tasks list|show|end`, `mandate users disable|enable|list` and `mandate lockdown on|off|status`
 * in-process against a real SQLite store: tasks seeded as a token exchange records them (task, refresh token,
 * first mandate, token.issue event, one transaction), then closed from the command line. Checked: the output,
 * the store's revocations (tasks, mandates, refresh tokens, the feed), the audit events and their `cli:` actor,
 * usage errors that write nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createAuditEvent } from '../../src/audit/audit-event.ts';
import { systemClock } from '../../src/core/ports.ts';
import type { IssuedTokenRecord, Store, TaskRecord } from '../../src/store/store.ts';
import { createCliFixture, ISSUER, lines, type CliFixture } from './store-cli-fixtures.ts';

const IDP = 'https://login.example.com';
const CRM = 'https://crm.example/mcp';

async function withFixture(fn: (fx: CliFixture) => Promise<void>): Promise<void> {
  const fx = await createCliFixture();
  try {
    await fn(fx);
  } finally {
    await fx.cleanup();
  }
}

async function withStore<T>(fx: CliFixture, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await fx.openStore();
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

const tokenRecord = (over: Partial<IssuedTokenRecord> & Pick<IssuedTokenRecord, 'jti' | 'audience'>): IssuedTokenRecord => {
  const now = Date.now();
  return { clientId: 'sales-outreach', subject: 'alice', actors: ['sales-outreach'], scope: 'crm.search', issuedAt: now, expiresAt: now + 300_000, ...over };
};

/** Opens a task as the token service does: the task, its refresh token and first mandate, and the issuance event. */
async function seedTask(store: Store, options: { user?: string; agent?: string } = {}): Promise<{ task: TaskRecord; jti: string; refreshHash: string }> {
  const now = Date.now();
  const agent = options.agent ?? 'sales-outreach';
  const user = options.user ?? 'alice';
  const task: TaskRecord = {
    id: `task_${randomUUID().replace(/-/g, '')}`,
    userIss: IDP,
    userSub: user,
    agentId: agent,
    workflowId: 'lead-followup',
    workflowVersion: 'sha256:0f3c',
    purpose: 'follow up the ACME lead',
    status: 'open',
    openedAt: now,
    expiresAt: now + 3_600_000,
    idleTimeoutMs: 900_000,
    lastActivityAt: now,
    stepsTaken: 0,
    recentSteps: [],
  };
  const jti = randomUUID();
  const refreshHash = randomUUID();
  await store.tasks.open(
    task,
    { hash: refreshHash, taskId: task.id, clientId: agent, issuedAt: now, expiresAt: now + 3_600_000 },
    tokenRecord({ jti, audience: CRM, clientId: agent, subject: user, actors: [agent], taskId: task.id }),
    createAuditEvent({ type: 'token.issue', outcome: 'success', actor: agent, subject: `User::"${user}"`, resource: CRM, data: { jti, taskId: task.id, taskOpened: true } }, { clock: systemClock }),
  );
  return { task, jti, refreshHash };
}

test('tasks list and show: a table, filters, JSON as the API shows it; bad flags are usage errors', async () => {
  await withFixture(async (fx) => {
    // The store does not exist yet: a read refuses rather than create an empty one.
    const missing = await fx.run(['tasks', 'list']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /ERR_STORE_UNAVAILABLE: there is no store at/);

    const { a, b } = await withStore(fx, async (store) => ({ a: await seedTask(store), b: await seedTask(store, { user: 'bob', agent: 'helpdesk' }) }));
    const list = await fx.run(['tasks', 'list']);
    assert.equal(list.code, 0, list.stderr);
    const out = lines(list.stdout);
    assert.match(out[0] ?? '', /^ID\s+STATUS\s+AGENT\s+USER\s+WORKFLOW\s+OPENED\s+STEPS\s+ENDED\s+REASON$/);
    assert.ok(out.some((l) => l.startsWith(a.task.id) && /\bopen\s+sales-outreach\s+alice\s+lead-followup\b/.test(l)), list.stdout);
    assert.ok(out.some((l) => l.startsWith(b.task.id)));

    const filtered = await fx.run(['tasks', 'list', '--agent', 'helpdesk', '--json']);
    const tasks = (JSON.parse(filtered.stdout) as { tasks: Array<Record<string, unknown>> }).tasks;
    assert.deepEqual(tasks.map((t) => t.id), [b.task.id]);
    assert.deepEqual(tasks[0]?.user, { iss: IDP, sub: 'bob' });
    assert.equal((await fx.run(['tasks', 'list', '--status', 'ended'])).stdout, 'no tasks\n');
    assert.equal(lines((await fx.run(['tasks', 'list', '--limit', '1'])).stdout).length, 2, 'header and one task');

    const show = await fx.run(['tasks', 'show', a.task.id]);
    assert.equal(show.code, 0, show.stderr);
    assert.ok(lines(show.stdout).includes(`user:        alice (issuer ${IDP})`), show.stdout);
    assert.ok(lines(show.stdout).includes('workflow:    lead-followup (version sha256:0f3c)'));
    assert.ok(lines(show.stdout).includes('end reason:  -'));
    assert.equal((JSON.parse((await fx.run(['tasks', 'show', a.task.id, '--json'])).stdout) as { status: string }).status, 'open');

    const unknown = await fx.run(['tasks', 'show', 'task_nope']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /ERR_NOT_FOUND: no task task_nope is known/);
    for (const [argv, message] of [
      [['tasks', 'list', '--status', 'closed'], /--status: "closed" is not one of open, ended, revoked/],
      [['tasks', 'list', '--limit', '0'], /--limit: a whole number 1\.\.10000/],
      [['tasks', 'list', '--agent', 'Not An Id'], /--agent: not a principal id/],
      [['tasks', 'show'], /missing the task id/],
      [['tasks', 'show', 'bad id\u001b[2J'], /is not a task id/],
    ] as const) {
      const r = await fx.run(argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.ok(!r.stderr.includes('\u001b'), 'no raw escape reaches the terminal');
    }
  });
});

test('tasks end: ended_by_admin, its mandate and refresh token revoked, a feed entry, one task.close event by cli:<user>', async () => {
  await withFixture(async (fx) => {
    const { task, jti, refreshHash } = await withStore(fx, (store) => seedTask(store));
    const other = await withStore(fx, (store) => seedTask(store));
    const ended = await fx.run(['tasks', 'end', task.id, '--reason', 'customer asked us to stop'], { env: { MANDATE_KEK: fx.kek, USER: 'ops' } });
    assert.equal(ended.code, 0, ended.stderr);
    assert.match(ended.stdout, new RegExp(`^ended task ${task.id} \\(agent sales-outreach, user alice, workflow lead-followup\\): its mandates and refresh tokens are revoked\\. Audited as cli:\\S+\\.\\n$`));

    await withStore(fx, async (store) => {
      const t = await store.tasks.get(task.id);
      assert.equal(t?.status, 'ended');
      assert.equal(t?.endReason, 'ended_by_admin');
      assert.ok((await store.tokens.get(jti))?.revokedAt !== undefined, 'the mandate is revoked');
      assert.ok((await store.tasks.refreshToken(refreshHash))?.usedAt !== undefined, 'the refresh token is burnt');
      assert.equal((await store.tasks.get(other.task.id))?.status, 'open', 'other tasks are untouched');
      assert.ok((await store.tokens.get(other.jti))?.revokedAt === undefined);
      const feed = await store.revocations.since(0, 100);
      assert.deepEqual(feed.map((r) => [r.kind, r.target, r.reason]), [['task', task.id, 'ended_by_admin']]);
    });
    const closes = (await fx.auditEvents()).filter((e) => e.type === 'task.close');
    assert.equal(closes.length, 1);
    assert.match(String(closes[0]?.actor), /^cli:/);
    assert.equal(closes[0]?.resource, `task:${task.id}`);
    assert.deepEqual(
      [closes[0]?.data?.taskId, closes[0]?.data?.status, closes[0]?.data?.reason, closes[0]?.data?.comment],
      [task.id, 'ended', 'ended_by_admin', 'customer asked us to stop'],
    );

    const again = await fx.run(['tasks', 'end', task.id]);
    assert.equal(again.code, 0);
    assert.equal(again.stdout, `task ${task.id} is already ended (ended_by_admin); nothing changed\n`);
    assert.equal((await fx.auditEvents()).filter((e) => e.type === 'task.close').length, 1, 'nothing written twice');
    const unknown = await fx.run(['tasks', 'end', 'task_nope']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /ERR_NOT_FOUND/);
    const tooLong = await fx.run(['tasks', 'end', other.task.id, '--reason', 'x'.repeat(501)]);
    assert.equal(tooLong.code, 2);
    assert.match(tooLong.stderr, /--reason: at most 500 characters/);
    await withStore(fx, async (store) => assert.equal((await store.tasks.get(other.task.id))?.status, 'open'));
  });
});

test("users disable revokes the user's open tasks; list shows them; enable lets them back; bad users are usage errors", async () => {
  await withFixture(async (fx) => {
    const { alice, bob } = await withStore(fx, async (store) => ({ alice: await seedTask(store), bob: await seedTask(store, { user: 'bob' }) }));
    const disabled = await fx.run(['users', 'disable', IDP, 'alice', '--reason', 'left the company']);
    assert.equal(disabled.code, 0, disabled.stderr);
    assert.match(disabled.stdout, new RegExp(`^disabled alice \\(issuer ${IDP}\\): 1 open task revoked \\(${alice.task.id}\\); no mandate is issued for them until mandate users enable\\. Audited as cli:`));
    await withStore(fx, async (store) => {
      assert.equal(await store.users.isDisabled({ iss: IDP, sub: 'alice' }), true);
      const t = await store.tasks.get(alice.task.id);
      assert.deepEqual([t?.status, t?.endReason], ['revoked', 'user_disabled']);
      assert.ok((await store.tokens.get(alice.jti))?.revokedAt !== undefined);
      assert.equal((await store.tasks.get(bob.task.id))?.status, 'open');
      const feed = await store.revocations.since(0, 100);
      assert.deepEqual(feed.map((r) => r.kind).sort(), ['task', 'user']);
    });
    const events = await fx.auditEvents();
    const disable = events.find((e) => e.type === 'admin' && e.data?.operation === 'users.disable');
    assert.match(String(disable?.actor), /^cli:/);
    assert.deepEqual([disable?.data?.iss, disable?.data?.sub, disable?.data?.reason], [IDP, 'alice', 'left the company']);
    assert.equal(events.find((e) => e.type === 'task.close')?.data?.reason, 'user_disabled');

    const list = await fx.run(['users', 'list']);
    assert.match(lines(list.stdout)[1] ?? '', new RegExp(`^${IDP}\\s+alice\\s+\\d{4}-\\d\\d-\\d\\dT\\S+\\s+left the company$`));
    assert.deepEqual((JSON.parse((await fx.run(['users', 'list', '--json'])).stdout) as { users: Array<{ sub: string }> }).users.map((u) => u.sub), ['alice']);

    const enabled = await fx.run(['users', 'enable', IDP, 'alice', '--reason', 'rehired']);
    assert.equal(enabled.code, 0, enabled.stderr);
    assert.match(enabled.stdout, /^enabled alice .*agents may obtain mandates for them again\. Audited as cli:/);
    assert.equal((await fx.run(['users', 'list'])).stdout, 'no disabled users\n');
    assert.equal((await fx.run(['users', 'enable', IDP, 'alice'])).stdout, `alice (issuer ${IDP}) is not disabled; nothing changed\n`);
    assert.equal((await fx.auditEvents()).filter((e) => e.data?.operation === 'users.enable').length, 1);

    for (const [argv, message] of [
      [['users', 'disable', IDP], /give the user as <iss> <sub>/],
      [['users', 'disable', 'corp', 'alice'], /iss: the issuer identifier of the user's IdP/],
      [['users', 'disable', IDP, 'a\u202eb'], /sub: control characters are not allowed/],
      [['users', 'disable', IDP, 'alice', '--reason', ''], /--reason: required, a non-empty string/],
    ] as const) {
      const r = await fx.run(argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    await withStore(fx, async (store) => assert.deepEqual(await store.users.list(), []));
  });
});

test("lockdown on revokes every open task and mandate but the API's own tokens; status tells; off lifts it", async () => {
  await withFixture(async (fx) => {
    const seeded = await withStore(fx, async (store) => {
      const t = await seedTask(store);
      // A machine mandate for a resource (no task) and a console's token for Mandate's own API.
      const machine = randomUUID();
      const api = randomUUID();
      const ev = () => createAuditEvent({ type: 'token.issue', outcome: 'success', actor: 'ops-console' }, { clock: systemClock });
      await store.tokens.record(tokenRecord({ jti: machine, audience: CRM, clientId: 'crm-sync', subject: 'crm-sync', actors: [] }), ev());
      await store.tokens.record(tokenRecord({ jti: api, audience: ISSUER, clientId: 'ops-console', subject: 'ops-console', actors: [], scope: 'lockdown' }), ev());
      return { t, machine, api };
    });
    assert.equal((await fx.run(['lockdown', 'status'])).stdout, 'lockdown: off\n');
    const noReason = await fx.run(['lockdown', 'on']);
    assert.equal(noReason.code, 2);
    assert.match(noReason.stderr, /--reason is required/);
    assert.equal((await fx.run(['lockdown', 'status'])).stdout, 'lockdown: off\n', 'a usage error engages nothing');

    const on = await fx.run(['lockdown', 'on', '--reason', 'signing key exposure']);
    assert.equal(on.code, 0, on.stderr);
    assert.match(on.stdout, new RegExp(`^lockdown engaged: 1 open task and every active mandate revoked \\(tokens for ${ISSUER} spared\\); no mandate is issued until mandate lockdown off\\. Audited as cli:`));
    await withStore(fx, async (store) => {
      const lock = await store.lockdown.get();
      assert.equal(lock.active, true);
      assert.match(String(lock.by), /^cli:/);
      assert.equal(lock.reason, 'signing key exposure');
      assert.deepEqual([(await store.tasks.get(seeded.t.task.id))?.status, (await store.tasks.get(seeded.t.task.id))?.endReason], ['revoked', 'lockdown']);
      assert.ok((await store.tokens.get(seeded.t.jti))?.revokedAt !== undefined);
      assert.ok((await store.tokens.get(seeded.machine))?.revokedAt !== undefined, 'a mandate outside any task is revoked too');
      assert.equal((await store.tokens.get(seeded.api))?.revokedAt, undefined, "the API's own token is spared");
      assert.ok((await store.revocations.since(0, 100)).some((r) => r.kind === 'lockdown' && r.reason === 'signing key exposure'));
    });
    assert.match((await fx.run(['lockdown', 'status'])).stdout, /^lockdown: ON since \d{4}-\S+ by cli:\S+: signing key exposure\n$/);
    const json = JSON.parse((await fx.run(['lockdown', 'status', '--json'])).stdout) as Record<string, unknown>;
    assert.deepEqual([json.active, json.reason], [true, 'signing key exposure']);

    const off = await fx.run(['lockdown', 'off']);
    assert.equal(off.code, 0, off.stderr);
    assert.match(off.stdout, /^lockdown lifted: mandates are issued again\. Audited as cli:/);
    assert.equal((await fx.run(['lockdown', 'status'])).stdout, 'lockdown: off\n');
    assert.equal((await fx.run(['lockdown', 'off'])).stdout, 'Mandate is not in lockdown; nothing changed\n');
    const lockEvents = (await fx.auditEvents()).filter((e) => e.type === 'lockdown');
    assert.deepEqual(lockEvents.map((e) => e.data?.operation), ['lockdown.engage', 'lockdown.lift']);
    assert.ok(lockEvents.every((e) => String(e.actor).startsWith('cli:')));
  });
});

/**
 * `mandate approvals list|show|approve|deny` in-process against a real SQLite store: approval requests seeded as
 * the step gate makes them (an open task, the request bound to the hash of the exact call, its approval.request
 * event), then decided from the command line. Checked: the output, the stored decision, the approval.decide
 * event and its `cli:` actor; and that deciding what is not pending, or has expired, fails and writes nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createAuditEvent } from '../../src/audit/audit-event.ts';
import { systemClock } from '../../src/core/ports.ts';
import type { ApprovalRecord, Store, TaskRecord } from '../../src/store/store.ts';
import { APPROVAL_TTL_MS, callHash } from '../../src/tasks/step-gate.ts';
import { createCliFixture, lines, type CliFixture } from './store-cli-fixtures.ts';

const IDP = 'https://login.example.com';
const CRM = 'https://crm.example/mcp';
const MINUTE = 60_000;

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

/** Opens a task as the token service does (task, refresh token, first mandate, token.issue event). */
async function seedTask(store: Store): Promise<TaskRecord> {
  const now = Date.now();
  const task: TaskRecord = {
    id: `task_${randomUUID().replace(/-/g, '')}`,
    userIss: IDP,
    userSub: 'alice',
    agentId: 'sales-outreach',
    workflowId: 'lead-followup',
    workflowVersion: 'sha256:0f3c',
    purpose: 'follow up the ACME lead',
    status: 'open',
    openedAt: now - 30 * MINUTE,
    expiresAt: now + 30 * MINUTE,
    idleTimeoutMs: 15 * MINUTE,
    lastActivityAt: now,
    stepsTaken: 3,
    recentSteps: [],
  };
  const jti = randomUUID();
  await store.tasks.open(
    task,
    { hash: randomUUID(), taskId: task.id, clientId: task.agentId, issuedAt: now, expiresAt: task.expiresAt },
    { jti, clientId: task.agentId, subject: 'alice', actors: [task.agentId], audience: CRM, scope: 'crm.send', taskId: task.id, issuedAt: now, expiresAt: now + 5 * MINUTE },
    createAuditEvent({ type: 'token.issue', outcome: 'success', actor: task.agentId, subject: 'User::"alice"', resource: CRM, data: { jti, taskId: task.id, taskOpened: true } }, { clock: systemClock }),
  );
  return task;
}

/** An approval request as the step gate creates it for `send_email` to `to`, made `ageMs` ago. */
async function seedApproval(store: Store, task: TaskRecord, options: { to: string; ageMs?: number }): Promise<{ approval: ApprovalRecord; args: Record<string, unknown> }> {
  const createdAt = Date.now() - (options.ageMs ?? 0);
  const resource = { type: 'Tool', id: 'send_email' };
  const args = { to: options.to, subject: 'Your quote', body: 'Hello, here is the quote we discussed.' };
  const approval: ApprovalRecord = {
    id: `apr_${randomUUID()}`,
    taskId: task.id,
    userIss: task.userIss,
    userSub: task.userSub,
    actors: [task.agentId],
    action: 'call',
    resource,
    argsHash: callHash(task.id, 'call', resource, args),
    summary: `call Tool::"send_email" in task ${task.id} (${task.workflowId}) for ${task.userSub}`,
    status: 'pending',
    createdAt,
    expiresAt: createdAt + APPROVAL_TTL_MS,
  };
  await store.approvals.create(
    approval,
    createAuditEvent(
      { type: 'approval.request', outcome: 'success', actor: task.agentId, subject: 'User::"alice"', resource: `approval:${approval.id}`, data: { approvalId: approval.id, taskId: task.id, action: 'call', target: 'Tool::send_email' } },
      { clock: systemClock },
    ),
  );
  return { approval, args };
}

async function seedThree(fx: CliFixture) {
  return withStore(fx, async (store) => {
    const task = await seedTask(store);
    const fresh = await seedApproval(store, task, { to: 'ceo@acme.example', ageMs: MINUTE });
    const expired = await seedApproval(store, task, { to: 'cfo@acme.example', ageMs: APPROVAL_TTL_MS + MINUTE });
    const other = await seedApproval(store, task, { to: 'cto@acme.example', ageMs: 2 * MINUTE });
    return { task, fresh, expired, other };
  });
}

const decideEvents = async (fx: CliFixture) => (await fx.auditEvents()).filter((e) => e.type === 'approval.decide');

test('approvals list and show: a table, an expired pending request shown as expired, status filters, JSON as the API shows it', async () => {
  await withFixture(async (fx) => {
    const missing = await fx.run(['approvals', 'list']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /ERR_STORE_UNAVAILABLE: there is no store at/);

    const { task, fresh, expired, other } = await seedThree(fx);
    const list = await fx.run(['approvals', 'list']);
    assert.equal(list.code, 0, list.stderr);
    const out = lines(list.stdout);
    assert.match(out[0] ?? '', /^ID\s+STATUS\s+TASK\s+USER\s+ACTION\s+RESOURCE\s+CREATED\s+EXPIRES\s+DECIDED BY$/);
    assert.deepEqual(out.slice(1).map((l) => l.split(/\s+/).slice(0, 2)), [[fresh.approval.id, 'pending'], [other.approval.id, 'pending'], [expired.approval.id, 'expired']], 'newest first');
    assert.ok(out[1]?.includes(`${task.id}  alice  call    Tool::"send_email"`), list.stdout);

    const pending = await fx.run(['approvals', 'list', '--status', 'pending', '--json']);
    const ids = (JSON.parse(pending.stdout) as { approvals: Array<{ id: string }> }).approvals.map((a) => a.id);
    assert.deepEqual(ids, [fresh.approval.id, other.approval.id], 'an expired request is not pending');
    const expiredOnly = JSON.parse((await fx.run(['approvals', 'list', '--status', 'expired', '--json'])).stdout) as { approvals: Array<Record<string, unknown>> };
    assert.deepEqual(expiredOnly.approvals.map((a) => [a.id, a.status]), [[expired.approval.id, 'expired']]);
    assert.equal((await fx.run(['approvals', 'list', '--status', 'approved'])).stdout, 'no approvals\n');
    assert.equal(lines((await fx.run(['approvals', 'list', '--limit', '1'])).stdout).length, 2, 'header and one approval');

    const show = await fx.run(['approvals', 'show', fresh.approval.id]);
    assert.equal(show.code, 0, show.stderr);
    const shown = lines(show.stdout);
    assert.ok(shown.includes('status:    pending'), show.stdout);
    assert.ok(shown.includes(`user:      alice (issuer ${IDP})`));
    assert.ok(shown.includes('agents:    sales-outreach (outermost first)'));
    assert.ok(shown.includes(`arguments: sha256 ${fresh.approval.argsHash} (the approval is for exactly these)`));
    assert.ok(shown.includes('decided:   -'));
    const json = JSON.parse((await fx.run(['approvals', 'show', expired.approval.id, '--json'])).stdout) as Record<string, unknown>;
    assert.deepEqual(
      [json.id, json.status, json.task_id, json.user, json.actors, json.action, json.resource, json.expires_at],
      [expired.approval.id, 'expired', task.id, 'alice', ['sales-outreach'], 'call', { type: 'Tool', id: 'send_email' }, new Date(expired.approval.expiresAt).toISOString()],
    );
    assert.equal(json.decided_at, undefined);

    const unknown = await fx.run(['approvals', 'show', 'apr_00000000-0000-4000-8000-000000000000']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /ERR_NOT_FOUND: no approval apr_0+-0000-4000-8000-0+ is known/);
    for (const [argv, message] of [
      [['approvals', 'list', '--status', 'waiting'], /--status: "waiting" is not one of pending, approved, denied, expired, used/],
      [['approvals', 'list', '--limit', '0'], /--limit: a whole number 1\.\.10000/],
      [['approvals', 'show'], /missing the approval id/],
      [['approvals', 'show', 'task_123'], /"task_123" is not an approval id/],
      [['approvals', 'approve', 'apr_x\u001b[2J'], /is not an approval id/],
    ] as const) {
      const r = await fx.run(argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.ok(!r.stderr.includes('\u001b'), 'no raw escape reaches the terminal');
    }
    assert.deepEqual(await decideEvents(fx), [], 'reads and usage errors write nothing');
  });
});

test('approvals approve: stored as approved by cli:<user> with its approval.decide event; the step gate can then use it once', async () => {
  await withFixture(async (fx) => {
    const { task, fresh } = await seedThree(fx);
    const approved = await fx.run(['approvals', 'approve', fresh.approval.id, '--reason', 'checked with the customer'], { env: { MANDATE_KEK: fx.kek, USER: 'carol' } });
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(
      approved.stdout,
      new RegExp(`^approved ${fresh.approval.id} \\(call Tool::"send_email" in task ${task.id} \\(lead-followup\\) for alice\\): the agent may repeat exactly this call once, until \\S+Z\\. Audited as cli:\\S+\\.\\n$`),
    );

    const stored = await withStore(fx, (store) => store.approvals.get(fresh.approval.id));
    assert.equal(stored?.status, 'approved');
    assert.match(String(stored?.decidedBy), /^cli:/);
    assert.equal(stored?.reason, 'checked with the customer');
    assert.ok(stored?.decidedAt !== undefined && stored.decidedAt <= Date.now());

    const events = await decideEvents(fx);
    assert.equal(events.length, 1);
    const e = events[0];
    assert.equal(e?.actor, stored?.decidedBy);
    assert.deepEqual([e?.outcome, e?.subject, e?.resource, e?.reasons], ['success', 'User::"alice"', `approval:${fresh.approval.id}`, ['checked with the customer']]);
    assert.deepEqual(e?.data, { approvalId: fresh.approval.id, decision: 'approved', taskId: task.id, source: 'cli' });

    const shown = JSON.parse((await fx.run(['approvals', 'show', fresh.approval.id, '--json'])).stdout) as Record<string, unknown>;
    assert.deepEqual([shown.status, shown.decided_by, shown.reason], ['approved', stored?.decidedBy, 'checked with the customer']);

    // The approval is for exactly the call it was made for, once (as the step gate consumes it).
    await withStore(fx, async (store) => {
      const use = (args: Record<string, unknown>) =>
        store.approvals.consume(fresh.approval.id, callHash(task.id, 'call', fresh.approval.resource, args), Date.now(), createAuditEvent({ type: 'approval.decide', outcome: 'success', actor: task.agentId, data: { operation: 'approval.use', approvalId: fresh.approval.id, taskId: task.id } }, { clock: systemClock }));
      assert.equal(await use({ ...fresh.args, to: 'someone-else@evil.example' }), false);
      assert.equal(await use(fresh.args), true);
      assert.equal(await use(fresh.args), false);
    });
    assert.equal(JSON.parse((await fx.run(['approvals', 'list', '--status', 'used', '--json'])).stdout).approvals[0].id, fresh.approval.id);
  });
});

test('approvals deny, and deciding what is no longer pending or has expired: exit 1, a clear message, nothing written', async () => {
  await withFixture(async (fx) => {
    const { fresh, expired, other } = await seedThree(fx);
    const denied = await fx.run(['approvals', 'deny', other.approval.id, '--json']);
    assert.equal(denied.code, 0, denied.stderr);
    const json = JSON.parse(denied.stdout) as Record<string, unknown>;
    assert.equal(json.status, 'denied');
    assert.match(String(json.decided_by), /^cli:/);
    assert.equal(json.reason, undefined);
    const [deny] = await decideEvents(fx);
    assert.deepEqual(deny?.data, { approvalId: other.approval.id, decision: 'denied', taskId: other.approval.taskId, source: 'cli' });
    assert.equal(deny?.reasons, undefined);

    const again = await fx.run(['approvals', 'approve', other.approval.id]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`^mandate approvals approve: ERR_CONFLICT: approval ${other.approval.id} is already denied by cli:\\S+ at \\S+Z; only a pending approval can be decided, nothing was written\\n$`));
    assert.equal(again.stdout, '');

    const late = await fx.run(['approvals', 'approve', expired.approval.id, '--reason', 'sorry, I was away']);
    assert.equal(late.code, 1);
    assert.match(late.stderr, new RegExp(`ERR_CONFLICT: approval ${expired.approval.id} expired at ${new Date(expired.approval.expiresAt).toISOString().replace(/\./g, '\\.')} and can no longer be decided \\(the agent must ask again\\); nothing was written`));
    assert.equal((await fx.run(['approvals', 'deny', expired.approval.id])).code, 1);

    const unknown = await fx.run(['approvals', 'deny', 'apr_00000000-0000-4000-8000-000000000000']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /ERR_NOT_FOUND: no approval/);
    const tooLong = await fx.run(['approvals', 'approve', fresh.approval.id, '--reason', 'x'.repeat(501)]);
    assert.equal(tooLong.code, 2);
    assert.match(tooLong.stderr, /--reason: at most 500 characters/);

    await withStore(fx, async (store) => {
      assert.equal((await store.approvals.get(other.approval.id))?.status, 'denied', 'the first decision stands');
      const e = await store.approvals.get(expired.approval.id);
      assert.deepEqual([e?.status, e?.decidedAt, e?.reason], ['pending', undefined, undefined], 'the expired request is untouched');
      assert.equal((await store.approvals.get(fresh.approval.id))?.status, 'pending');
    });
    assert.equal((await decideEvents(fx)).length, 1, 'only the one decision was audited');
  });
});

test('mandate approvals --help lists the four commands', async () => {
  await withFixture(async (fx) => {
    const r = await fx.run(['approvals', '--help'], { config: false });
    assert.equal(r.code, 0);
    for (const c of ['list', 'show', 'approve', 'deny']) assert.match(r.stdout, new RegExp(`^ {2}${c} +\\S`, 'm'));
    assert.match((await fx.run(['approvals', 'approve', '--help'], { config: false })).stdout, /approval\.decide audit event \(actor cli:<os user>/);
  });
});

/**
 * The multi-step scenario of a task, end to end on a real node with the example policies and workflows: bob's
 * triage agent opens a task, takes allowed steps (checked by a PEP through AuthZEN with the task in context),
 * is denied out-of-plan steps with reason codes, waits for and receives a person's approval for a refund, ends
 * the task, and its next call fails. Also the violation rule `revoke` (+ quarantine) of another workflow.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/index.ts';
import { startMandate, type RunningMandate } from '../../src/cli/start-mandate.ts';
import { createLogger } from '../../src/server/index.ts';
import { generateKek } from '../../src/tokens/key-encryption.ts';
import { ACCESS_TOKEN, AUD, EXAMPLES, EXCHANGE, ISS, JWT_BEARER, newKey, type Key } from '../fixtures/oauth-world.ts';

const DESK = 'https://support.test/mcp';
const CRM = 'https://crm.test/mcp';


interface World {
  node: RunningMandate;
  url: string;
  idp: Key;
  keys: Record<'triage' | 'outreach' | 'gateway', Key>;
  pepToken: string;
  close(): Promise<void>;
}

async function startWorld(): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-steps-'));
  const policyDir = join(dir, 'policies');
  await cp(EXAMPLES, policyDir, { recursive: true });
  // In this scenario a triage violation is denied, not revoked, so that the task goes on after it.
  const triage = join(policyDir, 'workflows', 'ticket-triage.yaml');
  await writeFile(triage, (await readFile(triage, 'utf8')).replace('action: revoke\n  quarantineAgent: true', 'action: deny\n  quarantineAgent: false'));
  // The example guardrail that lets agents move money only in business hours would make this test depend on the
  // time of day: this copy drops it (its own tests cover it).
  const guardrails = join(policyDir, 'guardrails.cedar');
  const text = await readFile(guardrails, 'utf8');
  const start = text.indexOf('@id("agents-pay-only-in-business-hours")');
  const stop = text.indexOf('};', start) + 2;
  assert.ok(start > 0 && stop > start, 'the example guardrail moved: update this test');
  await writeFile(guardrails, text.slice(0, start) + text.slice(stop));
  await rm(join(policyDir, 'guardrails.test.yaml'), { force: true });
  const idp = await newKey('corp');
  await writeFile(join(dir, 'corp.json'), JSON.stringify({ keys: [idp.publicJwk] }));
  const keys = { triage: await newKey('triage-1'), outreach: await newKey('outreach-1'), gateway: await newKey('gateway-1') };
  const jwks = (k: Key) => [{ type: 'jwks', jwks: { keys: [k.publicJwk] } }];
  const config = parseConfig(
    stringify({
      store: { dataDir: join(dir, 'data') },
      policy: { dir: policyDir, watch: false },
      identity: { issuers: [{ issuer: ISS, jwksFile: 'corp.json', audiences: [AUD] }] },
      resources: [
        {
          uri: DESK,
          scopes: {
            'wiki.search': [{ action: 'call', resource: { type: 'Tool', id: 'wiki.search' } }],
            'wiki.read': [{ action: 'read', resource: { type: 'Dataset', id: 'wiki' } }],
          },
        },
        { uri: CRM, scopes: { 'crm.search': [{ action: 'call', resource: { type: 'Tool', id: 'crm.search' } }] } },
      ],
      principals: [
        { id: 'triage-bot', kind: 'agent', name: 'Triage', owner: 'bob', mode: 'autonomous', workflows: ['ticket-triage'], audiences: [DESK], dpop: 'optional', credentials: jwks(keys.triage) },
        { id: 'sales-outreach', kind: 'agent', name: 'Outreach', owner: 'alice', mode: 'autonomous', workflows: ['lead-followup'], audiences: [CRM], dpop: 'optional', credentials: jwks(keys.outreach) },
        { id: 'gateway', kind: 'service', name: 'Gateway PEP', owner: 'carol', apiScopes: ['evaluate'], dpop: 'optional', credentials: jwks(keys.gateway) },
      ],
    }),
    { source: 'test', env: {}, baseDir: dir, cwd: dir },
  );
  config.server.port = 0;
  const node = await startMandate(config, { env: { MANDATE_KEK: generateKek() }, logger: createLogger({ level: 'silent' }) });
  const w = { node, url: node.url, idp, keys, pepToken: '', close: async () => undefined } as World;
  const pep = await post(w, '/oauth/token', { grant_type: 'client_credentials', resource: node.url, scope: 'evaluate', client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'gateway', keys.gateway) });
  assert.equal(pep.status, 200, JSON.stringify(pep.body));
  w.pepToken = pep.body.access_token as string;
  w.close = async () => {
    await node.stop();
    await rm(dir, { recursive: true, force: true });
  };
  return w;
}

const userToken = (w: World, sub: string, roles: string[] = []) =>
  new SignJWT({ sub, roles, jti: randomUUID(), client_id: 'corp-app' }).setProtectedHeader({ alg: 'ES256', kid: 'corp', typ: 'at+jwt' }).setIssuer(ISS).setAudience(AUD).setIssuedAt().setExpirationTime('10m').sign(w.idp.privateKey);
const assertion = (w: World, clientId: string, key: Key) =>
  new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer(clientId).setSubject(clientId).setAudience(w.url).setIssuedAt().setExpirationTime('60s').sign(key.privateKey);

async function post(w: World, path: string, form: Record<string, string>) {
  const res = await fetch(`${w.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown> };
}

async function openTask(w: World, agent: 'triage-bot' | 'sales-outreach', user: string, workflow: string, resource: string, scope: string) {
  const r = await post(w, '/oauth/token', {
    grant_type: EXCHANGE,
    subject_token: await userToken(w, user),
    subject_token_type: ACCESS_TOKEN,
    resource,
    scope,
    authorization_details: JSON.stringify([{ type: 'mandate_task', workflow, purpose: 'handle ticket T-42' }]),
    client_assertion_type: JWT_BEARER,
    client_assertion: await assertion(w, agent, agent === 'triage-bot' ? w.keys.triage : w.keys.outreach),
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { taskId: String((r.body.authorization_details as Array<Record<string, unknown>>)[0]?.task_id), refresh: String(r.body.refresh_token), mandate: String(r.body.access_token) };
}

/** The PEP asks Mandate about one step of the task (AuthZEN 1.0 with the task in context). */
async function step(w: World, t: { taskId: string }, user: string, agent: string, action: string, resource: { type: string; id: string }, context: Record<string, unknown> = {}) {
  const res = await fetch(`${w.url}/access/v1/evaluation`, {
    method: 'POST',
    headers: { authorization: `Bearer ${w.pepToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ subject: { type: 'user', id: user }, action: { name: action }, resource, context: { task: { type: 'Task', id: t.taskId }, delegation: { actors: [{ type: 'agent', id: agent }] }, ...context } }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as { decision: boolean; context: Record<string, unknown> & { reason_code?: string; approval?: Record<string, unknown>; reason_admin?: { en: string } } };
}

test('a task from start to end: allowed steps, out-of-plan steps denied with reasons, an approval awaited and used once, the end, the next call fails', async () => {
  const w = await startWorld();
  try {
    const t = await openTask(w, 'triage-bot', 'bob', 'ticket-triage', DESK, 'wiki.search wiki.read');
    const bobStep = (action: string, resource: { type: string; id: string }, context: Record<string, unknown> = {}) => step(w, t, 'bob', 'triage-bot', action, resource, context);

    // Allowed steps, each recorded.
    const s1 = await bobStep('call', { type: 'tool', id: 'wiki.search' }, { arguments: { query: 'refund policy' } });
    assert.equal(s1.decision, true, JSON.stringify(s1.context));
    const s2 = await bobStep('read', { type: 'dataset', id: 'wiki' });
    assert.equal(s2.decision, true, JSON.stringify(s2.context));
    assert.equal((await w.node.store.tasks.get(t.taskId))?.stepsTaken, 2);

    // Out of plan: a tool the workflow does not list; data above its ceiling; arguments beyond its limits.
    const crm = await bobStep('call', { type: 'tool', id: 'crm.update' });
    assert.equal(crm.decision, false);
    assert.equal(crm.context.reason_code, 'tool_not_in_workflow');
    const salaries = await bobStep('read', { type: 'dataset', id: 'hr-salaries' });
    assert.equal(salaries.context.reason_code, 'dataset_not_in_workflow');
    const tooMuch = await bobStep('trigger', { type: 'tool', id: 'payments.refund' }, { arguments: { ticketId: 'T-42', amount: 5000, currency: 'EUR' }, args: { amount: 5000, currency: 'EUR' } });
    assert.equal(tooMuch.context.reason_code, 'args_invalid');
    assert.doesNotMatch(JSON.stringify(tooMuch.context), /5000/, 'argument values are never echoed');
    const wrongUser = await step(w, t, 'alice', 'triage-bot', 'read', { type: 'dataset', id: 'wiki' });
    assert.equal(wrongUser.context.reason_code, 'task_mismatch');
    assert.equal((await w.node.store.tasks.get(t.taskId))?.status, 'open', 'deny mode: the task goes on');
    assert.equal((await w.node.store.tasks.get(t.taskId))?.stepsTaken, 2, 'refused steps are not counted');

    // A refund: the workflow asks for a person's approval. The PEP gets a handle to poll.
    const refund = { arguments: { ticketId: 'T-42', amount: 120, currency: 'EUR' }, args: { amount: 120, currency: 'EUR' } };
    const pending = await bobStep('trigger', { type: 'tool', id: 'payments.refund' }, refund);
    assert.equal(pending.decision, false);
    const approvalId = String(pending.context.approval?.id);
    assert.match(approvalId, /^apr_/);
    assert.equal(pending.context.approval?.status, 'pending');
    const poll = async () => (await (await fetch(`${w.url}/approvals/v1/${approvalId}`, { headers: { authorization: `Bearer ${w.pepToken}` } })).json()) as Record<string, unknown>;
    assert.equal((await poll()).status, 'pending');
    // Used before it is approved: refused.
    assert.equal((await bobStep('trigger', { type: 'tool', id: 'payments.refund' }, { ...refund, approval_id: approvalId })).context.reason_code, 'approval_invalid');

    // alice is no approver; carol is.
    const decide = async (user: string, roles: string[], decision: string) =>
      fetch(`${w.url}/approvals/v1/${approvalId}/decision`, { method: 'POST', headers: { authorization: `Bearer ${await userToken(w, user, roles)}`, 'content-type': 'application/json' }, body: JSON.stringify({ decision, reason: 'customer is right' }) });
    assert.equal((await decide('alice', [], 'approve')).status, 403);
    const approved = await decide('carol', ['approver'], 'approve');
    assert.equal(approved.status, 200);
    assert.equal((await poll()).status, 'approved');
    assert.equal((await decide('carol', ['approver'], 'deny')).status, 409, 'decided once');

    // The approval is for this exact call: other arguments do not use it; the same call goes through, once.
    const other = await bobStep('trigger', { type: 'tool', id: 'payments.refund' }, { arguments: { ticketId: 'T-42', amount: 130, currency: 'EUR' }, args: { amount: 130, currency: 'EUR' }, approval_id: approvalId });
    assert.equal(other.context.reason_code, 'approval_invalid');
    // An approval given in one task is useless in another task, even for the same user, agent and call.
    const t2 = await openTask(w, 'triage-bot', 'bob', 'ticket-triage', DESK, 'wiki.search');
    const elsewhere = await step(w, t2, 'bob', 'triage-bot', 'trigger', { type: 'tool', id: 'payments.refund' }, { ...refund, approval_id: approvalId });
    assert.equal(elsewhere.context.reason_code, 'approval_invalid');
    const go = await bobStep('trigger', { type: 'tool', id: 'payments.refund' }, { ...refund, approval_id: approvalId });
    assert.equal(go.decision, true, JSON.stringify(go.context));
    const again = await bobStep('trigger', { type: 'tool', id: 'payments.refund' }, { ...refund, approval_id: approvalId });
    assert.equal(again.decision, false);
    assert.equal(again.context.reason_code, 'approval_invalid');

    // The agent ends the task: everything it holds is revoked, and its next call fails.
    const end = await post(w, '/oauth/revoke', { token: t.refresh, token_type_hint: 'refresh_token', client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'triage-bot', w.keys.triage) });
    assert.equal(end.status, 200);
    const after = await bobStep('read', { type: 'dataset', id: 'wiki' });
    assert.equal(after.decision, false);
    assert.equal(after.context.reason_code, 'task_not_open');
    assert.match(String(after.context.reason_admin?.en), /ended/);
    const introspected = await post(w, '/oauth/introspect', { token: t.mandate, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'gateway', w.keys.gateway) });
    assert.deepEqual(introspected.body, { active: false });

    // Every step, violation and approval is on the audit record.
    const events = await w.node.store.audit.list({ afterSeq: 0, limit: 10_000 });
    const decisions = events.filter((e) => e.type === 'decision');
    assert.ok(decisions.some((e) => (e.reasons ?? []).some((r) => r.startsWith('tool_not_in_workflow:'))));
    assert.ok(events.some((e) => e.type === 'approval.request' && (e.data as { approvalId?: string }).approvalId === approvalId));
    assert.ok(events.some((e) => e.type === 'approval.decide' && (e.data as { decision?: string }).decision === 'approved'));
    assert.ok(events.some((e) => e.type === 'task.close' && (e.data as { taskId?: string }).taskId === t.taskId));
  } finally {
    await w.close();
  }
});

test("a workflow whose violation rule is revoke: one out-of-plan step revokes the task and all it holds", async () => {
  const w = await startWorld();
  try {
    const t = await openTask(w, 'sales-outreach', 'alice', 'lead-followup', CRM, 'crm.search');
    const ok = await step(w, t, 'alice', 'sales-outreach', 'call', { type: 'tool', id: 'crm.search' }, { arguments: { query: 'ACME' } });
    assert.equal(ok.decision, true, JSON.stringify(ok.context));
    const refund = await step(w, t, 'alice', 'sales-outreach', 'trigger', { type: 'tool', id: 'payments.refund' });
    assert.equal(refund.decision, false);
    assert.equal(refund.context.reason_code, 'action_not_in_workflow');
    const task = await w.node.store.tasks.get(t.taskId);
    assert.equal(task?.status, 'revoked');
    assert.equal(task?.endReason, 'violation:action_not_in_workflow');
    const next = await step(w, t, 'alice', 'sales-outreach', 'call', { type: 'tool', id: 'crm.search' }, { arguments: { query: 'ACME' } });
    assert.equal(next.context.reason_code, 'task_not_open');
    const introspected = await post(w, '/oauth/introspect', { token: t.mandate, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'gateway', w.keys.gateway) });
    assert.deepEqual(introspected.body, { active: false });
  } finally {
    await w.close();
  }
});

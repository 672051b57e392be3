/**
 * Tasks through the token endpoint of a real node with the example policies and workflows: opening a task
 * (RFC 9396 authorization_details in a token exchange), its mandates held to the workflow, renewal with rotated
 * refresh tokens (reuse revokes the task), ending a task by revoking its grant, re-evaluation after a policy
 * change, disabled users and lockdown. openid-client drives the renewal as a stock OAuth client would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { decodeJwt, SignJWT } from 'jose';
import * as oc from 'openid-client';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/index.ts';
import { startMandate, type RunningMandate } from '../../src/cli/start-mandate.ts';
import { createLogger } from '../../src/server/index.ts';
import { generateKek } from '../../src/tokens/key-encryption.ts';
import { ACCESS_TOKEN, AUD, EXAMPLES, EXCHANGE, ISS, JWT_BEARER, newKey, type Key } from '../fixtures/oauth-world.ts';

const CRM = 'https://crm.test/mcp';


interface World {
  node: RunningMandate;
  url: string;
  policyDir: string;
  idp: Key;
  agents: Record<'outreach' | 'helpdesk', Key>;
  close(): Promise<void>;
}

async function startWorld(prepare?: (policyDir: string) => Promise<void>): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-tasks-'));
  const policyDir = join(dir, 'policies');
  await cp(EXAMPLES, policyDir, { recursive: true });
  await prepare?.(policyDir);
  const idp = await newKey('corp');
  await writeFile(join(dir, 'corp.json'), JSON.stringify({ keys: [idp.publicJwk] }));
  const agents = { outreach: await newKey('outreach-1'), helpdesk: await newKey('helpdesk-1') };
  const config = parseConfig(
    stringify({
      store: { dataDir: join(dir, 'data') },
      policy: { dir: policyDir, watch: false },
      identity: { issuers: [{ issuer: ISS, jwksFile: 'corp.json', audiences: [AUD] }] },
      resources: [
        {
          uri: CRM,
          scopes: {
            'crm.search': [{ action: 'call', resource: { type: 'Tool', id: 'crm.search' } }],
            'crm.update': [{ action: 'call', resource: { type: 'Tool', id: 'crm.update' } }],
            'crm.read': [{ action: 'read', resource: { type: 'Dataset', id: 'crm' } }],
            'payments.refund': [{ action: 'call', resource: { type: 'Tool', id: 'payments.refund' } }],
          },
        },
      ],
      principals: [
        { id: 'sales-outreach', kind: 'agent', name: 'Outreach', owner: 'alice', mode: 'autonomous', workflows: ['lead-followup'], audiences: [CRM], dpop: 'optional', credentials: [{ type: 'jwks', jwks: { keys: [agents.outreach.publicJwk] } }] },
        { id: 'helpdesk-assistant', kind: 'agent', name: 'Helpdesk', owner: 'bob', mode: 'chat', audiences: [CRM], dpop: 'optional', credentials: [{ type: 'jwks', jwks: { keys: [agents.helpdesk.publicJwk] } }] },
      ],
    }),
    { source: 'test', env: {}, baseDir: dir, cwd: dir },
  );
  config.server.port = 0;
  const node = await startMandate(config, { env: { MANDATE_KEK: generateKek() }, logger: createLogger({ level: 'silent' }) });
  return {
    node,
    url: node.url,
    policyDir,
    idp,
    agents,
    async close() {
      await node.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const nowS = () => Math.floor(Date.now() / 1000);
const userToken = (w: World, sub = 'alice', ttl = 600) =>
  new SignJWT({ sub, jti: randomUUID(), client_id: 'corp-app' }).setProtectedHeader({ alg: 'ES256', kid: 'corp', typ: 'at+jwt' }).setIssuer(ISS).setAudience(AUD).setIssuedAt().setExpirationTime(nowS() + ttl).sign(w.idp.privateKey);
const assertion = (w: World, clientId: string, key: Key) =>
  new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer(clientId).setSubject(clientId).setAudience(w.url).setIssuedAt().setExpirationTime('60s').sign(key.privateKey);

async function post(w: World, path: string, form: Record<string, string>) {
  const res = await fetch(`${w.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown> };
}

async function openTask(w: World, opts: { agent?: 'sales-outreach' | 'helpdesk-assistant'; user?: string; workflow?: string; scope?: string } = {}) {
  const agent = opts.agent ?? 'sales-outreach';
  const key = agent === 'sales-outreach' ? w.agents.outreach : w.agents.helpdesk;
  return post(w, '/oauth/token', {
    grant_type: EXCHANGE,
    subject_token: await userToken(w, opts.user ?? 'alice'),
    subject_token_type: ACCESS_TOKEN,
    resource: CRM,
    scope: opts.scope ?? 'crm.search crm.update crm.read payments.refund',
    authorization_details: JSON.stringify([{ type: 'mandate_task', workflow: opts.workflow ?? 'lead-followup', purpose: 'follow up the ACME lead' }]),
    client_assertion_type: JWT_BEARER,
    client_assertion: await assertion(w, agent, key),
  });
}

async function introspect(w: World, token: string) {
  return (await post(w, '/oauth/introspect', { token, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'sales-outreach', w.agents.outreach) })).body;
}

let shared: Promise<World> | undefined;
const world = () => (shared ??= startWorld());
test.after(async () => {
  if (shared) await (await shared).close();
});

test('opening a task: a mandate held to the workflow, the task in authorization_details, a refresh token for its grant', async () => {
  const w = await world();
  const opened = await openTask(w);
  assert.equal(opened.status, 200, JSON.stringify(opened.body));
  assert.equal(opened.body.scope, 'crm.search crm.update crm.read', 'payments.refund is outside lead-followup');
  assert.match(String(opened.body.refresh_token), /^mrt_/);
  const details = opened.body.authorization_details as Array<Record<string, unknown>>;
  assert.equal(details[0]?.type, 'mandate_task');
  assert.equal(details[0]?.workflow, 'lead-followup');
  assert.equal(details[0]?.purpose, 'follow up the ACME lead');
  const taskId = String(details[0]?.task_id);
  assert.match(taskId, /^task_/);
  const claims = decodeJwt(opened.body.access_token as string) as Record<string, unknown>;
  assert.deepEqual(claims.authorization_details, [{ type: 'mandate_task', workflow: 'lead-followup', task_id: taskId }]);
  assert.equal(claims.agent_mode, 'autonomous', "the agent's mode travels in the mandate");
  const task = await w.node.store.tasks.get(taskId);
  assert.equal(task?.status, 'open');
  assert.equal(task?.agentId, 'sales-outreach');
  assert.equal(task?.userSub, 'alice');
  assert.equal(task?.userIss, ISS);
  assert.equal((await w.node.store.tokens.get(String(claims.jti)))?.taskId, taskId);
  const events = await w.node.store.audit.list({ afterSeq: 0, limit: 10_000 });
  assert.ok(events.some((e) => e.type === 'token.issue' && (e.data as { taskId?: string; taskOpened?: boolean }).taskId === taskId && (e.data as { taskOpened?: boolean }).taskOpened === true));
});

test('who may open a task: the agent must be registered for the workflow, the user allowed to run it, the workflow active', async () => {
  const w = await world();
  const chat = await openTask(w, { agent: 'helpdesk-assistant' });
  assert.equal(chat.status, 400);
  assert.equal(chat.body.error, 'invalid_authorization_details');
  assert.match(String(chat.body.error_description), /not registered for the workflow/);
  const bob = await openTask(w, { user: 'bob' });
  assert.equal(bob.body.error, 'invalid_authorization_details');
  assert.match(String(bob.body.error_description), /policy does not let bob run "lead-followup"/);
  const unknown = await openTask(w, { workflow: 'no-such-workflow' });
  assert.equal(unknown.body.error, 'invalid_authorization_details');
  const malformed = await post(w, '/oauth/token', { grant_type: EXCHANGE, subject_token: await userToken(w), subject_token_type: ACCESS_TOKEN, resource: CRM, scope: 'crm.search', authorization_details: '{"type":"mandate_task"}', client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'sales-outreach', w.agents.outreach) });
  assert.equal(malformed.body.error, 'invalid_authorization_details');
  assert.equal((await w.node.store.tasks.list({ status: 'open', agentId: 'helpdesk-assistant' })).length, 0, 'nothing half-written');
});

test('renewal with openid-client: the refresh token rotates; a reused one revokes the task and everything it holds', async () => {
  const w = await world();
  const opened = await openTask(w);
  const taskId = String((opened.body.authorization_details as Array<Record<string, unknown>>)[0]?.task_id);
  const cfg = await oc.discovery(new URL(w.url), 'sales-outreach', undefined, oc.PrivateKeyJwt({ key: w.agents.outreach.privateKey, kid: w.agents.outreach.kid }), { execute: [oc.allowInsecureRequests], algorithm: 'oauth2' });
  const renewed = await oc.refreshTokenGrant(cfg, String(opened.body.refresh_token), { resource: CRM, scope: 'crm.search' });
  assert.equal(renewed.scope, 'crm.search');
  assert.notEqual(renewed.refresh_token, opened.body.refresh_token, 'rotated');
  const claims = decodeJwt(renewed.access_token) as Record<string, unknown>;
  assert.deepEqual(claims.act, { sub: 'sales-outreach' });
  assert.equal(claims.sub, 'alice');
  assert.equal((await introspect(w, renewed.access_token)).active, true);

  // The old refresh token again: theft signal. The task and all its mandates go.
  await assert.rejects(oc.refreshTokenGrant(cfg, String(opened.body.refresh_token), { resource: CRM, scope: 'crm.search' }), (err: unknown) => {
    assert.ok(err instanceof oc.ResponseBodyError);
    assert.equal(err.error, 'invalid_grant');
    return true;
  });
  const task = await w.node.store.tasks.get(taskId);
  assert.equal(task?.status, 'revoked');
  assert.equal(task?.endReason, 'refresh_token_reuse');
  assert.deepEqual(await introspect(w, renewed.access_token), { active: false });
  assert.deepEqual(await introspect(w, opened.body.access_token as string), { active: false });
  await assert.rejects(oc.refreshTokenGrant(cfg, String(renewed.refresh_token), { resource: CRM, scope: 'crm.search' }));
});

test('ending a task: revoking its refresh token (RFC 7009) ends it; its mandates and re-delegated ones are inactive', async () => {
  const w = await world();
  const opened = await openTask(w);
  const details = opened.body.authorization_details as Array<Record<string, unknown>>;
  const revoked = await post(w, '/oauth/revoke', { token: String(opened.body.refresh_token), token_type_hint: 'refresh_token', client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'sales-outreach', w.agents.outreach) });
  assert.equal(revoked.status, 200);
  const task = await w.node.store.tasks.get(String(details[0]?.task_id));
  assert.equal(task?.status, 'ended');
  assert.equal(task?.endReason, 'grant_revoked');
  assert.deepEqual(await introspect(w, opened.body.access_token as string), { active: false });
  const closes = (await w.node.store.audit.list({ afterSeq: 0, limit: 10_000 })).filter((e) => e.type === 'task.close' && (e.data as { taskId?: string }).taskId === task?.id);
  assert.equal(closes.length, 1);
  // Re-exchanging a mandate of the ended task fails with a reason naming the task.
  const again = await post(w, '/oauth/token', { grant_type: EXCHANGE, subject_token: opened.body.access_token as string, subject_token_type: ACCESS_TOKEN, resource: CRM, scope: 'crm.search', client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'helpdesk-assistant', w.agents.helpdesk) });
  assert.equal(again.body.error, 'invalid_grant');
  assert.match(String(again.body.error_description), /task has ended/);
});

test('context changes: a disabled user and lockdown revoke at once; a policy change re-decides open tasks', async () => {
  const w = await startWorld();
  try {
    const a = await openTask(w);
    const taskA = String((a.body.authorization_details as Array<Record<string, unknown>>)[0]?.task_id);
    const ev = () => ({ id: randomUUID(), time: new Date().toISOString(), type: 'admin' as const, outcome: 'success' as const, redacted: [] });
    await w.node.store.users.disable({ iss: ISS, sub: 'alice' }, Date.now(), 'test', ev(), () => ev());
    assert.equal((await w.node.store.tasks.get(taskA))?.status, 'revoked');
    assert.deepEqual(await introspect(w, a.body.access_token as string), { active: false });
    const refused = await openTask(w);
    assert.equal(refused.body.error, 'invalid_grant');
    assert.match(String(refused.body.error_description), /disabled/);
    await w.node.store.users.enable({ iss: ISS, sub: 'alice' }, ev());

    const b = await openTask(w);
    assert.equal(b.status, 200);
    await w.node.store.lockdown.engage(Date.now(), 'carol', 'drill', w.url, ev(), () => ev());
    assert.deepEqual(await introspect(w, b.body.access_token as string), { active: false });
    const locked = await openTask(w);
    assert.equal(locked.status, 503);
    assert.equal(locked.body.error, 'temporarily_unavailable');
    await w.node.store.lockdown.lift(Date.now(), 'carol', ev());

    // The policy set changes: sales may no longer run lead-followup. The open task is revoked at the reload.
    const c = await openTask(w);
    const taskC = String((c.body.authorization_details as Array<Record<string, unknown>>)[0]?.task_id);
    const runs = join(w.policyDir, 'workflow-runs.cedar');
    const { readFile } = await import('node:fs/promises');
    const text = await readFile(runs, 'utf8');
    await writeFile(runs, text.replace('principal in Group::"sales",\n  action == Action::"run",\n  resource == Workflow::"lead-followup"', 'principal in Group::"hr",\n  action == Action::"run",\n  resource == Workflow::"lead-followup"'));
    await rm(join(w.policyDir, 'workflow-runs.test.yaml'), { force: true });
    const outcome = await w.node.server.reloadPolicies({ source: 'test' });
    assert.equal(outcome.ok, true, outcome.ok ? '' : String(outcome.error));
    const after = await w.node.store.tasks.get(taskC);
    assert.equal(after?.status, 'revoked');
    assert.equal(after?.endReason, 'policy_no_longer_allows');
  } finally {
    await w.close();
  }
});

test('a task past its maximum duration ends on time: the sweeper closes it and its mandates are inactive', async () => {
  const w = await startWorld(async (policyDir) => {
    const file = join(policyDir, 'workflows', 'lead-followup.yaml');
    const { readFile } = await import('node:fs/promises');
    await writeFile(file, (await readFile(file, 'utf8')).replace(/duration:\n {2}maxSeconds: \d+\n {2}idleSeconds: \d+/, 'duration:\n  maxSeconds: 1\n  idleSeconds: 1'));
  });
  try {
    const opened = await openTask(w);
    assert.equal(opened.status, 200, JSON.stringify(opened.body));
    const taskId = String((opened.body.authorization_details as Array<Record<string, unknown>>)[0]?.task_id);
    assert.ok((decodeJwt(opened.body.access_token as string).exp as number) - nowS() <= 1, 'a mandate never outlives its task');
    await new Promise((r) => setTimeout(r, 1100));
    await w.node.tokens?.service.sweepTasks();
    const task = await w.node.store.tasks.get(taskId);
    assert.equal(task?.status, 'ended');
    assert.equal(task?.endReason, 'task_expired');
    assert.deepEqual(await introspect(w, opened.body.access_token as string), { active: false });
  } finally {
    await w.close();
  }
});

test('a user known only from the IdP: the task keeps their attributes, so renewals and re-evaluations decide for the same user', async () => {
  const w = await startWorld(async (policyDir) => {
    await writeFile(
      join(policyDir, 'runners.cedar'),
      `permit (principal is User, action == Action::"run", resource == Workflow::"lead-followup") when { principal has department && principal.department == "field-sales" };
permit (principal is User, action == Action::"call", resource == Tool::"crm.search") when { principal has department && principal.department == "field-sales" };
`,
    );
  });
  try {
    const token = await new SignJWT({ sub: 'frank', department: 'field-sales', jti: randomUUID(), client_id: 'corp-app' }).setProtectedHeader({ alg: 'ES256', kid: 'corp', typ: 'at+jwt' }).setIssuer(ISS).setAudience(AUD).setIssuedAt().setExpirationTime('10m').sign(w.idp.privateKey);
    const opened = await post(w, '/oauth/token', {
      grant_type: EXCHANGE,
      subject_token: token,
      subject_token_type: ACCESS_TOKEN,
      resource: CRM,
      scope: 'crm.search',
      authorization_details: JSON.stringify([{ type: 'mandate_task', workflow: 'lead-followup', purpose: 'frank follows up' }]),
      client_assertion_type: JWT_BEARER,
      client_assertion: await assertion(w, 'sales-outreach', w.agents.outreach),
    });
    assert.equal(opened.status, 200, JSON.stringify(opened.body));
    const renewed = await post(w, '/oauth/token', { grant_type: 'refresh_token', refresh_token: String(opened.body.refresh_token), resource: CRM, scope: 'crm.search', client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'sales-outreach', w.agents.outreach) });
    assert.equal(renewed.status, 200, JSON.stringify(renewed.body));
    assert.equal(renewed.body.scope, 'crm.search');
    assert.deepEqual(await w.node.tokens?.service.reevaluateOpenTasks(), [], 'the re-evaluation still allows frank');
  } finally {
    await w.close();
  }
});

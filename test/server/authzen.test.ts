/**
 * AuthZEN Authorization API 1.0 over HTTP: response shapes, batch semantics and defaults, delegation,
 * approval, metadata and X-Request-ID.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluation, startServer, type Harness } from './harness.ts';

interface Context {
  id: string;
  policy_set_version: string;
  reason_admin: Record<string, string>;
  reason_user?: Record<string, string>;
  principals: Array<{ principal: string; decision: string; approval_required: boolean; determining: Array<{ id: string; source?: string }> }>;
  approval?: { required: boolean; policies: string[]; how: string };
  error?: { status: number; code: string; message: string };
}
interface EvalResponse {
  decision: boolean;
  context: Context;
}

const withServer = (fn: (h: Harness) => Promise<void>) => async () => {
  const h = await startServer();
  try {
    await fn(h);
  } finally {
    await h.close();
  }
};

const evaluate = async (h: Harness, body: unknown): Promise<EvalResponse> => {
  const res = await h.post('/access/v1/evaluation', body);
  assert.equal(res.status, 200, await res.clone().text());
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return (await res.json()) as EvalResponse;
};

test('POST /access/v1/evaluation: allow is decision true with the decision id, version and determining policy', withServer(async (h) => {
  const r = await evaluate(h, evaluation('alice', 'read', ['dataset', 'wiki']));
  assert.equal(r.decision, true);
  assert.match(r.context.id, /^[0-9a-f-]{36}$/);
  assert.equal(r.context.policy_set_version, h.engine.current()?.version);
  assert.deepEqual(r.context.reason_admin, { en: 'User::"alice": permitted by sales-read-internal' });
  assert.equal(r.context.reason_user, undefined);
  assert.deepEqual(r.context.principals.map((p) => [p.principal, p.decision, p.determining.map((d) => `${d.id}@${d.source}`)]), [['User::"alice"', 'allow', ['sales-read-internal@users.cedar:2']]]);
  // The decision id is the one in the audit log.
  const events = await h.events();
  assert.equal(events.at(-1)?.decisionId, r.context.id);
}));

test('deny is a 200 with decision false (not an HTTP error); an unknown principal is denied with a reason', withServer(async (h) => {
  const bob = await evaluate(h, evaluation('bob', 'read', ['dataset', 'wiki']));
  assert.equal(bob.decision, false);
  assert.deepEqual(bob.context.reason_user, { en: 'Access denied by policy.' });
  const mallory = await evaluate(h, evaluation('mallory', 'read', ['dataset', 'wiki']));
  assert.equal(mallory.decision, false);
  assert.match(mallory.context.reason_admin.en ?? '', /unknown entity User::"mallory"/);
}));

test('delegation over AuthZEN: user may, agent may not → false; agent may, user may not → false; both may → true', withServer(async (h) => {
  // alice may call crm.update; the chat agent `helper` has no permit for call.
  const userOnly = await evaluate(h, evaluation('alice', 'call', ['tool', 'crm.update'], ['helper']));
  assert.equal(userOnly.decision, false);
  assert.deepEqual(userOnly.context.principals.map((p) => [p.principal, p.decision]), [['User::"alice"', 'allow'], ['Agent::"helper"', 'deny']]);
  // bob is not in sales, so he may not read the wiki; the agent may.
  const agentOnly = await evaluate(h, evaluation('bob', 'read', ['dataset', 'wiki'], ['helper']));
  assert.equal(agentOnly.decision, false);
  assert.deepEqual(agentOnly.context.principals.map((p) => [p.principal, p.decision]), [['User::"bob"', 'deny'], ['Agent::"helper"', 'allow']]);
  const both = await evaluate(h, evaluation('alice', 'read', ['dataset', 'wiki'], ['helper']));
  assert.equal(both.decision, true);
  // Restricted data never reaches an agent: the forbid determines the agent's half and is named.
  const restricted = await evaluate(h, evaluation('alice', 'read', ['dataset', 'salaries'], ['helper']));
  assert.equal(restricted.decision, false);
  assert.deepEqual(restricted.context.principals[1]?.determining.map((d) => d.id), ['restricted-never-to-agents']);
  // The audit event names the chain.
  const events = await h.events();
  assert.deepEqual(events.at(-1)?.data?.actors, ['Agent::"helper"']);
}));

test('approval_required is decision false with context.approval naming the @approval policy', withServer(async (h) => {
  const r = await evaluate(h, evaluation('alice', 'call', ['tool', 'crm.update'], ['writer']));
  assert.equal(r.decision, false);
  assert.deepEqual(r.context.approval, { required: true, policies: ['autonomous-call-with-approval'], how: 'ask an approver (a later release adds the approval API)' });
  assert.ok(r.context.reason_user?.en);
  const events = await h.events();
  assert.equal(events.at(-1)?.outcome, 'approval_required');
}));

test('subject and resource properties describe entities the directory does not define; directory entities stay authoritative', withServer(async (h) => {
  const carol = {
    subject: { type: 'user', id: 'carol', properties: { roles: [], parents: [{ type: 'group', id: 'sales' }] } },
    action: { name: 'read' },
    resource: { type: 'dataset', id: 'new-docs', properties: { sensitivity: 'internal', tenant: 'acme' } },
  };
  assert.equal((await evaluate(h, carol)).decision, true);
  // bob claims to be in sales; the directory says otherwise.
  const bob = await evaluate(h, { ...carol, subject: { type: 'user', id: 'bob', properties: { roles: [], parents: [{ type: 'group', id: 'sales' }] } } });
  assert.equal(bob.decision, false);
  assert.match(bob.context.reason_admin.en ?? '', /caller data ignored/);
  // The audit event says what it left out.
  const events = await h.events();
  assert.deepEqual(events.at(-1)?.redacted, ['subject.properties', 'resource.properties']);
}));

const batch = {
  subject: { type: 'user', id: 'alice' },
  action: { name: 'read' },
  context: { delegation: { actors: [{ type: 'agent', id: 'helper' }] } },
  evaluations: [
    // defaults: alice reads the wiki through helper → both may → true
    { resource: { type: 'dataset', id: 'wiki' } },
    // overrides the subject: bob may not → false
    { subject: { type: 'user', id: 'bob' }, resource: { type: 'dataset', id: 'wiki' } },
    // overrides action and context (no delegation): alice calls crm.update herself → true
    { action: { name: 'call' }, resource: { type: 'tool', id: 'crm.update' }, context: {} },
  ],
};

test('POST /access/v1/evaluations: top-level defaults, per-item overrides, results in request order', withServer(async (h) => {
  const res = await h.post('/access/v1/evaluations', batch);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { evaluations: EvalResponse[]; decision?: unknown };
  assert.equal(body.decision, undefined);
  assert.deepEqual(body.evaluations.map((e) => e.decision), [true, false, true]);
  assert.deepEqual(body.evaluations.map((e) => e.context.principals.map((p) => p.principal)), [
    ['User::"alice"', 'Agent::"helper"'],
    ['User::"bob"', 'Agent::"helper"'],
    ['User::"alice"'],
  ]);
  // One audit event per evaluation, each with its own decision id.
  const events = (await h.events()).filter((e) => e.type === 'decision');
  assert.deepEqual(events.map((e) => e.decisionId), body.evaluations.map((e) => e.context.id));
}));

test('evaluations_semantic: execute_all, deny_on_first_deny and permit_on_first_permit', withServer(async (h) => {
  const run = async (semantic: string, evaluations = batch.evaluations) => {
    const res = await h.post('/access/v1/evaluations', { ...batch, evaluations, options: { evaluations_semantic: semantic } });
    assert.equal(res.status, 200);
    return ((await res.json()) as { evaluations: EvalResponse[] }).evaluations.map((e) => e.decision);
  };
  assert.deepEqual(await run('execute_all'), [true, false, true]);
  assert.deepEqual(await run('deny_on_first_deny'), [true, false]);
  assert.deepEqual(await run('permit_on_first_permit'), [true]);
  const [first, second, third] = batch.evaluations;
  assert.deepEqual(await run('permit_on_first_permit', [second, third, first] as typeof batch.evaluations), [false, true]);
  const before = h.decideCalls();
  assert.deepEqual(await run('deny_on_first_deny', [second, first, third] as typeof batch.evaluations), [false]);
  // Short-circuited items are not evaluated at all.
  assert.equal(h.decideCalls() - before, 1);
  const bad = await h.post('/access/v1/evaluations', { ...batch, options: { evaluations_semantic: 'majority' } });
  assert.equal(bad.status, 400);
}));

test('a bad item is closed with context.error; the other items are still decided and everything is audited', withServer(async (h) => {
  const res = await h.post('/access/v1/evaluations', {
    subject: { type: 'user', id: 'alice' },
    evaluations: [
      { action: { name: 'read' }, resource: { type: 'dataset', id: 'wiki' } },
      { action: { name: 'fly' }, resource: { type: 'dataset', id: 'wiki' } },
      { resource: { type: 'dataset', id: 'wiki' } },
      { action: { name: 'read' }, resource: { type: 'robot', id: 'r2' } },
    ],
  });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { evaluations: EvalResponse[] };
  assert.equal(body.evaluations[0]?.decision, true);
  assert.deepEqual(body.evaluations.slice(1).map((e) => [e.decision, e.context.error?.status, e.context.error?.code]), [
    [false, 400, 'ERR_UNKNOWN_ACTION'],
    [false, 400, 'ERR_INVALID_REQUEST'],
    [false, 400, 'ERR_UNKNOWN_ENTITY_TYPE'],
  ]);
  assert.match(body.evaluations[2]?.context.error?.message ?? '', /evaluations\[2\] has no action/);
  const events = await h.events();
  assert.deepEqual(events.map((e) => [e.type, e.outcome, (e.data as { code?: string } | undefined)?.code ?? null]), [
    ['decision', 'allow', null],
    ['decision', 'deny', 'ERR_UNKNOWN_ACTION'],
    ['decision', 'deny', 'ERR_INVALID_REQUEST'],
    ['decision', 'deny', 'ERR_UNKNOWN_ENTITY_TYPE'],
  ]);
}));

test('evaluations without an evaluations array behaves as a single evaluation (AuthZEN §7.1)', withServer(async (h) => {
  const res = await h.post('/access/v1/evaluations', evaluation('alice', 'read', ['dataset', 'wiki']));
  assert.equal(res.status, 200);
  const body = (await res.json()) as EvalResponse;
  assert.equal(body.decision, true);
  assert.match(body.context.id, /^[0-9a-f-]{36}$/);
}));

test('X-Request-ID is echoed on every response; one is generated when absent', withServer(async (h) => {
  const id = 'bfe9eb29-ab87-4ca3-be83-a1d5d8305716';
  const ok = await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki']), { headers: { 'x-request-id': id } });
  assert.equal(ok.headers.get('x-request-id'), id);
  const denied = await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki']), { secret: 'wrong', headers: { 'x-request-id': id } });
  assert.equal(denied.status, 401);
  assert.equal(denied.headers.get('x-request-id'), id);
  const generated = await h.get('/healthz');
  assert.match(generated.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  const events = await h.events();
  assert.equal((events[0]?.data as { requestId?: string }).requestId, id);
}));

test('GET /.well-known/authzen-configuration needs no credential and names the endpoints', withServer(async (h) => {
  const res = await h.get('/.well-known/authzen-configuration', { secret: null });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(await res.json(), {
    policy_decision_point: h.url,
    access_evaluation_endpoint: `${h.url}/access/v1/evaluation`,
    access_evaluations_endpoint: `${h.url}/access/v1/evaluations`,
  });
}));

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exportJWK, generateKeyPair } from 'jose';
import { expectProblem, startServer } from './harness.ts';

const agent = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  kind: 'agent',
  name: `Sales agent ${id}`,
  owner: 'alice@example.com',
  mode: 'autonomous',
  workflows: ['quote-to-cash'],
  audiences: ['https://crm.example/mcp'],
  credentials: [{ type: 'spiffe', spiffeId: `spiffe://example.org/agents/${id}` }],
  ...extra,
});

test('registry API: register, read, list, suspend — each audited; the change commits with its event', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const secret = h.secrets.registrar;
  const created = await h.post('/admin/v1/principals', agent('sales-bot'), { secret });
  assert.equal(created.status, 201);
  assert.equal(created.headers.get('location'), '/admin/v1/principals/sales-bot');
  const body = (await created.json()) as Record<string, unknown>;
  assert.equal(body.status, 'active');
  assert.equal(body.dpop, 'required');
  assert.equal(body.source, 'api');

  const one = await h.get('/admin/v1/principals/sales-bot', { secret });
  assert.equal(one.status, 200);
  assert.equal(((await one.json()) as { owner: string }).owner, 'alice@example.com');
  const list = (await (await h.get('/admin/v1/principals', { secret })).json()) as { principals: Array<{ id: string }> };
  assert.deepEqual(list.principals.map((p) => p.id), ['sales-bot']);

  const suspended = await h.post('/admin/v1/principals/sales-bot/status', { status: 'suspended', reason: 'incident 42' }, { secret });
  assert.equal(suspended.status, 200);
  assert.equal(((await suspended.json()) as { status: string }).status, 'suspended');
  assert.equal((await h.store.principals.get('sales-bot'))?.status, 'suspended');

  const ops = (await h.events()).filter((e) => e.type === 'admin').map((e) => (e.data as { operation?: string }).operation);
  assert.deepEqual(ops, ['principals.create', 'principals.read', 'principals.list', 'principals.status.suspended']);
  const create = (await h.events()).find((e) => (e.data as { operation?: string }).operation === 'principals.create');
  assert.equal(create?.actor, 'registrar');
});

test('registry API: invalid registrations list every problem; taken ids and credentials are 409; nothing half-written', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const secret = h.secrets.registrar;
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const privateJwk = await exportJWK(privateKey);
  const bad = await h.post('/admin/v1/principals', agent('Bad Id', { mode: undefined, credentials: [{ type: 'jwks', jwks: { keys: [privateJwk] } }] }), { secret });
  const problem = await expectProblem(bad, 400, 'ERR_INVALID_REQUEST');
  const problems = problem.problems as string[];
  assert.ok(problems.some((p) => p.startsWith('id:')), problems.join('\n'));
  assert.ok(problems.some((p) => p.includes('private part')), problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('mode:')), problems.join('\n'));

  const noCred = await h.post('/admin/v1/principals', agent('no-cred', { credentials: [] }), { secret });
  await expectProblem(noCred, 400, 'ERR_INVALID_REQUEST', /at least one credential/);
  const httpUri = await h.post('/admin/v1/principals', agent('http-uri', { credentials: [{ type: 'jwks_uri', uri: 'http://keys.example/jwks' }] }), { secret });
  await expectProblem(httpUri, 400, 'ERR_INVALID_REQUEST', /https/);

  assert.equal((await h.post('/admin/v1/principals', agent('a1'), { secret })).status, 201);
  await expectProblem(await h.post('/admin/v1/principals', agent('a1', { credentials: [{ type: 'spiffe', spiffeId: 'spiffe://example.org/other' }] }), { secret }), 409, 'ERR_CONFLICT');
  await expectProblem(await h.post('/admin/v1/principals', agent('a2', { credentials: [{ type: 'spiffe', spiffeId: 'spiffe://example.org/agents/a1' }] }), { secret }), 409, 'ERR_CONFLICT');
  assert.equal(await h.store.principals.get('a2'), undefined);
  const refusals = (await h.events()).filter((e) => e.type === 'admin' && e.outcome === 'failure');
  assert.equal(refusals.length, 5, 'every refused registration is audited');
});

test('registry API: scopes are enforced; unknown ids are 404; bad status is 400', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  await expectProblem(await h.get('/admin/v1/principals'), 403, 'ERR_FORBIDDEN');
  await expectProblem(await h.post('/admin/v1/principals', agent('x'), { secret: h.secrets.admin }), 403, 'ERR_FORBIDDEN');
  await expectProblem(await h.get('/admin/v1/principals', { secret: null }), 401, 'ERR_UNAUTHENTICATED');
  await expectProblem(await h.get('/admin/v1/principals/nobody', { secret: h.secrets.registrar }), 404, 'ERR_NOT_FOUND');
  await expectProblem(await h.post('/admin/v1/principals/nobody/status', { status: 'active' }, { secret: h.secrets.registrar }), 404, 'ERR_NOT_FOUND');
  await expectProblem(await h.post('/admin/v1/principals/nobody/status', { status: 'gone' }, { secret: h.secrets.registrar }), 400, 'ERR_INVALID_REQUEST');
});

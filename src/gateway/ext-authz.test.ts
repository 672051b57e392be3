import { strict as assert } from 'node:assert';
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fastify, { type FastifyInstance } from 'fastify';
import { UnauthenticatedError } from '../core/errors.ts';
import { extAuthzCheck, registerExtAuthz, type ExtAuthzDeps } from './ext-authz.ts';
import { HttpRouteRuleV1, type CredentialInput, type GatewayDecisionInput } from './http-routes.ts';

const rules = [
  HttpRouteRuleV1.parse({ method: 'GET', path: '/tickets/:id', action: 'read', resource: { type: 'Record', id: 'ticket-{id}' } }),
  HttpRouteRuleV1.parse({ method: 'POST', path: '/tickets/:id/refund', action: 'trigger', resource: { type: 'Tool', id: 'payments.refund' } }),
];

function makeDeps() {
  const credentials: CredentialInput[] = [];
  const decisions: GatewayDecisionInput[] = [];
  const deps: ExtAuthzDeps = {
    rules,
    resource: 'https://api.acme.example',
    authenticator: {
      async authenticate(input) {
        credentials.push(input);
        if (!input.authorization) throw new UnauthenticatedError('no mandate', { credentialMissing: true, scheme: 'DPoP' });
        if (input.authorization !== 'DPoP good' || input.dpop !== 'proof') throw new UnauthenticatedError('the proof does not match');
        return { user: { type: 'User', id: 'bob' }, actors: [{ type: 'Agent', id: 'triage-bot' }], taskId: 'task-9' };
      },
    },
    decider: {
      async decide(input) {
        decisions.push(input);
        if (input.resource.id === 'ticket-boom') throw new Error('store down');
        if (input.resource.id === 'payments.refund') return { decision: 'approval_required', decisionId: 'd2', approvalId: 'ap-7' };
        if (input.resource.id === 'ticket-secret') return { decision: 'deny', decisionId: 'd3', reasonCode: 'sensitivity_exceeded', reason: 'above the workflow ceiling' };
        return { decision: 'allow', decisionId: 'd1' };
      },
    },
  };
  return { deps, credentials, decisions };
}

const good = { host: 'api.acme.example', authorization: 'DPoP good', dpop: 'proof' };

describe('extAuthzCheck', () => {
  it('allows with headers to add upstream and asks Envoy to strip the credential', async () => {
    const { deps, credentials, decisions } = makeDeps();
    const r = await extAuthzCheck({ method: 'GET', path: '/tickets/42', headers: good }, deps);
    assert.deepEqual(r, {
      status: 200,
      headers: { 'x-mandate-user': 'bob', 'x-mandate-agent': 'triage-bot', 'x-mandate-task': 'task-9', 'x-mandate-decision-id': 'd1', 'x-envoy-auth-headers-to-remove': 'authorization, dpop' },
    });
    assert.equal(credentials[0]!.url, 'https://api.acme.example/tickets/42', 'the DPoP htu is the original URL');
    assert.equal(credentials[0]!.method, 'GET');
    assert.deepEqual(decisions[0]!.resource, { type: 'Record', id: 'ticket-42' });
  });
  it('401 with the challenge, and no decision, without a mandate', async () => {
    const { deps, decisions } = makeDeps();
    const r = await extAuthzCheck({ method: 'GET', path: '/tickets/42', headers: { host: 'api.acme.example' } }, deps);
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], 'DPoP realm="mandate"');
    assert.equal(r.body?.error.code, 'ERR_UNAUTHENTICATED');
    assert.equal(decisions.length, 0);
  });
  it('403 with the reason code when denied, with the approval id when approval is needed', async () => {
    const { deps } = makeDeps();
    const d = await extAuthzCheck({ method: 'GET', path: '/tickets/secret', headers: good }, deps);
    assert.equal(d.status, 403);
    assert.equal(d.body?.error.reason_code, 'sensitivity_exceeded');
    assert.equal(d.body?.error.decision_id, 'd3');
    const a = await extAuthzCheck({ method: 'POST', path: '/tickets/1/refund', headers: good }, deps);
    assert.equal(a.status, 403);
    assert.equal(a.body?.error.approval_id, 'ap-7');
  });
  it('denies when the decider fails (fail closed)', async () => {
    const { deps } = makeDeps();
    const r = await extAuthzCheck({ method: 'GET', path: '/tickets/boom', headers: good }, deps);
    assert.equal(r.status, 503);
  });
  it('refuses unmapped methods, traversal and method overrides before authentication', async () => {
    const { deps, credentials } = makeDeps();
    for (const [method, path, headers] of [
      ['DELETE', '/tickets/42', good],
      ['HEAD', '/tickets/42', good],
      ['GET', '/tickets/42/../../admin', good],
      ['GET', '/tickets/%2e%2e', good],
      ['GET', '/tickets/a%2fb', good],
      ['GET', '//tickets/42', good],
      ['GET', '/tickets/42?x=1', good],
      ['POST', '/tickets/42', { ...good, 'x-http-method-override': 'GET' }],
      ['GET', '/other', good],
    ] as const) {
      const r = await extAuthzCheck({ method, path, headers }, deps);
      assert.ok(r.status === 400 || r.status === 403, `${method} ${path} → ${r.status}`);
    }
    assert.equal(credentials.length, 0);
  });
});

describe('registerExtAuthz (Envoy check requests on loopback)', () => {
  let app: FastifyInstance;
  let port: number;
  const { deps, decisions } = makeDeps();
  before(async () => {
    app = fastify();
    registerExtAuthz(app, deps);
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as AddressInfo).port;
  });
  after(() => app.close());

  // Envoy's check request: original method, path_prefix + original path, original Host, allowed headers, no body.
  const check = (method: string, path: string, headers: OutgoingHttpHeaders) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method, path: `/ext_authz${path}`, headers: { 'content-length': '0', ...headers } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });

  it('answers 200 with x-mandate-* headers for an allowed GET', async () => {
    const r = await check('GET', '/tickets/42', good);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-mandate-user'], 'bob');
    assert.equal(r.headers['x-mandate-task'], 'task-9');
    assert.equal(r.headers['x-mandate-decision-id'], 'd1');
  });
  it('accepts a POST check request with a JSON content type and no body', async () => {
    const r = await check('POST', '/tickets/1/refund', { ...good, 'content-type': 'application/json' });
    assert.equal(r.status, 403);
    assert.equal((JSON.parse(r.body) as { error: { reason_code: string } }).error.reason_code, 'approval_required');
  });
  it('answers 401 with WWW-Authenticate', async () => {
    const r = await check('GET', '/tickets/42', { host: 'api.acme.example' });
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], 'DPoP realm="mandate"');
  });
  it('refuses a raw traversal path as sent on the wire', async () => {
    const before = decisions.length;
    const r = await check('GET', '/tickets/../admin', good);
    assert.ok(r.status === 400 || r.status === 403);
    assert.equal(decisions.length, before);
  });
});

import { strict as assert } from 'node:assert';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fastify, { type FastifyInstance } from 'fastify';
import { UnauthenticatedError } from '../core/errors.ts';
import {
  HttpToolsConfigV1,
  matchRoute,
  normalizePath,
  registerHttpToolProxy,
  type AuthenticatedCaller,
  type CallerAuthenticator,
  type GatewayDecider,
  type GatewayDecisionInput,
} from './http-routes.ts';

const rules = HttpToolsConfigV1.parse({
  tickets: {
    upstream: 'http://127.0.0.1:1/api',
    resource: 'https://mandate.example/http/tickets',
    rules: [
      { method: 'GET', path: '/tickets/:id', action: 'read', resource: { type: 'Record', id: 'ticket-{id}' } },
      { method: 'PUT', path: '/tickets/:id', action: 'write', resource: { type: 'Record', id: 'ticket-{id}' } },
      { method: 'GET', path: '/tickets', action: 'read', resource: { type: 'Dataset', id: 'tickets' }, allowQuery: true },
    ],
  },
}).tickets!.rules;

describe('normalizePath', () => {
  const refused: Array<[string, string]> = [
    ['/tickets/../admin', 'dot_segment'],
    ['/tickets/%2e%2e/admin', 'dot_segment'],
    ['/tickets/.', 'dot_segment'],
    ['/tickets/a%2fb', 'encoded_separator'],
    ['/tickets/a%2Fb', 'encoded_separator'],
    ['/tickets/a%5cb', 'encoded_separator'],
    ['/tickets/a%00', 'encoded_separator'],
    ['//tickets/1', 'empty_segment'],
    ['/tickets//1', 'empty_segment'],
    ['/tickets/a\\b', 'forbidden_character'],
    ['/tickets/1;x=..', 'forbidden_character'],
    ['/tickets/%zz', 'bad_encoding'],
    ['tickets/1', 'not_absolute'],
  ];
  for (const [path, why] of refused) {
    it(`refuses ${path} (${why})`, () => assert.deepEqual(normalizePath(path), { refused: why }));
  }
  it('decodes segments and re-encodes canonically', () => {
    assert.deepEqual(normalizePath('/tick%65ts/a%20b'), { segments: ['tickets', 'a b'], canonical: '/tickets/a%20b' });
  });
});

describe('matchRoute', () => {
  it('maps method and path to action and resource', () => {
    const m = matchRoute(rules, 'GET', '/tickets/42');
    assert.ok('rule' in m);
    assert.equal(m.action, 'read');
    assert.deepEqual(m.resource, { type: 'Record', id: 'ticket-42' });
  });
  it('matches the whole path, never a prefix', () => {
    assert.deepEqual(matchRoute(rules, 'GET', '/tickets/42/comments'), { reason: 'no_route' });
    assert.deepEqual(matchRoute(rules, 'GET', '/ticketsX'), { reason: 'no_route' });
    assert.deepEqual(matchRoute(rules, 'GET', '/Tickets/42'), { reason: 'no_route' });
    assert.deepEqual(matchRoute(rules, 'GET', '/tickets/42/'), { reason: 'no_route' });
  });
  it('matches the method exactly (HEAD is not GET, get is not GET)', () => {
    assert.deepEqual(matchRoute(rules, 'HEAD', '/tickets/42'), { reason: 'method_not_allowed', allowed: ['GET', 'PUT'] });
    assert.deepEqual(matchRoute(rules, 'get', '/tickets/42'), { reason: 'method_not_allowed', allowed: ['GET', 'PUT'] });
    assert.deepEqual(matchRoute(rules, 'DELETE', '/tickets/42'), { reason: 'method_not_allowed', allowed: ['GET', 'PUT'] });
  });
  it('refuses a query string unless the rule allows it', () => {
    assert.deepEqual(matchRoute(rules, 'GET', '/tickets/42?id=7'), { reason: 'query_not_allowed' });
    assert.ok('rule' in matchRoute(rules, 'GET', '/tickets?q=x'));
  });
  it('refuses traversal before matching', () => {
    assert.deepEqual(matchRoute(rules, 'GET', '/tickets/%2e%2e'), { reason: 'bad_path', refusal: 'dot_segment' });
  });
  it('rejects a template naming no parameter', () => {
    const r = HttpToolsConfigV1.safeParse({ t: { upstream: 'http://x/', resource: 'https://m/', rules: [{ method: 'GET', path: '/a/:id', action: 'read', resource: { type: 'Record', id: '{nope}' } }] } });
    assert.equal(r.success, false);
  });
});

describe('registerHttpToolProxy (loopback upstream)', () => {
  let upstream: Server;
  let app: FastifyInstance;
  let base: string;
  const seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders; body: string }> = [];
  const decisions: GatewayDecisionInput[] = [];
  const alice: AuthenticatedCaller = { user: { type: 'User', id: 'alice' }, actors: [{ type: 'Agent', id: 'triage-bot' }], taskId: 'task-1' };
  const authenticator: CallerAuthenticator = {
    async authenticate(input) {
      if (input.authorization === undefined) throw new UnauthenticatedError('no mandate', { credentialMissing: true });
      if (input.authorization !== 'Bearer good') throw new UnauthenticatedError('the mandate is not valid');
      return alice;
    },
  };
  const decider: GatewayDecider = {
    async decide(input) {
      decisions.push(input);
      if (input.resource.id === 'ticket-secret') return { decision: 'deny', decisionId: 'd-deny', reasonCode: 'policy_denied', reason: 'forbidden' };
      if (input.resource.id === 'ticket-big') return { decision: 'approval_required', decisionId: 'd-appr', approvalId: 'ap-1' };
      return { decision: 'allow', decisionId: 'd-allow' };
    },
  };

  before(async () => {
    upstream = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        if (req.url?.endsWith('/tickets/huge')) {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('x'.repeat(5000));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', connection: 'close, x-secret-hop', 'x-secret-hop': '1', 'set-cookie': 'a=b' });
        res.end(JSON.stringify({ ok: true, url: req.url }));
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as AddressInfo).port;
    const tools = HttpToolsConfigV1.parse({
      tickets: {
        upstream: `http://127.0.0.1:${port}/api/`,
        resource: 'https://mandate.example/http/tickets',
        maxResponseBytes: 1000,
        forwardHeaders: ['x-request-id'],
        rules: [
          { method: 'GET', path: '/tickets/:id', action: 'read', resource: { type: 'Record', id: 'ticket-{id}' } },
          { method: 'PUT', path: '/tickets/:id', action: 'write', resource: { type: 'Record', id: 'ticket-{id}' } },
        ],
      },
    });
    app = fastify();
    registerHttpToolProxy(app, { tools, authenticator, decider, publicOrigin: 'https://mandate.example', credentials: async () => ({ authorization: 'Bearer gateway-own' }) });
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await app.close();
    await new Promise((r) => upstream.close(r));
  });

  const reset = () => {
    seen.length = 0;
    decisions.length = 0;
  };

  it('forwards an allowed request with the gateway credential, never the caller token', async () => {
    reset();
    const res = await fetch(`${base}/http/tickets/tickets/42`, {
      headers: { authorization: 'Bearer good', dpop: 'proof', cookie: 's=1', 'x-mandate-user': 'mallory', 'x-request-id': 'r1', 'x-other': 'no' },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true, url: '/api/tickets/42' });
    assert.equal(seen.length, 1);
    const h = seen[0]!.headers;
    assert.equal(h.authorization, 'Bearer gateway-own');
    assert.equal(h.dpop, undefined);
    assert.equal(h.cookie, undefined);
    assert.equal(h['x-mandate-user'], undefined);
    assert.equal(h['x-other'], undefined);
    assert.equal(h['x-request-id'], 'r1');
    assert.equal(res.headers.get('x-secret-hop'), null, 'headers named by Connection are hop-by-hop');
    assert.equal(res.headers.get('set-cookie'), null);
    assert.equal(res.headers.get('x-mandate-decision-id'), 'd-allow');
    assert.deepEqual(decisions[0]!.resource, { type: 'Record', id: 'ticket-42' });
  });

  it('answers 401 with a challenge and never decides without a valid mandate', async () => {
    reset();
    const res = await fetch(`${base}/http/tickets/tickets/42`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="mandate"');
    const bad = await fetch(`${base}/http/tickets/tickets/42`, { headers: { authorization: 'Bearer bad' } });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.equal(decisions.length, 0);
    assert.equal(seen.length, 0);
  });

  it('denies with a reason code and never reaches upstream', async () => {
    reset();
    const res = await fetch(`${base}/http/tickets/tickets/secret`, { headers: { authorization: 'Bearer good' } });
    assert.equal(res.status, 403);
    const body = (await res.json()) as { error: { code: string; reason_code: string } };
    assert.equal(body.error.code, 'ERR_POLICY_DENIED');
    assert.equal(body.error.reason_code, 'policy_denied');
    const appr = await fetch(`${base}/http/tickets/tickets/big`, { headers: { authorization: 'Bearer good' } });
    assert.equal(appr.status, 403);
    assert.equal(((await appr.json()) as { error: { approval_id: string } }).error.approval_id, 'ap-1');
    assert.equal(seen.length, 0);
  });

  it('refuses traversal, encoded slashes, duplicate slashes and method confusion before upstream', async () => {
    reset();
    const attempts: Array<[string, RequestInit]> = [
      ['/http/tickets/tickets/..%2f..%2fadmin', {}],
      ['/http/tickets/tickets/%2e%2e', {}],
      ['/http/tickets/tickets/a%2Fb', {}],
      ['/http/tickets//tickets/1', {}],
      ['/http/tickets/tickets/1/', {}],
      ['/http/tickets/tickets/1?as=admin', {}],
      ['/http/tickets/tickets/1', { method: 'DELETE' }],
      ['/http/tickets/tickets/1', { method: 'POST', headers: { 'x-http-method-override': 'PUT' } }],
      ['/http/nope/tickets/1', {}],
    ];
    for (const [path, init] of attempts) {
      const res = await fetch(`${base}${path}`, { ...init, headers: { authorization: 'Bearer good', ...(init.headers as Record<string, string> | undefined) } });
      assert.ok(res.status >= 400 && res.status < 500, `${path} → ${res.status}`);
    }
    assert.equal(seen.length, 0);
    assert.equal(decisions.length, 0);
  });

  it('bounds the response size', async () => {
    reset();
    const res = await fetch(`${base}/http/tickets/tickets/huge`, { headers: { authorization: 'Bearer good' } });
    assert.equal(res.status, 502);
    assert.equal(((await res.json()) as { error: { reason_code: string } }).error.reason_code, 'upstream_response_too_large');
  });

  it('forwards a body on PUT to the decided path', async () => {
    reset();
    const res = await fetch(`${base}/http/tickets/tickets/7`, { method: 'PUT', headers: { authorization: 'Bearer good', 'content-type': 'application/json' }, body: '{"x":1}' });
    assert.equal(res.status, 200);
    assert.equal(seen[0]!.method, 'PUT');
    assert.equal(seen[0]!.body, '{"x":1}');
    assert.equal(decisions[0]!.action, 'write');
  });
});

/**
 * The SSF transmitter end to end: Mandate's routes on a real fastify instance (with the server's error handler), a
 * test receiver (a real node:http server on 127.0.0.1) that records pushes and answers as scripted. SETs are verified
 * with jose against Mandate's JWKS as served over HTTP. No timing assertions: backoff is configured to milliseconds.
 */
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fastify, type FastifyInstance } from 'fastify';
import { createRemoteJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, type CryptoKey, type JWK } from 'jose';
import { parseNewAuditEvent, type NewAuditEvent } from '../../src/audit/audit-event.ts';
import { InvalidTokenError } from '../../src/core/errors.ts';
import { systemClock } from '../../src/core/ports.ts';
import type { OutboundPolicy } from '../../src/identity/types.ts';
import { createErrorHandler } from '../../src/server/error-handler.ts';
import { EVENT_TYPES } from '../../src/signals/events.ts';
import { createPushSet } from '../../src/signals/push-set.ts';
import { SignalsConfigSchema } from '../../src/signals/signals-config.ts';
import { registerSsfRoutes } from '../../src/signals/ssf-routes.ts';
import { createMemoryStreamStore } from '../../src/signals/stream-store.ts';
import { createTransmitter, type Transmitter } from '../../src/signals/transmitter.ts';

const LOOPBACK: OutboundPolicy = { timeoutMs: 2000, maxBytes: 1 << 20, allowPrivateNetworks: true, allowHosts: [], allowHttp: true };
const RECEIVER_AUTH = 'Bearer receiver-secret-for-tests';

let mandate: FastifyInstance;
let mandateUrl: string;
let transmitter: Transmitter;
let receiver: Server;
let receiverUrl: string;
let signingKey: { kid: string; key: CryptoKey; jwk: JWK };
let audits: NewAuditEvent[] = [];
/** What the test receiver answers, in order; the last one repeats. */
let script: { status: number; body?: unknown }[] = [];
let received: { headers: IncomingHttpHeaders; body: string; path: string }[] = [];

before(async () => {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  signingKey = { kid: 'mandate-k1', key: privateKey, jwk: { ...(await exportJWK(publicKey)), kid: 'mandate-k1', alg: 'EdDSA', use: 'sig' } };

  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), path: req.url ?? '' });
      const answer = script.length > 1 ? (script.shift() as { status: number; body?: unknown }) : (script[0] ?? { status: 202 });
      res.writeHead(answer.status, answer.body === undefined ? {} : { 'content-type': 'application/json' });
      res.end(answer.body === undefined ? undefined : JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`;

  const config = SignalsConfigSchema.parse({
    transmitter: { enabled: true, minVerificationIntervalSeconds: 60, delivery: { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 5 } },
  });
  mandate = fastify();
  mandate.setErrorHandler(createErrorHandler());
  transmitter = createTransmitter({
    config: config.transmitter,
    store: createMemoryStreamStore(),
    signer: async () => ({ kid: signingKey.kid, alg: 'EdDSA', key: signingKey.key }),
    issuer: () => mandateUrl,
    push: createPushSet(LOOPBACK),
    outbound: LOOPBACK,
    audit: async (event) => {
      audits.push(parseNewAuditEvent(event));
    },
    clock: systemClock,
  });
  registerSsfRoutes(mandate, {
    transmitter,
    authenticate: async ({ authorization }) => {
      if (authorization === 'Bearer svc-1') return { id: 'svc-1', scopes: ['signals:manage'] };
      if (authorization === 'Bearer svc-2') return { id: 'svc-2', scopes: ['signals:manage'] };
      if (authorization === 'Bearer reader') return { id: 'reader', scopes: ['principals:read'] };
      throw new InvalidTokenError('the access token is not valid');
    },
  });
  mandate.get('/oauth/jwks', async (_request, reply) => reply.type('application/jwk-set+json').send({ keys: [signingKey.jwk] }));
  mandateUrl = await mandate.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  transmitter.close();
  await mandate.close();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
});

beforeEach(() => {
  audits = [];
  received = [];
  script = [{ status: 202 }];
});

async function api(method: string, path: string, body?: unknown, caller = 'svc-1') {
  const response = await fetch(`${mandateUrl}${path}`, {
    method,
    headers: { ...(caller === '' ? {} : { authorization: `Bearer ${caller}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown> & unknown[] };
}

async function createStream(overrides: Record<string, unknown> = {}, caller = 'svc-1'): Promise<string> {
  const r = await api(
    'POST',
    '/ssf/stream',
    { delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: receiverUrl, authorization_header: RECEIVER_AUTH }, events_requested: [EVENT_TYPES.sessionRevoked, EVENT_TYPES.credentialChange], ...overrides },
    caller,
  );
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.stream_id as string;
}

async function verifySet(set: string) {
  const jwks = createRemoteJWKSet(new URL(`${mandateUrl}/oauth/jwks`));
  return jwtVerify(set, jwks, { issuer: mandateUrl, audience: 'svc-1', typ: 'secevent+jwt', algorithms: ['EdDSA'] });
}

test('metadata: /.well-known/ssf-configuration names the issuer, Mandate JWKS, push delivery and the endpoints', async () => {
  const r = await fetch(`${mandateUrl}/.well-known/ssf-configuration`);
  assert.equal(r.status, 200);
  const m = (await r.json()) as Record<string, unknown>;
  assert.equal(m.issuer, mandateUrl);
  assert.equal(m.jwks_uri, `${mandateUrl}/oauth/jwks`);
  assert.deepEqual(m.delivery_methods_supported, ['urn:ietf:rfc:8935']);
  assert.equal(m.configuration_endpoint, `${mandateUrl}/ssf/stream`);
  assert.equal(m.status_endpoint, `${mandateUrl}/ssf/status`);
  assert.equal(m.verification_endpoint, `${mandateUrl}/ssf/verify`);
});

test('stream management needs an authenticated caller with signals:manage', async () => {
  const none = await api('GET', '/ssf/stream', undefined, '');
  assert.equal(none.status, 401);
  assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="mandate"');
  assert.equal((await api('GET', '/ssf/stream', undefined, 'bad')).status, 401);
  const forbidden = await api('GET', '/ssf/stream', undefined, 'reader');
  assert.equal(forbidden.status, 403);
  assert.equal(forbidden.body.code, 'ERR_FORBIDDEN');
});

test('create, read, update, status, delete; streams are private to their receiver', async () => {
  const id = await createStream({ events_requested: [EVENT_TYPES.sessionRevoked, 'urn:example:unknown'], description: 'SIEM' });
  const one = await api('GET', `/ssf/stream?stream_id=${id}`);
  assert.equal(one.status, 200);
  assert.deepEqual(one.body.events_delivered, [EVENT_TYPES.sessionRevoked]);
  assert.equal(one.body.aud, 'svc-1');
  assert.equal(one.body.iss, mandateUrl);
  assert.deepEqual(one.body.delivery, { method: 'urn:ietf:rfc:8935', endpoint_url: receiverUrl });
  assert.ok(!JSON.stringify(one.body).includes('receiver-secret'), 'authorization_header is never echoed');
  assert.ok(Array.isArray((await api('GET', '/ssf/stream')).body));
  // Another receiver does not see it.
  assert.equal((await api('GET', `/ssf/stream?stream_id=${id}`, undefined, 'svc-2')).status, 404);
  assert.equal((await api('DELETE', `/ssf/stream?stream_id=${id}`, undefined, 'svc-2')).status, 404);

  const patched = await api('PATCH', '/ssf/stream', { stream_id: id, events_requested: [EVENT_TYPES.credentialChange] });
  assert.equal(patched.status, 200);
  assert.deepEqual(patched.body.events_delivered, [EVENT_TYPES.credentialChange]);
  assert.equal(patched.body.description, 'SIEM');
  assert.equal((await api('PATCH', '/ssf/stream', { stream_id: id, aud: 'someone-else' })).status, 400);
  assert.equal((await api('PATCH', '/ssf/stream', { stream_id: id, delivery: { method: 'urn:ietf:rfc:8936' } })).status, 400);

  assert.deepEqual((await api('POST', '/ssf/status', { stream_id: id, status: 'paused', reason: 'maintenance' })).body, { stream_id: id, status: 'paused', reason: 'maintenance' });
  assert.equal((await api('GET', `/ssf/status?stream_id=${id}`)).body.status, 'paused');
  assert.equal((await api('DELETE', `/ssf/stream?stream_id=${id}`)).status, 204);
  assert.equal((await api('GET', `/ssf/stream?stream_id=${id}`)).status, 404);
  assert.ok(audits.some((e) => e.type === 'admin' && e.data?.action === 'signals.stream.create' && e.actor === 'svc-1'));
});

test('emit: a revoked task reaches the receiver as a session-revoked SET that verifies against Mandate JWKS', async () => {
  const id = await createStream();
  const { queued } = await transmitter.emit({
    type: 'task.revoked',
    taskId: 'task-9',
    user: { iss: 'https://idp.example.com', sub: 'alice' },
    agent: { id: 'agent-7', spiffeId: 'spiffe://example.org/agent/7' },
    reason: 'task ended by revocation',
    initiatingEntity: 'policy',
    txn: 'rev-1',
  });
  assert.equal(queued, 1);
  await transmitter.drain();
  assert.equal(received.length, 1);
  const push = received[0] as (typeof received)[number];
  assert.equal(push.headers['content-type'], 'application/secevent+jwt');
  assert.equal(push.headers.authorization, RECEIVER_AUTH);
  assert.equal(decodeProtectedHeader(push.body).kid, 'mandate-k1');
  const { payload } = await verifySet(push.body);
  assert.equal(payload.exp, undefined);
  assert.equal(payload.sub, undefined);
  assert.equal(payload.txn, 'rev-1');
  assert.equal(typeof payload.jti, 'string');
  assert.deepEqual(payload.sub_id, {
    format: 'complex',
    session: { format: 'opaque', id: 'task-9' },
    user: { format: 'iss_sub', iss: 'https://idp.example.com', sub: 'alice' },
    application: { format: 'uri', uri: 'spiffe://example.org/agent/7' },
  });
  const event = (payload.events as Record<string, Record<string, unknown>>)[EVENT_TYPES.sessionRevoked];
  assert.equal(event?.initiating_entity, 'policy');
  assert.deepEqual(event?.reason_admin, { en: 'task ended by revocation' });
  const emitted = audits.find((e) => e.type === 'signal.emit');
  assert.equal(emitted?.outcome, 'success');
  assert.equal(emitted?.data?.streamId, id);
  await api('DELETE', `/ssf/stream?stream_id=${id}`);
});

test('emit: an agent quarantined becomes a credential-change (revoke) about its SPIFFE ID; paused streams get nothing', async () => {
  const id = await createStream();
  const paused = await createStream({}, 'svc-1');
  await api('POST', '/ssf/status', { stream_id: paused, status: 'paused' });
  await transmitter.emit({ type: 'agent.disabled', agent: { id: 'agent-7', spiffeId: 'spiffe://example.org/agent/7' }, status: 'quarantined' });
  await transmitter.drain();
  assert.equal(received.length, 1);
  const { payload } = await verifySet((received[0] as { body: string }).body);
  assert.deepEqual(payload.sub_id, { format: 'uri', uri: 'spiffe://example.org/agent/7' });
  const event = (payload.events as Record<string, Record<string, unknown>>)[EVENT_TYPES.credentialChange];
  assert.equal(event?.change_type, 'revoke');
  assert.equal(event?.credential_type, 'workload');
  await api('DELETE', `/ssf/stream?stream_id=${id}`);
  await api('DELETE', `/ssf/stream?stream_id=${paused}`);
});

test('delivery retries on 5xx and succeeds; gives up after maxAttempts; a 400 is not retried', async () => {
  const id = await createStream();
  const before1 = transmitter.stats();
  script = [{ status: 503 }, { status: 500 }, { status: 202 }];
  await transmitter.emit({ type: 'task.revoked', taskId: 'task-r' });
  await transmitter.drain();
  assert.equal(received.length, 3);
  const after1 = transmitter.stats();
  assert.equal(after1.retried - before1.retried, 2);
  assert.equal(after1.delivered - before1.delivered, 1);

  received = [];
  audits = [];
  script = [{ status: 502 }];
  await transmitter.emit({ type: 'task.revoked', taskId: 'task-x' });
  await transmitter.drain();
  assert.equal(received.length, 3, 'maxAttempts = 3');
  const gaveUp = audits.find((e) => e.type === 'signal.emit');
  assert.equal(gaveUp?.outcome, 'failure');
  assert.equal(gaveUp?.data?.reason, 'retries exhausted');

  received = [];
  audits = [];
  script = [{ status: 400, body: { err: 'invalid_audience', description: 'not us' } }];
  await transmitter.emit({ type: 'task.revoked', taskId: 'task-y' });
  await transmitter.drain();
  assert.equal(received.length, 1, 'a refusal is final');
  assert.equal(audits.find((e) => e.type === 'signal.emit')?.data?.err, 'invalid_audience');
  await api('DELETE', `/ssf/stream?stream_id=${id}`);
});

test('verification: a requested verification SET carries the stream id and state; a second request within the interval is 429', async () => {
  const id = await createStream();
  assert.equal((await api('POST', '/ssf/verify', { stream_id: id, state: 'st-1' })).status, 204);
  await transmitter.drain();
  const { payload } = await verifySet((received[0] as { body: string }).body);
  assert.deepEqual(payload.sub_id, { format: 'opaque', id });
  assert.deepEqual(payload.events, { [EVENT_TYPES.verification]: { state: 'st-1' } });
  const again = await api('POST', '/ssf/verify', { stream_id: id });
  assert.equal(again.status, 429);
  assert.ok(Number(again.headers.get('retry-after')) > 0);
  await api('DELETE', `/ssf/stream?stream_id=${id}`);
});

test('SSRF: private push endpoints are refused at creation and at delivery unless configured', async () => {
  const strict: OutboundPolicy = { ...LOOPBACK, allowPrivateNetworks: false };
  const store = createMemoryStreamStore();
  const local: NewAuditEvent[] = [];
  let pushed = 0;
  const guarded = createTransmitter({
    config: SignalsConfigSchema.parse({ transmitter: { enabled: true, delivery: { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 5 } } }).transmitter,
    store,
    signer: async () => ({ kid: signingKey.kid, alg: 'EdDSA', key: signingKey.key }),
    issuer: () => mandateUrl,
    // A host name that resolves to loopback: refused after resolution, never connected to.
    push: async (...args) => {
      pushed += 1;
      return createPushSet(strict, { resolve: async () => [{ address: '127.0.0.1', family: 4 }] })(...args);
    },
    outbound: strict,
    audit: async (e) => {
      local.push(e);
    },
    clock: systemClock,
  });
  await assert.rejects(
    guarded.createStream({ id: 'svc-1' }, { delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: receiverUrl }, events_requested: [EVENT_TYPES.sessionRevoked] }),
    (e: { status?: number; description?: string }) => e.status === 400 && /private or special-use/.test(e.description ?? ''),
  );
  await assert.rejects(
    guarded.createStream({ id: 'svc-1' }, { delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: 'http://[::ffff:169.254.169.254]/x' } }),
    (e: { status?: number }) => e.status === 400,
  );
  const port = (receiver.address() as AddressInfo).port;
  await guarded.createStream({ id: 'svc-1' }, { delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: `http://receiver.internal.test:${port}/events` }, events_requested: [EVENT_TYPES.sessionRevoked] });
  await guarded.emit({ type: 'task.revoked', taskId: 'task-s' });
  await guarded.drain();
  guarded.close();
  assert.equal(pushed, 1, 'refused by policy: not retried');
  assert.equal(received.length, 0, 'the receiver was never reached');
  const failure = local.find((e) => e.type === 'signal.emit');
  assert.equal(failure?.outcome, 'failure');
  assert.equal(failure?.data?.reason, 'private_address');
  assert.equal(guarded.stats().failed, 1);
});

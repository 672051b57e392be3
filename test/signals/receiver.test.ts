/**
 * The SET receiver end to end: a test transmitter (a real node:http server on 127.0.0.1 publishing its JWKS, signing
 * SETs with its own key) pushes to the receiver route mounted on a real fastify instance. Valid SETs reach
 * `onSignal` with the mapped subject; every forged, replayed, mis-addressed or malformed SET is refused with its
 * RFC 8935 error, audited, and never reaches `onSignal`.
 */
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fastify, type FastifyInstance } from 'fastify';
import { base64url, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { parseNewAuditEvent, type NewAuditEvent } from '../../src/audit/audit-event.ts';
import { hashCredential } from '../../src/config/credentials.ts';
import { fixedClock } from '../../src/core/ports.ts';
import { createFetchJson } from '../../src/identity/outbound.ts';
import type { RegisteredPrincipal } from '../../src/identity/types.ts';
import { EVENT_TYPES, type Signal } from '../../src/signals/events.ts';
import { createSetReceiver, type SetReplayCache } from '../../src/signals/receiver.ts';
import { SignalsConfigSchema } from '../../src/signals/signals-config.ts';
import { registerSsfRoutes } from '../../src/signals/ssf-routes.ts';

const T0 = Date.UTC(2030, 0, 1);
const NOW = Math.floor(T0 / 1000);
const ISSUER = 'https://idp.example.com/';
const AUDIENCE = 'https://mandate.example.com';
const PUSH_SECRET = `Bearer push-${base64url.encode(crypto.getRandomValues(new Uint8Array(24)))}`;

interface Key {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function makeKey(kid: string, alg = 'ES256'): Promise<Key> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

let transmitterKey: Key;
let otherKey: Key;
let jwksServer: Server;
let jwksStatus = 200;
let app: FastifyInstance;
let url: string;
const clock = fixedClock(T0);
let signals: Signal[] = [];
let audits: NewAuditEvent[] = [];
let failNextSignal = false;

/** An in-memory replay cache (the store's one is tested with the store). */
function memoryReplay(): SetReplayCache {
  const seen = new Map<string, number>();
  return {
    async use(namespace, id, expiresAtMs) {
      const key = `${namespace}\u0000${id}`;
      if (seen.has(key)) return false;
      seen.set(key, expiresAtMs);
      return true;
    },
  };
}

const agent: RegisteredPrincipal = {
  id: 'agent-7',
  kind: 'agent',
  name: 'Agent 7',
  owner: 'alice@example.com',
  mode: 'autonomous',
  workflows: [],
  audiences: [],
  apiScopes: [],
  credentials: [{ type: 'spiffe', spiffeId: 'spiffe://example.org/agent/7' }],
  status: 'active',
  dpop: 'required',
  createdAt: T0,
};

before(async () => {
  transmitterKey = await makeKey('t1');
  otherKey = await makeKey('t1'); // same kid, different key: a forgery
  jwksServer = createServer((req, res) => {
    if (req.url === '/jwks' && jwksStatus === 200) {
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: [transmitterKey.publicJwk] }));
      return;
    }
    res.writeHead(jwksStatus === 200 ? 404 : jwksStatus).end();
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  const jwksUri = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks`;

  const config = SignalsConfigSchema.parse({
    receiver: {
      enabled: true,
      maxSetBytes: 4096,
      maxSetAgeSeconds: 600,
      clockToleranceSeconds: 30,
      transmitters: [
        { id: 'idp', issuer: ISSUER, jwksUri, audience: AUDIENCE, userIssuer: ISSUER, emailIsSubject: true, streamId: 'stream-1' },
        { id: 'guarded', issuer: ISSUER, jwksUri, audience: AUDIENCE, authorizationHash: hashCredential(PUSH_SECRET) },
      ],
    },
  });
  const receiver = createSetReceiver({
    config: config.receiver,
    fetchJson: createFetchJson({ timeoutMs: 2000, maxBytes: 1 << 20, allowPrivateNetworks: true, allowHosts: [], allowHttp: true }),
    replay: memoryReplay(),
    principals: {
      byId: async (id) => (id === agent.id ? agent : undefined),
      bySpiffeId: async (id) => (id === 'spiffe://example.org/agent/7' ? agent : undefined),
    },
    onSignal: async (signal) => {
      if (failNextSignal) {
        failNextSignal = false;
        throw new Error('store down');
      }
      signals.push(signal);
    },
    audit: async (event) => {
      audits.push(parseNewAuditEvent(event));
    },
    clock,
  });
  app = fastify();
  registerSsfRoutes(app, { receiver, maxSetBytes: config.receiver.maxSetBytes });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await app.close();
  await new Promise<void>((resolve) => jwksServer.close(() => resolve()));
});

beforeEach(() => {
  signals = [];
  audits = [];
  jwksStatus = 200;
  clock.set(T0);
});

let counter = 0;
const SESSION_REVOKED = EVENT_TYPES.sessionRevoked;

/** Builds a SET; `claims` override the defaults (undefined removes a claim). */
async function makeSet(options: { claims?: Record<string, unknown>; header?: Record<string, unknown>; key?: Key } = {}): Promise<string> {
  const key = options.key ?? transmitterKey;
  counter += 1;
  const claims: Record<string, unknown> = {
    iss: ISSUER,
    aud: AUDIENCE,
    iat: NOW,
    jti: `set-${counter}-${base64url.encode(crypto.getRandomValues(new Uint8Array(8)))}`,
    txn: 'txn-1',
    sub_id: {
      format: 'complex',
      user: { format: 'iss_sub', iss: ISSUER, sub: 'alice' },
      session: { format: 'opaque', id: 'sess-42' },
    },
    events: { [SESSION_REVOKED]: { initiating_entity: 'policy', reason_admin: { en: 'Landspeed violation' }, event_timestamp: NOW - 5 } },
    ...options.claims,
  };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'secevent+jwt', ...options.header }).sign(key.privateKey);
}

async function push(body: string, options: { transmitter?: string; contentType?: string; authorization?: string } = {}) {
  const response = await fetch(`${url}/ssf/events/${options.transmitter ?? 'idp'}`, {
    method: 'POST',
    headers: { 'content-type': options.contentType ?? 'application/secevent+jwt', ...(options.authorization === undefined ? {} : { authorization: options.authorization }) },
    body,
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>) };
}

function lastAudit(): NewAuditEvent {
  const event = audits.at(-1);
  assert.ok(event, 'an audit event was written');
  return event;
}

test('a valid session-revoked SET is applied: 202 after onSignal, subject mapped, audited', async () => {
  const set = await makeSet();
  const r = await push(set);
  assert.equal(r.status, 202);
  assert.equal(r.body, undefined);
  assert.equal(signals.length, 1);
  const s = signals[0] as Signal;
  assert.deepEqual(s.subject, { principal: { kind: 'user', iss: ISSUER, sub: 'alice' }, session: 'sess-42' });
  assert.equal(s.eventType, SESSION_REVOKED);
  assert.equal(s.transmitter, 'idp');
  assert.equal(s.txn, 'txn-1');
  assert.equal(s.initiatingEntity, 'policy');
  assert.equal(s.reasonAdmin, 'Landspeed violation');
  assert.equal(s.occurredAtMs, (NOW - 5) * 1000);
  assert.deepEqual(s.details, { event: 'session-revoked' });
  const event = lastAudit();
  assert.equal(event.type, 'signal.receive');
  assert.equal(event.outcome, 'success');
  assert.equal(event.actor, 'transmitter:idp');
  assert.equal(event.data?.outcome, 'applied');
  assert.ok(!JSON.stringify(event).includes(set.split('.')[2] as string), 'the SET is never audited');
});

test('subjects map per RFC 9493: SPIFFE uri → agent, email → user, jwt_id → token; CAEP payloads typed', async () => {
  await push(
    await makeSet({
      claims: {
        sub_id: { format: 'uri', uri: 'spiffe://example.org/agent/7' },
        events: { [EVENT_TYPES.credentialChange]: { credential_type: 'x509', change_type: 'revoke' } },
      },
    }),
  );
  await push(
    await makeSet({
      claims: {
        sub_id: { format: 'email', email: 'bob@example.com' },
        events: { [EVENT_TYPES.assuranceLevelChange]: { namespace: 'NIST-AAL', current_level: 'nist-aal1', previous_level: 'nist-aal2', change_direction: 'decrease' } },
      },
    }),
  );
  await push(
    await makeSet({
      claims: {
        sub_id: { format: 'jwt_id', iss: 'https://mandate.example.com', jti: 'mandate-jti-1' },
        events: { [EVENT_TYPES.tokenClaimsChange]: { claims: { role: 'ro-admin' } } },
      },
    }),
  );
  // A legacy (pre-1.0) transmitter puts the subject inside the event.
  await push(await makeSet({ claims: { sub_id: undefined, events: { [SESSION_REVOKED]: { subject: { format: 'iss_sub', iss: ISSUER, sub: 'carol' } } } } }));
  // A subject Mandate cannot key is accepted with an empty mapping (SSF receivers tolerate unknown subjects).
  await push(await makeSet({ claims: { sub_id: { format: 'phone_number', phone_number: '+12065550100' } } }));
  assert.deepEqual(
    signals.map((s) => [s.subject, s.details]),
    [
      [{ principal: { kind: 'agent', id: 'agent-7' } }, { event: 'credential-change', credentialType: 'x509', changeType: 'revoke' }],
      [{ principal: { kind: 'user', iss: ISSUER, sub: 'bob@example.com' } }, { event: 'assurance-level-change', namespace: 'NIST-AAL', currentLevel: 'nist-aal1', previousLevel: 'nist-aal2', changeDirection: 'decrease' }],
      [{ token: { iss: 'https://mandate.example.com', jti: 'mandate-jti-1' } }, { event: 'token-claims-change', claimNames: ['role'] }],
      [{ principal: { kind: 'user', iss: ISSUER, sub: 'carol' } }, { event: 'session-revoked' }],
      [{}, { event: 'session-revoked' }],
    ],
  );
});

test('verification and unknown event types are accepted (202) without reaching onSignal', async () => {
  const v = await push(await makeSet({ claims: { sub_id: { format: 'opaque', id: 'stream-1' }, events: { [EVENT_TYPES.verification]: { state: 'abc' } } } }));
  assert.equal(v.status, 202);
  assert.equal(lastAudit().data?.outcome, 'verification');
  const u = await push(await makeSet({ claims: { events: { 'https://schemas.openid.net/secevent/risc/event-type/account-enabled': {} } } }));
  assert.equal(u.status, 202);
  assert.equal(lastAudit().data?.outcome, 'ignored');
  assert.equal(signals.length, 0);
  // A verification event for another stream is refused.
  const wrong = await push(await makeSet({ claims: { sub_id: { format: 'opaque', id: 'stream-2' }, events: { [EVENT_TYPES.verification]: {} } } }));
  assert.deepEqual([wrong.status, wrong.body?.err], [400, 'invalid_request']);
});

/** Each refusal: status, RFC 8935 err, audited as signal.refuse with that err, onSignal not run. */
const refusals: { name: string; make: () => Promise<string>; err: string; status?: number; reason: string; transmitter?: string; contentType?: string; authorization?: string }[] = [
  { name: 'forged signature (same kid, other key)', make: () => makeSet({ key: otherKey }), err: 'authentication_failed', reason: 'signature' },
  { name: 'unknown kid', make: () => makeSet({ header: { kid: 'nope' } }), err: 'invalid_key', reason: 'unknown_key' },
  { name: 'wrong issuer', make: () => makeSet({ claims: { iss: 'https://evil.example.com/' } }), err: 'invalid_issuer', reason: 'issuer' },
  { name: 'wrong audience', make: () => makeSet({ claims: { aud: 'https://other.example.com' } }), err: 'invalid_audience', reason: 'audience' },
  { name: 'wrong typ', make: () => makeSet({ header: { typ: 'JWT' } }), err: 'invalid_request', reason: 'typ' },
  { name: 'no typ', make: () => makeSet({ header: { typ: undefined } }), err: 'invalid_request', reason: 'typ' },
  {
    name: 'alg none',
    make: async () => {
      const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'secevent+jwt' }));
      const payload = base64url.encode(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, iat: NOW, jti: 'none-1', events: { [SESSION_REVOKED]: {} } }));
      return `${header}.${payload}.`;
    },
    err: 'invalid_key',
    reason: 'algorithm',
  },
  {
    name: 'HS256 (a MAC keyed with public material)',
    make: () => new SignJWT({ iss: ISSUER, aud: AUDIENCE, iat: NOW, jti: 'hs-1', events: { [SESSION_REVOKED]: {} } }).setProtectedHeader({ alg: 'HS256', typ: 'secevent+jwt' }).sign(new TextEncoder().encode('x'.repeat(32))),
    err: 'invalid_key',
    reason: 'algorithm',
  },
  { name: 'stale iat (older than maxSetAgeSeconds + tolerance)', make: () => makeSet({ claims: { iat: NOW - 600 - 31 } }), err: 'invalid_request', reason: 'iat' },
  { name: 'iat in the future', make: () => makeSet({ claims: { iat: NOW + 31 } }), err: 'invalid_request', reason: 'iat' },
  { name: 'no iat', make: () => makeSet({ claims: { iat: undefined } }), err: 'invalid_request', reason: 'iat' },
  { name: 'expired exp', make: () => makeSet({ claims: { exp: NOW - 31 } }), err: 'invalid_request', reason: 'expired' },
  { name: 'no jti', make: () => makeSet({ claims: { jti: undefined } }), err: 'invalid_request', reason: 'jti' },
  { name: 'sub claim present (RFC 8417 §2.2)', make: () => makeSet({ claims: { sub: 'alice' } }), err: 'invalid_request', reason: 'sub_claim' },
  { name: 'no events', make: () => makeSet({ claims: { events: undefined } }), err: 'invalid_request', reason: 'events' },
  { name: 'two events', make: () => makeSet({ claims: { events: { [SESSION_REVOKED]: {}, [EVENT_TYPES.credentialChange]: { credential_type: 'pin', change_type: 'update' } } } }), err: 'invalid_request', reason: 'events' },
  { name: 'malformed subject (iss_sub without sub)', make: () => makeSet({ claims: { sub_id: { format: 'iss_sub', iss: ISSUER } } }), err: 'invalid_request', reason: 'subject' },
  { name: 'no subject', make: () => makeSet({ claims: { sub_id: undefined } }), err: 'invalid_request', reason: 'subject' },
  { name: 'credential-change without change_type', make: () => makeSet({ claims: { events: { [EVENT_TYPES.credentialChange]: { credential_type: 'pin' } } } }), err: 'invalid_request', reason: 'event_payload' },
  { name: 'not a JWS', make: async () => 'not-a-set', err: 'invalid_request', reason: 'malformed' },
  { name: 'encrypted SET', make: async () => 'eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d', err: 'invalid_request', reason: 'encrypted' },
  { name: 'oversized body', make: async () => `${'a'.repeat(5000)}.b.c`, err: 'invalid_request', status: 413, reason: 'too_large' },
  { name: 'wrong media type', make: () => makeSet(), err: 'invalid_request', reason: 'media_type', contentType: 'application/json' },
  { name: 'unknown transmitter', make: () => makeSet(), err: 'invalid_request', status: 404, reason: 'unknown_transmitter', transmitter: 'nobody' },
  { name: 'push without the agreed Authorization', make: () => makeSet(), err: 'authentication_failed', reason: 'push_authentication', transmitter: 'guarded' },
  { name: 'push with a wrong Authorization', make: () => makeSet(), err: 'authentication_failed', reason: 'push_authentication', transmitter: 'guarded', authorization: 'Bearer wrong' },
];

for (const c of refusals) {
  test(`refused: ${c.name} → ${c.status ?? 400} ${c.err}, audited, onSignal not run`, async () => {
    const r = await push(await c.make(), {
      ...(c.transmitter === undefined ? {} : { transmitter: c.transmitter }),
      ...(c.contentType === undefined ? {} : { contentType: c.contentType }),
      ...(c.authorization === undefined ? {} : { authorization: c.authorization }),
    });
    assert.equal(r.status, c.status ?? 400);
    assert.equal(r.body?.err, c.err);
    assert.equal(typeof r.body?.description, 'string');
    assert.deepEqual(Object.keys(r.body ?? {}).sort(), ['description', 'err']);
    assert.equal(signals.length, 0, 'onSignal did not run');
    const event = lastAudit();
    assert.equal(event.type, 'signal.refuse');
    assert.equal(event.outcome, 'failure');
    assert.equal(event.data?.err, c.err);
    assert.equal(event.data?.reason, c.reason);
  });
}

test('the guarded transmitter accepts a push carrying the agreed Authorization', async () => {
  const r = await push(await makeSet(), { transmitter: 'guarded', authorization: PUSH_SECRET });
  assert.equal(r.status, 202);
  assert.equal(signals.length, 1);
  assert.ok(!JSON.stringify(audits).includes(PUSH_SECRET), 'the push secret is never audited');
});

test('a replayed jti is refused and onSignal runs once', async () => {
  const set = await makeSet();
  assert.equal((await push(set)).status, 202);
  const again = await push(set);
  assert.deepEqual([again.status, again.body?.err], [400, 'invalid_request']);
  assert.equal(lastAudit().data?.reason, 'replay');
  assert.equal(signals.length, 1);
});

test('onSignal failing answers 503 and the retry of the same SET is applied (not taken for a replay)', async () => {
  const set = await makeSet();
  failNextSignal = true;
  const first = await push(set);
  assert.equal(first.status, 503);
  assert.equal(first.body?.err, undefined);
  assert.equal(lastAudit().type, 'signal.refuse');
  const retry = await push(set);
  assert.equal(retry.status, 202);
  assert.equal(signals.length, 1);
});

test('keys unavailable (JWKS endpoint failing, nothing cached) answers 503, not a refusal of the SET', async () => {
  // A fresh receiver: nothing cached yet.
  jwksStatus = 500;
  const config = SignalsConfigSchema.parse({
    receiver: { transmitters: [{ id: 'down', issuer: ISSUER, jwksUri: `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks`, audience: AUDIENCE }] },
  });
  const local: NewAuditEvent[] = [];
  const receiver = createSetReceiver({
    config: config.receiver,
    fetchJson: createFetchJson({ timeoutMs: 2000, maxBytes: 1 << 20, allowPrivateNetworks: true, allowHosts: [], allowHttp: true }),
    replay: memoryReplay(),
    principals: { byId: async () => undefined, bySpiffeId: async () => undefined },
    onSignal: async () => assert.fail('onSignal must not run'),
    audit: async (e) => {
      local.push(e);
    },
    clock,
  });
  await assert.rejects(receiver.receive({ transmitter: 'down', body: await makeSet() }), (e: { status?: number; code?: string }) => e.status === 503 && e.code === 'ERR_KEYS_UNAVAILABLE');
  assert.equal(local.at(-1)?.type, 'signal.refuse');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalJWKSet, exportJWK, generateKeyPair, generateSecret } from 'jose';
import type { CryptoKey, JWK, JWSHeaderParameters, JWTPayload } from 'jose';
import { InvalidClientError, MandateError, StoreUnavailableError } from '../core/errors.ts';
import { fixedClock } from '../core/ports.ts';
import { createClientAuthenticator, JWT_BEARER_ASSERTION_TYPE, JWT_SPIFFE_ASSERTION_TYPE } from './client-assertion.ts';
import type { ClientAuthenticatorOptions, ClientAuthForm, ClientAuthTransport } from './client-assertion.ts';
import { createBundleSource } from './spiffe.ts';
import type { SpiffeBundleSource } from './spiffe.ts';
import type { KeySource, PrincipalCredential, PrincipalLookup, RegisteredPrincipal } from './types.ts';
import { bundleDoc, makeCa, makeJwtAuthority, makeLeaf, memoryReplayCache, signJwt, x509 } from './workload-test-fixtures.ts';

const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);
const NOW_S = NOW / 1000;
const HOUR = 3600_000;
const ISSUER = 'https://mandate.example';
const TOKEN_ENDPOINT = 'https://mandate.example/oauth/token';

class ServiceUnavailable extends MandateError {
  override readonly status: number = 503;
}

interface ClientKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function clientKey(kid: string, alg = 'ES256'): Promise<ClientKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg } };
}

function principal(id: string, credentials: PrincipalCredential[], extra: Partial<RegisteredPrincipal> = {}): RegisteredPrincipal {
  return {
    id,
    kind: 'agent',
    name: id,
    owner: 'alice@example.com',
    mode: 'autonomous',
    workflows: [],
    audiences: [],
    apiScopes: [],
    credentials,
    status: 'active',
    dpop: 'required',
    createdAt: NOW - HOUR,
    ...extra,
  };
}

async function setup(overrides: Partial<ClientAuthenticatorOptions> = {}) {
  const clock = fixedClock(NOW);
  const replay = memoryReplayCache({ now: clock.now });
  const kA = await clientKey('a1');
  const kB = await clientKey('b1');
  const kRemote = await clientKey('r1');
  const svidKey = await makeJwtAuthority('spire-1');
  const otherTdKey = await makeJwtAuthority('evil-1');
  const root = await makeCa({ trustDomain: 'example.org', notBefore: new Date(NOW - 24 * HOUR), notAfter: new Date(NOW + 24 * HOUR) });
  const bundles = new Map<string, SpiffeBundleSource>([
    ['example.org', createBundleSource({ trustDomain: 'example.org', bundle: await bundleDoc({ roots: [root], jwtAuthorities: [svidKey] }), clock })],
  ]);
  const registry: RegisteredPrincipal[] = [
    principal('agent-a', [{ type: 'jwks', jwks: { keys: [kA.publicJwk] } }]),
    principal('service-b', [{ type: 'jwks', jwks: { keys: [kB.publicJwk] } }], { kind: 'service', mode: undefined }),
    principal('agent-remote', [{ type: 'jwks_uri', uri: 'https://agent.example/jwks' }]),
    principal('agent-down', [{ type: 'jwks_uri', uri: 'https://down.example/jwks' }]),
    principal('agent-spiffe', [{ type: 'spiffe', spiffeId: 'spiffe://example.org/agent' }]),
    principal('agent-spiffe-2', [{ type: 'spiffe', spiffeId: 'spiffe://example.org/agent-2' }]),
    principal('agent-suspended', [{ type: 'jwks', jwks: { keys: [kA.publicJwk] } }, { type: 'spiffe', spiffeId: 'spiffe://example.org/suspended' }], { status: 'suspended' }),
    principal('agent-quarantined', [{ type: 'jwks', jwks: { keys: [kA.publicJwk] } }], { status: 'quarantined' }),
    principal('agent-retired', [{ type: 'jwks', jwks: { keys: [kA.publicJwk] } }], { status: 'retired' }),
  ];
  const principals: PrincipalLookup = {
    byId: async (id) => registry.find((p) => p.id === id),
    bySpiffeId: async (sid) => registry.find((p) => p.credentials.some((c) => c.type === 'spiffe' && c.spiffeId === sid)),
  };
  const keySourceFor: ClientAuthenticatorOptions['keySourceFor'] = (credential) => {
    if (credential.type === 'jwks') {
      const set = createLocalJWKSet(credential.jwks);
      return { getKey: (h, t) => set(h, t) as never, status: () => ({ source: 'inline', state: 'ok' }) } satisfies KeySource;
    }
    if (credential.uri === 'https://down.example/jwks') {
      return {
        getKey: async () => {
          throw new ServiceUnavailable('the client keys are unavailable');
        },
        status: () => ({ source: credential.uri, state: 'failed' }),
      };
    }
    const set = createLocalJWKSet({ keys: [kRemote.publicJwk] });
    return { getKey: (h, t) => set(h, t) as never, status: () => ({ source: credential.uri, state: 'ok' }) };
  };
  const auth = createClientAuthenticator({
    issuer: ISSUER,
    tokenEndpoint: TOKEN_ENDPOINT,
    principals,
    replay,
    keySourceFor,
    spiffe: { bundles },
    clock,
    ...overrides,
  });
  const assertion = (key: ClientKey, claims: Partial<JWTPayload> & Record<string, unknown> = {}, header: Partial<JWSHeaderParameters> & Record<string, unknown> = {}, signWith: CryptoKey | Uint8Array = key.privateKey) => {
    const c: Record<string, unknown> = { iss: 'agent-a', sub: 'agent-a', aud: ISSUER, exp: NOW_S + 60, iat: NOW_S, jti: `j-${Math.random()}`, ...claims };
    for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
    const h: Record<string, unknown> = { alg: 'ES256', kid: key.kid, ...header };
    for (const k of Object.keys(h)) if (h[k] === undefined) delete h[k];
    return signJwt(h as JWSHeaderParameters & { alg: string }, c, signWith);
  };
  const svid = (claims: Partial<JWTPayload> & Record<string, unknown> = {}, key = svidKey) => {
    const c: Record<string, unknown> = { sub: 'spiffe://example.org/agent', aud: [ISSUER], exp: NOW_S + 120, iat: NOW_S, ...claims };
    for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
    return signJwt({ alg: 'ES256', kid: key.kid, typ: 'JWT' }, c, key.privateKey);
  };
  const pkjwt = (client_assertion: string, extra: ClientAuthForm = {}): ClientAuthForm => ({
    client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
    client_assertion,
    ...extra,
  });
  const spiffeForm = (client_assertion: string, extra: ClientAuthForm = {}): ClientAuthForm => ({
    client_assertion_type: JWT_SPIFFE_ASSERTION_TYPE,
    client_assertion,
    ...extra,
  });
  return { clock, replay, auth, kA, kB, kRemote, svidKey, otherTdKey, root, bundles, assertion, svid, pkjwt, spiffeForm };
}

async function refused(p: Promise<unknown>, re: RegExp, name: string, secret?: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof InvalidClientError, `${name}: ${String(err)}`);
    assert.equal(err.status, 401);
    assert.equal(err.oauthError, 'invalid_client');
    assert.match(err.description, re, name);
    if (secret) {
      assert.ok(!err.description.includes(secret), `${name}: the description echoes the credential`);
      assert.ok(!(err.detail ?? '').includes(secret), `${name}: the detail echoes the credential`);
    }
    return true;
  }, name);
}

test('private_key_jwt: a valid assertion authenticates its principal', async () => {
  const s = await setup();
  const r = await s.auth.authenticate(s.pkjwt(await s.assertion(s.kA), { client_id: 'agent-a' }));
  assert.equal(r.principal.id, 'agent-a');
  assert.equal(r.kind, 'agent');
  assert.equal(r.method, 'private_key_jwt');
  assert.equal(r.expiresAt, NOW_S + 60);
  // client_id may be omitted; aud as a one-element array; the token endpoint URL as aud; explicit typ.
  await s.auth.authenticate(s.pkjwt(await s.assertion(s.kA, { aud: [ISSUER] })));
  await s.auth.authenticate(s.pkjwt(await s.assertion(s.kA, { aud: TOKEN_ENDPOINT })));
  await s.auth.authenticate(s.pkjwt(await s.assertion(s.kA, {}, { typ: 'client-authentication+jwt' })));
  const svc = await s.auth.authenticate(s.pkjwt(await s.assertion(s.kB, { iss: 'service-b', sub: 'service-b' })));
  assert.equal(svc.kind, 'service');
  // keys from a jwks_uri credential
  await s.auth.authenticate(s.pkjwt(await s.assertion(s.kRemote, { iss: 'agent-remote', sub: 'agent-remote' })));
  // no iat: lifetime counted from now
  await s.auth.authenticate(s.pkjwt(await s.assertion(s.kA, { iat: undefined, exp: NOW_S + 300 })));
  assert.deepEqual(s.auth.methods, ['private_key_jwt', 'tls_client_auth']);
});

test('private_key_jwt: adversarial assertions are refused with invalid_client', async () => {
  const s = await setup();
  const attacker = await clientKey('a1');
  const good = await s.assertion(s.kA);
  const [gh, gp, gs] = good.split('.') as [string, string, string];
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const hmacFromPublic = new TextEncoder().encode(JSON.stringify(s.kA.publicJwk));
  const cases: [string, string | Promise<string>, RegExp, ClientAuthForm?][] = [
    ['alg none', `${enc({ alg: 'none' })}.${gp}.`, /compact form/],
    ['alg none with signature', `${enc({ alg: 'none', kid: 'a1' })}.${gp}.${gs}`, /algorithm/],
    ['HS256 keyed with the public key', s.assertion(s.kA, {}, { alg: 'HS256' }, hmacFromPublic), /algorithm/],
    ['HS256 with a secret', generateSecret('HS256').then((k) => s.assertion(s.kA, {}, { alg: 'HS256' }, k)), /algorithm/],
    ['embedded jwk', s.assertion(attacker, {}, { jwk: attacker.publicJwk }), /"jwk"/],
    ['jku', s.assertion(attacker, {}, { jku: 'https://evil.example/jwks' }), /"jku"/],
    ['x5u', s.assertion(attacker, {}, { x5u: 'https://evil.example/cert' }), /"x5u"/],
    ['x5c', s.assertion(attacker, {}, { x5c: ['AAAA'] }), /"x5c"/],
    ['crit', `${enc({ alg: 'ES256', kid: 'a1', crit: ['x'], x: 1 })}.${gp}.${gs}`, /crit/],
    ['attacker key with the victim kid', s.assertion(attacker), /signature/],
    ['kid of another principal', s.assertion(s.kB, {}, {}), /no registered key/],
    ['unknown kid', s.assertion(s.kA, {}, { kid: 'nope' }), /no registered key/],
    ['tampered payload', `${gh}.${enc({ iss: 'agent-a', sub: 'agent-a', aud: ISSUER, exp: NOW_S + 60, jti: 'x2' })}.${gs}`, /signature/],
    ['truncated signature', `${gh}.${gp}.${gs.slice(0, 40)}`, /signature|malformed|could not/],
    ['malformed', 'a.b', /compact form/],
    ['typ at+jwt', s.assertion(s.kA, {}, { typ: 'at+jwt' }), /"typ"/],
    ['typ dpop+jwt', s.assertion(s.kA, {}, { typ: 'dpop+jwt' }), /"typ"/],
    ['iss ≠ sub', s.assertion(s.kA, { sub: 'service-b' }), /"iss" and "sub"/],
    ['client_id ≠ iss', s.assertion(s.kA), /not the client_id/, { client_id: 'service-b' }],
    ['no iss', s.assertion(s.kA, { iss: undefined }), /"iss" and "sub"/],
    ['unregistered principal', s.assertion(s.kA, { iss: 'ghost', sub: 'ghost' }), /unknown client/],
    ['aud: another endpoint', s.assertion(s.kA, { aud: `${ISSUER}/introspect` }), /issuer identifier/],
    ['aud: another server', s.assertion(s.kA, { aud: 'https://other-as.example' }), /issuer identifier/],
    ['aud: issuer among others', s.assertion(s.kA, { aud: [ISSUER, 'https://other-as.example'] }), /only value/],
    ['aud: issuer with trailing slash', s.assertion(s.kA, { aud: `${ISSUER}/` }), /issuer identifier/],
    ['no aud', s.assertion(s.kA, { aud: undefined }), /"aud"/],
    ['expired', s.assertion(s.kA, { iat: NOW_S - 120, exp: NOW_S - 60 }), /expired/],
    ['no exp', s.assertion(s.kA, { exp: undefined }), /"exp"/],
    ['over-long lifetime (exp far ahead)', s.assertion(s.kA, { iat: undefined, exp: NOW_S + 3600 }), /lives too long/],
    ['over-long lifetime (exp − iat)', s.assertion(s.kA, { iat: NOW_S - 200, exp: NOW_S + 200 }), /lives too long/],
    ['iat in the future', s.assertion(s.kA, { iat: NOW_S + 60, exp: NOW_S + 120 }), /future/],
    ['not yet valid', s.assertion(s.kA, { nbf: NOW_S + 60 }), /not valid yet/],
    ['no jti', s.assertion(s.kA, { jti: undefined }), /"jti"/],
    ['jti not a string', s.assertion(s.kA, { jti: 42 as unknown as string }), /"jti"/],
  ];
  for (const [name, p, re, extra] of cases) {
    const token = await p;
    await refused(s.auth.authenticate(s.pkjwt(token, extra)), re, name, token.length > 30 ? token : undefined);
  }
});

test('private_key_jwt: jti is single-use per client; dependencies that cannot answer fail closed', async () => {
  const s = await setup();
  const a = await s.assertion(s.kA, { jti: 'once' });
  await s.auth.authenticate(s.pkjwt(a));
  await refused(s.auth.authenticate(s.pkjwt(a)), /already used/, 'replayed assertion', a);
  // The same jti from another client is a different assertion.
  await s.auth.authenticate(s.pkjwt(await s.assertion(s.kB, { iss: 'service-b', sub: 'service-b', jti: 'once' })));
  // A refused assertion does not burn its jti.
  const bad = await s.assertion(s.kA, { jti: 'kept', aud: 'https://other-as.example' });
  await refused(s.auth.authenticate(s.pkjwt(bad)), /issuer identifier/, 'bad aud');
  await s.auth.authenticate(s.pkjwt(await s.assertion(s.kA, { jti: 'kept' })));

  // Key source unavailable (503): not turned into invalid_client.
  await assert.rejects(
    s.auth.authenticate(s.pkjwt(await s.assertion(s.kA, { iss: 'agent-down', sub: 'agent-down' }))),
    (err: unknown) => err instanceof ServiceUnavailable,
  );
  // Replay store down: fail closed with its own error.
  const down = await setup({
    replay: {
      use: async () => {
        throw new StoreUnavailableError('store down');
      },
    },
  });
  await assert.rejects(down.auth.authenticate(down.pkjwt(await down.assertion(down.kA))), StoreUnavailableError);
});

test('a principal that is not active is refused, saying its status, only after proving its key', async () => {
  const s = await setup();
  for (const status of ['suspended', 'quarantined', 'retired']) {
    const id = `agent-${status}`;
    const token = await s.assertion(s.kA, { iss: id, sub: id });
    await refused(s.auth.authenticate(s.pkjwt(token)), new RegExp(`is ${status}`), status, token);
    const attacker = await clientKey('a1');
    await refused(s.auth.authenticate(s.pkjwt(await s.assertion(attacker, { iss: id, sub: id }))), /signature/, `${status} without the key`);
  }
  await refused(s.auth.authenticate(s.spiffeForm(await s.svid({ sub: 'spiffe://example.org/suspended' }))), /is suspended/, 'suspended SVID');
});

test('method rules: exactly one method, no shared secrets, credentials of the right type', async () => {
  const s = await setup();
  const a = await s.assertion(s.kA);
  const basic = `Basic ${Buffer.from('agent-a:s3cret-value').toString('base64')}`;
  const leaf = await makeLeaf({ issuer: s.root, uris: ['spiffe://example.org/agent'], notBefore: new Date(NOW - HOUR), notAfter: new Date(NOW + HOUR) });
  const cases: [string, ClientAuthForm, ClientAuthTransport, RegExp][] = [
    ['nothing', { client_id: 'agent-a' }, {}, /client authentication is required/],
    ['assertion + client_secret', { ...s.pkjwt(a), client_secret: 's3cret-value' }, {}, /exactly one.*client_secret_post/],
    ['assertion + Basic', s.pkjwt(a), { authorizationHeader: basic }, /exactly one.*client_secret_basic/],
    ['client_secret_post', { client_id: 'agent-a', client_secret: 's3cret-value' }, {}, /shared-secret client authentication .* is disabled/],
    ['client_secret_basic', {}, { authorizationHeader: basic }, /shared-secret client authentication .* is disabled/],
    ['assertion type missing', { client_assertion: a }, {}, /client_assertion_type is required/],
    ['assertion missing', { client_assertion_type: JWT_BEARER_ASSERTION_TYPE }, {}, /client_assertion is required/],
    ['unknown assertion type', { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer', client_assertion: a }, {}, /unsupported client_assertion_type/],
    ['repeated parameter', { client_assertion_type: [JWT_BEARER_ASSERTION_TYPE, JWT_BEARER_ASSERTION_TYPE] as never, client_assertion: a }, {}, /sent once/],
    ['SPIFFE-only principal with private_key_jwt', s.pkjwt(await s.assertion(s.kA, { iss: 'agent-spiffe', sub: 'agent-spiffe' })), {}, /no credential for private_key_jwt; authenticate with a JWT-SVID/],
    ['key-only principal with a JWT-SVID', s.spiffeForm(await s.svid(), { client_id: 'agent-a' }), {}, /no credential for a JWT-SVID; authenticate with private_key_jwt/],
    ['key-only principal with an X.509-SVID', { client_id: 'agent-a' }, { peerCertificate: [leaf.der] }, /no credential for an X.509-SVID/],
    ['JWT-SVID sent as jwt-bearer', s.pkjwt(await s.svid()), {}, /"iss" and "sub"/],
  ];
  for (const [name, form, transport, re] of cases) {
    await refused(s.auth.authenticate(form, transport), re, name, 's3cret-value');
  }
  // A TLS certificate presented with an assertion is transport (a mesh sidecar's): the assertion authenticates.
  const withCert = await s.auth.authenticate(s.pkjwt(await s.assertion(s.kA)), { peerCertificate: [leaf.der] });
  assert.equal(withCert.method, 'private_key_jwt');
  assert.equal(withCert.principal.id, 'agent-a');
});

test('shared secrets, when an operator wires a verifier, authenticate as client_secret', async () => {
  const s = await setup({ sharedSecrets: { verify: async (p, secret) => p.id === 'service-b' && secret === 'right secret' } });
  assert.ok(s.auth.methods.includes('client_secret_basic'));
  const r = await s.auth.authenticate({ client_id: 'service-b', client_secret: 'right secret' });
  assert.equal(r.method, 'client_secret');
  const basic = `Basic ${Buffer.from('service-b:right+secret').toString('base64')}`;
  assert.equal((await s.auth.authenticate({}, { authorizationHeader: basic })).principal.id, 'service-b');
  await refused(s.auth.authenticate({ client_id: 'service-b', client_secret: 'bad-guess-123' }), /wrong/, 'wrong secret', 'bad-guess-123');
  await refused(s.auth.authenticate({ client_id: 'agent-a' }, { authorizationHeader: basic }), /differs/, 'basic id mismatch');
});

test('JWT-SVID client assertion (jwt-spiffe)', async () => {
  const s = await setup();
  const r = await s.auth.authenticate(s.spiffeForm(await s.svid(), { client_id: 'agent-spiffe' }));
  assert.equal(r.principal.id, 'agent-spiffe');
  assert.equal(r.method, 'spiffe_jwt');
  assert.equal(r.expiresAt, NOW_S + 120);
  // Found by SPIFFE ID when client_id is absent; aud as a string; the token endpoint too.
  assert.equal((await s.auth.authenticate(s.spiffeForm(await s.svid({ aud: ISSUER })))).principal.id, 'agent-spiffe');
  await s.auth.authenticate(s.spiffeForm(await s.svid({ aud: TOKEN_ENDPOINT })));
  // Without jti an SVID may be presented again within its life (SPIFFE JWT-SVIDs are reusable bearer tokens).
  const reusable = await s.svid();
  await s.auth.authenticate(s.spiffeForm(reusable));
  await s.auth.authenticate(s.spiffeForm(reusable));
  const withJti = await s.svid({ jti: 'svid-1' });
  await s.auth.authenticate(s.spiffeForm(withJti));

  const cases: [string, string | Promise<string>, RegExp, ClientAuthForm?][] = [
    ['replayed jti', withJti, /already used/],
    ['SPIFFE ID of another principal', s.svid({ sub: 'spiffe://example.org/agent-2' }), /not the one registered/, { client_id: 'agent-spiffe' }],
    ['unregistered SPIFFE ID', s.svid({ sub: 'spiffe://example.org/nobody' }), /no agent or service is registered with this SPIFFE ID/],
    ['SVID from another trust domain', s.svid({ sub: 'spiffe://evil.org/agent' }, s.otherTdKey), /not trusted/],
    ['signed by a key outside the bundle', s.svid({}, s.otherTdKey), /no registered key/],
    ['aud other than the issuer', s.svid({ aud: ['https://other-as.example'] }), /"aud"/],
    ['aud issuer among others', s.svid({ aud: [ISSUER, 'spiffe://example.org/other-service'] }), /only value/],
    ['expired', s.svid({ iat: NOW_S - 600, exp: NOW_S - 300 }), /expired/],
    ['over-long lifetime', s.svid({ iat: NOW_S, exp: NOW_S + 3600 }), /lives too long/],
    ['no exp', s.svid({ exp: undefined }), /"exp"/],
    ['sub not a SPIFFE ID', s.svid({ sub: 'agent-spiffe' }), /SPIFFE ID/],
    ['unknown client_id', s.svid(), /unknown client/, { client_id: 'ghost' }],
  ];
  for (const [name, p, re, extra] of cases) {
    const token = await p;
    await refused(s.auth.authenticate(s.spiffeForm(token, extra)), re, name, token);
  }
  const noSpiffe = await setup({ spiffe: undefined });
  await refused(noSpiffe.auth.authenticate(noSpiffe.spiffeForm(await noSpiffe.svid())), /not enabled/, 'SPIFFE off');
});

test('mTLS with an X.509-SVID', async () => {
  const s = await setup();
  const window = { notBefore: new Date(NOW - HOUR), notAfter: new Date(NOW + HOUR) };
  const leaf = await makeLeaf({ issuer: s.root, uris: ['spiffe://example.org/agent'], ...window });
  const r = await s.auth.authenticate({}, { peerCertificate: [leaf.der] });
  assert.equal(r.principal.id, 'agent-spiffe');
  assert.equal(r.method, 'spiffe_x509');
  assert.equal(r.expiresAt, Math.floor((NOW + HOUR) / 1000));
  await s.auth.authenticate({ client_id: 'agent-spiffe' }, { peerCertificate: [leaf.der] });

  const otherRoot = await makeCa({ trustDomain: 'example.org', ...window });
  const cases: [string, Promise<Buffer[]>, RegExp, ClientAuthForm?][] = [
    ['client_id of another principal', Promise.resolve([leaf.der]), /not the one registered/, { client_id: 'agent-spiffe-2' }],
    ['SVID that is a CA', makeLeaf({ issuer: s.root, uris: ['spiffe://example.org/agent'], ca: true, keyUsage: x509.KeyUsageFlags.digitalSignature, ...window }).then((l) => [l.der]), /is a CA/],
    ['two URI SANs', makeLeaf({ issuer: s.root, uris: ['spiffe://example.org/agent', 'spiffe://example.org/agent-2'], ...window }).then((l) => [l.der]), /exactly one URI SAN/],
    ['expired SVID', makeLeaf({ issuer: s.root, uris: ['spiffe://example.org/agent'], notBefore: new Date(NOW - 2 * HOUR), notAfter: new Date(NOW - 1000) }).then((l) => [l.der]), /expired/],
    ['not from the bundle', makeLeaf({ issuer: otherRoot, uris: ['spiffe://example.org/agent'], ...window }).then((l) => [l.der]), /does not chain/],
    ['another trust domain', makeLeaf({ issuer: s.root, uris: ['spiffe://evil.org/agent'], ...window }).then((l) => [l.der]), /not trusted/],
  ];
  for (const [name, p, re, form] of cases) {
    await refused(s.auth.authenticate(form ?? {}, { peerCertificate: await p }), re, name);
  }
  const noSpiffe = await setup({ spiffe: undefined });
  await refused(noSpiffe.auth.authenticate({}, { peerCertificate: [leaf.der] }), /not enabled/, 'SPIFFE off');
});

test('configuration mistakes are TypeErrors', async () => {
  const s = await setup();
  const base = { issuer: ISSUER, tokenEndpoint: TOKEN_ENDPOINT, principals: { byId: async () => undefined, bySpiffeId: async () => undefined }, replay: s.replay, keySourceFor: () => { throw new Error('unused'); }, clock: s.clock };
  assert.throws(() => createClientAuthenticator({ ...base, algorithms: ['HS256'] }), TypeError);
  assert.throws(() => createClientAuthenticator({ ...base, algorithms: ['none'] }), TypeError);
  assert.throws(() => createClientAuthenticator({ ...base, issuer: '' }), TypeError);
  assert.throws(() => createClientAuthenticator({ ...base, maxAssertionLifetimeSeconds: 86_400 }), TypeError);
});

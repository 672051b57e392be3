/**
 * User authentication against a real OpenID Provider (oidc-provider) on loopback: real tokens accepted, and
 * adversarial tokens built with jose refused with the right reason. Outbound fetches go through the real guarded
 * fetch, allowed to reach loopback over http and nothing else.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, decodeProtectedHeader, exportJWK, exportSPKI, generateKeyPair, importJWK, SignJWT, UnsecuredJWT, type JWK, type JWTHeaderParameters, type JWTPayload } from 'jose';
import { fixedClock } from '../../src/core/ports.ts';
import { KeysUnavailableError } from '../../src/identity/key-sources.ts';
import { createUserAuthenticator, InvalidUserTokenError, type UserAuthenticator, type UserTokenRefusal } from '../../src/identity/oidc-users.ts';
import { createFetchJson } from '../../src/identity/outbound.ts';
import type { OidcIssuerInput } from '../../src/identity/identity-config.ts';
import { startTestIdp, type TestIdp } from '../fixtures/test-idp.ts';

const RESOURCE = 'https://mandate.test/';
const OTHER_RESOURCE = 'https://other-resource.test/';
const fetchJson = createFetchJson({ timeoutMs: 5000, maxBytes: 1024 * 1024, allowPrivateNetworks: true, allowHosts: [], allowHttp: true });

let idp: TestIdp;
let aliceToken: string;

before(async () => {
  idp = await startTestIdp({ resources: [RESOURCE, OTHER_RESOURCE] });
  aliceToken = await idp.userToken('alice', { resource: RESOURCE });
});
after(async () => {
  await idp.close();
});

function authenticator(overrides: Partial<OidcIssuerInput> = {}, clock = fixedClock(Date.now())): { users: UserAuthenticator; clock: typeof clock } {
  const users = createUserAuthenticator({
    issuers: [{ issuer: idp.issuer, discovery: true, audiences: [RESOURCE], ...overrides } as OidcIssuerInput],
    fetchJson,
    clock,
  });
  return { users, clock };
}

async function refused(promise: Promise<unknown>, reason: UserTokenRefusal): Promise<InvalidUserTokenError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof InvalidUserTokenError, `expected ${reason}, got ${String(error)}`);
    assert.equal(error.code, 'ERR_INVALID_TOKEN');
    assert.equal(error.reason, reason, error.description);
    return error;
  }
  assert.fail(`expected refusal ${reason}`);
}

/** A token shaped like the IdP's, signed with `key`, with header and claim overrides. */
async function forge(key: Parameters<SignJWT['sign']>[0], header: Partial<JWTHeaderParameters> = {}, claims: JWTPayload = {}): Promise<string> {
  const real = decodeJwt(aliceToken);
  return new SignJWT({ ...real, ...claims }).setProtectedHeader({ ...decodeProtectedHeader(aliceToken), ...header } as JWTHeaderParameters).sign(key);
}

test('a real access token from the IdP is accepted (discovery, JWKS), with roles from the token', async () => {
  const { users } = authenticator();
  await users.start();
  assert.deepEqual(
    users.status().map((s) => s.state),
    ['ok'],
  );
  assert.equal(users.status()[0]?.source, idp.jwksUri);
  const alice = await users.authenticate(aliceToken);
  assert.equal(alice.issuer, idp.issuer);
  assert.equal(alice.subject, 'alice');
  assert.deepEqual(alice.roles, ['admin']);
  assert.equal(alice.claims.dept, 'sales');
  assert.equal(alice.claims.scope, 'api:read api:write');
  const bob = await users.authenticate(await idp.userToken('bob', { resource: RESOURCE, scope: 'api:read' }));
  assert.equal(bob.subject, 'bob');
  assert.deepEqual(bob.roles, []);
  assert.equal(bob.claims.scope, 'api:read');
  // The same IdP configured by jwksUri works the same.
  const direct = authenticator({ discovery: undefined, jwksUri: idp.jwksUri });
  assert.equal((await direct.users.authenticate(aliceToken)).subject, 'alice');
});

test('wrong audience, foreign issuer, and a discovery document naming another issuer', async () => {
  const { users } = authenticator();
  await refused(users.authenticate(await idp.userToken('alice', { resource: OTHER_RESOURCE })), 'audience');
  const other = await startTestIdp();
  try {
    await refused(users.authenticate(await other.userToken('alice')), 'untrusted_issuer');
    // Trusting `other` but under a spelling its discovery document does not use: keys never load.
    const mismatched = createUserAuthenticator({ issuers: [{ issuer: `${other.issuer}/`, discovery: true, audiences: [RESOURCE] }], fetchJson, clock: fixedClock(Date.now()) });
    await mismatched.start();
    const [status] = mismatched.status();
    assert.equal(status?.state, 'failed');
    assert.match(status?.reason ?? '', /names another issuer/);
  } finally {
    await other.close();
  }
});

test('time claims of a real token, with a frozen clock', async () => {
  const { exp = 0, iat = 0 } = decodeJwt(aliceToken);
  const { users, clock } = authenticator({ clockSkewSeconds: 60 });
  clock.set((exp + 59) * 1000);
  await users.authenticate(aliceToken);
  clock.set((exp + 60) * 1000);
  await refused(users.authenticate(aliceToken), 'expired');
  clock.set((iat - 61) * 1000);
  await refused(users.authenticate(aliceToken), 'issued_in_future');
  clock.set((iat - 60) * 1000);
  await users.authenticate(aliceToken);
});

test('adversarial: alg none, HS256 keyed with the IdP public key, bad and truncated signatures, malformed segments', async () => {
  const { users } = authenticator();
  const claims = decodeJwt(aliceToken);
  const unsecured = new UnsecuredJWT(claims).encode();
  await refused(users.authenticate(unsecured), 'algorithm');

  // Algorithm confusion (RFC 8725 §2.1): the IdP's public key, as JWK and as PEM, used as an HMAC secret.
  const jwks = (await (await fetch(idp.jwksUri)).json()) as { keys: JWK[] };
  const { kid } = decodeProtectedHeader(aliceToken);
  const publicJwk = jwks.keys.find((k) => k.kid === kid);
  assert.ok(publicJwk);
  const pem = await exportSPKI((await importJWK(publicJwk, 'ES256')) as Parameters<typeof exportSPKI>[0]);
  for (const secret of [new TextEncoder().encode(JSON.stringify(publicJwk)), new TextEncoder().encode(String(pem))]) {
    await refused(users.authenticate(await forge(secret, { alg: 'HS256' })), 'algorithm');
  }

  const [h = '', p = '', s = ''] = aliceToken.split('.');
  const flip = (c: string | undefined) => (c === 'A' ? 'B' : 'A');
  await refused(users.authenticate(`${h}.${p}.${s.slice(0, 30)}${flip(s[30])}${s.slice(31)}`), 'signature');
  await refused(users.authenticate(`${h}.${p}.${s.slice(0, s.length - 12)}`), 'signature');
  const elevated = Buffer.from(JSON.stringify({ ...claims, sub: 'bob', roles: ['admin'] })).toString('base64url');
  await refused(users.authenticate(`${h}.${elevated}.${s}`), 'signature');
  for (const token of [`${h}.${p}`, `${h}.${p}.${s}.${s}`, `${h}..${s}`, `${h}.${p}.${s}%`, 'Bearer', `${h.slice(1)}.${p}.${s}`]) {
    await refused(users.authenticate(token), 'malformed');
  }
});

test('adversarial: keys smuggled via jwk / jku / x5u / kid are never used or fetched', async () => {
  // A loopback "attacker" JWKS server: it must receive no request at all.
  let attackerHits = 0;
  const attacker = await generateKeyPair('ES256', { extractable: true });
  const attackerJwk = { ...(await exportJWK(attacker.publicKey)), kid: 'evil', alg: 'ES256', use: 'sig' };
  const server: Server = createServer((_req, res) => {
    attackerHits += 1;
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
    res.end(JSON.stringify({ keys: [attackerJwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const evil = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  try {
    const { users } = authenticator();
    await users.start();
    const before = idp.jwksRequests();
    await refused(users.authenticate(await forge(attacker.privateKey, { jwk: attackerJwk, kid: 'evil' })), 'forbidden_header');
    await refused(users.authenticate(await forge(attacker.privateKey, { jku: evil, kid: 'evil' })), 'forbidden_header');
    await refused(users.authenticate(await forge(attacker.privateKey, { x5u: evil, kid: 'evil' })), 'forbidden_header');
    // The IdP's own kid on an attacker's signature: verified with the IdP's key, so it fails.
    await refused(users.authenticate(await forge(attacker.privateKey)), 'signature');
    assert.equal(attackerHits, 0);
    assert.equal(idp.jwksRequests(), before);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test('adversarial: an ID token and a DPoP proof are not access tokens', async () => {
  const { users } = authenticator({ audiences: [RESOURCE, idp.clientId] });
  const { idToken } = await idp.login('alice', { resource: RESOURCE });
  await refused(users.authenticate(idToken), 'token_type');
  // oidc-provider's ID tokens carry no typ: refused even where an operator accepts typ JWT (an ID token typed JWT
  // is refused by its nonce; see src/identity/oidc-users.test.ts).
  const lax = authenticator({ audiences: [RESOURCE, idp.clientId], tokenTypes: ['at+jwt', 'JWT'] });
  assert.equal(decodeProtectedHeader(idToken).typ, undefined);
  await refused(lax.users.authenticate(idToken), 'token_type');

  const holder = await generateKeyPair('ES256');
  const proof = await new SignJWT({
    htm: 'POST',
    htu: `${idp.issuer}/token`,
    jti: 'proof-1',
    iat: Math.floor(Date.now() / 1000),
    ath: createHash('sha256').update(aliceToken).digest('base64url'),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(holder.publicKey) })
    .sign(holder.privateKey);
  const e = await refused(users.authenticate(proof), 'token_type');
  assert.match(e.description, /DPoP proof/);
});

test('an unknown kid refetches the JWKS at most once per cooldown; a key rotation at the IdP is picked up', async () => {
  const { users, clock } = authenticator();
  await users.start();
  await users.authenticate(aliceToken);
  const base = idp.jwksRequests();
  const attacker = await generateKeyPair('ES256');
  const unknown = await forge(attacker.privateKey, { kid: 'rotated-maybe' });

  // Right after the initial fetch: inside the cooldown, no refetch at all.
  for (let i = 0; i < 20; i += 1) await refused(users.authenticate(unknown), 'unknown_key');
  assert.equal(idp.jwksRequests(), base);
  // After the cooldown: one refetch for a burst of unknown kids.
  clock.advance(30_000);
  await Promise.all(Array.from({ length: 20 }, () => refused(users.authenticate(unknown), 'unknown_key')));
  assert.equal(idp.jwksRequests(), base + 1);

  // The IdP rotates (the old key withdrawn); tokens signed with the new kid verify after the cooldown.
  const newKid = await idp.rotateSigningKey({ keepOld: false });
  const rotated = await idp.userToken('alice', { resource: RESOURCE });
  assert.equal(decodeProtectedHeader(rotated).kid, newKid);
  await refused(users.authenticate(rotated), 'unknown_key'); // still cooling down: fail closed, no fetch
  assert.equal(idp.jwksRequests(), base + 1);
  clock.advance(30_000);
  assert.equal((await users.authenticate(rotated)).subject, 'alice');
  assert.equal(idp.jwksRequests(), base + 2);
  // The withdrawn key no longer verifies the earlier token.
  await refused(users.authenticate(aliceToken), 'unknown_key');
});

test('JWKS unreachable: cached keys serve until their max age, then the issuer fails closed and status() says why', async () => {
  // A loopback JWKS server of our own, serving the IdP's published keys, that we then stop.
  const jwks = await (await fetch(idp.jwksUri)).text();
  let hits = 0;
  const server: Server = createServer((_req, res) => {
    hits += 1;
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
    res.end(jwks);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const jwksUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  const token = await idp.userToken('alice', { resource: RESOURCE });
  const clock = fixedClock(Date.now());
  const users = createUserAuthenticator({
    issuers: [{ issuer: idp.issuer, jwksUri, audiences: [RESOURCE] }],
    fetchJson,
    clock,
    keyCache: { cooldownMs: 1_000, refreshMs: 10_000, maxAgeMs: 60_000 },
  });
  await users.start();
  assert.equal(hits, 1);
  assert.equal(users.status()[0]?.state, 'ok');
  await users.authenticate(token);

  await new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  clock.advance(10_000); // due for refresh: the refresh fails, cached keys serve
  await users.authenticate(token);
  clock.advance(1_000);
  await users.authenticate(token);
  const stale = users.status()[0];
  assert.equal(stale?.state, 'stale');
  assert.match(stale?.reason ?? '', /could not be fetched/);

  clock.advance(50_000); // past max age (60 s after the fetch)
  await assert.rejects(users.authenticate(token), (e: unknown) => {
    assert.ok(e instanceof KeysUnavailableError);
    assert.equal(e.status, 503);
    assert.match(e.description, /older than their maximum age/);
    return true;
  });
  const failed = users.status()[0];
  assert.equal(failed?.state, 'failed');
  assert.match(failed?.reason ?? '', /older than their maximum age/);
  assert.equal(failed?.source, jwksUri);
});

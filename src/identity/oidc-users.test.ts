import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompactEncrypt, exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type JWK, type JWTHeaderParameters, type JWTPayload } from 'jose';
import { ConfigInvalidError, InvalidTokenError } from '../core/errors.ts';
import { fixedClock } from '../core/ports.ts';
import { OidcIssuerSchema } from './identity-config.ts';
import { KeysUnavailableError } from './key-sources.ts';
import { createUserAuthenticator, InvalidUserTokenError, type UserTokenRefusal } from './oidc-users.ts';
import type { FetchJson } from './types.ts';

const NOW_S = 1_900_000_000;
const ISSUER = 'https://idp.example.test';
const AUDIENCE = 'https://mandate.example.test/';
const JWKS_FILE = '/etc/mandate/idp.jwks.json';

const noFetch: FetchJson = async () => {
  throw new Error('no network in unit tests');
};

type KeyLike = Parameters<SignJWT['sign']>[0];

async function setup(issuerOverrides: Record<string, unknown> = {}) {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const attacker = await generateKeyPair('ES256', { extractable: true });
  const clock = fixedClock(NOW_S * 1000);
  const users = createUserAuthenticator({
    issuers: [{ issuer: ISSUER, jwksFile: JWKS_FILE, audiences: [AUDIENCE], ...issuerOverrides }],
    fetchJson: noFetch,
    clock,
    readFile: async (path) => {
      assert.equal(path, JWKS_FILE);
      return JSON.stringify({ keys: [publicJwk] });
    },
  });
  await users.start();

  /** A token as the IdP would sign it, with overrides. `undefined` values remove a claim or header member. */
  const sign = (claims: JWTPayload = {}, header: Partial<JWTHeaderParameters> = {}, key: KeyLike = privateKey) => {
    const payload: JWTPayload = { iss: ISSUER, sub: 'alice', aud: AUDIENCE, iat: NOW_S - 10, exp: NOW_S + 300, client_id: 'c1', jti: 'j1', roles: ['admin'], ...claims };
    for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
    const protectedHeader = { alg: 'ES256', kid: 'k1', typ: 'at+jwt', ...header } as JWTHeaderParameters;
    for (const [k, v] of Object.entries(protectedHeader)) if (v === undefined) delete (protectedHeader as Record<string, unknown>)[k];
    return new SignJWT(payload).setProtectedHeader(protectedHeader).sign(key);
  };
  return { users, clock, sign, publicJwk, publicKey, privateKey, attacker };
}

async function refused(promise: Promise<unknown>, reason: UserTokenRefusal, token?: string): Promise<InvalidUserTokenError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof InvalidUserTokenError, `expected InvalidUserTokenError(${reason}), got ${String(error)}`);
    assert.ok(error instanceof InvalidTokenError);
    assert.equal(error.code, 'ERR_INVALID_TOKEN');
    assert.equal(error.status, 401);
    assert.equal(error.reason, reason, `reason: ${error.description}`);
    if (token !== undefined) {
      for (const part of token.split('.').filter((p) => p.length > 8)) {
        assert.ok(!error.description.includes(part), 'description echoes the token');
        assert.ok(!(error.detail ?? '').includes(part), 'detail echoes the token');
      }
    }
    return error;
  }
  assert.fail(`expected refusal ${reason}`);
}

test('config: defaults, exactly one key source, no none/HS algorithms, bounded skew', () => {
  const parsed = OidcIssuerSchema.parse({ issuer: ISSUER, discovery: true, audiences: [AUDIENCE] });
  assert.deepEqual(parsed.algorithms, ['RS256', 'ES256', 'EdDSA', 'PS256']);
  assert.deepEqual(parsed.tokenTypes, ['at+jwt', 'application/at+jwt']);
  assert.equal(parsed.clockSkewSeconds, 60);
  assert.equal(parsed.rolesClaim, 'roles');
  const bad = [
    { issuer: ISSUER, audiences: [AUDIENCE] },
    { issuer: ISSUER, discovery: true, jwksUri: `${ISSUER}/jwks`, audiences: [AUDIENCE] },
    { issuer: ISSUER, discovery: true, audiences: [] },
    { issuer: ISSUER, discovery: true, audiences: [AUDIENCE], algorithms: ['none'] },
    { issuer: ISSUER, discovery: true, audiences: [AUDIENCE], algorithms: ['HS256'] },
    { issuer: ISSUER, discovery: true, audiences: [AUDIENCE], clockSkewSeconds: 301 },
    { issuer: ISSUER, discovery: true, audiences: [AUDIENCE], tokenTypes: ['dpop+jwt'] },
    { issuer: 'not a url', discovery: true, audiences: [AUDIENCE] },
    { issuer: ISSUER, discovery: true, audiences: [AUDIENCE], extra: 1 },
  ];
  for (const input of bad) assert.equal(OidcIssuerSchema.safeParse(input).success, false, JSON.stringify(input));
  assert.throws(
    () => createUserAuthenticator({ issuers: [{ issuer: ISSUER, discovery: true, audiences: [AUDIENCE] }, { issuer: ISSUER, discovery: true, audiences: [AUDIENCE] }], fetchJson: noFetch, clock: fixedClock(0) }),
    ConfigInvalidError,
  );
  assert.throws(() => createUserAuthenticator({ issuers: [{ issuer: ISSUER, audiences: [AUDIENCE] }], fetchJson: noFetch, clock: fixedClock(0) }), ConfigInvalidError);
});

test('start() rejects an unusable JWKS file', async () => {
  const users = createUserAuthenticator({
    issuers: [{ issuer: ISSUER, jwksFile: JWKS_FILE, audiences: [AUDIENCE] }],
    fetchJson: noFetch,
    clock: fixedClock(0),
    readFile: async () => JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }),
  });
  await assert.rejects(users.start(), (e: unknown) => e instanceof ConfigInvalidError && /private or symmetric/.test(e.description));
  assert.equal(users.status()[0]?.state, 'failed');
});

test('accepts a valid access token and reads the user', async () => {
  const { users, sign } = await setup();
  const user = await users.authenticate(await sign({ roles: ['admin', 'approver', 'root', 7] }));
  assert.equal(user.kind, 'user');
  assert.equal(user.issuer, ISSUER);
  assert.equal(user.subject, 'alice');
  assert.deepEqual(user.roles, ['admin', 'approver']);
  assert.equal(user.expiresAt, NOW_S + 300);
  assert.equal(user.claims.client_id, 'c1');
  assert.deepEqual(users.status(), [{ source: JWKS_FILE, state: 'ok' }]);
  // `application/at+jwt` is the same type (RFC 7515 §4.1.9); audience arrays need one match.
  await users.authenticate(await sign({ aud: ['https://other.test/', AUDIENCE] }, { typ: 'application/AT+JWT' }));
});

test('roles: a space-separated string, a configured claim, a dotted path', async () => {
  const { users, sign } = await setup();
  assert.deepEqual((await users.authenticate(await sign({ roles: 'auditor  admin x' }))).roles, ['admin', 'auditor']);
  assert.deepEqual((await users.authenticate(await sign({ roles: undefined }))).roles, []);
  const custom = await setup({ rolesClaim: 'realm_access.roles' });
  assert.deepEqual((await custom.users.authenticate(await custom.sign({ realm_access: { roles: ['approver'] } }))).roles, ['approver']);
  const uri = await setup({ rolesClaim: 'https://mandate.example/roles' });
  assert.deepEqual((await uri.users.authenticate(await uri.sign({ 'https://mandate.example/roles': ['auditor'] }))).roles, ['auditor']);
});

test('time claims: boundaries with skew, frozen clock', async () => {
  const { users, sign } = await setup({ clockSkewSeconds: 60 });
  // exp: accepted until exp + skew (exclusive), refused from then on.
  await users.authenticate(await sign({ exp: NOW_S - 59 }));
  await refused(users.authenticate(await sign({ exp: NOW_S - 60 })), 'expired');
  await refused(users.authenticate(await sign({ exp: NOW_S - 3600 })), 'expired');
  await refused(users.authenticate(await sign({ exp: undefined })), 'missing_claim');
  await refused(users.authenticate(await sign({ exp: 'tomorrow' as unknown as number })), 'malformed');
  // nbf: accepted up to now + skew.
  await users.authenticate(await sign({ nbf: NOW_S + 60 }));
  await refused(users.authenticate(await sign({ nbf: NOW_S + 61 })), 'not_yet_valid');
  // iat: not in the future beyond the skew.
  await users.authenticate(await sign({ iat: NOW_S + 60 }));
  await refused(users.authenticate(await sign({ iat: NOW_S + 61 })), 'issued_in_future');
  const aged = await setup({ maxTokenAgeSeconds: 600 });
  await aged.users.authenticate(await aged.sign({ iat: NOW_S - 600 }));
  await refused(aged.users.authenticate(await aged.sign({ iat: NOW_S - 661 })), 'too_old');
  await refused(aged.users.authenticate(await aged.sign({ iat: NOW_S + 61 })), 'issued_in_future');
});

test('issuer, audience and subject', async () => {
  const { users, sign } = await setup();
  await refused(users.authenticate(await sign({ iss: 'https://evil.example.test' })), 'untrusted_issuer');
  await refused(users.authenticate(await sign({ iss: `${ISSUER}/` })), 'untrusted_issuer');
  await refused(users.authenticate(await sign({ iss: undefined })), 'untrusted_issuer');
  await refused(users.authenticate(await sign({ aud: 'https://other.test/' })), 'audience');
  await refused(users.authenticate(await sign({ aud: undefined })), 'missing_claim');
  await refused(users.authenticate(await sign({ sub: undefined })), 'missing_claim');
  await refused(users.authenticate(await sign({ sub: '' })), 'missing_claim');
  await refused(users.authenticate(await sign({ sub: ISSUER })), 'not_access_token');
});

test('adversarial: algorithms (none, HMAC with the public key, not allowed for the issuer)', async () => {
  const { users, sign, publicJwk } = await setup({ algorithms: ['ES256'] });
  const unsecured = new UnsecuredJWT({ iss: ISSUER, sub: 'alice', aud: AUDIENCE, exp: NOW_S + 300 }).encode();
  await refused(users.authenticate(unsecured), 'algorithm', unsecured);
  // alg none with typ and a forged empty signature segment.
  const noneTyped = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${unsecured.split('.')[1]}.`;
  await refused(users.authenticate(noneTyped), 'algorithm', noneTyped);
  const noneUpper = `${Buffer.from(JSON.stringify({ alg: 'NONE', typ: 'at+jwt' })).toString('base64url')}.${unsecured.split('.')[1]}.c2ln`;
  await refused(users.authenticate(noneUpper), 'algorithm');
  // Algorithm confusion: HS256 keyed with the issuer's public key material.
  const hmacKey = new TextEncoder().encode(JSON.stringify(publicJwk));
  const confused = await sign({}, { alg: 'HS256' }, hmacKey);
  await refused(users.authenticate(confused), 'algorithm', confused);
  // RS256 is a real asymmetric algorithm but not in this issuer's allowlist.
  const rsa = await generateKeyPair('RS256');
  await refused(users.authenticate(await sign({}, { alg: 'RS256' }, rsa.privateKey)), 'algorithm');
});

test('adversarial: keys smuggled through jwk, jku, x5u, x5c, kid; crit', async () => {
  const { users, sign, attacker } = await setup();
  const attackerJwk = await exportJWK(attacker.publicKey);
  const cases: Array<Partial<JWTHeaderParameters>> = [
    { jwk: attackerJwk },
    { jku: 'https://evil.example.test/jwks' },
    { x5u: 'https://evil.example.test/cert.pem' },
    { x5c: ['MIIBszCCAVmgAwIBAgIUQ'] },
  ];
  for (const header of cases) {
    const token = await sign({}, header, attacker.privateKey);
    const e = await refused(users.authenticate(token), 'forbidden_header', token);
    assert.match(e.description, /not accepted/);
  }
  const critical = await new SignJWT({ iss: ISSUER, sub: 'alice', aud: AUDIENCE, exp: NOW_S + 300 })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt', crit: ['urn:x'], 'urn:x': true })
    .sign(attacker.privateKey, { crit: { 'urn:x': true } });
  await refused(users.authenticate(critical), 'forbidden_header', critical);
  // The issuer's kid with the attacker's key: the signature fails.
  await refused(users.authenticate(await sign({}, { kid: 'k1' }, attacker.privateKey)), 'signature');
  // Injected kids match nothing.
  for (const kid of ['../../../../dev/null', "' OR '1'='1", 'k1\u0000', 'k'.repeat(200)]) {
    await refused(users.authenticate(await sign({}, { kid }, attacker.privateKey)), 'unknown_key');
  }
  await refused(users.authenticate(await sign({}, { kid: 'k'.repeat(300) }, attacker.privateKey)), 'malformed');
});

test('adversarial: bad, truncated and missing signatures; malformed segments; JWE; size', async () => {
  const { users, sign } = await setup();
  const good = await sign();
  const [h, p, s = ''] = good.split('.');
  const flipped = `${h}.${p}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
  await refused(users.authenticate(flipped), 'signature', flipped);
  await refused(users.authenticate(`${h}.${p}.${s.slice(0, 20)}`), 'signature');
  await refused(users.authenticate(`${h}.${p}.`), 'malformed');
  // Payload swapped under a valid signature.
  const otherPayload = Buffer.from(JSON.stringify({ iss: ISSUER, sub: 'mallory', aud: AUDIENCE, exp: NOW_S + 300 })).toString('base64url');
  await refused(users.authenticate(`${h}.${otherPayload}.${s}`), 'signature');
  for (const token of ['', 'abc', 'a.b', `${h}.${p}`, `${h}.${p}.${s}.x`, `${h}.${p}.${s}+/`, `!!.${p}.${s}`, `${Buffer.from('not json').toString('base64url')}.${p}.${s}`, `${h}.${Buffer.from('[1]').toString('base64url')}.${s}`]) {
    await refused(users.authenticate(token), 'malformed');
  }
  await refused(users.authenticate(`${Buffer.from(JSON.stringify({ typ: 'at+jwt' })).toString('base64url')}.${p}.${s}`), 'malformed');
  const jwe = await new CompactEncrypt(new TextEncoder().encode(good)).setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM', cty: 'JWT' }).encrypt((await generateKeyPair('ECDH-ES')).publicKey);
  await refused(users.authenticate(jwe), 'encrypted', jwe);
  await refused(users.authenticate(await sign({ pad: 'x'.repeat(17 * 1024) })), 'too_large');
});

test('adversarial: token-type confusion (ID token, DPoP proof, logout token, SET, assertion, untyped)', async () => {
  const { users, sign, attacker } = await setup();
  // An ID token: typ JWT (or none), aud = the client, nonce / at_hash.
  await refused(users.authenticate(await sign({ aud: AUDIENCE, nonce: 'n' }, { typ: 'JWT' })), 'token_type');
  await refused(users.authenticate(await sign({ nonce: 'n' }, { typ: undefined })), 'token_type');
  // Even typed at+jwt, or with typ JWT allowed by the operator, ID token claims are refused.
  await refused(users.authenticate(await sign({ nonce: 'n' })), 'id_token');
  await refused(users.authenticate(await sign({ at_hash: 'x' })), 'id_token');
  const lax = await setup({ tokenTypes: ['at+jwt', 'JWT'] });
  await lax.users.authenticate(await lax.sign({}, { typ: 'JWT' }));
  await refused(lax.users.authenticate(await lax.sign({ c_hash: 'x' }, { typ: 'JWT' })), 'id_token');
  await refused(lax.users.authenticate(await lax.sign({ events: { 'http://schemas.openid.net/event/backchannel-logout': {} } }, { typ: 'JWT' })), 'not_access_token');
  await refused(lax.users.authenticate(await lax.sign({ htm: 'POST', htu: 'https://x' }, { typ: 'JWT' })), 'not_access_token');
  // A DPoP proof (typ dpop+jwt with its public jwk).
  const proof = await new SignJWT({ htm: 'POST', htu: 'https://mandate.example.test/token', jti: 'p1', iat: NOW_S })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(attacker.publicKey) })
    .sign(attacker.privateKey);
  const e = await refused(users.authenticate(proof), 'token_type', proof);
  assert.match(e.description, /DPoP proof/);
  await refused(users.authenticate(await sign({}, { typ: 'logout+jwt' })), 'token_type');
  await refused(users.authenticate(await sign({}, { typ: 'secevent+jwt' })), 'token_type');
  await refused(users.authenticate(await sign({}, { typ: 'application/secevent+jwt' })), 'token_type');
  await refused(users.authenticate(await sign({}, { typ: 'client-authentication+jwt' })), 'token_type');
  await refused(users.authenticate(await sign({}, { typ: 'JWT' })), 'token_type');
});

test('an issuer whose keys cannot be loaded fails closed with 503 and says why', async () => {
  let fail = true;
  const clock = fixedClock(NOW_S * 1000);
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const fetchJson: FetchJson = async () => {
    if (fail) throw new Error('down');
    return { json: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1' }] }, headers: new Headers() };
  };
  const users = createUserAuthenticator({ issuers: [{ issuer: ISSUER, jwksUri: `${ISSUER}/jwks`, audiences: [AUDIENCE] }], fetchJson, clock });
  await users.start();
  assert.equal(users.status()[0]?.state, 'failed');
  const token = await new SignJWT({ iss: ISSUER, sub: 'alice', aud: AUDIENCE, exp: NOW_S + 300 }).setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' }).sign(privateKey);
  await assert.rejects(users.authenticate(token), (e: unknown) => e instanceof KeysUnavailableError && e.status === 503);
  fail = false;
  clock.advance(30_000);
  assert.equal((await users.authenticate(token)).subject, 'alice');
  assert.equal(users.status()[0]?.state, 'ok');
});

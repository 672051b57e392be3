import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, generateSecret } from 'jose';
import type { CryptoKey, JWK, JWSHeaderParameters, JWTPayload } from 'jose';
import { InvalidDpopProofError, StoreUnavailableError, UseDpopNonceError } from '../core/errors.ts';
import { fixedClock } from '../core/ports.ts';
import { accessTokenHash, createDpopVerifier, normalizeHtu } from './dpop.ts';
import type { DpopRequestContext } from './dpop.ts';
import { memoryReplayCache } from './workload-test-fixtures.ts';

const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);
const NOW_S = NOW / 1000;
const URL_TOKEN = 'https://mandate.example/token';

interface Holder {
  privateKey: CryptoKey;
  jwk: JWK;
  jkt: string;
  alg: string;
}

async function holder(alg = 'ES256'): Promise<Holder> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { privateKey, jwk, jkt: await calculateJwkThumbprint(jwk), alg };
}

let counter = 0;
async function proof(
  h: Holder,
  claims: Partial<JWTPayload> & Record<string, unknown> = {},
  header: Partial<JWSHeaderParameters> & Record<string, unknown> = {},
  key: CryptoKey | Uint8Array = h.privateKey,
): Promise<string> {
  const payload = { jti: `jti-${++counter}-${Math.random()}`, htm: 'POST', htu: URL_TOKEN, iat: NOW_S, ...claims };
  for (const k of Object.keys(payload)) if ((payload as Record<string, unknown>)[k] === undefined) delete (payload as Record<string, unknown>)[k];
  const hdr = { alg: h.alg, typ: 'dpop+jwt', jwk: h.jwk, ...header };
  for (const k of Object.keys(hdr)) if ((hdr as Record<string, unknown>)[k] === undefined) delete (hdr as Record<string, unknown>)[k];
  return new SignJWT(payload).setProtectedHeader(hdr as JWSHeaderParameters & { alg: string }).sign(key);
}

function setup(extra: Partial<Parameters<typeof createDpopVerifier>[0]> = {}) {
  const clock = fixedClock(NOW);
  const replay = memoryReplayCache({ now: clock.now });
  const verifier = createDpopVerifier({ replay, clock, ...extra });
  return { clock, replay, verifier };
}

const tokenCtx: DpopRequestContext = { method: 'POST', url: URL_TOKEN, site: 'token' };

test('normalizeHtu follows RFC 9449 §4.3 / RFC 3986 normalisation', () => {
  assert.equal(normalizeHtu('HTTPS://Mandate.EXAMPLE:443/token?x=1#f'), 'https://mandate.example/token');
  assert.equal(normalizeHtu('http://mandate.example:80/a/./b/../c'), 'http://mandate.example/a/c');
  assert.equal(normalizeHtu('https://mandate.example:8443/%7euser/%2f'), 'https://mandate.example:8443/~user/%2F');
  assert.equal(normalizeHtu('https://mandate.example'), 'https://mandate.example/');
  assert.equal(normalizeHtu('https://u:p@mandate.example/'), undefined);
  assert.equal(normalizeHtu('ftp://mandate.example/'), undefined);
  assert.equal(normalizeHtu('/token'), undefined);
});

test('a valid proof verifies and yields the key thumbprint', async () => {
  const { verifier } = setup();
  for (const alg of ['ES256', 'EdDSA', 'PS256', 'RS256']) {
    const h = await holder(alg);
    const r = await verifier.verify(await proof(h), tokenCtx);
    assert.equal(r.jkt, h.jkt);
  }
  const h = await holder();
  // htu compared after normalisation; the request URL's query is ignored.
  await verifier.verify(await proof(h, { htu: 'HTTPS://MANDATE.example:443/token' }), { ...tokenCtx, url: 'https://mandate.example/token?x=1' });
  // one header value in an array is fine
  await verifier.verify([await proof(h)], tokenCtx);
  assert.equal(verifier.nonceMode, 'off');
  assert.throws(() => verifier.nonce(), TypeError);
});

test('resource access: ath and the bound key are checked', async () => {
  const { verifier } = setup();
  const h = await holder();
  const other = await holder();
  const at = 'eyJhbGciOiJFUzI1NiJ9.access.token';
  const ctx: DpopRequestContext = { method: 'GET', url: 'https://api.example/mcp', accessToken: at, expectedJkt: h.jkt, site: 'resource' };
  const base = { htm: 'GET', htu: 'https://api.example/mcp' };
  await verifier.verify(await proof(h, { ...base, ath: accessTokenHash(at) }), ctx);
  const cases: [string, Promise<string>, RegExp][] = [
    ['no ath', proof(h, base), /no "ath"/],
    ['wrong ath', proof(h, { ...base, ath: accessTokenHash('another token') }), /"ath" does not match/],
    ['wrong key (jkt mismatch)', proof(other, { ...base, ath: accessTokenHash(at) }), /key other than/],
  ];
  for (const [name, p, re] of cases) {
    await assert.rejects(verifier.verify(await p, ctx), (err: unknown) => {
      assert.ok(err instanceof InvalidDpopProofError, name);
      assert.equal(err.status, 401);
      assert.equal(err.site, 'resource');
      assert.match(err.description, re, name);
      assert.match(err.wwwAuthenticate() ?? '', /^DPoP error="invalid_dpop_proof"/);
      return true;
    }, name);
  }
});

test('adversarial proofs are refused with invalid_dpop_proof', async () => {
  const { verifier, clock } = setup();
  const h = await holder();
  const attacker = await holder();
  const { privateKey: rsaPriv, publicKey: rsaPub } = await generateKeyPair('RS256', { extractable: true });
  const rsaJwk = await exportJWK(rsaPub);
  const good = await proof(h);
  const [gh, gp, gs] = good.split('.') as [string, string, string];
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const privateJwk = await exportJWK(h.privateKey);
  const hmacKeyFromPublic = new TextEncoder().encode(JSON.stringify(h.jwk));
  const secret = await generateSecret('HS256');
  const cases: [string, unknown, RegExp][] = [
    ['missing', undefined, /required/],
    ['empty', '', /required/],
    ['two headers (array)', [good, good], /exactly one/],
    ['two headers (joined)', `${good}, ${good}`, /exactly one/],
    ['empty array', [], /required/],
    ['not a JWS', 'abc', /compact JWS/],
    ['alg none', `${enc({ alg: 'none', typ: 'dpop+jwt', jwk: h.jwk })}.${gp}.`, /compact JWS/],
    ['alg none with a signature', `${enc({ alg: 'none', typ: 'dpop+jwt', jwk: h.jwk })}.${gp}.${gs}`, /algorithm/],
    ['HS256 keyed with the public jwk', await proof(h, {}, { alg: 'HS256' }, hmacKeyFromPublic), /algorithm/],
    ['HS256 with an oct jwk', await proof(h, {}, { alg: 'HS256', jwk: { kty: 'oct', k: 'c2VjcmV0' } as unknown as JWK }, secret), /algorithm/],
    ['ES512 not in the allowlist', await holder('ES512').then((x) => proof(x)), /algorithm/],
    ['typ JWT', await proof(h, {}, { typ: 'JWT' }), /typ/],
    ['typ missing', await proof(h, {}, { typ: undefined }), /typ/],
    ['typ at+jwt', await proof(h, {}, { typ: 'at+jwt' }), /typ/],
    ['no jwk', await proof(h, {}, { jwk: undefined }), /no "jwk"/],
    ['private jwk', await proof(h, {}, { jwk: privateJwk }), /private key/],
    ['jku smuggling', await proof(attacker, {}, { jku: 'https://evil.example/jwks' }), /"jku"/],
    ['x5u smuggling', await proof(attacker, {}, { x5u: 'https://evil.example/c.pem' }), /"x5u"/],
    ['x5c smuggling', await proof(attacker, {}, { x5c: ['AAAA'] }), /"x5c"/],
    ['kid pointing elsewhere, signed by another key', await proof(h, {}, { kid: 'registered-key' }, attacker.privateKey), /signature/],
    ['jwk of the victim, signed by the attacker', await proof(h, {}, {}, attacker.privateKey), /signature/],
    ['jwk key type does not fit alg', await proof(h, {}, { alg: 'RS256', jwk: h.jwk }, rsaPriv), /could not be verified|signature/],
    ['RSA jwk with ES256', await proof({ ...h, jwk: rsaJwk }, {}, {}, h.privateKey), /could not be verified|signature/],
    ['crit', `${enc({ alg: 'ES256', typ: 'dpop+jwt', jwk: h.jwk, crit: ['b64'], b64: true })}.${gp}.${gs}`, /crit/],
    ['tampered payload', `${gh}.${enc({ jti: 'x', htm: 'POST', htu: URL_TOKEN, iat: NOW_S })}.${gs}`, /signature/],
    ['truncated signature', `${gh}.${gp}.${gs.slice(0, 30)}`, /signature|could not/],
    ['wrong htm', await proof(h, { htm: 'GET' }), /"htm"/],
    ['lowercase htm', await proof(h, { htm: 'post' }), /"htm"/],
    ['wrong htu path', await proof(h, { htu: 'https://mandate.example/other' }), /"htu"/],
    ['wrong htu host', await proof(h, { htu: 'https://evil.example/token' }), /"htu"/],
    ['htu scheme differs', await proof(h, { htu: 'http://mandate.example/token' }), /"htu"/],
    ['htu not a URL', await proof(h, { htu: 'token' }), /"htu"/],
    ['no jti', await proof(h, { jti: undefined }), /required claim/],
    ['no htm', await proof(h, { htm: undefined }), /required claim/],
    ['no iat', await proof(h, { iat: undefined }), /required claim/],
    ['huge jti', await proof(h, { jti: 'x'.repeat(300) }), /"jti"/],
    ['stale iat', await proof(h, { iat: NOW_S - 66 }), /too old/],
    ['future iat', await proof(h, { iat: NOW_S + 6 }), /future/],
  ];
  for (const [name, p, re] of cases) {
    await assert.rejects(verifier.verify(p as string, tokenCtx), (err: unknown) => {
      assert.ok(err instanceof InvalidDpopProofError, `${name}: ${String(err)}`);
      assert.equal(err.status, 400);
      assert.equal(err.wwwAuthenticate(), undefined);
      assert.match(err.description, re, name);
      if (typeof p === 'string' && p.length > 20) assert.ok(!err.description.includes(p), 'never echoes the proof');
      return true;
    }, name);
  }
  // Boundaries: exactly maxAge + skew old is accepted, exactly skew ahead too.
  await verifier.verify(await proof(h, { iat: NOW_S - 65 }), tokenCtx);
  await verifier.verify(await proof(h, { iat: NOW_S + 5 }), tokenCtx);
  clock.set(NOW);
});

test('a proof is single-use; a refused proof does not burn its jti', async () => {
  const { verifier, clock } = setup();
  const h = await holder();
  const p = await proof(h, { jti: 'fixed' });
  await assert.rejects(verifier.verify(p, { ...tokenCtx, method: 'GET' }), /"htm"/);
  await verifier.verify(p, tokenCtx);
  await assert.rejects(verifier.verify(p, tokenCtx), (err: unknown) => err instanceof InvalidDpopProofError && /already used/.test(err.description));
  // Still refused later (too old by then anyway).
  clock.advance(30_000);
  await assert.rejects(verifier.verify(p, tokenCtx), /already used/);
  // The same jti from another key is another proof.
  const other = await holder();
  await verifier.verify(await proof(other, { jti: 'fixed', iat: NOW_S + 30 }), tokenCtx);
});

test('a replay cache that cannot tell fails closed', async () => {
  const clock = fixedClock(NOW);
  const verifier = createDpopVerifier({
    clock,
    replay: {
      use: async () => {
        throw new StoreUnavailableError('store down');
      },
    },
  });
  await assert.rejects(verifier.verify(await proof(await holder()), tokenCtx), StoreUnavailableError);
});

test('server nonces: required, stateless, shared across nodes, current and previous window', async () => {
  const secret = randomBytes(32);
  const a = setup({ nonce: { secret, required: true, windowSeconds: 300 } });
  const b = setup({ nonce: { secret, required: true, windowSeconds: 300 } });
  const h = await holder();
  assert.equal(a.verifier.nonceMode, 'required');

  // Missing nonce: use_dpop_nonce with a fresh nonce.
  let nonce = '';
  await assert.rejects(a.verifier.verify(await proof(h), tokenCtx), (err: unknown) => {
    assert.ok(err instanceof UseDpopNonceError);
    assert.equal(err.status, 400);
    nonce = String(err.extra?.dpopNonce);
    assert.equal(nonce, a.verifier.nonce());
    return true;
  });
  // Another node with the same secret accepts it.
  await b.verifier.verify(await proof(h, { nonce }), tokenCtx);
  await a.verifier.verify(await proof(h, { nonce }), tokenCtx);
  // Next window: previous nonce still good; two windows later: stale.
  a.clock.advance(300_000);
  await a.verifier.verify(await proof(h, { nonce, iat: NOW_S + 300 }), tokenCtx);
  a.clock.advance(300_000);
  await assert.rejects(a.verifier.verify(await proof(h, { nonce, iat: NOW_S + 600 }), { ...tokenCtx, site: 'resource' }), (err: unknown) => {
    assert.ok(err instanceof UseDpopNonceError);
    assert.equal(err.status, 401);
    assert.match(err.wwwAuthenticate() ?? '', /error="use_dpop_nonce"/);
    assert.notEqual(err.extra?.dpopNonce, nonce);
    return true;
  });
  // A nonce from a node with another secret is refused.
  const c = setup({ nonce: { secret: randomBytes(32), required: true } });
  await assert.rejects(c.verifier.verify(await proof(h, { nonce: b.verifier.nonce() }), tokenCtx), UseDpopNonceError);
  await assert.rejects(c.verifier.verify(await proof(h, { nonce: 'x'.repeat(43) }), tokenCtx), UseDpopNonceError);
  await assert.rejects(c.verifier.verify(await proof(h, { nonce: 42 }), tokenCtx), UseDpopNonceError);

  // Optional nonces: absent is fine, a bad one is refused.
  const o = setup({ nonce: { secret, required: false } });
  await o.verifier.verify(await proof(h), tokenCtx);
  await assert.rejects(o.verifier.verify(await proof(h, { nonce: 'bogus' }), tokenCtx), UseDpopNonceError);
});

test('configuration mistakes are TypeErrors', () => {
  const clock = fixedClock(NOW);
  const replay = memoryReplayCache();
  assert.throws(() => createDpopVerifier({ replay, clock, algorithms: ['HS256'] }), TypeError);
  assert.throws(() => createDpopVerifier({ replay, clock, algorithms: ['none'] }), TypeError);
  assert.throws(() => createDpopVerifier({ replay, clock, algorithms: [] }), TypeError);
  assert.throws(() => createDpopVerifier({ replay, clock, nonce: { secret: new Uint8Array(8), required: true } }), TypeError);
  assert.throws(() => createDpopVerifier({ replay, clock, maxAgeSeconds: 0 }), TypeError);
});

test('the DPoP challenge lists the configured algorithms (RFC 9449 §7.1 algs), not a fixed list', async () => {
  const { verifier } = setup({ algorithms: ['ES256'] });
  const h = await holder();
  const ctx: DpopRequestContext = { method: 'GET', url: 'https://api.example/mcp', accessToken: 'a.b.c', expectedJkt: h.jkt, site: 'resource' };
  await assert.rejects(verifier.verify(await proof(h, { htm: 'GET', htu: 'https://api.example/mcp' }), ctx), (err: unknown) => {
    assert.ok(err instanceof InvalidDpopProofError);
    assert.match(err.wwwAuthenticate() ?? '', /algs="ES256"$/);
    return true;
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT, base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWTPayload, type JWSHeaderParameters } from 'jose';
import { fixedClock } from '../core/ports.ts';
import { generateKek, kekFromBase64url } from './key-encryption.ts';
import { createKeyManager, createMemorySigningKeyStore, type KeyManager } from './signing-keys.ts';
import { inspectToken, renderTokenInspection, type InspectTokenOptions, type TokenInspection } from './inspect-token.ts';

const NOW_MS = Date.UTC(2025, 5, 1, 9, 0, 0);
const NOW = NOW_MS / 1000;
const ISSUER = 'https://mandate.example';
const TOLERANCE = 5;
const CAP = 600;

interface Fixture {
  keys: KeyManager;
  options: InspectTokenOptions;
  /** Builds and signs a mandate; overrides replace or (with undefined) remove members. */
  mint(claims?: Record<string, unknown>, header?: Record<string, unknown>, key?: CryptoKey): Promise<string>;
}

let fixture: Promise<Fixture> | undefined;

function setup(): Promise<Fixture> {
  fixture ??= createFixture();
  return fixture;
}

async function createFixture(): Promise<Fixture> {
  {
    const clock = fixedClock(NOW_MS);
    const keys = createKeyManager({
      store: createMemorySigningKeyStore(),
      kek: await kekFromBase64url(generateKek(), 'test'),
      clock,
      overlapMs: (CAP + TOLERANCE) * 1000,
    });
    await keys.ensureActiveKey();
    const options: InspectTokenOptions = { jwks: await keys.jwks(), issuer: ISSUER, clock, maxLifetimeSeconds: CAP, clockToleranceSeconds: TOLERANCE };
    const mint: Fixture['mint'] = async (claims = {}, header = {}, key) => {
      const signer = await keys.signer();
      const payload: Record<string, unknown> = {
        iss: ISSUER,
        sub: 'alice@example.com',
        aud: 'https://crm.example/mcp',
        client_id: 'agent-sales',
        act: { sub: 'agent-sales', act: { sub: 'agent-planner' } },
        scope: 'crm.read crm.write',
        jti: 'm-1',
        iat: NOW - 60,
        exp: NOW - 60 + 300,
        cnf: { jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' },
        task: 'task-42',
        on_behalf_of: 'user',
        sub_id: { format: 'iss_sub', iss: 'https://idp.example', sub: 'alice@example.com' },
        ...claims,
      };
      for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
      const protectedHeader: Record<string, unknown> = { alg: signer.alg, kid: signer.kid, typ: 'at+jwt', ...header };
      for (const [k, v] of Object.entries(protectedHeader)) if (v === undefined) delete protectedHeader[k];
      return new SignJWT(payload as JWTPayload).setProtectedHeader(protectedHeader as JWSHeaderParameters & { alg: string }).sign(key ?? signer.key);
    };
    return { keys, options, mint };
  }
}

function line(inspection: TokenInspection, name: string) {
  const found = [...inspection.header, ...inspection.claims].find((l) => l.name === name);
  assert.ok(found, `a line for ${name}`);
  return found;
}

function refusedNames(inspection: TokenInspection): string[] {
  return [...inspection.header, ...inspection.claims].filter((l) => l.status === 'refused').map((l) => l.name);
}

test('a good mandate is accepted and every claim is explained; the signature is never printed', async () => {
  const { mint, options } = await setup();
  const token = await mint();
  const r = await inspectToken(token, options);
  assert.equal(r.verdict, 'accepted', r.reasons.join('; '));
  assert.deepEqual(r.reasons, []);
  assert.equal(r.signature.status, 'valid');
  assert.equal(r.trusted, true);
  assert.deepEqual(refusedNames(r), []);
  for (const name of ['alg', 'typ', 'kid', 'iss', 'sub', 'aud', 'client_id', 'act', 'scope', 'jti', 'iat', 'exp', 'lifetime', 'cnf']) {
    assert.equal(line(r, name).status, 'ok', name);
  }
  assert.match(line(r, 'act').explanation, /2 actors/);
  assert.match(line(r, 'act').explanation, /agent-planner → agent-sales → alice@example.com/);
  assert.match(line(r, 'act[1]').explanation, /current actor/);
  assert.match(line(r, 'act[2]').value ?? '', /agent-planner/);
  assert.match(line(r, 'cnf').explanation, /DPoP/);
  assert.equal(line(r, 'lifetime').value, '300 s');
  assert.equal(line(r, 'task').status, 'info');

  const text = renderTokenInspection(r);
  assert.match(text, /^verdict: ACCEPTED/);
  const signatureSegment = token.split('.')[2] as string;
  assert.ok(!text.includes(signatureSegment), 'the signature is not printed');
  assert.ok(!JSON.stringify(r).includes(signatureSegment), 'nor is it in the structured result');
  assert.ok(!text.includes(token));

  const bearer = await inspectToken(`Bearer ${token}\n`, options);
  assert.equal(bearer.verdict, 'accepted', 'an Authorization header value is accepted as input');
});

test('a bearer mandate without cnf is accepted and said to be bearer; a client_credentials token says no user is behind it', async () => {
  const { mint, options } = await setup();
  const r = await inspectToken(await mint({ cnf: undefined, act: undefined, sub: 'agent-sales', task: undefined, on_behalf_of: 'none' }), options);
  assert.equal(r.verdict, 'accepted', r.reasons.join('; '));
  assert.equal(line(r, 'cnf').status, 'info');
  assert.match(line(r, 'cnf').explanation, /bearer/);
  assert.match(line(r, 'act').explanation, /no user is behind it/);
  assert.equal(line(r, 'on_behalf_of').status, 'info');
});

test('a forged mandate (another key under Mandate\'s kid) is refused: the signature does not verify', async () => {
  const { mint, options } = await setup();
  const { privateKey } = await generateKeyPair('EdDSA');
  const r = await inspectToken(await mint({}, {}, privateKey), options);
  assert.equal(r.verdict, 'refused');
  assert.equal(r.signature.status, 'invalid');
  assert.equal(r.trusted, false);
  assert.match(r.summary, /forged or altered/);
  assert.match(renderTokenInspection(r), /warning: the signature did not verify/);
});

test('an altered payload under a genuine signature is refused', async () => {
  const { mint, options } = await setup();
  const [h, p, s] = (await mint()).split('.') as [string, string, string];
  const claims = JSON.parse(new TextDecoder().decode(base64url.decode(p))) as Record<string, unknown>;
  claims.scope = 'crm.read crm.write crm.admin';
  const r = await inspectToken([h, base64url.encode(JSON.stringify(claims)), s].join('.'), options);
  assert.equal(r.verdict, 'refused');
  assert.equal(r.signature.status, 'invalid');
});

test('expiry boundaries: expired beyond the tolerance is refused, within it accepted', async () => {
  const { mint, options } = await setup();
  const cases: [string, number, 'accepted' | 'refused'][] = [
    ['expired 1 s beyond the tolerance', NOW - TOLERANCE - 1, 'refused'],
    ['expiring exactly at now − tolerance', NOW - TOLERANCE, 'refused'],
    ['expired 1 s ago, within the tolerance', NOW - 1, 'accepted'],
    ['expiring in 1 s', NOW + 1, 'accepted'],
  ];
  for (const [label, exp, verdict] of cases) {
    const r = await inspectToken(await mint({ iat: exp - 300, exp }), options);
    assert.equal(r.verdict, verdict, label);
    assert.equal(r.signature.status, 'valid', `${label}: the signature itself is fine`);
    assert.equal(line(r, 'exp').status, verdict === 'accepted' ? 'ok' : 'refused', label);
    if (verdict === 'refused') assert.match(r.summary, /^refused: exp: expired/);
  }
});

test('a mandate from another issuer is refused (issuer confusion) though its signature verifies', async () => {
  const { mint, options } = await setup();
  const r = await inspectToken(await mint({ iss: 'https://evil.example' }), options);
  assert.equal(r.verdict, 'refused');
  assert.equal(r.signature.status, 'valid');
  assert.deepEqual(refusedNames(r), ['iss']);
  assert.match(line(r, 'iss').explanation, /issuer confusion/);
});

test('alg "none" is refused and the token is not trusted', async () => {
  const { options } = await setup();
  const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt' }));
  const payload = base64url.encode(JSON.stringify({ iss: ISSUER, sub: 'alice', aud: 'x', exp: NOW + 60, iat: NOW, jti: 'j', client_id: 'c', scope: 's' }));
  const r = await inspectToken(`${header}.${payload}.`, options);
  assert.equal(r.verdict, 'refused');
  assert.equal(r.trusted, false);
  assert.equal(line(r, 'alg').status, 'refused');
  assert.match(line(r, 'alg').explanation, /unsecured/);
  assert.equal(line(r, 'signature').status, 'refused');
  assert.equal(line(r, 'kid').status, 'refused');
});

test('token-type confusion: a DPoP proof, an ID token or a typ-less JWT is never a mandate', async () => {
  const { mint, options } = await setup();
  for (const typ of ['dpop+jwt', 'JWT', undefined]) {
    const r = await inspectToken(await mint({}, { typ }), options);
    assert.equal(r.verdict, 'refused', String(typ));
    assert.equal(r.signature.status, 'valid');
    assert.deepEqual(refusedNames(r), ['typ']);
  }
  const ok = await inspectToken(await mint({}, { typ: 'application/at+jwt' }), options);
  assert.equal(ok.verdict, 'accepted', 'the media type form of at+jwt is the same type (RFC 9068 §2.1)');
});

test('keys smuggled through the header, unknown kids, algorithm confusion and critical extensions are refused', async () => {
  const { keys, mint, options } = await setup();
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  const smuggled = await inspectToken(await mint({}, { alg: 'ES256', kid: undefined, jwk }, privateKey), options);
  assert.equal(smuggled.verdict, 'refused');
  assert.ok(refusedNames(smuggled).includes('jwk'));
  assert.ok(refusedNames(smuggled).includes('kid'));
  assert.notEqual(smuggled.signature.status, 'valid', 'a key in the header is never used to verify');

  const jku = await inspectToken(await mint({}, { jku: 'https://evil.example/jwks' }), options);
  assert.equal(jku.verdict, 'refused');
  assert.deepEqual(refusedNames(jku), ['jku']);

  const unknownKid = await inspectToken(await mint({}, { alg: 'ES256', kid: await calculateJwkThumbprint(jwk) }, privateKey), options);
  assert.equal(unknownKid.verdict, 'refused');
  assert.match(line(unknownKid, 'kid').explanation, /not in Mandate's JWKS/);
  assert.equal(unknownKid.signature.status, 'not-checked');

  const mandateKid = options.jwks.keys[0]?.kid as string;
  const confused = await inspectToken(await mint({}, { alg: 'ES256', kid: mandateKid }, privateKey), options);
  assert.equal(confused.verdict, 'refused');
  assert.match(line(confused, 'kid').explanation, /algorithm confusion/);

  const signer = await keys.signer();
  const critToken = await new SignJWT({ iss: ISSUER, sub: 'alice', aud: 'x', exp: NOW + 60, iat: NOW, jti: 'j', client_id: 'c', scope: 's' })
    .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt', crit: ['mandate-ext'], 'mandate-ext': true })
    .sign(signer.key, { crit: { 'mandate-ext': true } });
  const crit = await inspectToken(critToken, options);
  assert.equal(crit.verdict, 'refused');
  assert.deepEqual(refusedNames(crit), ['crit']);
  assert.equal(line(crit, 'mandate-ext').status, 'info');
});

test('lifetime beyond the cap, audience widening, missing claims and forged actor chains are refused', async () => {
  const { mint, options } = await setup();
  const cases: [string, Record<string, unknown>, string][] = [
    ['lifetime over the cap', { iat: NOW - 10, exp: NOW - 10 + CAP + 1 }, 'lifetime'],
    ['two audiences', { aud: ['https://crm.example/mcp', 'https://hr.example/mcp'] }, 'aud'],
    ['no audience', { aud: undefined }, 'aud'],
    ['no scope', { scope: undefined }, 'scope'],
    ['empty scope', { scope: ' ' }, 'scope'],
    ['no jti', { jti: undefined }, 'jti'],
    ['no client_id', { client_id: undefined }, 'client_id'],
    ['issued in the future', { iat: NOW + 60, exp: NOW + 120 }, 'iat'],
    ['not valid yet', { nbf: NOW + 60 }, 'nbf'],
    ['actor cycle', { act: { sub: 'agent-a', act: { sub: 'agent-b', act: { sub: 'agent-a' } } } }, 'act'],
    ['actor that is the user', { act: { sub: 'alice@example.com' } }, 'act'],
    ['chain too deep', { act: { sub: 'a1', act: { sub: 'a2', act: { sub: 'a3', act: { sub: 'a4', act: { sub: 'a5', act: { sub: 'a6' } } } } } } }, 'act'],
    ['actor without sub', { act: { iss: ISSUER } }, 'act'],
    ['actor not an object', { act: 'agent-sales' }, 'act'],
    ['cnf.jkt malformed', { cnf: { jkt: 'short' } }, 'cnf'],
    ['task not a string', { task: 42 }, 'task'],
    ['machine-only yet delegated', { on_behalf_of: 'none' }, 'on_behalf_of'],
    ['sub_id not iss_sub', { sub_id: { format: 'email', email: 'a@b' } }, 'sub_id'],
  ];
  for (const [label, claims, name] of cases) {
    const r = await inspectToken(await mint(claims), options);
    assert.equal(r.verdict, 'refused', label);
    assert.ok(refusedNames(r).includes(name), `${label}: ${name} refused (got ${refusedNames(r).join(', ')})`);
  }
  const other = await inspectToken(await mint(), { ...options, expectedAudience: 'https://hr.example/mcp' });
  assert.deepEqual(refusedNames(other), ['aud']);
});

test('malformed input gets ERR_INVALID_TOKEN saying what is wrong, never quoting the token', async () => {
  const { options } = await setup();
  const json = (v: unknown) => base64url.encode(JSON.stringify(v));
  const cases: [string, string, RegExp][] = [
    ['empty', '', /empty/],
    ['one segment', 'secret-looking-garbage', /1 segment/],
    ['two segments', 'abc.def', /2 segments/],
    ['a JWE', 'aaa.bbb.ccc.ddd.eee', /encrypted JWT/],
    ['not base64url', 'a+b.c/d.e=f', /outside base64url/],
    ['header not JSON', `${base64url.encode('not json')}.${json({})}.sig`, /header/],
    ['payload not JSON', `${json({ alg: 'EdDSA' })}.${base64url.encode('not json')}.sig`, /payload/],
    ['payload an array', `${json({ alg: 'EdDSA' })}.${json([1, 2])}.sig`, /payload/],
    ['too long', `${json({ alg: 'EdDSA' })}.${'A'.repeat(20_000)}.sig`, /characters long/],
  ];
  for (const [label, token, message] of cases) {
    await assert.rejects(inspectToken(token, options), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'ERR_INVALID_TOKEN', label);
      assert.match(error.message, message, label);
      if (token.length > 3) assert.ok(!error.message.includes(token), `${label}: the token is not quoted`);
      return true;
    });
  }
});

test('claim values that could mislead a terminal are escaped and long values shortened', async () => {
  const { mint, options } = await setup();
  const r = await inspectToken(await mint({ sub: 'alice\u001b[31m\u202eevil', note: 'x'.repeat(500) }), options);
  const text = renderTokenInspection(r);
  assert.ok(!text.includes('\u001b'));
  assert.ok(!text.includes('\u202e'));
  assert.match(text, /\\u001b/);
  assert.ok((line(r, 'note').value ?? '').length <= 120);
  assert.equal(line(r, 'note').status, 'info');
});

test('a mandate signed before a rotation still inspects as accepted while its key is retiring', async () => {
  const { keys, mint, options } = await createFixture();
  const token = await mint();
  await keys.rotate();
  const r = await inspectToken(token, { ...options, jwks: await keys.jwks() });
  assert.equal(r.verdict, 'accepted', r.reasons.join('; '));
});

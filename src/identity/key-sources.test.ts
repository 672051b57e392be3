import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT, type JWK } from 'jose';
import { ConfigInvalidError } from '../core/errors.ts';
import { fixedClock } from '../core/ports.ts';
import { checkKeySet, createRemoteKeySource, createStaticKeySource, KeysUnavailableError, UnknownKeyError } from './key-sources.ts';
import { OutboundFetchError } from './outbound.ts';
import type { FetchJson } from './types.ts';

const T0 = Date.UTC(2030, 0, 1);

interface TestKey {
  kid: string;
  publicJwk: JWK;
  sign(claims?: Record<string, unknown>, kid?: string): Promise<string>;
}

async function makeKey(kid: string): Promise<TestKey> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return {
    kid,
    publicJwk,
    sign: (claims = {}, headerKid = kid) =>
      new SignJWT({ sub: 'alice', ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: headerKid, typ: 'at+jwt' })
        .setIssuedAt(Math.floor(T0 / 1000))
        .setExpirationTime(Math.floor(T0 / 1000) + 3600)
        .sign(privateKey),
  };
}

/** A fetch whose answer the test sets, counting requests. */
function scriptedFetch(): { fetchJson: FetchJson; calls: () => number; answer: (next: () => Promise<unknown>) => void } {
  let calls = 0;
  let next: () => Promise<unknown> = async () => {
    throw new OutboundFetchError('network', 'outbound request failed: the peer could not be reached');
  };
  return {
    fetchJson: async () => {
      calls += 1;
      return { json: await next(), headers: new Headers() };
    },
    calls: () => calls,
    answer: (n) => {
      next = n;
    },
  };
}

const verify = (token: string, getKey: Parameters<typeof jwtVerify>[1]) =>
  jwtVerify(token, getKey as never, { algorithms: ['ES256'], currentDate: new Date(T0) });

test('checkKeySet: bounds, private material, non-signing keys', async () => {
  const a = await makeKey('a');
  assert.equal(checkKeySet({ keys: [a.publicJwk] }, 50).ok, true);
  assert.deepEqual(checkKeySet(null, 50), { ok: false, reason: 'not a JWKS (expected an object with a keys array)' });
  assert.equal(checkKeySet({ keys: 'x' }, 50).ok, false);
  const many = checkKeySet({ keys: Array.from({ length: 51 }, (_, i) => ({ ...a.publicJwk, kid: String(i) })) }, 50);
  assert.equal(many.ok, false);
  assert.match(!many.ok ? many.reason : '', /51 keys, more than the limit of 50/);
  assert.match(JSON.stringify(checkKeySet({ keys: [a.publicJwk, { ...a.publicJwk, kid: 'p', d: 'secret' }] }, 50)), /private or symmetric/);
  assert.match(JSON.stringify(checkKeySet({ keys: [a.publicJwk, { kty: 'oct', k: 'c2VjcmV0' }] }, 50)), /private or symmetric/);
  const mixed = checkKeySet(
    {
      keys: [
        a.publicJwk,
        { ...a.publicJwk, kid: 'enc', use: 'enc' },
        { ...a.publicJwk, kid: 'ops', key_ops: ['encrypt'] },
        { ...a.publicJwk, kid: 'hs', alg: 'HS256' },
        { kty: 'weird', kid: 'w' },
      ],
    },
    50,
  );
  assert.ok(mixed.ok);
  assert.deepEqual(
    mixed.jwks.keys.map((k) => k.kid),
    ['a'],
  );
  assert.equal(mixed.dropped, 4);
  assert.equal(checkKeySet({ keys: [{ ...a.publicJwk, use: 'enc' }] }, 50).ok, false);
});

test('static key source: verifies with the listed key, refuses unknown kids and bad sets', async () => {
  const a = await makeKey('a');
  const b = await makeKey('b');
  const source = createStaticKeySource({ keys: [a.publicJwk] }, { source: '/etc/mandate/idp.jwks' });
  assert.equal((await verify(await a.sign(), source.getKey)).payload.sub, 'alice');
  await assert.rejects(verify(await b.sign(), source.getKey), (e: unknown) => e instanceof UnknownKeyError && e.code === 'ERR_UNKNOWN_KEY');
  assert.deepEqual(source.status(), { source: '/etc/mandate/idp.jwks', state: 'ok' });
  assert.throws(
    () => createStaticKeySource({ keys: [{ ...a.publicJwk, d: 'x' }] }, { source: 'f.jwks' }),
    (e: unknown) => e instanceof ConfigInvalidError && /private or symmetric/.test(e.description),
  );
});

test('remote key source: concurrent first uses coalesce into one fetch', async () => {
  const a = await makeKey('a');
  const net = scriptedFetch();
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  net.answer(async () => {
    await gate;
    return { keys: [a.publicJwk] };
  });
  const source = createRemoteKeySource({ url: 'https://idp.example/jwks', fetchJson: net.fetchJson, clock: fixedClock(T0) });
  assert.equal(source.status().state, 'failed');
  const token = await a.sign();
  const all = Promise.all(Array.from({ length: 10 }, () => verify(token, source.getKey)));
  release();
  const results = await all;
  assert.equal(results.length, 10);
  assert.equal(net.calls(), 1);
  assert.deepEqual(source.status(), { source: 'https://idp.example/jwks', state: 'ok', fetchedAt: T0 });
});

test('remote key source: an unknown kid refetches at most once per cooldown; a rotation is picked up', async () => {
  const a = await makeKey('a');
  const b = await makeKey('b');
  const clock = fixedClock(T0);
  const net = scriptedFetch();
  net.answer(async () => ({ keys: [a.publicJwk] }));
  const source = createRemoteKeySource({ url: 'https://idp.example/jwks', fetchJson: net.fetchJson, clock, cooldownMs: 30_000 });
  await verify(await a.sign(), source.getKey);
  assert.equal(net.calls(), 1);

  // Within the first cooldown after the initial fetch: unknown kids are refused without any fetch.
  const forged = await b.sign({}, 'no-such-kid');
  for (let i = 0; i < 5; i += 1) await assert.rejects(verify(forged, source.getKey), UnknownKeyError);
  assert.equal(net.calls(), 1);

  // After the cooldown: one refetch for the first unknown kid, none for the next ones.
  clock.advance(30_000);
  for (let i = 0; i < 5; i += 1) await assert.rejects(verify(forged, source.getKey), UnknownKeyError);
  assert.equal(net.calls(), 2);

  // The issuer rotates to b; after the cooldown the new kid triggers one refetch and verifies.
  net.answer(async () => ({ keys: [b.publicJwk, a.publicJwk] }));
  clock.advance(30_000);
  assert.equal((await verify(await b.sign(), source.getKey)).payload.sub, 'alice');
  assert.equal(net.calls(), 3);
  await verify(await a.sign(), source.getKey);
  assert.equal(net.calls(), 3);
});

test('remote key source: unreachable endpoint serves cached keys until max age, then fails closed', async () => {
  const a = await makeKey('a');
  const clock = fixedClock(T0);
  const net = scriptedFetch();
  net.answer(async () => ({ keys: [a.publicJwk] }));
  const source = createRemoteKeySource({
    url: 'https://idp.example/jwks',
    fetchJson: net.fetchJson,
    clock,
    cooldownMs: 30_000,
    refreshMs: 600_000,
    maxAgeMs: 3_600_000,
  });
  await source.refresh();
  assert.equal(source.status().state, 'ok');
  const token = await a.sign();

  net.answer(async () => {
    throw new OutboundFetchError('network', 'outbound request failed: the peer could not be reached');
  });
  clock.advance(600_000);
  await verify(token, source.getKey); // served from cache; a background refresh is attempted
  await source.refresh();
  const stale = source.status();
  assert.equal(stale.state, 'stale');
  assert.match(stale.reason ?? '', /could not be fetched: outbound request failed/);
  assert.equal(stale.fetchedAt, T0);

  clock.set(T0 + 3_600_000);
  await verify(token, source.getKey); // exactly at max age: still served
  clock.set(T0 + 3_600_001);
  await assert.rejects(verify(token, source.getKey), (e: unknown) => {
    assert.ok(e instanceof KeysUnavailableError);
    assert.equal(e.status, 503);
    assert.equal(e.code, 'ERR_KEYS_UNAVAILABLE');
    assert.match(e.description, /older than their maximum age/);
    return true;
  });
  const failed = source.status();
  assert.equal(failed.state, 'failed');
  assert.match(failed.reason ?? '', /older than their maximum age .*could not be fetched/);

  // The endpoint comes back: after the cooldown the next use refetches and recovers.
  net.answer(async () => ({ keys: [a.publicJwk] }));
  clock.advance(30_000);
  await verify(token, source.getKey);
  assert.equal(source.status().state, 'ok');
});

test('remote key source: failures are retried at most once per cooldown; refused sets never replace good ones', async () => {
  const a = await makeKey('a');
  const clock = fixedClock(T0);
  const net = scriptedFetch();
  const source = createRemoteKeySource({ url: 'https://idp.example/jwks', fetchJson: net.fetchJson, clock, cooldownMs: 30_000, maxKeys: 3 });
  const token = await a.sign();
  await assert.rejects(verify(token, source.getKey), KeysUnavailableError);
  await assert.rejects(verify(token, source.getKey), KeysUnavailableError);
  assert.equal(net.calls(), 1);
  assert.equal(source.status().state, 'failed');

  // Oversized set: refused whole.
  net.answer(async () => ({ keys: Array.from({ length: 4 }, (_, i) => ({ ...a.publicJwk, kid: `k${i}` })) }));
  clock.advance(30_000);
  await assert.rejects(verify(token, source.getKey), (e: unknown) => e instanceof KeysUnavailableError && /more than the limit of 3/.test(e.description));
  assert.equal(net.calls(), 2);

  net.answer(async () => ({ keys: [a.publicJwk] }));
  clock.advance(30_000);
  await verify(token, source.getKey);
  assert.equal(net.calls(), 3);

  // A set with private material later on is refused; the good cached keys keep serving, status says why.
  net.answer(async () => ({ keys: [{ ...a.publicJwk, d: 'leaked' }] }));
  clock.advance(30_000);
  await source.refresh();
  await verify(token, source.getKey);
  const status = source.status();
  assert.equal(status.state, 'stale');
  assert.match(status.reason ?? '', /private or symmetric key material/);
  assert.ok(!JSON.stringify(status).includes('leaked'));
});

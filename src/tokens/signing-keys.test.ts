import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT, calculateJwkThumbprint, createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { fixedClock } from '../core/ports.ts';
import { decryptPrivateJwk, generateKek, kekFromBase64url, type Kek } from './key-encryption.ts';
import {
  createKeyManager,
  createMemorySigningKeyStore,
  overlapForTokenLifetime,
  renderKeySummaries,
  type KeyManager,
  type SigningAlgorithm,
  type SigningKeyStore,
} from './signing-keys.ts';

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const ISSUER = 'https://mandate.example';
const LIFETIME_S = 300;
const SKEW_S = 30;
const OVERLAP_MS = overlapForTokenLifetime(LIFETIME_S, SKEW_S);
const REFRESH_MS = 30_000;

async function newKek(): Promise<Kek> {
  return kekFromBase64url(generateKek(), 'test');
}

function manager(store: SigningKeyStore, kek: Kek, clock: ReturnType<typeof fixedClock>, alg?: SigningAlgorithm): KeyManager {
  return createKeyManager({ store, kek, clock, overlapMs: OVERLAP_MS, refreshIntervalMs: REFRESH_MS, ...(alg ? { alg } : {}) });
}

async function issue(keys: KeyManager, nowMs: number, jti = 'j1'): Promise<string> {
  const { kid, alg, key } = await keys.signer();
  return new SignJWT({ client_id: 'agent-1', scope: 'read' })
    .setProtectedHeader({ alg, kid, typ: 'at+jwt' })
    .setIssuer(ISSUER)
    .setSubject('alice')
    .setAudience('https://tool.example')
    .setJti(jti)
    .setIssuedAt(Math.floor(nowMs / 1000))
    .setExpirationTime(Math.floor(nowMs / 1000) + LIFETIME_S)
    .sign(key);
}

async function verifyWith(keys: KeyManager, token: string, atMs: number) {
  return jwtVerify(token, createLocalJWKSet(await keys.jwks()), {
    issuer: ISSUER,
    currentDate: new Date(atMs),
    clockTolerance: SKEW_S,
    algorithms: ['EdDSA', 'ES256'],
  });
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'];

test('overlapForTokenLifetime is the longest lifetime plus the clock tolerance, in ms', () => {
  assert.equal(overlapForTokenLifetime(300, 30), 330_000);
  assert.throws(() => overlapForTokenLifetime(0, 30), TypeError);
  assert.throws(() => overlapForTokenLifetime(300, -1), TypeError);
});

test('createKeyManager refuses a missing overlap and an unknown alg as programming errors', async () => {
  const kek = await newKek();
  const store = createMemorySigningKeyStore();
  const clock = fixedClock(T0);
  assert.throws(() => createKeyManager({ store, kek, clock, overlapMs: 0 }), TypeError);
  assert.throws(() => createKeyManager({ store, kek, clock, overlapMs: 1000, alg: 'RS256' as SigningAlgorithm }), TypeError);
});

test('first start generates exactly one key; later starts and other nodes reuse it', async () => {
  const kek = await newKek();
  const store = createMemorySigningKeyStore();
  const clock = fixedClock(T0);
  const a = manager(store, kek, clock);
  await a.ensureActiveKey();
  await a.ensureActiveKey();
  const b = manager(store, kek, clock);
  await b.ensureActiveKey();
  const rows = store.rows();
  assert.equal(rows.length, 1);
  const row = rows[0]!;
  assert.equal(row.state, 'active');
  assert.equal(row.alg, 'EdDSA');
  assert.equal(row.createdAt, T0);
  assert.equal(row.activatedAt, T0);
  assert.equal(row.kid, await calculateJwkThumbprint(row.publicJwk, 'sha256'), 'kid is the RFC 7638 thumbprint');
  assert.equal((await a.signer()).kid, row.kid);
  assert.equal((await b.signer()).kid, row.kid);
});

test('signer() before any key exists fails closed with ERR_NO_SIGNING_KEY', async () => {
  const keys = manager(createMemorySigningKeyStore(), await newKek(), fixedClock(T0));
  await assert.rejects(keys.signer(), { code: 'ERR_NO_SIGNING_KEY' });
  assert.deepEqual(await keys.jwks(), { keys: [] });
});

for (const alg of ['EdDSA', 'ES256'] as const) {
  test(`${alg}: the stored row and the JWKS hold no private part; a signed mandate verifies against the JWKS`, async () => {
    const kek = await newKek();
    const store = createMemorySigningKeyStore();
    const keys = manager(store, kek, fixedClock(T0), alg);
    await keys.ensureActiveKey();
    const row = store.rows()[0]!;
    const privateJwk = await decryptPrivateJwk(kek, row.kid, row.encryptedPrivateJwk);
    assert.equal(typeof privateJwk.d, 'string');
    const stored = JSON.stringify(store.rows());
    assert.ok(!stored.includes(privateJwk.d as string), 'the private part is stored encrypted only');
    for (const m of PRIVATE_MEMBERS) assert.ok(!(m in row.publicJwk), `no ${m} in the stored public JWK`);

    const jwks = await keys.jwks();
    assert.equal(jwks.keys.length, 1);
    const published = jwks.keys[0]!;
    for (const m of PRIVATE_MEMBERS) assert.ok(!(m in published), `no ${m} in the JWKS`);
    assert.ok(!JSON.stringify(jwks).includes(privateJwk.d as string));
    assert.equal(published.kid, row.kid);
    assert.equal(published.alg, alg);
    assert.equal(published.use, 'sig');
    assert.deepEqual(Object.keys(published).sort(), (alg === 'EdDSA' ? ['alg', 'crv', 'kid', 'kty', 'use', 'x'] : ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']));

    const signer = await keys.signer();
    assert.equal(signer.alg, alg);
    assert.equal(signer.key.extractable, false, 'the private key in memory is not extractable');
    assert.equal(await keys.signer(), signer, 'the decrypted signer is cached');
    const token = await issue(keys, T0);
    assert.equal(decodeProtectedHeader(token).kid, row.kid);
    const { payload } = await verifyWith(keys, token, T0 + 1000);
    assert.equal(payload.sub, 'alice');
  });
}

test('rotation: the old key keeps verifying its mandates until retireAt, then leaves the JWKS', async () => {
  const kek = await newKek();
  const store = createMemorySigningKeyStore();
  const clock = fixedClock(T0);
  const keys = manager(store, kek, clock);
  await keys.ensureActiveKey();
  const oldKid = (await keys.signer()).kid;

  clock.set(T0 + 60_000);
  const before = await issue(keys, clock.now(), 'before');
  const { newKid, retiringKid } = await keys.rotate();
  assert.equal(retiringKid, oldKid);
  assert.notEqual(newKid, oldKid);
  const retireAt = clock.now() + OVERLAP_MS + REFRESH_MS;

  assert.equal((await keys.signer()).kid, newKid, 'the new key signs at once');
  assert.deepEqual((await keys.jwks()).keys.map((k) => k.kid), [newKid, oldKid], 'both published, active first');
  const after = await issue(keys, clock.now(), 'after');
  assert.equal(decodeProtectedHeader(after).kid, newKid);

  // The pre-rotation mandate verifies until its own expiry (with tolerance), which is before retireAt.
  const expMs = (T0 + 60_000) + LIFETIME_S * 1000;
  assert.ok(expMs + SKEW_S * 1000 <= retireAt);
  await verifyWith(keys, before, expMs + SKEW_S * 1000 - 1000);
  const summary = await keys.list();
  assert.deepEqual(
    summary.map((k) => [k.kid, k.state, k.signing, k.published, k.retireAt]),
    [
      [newKid, 'active', true, true, undefined],
      [oldKid, 'retiring', false, true, retireAt],
    ],
  );

  // One millisecond before retireAt the old key is still published; at retireAt it is gone.
  clock.set(retireAt - 1);
  await keys.refresh();
  assert.deepEqual((await keys.jwks()).keys.map((k) => k.kid), [newKid, oldKid]);
  clock.set(retireAt);
  assert.deepEqual((await keys.jwks()).keys.map((k) => k.kid), [newKid], 'effective at once, before the store is updated');
  await keys.refresh();
  assert.equal(store.rows().find((r) => r.kid === oldKid)?.state, 'retired');
  assert.deepEqual((await keys.list()).map((k) => [k.kid, k.state, k.published]), [
    [newKid, 'active', true],
    [oldKid, 'retired', false],
  ]);
  await assert.rejects(
    jwtVerify(before, createLocalJWKSet(await keys.jwks()), { issuer: ISSUER, currentDate: new Date(T0 + 60_000) }),
    { code: 'ERR_JWKS_NO_MATCHING_KEY' },
    'a retired key verifies nothing, whatever the clock',
  );
  await verifyWith(keys, after, T0 + 61_000);
});

test('two managers on one store agree after refresh', async () => {
  const kek = await newKek();
  const store = createMemorySigningKeyStore();
  const clock = fixedClock(T0);
  const a = manager(store, kek, clock);
  const b = manager(store, kek, clock);
  await a.ensureActiveKey();
  await b.ensureActiveKey();
  const first = (await b.signer()).kid;

  clock.advance(1000);
  const { newKid } = await a.rotate();
  assert.equal((await b.signer()).kid, first, 'b has not re-read the store yet (within its refresh interval)');
  const fromB = await issue(b, clock.now(), 'from-b');
  await verifyWith(a, fromB, clock.now() + 1000); // still published by a, as retiring

  await b.refresh();
  assert.equal((await b.signer()).kid, newKid);
  assert.deepEqual(await b.jwks(), await a.jwks());
  assert.deepEqual(await b.list(), await a.list());

  // Without an explicit refresh, b re-reads once its view is older than the refresh interval.
  clock.advance(1000);
  const { newKid: third } = await a.rotate();
  clock.advance(REFRESH_MS);
  assert.equal((await b.signer()).kid, third);
});

test('a node verifying a mandate signed with a key it has not seen re-reads the store (once per cooldown)', async () => {
  const kek = await newKek();
  const store = createMemorySigningKeyStore();
  const clock = fixedClock(T0);
  const a = manager(store, kek, clock);
  const b = manager(store, kek, clock);
  await a.ensureActiveKey();
  await b.ensureActiveKey();
  await a.rotate();
  const token = await issue(a, clock.now());
  const { payload } = await jwtVerify(token, (h) => b.getVerificationKey(h), { issuer: ISSUER, currentDate: new Date(clock.now()) });
  assert.equal(payload.jti, 'j1');

  await assert.rejects(b.getVerificationKey({ alg: 'EdDSA', kid: 'unknown-kid' }), { code: 'ERR_INVALID_TOKEN' });
  await assert.rejects(b.getVerificationKey({ alg: 'EdDSA' }), { code: 'ERR_INVALID_TOKEN' });
  const kid = decodeProtectedHeader(token).kid as string;
  await assert.rejects(b.getVerificationKey({ alg: 'ES256', kid }), { code: 'ERR_INVALID_TOKEN', message: /alg does not match/ });
});

test('two nodes generating on first start at once converge on one signer and keep both keys published', async () => {
  const kek = await newKek();
  const store = createMemorySigningKeyStore();
  const clock = fixedClock(T0);
  const a = manager(store, kek, clock);
  const b = manager(store, kek, clock);
  // Both read an empty store before either inserts.
  await Promise.all([a.ensureActiveKey(), b.ensureActiveKey()]);
  await a.refresh();
  await b.refresh();
  const rows = store.rows();
  assert.equal(rows.length, 2);
  assert.deepEqual(rows.map((r) => r.state).sort(), ['active', 'retiring']);
  assert.equal((await a.signer()).kid, (await b.signer()).kid);
  assert.equal((await a.jwks()).keys.length, 2, 'the demoted key may have signed: it stays published for the overlap');
});

test('the wrong KEK fails closed with ERR_KEK_MISMATCH naming the needed KEK; the public JWKS still serves', async () => {
  const kekA = await newKek();
  const store = createMemorySigningKeyStore();
  const clock = fixedClock(T0);
  await manager(store, kekA, clock).ensureActiveKey();
  const other = manager(store, await newKek(), clock);
  await assert.rejects(other.ensureActiveKey(), { code: 'ERR_KEK_MISMATCH' }, 'startup fails on a wrong KEK');
  assert.equal(store.rows().length, 1, 'a KEK mismatch never leads to generating a replacement key');
  await assert.rejects(other.signer(), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'ERR_KEK_MISMATCH');
    assert.ok(error.message.includes(kekA.fingerprint));
    return true;
  });
  assert.equal((await other.jwks()).keys.length, 1);
});

test('encrypted private keys swapped between two rows are refused', async () => {
  const kek = await newKek();
  const store = createMemorySigningKeyStore();
  const clock = fixedClock(T0);
  const keys = manager(store, kek, clock);
  await keys.ensureActiveKey();
  await keys.rotate();
  const [r1, r2] = store.rows();
  const swapped = createMemorySigningKeyStore([
    { ...r1!, encryptedPrivateJwk: r2!.encryptedPrivateJwk },
    { ...r2!, encryptedPrivateJwk: r1!.encryptedPrivateJwk },
  ]);
  await assert.rejects(manager(swapped, kek, clock).signer(), { code: 'ERR_ENCRYPTED_KEY_INVALID' });
});

test('a stored row with a private member in its public JWK, or a kid that is not its thumbprint, is refused', async () => {
  const kek = await newKek();
  const store = createMemorySigningKeyStore();
  const clock = fixedClock(T0);
  await manager(store, kek, clock).ensureActiveKey();
  const row = store.rows()[0]!;
  const d = (await decryptPrivateJwk(kek, row.kid, row.encryptedPrivateJwk)).d;

  const leaky = manager(createMemorySigningKeyStore([{ ...row, publicJwk: { ...row.publicJwk, d } }]), kek, clock);
  await assert.rejects(leaky.jwks(), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'ERR_SIGNING_KEY_INVALID');
    assert.ok(!error.message.includes(d as string));
    return true;
  });
  await assert.rejects(leaky.signer(), { code: 'ERR_SIGNING_KEY_INVALID' });

  const relabelled = manager(createMemorySigningKeyStore([{ ...row, kid: 'not-the-thumbprint' }]), kek, clock);
  await assert.rejects(relabelled.jwks(), { code: 'ERR_SIGNING_KEY_INVALID', message: /thumbprint/ });
});

test('a retired row that is damaged does not stop signing', async () => {
  const kek = await newKek();
  const store = createMemorySigningKeyStore();
  const clock = fixedClock(T0);
  const keys = manager(store, kek, clock);
  await keys.ensureActiveKey();
  await keys.rotate();
  clock.advance(OVERLAP_MS + REFRESH_MS);
  await keys.refresh();
  const rows = store.rows().map((r) => (r.state === 'retired' ? { ...r, publicJwk: { kty: 'junk' } } : r));
  const again = manager(createMemorySigningKeyStore(rows), kek, clock);
  assert.equal((await again.jwks()).keys.length, 1);
  await again.signer();
});

test('the memory store keeps rows JSON-plain and refuses duplicate inserts and unknown updates', async () => {
  const kek = await newKek();
  const store = createMemorySigningKeyStore();
  await manager(store, kek, fixedClock(T0)).ensureActiveKey();
  const row = store.rows()[0]!;
  assert.deepEqual(JSON.parse(JSON.stringify(row)), row);
  await assert.rejects(store.insert(row));
  await assert.rejects(store.update('absent', { state: 'retired' }));
});

test('renderKeySummaries shows kid, alg, state, JWKS presence and times, and nothing secret', async () => {
  const kek = await newKek();
  const store = createMemorySigningKeyStore();
  const clock = fixedClock(T0);
  const keys = manager(store, kek, clock);
  assert.match(renderKeySummaries([]), /no signing keys/);
  await keys.ensureActiveKey();
  const { newKid, retiringKid } = await keys.rotate();
  const text = renderKeySummaries(await keys.list());
  const lines = text.trimEnd().split('\n');
  assert.equal(lines.length, 3);
  assert.match(lines[0]!, /^KID\s+ALG\s+STATE\s+IN JWKS\s+ACTIVATED\s+RETIRES$/);
  assert.match(lines[1]!, new RegExp(`^${newKid}\\s+EdDSA\\s+active \\(signing\\)\\s+yes\\s+2025-01-01T12:00:00.000Z\\s+-$`));
  assert.match(lines[2]!, new RegExp(`^${retiringKid}\\s+EdDSA\\s+retiring\\s+yes`));
  for (const row of store.rows()) assert.ok(!text.includes(row.encryptedPrivateJwk));
});

test('an explicit refresh sees writes made before it even while another read is in flight', async () => {
  const kek = await newKek();
  const store = createMemorySigningKeyStore();
  const clock = fixedClock(T0);
  const a = manager(store, kek, clock);
  const b = manager(store, kek, clock);
  await a.ensureActiveKey();
  await b.ensureActiveKey();
  const inFlight = b.refresh();
  const { newKid } = await a.rotate();
  await Promise.all([inFlight, b.refresh()]);
  assert.equal((await b.signer()).kid, newKid);
});

test('every key change hands the store an audit event built from public facts, with the row it records', async () => {
  const kek = await newKek();
  const store = createMemorySigningKeyStore();
  const clock = fixedClock(T0);
  const keys = createKeyManager({
    store,
    kek,
    clock,
    overlapMs: OVERLAP_MS,
    refreshIntervalMs: REFRESH_MS,
    auditEvent: (change) => ({ type: 'admin', change }),
  });
  await keys.ensureActiveKey();
  const first = (await keys.signer()).kid;
  clock.advance(1000);
  const { newKid } = await keys.rotate({ by: 'admin@example.com' });
  clock.set(T0 + 1000 + OVERLAP_MS + REFRESH_MS);
  await keys.refresh();
  const retireAt = T0 + 1000 + OVERLAP_MS + REFRESH_MS;
  assert.deepEqual(store.events(), [
    { type: 'admin', change: { action: 'created', kid: first, alg: 'EdDSA', reason: 'first_start', atMs: T0 } },
    { type: 'admin', change: { action: 'created', kid: newKid, alg: 'EdDSA', reason: 'rotation', atMs: T0 + 1000, by: 'admin@example.com' } },
    { type: 'admin', change: { action: 'retiring', kid: first, alg: 'EdDSA', reason: 'rotation', atMs: T0 + 1000, retireAt, by: 'admin@example.com' } },
    { type: 'admin', change: { action: 'retired', kid: first, alg: 'EdDSA', reason: 'overlap_ended', atMs: retireAt } },
  ]);
  for (const row of store.rows()) assert.ok(!JSON.stringify(store.events()).includes(row.encryptedPrivateJwk));
});

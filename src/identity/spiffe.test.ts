import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSecret, exportJWK, generateKeyPair } from 'jose';
import { fixedClock } from '../core/ports.ts';
import {
  createBundleSource,
  parseSpiffeBundle,
  parseSpiffeId,
  peerCertificateChain,
  SpiffeBundleError,
  SvidVerificationError,
  verifyJwtSvid,
  verifyX509Svid,
} from './spiffe.ts';
import type { SpiffeBundleSource } from './spiffe.ts';
import { bundleDoc, makeCa, makeJwtAuthority, makeLeaf, signJwt, x509 } from './workload-test-fixtures.ts';
import type { FetchJson } from './types.ts';

const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);
const NOW_S = NOW / 1000;
const HOUR = 3600_000;
const before = new Date(NOW - HOUR);
const after = new Date(NOW + HOUR);

test('parseSpiffeId accepts valid IDs and refuses every SPIFFE-ID rule violation', () => {
  for (const ok of ['spiffe://example.org', 'spiffe://example.org/ns/prod/sa/agent', 'spiffe://a_b-c.d/A.b-C_9', 'spiffe://1.2.3.4/x']) {
    const r = parseSpiffeId(ok);
    assert.equal(r.ok, true, ok);
  }
  const r = parseSpiffeId('spiffe://example.org/ns/prod');
  assert.deepEqual(r.ok && { ...r.value }, { id: 'spiffe://example.org/ns/prod', trustDomain: 'example.org', path: '/ns/prod' });
  const bad = [
    '',
    'SPIFFE://example.org/a',
    'spiffe:/example.org/a',
    'https://example.org/a',
    'spiffe://Example.org/a',
    'spiffe://example.org:8443/a',
    'spiffe://user@example.org/a',
    'spiffe://example.org/a?x=1',
    'spiffe://example.org/a#frag',
    'spiffe://example.org/a/',
    'spiffe://example.org//a',
    'spiffe://example.org/./a',
    'spiffe://example.org/../a',
    'spiffe://example.org/a%20b',
    'spiffe:///a',
    'spiffe://',
    'spiffe://exa mple.org/a',
    'spiffe://example.org/ü',
    `spiffe://example.org/${'a'.repeat(2048)}`,
  ];
  for (const b of bad) assert.equal(parseSpiffeId(b).ok, false, b);
  assert.equal(parseSpiffeId(42).ok, false);
  assert.equal(parseSpiffeId(undefined).ok, false);
});

test('parseSpiffeBundle reads a valid bundle and refuses malformed ones', async () => {
  const root = await makeCa({ trustDomain: 'example.org', notBefore: before, notAfter: after });
  const a = await makeJwtAuthority('k1');
  const doc = await bundleDoc({ roots: [root], jwtAuthorities: [a], sequence: 7, refreshHint: 60 });
  const b = parseSpiffeBundle('example.org', doc);
  assert.equal(b.sequence, 7);
  assert.equal(b.refreshHintSeconds, 60);
  assert.equal(b.x509Authorities.length, 1);
  assert.deepEqual([...b.jwtAuthorities.keys()], ['k1']);

  const keys = (doc.keys as Record<string, unknown>[]);
  const x509Entry = keys[0] as Record<string, unknown>;
  const jwtEntry = keys[1] as Record<string, unknown>;
  const other = await makeCa({ trustDomain: 'example.org', notBefore: before, notAfter: after });
  const leaf = await makeLeaf({ issuer: root, uris: ['spiffe://example.org/w'], notBefore: before, notAfter: after });
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const privateJwk = await exportJWK(privateKey);
  const cases: [string, unknown][] = [
    ['not an object', []],
    ['no keys', {}],
    ['keys not an array', { keys: {} }],
    ['bad sequence', { keys: [], spiffe_sequence: -1 }],
    ['bad refresh hint', { keys: [], spiffe_refresh_hint: '60' }],
    ['missing use', { keys: [{ ...jwtEntry, use: undefined }] }],
    ['unknown use', { keys: [{ ...jwtEntry, use: 'sig' }] }],
    ['jwt-svid without kid', { keys: [{ ...jwtEntry, kid: undefined }] }],
    ['duplicate kid', { keys: [jwtEntry, jwtEntry] }],
    ['private key', { keys: [{ ...privateJwk, use: 'jwt-svid', kid: 'p' }] }],
    ['symmetric key', { keys: [{ kty: 'oct', k: 'AAAA', use: 'jwt-svid', kid: 's' }] }],
    ['x509 with two certs', { keys: [{ ...x509Entry, x5c: [root.der.toString('base64'), other.der.toString('base64')] }] }],
    ['x509 without x5c', { keys: [{ ...x509Entry, x5c: undefined }] }],
    ['x509 not a CA', { keys: [{ ...(await exportJWK(leaf.keys.publicKey as never)), use: 'x509-svid', x5c: [leaf.der.toString('base64')] }] }],
    ['x509 key does not match cert', { keys: [{ ...x509Entry, x5c: [other.der.toString('base64')] }] }],
    ['x509 garbage cert', { keys: [{ ...x509Entry, x5c: ['AAAA'] }] }],
    ['not a JWK', { keys: [{ kty: 'EC', use: 'jwt-svid', kid: 'x' }] }],
  ];
  for (const [name, bad] of cases) {
    assert.throws(() => parseSpiffeBundle('example.org', bad), SpiffeBundleError, name);
  }
  assert.throws(() => parseSpiffeBundle('Example.org', doc), SpiffeBundleError);
});

test('a fetched bundle is refreshed as spiffe_refresh_hint says, served stale on failure, then refused', async () => {
  const clock = fixedClock(NOW);
  const a1 = await makeJwtAuthority('k1');
  const a2 = await makeJwtAuthority('k2');
  let doc: unknown = await bundleDoc({ jwtAuthorities: [a1], sequence: 1, refreshHint: 60 });
  let fetches = 0;
  let fail = false;
  const fetchJson: FetchJson = async (url) => {
    assert.equal(url, 'https://bundle.example.org/');
    fetches++;
    if (fail) throw new Error('connect ECONNREFUSED');
    return { json: doc, headers: new Headers() };
  };
  const src = createBundleSource({ trustDomain: 'example.org', url: 'https://bundle.example.org/', fetchJson, clock, maxStaleSeconds: 600 });
  assert.equal(src.status().state, 'failed');
  await src.current();
  assert.equal(fetches, 1);
  clock.advance(59_000);
  await src.current();
  assert.equal(fetches, 1, 'not refreshed before the hint');
  doc = await bundleDoc({ jwtAuthorities: [a2], sequence: 2, refreshHint: 60 });
  clock.advance(1_000);
  const b = await src.current();
  assert.equal(fetches, 2, 'refreshed at the hint');
  assert.deepEqual([...b.jwtAuthorities.keys()], ['k2']);
  assert.equal(src.status().state, 'ok');

  // Refresh fails: cached bundle serves (stale) within maxStale, then everything fails closed.
  fail = true;
  clock.advance(61_000);
  await src.current();
  assert.equal(src.status().state, 'stale');
  clock.advance(600_000);
  await assert.rejects(src.current(), SpiffeBundleError);
  assert.equal(src.status().state, 'failed');
  const reason = src.status().reason ?? '';
  assert.doesNotMatch(reason, /ECONNREFUSED/, 'no transport detail in the status reason');

  // Recovery, then a rollback of spiffe_sequence is refused and the newer bundle kept.
  fail = false;
  clock.advance(60_000);
  await src.current();
  assert.equal(src.status().state, 'ok');
  doc = await bundleDoc({ jwtAuthorities: [a1], sequence: 1, refreshHint: 60 });
  clock.advance(61_000);
  const kept = await src.current();
  assert.deepEqual([...kept.jwtAuthorities.keys()], ['k2']);
  assert.equal(src.status().state, 'stale');
  assert.match(src.status().reason ?? '', /spiffe_sequence/);
});

test('an unknown kid refreshes the bundle at most once per cooldown', async () => {
  const clock = fixedClock(NOW);
  const a1 = await makeJwtAuthority('k1');
  const a2 = await makeJwtAuthority('k2');
  let doc: unknown = await bundleDoc({ jwtAuthorities: [a1], refreshHint: 3600 });
  let fetches = 0;
  const fetchJson: FetchJson = async () => {
    fetches++;
    return { json: doc, headers: new Headers() };
  };
  const src = createBundleSource({ trustDomain: 'example.org', url: 'https://b.example.org/', fetchJson, clock });
  await src.current();
  await assert.rejects(src.getKey({ alg: 'ES256', kid: 'nope' }, { payload: '', signature: '' }));
  assert.equal(fetches, 2);
  await assert.rejects(src.getKey({ alg: 'ES256', kid: 'nope' }, { payload: '', signature: '' }));
  assert.equal(fetches, 2, 'cooldown');
  doc = await bundleDoc({ jwtAuthorities: [a1, a2], refreshHint: 3600 });
  clock.advance(30_000);
  await src.getKey({ alg: 'ES256', kid: 'k2' }, { payload: '', signature: '' });
  assert.equal(fetches, 3);
  // alg of the header must suit the key.
  await assert.rejects(src.getKey({ alg: 'RS256', kid: 'k2' }, { payload: '', signature: '' }));
});

test('a bundle file is read through the injected reader and re-read on schedule', async () => {
  const clock = fixedClock(NOW);
  const a1 = await makeJwtAuthority('k1');
  let reads = 0;
  const text = JSON.stringify(await bundleDoc({ jwtAuthorities: [a1], refreshHint: 10 }));
  const src = createBundleSource({
    trustDomain: 'example.org',
    file: '/etc/spire/bundle.json',
    clock,
    readFile: async (p) => {
      assert.equal(p, '/etc/spire/bundle.json');
      reads++;
      return text;
    },
  });
  await src.current();
  clock.advance(10_000);
  await src.current();
  assert.equal(reads, 2);
  assert.equal(src.status().source, '/etc/spire/bundle.json');
  assert.throws(() => createBundleSource({ trustDomain: 'example.org', clock }), TypeError);
  assert.throws(() => createBundleSource({ trustDomain: 'example.org', url: 'https://x/', clock }), TypeError);
});

// ---------------------------------------------------------------------------------------------------------
// JWT-SVID

async function jwtSetup() {
  const clock = fixedClock(NOW);
  const a = await makeJwtAuthority('ka');
  const b = await makeJwtAuthority('kb');
  const bundles = new Map<string, SpiffeBundleSource>([
    ['example.org', createBundleSource({ trustDomain: 'example.org', bundle: await bundleDoc({ jwtAuthorities: [a] }), clock })],
    ['other.org', createBundleSource({ trustDomain: 'other.org', bundle: await bundleDoc({ jwtAuthorities: [b] }), clock })],
  ]);
  const claims = { sub: 'spiffe://example.org/agent', aud: ['https://mandate.example'], exp: NOW_S + 300, iat: NOW_S };
  const opts = { audiences: ['https://mandate.example'], bundles, clock };
  return { clock, a, b, bundles, claims, opts };
}

test('verifyJwtSvid accepts a valid JWT-SVID', async () => {
  const { a, claims, opts } = await jwtSetup();
  const token = await signJwt({ alg: 'ES256', kid: 'ka', typ: 'JWT' }, claims, a.privateKey);
  const v = await verifyJwtSvid(token, opts);
  assert.equal(v.spiffeId.id, 'spiffe://example.org/agent');
  assert.equal(v.spiffeId.trustDomain, 'example.org');
  assert.equal(v.expiresAt, NOW_S + 300);
  const noTyp = await signJwt({ alg: 'ES256', kid: 'ka' }, { ...claims, aud: 'https://mandate.example' }, a.privateKey);
  assert.equal((await verifyJwtSvid(noTyp, opts)).audience[0], 'https://mandate.example');
  const jose = await signJwt({ alg: 'ES256', kid: 'ka', typ: 'JOSE' }, claims, a.privateKey);
  await verifyJwtSvid(jose, opts);
});

test('verifyJwtSvid refuses adversarial JWT-SVIDs', async () => {
  const { a, b, claims, opts, clock } = await jwtSetup();
  const good = await signJwt({ alg: 'ES256', kid: 'ka' }, claims, a.privateKey);
  const [h, p, s] = good.split('.') as [string, string, string];
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const hmacKey = new TextEncoder().encode(JSON.stringify(a.publicJwk));
  const secret = await generateSecret('HS256');
  const attacker = await makeJwtAuthority('ka');
  const cases: [string, string | Promise<string>, RegExp][] = [
    ['alg none', `${enc({ alg: 'none', kid: 'ka' })}.${p}.`, /compact JWS|algorithm/],
    ['alg none with signature', `${enc({ alg: 'none', kid: 'ka' })}.${p}.${s}`, /algorithm/],
    ['HS256 keyed with the public key', signJwt({ alg: 'HS256', kid: 'ka' }, claims, hmacKey), /algorithm/],
    ['HS256', signJwt({ alg: 'HS256', kid: 'ka' }, claims, secret), /algorithm/],
    ['EdDSA not allowed', makeJwtAuthority('ka', 'EdDSA').then((k) => signJwt({ alg: 'EdDSA', kid: 'ka' }, claims, k.privateKey)), /algorithm/],
    ['typ at+jwt', signJwt({ alg: 'ES256', kid: 'ka', typ: 'at+jwt' }, claims, a.privateKey), /typ/],
    ['typ dpop+jwt', signJwt({ alg: 'ES256', kid: 'ka', typ: 'dpop+jwt' }, claims, a.privateKey), /typ/],
    ['embedded jwk', signJwt({ alg: 'ES256', kid: 'ka', jwk: attacker.publicJwk }, claims, attacker.privateKey), /"jwk"/],
    ['jku', signJwt({ alg: 'ES256', kid: 'ka', jku: 'https://evil.example/jwks' }, claims, attacker.privateKey), /"jku"/],
    ['x5u', signJwt({ alg: 'ES256', kid: 'ka', x5u: 'https://evil.example/c.pem' }, claims, attacker.privateKey), /"x5u"/],
    ['x5c', signJwt({ alg: 'ES256', kid: 'ka', x5c: ['AAAA'] }, claims, attacker.privateKey), /"x5c"/],
    ['crit', `${enc({ alg: 'ES256', kid: 'ka', crit: ['exp'], exp: 1 })}.${p}.${s}`, /crit/],
    ['attacker key, same kid', signJwt({ alg: 'ES256', kid: 'ka' }, claims, attacker.privateKey), /signature/],
    ['kid of another trust domain', signJwt({ alg: 'ES256', kid: 'kb' }, claims, b.privateKey), /no registered key/],
    ['no kid', signJwt({ alg: 'ES256' }, claims, a.privateKey), /no registered key/],
    ['tampered payload', `${h}.${enc({ ...claims, sub: 'spiffe://example.org/admin' })}.${s}`, /signature/],
    ['truncated signature', `${h}.${p}.${s.slice(0, 20)}`, /signature|malformed/],
    ['missing signature', `${h}.${p}.`, /compact JWS/],
    ['malformed segment', `${h}!.${p}.${s}`, /compact JWS/],
    ['wrong audience', signJwt({ alg: 'ES256', kid: 'ka' }, { ...claims, aud: ['https://other.example'] }, a.privateKey), /aud/],
    ['no audience', signJwt({ alg: 'ES256', kid: 'ka' }, { ...claims, aud: undefined }, a.privateKey), /aud/],
    ['no exp', signJwt({ alg: 'ES256', kid: 'ka' }, { ...claims, exp: undefined }, a.privateKey), /exp/],
    ['expired', signJwt({ alg: 'ES256', kid: 'ka' }, { ...claims, exp: NOW_S - 10 }, a.privateKey), /expired/],
    ['not a SPIFFE ID', signJwt({ alg: 'ES256', kid: 'ka' }, { ...claims, sub: 'agent' }, a.privateKey), /SPIFFE ID/],
    ['SPIFFE ID with query', signJwt({ alg: 'ES256', kid: 'ka' }, { ...claims, sub: 'spiffe://example.org/a?b' }, a.privateKey), /SPIFFE ID/],
    ['untrusted trust domain', signJwt({ alg: 'ES256', kid: 'ka' }, { ...claims, sub: 'spiffe://evil.org/agent' }, a.privateKey), /not trusted/],
    ['SVID of other.org signed with its own key verifies only against other.org', signJwt({ alg: 'ES256', kid: 'ka' }, { ...claims, sub: 'spiffe://other.org/agent' }, a.privateKey), /no registered key/],
  ];
  for (const [name, tokenP, re] of cases) {
    const token = await tokenP;
    await assert.rejects(verifyJwtSvid(token, opts), (err: unknown) => {
      assert.ok(err instanceof SvidVerificationError, `${name}: ${String(err)}`);
      assert.match(err.message, re, name);
      assert.ok(!err.message.includes(token), 'never echoes the token');
      return true;
    }, name);
  }
  // exp exactly now is still within the default 5 s tolerance; 6 s past is not.
  const edge = await signJwt({ alg: 'ES256', kid: 'ka' }, { ...claims, exp: NOW_S - 6 }, a.privateKey);
  await assert.rejects(verifyJwtSvid(edge, opts), /expired/);
  clock.set(NOW);
});

test('verifyJwtSvid reports an unavailable bundle as such (fail closed)', async () => {
  const clock = fixedClock(NOW);
  const a = await makeJwtAuthority('ka');
  const fetchJson: FetchJson = async () => {
    throw new Error('down');
  };
  const bundles = new Map([['example.org', createBundleSource({ trustDomain: 'example.org', url: 'https://b/', fetchJson, clock })]]);
  const token = await signJwt({ alg: 'ES256', kid: 'ka' }, { sub: 'spiffe://example.org/a', aud: 'x', exp: NOW_S + 60 }, a.privateKey);
  await assert.rejects(verifyJwtSvid(token, { audiences: ['x'], bundles, clock }), (err: unknown) => err instanceof SvidVerificationError && err.reason === 'unavailable');
});

// ---------------------------------------------------------------------------------------------------------
// X.509-SVID

async function x509Setup() {
  const clock = fixedClock(NOW);
  const root = await makeCa({ trustDomain: 'example.org', notBefore: new Date(NOW - 24 * HOUR), notAfter: new Date(NOW + 24 * HOUR) });
  const inter = await makeCa({ trustDomain: 'example.org', parent: root, notBefore: before, notAfter: after, pathLength: 0 });
  const otherRoot = await makeCa({ trustDomain: 'other.org', notBefore: before, notAfter: after });
  const bundles = new Map<string, SpiffeBundleSource>([
    ['example.org', createBundleSource({ trustDomain: 'example.org', bundle: await bundleDoc({ roots: [root] }), clock })],
    ['other.org', createBundleSource({ trustDomain: 'other.org', bundle: await bundleDoc({ roots: [otherRoot] }), clock })],
  ]);
  return { clock, root, inter, otherRoot, bundles };
}

test('verifyX509Svid accepts a valid SVID chain, with or without the root', async () => {
  const { clock, root, inter, bundles } = await x509Setup();
  const leaf = await makeLeaf({ issuer: inter, uris: ['spiffe://example.org/agent'], notBefore: before, notAfter: after });
  const v = await verifyX509Svid([leaf.der, inter.der], { bundles, clock });
  assert.equal(v.spiffeId.id, 'spiffe://example.org/agent');
  assert.equal(v.expiresAt, Math.floor((NOW + HOUR) / 1000));
  await verifyX509Svid([leaf.der, inter.der, root.der], { bundles, clock });
  await verifyX509Svid([leaf.cert.toString('pem'), inter.cert.toString('pem')], { bundles, clock });
  const direct = await makeLeaf({ issuer: root, uris: ['spiffe://example.org/svc'], notBefore: before, notAfter: after });
  await verifyX509Svid([direct.der], { bundles, clock });
  // a DetailedPeerCertificate-shaped chain walks to the root
  const rootPeer = { raw: root.der } as never as { raw: Buffer; issuerCertificate: unknown };
  rootPeer.issuerCertificate = rootPeer;
  const chain = peerCertificateChain({ raw: leaf.der, issuerCertificate: { raw: inter.der, issuerCertificate: rootPeer } } as never);
  assert.equal(chain.length, 3);
  await verifyX509Svid(chain, { bundles, clock });
});

test('verifyX509Svid refuses adversarial chains', async () => {
  const { clock, root, inter, otherRoot, bundles } = await x509Setup();
  const mk = (o: Partial<Parameters<typeof makeLeaf>[0]>) =>
    makeLeaf({ issuer: inter, uris: ['spiffe://example.org/agent'], notBefore: before, notAfter: after, ...o });
  const otherInter = await makeCa({ trustDomain: 'other.org', parent: otherRoot, notBefore: before, notAfter: after });
  const rogueRoot = await makeCa({ trustDomain: 'example.org', notBefore: before, notAfter: after });
  const expiredInter = await makeCa({ trustDomain: 'example.org', parent: root, notBefore: new Date(NOW - 3 * HOUR), notAfter: new Date(NOW - HOUR) });
  const deepInter = await makeCa({ trustDomain: 'example.org', parent: inter, notBefore: before, notAfter: after });
  const cases: [string, Promise<(Buffer | string)[]> | (Buffer | string)[], RegExp][] = [
    ['empty chain', [], /no client certificate/],
    ['garbage', [Buffer.from('not a cert')], /could not be parsed/],
    ['SVID from another trust domain claiming example.org', mk({ issuer: otherInter }).then((l) => [l.der, otherInter.der]), /another trust domain|does not chain to the trust bundle of "example.org"/],
    ['SVID of other.org is not verified with example.org roots', mk({ uris: ['spiffe://other.org/agent'] }).then((l) => [l.der, inter.der]), /another trust domain/],
    ['SVID of other.org signed by the example.org root', mk({ issuer: root, uris: ['spiffe://other.org/agent'] }).then((l) => [l.der]), /does not chain to the trust bundle of "other.org"/],
    ['untrusted trust domain', mk({ issuer: root, uris: ['spiffe://evil.org/agent'] }).then((l) => [l.der]), /not trusted/],
    ['self-made root', mk({ issuer: rogueRoot }).then((l) => [l.der, rogueRoot.der]), /does not chain/],
    ['SVID that is a CA', mk({ ca: true, keyUsage: x509.KeyUsageFlags.digitalSignature }).then((l) => [l.der, inter.der]), /is a CA/],
    ['two URI SANs', mk({ uris: ['spiffe://example.org/a', 'spiffe://example.org/b'] }).then((l) => [l.der, inter.der]), /exactly one URI SAN/],
    ['no URI SAN', mk({ uris: [] }).then((l) => [l.der, inter.der]), /exactly one URI SAN/],
    ['URI SAN not SPIFFE', mk({ uris: ['https://example.org/agent'] }).then((l) => [l.der, inter.der]), /not a valid SPIFFE ID/],
    ['expired SVID', mk({ notBefore: new Date(NOW - 2 * HOUR), notAfter: new Date(NOW - 1000) }).then((l) => [l.der, inter.der]), /expired/],
    ['not yet valid SVID', mk({ notBefore: new Date(NOW + 1000), notAfter: after }).then((l) => [l.der, inter.der]), /not valid yet/],
    ['expired intermediate', mk({ issuer: expiredInter }).then((l) => [l.der, expiredInter.der]), /chain has expired/],
    ['no digitalSignature', mk({ keyUsage: x509.KeyUsageFlags.keyEncipherment }).then((l) => [l.der, inter.der]), /digitalSignature/],
    ['keyCertSign on leaf', mk({ keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign }).then((l) => [l.der, inter.der]), /keyCertSign/],
    ['cRLSign on leaf', mk({ keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.cRLSign }).then((l) => [l.der, inter.der]), /keyCertSign or cRLSign/],
    ['missing intermediate', mk({}).then((l) => [l.der]), /does not chain/],
    ['wrong order', mk({}).then((l) => [l.der, root.der, inter.der]), /chain is broken/],
    ['leaf as intermediate', Promise.all([mk({}), mk({})]).then(([l1, l2]) => [l1.der, l2.der]), /not a CA/],
    ['path length exceeded', mk({ issuer: deepInter }).then((l) => [l.der, deepInter.der, inter.der]), /path length/],
    ['too long', mk({}).then((l) => Array.from({ length: 9 }, () => l.der)), /longer than 8/],
  ];
  for (const [name, chainP, re] of cases) {
    const chain = await chainP;
    await assert.rejects(verifyX509Svid(chain, { bundles, clock }), (err: unknown) => {
      assert.ok(err instanceof SvidVerificationError, `${name}: ${String(err)}`);
      assert.match(err.message, re, name);
      return true;
    }, name);
  }
  // The validity boundaries: notAfter exactly now is valid; one ms later it is not.
  const edge = await mk({ notAfter: new Date(NOW) });
  await verifyX509Svid([edge.der, inter.der], { bundles, clock });
  clock.advance(1000);
  await assert.rejects(verifyX509Svid([edge.der, inter.der], { bundles, clock }), /expired/);
});

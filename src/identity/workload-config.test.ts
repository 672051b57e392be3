import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientAuthConfigSchema, DpopConfigSchema, SpiffeConfigSchema, workloadConfigWarnings } from './workload-config.ts';
import { bundleDoc, makeJwtAuthority } from './workload-test-fixtures.ts';

test('defaults: SPIFFE off, DPoP without nonces, shared secrets off', () => {
  assert.deepEqual(SpiffeConfigSchema.parse(undefined), { trustDomains: [], audiences: [], defaultRefreshSeconds: 300, maxStaleSeconds: 3600 });
  assert.deepEqual(DpopConfigSchema.parse({}), { algorithms: ['ES256', 'EdDSA', 'PS256', 'RS256'], maxAgeSeconds: 60, skewSeconds: 5, nonce: 'off', nonceWindowSeconds: 300 });
  const clientAuth = ClientAuthConfigSchema.parse({});
  assert.equal(clientAuth.allowSharedSecrets, false);
  assert.equal(clientAuth.maxAssertionLifetimeSeconds, 300);
  assert.deepEqual(workloadConfigWarnings({ clientAuth }), []);
});

test('trust domains: one bundle source each, valid names, inline bundles checked', async () => {
  const inline = await bundleDoc({ jwtAuthorities: [await makeJwtAuthority('k1')] });
  const ok = SpiffeConfigSchema.parse({
    trustDomains: [
      { trustDomain: 'example.org', bundleFile: '/etc/spire/bundle.json' },
      { trustDomain: 'partner.example', bundleUrl: 'https://spire.partner.example/bundle' },
      { trustDomain: 'inline.example', bundle: inline },
    ],
  });
  assert.equal(ok.trustDomains.length, 3);
  const bad = [
    { trustDomains: [{ trustDomain: 'Example.org', bundleFile: '/b' }] },
    { trustDomains: [{ trustDomain: 'example.org' }] },
    { trustDomains: [{ trustDomain: 'example.org', bundleFile: '/b', bundleUrl: 'https://x/' }] },
    { trustDomains: [{ trustDomain: 'example.org', bundleUrl: 'https://u:p@x/' }] },
    { trustDomains: [{ trustDomain: 'example.org', bundle: { keys: [{ kty: 'oct', k: 'AA', use: 'jwt-svid', kid: 'x' }] } }] },
    { trustDomains: [{ trustDomain: 'example.org', bundleFile: '/a' }, { trustDomain: 'example.org', bundleFile: '/b' }] },
    { trustDomains: [{ trustDomain: 'example.org', bundleFile: '/a', extra: 1 }] },
  ];
  for (const b of bad) assert.equal(SpiffeConfigSchema.safeParse(b).success, false, JSON.stringify(b));
});

test('algorithm lists refuse none and HMAC; shared secrets warn loudly', () => {
  assert.equal(DpopConfigSchema.safeParse({ algorithms: ['HS256'] }).success, false);
  assert.equal(DpopConfigSchema.safeParse({ algorithms: ['none'] }).success, false);
  assert.equal(DpopConfigSchema.safeParse({ nonce: 'optional' }).success, false);
  assert.equal(ClientAuthConfigSchema.safeParse({ algorithms: ['HS256'] }).success, false);
  assert.equal(ClientAuthConfigSchema.safeParse({ maxAssertionLifetimeSeconds: 86_400 }).success, false);
  const warnings = workloadConfigWarnings({ clientAuth: ClientAuthConfigSchema.parse({ allowSharedSecrets: true }) });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] ?? '', /allowSharedSecrets is on/);
});

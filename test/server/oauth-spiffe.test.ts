/**
 * SPIFFE workloads at the token endpoint of a real node serving HTTPS: an agent authenticated by its X.509-SVID
 * over mTLS (verified against the trust bundle, not by the TLS stack), and an agent authenticated by a JWT-SVID
 * client assertion. Certificates and keys are generated per run; everything stays on 127.0.0.1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { webcrypto } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/index.ts';
import { startMandate } from '../../src/cli/start-mandate.ts';
import { createLogger } from '../../src/server/index.ts';
import { generateKek } from '../../src/tokens/key-encryption.ts';
import { bundleDoc, makeCa, makeJwtAuthority, makeLeaf, x509, type TestLeaf } from '../../src/identity/workload-test-fixtures.ts';
import { writePolicyDir } from '../fixtures/policy-dir.ts';

const WIKI = 'https://wiki.test/mcp';
const AUD = 'https://mandate.test/';
const STATIC_ISSUER = 'https://corp-idp.test';
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_SPIFFE = 'urn:ietf:params:oauth:client-assertion-type:jwt-spiffe';

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key as unknown as webcrypto.CryptoKey));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').match(/.{1,64}/g)?.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

function post(url: string, form: Record<string, string>, tls: { ca: string; cert?: string; key?: string }): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const body = new URLSearchParams(form).toString();
    const req = httpsRequest(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) }, ...tls }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('SPIFFE: an X.509-SVID over mTLS and a JWT-SVID assertion authenticate agents; a foreign CA and no credential do not', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-spiffe-'));
  const policies = await writePolicyDir({
    'p.cedar': `permit (principal, action == Action::"read", resource == Dataset::"wiki");`,
  });
  t.after(async () => {
    await policies.cleanup();
    await rm(dir, { recursive: true, force: true });
  });
  const now = Date.now();
  const notBefore = new Date(now - 60_000);
  const notAfter = new Date(now + 3_600_000);
  const ca = await makeCa({ trustDomain: 'example.org', notBefore, notAfter });
  const rogueCa = await makeCa({ trustDomain: 'example.org', notBefore, notAfter });
  const mtlsSvid = await makeLeaf({ issuer: ca, uris: ['spiffe://example.org/agents/mtls-bot'], notBefore, notAfter });
  const rogueSvid = await makeLeaf({ issuer: rogueCa, uris: ['spiffe://example.org/agents/mtls-bot'], notBefore, notAfter });
  const authority = await makeJwtAuthority('jwt-authority-1');

  // The server's own certificate (for 127.0.0.1), unrelated to SPIFFE.
  const serverKeys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as unknown as { privateKey: CryptoKey; publicKey: CryptoKey };
  const serverCert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=mandate test server',
    keys: serverKeys,
    notBefore,
    notAfter,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]), new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth])],
  });
  const serverPem = serverCert.toString('pem');
  await writeFile(join(dir, 'tls.crt'), serverPem);
  await writeFile(join(dir, 'tls.key'), await pkcs8Pem(serverKeys.privateKey), { mode: 0o600 });

  const { privateKey: userKey, publicKey: userPub } = await generateKeyPair('ES256', { extractable: true });
  await writeFile(join(dir, 'corp.json'), JSON.stringify({ keys: [{ ...(await exportJWK(userPub)), kid: 'corp', alg: 'ES256', use: 'sig' } as JWK] }));
  const userToken = () =>
    new SignJWT({ sub: 'alice', scope: 'x' }).setProtectedHeader({ alg: 'ES256', kid: 'corp', typ: 'at+jwt' }).setIssuer(STATIC_ISSUER).setAudience(AUD).setIssuedAt().setExpirationTime('10m').sign(userKey);

  const agent = (id: string) => ({ id, kind: 'agent', name: id, owner: 'alice', mode: 'autonomous', audiences: [WIKI], dpop: 'optional', credentials: [{ type: 'spiffe', spiffeId: `spiffe://example.org/agents/${id}` }] });
  const config = parseConfig(
    stringify({
      server: { tls: { certFile: 'tls.crt', keyFile: 'tls.key', clientCertificates: 'request' } },
      store: { dataDir: dir },
      policy: { dir: policies.dir, watch: false },
      identity: { issuers: [{ issuer: STATIC_ISSUER, jwksFile: 'corp.json', audiences: [AUD] }] },
      spiffe: { trustDomains: [{ trustDomain: 'example.org', bundle: await bundleDoc({ roots: [ca], jwtAuthorities: [authority] }) }], audiences: ['https://platform.example.org'] },
      resources: [{ uri: WIKI, scopes: { 'wiki.read': [{ action: 'read', resource: { type: 'Dataset', id: 'wiki' } }] } }],
      principals: [agent('mtls-bot'), agent('svid-bot')],
    }),
    { source: 'test', env: {}, baseDir: dir, cwd: dir },
  );
  config.server.port = 0;
  const node = await startMandate(config, { env: { MANDATE_KEK: generateKek() }, logger: createLogger({ level: 'silent' }) });
  t.after(() => node.stop());
  assert.match(node.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const tokenUrl = `${node.url}/oauth/token`;

  const metadata = await new Promise<Record<string, unknown>>((resolve, reject) => {
    httpsRequest(`${node.url}/.well-known/oauth-authorization-server`, { ca: serverPem }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve(JSON.parse(text) as Record<string, unknown>));
    })
      .on('error', reject)
      .end();
  });
  assert.deepEqual(metadata.token_endpoint_auth_methods_supported, ['private_key_jwt', 'tls_client_auth']);

  const form = async () => ({ grant_type: EXCHANGE, subject_token: await userToken(), subject_token_type: ACCESS_TOKEN, resource: WIKI, scope: 'wiki.read' });
  const withCert = async (leaf: TestLeaf) => ({ ca: serverPem, cert: leaf.cert.toString('pem'), key: await pkcs8Pem(leaf.keys.privateKey) });

  const viaMtls = await post(tokenUrl, await form(), await withCert(mtlsSvid));
  assert.equal(viaMtls.status, 200, JSON.stringify(viaMtls.body));
  assert.deepEqual(decodeJwt(viaMtls.body.access_token as string).act, { sub: 'mtls-bot' });

  const rogue = await post(tokenUrl, await form(), await withCert(rogueSvid));
  assert.equal(rogue.status, 401);
  assert.equal(rogue.body.error, 'invalid_client');
  const anonymous = await post(tokenUrl, await form(), { ca: serverPem });
  assert.equal(anonymous.status, 401);

  const svid = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: authority.kid, typ: 'JWT' })
    .setSubject('spiffe://example.org/agents/svid-bot')
    .setAudience(node.url)
    .setIssuedAt()
    .setExpirationTime('2m')
    .sign(authority.privateKey);
  const viaSvid = await post(tokenUrl, { ...(await form()), client_assertion_type: JWT_SPIFFE, client_assertion: svid }, { ca: serverPem });
  assert.equal(viaSvid.status, 200, JSON.stringify(viaSvid.body));
  const claims = decodeJwt(viaSvid.body.access_token as string);
  assert.deepEqual(claims.act, { sub: 'svid-bot' });
  assert.ok((claims.exp as number) <= (decodeJwt(svid).exp as number), 'never outlives the SVID');
  // The same SVID as actor_token names the same principal: accepted; a JWT-SVID for another audience is not.
  const withActor = await post(tokenUrl, { ...(await form()), client_assertion_type: JWT_SPIFFE, client_assertion: svid, actor_token: svid, actor_token_type: 'urn:ietf:params:oauth:token-type:jwt' }, { ca: serverPem });
  assert.equal(withActor.status, 200, JSON.stringify(withActor.body));
  const elsewhere = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: authority.kid }).setSubject('spiffe://example.org/agents/svid-bot').setAudience('https://other.test').setIssuedAt().setExpirationTime('2m').sign(authority.privateKey);
  const refused = await post(tokenUrl, { ...(await form()), client_assertion_type: JWT_SPIFFE, client_assertion: elsewhere }, { ca: serverPem });
  assert.equal(refused.status, 401);
  assert.equal(refused.body.error, 'invalid_client');
  // As actor_token, a JWT-SVID may also carry one of spiffe.audiences; any other audience is refused.
  const platformSvid = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: authority.kid }).setSubject('spiffe://example.org/agents/svid-bot').setAudience('https://platform.example.org').setIssuedAt().setExpirationTime('2m').sign(authority.privateKey);
  const actorForm = async (actor: string) => ({ ...(await form()), client_assertion_type: JWT_SPIFFE, client_assertion: svid, actor_token: actor, actor_token_type: 'urn:ietf:params:oauth:token-type:jwt' });
  const platform = await post(tokenUrl, await actorForm(platformSvid), { ca: serverPem });
  assert.equal(platform.status, 200, JSON.stringify(platform.body));
  const foreignActor = await post(tokenUrl, await actorForm(elsewhere), { ca: serverPem });
  assert.equal(foreignActor.status, 400);
  assert.equal(foreignActor.body.error, 'invalid_grant');
  // An actor_token of another workload than the client is refused.
  const otherWorkload = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: authority.kid }).setSubject('spiffe://example.org/agents/mtls-bot').setAudience(node.url).setIssuedAt().setExpirationTime('2m').sign(authority.privateKey);
  const mismatch = await post(tokenUrl, await actorForm(otherWorkload), { ca: serverPem });
  assert.equal(mismatch.body.error, 'invalid_grant');
});

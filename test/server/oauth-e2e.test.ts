/**
 * The token service end to end: a real node (startMandate: SQLite store, Cedar policies, fastify) with a real
 * OIDC provider (oidc-provider) as the users' IdP, a static-JWKS IdP whose key the test holds (to forge precise
 * claims), and `openid-client` as the agents' OAuth client. Adversarial inputs are built with jose.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT, base64url, type CryptoKey, type JWK } from 'jose';
import { createHash, randomUUID } from 'node:crypto';
import * as oc from 'openid-client';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/index.ts';
import { startMandate, type RunningMandate } from '../../src/cli/start-mandate.ts';
import { createLogger } from '../../src/server/index.ts';
import { generateKek } from '../../src/tokens/key-encryption.ts';
import { PolicyEngine } from '../../src/policy/policy-engine.ts';
import { baseEntities, writePolicyDir } from '../fixtures/policy-dir.ts';
import { startTestIdp, type TestIdp } from '../fixtures/test-idp.ts';

const CRM = 'https://crm.test/mcp';
const WIKI = 'https://wiki.test/mcp';
const IDP_AUDIENCE = 'https://mandate.test/';
const STATIC_ISSUER = 'https://corp-idp.test';
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

const POLICIES = `
// Sales may read the CRM; everyone may read the wiki; nobody gets salaries through a mandate.
permit (principal in Group::"sales", action == Action::"read", resource == Dataset::"crm");
permit (principal is User, action == Action::"read", resource == Dataset::"wiki");
permit (principal is Agent, action == Action::"read", resource == Dataset::"wiki") when { principal.status == "active" };
// Only autonomous agents read the CRM; a chat assistant never does.
permit (principal is Agent, action == Action::"read", resource == Dataset::"crm") when { principal.mode == "autonomous" && principal.status == "active" };
permit (principal is Service, action == Action::"read", resource == Dataset::"wiki");
`;

interface Key {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function newKey(kid: string, alg: 'ES256' | 'EdDSA' = 'ES256'): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

interface World {
  node: RunningMandate;
  idp: TestIdp;
  staticIdp: Key;
  keys: Record<'salesBot' | 'helpBot' | 'reader' | 'pep' | 'attacker', Key>;
  url: string;
  decisions: () => number;
  close(): Promise<void>;
}

let decideCalls = 0;
const originalDecide = PolicyEngine.prototype.decide;
PolicyEngine.prototype.decide = function countedDecide(this: PolicyEngine, ...args: Parameters<PolicyEngine['decide']>) {
  decideCalls++;
  return originalDecide.apply(this, args);
};

async function startWorld(extra: Record<string, unknown> = {}, logLines?: string[]): Promise<World> {
  const idp = await startTestIdp({ resources: [IDP_AUDIENCE] });
  const policies = await writePolicyDir({ 'mandates.cedar': POLICIES }, [
    ...baseEntities(),
    { uid: { type: 'Dataset', id: 'crm' }, attrs: { sensitivity: 'confidential', tenant: 'acme' }, parents: [] },
  ]);
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-oauth-'));
  const staticIdp = await newKey('corp-1');
  const jwksFile = join(dataDir, 'corp-jwks.json');
  await writeFile(jwksFile, JSON.stringify({ keys: [staticIdp.publicJwk] }));
  const keys = {
    salesBot: await newKey('sales-bot-1'),
    helpBot: await newKey('help-bot-1', 'EdDSA'),
    reader: await newKey('reader-1'),
    pep: await newKey('pep-1'),
    attacker: await newKey('sales-bot-1'),
  };
  const jwks = (k: Key) => [{ type: 'jwks', jwks: { keys: [k.publicJwk] } }];
  const config = parseConfig(
    stringify({
      store: { dataDir },
      policy: { dir: policies.dir, watch: false },
      log: { level: 'silent' },
      identity: {
        issuers: [
          { issuer: idp.issuer, discovery: true, audiences: [IDP_AUDIENCE] },
          { issuer: STATIC_ISSUER, jwksFile, audiences: [IDP_AUDIENCE], algorithms: ['ES256'] },
        ],
        outbound: { allowHttp: true, allowPrivateNetworks: true },
      },
      resources: [
        {
          uri: CRM,
          name: 'CRM',
          scopes: {
            'crm.read': [{ action: 'read', resource: { type: 'Dataset', id: 'crm' } }],
            'wiki.read': [{ action: 'read', resource: { type: 'Dataset', id: 'wiki' } }],
            'salaries.read': [{ action: 'read', resource: { type: 'Dataset', id: 'salaries' } }],
          },
        },
        { uri: WIKI, scopes: { 'wiki.read': [{ action: 'read', resource: { type: 'Dataset', id: 'wiki' } }] } },
      ],
      principals: [
        { id: 'sales-bot', kind: 'agent', name: 'Sales bot', owner: 'alice', mode: 'autonomous', audiences: [CRM, WIKI], credentials: jwks(keys.salesBot), dpop: 'optional' },
        { id: 'help-bot', kind: 'agent', name: 'Helpdesk assistant', owner: 'bob', mode: 'chat', audiences: [CRM, WIKI], credentials: jwks(keys.helpBot), dpop: 'required' },
        { id: 'reader', kind: 'agent', name: 'Reader', owner: 'alice', mode: 'autonomous', audiences: [CRM], credentials: jwks(keys.reader), dpop: 'optional' },
        { id: 'pep', kind: 'service', name: 'Gateway PEP', owner: 'alice', audiences: [WIKI], apiScopes: ['evaluate'], credentials: jwks(keys.pep), dpop: 'optional' },
      ],
      ...extra,
    }),
    { source: 'test', env: {}, baseDir: dataDir, cwd: dataDir },
  );
  config.server.port = 0;
  const logger =
    logLines === undefined
      ? createLogger({ level: 'silent' })
      : createLogger({ level: 'trace', destination: { write: (line: string) => void logLines.push(line) } as unknown as NodeJS.WritableStream });
  const node = await startMandate(config, { env: { MANDATE_KEK: generateKek() }, logger });
  return {
    node,
    idp,
    staticIdp,
    keys,
    url: node.url,
    decisions: () => decideCalls,
    async close() {
      await node.stop();
      await idp.close();
      await policies.cleanup();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

let shared: Promise<World> | undefined;
/** One world for the read-mostly tests (starting the IdP and logging in is the slow part). */
function world(): Promise<World> {
  shared ??= startWorld();
  return shared;
}
test.after(async () => {
  if (shared) await (await shared).close();
  PolicyEngine.prototype.decide = originalDecide;
});

const nowS = () => Math.floor(Date.now() / 1000);

/** A client assertion (RFC 7523) for `clientId` signed with `key`. */
async function assertion(w: World, clientId: string, key: Key, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ jti: randomUUID(), iss: clientId, sub: clientId, aud: w.url, iat: nowS(), exp: nowS() + 60, ...claims })
    .setProtectedHeader({ alg: key.publicJwk.alg as string, kid: key.kid, ...header })
    .sign(key.privateKey);
}

/** A DPoP proof (RFC 9449). */
async function proof(key: Key, htm: string, htu: string, extra: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ htm, htu, jti: randomUUID(), iat: nowS(), ...extra })
    .setProtectedHeader({ alg: key.publicJwk.alg as string, typ: 'dpop+jwt', jwk: { kty: key.publicJwk.kty, crv: key.publicJwk.crv, x: key.publicJwk.x, ...(key.publicJwk.y ? { y: key.publicJwk.y } : {}) } as JWK })
    .sign(key.privateKey);
}

/** A user token from the static IdP, with exactly the claims given. */
async function staticUserToken(w: World, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ sub: 'alice', iss: STATIC_ISSUER, aud: IDP_AUDIENCE, iat: nowS(), exp: nowS() + 600, jti: randomUUID(), client_id: 'corp-app', ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: w.staticIdp.kid, typ: 'at+jwt', ...header })
    .sign(w.staticIdp.privateKey);
}

async function postForm(w: World, path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${w.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form) });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), headers: res.headers };
}

async function exchange(w: World, clientId: string, key: Key, form: Record<string, string>, headers: Record<string, string> = {}) {
  return postForm(
    w,
    '/oauth/token',
    { grant_type: EXCHANGE, subject_token_type: ACCESS_TOKEN, resource: CRM, client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, clientId, key), ...form },
    headers,
  );
}

async function events(w: World, type: string) {
  return (await w.node.store.audit.list({ afterSeq: 0, limit: 10_000 })).filter((e) => e.type === type);
}

/** openid-client configured for `clientId` with private_key_jwt against the node's RFC 8414 metadata. */
async function oauthClient(w: World, clientId: string, key: Key): Promise<oc.Configuration> {
  return oc.discovery(new URL(w.url), clientId, undefined, oc.PrivateKeyJwt({ key: key.privateKey, kid: key.kid }), {
    execute: [oc.allowInsecureRequests],
    algorithm: 'oauth2',
  });
}

test('metadata (RFC 8414) and JWKS: endpoints under the issuer, no private key part, openid-client discovers it', async () => {
  const w = await world();
  const meta = (await (await fetch(`${w.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
  assert.equal(meta.issuer, w.url);
  assert.equal(meta.token_endpoint, `${w.url}/oauth/token`);
  assert.deepEqual(meta.grant_types_supported, [EXCHANGE, 'client_credentials', 'refresh_token']);
  assert.deepEqual(meta.authorization_details_types_supported, ['mandate_task']);
  assert.ok((meta.dpop_signing_alg_values_supported as string[]).includes('ES256'));
  const jwks = (await (await fetch(`${w.url}/oauth/jwks`)).json()) as { keys: JWK[] };
  assert.equal(jwks.keys.length, 1);
  for (const k of jwks.keys) {
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) assert.equal(k[member as keyof JWK], undefined, `no ${member}`);
    assert.equal(k.use, 'sig');
    assert.ok(k.kid);
  }
  const cfg = await oauthClient(w, 'sales-bot', w.keys.salesBot);
  assert.equal(cfg.serverMetadata().issuer, w.url);
  const ready = (await (await fetch(`${w.url}/readyz`)).json()) as { status: string; checks: { identity?: { ok: boolean } } };
  assert.equal(ready.status, 'ready');
  assert.equal(ready.checks.identity?.ok, true);
});

test('token exchange with openid-client and DPoP: a mandate for alice acted by sales-bot, scopes computed, bound, audited', async () => {
  const w = await world();
  const userToken = await w.idp.userToken('alice', { resource: IDP_AUDIENCE });
  const cfg = await oauthClient(w, 'sales-bot', w.keys.salesBot);
  const dpopKey = await oc.randomDPoPKeyPair('ES256');
  const dpop = oc.getDPoPHandle(cfg, dpopKey);
  const tokens = await oc.genericGrantRequest(
    cfg,
    EXCHANGE,
    { subject_token: userToken, subject_token_type: ACCESS_TOKEN, resource: CRM, scope: 'crm.read wiki.read salaries.read' },
    { DPoP: dpop },
  );
  assert.equal(tokens.token_type, 'dpop');
  assert.equal(tokens.issued_token_type, ACCESS_TOKEN);
  assert.equal(tokens.scope, 'crm.read wiki.read', 'salaries.read is computed away, never granted');
  const header = decodeProtectedHeader(tokens.access_token);
  assert.equal(header.typ, 'at+jwt');
  assert.equal(header.alg, 'EdDSA');
  const claims = decodeJwt(tokens.access_token) as Record<string, unknown>;
  assert.equal(claims.iss, w.url);
  assert.equal(claims.sub, 'alice');
  assert.deepEqual(claims.act, { sub: 'sales-bot' });
  assert.equal(claims.aud, CRM);
  assert.equal(claims.client_id, 'sales-bot');
  assert.deepEqual(claims.sub_id, { format: 'iss_sub', iss: w.idp.issuer, sub: 'alice' });
  const jkt = await calculateJwkThumbprint(await exportJWK(dpopKey.publicKey));
  assert.deepEqual(claims.cnf, { jkt });
  assert.equal((claims.exp as number) - (claims.iat as number), 300, 'the default lifetime: the 60 s client assertion does not shorten it');
  assert.equal(tokens.expires_in, (claims.exp as number) - (claims.iat as number));

  const issued = (await events(w, 'token.issue')).find((e) => (e.data as { jti?: string }).jti === claims.jti);
  assert.ok(issued, 'the issuance event was committed with the token');
  assert.equal(issued.actor, 'sales-bot');
  assert.deepEqual((issued.data as { granted: string[] }).granted, ['crm.read', 'wiki.read']);
  assert.ok(!JSON.stringify(issued).includes(tokens.access_token), 'the token itself is never audited');

  // Introspection (RFC 7662) and revocation (RFC 7009) through openid-client, as the client it was issued to.
  const active = await oc.tokenIntrospection(cfg, tokens.access_token);
  assert.equal(active.active, true);
  assert.deepEqual(active.act, { sub: 'sales-bot' });
  assert.equal(active.token_type, 'DPoP');
  await oc.tokenRevocation(cfg, tokens.access_token);
  const after = await oc.tokenIntrospection(cfg, tokens.access_token);
  assert.deepEqual({ ...after }, { active: false });
  assert.ok((await events(w, 'token.revoke')).some((e) => (e.data as { jti?: string }).jti === claims.jti));
  // A revoked mandate cannot be re-exchanged either.
  const reuse = await exchange(w, 'reader', w.keys.reader, { subject_token: tokens.access_token, scope: 'wiki.read' });
  assert.equal(reuse.status, 400);
  assert.equal(reuse.body.error, 'invalid_grant');
});

test('the intersection: a chat assistant gets no CRM scope even for alice; bob gets none even through an autonomous agent', async () => {
  const w = await world();
  const alice = await staticUserToken(w);
  const bob = await staticUserToken(w, { sub: 'bob' });
  const key = await newKey('dpop');
  const viaChat = await exchange(w, 'help-bot', w.keys.helpBot, { subject_token: alice, scope: 'crm.read' }, { dpop: await proof(key, 'POST', `${w.url}/oauth/token`) });
  assert.equal(viaChat.status, 400);
  assert.equal(viaChat.body.error, 'invalid_scope');
  assert.match(String(viaChat.body.error_description), /Agent::"help-bot"/);
  const bobCrm = await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: bob, scope: 'crm.read' });
  assert.equal(bobCrm.body.error, 'invalid_scope');
  assert.match(String(bobCrm.body.error_description), /User::"bob"/);
  // What both may do is granted.
  const wiki = await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: bob, scope: 'crm.read wiki.read' });
  assert.equal(wiki.status, 200, JSON.stringify(wiki.body));
  assert.equal(wiki.body.scope, 'wiki.read');
  assert.equal(wiki.body.token_type, 'Bearer');
});

test('DPoP: an agent registered with dpop required gets nothing without a proof; a bad proof is invalid_dpop_proof', async () => {
  const w = await world();
  const alice = await staticUserToken(w);
  const none = await exchange(w, 'help-bot', w.keys.helpBot, { subject_token: alice, scope: 'wiki.read' });
  assert.equal(none.status, 400);
  assert.equal(none.body.error, 'invalid_dpop_proof');
  const key = await newKey('dpop');
  const wrongUrl = await exchange(w, 'help-bot', w.keys.helpBot, { subject_token: alice, scope: 'wiki.read' }, { dpop: await proof(key, 'POST', 'https://elsewhere.test/oauth/token') });
  assert.equal(wrongUrl.body.error, 'invalid_dpop_proof');
  const p = await proof(key, 'POST', `${w.url}/oauth/token`);
  const ok = await exchange(w, 'help-bot', w.keys.helpBot, { subject_token: alice, scope: 'wiki.read' }, { dpop: p });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.token_type, 'DPoP');
  const replayed = await exchange(w, 'help-bot', w.keys.helpBot, { subject_token: alice, scope: 'wiki.read' }, { dpop: p });
  assert.equal(replayed.body.error, 'invalid_dpop_proof', 'a proof is single-use');
  // An Ed25519 key registered as alg EdDSA verifies assertions signed as Ed25519 (RFC 9864; openid-client does so).
  const fully = await postForm(
    w,
    '/oauth/token',
    { grant_type: EXCHANGE, subject_token: alice, subject_token_type: ACCESS_TOKEN, resource: CRM, scope: 'wiki.read', client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'help-bot', w.keys.helpBot, {}, { alg: 'Ed25519' }) },
    { dpop: await proof(key, 'POST', `${w.url}/oauth/token`) },
  );
  assert.equal(fully.status, 200, JSON.stringify(fully.body));
});

test('re-delegation: a second agent re-exchanges a mandate; act nests, scope only narrows, audience never widens, no cycles', async () => {
  const w = await world();
  const alice = await staticUserToken(w);
  const first = await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: alice, scope: 'crm.read wiki.read' });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const mandate = first.body.access_token as string;

  const second = await exchange(w, 'reader', w.keys.reader, { subject_token: mandate, subject_token_type: ACCESS_TOKEN, scope: 'crm.read' });
  assert.equal(second.status, 200, JSON.stringify(second.body));
  const claims = decodeJwt(second.body.access_token as string) as Record<string, unknown>;
  assert.equal(claims.sub, 'alice');
  assert.deepEqual(claims.act, { sub: 'reader', act: { sub: 'sales-bot' } });
  assert.equal(claims.scope, 'crm.read');
  assert.ok((claims.exp as number) <= (decodeJwt(mandate).exp as number), 'never outlives the mandate it came from');

  const widen = await exchange(w, 'help-bot', w.keys.helpBot, { subject_token: second.body.access_token as string, scope: 'wiki.read' }, { dpop: await proof(await newKey('d'), 'POST', `${w.url}/oauth/token`) });
  assert.equal(widen.body.error, 'invalid_scope');
  assert.match(String(widen.body.error_description), /only narrows/);
  const otherAudience = await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: mandate, scope: 'wiki.read', resource: WIKI });
  assert.equal(otherAudience.body.error, 'invalid_grant', 'sales-bot is already in the chain');
  const audienceChange = await exchange(w, 'help-bot', w.keys.helpBot, { subject_token: mandate, scope: 'wiki.read', resource: WIKI }, { dpop: await proof(await newKey('d'), 'POST', `${w.url}/oauth/token`) });
  assert.equal(audienceChange.body.error, 'invalid_target');
  const cycle = await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: second.body.access_token as string, scope: 'crm.read' });
  assert.equal(cycle.body.error, 'invalid_grant');
  assert.match(String(cycle.body.error_description), /cycles are refused/);

  // Revoking a mandate revokes what was delegated from it (cascade at verification).
  const introspect = async (token: string) =>
    (await postForm(w, '/oauth/introspect', { token, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'pep', w.keys.pep) })).body;
  assert.equal((await introspect(second.body.access_token as string)).active, true);
  const revoked = await postForm(w, '/oauth/revoke', { token: mandate, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'sales-bot', w.keys.salesBot) });
  assert.equal(revoked.status, 200);
  assert.deepEqual(await introspect(second.body.access_token as string), { active: false });
});

test('client_credentials: a service gets Mandate API scopes its registration grants and calls AuthZEN with the mandate', async () => {
  const w = await world();
  const cfg = await oauthClient(w, 'pep', w.keys.pep);
  const tokens = await oc.clientCredentialsGrant(cfg, { scope: 'evaluate policy:reload', resource: w.url });
  assert.equal(tokens.scope, 'evaluate', 'policy:reload is not in its registration');
  const claims = decodeJwt(tokens.access_token) as Record<string, unknown>;
  assert.equal(claims.on_behalf_of, 'none');
  assert.equal(claims.sub, 'pep');
  assert.equal(claims.act, undefined);

  const body = JSON.stringify({ subject: { type: 'user', id: 'alice' }, action: { name: 'read' }, resource: { type: 'dataset', id: 'wiki' } });
  const evaluation = await fetch(`${w.url}/access/v1/evaluation`, { method: 'POST', headers: { authorization: `Bearer ${tokens.access_token}`, 'content-type': 'application/json' }, body });
  assert.equal(evaluation.status, 200);
  assert.equal(((await evaluation.json()) as { decision: boolean }).decision, true);
  const reload = await fetch(`${w.url}/admin/v1/policies/reload`, { method: 'POST', headers: { authorization: `Bearer ${tokens.access_token}` } });
  assert.equal(reload.status, 403);

  // A user's mandate (for a resource) is not an API credential.
  const userMandate = await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: await staticUserToken(w), scope: 'wiki.read' });
  const refused = await fetch(`${w.url}/access/v1/evaluation`, { method: 'POST', headers: { authorization: `Bearer ${userMandate.body.access_token as string}`, 'content-type': 'application/json' }, body });
  assert.equal(refused.status, 401);
  assert.match(refused.headers.get('www-authenticate') ?? '', /invalid_token/);
  // An agent cannot obtain API scopes at all.
  const agentApi = await postForm(w, '/oauth/token', { grant_type: 'client_credentials', scope: 'evaluate', resource: w.url, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'sales-bot', w.keys.salesBot) });
  assert.equal(agentApi.body.error, 'unauthorized_client');
  const agentMachine = await postForm(w, '/oauth/token', { grant_type: 'client_credentials', scope: 'wiki.read', resource: WIKI, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'sales-bot', w.keys.salesBot) });
  assert.equal(agentMachine.body.error, 'unauthorized_client', 'an agent always acts for someone: no machine-only tokens');
  // Services' resource tokens say no user is behind them and cannot be exchanged as if one were.
  const machine = await oc.clientCredentialsGrant(cfg, { scope: 'wiki.read', resource: WIKI });
  assert.equal(decodeJwt(machine.access_token).on_behalf_of, 'none');
  const asSubject = await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: machine.access_token, scope: 'wiki.read', resource: WIKI });
  assert.equal(asSubject.body.error, 'invalid_grant');
});

test('a DPoP-bound API mandate: refused as Bearer, without a proof or with another key; accepted with its proof', async () => {
  const w = await world();
  const key = await newKey('pep-dpop');
  const other = await newKey('other-dpop');
  const tokenUrl = `${w.url}/oauth/token`;
  const issued = await postForm(
    w,
    '/oauth/token',
    { grant_type: 'client_credentials', scope: 'evaluate', resource: w.url, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'pep', w.keys.pep) },
    { dpop: await proof(key, 'POST', tokenUrl) },
  );
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  const token = issued.body.access_token as string;
  const ath = base64url.encode(createHash('sha256').update(token).digest());
  const url = `${w.url}/access/v1/evaluation`;
  const body = JSON.stringify({ subject: { type: 'user', id: 'alice' }, action: { name: 'read' }, resource: { type: 'dataset', id: 'wiki' } });
  const call = (headers: Record<string, string>) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  assert.equal((await call({ authorization: `Bearer ${token}` })).status, 401);
  const noProof = await call({ authorization: `DPoP ${token}` });
  assert.equal(noProof.status, 401);
  assert.match(noProof.headers.get('www-authenticate') ?? '', /^DPoP /);
  assert.equal((await call({ authorization: `DPoP ${token}`, dpop: await proof(other, 'POST', url, { ath }) })).status, 401);
  assert.equal((await call({ authorization: `DPoP ${token}`, dpop: await proof(key, 'POST', url) })).status, 401, 'a proof without ath');
  const ok = await call({ authorization: `DPoP ${token}`, dpop: await proof(key, 'POST', url, { ath }) });
  assert.equal(ok.status, 200);
});

test('adversarial subject tokens (RFC 8725 / RFC 9700): each refused with invalid_grant, audited, and no decision evaluated', async () => {
  const w = await world();
  const real = await w.idp.userToken('alice', { resource: IDP_AUDIENCE });
  const [h, p, s] = real.split('.') as [string, string, string];
  const enc = (o: unknown) => base64url.encode(JSON.stringify(o));
  const realHeader = decodeProtectedHeader(real);
  const realClaims = decodeJwt(real);
  const idpJwks = (await (await fetch(w.idp.jwksUri)).json()) as { keys: JWK[] };
  const attacker = await newKey(String(realHeader.kid));
  const { idToken } = await w.idp.login('alice', { resource: IDP_AUDIENCE });

  const cases: Array<[string, string | Promise<string>]> = [
    ['alg none', `${enc({ ...realHeader, alg: 'none' })}.${p}.`],
    ['alg confusion: HS256 keyed with the public key', new SignJWT(realClaims).setProtectedHeader({ alg: 'HS256', kid: realHeader.kid, typ: 'at+jwt' }).sign(new TextEncoder().encode(JSON.stringify(idpJwks.keys[0])))],
    ['embedded jwk', new SignJWT(realClaims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', jwk: attacker.publicJwk }).sign(attacker.privateKey)],
    ['jku', new SignJWT(realClaims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: attacker.kid, jku: 'http://127.0.0.1:1/jwks' }).sign(attacker.privateKey)],
    ['x5u', new SignJWT(realClaims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: attacker.kid, x5u: 'http://127.0.0.1:1/cert' }).sign(attacker.privateKey)],
    ['kid of the real key, attacker signature', new SignJWT(realClaims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: realHeader.kid }).sign(attacker.privateKey)],
    ['unknown kid', new SignJWT(realClaims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'no-such-kid' }).sign(attacker.privateKey)],
    ['bad signature', `${h}.${p}.${s.slice(0, -4)}AAAA`],
    ['truncated signature', `${h}.${p}.${s.slice(0, 10)}`],
    ['payload altered', `${h}.${enc({ ...realClaims, sub: 'bob' })}.${s}`],
    ['malformed segments', `${h}.${p}`],
    ['not base64url', `${h}.@@@.${s}`],
    ['expired', staticUserToken(w, { exp: nowS() - 3600, iat: nowS() - 7200 })],
    ['not yet valid', staticUserToken(w, { nbf: nowS() + 3600 })],
    ['issued in the future', staticUserToken(w, { iat: nowS() + 3600 })],
    ['no exp', staticUserToken(w, { exp: undefined })],
    ['untrusted issuer', staticUserToken(w, { iss: 'https://evil.test' })],
    ['issuer confusion: static key, real IdP iss', staticUserToken(w, { iss: w.idp.issuer })],
    ['wrong audience', staticUserToken(w, { aud: 'https://other.test/' })],
    ['no audience', staticUserToken(w, { aud: undefined })],
    ['an ID token', idToken],
    ['a DPoP proof', proof(w.staticIdp, 'POST', `${w.url}/oauth/token`)],
    ['typ JWT', staticUserToken(w, {}, { typ: 'JWT' })],
    ['a client assertion', assertion(w, 'sales-bot', w.keys.salesBot)],
    ['a forged mandate (our iss, attacker key)', new SignJWT({ sub: 'alice', act: { sub: 'sales-bot' }, scope: 'crm.read', client_id: 'sales-bot', aud: CRM, jti: randomUUID(), on_behalf_of: 'user' }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'mandate' }).setIssuer(w.url).setIssuedAt().setExpirationTime('5m').sign(attacker.privateKey)],
    ['not a JWT', 'opaque-access-token'],
  ];
  // The counter does count: a granted exchange evaluates policy.
  const probe = w.decisions();
  assert.equal((await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: await staticUserToken(w), scope: 'crm.read' })).status, 200);
  assert.ok(w.decisions() > probe, 'policy decisions are counted');
  const refusedBefore = (await events(w, 'token.refuse')).length;
  const decisionsBefore = w.decisions();
  for (const [name, token] of cases) {
    const res = await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: await token, scope: 'crm.read' });
    assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error, 'invalid_grant', `${name}: ${JSON.stringify(res.body)}`);
    assert.equal(typeof res.body.error_description, 'string', name);
  }
  assert.equal(w.decisions(), decisionsBefore, 'no policy decision was evaluated for any refused token');
  const refused = (await events(w, 'token.refuse')).slice(refusedBefore);
  assert.equal(refused.length, cases.length, 'every refusal is audited');
  for (const e of refused) assert.equal(e.outcome, 'failure');
});

test('adversarial client authentication and exchanges: invalid_client, invalid_request, invalid_grant, invalid_target, invalid_scope', async () => {
  const w = await world();
  const alice = await staticUserToken(w);
  const tokenUrl = `${w.url}/oauth/token`;
  const base = { grant_type: EXCHANGE, subject_token: alice, subject_token_type: ACCESS_TOKEN, resource: CRM, scope: 'crm.read', client_assertion_type: JWT_BEARER };
  const replayed = await assertion(w, 'sales-bot', w.keys.salesBot);
  assert.equal((await postForm(w, '/oauth/token', { ...base, client_assertion: replayed })).status, 200);

  const clientCases: Array<[string, Record<string, string>]> = [
    ['no client authentication', { ...base, client_assertion_type: '' }],
    ['replayed assertion', { ...base, client_assertion: replayed }],
    ['assertion signed by an unregistered key with a registered kid', { ...base, client_assertion: await assertion(w, 'sales-bot', w.keys.attacker) }],
    ['assertion for another server', { ...base, client_assertion: await assertion(w, 'sales-bot', w.keys.salesBot, { aud: 'https://other-as.test' }) }],
    ['assertion alg none', { ...base, client_assertion: `${base64url.encode(JSON.stringify({ alg: 'none' }))}.${base64url.encode(JSON.stringify({ iss: 'sales-bot', sub: 'sales-bot', aud: w.url, exp: nowS() + 60, jti: randomUUID() }))}.` }],
    ['assertion living an hour', { ...base, client_assertion: await assertion(w, 'sales-bot', w.keys.salesBot, { exp: nowS() + 3600 }) }],
    ['unregistered client', { ...base, client_assertion: await assertion(w, 'ghost', w.keys.salesBot) }],
    ['assertion with an embedded jwk', { ...base, client_assertion: await assertion(w, 'sales-bot', w.keys.attacker, {}, { jwk: w.keys.attacker.publicJwk }) }],
  ];
  for (const [name, form] of clientCases) {
    const res = await postForm(w, '/oauth/token', Object.fromEntries(Object.entries(form).filter(([, v]) => v !== '')));
    assert.equal(res.status, 401, `${name}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error, 'invalid_client', name);
  }

  const other = async (extra: Record<string, string>) => postForm(w, '/oauth/token', { ...base, client_assertion: await assertion(w, 'sales-bot', w.keys.salesBot), ...extra });
  assert.equal((await other({ resource: 'https://unknown.test/' })).body.error, 'invalid_target');
  assert.equal((await other({ resource: CRM, audience: WIKI })).body.error, 'invalid_target', 'one audience');
  assert.equal((await other({ scope: 'admin.everything' })).body.error, 'invalid_scope');
  assert.equal((await other({ scope: '' })).body.error, 'invalid_scope');
  assert.equal((await other({ subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' })).body.error, 'invalid_request');
  assert.equal((await other({ grant_type: 'password' })).body.error, 'unsupported_grant_type');
  // actor_token must name the authenticated client.
  const foreignActor = await other({ actor_token: await assertion(w, 'reader', w.keys.reader), actor_token_type: JWT_TYPE });
  assert.equal(foreignActor.body.error, 'invalid_grant');
  assert.match(String(foreignActor.body.error_description), /names reader/);
  const ownActor = await other({ actor_token: await assertion(w, 'sales-bot', w.keys.salesBot), actor_token_type: JWT_TYPE });
  assert.equal(ownActor.status, 200, JSON.stringify(ownActor.body));
  // may_act must name the client when present.
  const mayAct = await other({ subject_token: await staticUserToken(w, { may_act: { sub: 'reader' } }) });
  assert.equal(mayAct.body.error, 'invalid_grant');
  // Lifetime: never past the subject token's expiry.
  const short = await other({ subject_token: await staticUserToken(w, { exp: nowS() + 42 }) });
  assert.equal(short.status, 200);
  assert.ok((short.body.expires_in as number) <= 42);
  // A parameter twice is refused (RFC 6749 §3.2).
  const twice = await fetch(tokenUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `${new URLSearchParams({ ...base, client_assertion: await assertion(w, 'sales-bot', w.keys.salesBot) })}&scope=wiki.read` });
  assert.equal(twice.status, 400);
  assert.equal(((await twice.json()) as { error: string }).error, 'invalid_request');
});

test('introspection and revocation need client authentication; foreign tokens are inactive; only the holder or a service revokes', async () => {
  const w = await world();
  const issued = await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: await staticUserToken(w), scope: 'crm.read' });
  const token = issued.body.access_token as string;
  const anonymous = await postForm(w, '/oauth/introspect', { token });
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.body.error, 'invalid_client');
  const asReader = await postForm(w, '/oauth/introspect', { token, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'reader', w.keys.reader) });
  assert.deepEqual(asReader.body, { active: false }, 'another agent learns nothing');
  const asService = await postForm(w, '/oauth/introspect', { token, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'pep', w.keys.pep) });
  assert.equal(asService.body.active, true, 'a resource server (service) may introspect');
  const foreign = await postForm(w, '/oauth/introspect', { token: await staticUserToken(w), client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'pep', w.keys.pep) });
  assert.deepEqual(foreign.body, { active: false });
  const byReader = await postForm(w, '/oauth/revoke', { token, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'reader', w.keys.reader) });
  assert.equal(byReader.body.error, 'unauthorized_client');
  const unknown = await postForm(w, '/oauth/revoke', { token: 'not-a-token', client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'sales-bot', w.keys.salesBot) });
  assert.equal(unknown.status, 200, 'RFC 7009 §2.2');
  const ok = await postForm(w, '/oauth/revoke', { token, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'sales-bot', w.keys.salesBot) });
  assert.equal(ok.status, 200);
  assert.deepEqual((await postForm(w, '/oauth/introspect', { token, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'pep', w.keys.pep) })).body, { active: false });
});

test('a suspended agent authenticates no more, and mandates naming it as an earlier actor cannot be re-exchanged', async () => {
  const w = await startWorld();
  try {
    const first = await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: await staticUserToken(w), scope: 'crm.read' });
    assert.equal(first.status, 200);
    await w.node.store.principals.update('sales-bot', { status: 'suspended' }, Date.now(), {
      id: randomUUID(),
      time: new Date().toISOString(),
      type: 'admin',
      outcome: 'success',
      redacted: [],
    });
    const again = await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: await staticUserToken(w), scope: 'crm.read' });
    assert.equal(again.status, 401);
    assert.equal(again.body.error, 'invalid_client');
    const chained = await exchange(w, 'reader', w.keys.reader, { subject_token: first.body.access_token as string, scope: 'crm.read' });
    assert.equal(chained.body.error, 'invalid_grant');
  } finally {
    await w.close();
  }
});

test('signing keys: the same KEK restarts on the same key; another KEK refuses to start; no KEK refuses to start', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-kek-start-'));
  const policies = await writePolicyDir({ 'mandates.cedar': POLICIES });
  const key = await newKey('k');
  try {
    const config = parseConfig(
      stringify({
          store: { dataDir },
        policy: { dir: policies.dir, watch: false },
        resources: [{ uri: WIKI, scopes: { 'wiki.read': [{ action: 'read', resource: { type: 'Dataset', id: 'wiki' } }] } }],
        principals: [{ id: 'svc', kind: 'service', name: 'svc', owner: 'alice', audiences: [WIKI], credentials: [{ type: 'jwks', jwks: { keys: [key.publicJwk] } }] }],
      }),
      { source: 'test', env: {}, baseDir: dataDir, cwd: dataDir },
    );
    config.server.port = 0;
    const logger = createLogger({ level: 'silent' });
    const kek = generateKek();
    const first = await startMandate(config, { env: { MANDATE_KEK: kek }, logger });
    const kid = (await first.tokens?.keys.list())?.[0]?.kid;
    await first.stop();
    const second = await startMandate(config, { env: { MANDATE_KEK: kek }, logger });
    assert.equal((await second.tokens?.keys.list())?.[0]?.kid, kid);
    await second.stop();
    await assert.rejects(startMandate(config, { env: { MANDATE_KEK: generateKek() }, logger }), { code: 'ERR_KEK_MISMATCH' });
    await assert.rejects(startMandate(config, { env: {}, logger }), { code: 'ERR_KEK_MISSING' });
  } finally {
    await policies.cleanup();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('shared secrets: refused by default even when registered; with clientAuth.allowSharedSecrets they work and the metadata says so', async () => {
  const secret = 'mandate_test_secret_with_enough_entropy_0123456789';
  const legacy = { id: 'legacy-svc', kind: 'service', name: 'Legacy', owner: 'alice', audiences: [WIKI], dpop: 'optional', credentials: [{ type: 'client_secret', hash: `sha256:${createHash('sha256').update(secret).digest('hex')}` }] };
  const form = { grant_type: 'client_credentials', scope: 'wiki.read', resource: WIKI };
  const basic = `Basic ${Buffer.from(`legacy-svc:${secret}`).toString('base64')}`;
  for (const allow of [false, true]) {
    const w = await startWorld({ principals: [legacy], clientAuth: { allowSharedSecrets: allow } });
    try {
      const meta = (await (await fetch(`${w.url}/.well-known/oauth-authorization-server`)).json()) as { token_endpoint_auth_methods_supported: string[] };
      const post = await postForm(w, '/oauth/token', { ...form, client_id: 'legacy-svc', client_secret: secret });
      const viaBasic = await postForm(w, '/oauth/token', form, { authorization: basic });
      const wrong = await postForm(w, '/oauth/token', { ...form, client_id: 'legacy-svc', client_secret: `${secret}x` });
      assert.equal(wrong.status, 401);
      if (allow) {
        assert.deepEqual(meta.token_endpoint_auth_methods_supported, ['private_key_jwt', 'client_secret_basic', 'client_secret_post']);
        assert.equal(post.status, 200, JSON.stringify(post.body));
        assert.equal(viaBasic.status, 200, JSON.stringify(viaBasic.body));
      } else {
        assert.deepEqual(meta.token_endpoint_auth_methods_supported, ['private_key_jwt']);
        assert.equal(post.status, 401);
        assert.match(String(post.body.error_description), /shared-secret client authentication .* is disabled/);
        assert.equal(viaBasic.status, 401);
        assert.equal(viaBasic.headers.get('www-authenticate'), 'Basic realm="mandate"', 'RFC 6749 §5.2: the challenge of the scheme tried');
      }
    } finally {
      await w.close();
    }
  }
});

test('logs hold no token, assertion, proof or secret, whatever the outcome (trace level)', async () => {
  const lines: string[] = [];
  const w = await startWorld({}, lines);
  const secrets: string[] = [];
  try {
    const alice = await w.idp.userToken('alice', { resource: IDP_AUDIENCE });
    secrets.push(alice);
    const a1 = await assertion(w, 'sales-bot', w.keys.salesBot);
    secrets.push(a1);
    const ok = await postForm(w, '/oauth/token', { grant_type: EXCHANGE, subject_token: alice, subject_token_type: ACCESS_TOKEN, resource: CRM, scope: 'crm.read', client_assertion_type: JWT_BEARER, client_assertion: a1 });
    assert.equal(ok.status, 200);
    secrets.push(ok.body.access_token as string);
    const bad = `${alice.slice(0, -6)}AAAAAA`;
    const a2 = await assertion(w, 'sales-bot', w.keys.salesBot);
    secrets.push(bad, a2);
    assert.equal((await postForm(w, '/oauth/token', { grant_type: EXCHANGE, subject_token: bad, subject_token_type: ACCESS_TOKEN, resource: CRM, scope: 'crm.read', client_assertion_type: JWT_BEARER, client_assertion: a2 })).status, 400);
    const key = await newKey('dpop');
    const p = await proof(key, 'POST', `${w.url}/oauth/token`);
    secrets.push(p);
    await postForm(w, '/oauth/token', { grant_type: EXCHANGE, subject_token: alice, subject_token_type: ACCESS_TOKEN, resource: CRM, scope: 'wiki.read', client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'help-bot', w.keys.helpBot) }, { dpop: p });
    await fetch(`${w.url}/access/v1/evaluation`, { method: 'POST', headers: { authorization: `Bearer ${ok.body.access_token as string}`, 'content-type': 'application/json' }, body: '{}' });
    await postForm(w, '/oauth/introspect', { token: ok.body.access_token as string, client_assertion_type: JWT_BEARER, client_assertion: await assertion(w, 'pep', w.keys.pep) });
  } finally {
    await w.close();
  }
  assert.ok(lines.length > 5, 'the logger was written to');
  const text = lines.join('');
  assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, 'no JWT-shaped string in any log line');
  for (const secret of secrets) assert.ok(!text.includes((secret.split('.')[2] ?? secret).slice(0, 24)), 'no signature of any presented token');
});

test('DPoP server nonces (dpop.nonce: required): use_dpop_nonce with a DPoP-Nonce header; openid-client retries with it and succeeds', async () => {
  const w = await startWorld({ dpop: { nonce: 'required' } });
  try {
    const alice = await staticUserToken(w);
    const key = await newKey('dpop');
    const first = await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: alice, scope: 'crm.read' }, { dpop: await proof(key, 'POST', `${w.url}/oauth/token`) });
    assert.equal(first.status, 400);
    assert.equal(first.body.error, 'use_dpop_nonce');
    const nonce = first.headers.get('dpop-nonce');
    assert.ok(nonce, 'the nonce comes back in DPoP-Nonce');
    const second = await exchange(w, 'sales-bot', w.keys.salesBot, { subject_token: alice, scope: 'crm.read' }, { dpop: await proof(key, 'POST', `${w.url}/oauth/token`, { nonce }) });
    assert.equal(second.status, 200, JSON.stringify(second.body));

    const cfg = await oauthClient(w, 'sales-bot', w.keys.salesBot);
    const dpop = oc.getDPoPHandle(cfg, await oc.randomDPoPKeyPair('ES256'));
    const grant = () => oc.genericGrantRequest(cfg, EXCHANGE, { subject_token: alice, subject_token_type: ACCESS_TOKEN, resource: CRM, scope: 'crm.read' }, { DPoP: dpop });
    // openid-client surfaces use_dpop_nonce once (it has learnt the nonce) and the retry succeeds.
    const tokens = await grant().catch((err: unknown) => {
      if (oc.ResponseBodyError && err instanceof oc.ResponseBodyError && err.error === 'use_dpop_nonce') return grant();
      throw err;
    });
    assert.equal(tokens.token_type, 'dpop');
  } finally {
    await w.close();
  }
});

/**
 * Shared Signals on a real node: an IdP (a test transmitter on loopback, publishing its JWKS) pushes CAEP
 * `session-revoked` for alice and her open task is revoked before the 202; Mandate, as a transmitter, pushes a
 * signed `session-revoked` SET to a subscribed receiver (a loopback server) when it revokes a task.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, SignJWT } from 'jose';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/index.ts';
import { startMandate } from '../../src/cli/start-mandate.ts';
import { createLogger } from '../../src/server/index.ts';
import { generateKek } from '../../src/tokens/key-encryption.ts';
import { AUD, EXAMPLES, ISS, newKey, type Key } from '../fixtures/oauth-world.ts';

const CRM = 'https://crm.test/mcp';
const SESSION_REVOKED = 'https://schemas.openid.net/secevent/caep/event-type/session-revoked';


function listen(handler: (req: IncomingMessage, body: string) => { status: number; body?: string; type?: string }): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const r = handler(req, body);
      res.writeHead(r.status, r.type === undefined ? {} : { 'content-type': r.type });
      res.end(r.body ?? '');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })));
}

test('signals: a CAEP session-revoked from the IdP revokes the user\'s task; Mandate tells its subscribers', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-signals-'));
  const policyDir = join(dir, 'policies');
  await cp(EXAMPLES, policyDir, { recursive: true });
  const idpKey = await newKey('corp');
  const setKey = await newKey('ssf-1');
  await writeFile(join(dir, 'corp.json'), JSON.stringify({ keys: [idpKey.publicJwk] }));
  const transmitter = await listen(() => ({ status: 200, type: 'application/json', body: JSON.stringify({ keys: [setKey.publicJwk] }) }));
  const received: string[] = [];
  const subscriber = await listen((req, body) => {
    if (req.headers.authorization !== 'Bearer subscriber-secret') return { status: 401 };
    received.push(body);
    return { status: 202 };
  });
  t.after(async () => {
    await new Promise((r) => transmitter.server.close(r));
    await new Promise((r) => subscriber.server.close(r));
    await rm(dir, { recursive: true, force: true });
  });
  const agentKey = await newKey('outreach-1');
  const siemKey = await newKey('siem-1');
  const jwks = (k: Key) => [{ type: 'jwks', jwks: { keys: [k.publicJwk] } }];
  const config = parseConfig(
    stringify({
      store: { dataDir: join(dir, 'data') },
      policy: { dir: policyDir, watch: false },
      identity: { issuers: [{ issuer: ISS, jwksFile: 'corp.json', audiences: [AUD] }], outbound: { allowHttp: true, allowPrivateNetworks: true } },
      resources: [{ uri: CRM, scopes: { 'crm.search': [{ action: 'call', resource: { type: 'Tool', id: 'crm.search' } }] } }],
      principals: [
        { id: 'sales-outreach', kind: 'agent', name: 'Outreach', owner: 'alice', mode: 'autonomous', workflows: ['lead-followup'], audiences: [CRM], dpop: 'optional', credentials: jwks(agentKey) },
        { id: 'siem', kind: 'service', name: 'SIEM', owner: 'carol', apiScopes: ['signals:manage'], dpop: 'optional', credentials: jwks(siemKey) },
      ],
      signals: {
        receiver: { enabled: true, transmitters: [{ id: 'corp', issuer: ISS, jwksUri: `${transmitter.url}/jwks`, audience: 'https://mandate.test/ssf' }] },
        transmitter: { enabled: true, delivery: { maxAttempts: 2, initialBackoffMs: 1, maxBackoffMs: 5 } },
      },
    }),
    { source: 'test', env: {}, baseDir: dir, cwd: dir },
  );
  config.server.port = 0;
  const node = await startMandate(config, { env: { MANDATE_KEK: generateKek() }, logger: createLogger({ level: 'silent' }) });
  t.after(() => node.stop());
  const url = node.url;

  const assertion = (clientId: string, key: Key) =>
    new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer(clientId).setSubject(clientId).setAudience(url).setIssuedAt().setExpirationTime('60s').sign(key.privateKey);
  const form = async (path: string, f: Record<string, string>) => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(f) });
    return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
  };

  // The SIEM subscribes to Mandate's revocations.
  const api = await form('/oauth/token', { grant_type: 'client_credentials', resource: url, scope: 'signals:manage', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await assertion('siem', siemKey) });
  assert.equal(api.status, 200, JSON.stringify(api.body));
  const meta = (await (await fetch(`${url}/.well-known/ssf-configuration`)).json()) as Record<string, unknown>;
  assert.equal(meta.issuer, url);
  const stream = await fetch(`${url}/ssf/stream`, {
    method: 'POST',
    headers: { authorization: `Bearer ${api.body.access_token as string}`, 'content-type': 'application/json' },
    body: JSON.stringify({ delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: `${subscriber.url}/events`, authorization_header: 'Bearer subscriber-secret' }, events_requested: [SESSION_REVOKED] }),
  });
  assert.equal(stream.status, 201, await stream.clone().text());
  const stored = await node.store.ssfStreams.listByOwner('siem');
  assert.equal(stored.length, 1);
  assert.doesNotMatch(JSON.stringify(stored), /subscriber-secret/, 'the push secret is sealed at rest');

  // alice's agent opens a task.
  const userToken = await new SignJWT({ sub: 'alice', jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: 'corp', typ: 'at+jwt' }).setIssuer(ISS).setAudience(AUD).setIssuedAt().setExpirationTime('10m').sign(idpKey.privateKey);
  const opened = await form('/oauth/token', {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: userToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    resource: CRM,
    scope: 'crm.search',
    authorization_details: JSON.stringify([{ type: 'mandate_task', workflow: 'lead-followup', purpose: 'follow up' }]),
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await assertion('sales-outreach', agentKey),
  });
  assert.equal(opened.status, 200, JSON.stringify(opened.body));
  const taskId = String((opened.body.authorization_details as Array<Record<string, unknown>>)[0]?.task_id);

  // The IdP says alice's session is revoked: the task is revoked before the 202.
  const set = await new SignJWT({
    jti: randomUUID(),
    sub_id: { format: 'iss_sub', iss: ISS, sub: 'alice' },
    events: { [SESSION_REVOKED]: { initiating_entity: 'policy', event_timestamp: Math.floor(Date.now() / 1000) } },
  })
    .setProtectedHeader({ alg: 'ES256', kid: 'ssf-1', typ: 'secevent+jwt' })
    .setIssuer(ISS)
    .setAudience('https://mandate.test/ssf')
    .setIssuedAt()
    .sign(setKey.privateKey);
  const pushed = await fetch(`${url}/ssf/events/corp`, { method: 'POST', headers: { 'content-type': 'application/secevent+jwt' }, body: set });
  assert.equal(pushed.status, 202, await pushed.clone().text());
  const task = await node.store.tasks.get(taskId);
  assert.equal(task?.status, 'revoked');
  assert.equal(task?.endReason, 'caep_session_revoked');
  // The same SET again is a replay.
  const replayed = await fetch(`${url}/ssf/events/corp`, { method: 'POST', headers: { 'content-type': 'application/secevent+jwt' }, body: set });
  assert.equal(replayed.status, 400);

  // Mandate pushed its own SET about the revoked task to the subscriber: signed with its published keys.
  await node.signals?.transmitter?.drain();
  assert.equal(received.length, 1, 'one SET delivered');
  const { payload, protectedHeader } = await jwtVerify(received[0] as string, createRemoteJWKSet(new URL(`${url}/oauth/jwks`)), { issuer: url, typ: 'secevent+jwt' });
  assert.equal(protectedHeader.typ, 'secevent+jwt');
  const events = payload.events as Record<string, Record<string, unknown>>;
  assert.ok(events[SESSION_REVOKED], 'a CAEP session-revoked event');
  assert.match(JSON.stringify(payload), new RegExp(taskId));
});

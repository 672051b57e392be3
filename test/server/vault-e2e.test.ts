/**
 * The gateway vault on a real node: alice connects her token for a "SaaS" MCP server (a loopback server that
 * accepts only the tokens it issued her) through `/vault/v1/credentials`; a task's tool call through `/mcp/saas`
 * reaches it with alice's token, never the mandate; an expiring token is refreshed at a loopback token endpoint
 * (client authenticated, refresh token rotated and stored sealed); a revoked credential fails the call closed with
 * `upstream_credential_missing` before anything reaches the upstream; bob neither sees nor revokes alice's; an admin
 * service with `vault:admin` revokes anyone's; no plaintext token sits in the database or the audit log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { exportJWK, SignJWT } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/index.ts';
import { startMandate } from '../../src/cli/start-mandate.ts';
import { createLogger } from '../../src/server/index.ts';
import { generateKek } from '../../src/tokens/key-encryption.ts';
import { MandateClient } from '../../src/sdk/index.ts';
import { AUD, EXAMPLES, ISS, JWT_BEARER, newKey, type Key } from '../fixtures/oauth-world.ts';

const SAAS_RESOURCE = 'https://mandate.test/mcp/saas';
const CLIENT_SECRET = 'mandate-client-secret';

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The SaaS: an MCP server that answers only requests with one of the access tokens it issued. */
async function startSaas() {
  const valid = new Set<string>(['saas-at-1']);
  const seen: string[] = [];
  const runs: string[] = [];
  const http = createServer((req, res) => {
    void (async () => {
      const text = await body(req);
      const auth = req.headers.authorization ?? '';
      seen.push(auth);
      if (!valid.has(auth.replace(/^Bearer /, ''))) {
        res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
        return;
      }
      const server = new McpServer({ name: 'saas', version: '1.0.0' });
      server.registerTool('search', { description: 'search the SaaS', inputSchema: { query: z.string() } }, async () => {
        runs.push('search');
        return { content: [{ type: 'text' as const, text: 'lead-1' }] };
      });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      await server.connect(transport);
      res.on('close', () => void server.close());
      await transport.handleRequest(req, res, text === '' ? undefined : JSON.parse(text));
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`, valid, seen, runs, close: () => new Promise((r) => http.close(r)) };
}

/** The SaaS's token endpoint: the refresh_token grant with client authentication and refresh token rotation. */
async function startTokenEndpoint(saas: { valid: Set<string> }) {
  const refreshTokens = new Set<string>(['saas-rt-1']);
  const presented: Array<{ refreshToken: string | null; authorization: string | undefined; clientIdInBody: string | null }> = [];
  let n = 1;
  let nextExpiresIn = 30;
  const http = createServer((req, res) => {
    void (async () => {
      const form = new URLSearchParams(await body(req));
      const rt = form.get('refresh_token');
      presented.push({ refreshToken: rt, authorization: req.headers.authorization, clientIdInBody: form.get('client_id') });
      const json = (status: number, value: unknown) => res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(value));
      if (req.headers.authorization !== `Basic ${Buffer.from(`mandate:${CLIENT_SECRET}`).toString('base64')}`) return json(401, { error: 'invalid_client' });
      if (form.get('grant_type') !== 'refresh_token' || rt === null || !refreshTokens.has(rt)) return json(400, { error: 'invalid_grant' });
      refreshTokens.delete(rt);
      n += 1;
      saas.valid.clear();
      saas.valid.add(`saas-at-${n}`);
      refreshTokens.add(`saas-rt-${n}`);
      const expiresIn = nextExpiresIn;
      nextExpiresIn = 3600;
      return json(200, { access_token: `saas-at-${n}`, token_type: 'Bearer', expires_in: expiresIn, refresh_token: `saas-rt-${n}` });
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/token`, presented, close: () => new Promise((r) => http.close(r)) };
}

test('the gateway vault: a tool call reaches the SaaS with the user\'s connected token; refreshed when expiring; revoked fails closed; users are kept apart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-vault-'));
  const policyDir = join(dir, 'policies');
  await cp(EXAMPLES, policyDir, { recursive: true });
  const idp = await newKey('corp');
  await writeFile(join(dir, 'corp.json'), JSON.stringify({ keys: [idp.publicJwk] }));
  const agent = await newKey('outreach-1');
  const helpdesk = await newKey('helpdesk-1');
  const saas = await startSaas();
  const tokenEndpoint = await startTokenEndpoint(saas);
  t.after(async () => {
    await saas.close();
    await tokenEndpoint.close();
    await rm(dir, { recursive: true, force: true });
  });
  const config = parseConfig(
    stringify({
      store: { dataDir: join(dir, 'data') },
      policy: { dir: policyDir, watch: false },
      identity: { issuers: [{ issuer: ISS, jwksFile: 'corp.json', audiences: [AUD] }], outbound: { allowHttp: true, allowPrivateNetworks: true } },
      resources: [{ uri: SAAS_RESOURCE, scopes: { 'crm.search': [{ action: 'call', resource: { type: 'Tool', id: 'crm.search' } }] } }],
      principals: [
        { id: 'sales-outreach', kind: 'agent', name: 'Outreach', owner: 'alice', mode: 'autonomous', workflows: ['lead-followup'], audiences: [SAAS_RESOURCE], dpop: 'optional', credentials: [{ type: 'jwks', jwks: { keys: [agent.publicJwk] } }] },
        { id: 'helpdesk', kind: 'service', name: 'Helpdesk', owner: 'carol', apiScopes: ['vault:admin'], dpop: 'optional', credentials: [{ type: 'jwks', jwks: { keys: [helpdesk.publicJwk] } }] },
      ],
      gateway: {
        upstreams: [
          {
            id: 'saas',
            url: saas.url,
            resource: SAAS_RESOURCE,
            credential: { type: 'vault', tokenEndpoint: tokenEndpoint.url, clientId: 'mandate', clientSecretEnv: 'SAAS_CLIENT_SECRET' },
            tools: { search: { action: 'call', resource: { type: 'Tool', id: 'crm.search' } } },
          },
        ],
      },
    }),
    { source: 'test', env: {}, baseDir: dir, cwd: dir },
  );
  config.server.port = 0;
  const node = await startMandate(config, { env: { MANDATE_KEK: generateKek(), SAAS_CLIENT_SECRET: CLIENT_SECRET }, logger: createLogger({ level: 'silent' }) });
  t.after(() => node.stop());

  const idToken = (sub: string) => new SignJWT({ sub, jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: 'corp', typ: 'at+jwt' }).setIssuer(ISS).setAudience(AUD).setIssuedAt().setExpirationTime('10m').sign(idp.privateKey);
  const alice = await idToken('alice');
  const bob = await idToken('bob');
  const vault = (method: string, path: string, token: string, payload?: unknown) =>
    fetch(`${node.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) }, ...(payload === undefined ? {} : { body: JSON.stringify(payload) }) });
  const rawCall = (mandate: string) =>
    fetch(`${node.url}/mcp/saas`, {
      method: 'POST',
      headers: { authorization: `Bearer ${mandate}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"query":"ACME"}}}',
    });

  // The API needs a person's IdP token; a wrong upstream is not found.
  assert.equal((await fetch(`${node.url}/vault/v1/credentials`)).status, 401);
  assert.equal((await vault('PUT', '/vault/v1/credentials/nope', alice, { access_token: 'x' })).status, 404);
  assert.equal((await vault('PUT', '/vault/v1/credentials/saas', alice, { access_token: 'x', extra: 1 })).status, 400);

  const mandate = new MandateClient({ issuer: node.url, clientId: 'sales-outreach', jwk: { ...(await exportJWK(agent.privateKey)), kid: agent.kid, alg: 'ES256' } });
  const task = await mandate.startTask({ userToken: alice, workflow: 'lead-followup', purpose: 'follow up ACME', resource: SAAS_RESOURCE, scope: 'crm.search', dpop: false });
  const taskMandate = await task.token(SAAS_RESOURCE);

  // Not connected yet: fails closed, nothing reaches the SaaS.
  const notYet = await rawCall(taskMandate);
  assert.equal(notYet.status, 403);
  assert.match(await notYet.text(), /upstream_credential_missing/);
  assert.equal(saas.seen.length, 0, 'without a connected credential the upstream is never called');

  // alice connects her token.
  const connected = await vault('PUT', '/vault/v1/credentials/saas', alice, { access_token: 'saas-at-1', refresh_token: 'saas-rt-1', expires_in: 3600, token_type: 'Bearer' });
  assert.equal(connected.status, 200);
  const connectedText = await connected.text();
  assert.doesNotMatch(connectedText, /saas-at-1|saas-rt-1/);
  assert.equal((JSON.parse(connectedText) as { upstream: string }).upstream, 'saas');

  // Only she sees it; the answer holds no secret.
  const mine = (await (await vault('GET', '/vault/v1/credentials', alice)).json()) as { credentials: Array<Record<string, unknown>> };
  assert.deepEqual(mine.credentials.map((c) => c.upstream), ['saas']);
  assert.ok(typeof mine.credentials[0]?.expires_at === 'string' && typeof mine.credentials[0]?.connected_at === 'string');
  assert.doesNotMatch(JSON.stringify(mine), /saas-at-1|saas-rt-1/);
  assert.deepEqual(((await (await vault('GET', '/vault/v1/credentials', bob)).json()) as { credentials: unknown[] }).credentials, [], 'bob does not see alice\'s');
  assert.equal((await vault('DELETE', '/vault/v1/credentials/saas', bob)).status, 404, 'bob cannot revoke alice\'s');

  // A tool call reaches the SaaS with alice's token, never the mandate.
  const client = new Client({ name: 'agent', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${node.url}/mcp/saas`), { authProvider: task.mcpAuthProvider(SAAS_RESOURCE) }));
  const found = await client.callTool({ name: 'search', arguments: { query: 'ACME' } });
  assert.match(JSON.stringify(found.content), /lead-1/);
  assert.equal(saas.seen.at(-1), 'Bearer saas-at-1');
  assert.ok(saas.seen.every((a) => !a.includes(taskMandate)), 'the mandate never reaches the upstream');
  assert.equal(tokenEndpoint.presented.length, 0, 'a fresh token is not refreshed');

  // Expiring (within the refresh margin): refreshed at the token endpoint, with client authentication; the new
  // token is used and the rotated refresh token is the one presented next time.
  assert.equal((await vault('PUT', '/vault/v1/credentials/saas', alice, { access_token: 'saas-at-1', refresh_token: 'saas-rt-1', expires_in: 30 })).status, 200);
  await client.callTool({ name: 'search', arguments: { query: 'ACME' } });
  assert.equal(saas.seen.at(-1), 'Bearer saas-at-2');
  assert.equal(tokenEndpoint.presented.length, 1);
  assert.equal(tokenEndpoint.presented[0]?.refreshToken, 'saas-rt-1');
  assert.equal(tokenEndpoint.presented[0]?.clientIdInBody, null, 'a confidential client authenticates with HTTP Basic, not in the body');
  // saas-at-2 came with expires_in 30: refreshed again, with the rotated refresh token.
  await client.callTool({ name: 'search', arguments: { query: 'ACME' } });
  assert.equal(tokenEndpoint.presented[1]?.refreshToken, 'saas-rt-2', 'the rotated refresh token was stored and used');
  assert.equal(saas.seen.at(-1), 'Bearer saas-at-3');
  await client.callTool({ name: 'search', arguments: { query: 'ACME' } });
  assert.equal(tokenEndpoint.presented.length, 2, 'a token valid for an hour is not refreshed');

  // The stored row is sealed: no plaintext token in the row, the database files or the audit log.
  const row = await node.store.vault.get('saas', { iss: ISS, sub: 'alice' });
  assert.ok(row !== undefined && row.sealedAccessToken.split('.').length === 5 && row.sealedRefreshToken?.split('.').length === 5, 'compact JWEs');
  assert.doesNotMatch(JSON.stringify(row), /saas-(at|rt)-\d/);
  for (const f of await readdir(join(dir, 'data'))) {
    const bytes = await readFile(join(dir, 'data', f)).catch(() => Buffer.alloc(0));
    assert.ok(!/saas-(at|rt)-\d/.test(bytes.toString('latin1')), `no plaintext token in ${f}`);
  }
  const events = await node.store.audit.list({ limit: 10_000 });
  assert.doesNotMatch(JSON.stringify(events), /saas-(at|rt)-\d|mandate-client-secret/);
  const operations = events.filter((e) => e.type === 'admin').map((e) => (e.data as { operation?: string } | undefined)?.operation);
  assert.ok(operations.includes('vault.connect') && operations.includes('vault.refresh'));

  // alice revokes: the next call fails closed with the reason code and never reaches the SaaS.
  assert.equal((await vault('DELETE', '/vault/v1/credentials/saas', alice)).status, 204);
  const runs = saas.runs.length;
  const seen = saas.seen.length;
  await assert.rejects(client.callTool({ name: 'search', arguments: { query: 'ACME' } }), /upstream_credential_missing/);
  const refused = await rawCall(await task.token(SAAS_RESOURCE));
  assert.equal(refused.status, 403);
  assert.match(await refused.text(), /upstream_credential_missing/);
  assert.equal(saas.runs.length, runs);
  assert.equal(saas.seen.length, seen, 'a revoked credential: the upstream is never called');
  assert.deepEqual(((await (await vault('GET', '/vault/v1/credentials', alice)).json()) as { credentials: unknown[] }).credentials, []);
  const revokedRow = await node.store.vault.get('saas', { iss: ISS, sub: 'alice' });
  assert.ok(revokedRow?.revokedAt !== undefined && revokedRow.sealedAccessToken === '' && revokedRow.sealedRefreshToken === undefined, 'a revoked row keeps no token');

  // An admin service with vault:admin revokes anyone's; without the scope, nobody else can.
  assert.equal((await vault('PUT', '/vault/v1/credentials/saas', alice, { access_token: 'saas-at-3' })).status, 200);
  const admin = `/vault/v1/admin/credentials/saas?iss=${encodeURIComponent(ISS)}&sub=alice`;
  assert.equal((await vault('DELETE', admin, bob)).status, 401, 'a person\'s IdP token is not an admin credential');
  const assertion = (clientId: string, key: Key) =>
    new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer(clientId).setSubject(clientId).setAudience(node.url).setIssuedAt().setExpirationTime('60s').sign(key.privateKey);
  const tokenRes = await fetch(`${node.url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: node.url, scope: 'vault:admin', client_assertion_type: JWT_BEARER, client_assertion: await assertion('helpdesk', helpdesk) }),
  });
  const apiToken = ((await tokenRes.json()) as { access_token: string }).access_token;
  assert.equal((await vault('DELETE', admin, apiToken)).status, 204);
  assert.equal((await vault('DELETE', admin, apiToken)).status, 404);
  assert.ok((await node.store.audit.list({ limit: 10_000 })).some((e) => (e.data as { operation?: string } | undefined)?.operation === 'vault.revoke' && e.actor === 'helpdesk'));
  await client.close().catch(() => undefined);
});

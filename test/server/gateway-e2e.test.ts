/**
 * The MCP gateway on a real node: a stock MCP SDK client, authenticated by a task's mandate (Mandate's SDK auth
 * provider), calls tools of an upstream MCP server through `/mcp/crm`. Allowed calls reach the upstream with the
 * gateway's own token (never the caller's), out-of-plan calls are denied with a reason code and never reach it,
 * records above the task's ceiling are removed from results, and after the task ends the next call fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { decodeJwt, exportJWK, SignJWT } from 'jose';
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
import { AUD, EXAMPLES, ISS, newKey } from '../fixtures/oauth-world.ts';

const CRM_RESOURCE = 'https://mandate.test/mcp/crm';


async function startUpstream() {
  const seen: IncomingHttpHeaders[] = [];
  const runs: string[] = [];
  const http = createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      seen.push(req.headers);
      const body: unknown = chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const server = new McpServer({ name: 'crm', version: '1.0.0' });
      server.registerTool('search', { description: 'search the CRM', inputSchema: { query: z.string() } }, async () => {
        runs.push('search');
        const structured = { records: [{ id: 'lead-1', sensitivity: 'internal' }, { id: 'salary-9', sensitivity: 'restricted' }] };
        return { content: [{ type: 'text' as const, text: JSON.stringify(structured) }], structuredContent: structured };
      });
      server.registerTool('update', { description: 'update a lead', inputSchema: { leadId: z.string() } }, async () => {
        runs.push('update');
        return { content: [{ type: 'text' as const, text: 'ok' }] };
      });
      server.registerTool('refund', { description: 'refund', inputSchema: { amount: z.number() } }, async () => {
        runs.push('refund');
        return { content: [{ type: 'text' as const, text: 'refunded' }] };
      });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      await server.connect(transport);
      res.on('close', () => void server.close());
      await transport.handleRequest(req, res, body);
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`, seen, runs, close: () => new Promise((r) => http.close(r)) };
}

test('the MCP gateway: a stock MCP client with a task mandate; allowed, out-of-plan and ended-task calls; no token passthrough; results held to the ceiling', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-gateway-'));
  const policyDir = join(dir, 'policies');
  await cp(EXAMPLES, policyDir, { recursive: true });
  const idp = await newKey('corp');
  await writeFile(join(dir, 'corp.json'), JSON.stringify({ keys: [idp.publicJwk] }));
  const agent = await newKey('outreach-1');
  const upstream = await startUpstream();
  t.after(async () => {
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  });
  const config = parseConfig(
    stringify({
      store: { dataDir: join(dir, 'data') },
      policy: { dir: policyDir, watch: false },
      identity: { issuers: [{ issuer: ISS, jwksFile: 'corp.json', audiences: [AUD] }] },
      resources: [
        {
          uri: CRM_RESOURCE,
          scopes: {
            'crm.search': [{ action: 'call', resource: { type: 'Tool', id: 'crm.search' } }],
            'crm.update': [{ action: 'call', resource: { type: 'Tool', id: 'crm.update' } }],
          },
        },
      ],
      principals: [
        { id: 'sales-outreach', kind: 'agent', name: 'Outreach', owner: 'alice', mode: 'autonomous', workflows: ['lead-followup'], audiences: [CRM_RESOURCE], dpop: 'optional', credentials: [{ type: 'jwks', jwks: { keys: [agent.publicJwk] } }] },
      ],
      gateway: {
        upstreams: [
          {
            id: 'crm',
            url: upstream.url,
            resource: CRM_RESOURCE,
            credential: { type: 'token_exchange', audience: 'https://crm.internal' },
            tools: {
              search: { action: 'call', resource: { type: 'Tool', id: 'crm.search' } },
              update: { action: 'call', resource: { type: 'Tool', id: 'crm.update' } },
              refund: { action: 'trigger', resource: { type: 'Tool', id: 'payments.refund' } },
            },
          },
        ],
      },
    }),
    { source: 'test', env: {}, baseDir: dir, cwd: dir },
  );
  config.server.port = 0;
  const node = await startMandate(config, { env: { MANDATE_KEK: generateKek() }, logger: createLogger({ level: 'silent' }) });
  t.after(() => node.stop());

  const userToken = await new SignJWT({ sub: 'alice', jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: 'corp', typ: 'at+jwt' }).setIssuer(ISS).setAudience(AUD).setIssuedAt().setExpirationTime('10m').sign(idp.privateKey);
  const mandate = new MandateClient({ issuer: node.url, clientId: 'sales-outreach', jwk: { ...(await exportJWK(agent.privateKey)), kid: agent.kid, alg: 'ES256' } });
  const task = await mandate.startTask({ userToken, workflow: 'lead-followup', purpose: 'follow up ACME', resource: CRM_RESOURCE, scope: 'crm.search crm.update', dpop: false });

  // RFC 9728 metadata and the challenge for an unauthenticated request.
  const prm = (await (await fetch(`${node.url}/.well-known/oauth-protected-resource/mcp/crm`)).json()) as Record<string, unknown>;
  assert.equal(prm.resource, CRM_RESOURCE);
  assert.deepEqual(prm.authorization_servers, [node.url]);
  const anonymous = await fetch(`${node.url}/mcp/crm`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
  assert.equal(anonymous.status, 401);
  assert.match(anonymous.headers.get('www-authenticate') ?? '', /resource_metadata="[^"]+\/\.well-known\/oauth-protected-resource\/mcp\/crm"/);

  const client = new Client({ name: 'agent', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${node.url}/mcp/crm`), { authProvider: task.mcpAuthProvider(CRM_RESOURCE) }));

  // Listing shows only what the task may use; refund is not in lead-followup.
  const listed = await client.listTools();
  assert.deepEqual(listed.tools.map((x) => x.name).sort(), ['search', 'update']);

  // An allowed call reaches the upstream with the gateway's own token; the restricted record is removed.
  const found = await client.callTool({ name: 'search', arguments: { query: 'ACME' } });
  const records = (found.structuredContent as { records: Array<{ id: string }> }).records.map((r) => r.id);
  assert.deepEqual(records, ['lead-1'], 'a record above the workflow ceiling (confidential) is removed');
  assert.doesNotMatch(JSON.stringify(found.content), /salary-9/);
  const toUpstream = upstream.seen.at(-1)?.authorization ?? '';
  const mandateNow = await task.token(CRM_RESOURCE);
  assert.ok(!toUpstream.includes(mandateNow), 'the caller token never reaches the upstream');
  const upstreamClaims = decodeJwt(toUpstream.replace(/^Bearer /, ''));
  assert.equal(upstreamClaims.aud, 'https://crm.internal');
  assert.equal(upstreamClaims.sub, 'alice');
  assert.deepEqual(upstreamClaims.act, { sub: 'mandate-gateway', act: { sub: 'sales-outreach' } });

  // Out of plan: never reaches the upstream.
  const before = upstream.runs.length;
  await assert.rejects(client.callTool({ name: 'refund', arguments: { amount: 5 } }), /denied|not in the workflow|refused/i);
  await assert.rejects(client.callTool({ name: 'Search', arguments: { query: 'x' } }));
  assert.equal(upstream.runs.length, before, 'denied calls never reach the upstream');
  assert.equal((await node.store.tasks.get(task.id))?.stepsTaken, 1, 'the allowed call was recorded as a step of the task; refused ones were not');

  // The task ends: the next call fails.
  await task.end();
  await assert.rejects(client.callTool({ name: 'search', arguments: { query: 'ACME' } }));
  const direct = await fetch(`${node.url}/mcp/crm`, {
    method: 'POST',
    headers: { authorization: `Bearer ${mandateNow}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"search","arguments":{"query":"x"}}}',
  });
  assert.equal(direct.status, 401);
  assert.match(direct.headers.get('www-authenticate') ?? '', /invalid_token/);
  assert.equal(upstream.runs.length, before);
  await client.close().catch(() => undefined);
});

test('REST tools through /http and Envoy ext_authz checks: the same mandate, task and decision path; no token passthrough', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-gateway-http-'));
  const policyDir = join(dir, 'policies');
  await cp(EXAMPLES, policyDir, { recursive: true });
  const idp = await newKey('corp');
  await writeFile(join(dir, 'corp.json'), JSON.stringify({ keys: [idp.publicJwk] }));
  const agent = await newKey('outreach-1');
  const seen: IncomingHttpHeaders[] = [];
  const rest = createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url, results: ['lead-1'] }));
  });
  await new Promise<void>((r) => rest.listen(0, '127.0.0.1', () => r()));
  const restUrl = `http://127.0.0.1:${(rest.address() as AddressInfo).port}`;
  t.after(async () => {
    await new Promise((r) => rest.close(r));
    await rm(dir, { recursive: true, force: true });
  });
  const RESOURCE = 'https://crm-rest.test/';
  const rules = [
    { method: 'POST', path: '/search', action: 'call', resource: { type: 'Tool', id: 'crm.search' } },
    { method: 'POST', path: '/refunds', action: 'trigger', resource: { type: 'Tool', id: 'payments.refund' } },
  ];
  const config = parseConfig(
    stringify({
      store: { dataDir: join(dir, 'data') },
      policy: { dir: policyDir, watch: false },
      identity: { issuers: [{ issuer: ISS, jwksFile: 'corp.json', audiences: [AUD] }] },
      resources: [{ uri: RESOURCE, scopes: { 'crm.search': [{ action: 'call', resource: { type: 'Tool', id: 'crm.search' } }] } }],
      principals: [{ id: 'sales-outreach', kind: 'agent', name: 'Outreach', owner: 'alice', mode: 'autonomous', workflows: ['lead-followup'], audiences: [RESOURCE], dpop: 'optional', credentials: [{ type: 'jwks', jwks: { keys: [agent.publicJwk] } }] }],
      gateway: { http: { crm: { upstream: restUrl, resource: RESOURCE, rules } }, extAuthz: { enabled: true, resource: RESOURCE, rules } },
    }),
    { source: 'test', env: {}, baseDir: dir, cwd: dir },
  );
  config.server.port = 0;
  const node = await startMandate(config, { env: { MANDATE_KEK: generateKek() }, logger: createLogger({ level: 'silent' }) });
  t.after(() => node.stop());
  const userToken = await new SignJWT({ sub: 'alice', jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: 'corp', typ: 'at+jwt' }).setIssuer(ISS).setAudience(AUD).setIssuedAt().setExpirationTime('10m').sign(idp.privateKey);
  const mandate = new MandateClient({ issuer: node.url, clientId: 'sales-outreach', jwk: { ...(await exportJWK(agent.privateKey)), kid: agent.kid, alg: 'ES256' } });
  const task = await mandate.startTask({ userToken, workflow: 'lead-followup', purpose: 'follow up ACME', resource: RESOURCE, scope: 'crm.search', dpop: false });
  const token = await task.token(RESOURCE);
  const call = (path: string, headers: Record<string, string> = {}) => fetch(`${node.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers }, body: '{"query":"ACME"}' });

  const ok = await call('/http/crm/search');
  assert.equal(ok.status, 200, await ok.clone().text());
  assert.deepEqual(((await ok.json()) as { results: string[] }).results, ['lead-1']);
  const upstreamAuth = String(seen.at(-1)?.authorization ?? '');
  assert.ok(upstreamAuth.startsWith('Bearer ') && !upstreamAuth.includes(token), 'the upstream gets the gateway token, never the caller token');
  assert.equal(decodeJwt(upstreamAuth.slice(7)).sub, 'alice');

  // Envoy ext_authz: the check request carries the original method, path and headers.
  // With with_request_body, Envoy sends the original body too.
  const check = (method: string, path: string) => fetch(`${node.url}/ext_authz${path}`, { method, headers: { authorization: `Bearer ${token}`, host: 'crm-rest.test', 'content-type': 'application/json' }, body: '{"query":"ACME"}' });
  const allowed = await check('POST', '/search');
  assert.equal(allowed.status, 200);
  assert.equal(allowed.headers.get('x-mandate-user'), 'alice');
  assert.equal(allowed.headers.get('x-mandate-task'), task.id);
  // (Dot segments and encoded separators are refused before anything else: src/gateway/http-routes.test.ts sends
  // them raw; fetch would normalise them away before they left the client.)

  // Out of plan (lead-followup revokes the task on a violation): denied, never forwarded, and the task is gone.
  const out = await call('/http/crm/refunds');
  assert.equal(out.status, 403);
  assert.equal(((await out.json()) as { error: { reason_code: string } }).error.reason_code, 'action_not_in_workflow');
  assert.equal(seen.length, 1, 'a denied request never reaches the upstream');
  assert.equal((await node.store.tasks.get(task.id))?.status, 'revoked');
  assert.equal((await check('POST', '/search')).status, 401, 'the revoked task holds nothing any more');
  assert.equal((await call('/http/crm/search')).status, 401);
});

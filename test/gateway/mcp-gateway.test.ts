/**
 * The MCP gateway on loopback, end to end: a stock MCP SDK `Client` + `StreamableHTTPClientTransport` → fastify
 * with `registerMcpGateway` → an upstream `McpServer` + `StreamableHTTPServerTransport` that records every header
 * and body it receives. Mandates are real ES256 JWTs signed with the test's own key and verified by the test's
 * `authenticate`; `authorize` is a small table (crm.search forwarded, payments.refund denied, email.send pending).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fastify, type FastifyInstance } from 'fastify';
import { generateKeyPair, jwtVerify, SignJWT, type CryptoKey } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { InvalidTokenError } from '../../src/core/errors.ts';
import type { NewAuditEvent } from '../../src/audit/audit-event.ts';
import { GATEWAY_ERROR_CODES, registerMcpGateway } from '../../src/gateway/mcp-gateway.ts';
import { parseStrictJson, StrictJsonError } from '../../src/gateway/json-strict.ts';
import type { GatewayCaller, JsonRpcRequest, JsonRpcResponseMessage, UpstreamConfig } from '../../src/gateway/types.ts';

const ISSUER = 'https://mandate.test';
const CRM = 'https://gateway.test/mcp/crm';
const CRM_JSON = 'https://gateway.test/mcp/crmjson';
const UPSTREAM_SECRET = 'Bearer gateway-own-credential-for-crm';
const DENY_CODE = -32040;

// ---------------------------------------------------------------------------------------------------------
// The upstream: a stock MCP server recording what reaches it.

interface Seen {
  method: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function newMcpServer(toolRuns: string[]): McpServer {
  const server = new McpServer({ name: 'crm-upstream', version: '1.0.0' });
  const tool = (name: string, run: (args: { query: string }) => string) =>
    server.registerTool(name, { description: name, inputSchema: { query: z.string() } }, async (args) => {
      toolRuns.push(name);
      return { content: [{ type: 'text' as const, text: run(args) }] };
    });
  tool('crm.search', ({ query }) => `1 lead for ${query}`);
  tool('crm.export', () => 'x'.repeat(100_000));
  tool('crm.get_record', ({ query }) => (query === 'restricted' ? 'record 42 (restricted): SECRET' : `record ${query} (internal)`));
  tool('email.send', () => 'sent');
  tool('payments.refund', () => 'refunded');
  return server;
}

/** `stateful`: sessions and SSE answers (the SDK's defaults); otherwise stateless with JSON answers. */
async function startUpstream(stateful: boolean) {
  const seen: Seen[] = [];
  const toolRuns: string[] = [];
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const http = createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      const body = text === '' ? undefined : (JSON.parse(text) as unknown);
      seen.push({ method: req.method ?? '', headers: req.headers, body });
      if (req.headers.authorization !== UPSTREAM_SECRET) {
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="upstream"' }).end();
        return;
      }
      if (!stateful) {
        const server = newMcpServer(toolRuns);
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
        await server.connect(transport);
        res.on('close', () => void server.close());
        await transport.handleRequest(req, res, body);
        return;
      }
      const sid = req.headers['mcp-session-id'];
      let transport = typeof sid === 'string' ? transports.get(sid) : undefined;
      if (transport === undefined) {
        if (typeof sid === 'string') {
          res.writeHead(404).end();
          return;
        }
        const created = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (id) => void transports.set(id, created) });
        created.onclose = () => {
          if (created.sessionId !== undefined) transports.delete(created.sessionId);
        };
        await newMcpServer(toolRuns).connect(created);
        transport = created;
      }
      await transport.handleRequest(req, res, body);
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  const url = `${await listen(http)}/mcp`;
  return {
    url,
    seen,
    toolRuns,
    /** Every tools/call name the upstream received. */
    calledNames: () => seen.flatMap((s) => (Array.isArray(s.body) ? s.body : [s.body])).flatMap((m) => ((m as { method?: string })?.method === 'tools/call' ? [(m as { params: { name: string } }).params.name] : [])),
    sessionIds: () => [...transports.keys()],
    close: async () => {
      for (const t of transports.values()) await t.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Mandates, authentication and the authorize table.

const { privateKey, publicKey } = await generateKeyPair('ES256');

interface MandateFields {
  sub?: string;
  client?: string;
  task?: string;
  aud?: string;
  expSeconds?: number;
  key?: CryptoKey;
}
async function mandate(f: MandateFields = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ client_id: f.client ?? 'sales-outreach', act: { sub: f.client ?? 'sales-outreach' }, task: f.task ?? 'task-1', scope: 'crm.search email.send' })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
    .setIssuer(ISSUER)
    .setSubject(f.sub ?? 'alice')
    .setAudience(f.aud ?? CRM)
    .setJti(randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + (f.expSeconds ?? 300))
    .sign(f.key ?? privateKey);
}

const BEARER = /^Bearer ([A-Za-z0-9._-]+)$/;
async function authenticate(req: { authorization?: string; resource: string }): Promise<GatewayCaller> {
  if (req.authorization === undefined) throw new InvalidTokenError('send a mandate for this resource', { credentialMissing: true });
  const m = BEARER.exec(req.authorization);
  if (m === null) throw new InvalidTokenError('the Authorization header must be "Bearer <mandate>"');
  try {
    const { payload } = await jwtVerify(m[1] as string, publicKey, { issuer: ISSUER, audience: req.resource, typ: 'at+jwt' });
    const actors: string[] = [];
    for (let a = payload.act as { sub?: string; act?: unknown } | undefined; a !== undefined; a = a.act as typeof a) if (a.sub) actors.push(a.sub);
    return {
      ...(payload.sub === undefined ? {} : { userSub: payload.sub }),
      clientId: payload.client_id as string,
      actors,
      ...(typeof payload.task === 'string' ? { taskId: payload.task } : {}),
      scopes: String(payload.scope ?? '').split(' ').filter(Boolean),
      mandateJti: payload.jti as string,
      expiresAt: payload.exp as number,
    };
  } catch (err) {
    throw new InvalidTokenError('the mandate is not valid for this resource: expired, altered, or for another audience', { cause: err });
  }
}

const authorized: Array<{ caller: GatewayCaller; upstreamId: string; message: JsonRpcRequest }> = [];
async function authorize(caller: GatewayCaller, upstreamId: string, message: JsonRpcRequest) {
  authorized.push({ caller, upstreamId, message });
  const name = (message.params as { name?: unknown } | undefined)?.name;
  if (message.method === 'tools/call' && name === 'payments.refund') {
    return { kind: 'deny' as const, code: DENY_CODE, reasonCode: 'tool_not_in_workflow', message: 'payments.refund is not in the workflow of this task' };
  }
  if (message.method === 'tools/call' && name === 'email.send') {
    return { kind: 'pending' as const, approval: { id: 'apr_1', poll: '/approvals/v1/apr_1', expiresAt: '2030-01-01T00:00:00.000Z' } };
  }
  // Canonical rewrite: `_meta` never reaches the upstream (arguments cannot hide there).
  const params = { ...(message.params ?? {}) };
  delete params._meta;
  return { kind: 'forward' as const, message: { ...message, params } };
}

/** The response check: a restricted record is replaced by an error; a check that throws withholds the answer. */
const inspected: string[] = [];
async function inspectResponse(_caller: GatewayCaller, _upstreamId: string, request: JsonRpcRequest, response: JsonRpcResponseMessage): Promise<JsonRpcResponseMessage> {
  inspected.push(request.method);
  const text = JSON.stringify('result' in response ? response.result : null);
  if (text.includes('(restricted)')) return { jsonrpc: '2.0', id: response.id as number, error: { code: -32041, message: 'the record is above what this task may read', data: { reason_code: 'sensitivity_exceeded' } } };
  if ((request.params as { arguments?: { query?: string } } | undefined)?.arguments?.query === 'boom') throw new Error('classifier unavailable');
  return response;
}

// ---------------------------------------------------------------------------------------------------------
// The world: two upstreams behind one gateway.

const sse = await startUpstream(true);
const json = await startUpstream(false);
const audits: NewAuditEvent[] = [];
const upstreams = new Map<string, UpstreamConfig>([
  ['crm', { id: 'crm', url: sse.url, resource: CRM }],
  ['crmjson', { id: 'crmjson', url: json.url, resource: CRM_JSON }],
]);
const app: FastifyInstance = fastify();
registerMcpGateway(app, {
  upstreams,
  authenticate,
  authorize,
  upstreamHeaders: async () => ({ authorization: UPSTREAM_SECRET }),
  resourceMetadataUrl: (id) => `https://gateway.test/.well-known/oauth-protected-resource/mcp/${id}`,
  audit: async (event) => void audits.push(event),
  allowedOrigins: ['https://console.corp.test'],
  authorizationServers: () => [ISSUER],
  inspectResponse,
  limits: { maxResponseBytes: 64 * 1024 },
});
await app.listen({ host: '127.0.0.1', port: 0 });
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
const clients: Client[] = [];

after(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  app.server.closeAllConnections();
  await app.close();
  await sse.close();
  await json.close();
});

async function connect(upstream: string, token: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp/${upstream}`), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  const client = new Client({ name: 'agent', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return { client, transport };
}

const rpcHeaders = (token: string | undefined, extra: Record<string, string> = {}) => ({
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-06-18',
  ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
  ...extra,
});
const call = (id: number, name: string, extra: Record<string, unknown> = {}) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: { query: 'ACME' }, ...extra } });

/** The JSON-RPC messages of an SSE body. */
function sseMessages(text: string): unknown[] {
  return text
    .split('\n\n')
    .map((e) => e.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n'))
    .filter((d) => d !== '')
    .map((d) => JSON.parse(d) as unknown);
}

// ---------------------------------------------------------------------------------------------------------

test('a stock MCP client calls a tool through the gateway (SSE upstream): forwarded after authorize, with the gateway credential only', async () => {
  const token = await mandate();
  const { client, transport } = await connect('crm', token);
  const result = await client.callTool({ name: 'crm.search', arguments: { query: 'ACME' } });
  assert.deepEqual(result.content, [{ type: 'text', text: '1 lead for ACME' }]);
  assert.ok(sse.toolRuns.includes('crm.search'));
  const decided = authorized.find((a) => a.message.method === 'tools/call');
  assert.equal(decided?.upstreamId, 'crm');
  assert.equal(decided?.caller.userSub, 'alice');
  assert.deepEqual(decided?.caller.actors, ['sales-outreach']);

  // The caller's session id is the gateway's own, not the upstream's.
  assert.ok(transport.sessionId !== undefined);
  assert.ok(!sse.sessionIds().includes(transport.sessionId));

  const tools = await client.listTools();
  assert.ok(tools.tools.some((t) => t.name === 'crm.search'));
});

test('no token passthrough: the upstream sees only upstreamHeaders, never the caller\'s Authorization or DPoP', async () => {
  const token = await mandate();
  const { client } = await connect('crm', token);
  await client.callTool({ name: 'crm.search', arguments: { query: 'Globex' } });
  const jsonToken = await mandate({ aud: CRM_JSON });
  const res = await fetch(`${base}/mcp/crmjson`, { method: 'POST', headers: rpcHeaders(jsonToken, { dpop: 'not-a-proof', cookie: 'a=b', 'x-forwarded-for': '10.0.0.1' }), body: JSON.stringify(call(1, 'crm.search')) });
  assert.equal(res.status, 200);
  assert.ok(sse.seen.length > 0 && json.seen.length > 0);
  for (const s of [...sse.seen, ...json.seen]) {
    assert.equal(s.headers.authorization, UPSTREAM_SECRET);
    assert.equal(s.headers.dpop, undefined);
    assert.equal(s.headers.cookie, undefined);
    assert.equal(s.headers['x-forwarded-for'], undefined);
    assert.ok(!JSON.stringify(s.headers).includes(token) && !JSON.stringify(s.headers).includes(jsonToken), 'the mandate never reaches the upstream');
  }
});

test('a denied call gets a JSON-RPC error with its reason code and never reaches the upstream', async () => {
  const { client } = await connect('crm', await mandate());
  const runs = sse.toolRuns.length;
  const err = await client.callTool({ name: 'payments.refund', arguments: { query: 'ACME' } }).then(
    () => assert.fail('the call was not denied'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof McpError);
  assert.equal(err.code, DENY_CODE);
  assert.deepEqual(err.data, { reason_code: 'tool_not_in_workflow' });
  assert.equal(sse.toolRuns.length, runs);
  assert.ok(!sse.calledNames().includes('payments.refund'));
});

test('an approval-required call gets the structured pending error with the approval handle; the upstream never sees it', async () => {
  const { client } = await connect('crm', await mandate());
  const err = await client.callTool({ name: 'email.send', arguments: { query: 'hi' } }).then(
    () => assert.fail('the call was not held'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof McpError);
  assert.equal(err.code, GATEWAY_ERROR_CODES.approvalRequired);
  assert.deepEqual(err.data, { reason_code: 'approval_required', approval: { id: 'apr_1', poll: '/approvals/v1/apr_1', expires_at: '2030-01-01T00:00:00.000Z' } });
  assert.ok(!sse.calledNames().includes('email.send'));
});

test('canonical forwarding: the upstream receives exactly the message authorize returned (_meta removed)', async () => {
  const res = await fetch(`${base}/mcp/crmjson`, { method: 'POST', headers: rpcHeaders(await mandate({ aud: CRM_JSON })), body: JSON.stringify(call(7, 'crm.search', { _meta: { name: 'payments.refund' } })) });
  assert.equal(res.status, 200);
  const last = json.seen.at(-1)?.body as { params: Record<string, unknown> };
  assert.deepEqual(last.params, { name: 'crm.search', arguments: { query: 'ACME' } });
});

test('without a mandate: 401 with the RFC 9728 resource_metadata challenge; the metadata names the resource', async () => {
  const before = sse.seen.length;
  const res = await fetch(`${base}/mcp/crm`, { method: 'POST', headers: rpcHeaders(undefined), body: JSON.stringify(call(1, 'crm.search')) });
  assert.equal(res.status, 401);
  assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="mandate", resource_metadata="https://gateway.test/.well-known/oauth-protected-resource/mcp/crm"');
  const body = (await res.json()) as { error: { code: number } };
  assert.equal(body.error.code, GATEWAY_ERROR_CODES.httpRefused);
  assert.equal(sse.seen.length, before, 'nothing reached the upstream');
  assert.ok(audits.some((a) => a.type === 'auth.failure'));

  const meta = await fetch(`${base}/.well-known/oauth-protected-resource/mcp/crm`);
  assert.equal(meta.status, 200);
  assert.deepEqual(await meta.json(), { resource: CRM, authorization_servers: [ISSUER], bearer_methods_supported: ['header'], dpop_signing_alg_values_supported: ['ES256', 'EdDSA', 'PS256', 'RS256'] });
  assert.equal((await fetch(`${base}/.well-known/oauth-protected-resource/mcp/nope`)).status, 404);
});

test('a mandate for another resource (wrong audience), an expired one or one signed by another key: 401 invalid_token with resource_metadata', async () => {
  const other = await generateKeyPair('ES256');
  for (const token of [await mandate({ aud: CRM_JSON }), await mandate({ expSeconds: -60 }), await mandate({ key: other.privateKey })]) {
    const before = sse.seen.length;
    const res = await fetch(`${base}/mcp/crm`, { method: 'POST', headers: rpcHeaders(token), body: JSON.stringify(call(1, 'crm.search')) });
    assert.equal(res.status, 401);
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer realm="mandate", error="invalid_token", /);
    assert.match(challenge, /resource_metadata="https:\/\/gateway\.test\/\.well-known\/oauth-protected-resource\/mcp\/crm"$/);
    assert.equal(sse.seen.length, before);
  }
});

test('session hijack: another user, agent or task presenting a session id is refused (403), and nothing reaches the upstream', async () => {
  const { transport } = await connect('crm', await mandate());
  const sessionId = transport.sessionId as string;
  for (const thief of [await mandate({ sub: 'bob' }), await mandate({ task: 'task-2' }), await mandate({ client: 'other-agent' })]) {
    const before = sse.seen.length;
    const res = await fetch(`${base}/mcp/crm`, { method: 'POST', headers: rpcHeaders(thief, { 'mcp-session-id': sessionId }), body: JSON.stringify(call(1, 'crm.search')) });
    assert.equal(res.status, 403);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /belongs to another caller/);
    assert.equal(sse.seen.length, before);
  }
  assert.ok(audits.some((a) => (a.data as { reason_code?: string } | undefined)?.reason_code === 'session_mismatch'));
  // The session id alone is not authentication.
  const bare = await fetch(`${base}/mcp/crm`, { method: 'POST', headers: rpcHeaders(undefined, { 'mcp-session-id': sessionId }), body: JSON.stringify(call(1, 'crm.search')) });
  assert.equal(bare.status, 401);
  // A made-up or upstream session id is unknown.
  const made = await fetch(`${base}/mcp/crm`, { method: 'POST', headers: rpcHeaders(await mandate(), { 'mcp-session-id': sse.sessionIds()[0] ?? 'x' }), body: JSON.stringify(call(1, 'crm.search')) });
  assert.equal(made.status, 404);
  // The owner, with a renewed mandate of the same task, still uses it.
  const owner = await fetch(`${base}/mcp/crm`, { method: 'POST', headers: rpcHeaders(await mandate(), { 'mcp-session-id': sessionId }), body: JSON.stringify(call(9, 'crm.search')) });
  assert.equal(owner.status, 200);
  assert.deepEqual(sseMessages(await owner.text()), [{ jsonrpc: '2.0', id: 9, result: { content: [{ type: 'text', text: '1 lead for ACME' }] } }]);
});

test('Origin: a foreign origin is refused with 403 before authentication; an allowed one passes', async () => {
  const token = await mandate({ aud: CRM_JSON });
  const before = json.seen.length;
  const foreign = await fetch(`${base}/mcp/crmjson`, { method: 'POST', headers: rpcHeaders(token, { origin: 'https://evil.test' }), body: JSON.stringify(call(1, 'crm.search')) });
  assert.equal(foreign.status, 403);
  assert.equal(json.seen.length, before);
  assert.ok(audits.some((a) => (a.data as { reason_code?: string } | undefined)?.reason_code === 'foreign_origin'));
  const allowed = await fetch(`${base}/mcp/crmjson`, { method: 'POST', headers: rpcHeaders(token, { origin: 'https://console.corp.test' }), body: JSON.stringify(call(1, 'crm.search')) });
  assert.equal(allowed.status, 200);
});

test('duplicate JSON keys anywhere are refused with -32700 before authorize; nothing reaches the upstream', async () => {
  const token = await mandate({ aud: CRM_JSON });
  const bodies = [
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"crm.search","name":"payments.refund","arguments":{"query":"a"}}}',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"crm.search","arguments":{"query":"a","\\u0071uery":"b"}}}',
    '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"id":3,"method":"ping"}]',
  ];
  for (const body of bodies) {
    const before = { seen: json.seen.length, authorized: authorized.length };
    const res = await fetch(`${base}/mcp/crmjson`, { method: 'POST', headers: rpcHeaders(token), body });
    assert.equal(res.status, 400);
    const answer = (await res.json()) as { id: unknown; error: { code: number; message: string } };
    assert.equal(answer.id, null);
    assert.equal(answer.error.code, -32700);
    assert.match(answer.error.message, /repeats the key "(name|query|id)"/);
    assert.deepEqual({ seen: json.seen.length, authorized: authorized.length }, before);
  }
});

test('parseStrictJson: keys compared after unescaping, per object; depth bounded; values as JSON.parse', () => {
  assert.deepEqual(parseStrictJson('{"a":{"b":1},"b":[{"a":1},{"a":2}],"c":"\\"a\\""}', 8), { a: { b: 1 }, b: [{ a: 1 }, { a: 2 }], c: '"a"' });
  assert.throws(() => parseStrictJson('{"a":1,"\\u0061":2}', 8), (e: unknown) => e instanceof StrictJsonError && e.reason === 'duplicate_key');
  assert.throws(() => parseStrictJson('[[[[1]]]]', 3), (e: unknown) => e instanceof StrictJsonError && e.reason === 'too_deep');
  assert.throws(() => parseStrictJson('{"a":', 8), (e: unknown) => e instanceof StrictJsonError && e.reason === 'malformed');
  assert.throws(() => parseStrictJson('', 8), (e: unknown) => e instanceof StrictJsonError && e.reason === 'malformed');
});

test('a batch is authorized item by item: only the allowed call is forwarded; denials, approvals and invalid items answered by the gateway (JSON upstream)', async () => {
  const token = await mandate({ aud: CRM_JSON });
  const batch = [call(1, 'crm.search'), call(2, 'payments.refund'), call(3, 'email.send'), { jsonrpc: '2.0', method: 'tools/call', params: { name: 'payments.refund', arguments: { query: 'x' } } }];
  const before = json.seen.length;
  const res = await fetch(`${base}/mcp/crmjson`, { method: 'POST', headers: rpcHeaders(token), body: JSON.stringify(batch) });
  assert.equal(res.status, 200);
  const answers = (await res.json()) as Array<{ id: unknown; result?: unknown; error?: { code: number; data?: { reason_code?: string } } }>;
  const byId = (id: unknown) => answers.find((a) => a.id === id);
  assert.deepEqual(byId(1)?.result, { content: [{ type: 'text', text: '1 lead for ACME' }] });
  assert.equal(byId(2)?.error?.code, DENY_CODE);
  assert.equal(byId(2)?.error?.data?.reason_code, 'tool_not_in_workflow');
  assert.equal(byId(3)?.error?.code, GATEWAY_ERROR_CODES.approvalRequired);
  assert.equal(byId(null)?.error?.code, GATEWAY_ERROR_CODES.invalidRequest, 'an id-less tools/call is not a notification');
  assert.equal(answers.length, 4);
  assert.equal(json.seen.length, before + 1);
  assert.deepEqual(json.seen.at(-1)?.body, [{ ...call(1, 'crm.search') }]);
});

test('a batch on an SSE session: the gateway\'s answers come first on the stream, then the upstream\'s', async () => {
  const token = await mandate();
  const { transport } = await connect('crm', token);
  const res = await fetch(`${base}/mcp/crm`, { method: 'POST', headers: rpcHeaders(token, { 'mcp-session-id': transport.sessionId as string }), body: JSON.stringify([call(21, 'payments.refund'), call(22, 'crm.search')]) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const messages = sseMessages(await res.text()) as Array<{ id: number; error?: { code: number } }>;
  assert.deepEqual(messages.map((m) => m.id), [21, 22]);
  assert.equal(messages[0]?.error?.code, DENY_CODE);
  assert.ok(!sse.calledNames().includes('payments.refund'));
});

test('answers are bounded: a tool result larger than maxResponseBytes becomes a JSON-RPC error, on SSE and JSON upstreams', async () => {
  const { client } = await connect('crm', await mandate());
  await assert.rejects(client.callTool({ name: 'crm.export', arguments: { query: 'all' } }), (e: unknown) => e instanceof McpError && e.code === GATEWAY_ERROR_CODES.internalError && /exceeds 65536 bytes/.test(e.message));
  const res = await fetch(`${base}/mcp/crmjson`, { method: 'POST', headers: rpcHeaders(await mandate({ aud: CRM_JSON })), body: JSON.stringify(call(5, 'crm.export')) });
  const answer = (await res.json()) as { id: number; error: { code: number; message: string } };
  assert.equal(answer.id, 5);
  assert.equal(answer.error.code, GATEWAY_ERROR_CODES.internalError);
});

test('DELETE ends the session for its owner; the id is unknown afterwards', async () => {
  const token = await mandate();
  const { transport } = await connect('crm', token);
  const sessionId = transport.sessionId as string;
  const stolen = await fetch(`${base}/mcp/crm`, { method: 'DELETE', headers: rpcHeaders(await mandate({ sub: 'bob' }), { 'mcp-session-id': sessionId }) });
  assert.equal(stolen.status, 403);
  const del = await fetch(`${base}/mcp/crm`, { method: 'DELETE', headers: rpcHeaders(token, { 'mcp-session-id': sessionId }) });
  assert.equal(del.status, 200);
  const after = await fetch(`${base}/mcp/crm`, { method: 'POST', headers: rpcHeaders(token, { 'mcp-session-id': sessionId }), body: JSON.stringify(call(1, 'crm.search')) });
  assert.equal(after.status, 404);
  assert.equal(((await after.json()) as { error: { code: number } }).error.code, GATEWAY_ERROR_CODES.sessionNotFound);
});

test('an unknown upstream is 404; a non-JSON body is 415', async () => {
  const token = await mandate();
  assert.equal((await fetch(`${base}/mcp/nope`, { method: 'POST', headers: rpcHeaders(token), body: '{}' })).status, 404);
  assert.equal((await fetch(`${base}/mcp/crm`, { method: 'POST', headers: { ...rpcHeaders(token), 'content-type': 'text/plain' }, body: '{}' })).status, 415);
});

test('answers are checked: a restricted record is replaced by the check\'s error; a failing check withholds the answer (SSE and JSON upstreams)', async () => {
  const { client } = await connect('crm', await mandate());
  const ok = await client.callTool({ name: 'crm.get_record', arguments: { query: '7' } });
  assert.deepEqual(ok.content, [{ type: 'text', text: 'record 7 (internal)' }]);
  assert.ok(inspected.includes('tools/call'));
  assert.ok(!inspected.includes('initialize'), 'ungated answers pass unchecked');
  await assert.rejects(client.callTool({ name: 'crm.get_record', arguments: { query: 'restricted' } }), (e: unknown) => e instanceof McpError && e.code === -32041 && (e.data as { reason_code?: string }).reason_code === 'sensitivity_exceeded');
  await assert.rejects(client.callTool({ name: 'crm.get_record', arguments: { query: 'boom' } }), (e: unknown) => e instanceof McpError && e.code === GATEWAY_ERROR_CODES.internalError && /withheld/.test(e.message));

  const res = await fetch(`${base}/mcp/crmjson`, { method: 'POST', headers: rpcHeaders(await mandate({ aud: CRM_JSON })), body: JSON.stringify([call(1, 'crm.get_record', { arguments: { query: 'restricted' } }), call(2, 'crm.get_record', { arguments: { query: '8' } })]) });
  const answers = (await res.json()) as Array<{ id: number; result?: unknown; error?: { code: number } }>;
  assert.equal(answers.find((a) => a.id === 1)?.error?.code, -32041);
  assert.deepEqual(answers.find((a) => a.id === 2)?.result, { content: [{ type: 'text', text: 'record 8 (internal)' }] });
  assert.ok(!JSON.stringify(answers).includes('SECRET'));
});

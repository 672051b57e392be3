/**
 * A stock MCP SDK client (`Client` + `StreamableHTTPClientTransport`) with `authProvider:
 * task.mcpAuthProvider(resource)`, against a tiny MCP server on loopback (`McpServer` +
 * `StreamableHTTPServerTransport`) whose HTTP layer lets a request through only with a mandate that Mandate's
 * introspection says is active for the CRM (and, for a DPoP-bound one, its proof). The tool runs while the task
 * is open; after `end()` the call fails and the tool does not run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
import { MandateClient, TaskEndedError } from '../../src/sdk/index.ts';
import { CRM, checkRequest, listen, startWorld, type Presented, type World } from './world.ts';

let shared: Promise<World> | undefined;
const world = () => (shared ??= startWorld());
test.after(async () => {
  if (shared) await (await shared).close();
});

/** The MCP server: one tool, behind an HTTP layer that checks the mandate. Stateless (a server per request). */
async function startMcp(w: World) {
  const calls: Array<{ query: string; presented: Presented }> = [];
  let url = '';
  const http = await listen((req, res) => {
    void (async () => {
      const check = await checkRequest(w, CRM, req, url);
      if (!check.ok) {
        res.writeHead(401, { 'www-authenticate': check.challenge, 'content-type': 'application/json' }).end('{"error":"invalid_token"}');
        return;
      }
      if (req.method !== 'POST') {
        res.writeHead(405).end();
        return;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const server = new McpServer({ name: 'crm-test', version: '1.0.0' });
      server.registerTool('crm.search', { description: 'Search leads', inputSchema: { query: z.string() } }, async ({ query }) => {
        calls.push({ query, presented: check.presented });
        return { content: [{ type: 'text', text: `1 lead for ${query}, for ${String(check.presented.introspection.sub)}` }] };
      });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      await server.connect(transport);
      res.on('close', () => void server.close());
      await transport.handleRequest(req, res, JSON.parse(Buffer.concat(chunks).toString('utf8')));
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  url = http.url;
  return { url: `${http.url}/mcp`, calls, close: () => http.close() };
}

const newClient = (w: World, extra: Partial<ConstructorParameters<typeof MandateClient>[0]> = {}) => new MandateClient({ issuer: w.url, clientId: 'sales-outreach', jwk: w.outreachJwk, ...extra });
const openTask = async (w: World, c: MandateClient, dpop: boolean) =>
  c.startTask({ userToken: await w.userToken(), workflow: 'lead-followup', purpose: 'follow up the ACME lead', resource: CRM, scope: 'crm.search', dpop });

test('MCP SDK client with the task as its OAuthClientProvider (Bearer task): the tool call succeeds; a revoked mandate is renewed through the SDK\'s auth(); after end() the call fails', async () => {
  const w = await world();
  const mcp = await startMcp(w);
  try {
    let taskRefreshes = 0;
    const counting: typeof fetch = (input, init) => {
      if (init?.body instanceof URLSearchParams && init.body.get('grant_type') === 'refresh_token') taskRefreshes++;
      return fetch(input, init);
    };
    const task = await openTask(w, newClient(w, { fetch: counting }), false);
    const client = new Client({ name: 'agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcp.url), { authProvider: task.mcpAuthProvider(CRM) }));
    const result = await client.callTool({ name: 'crm.search', arguments: { query: 'ACME' } });
    assert.deepEqual(result.content, [{ type: 'text', text: '1 lead for ACME, for alice' }]);
    assert.equal(mcp.calls[0]?.presented.scheme, 'Bearer');
    assert.equal((mcp.calls[0]?.presented.introspection.act as { sub?: string }).sub, 'sales-outreach');

    // The mandate is revoked (not the task): the server answers 401, the MCP SDK calls auth(), which renews
    // through the task's grant (private_key_jwt, rotated refresh token), and retries.
    const revoked = await task.token();
    assert.equal(await w.revokeMandate(revoked), 200);
    const again = await client.callTool({ name: 'crm.search', arguments: { query: 'Globex' } });
    assert.deepEqual(again.content, [{ type: 'text', text: '1 lead for Globex, for alice' }]);
    const renewed = await task.token();
    assert.notEqual(renewed, revoked, 'the task holds the mandate the SDK obtained');
    assert.equal(taskRefreshes, 0, "the renewal was the MCP SDK's own token request, not the task's");
    assert.equal((await w.node.store.tasks.get(task.id))?.status, 'open');
    // The task's own renewal still works after the SDK used the grant: it had the rotated refresh token.
    assert.notEqual((await task.mandate(CRM, 'crm.search', true)).accessToken, renewed);

    await task.end();
    const before = mcp.calls.length;
    await assert.rejects(client.callTool({ name: 'crm.search', arguments: { query: 'Initech' } }), TaskEndedError);
    assert.equal(mcp.calls.length, before, 'the tool did not run');
    assert.equal((await w.node.store.tasks.get(task.id))?.status, 'ended');
    await client.close();
  } finally {
    await mcp.close();
  }
});

test('MCP SDK client with a DPoP-bound task: the provider plus fetch: task.fetch presents the mandate with its proof; after end() the call fails', async () => {
  const w = await world();
  const mcp = await startMcp(w);
  try {
    const task = await openTask(w, newClient(w, { resources: { [new URL(mcp.url).origin]: CRM } }), true);
    assert.equal(task.dpopBound, true);
    const client = new Client({ name: 'agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcp.url), { authProvider: task.mcpAuthProvider(CRM), fetch: task.fetch }));
    const result = await client.callTool({ name: 'crm.search', arguments: { query: 'ACME' } });
    assert.deepEqual(result.content, [{ type: 'text', text: '1 lead for ACME, for alice' }]);
    assert.equal(mcp.calls[0]?.presented.scheme, 'DPoP');
    assert.equal(mcp.calls[0]?.presented.proof?.htu, mcp.url);
    assert.deepEqual(mcp.calls[0]?.presented.introspection.cnf, { jkt: task.dpopJkt });

    await task.end();
    await assert.rejects(client.callTool({ name: 'crm.search', arguments: { query: 'Initech' } }), TaskEndedError);
    assert.equal(mcp.calls.length, 1);
    await client.close();
  } finally {
    await mcp.close();
  }
});

test('a DPoP-bound mandate sent as Bearer by a stock transport without task.fetch is refused by a resource server that honours RFC 9449', async () => {
  const w = await world();
  const mcp = await startMcp(w);
  try {
    const task = await openTask(w, newClient(w), true);
    const client = new Client({ name: 'agent', version: '1.0.0' });
    await assert.rejects(client.connect(new StreamableHTTPClientTransport(new URL(mcp.url), { authProvider: task.mcpAuthProvider(CRM) })));
    assert.equal(mcp.calls.length, 0);
    await task.end();
  } finally {
    await mcp.close();
  }
});

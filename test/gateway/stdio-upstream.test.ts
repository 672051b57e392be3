/**
 * Local (stdio) upstreams: a stock MCP SDK client calls a tool of a child MCP server through the loopback bridge;
 * the bridge is reachable only at its secret path; the child gets only the variables it was given; a killed
 * child is started again and works; close() leaves no process behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startStdioUpstream, startStdioUpstreams, withLocalUpstreams, type StdioUpstream, type StdioUpstreamLogger } from '../../src/gateway/stdio-upstream.ts';
import { GatewayUpstreamSchema } from '../../src/gateway/gateway-config.ts';
import { ConfigInvalidError } from '../../src/core/errors.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../fixtures/stdio-mcp-server.ts', import.meta.url));
const FIXTURE_COMMAND = { command: process.execPath, args: ['--import', 'tsx', FIXTURE], cwd: ROOT };

function quietLogger(): StdioUpstreamLogger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, info: () => undefined, debug: () => undefined, warn: (_o, msg) => warnings.push(msg) };
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function connect(t: { after(fn: () => Promise<void>): void }, url: string): Promise<Client> {
  const client = new Client({ name: 'test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  t.after(() => client.close());
  return client;
}

const textOf = (result: unknown): string => ((result as { content: Array<{ text: string }> }).content[0] as { text: string }).text;

async function start(t: { after(fn: () => Promise<void>): void }, extra: Partial<Parameters<typeof startStdioUpstream>[1]> = {}): Promise<StdioUpstream> {
  const upstream = await startStdioUpstream({ id: 'fixture', ...FIXTURE_COMMAND, env: { FIXTURE_FLAG: 'on' } }, { logger: quietLogger(), initialDelayMs: 50, killTimeoutMs: 1000, ...extra });
  t.after(() => upstream.close());
  return upstream;
}

test('a stock MCP client calls a tool of a stdio server through the bridge', async (t) => {
  const upstream = await start(t);
  assert.match(upstream.url, /^http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9_-]{43}$/);
  const client = await connect(t, upstream.url);
  const tools = await client.listTools();
  assert.deepEqual(tools.tools.map((x) => x.name).sort(), ['echo', 'env', 'pid']);
  assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'hello' } })), 'hello');
  const status = upstream.status();
  assert.equal(status.state, 'ready');
  assert.equal(status.restarts, 0);
});

test('two clients share the child: same request ids, each gets its own answer', async (t) => {
  const upstream = await start(t);
  const [a, b] = [await connect(t, upstream.url), await connect(t, upstream.url)];
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).callTool({ name: 'echo', arguments: { text: `m${i}` } })));
  assert.deepEqual(answers.map(textOf), Array.from({ length: 10 }, (_, i) => `m${i}`));
});

test('the bridge answers only at its secret path, and only GET and POST', async (t) => {
  const upstream = await start(t);
  const origin = new URL(upstream.url).origin;
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  for (const path of ['/', '/mcp', `${new URL(upstream.url).pathname.slice(0, -1)}x`]) {
    assert.equal((await fetch(`${origin}${path}`, { method: 'POST', headers, body })).status, 404, path);
  }
  assert.equal((await fetch(upstream.url, { method: 'DELETE' })).status, 405);
  const ok = await fetch(upstream.url, { method: 'POST', headers, body });
  assert.equal(ok.status, 200);
  assert.equal(((await ok.json()) as { id: number }).id, 1);
});

test("the child sees only the variables it was given and the SDK's harmless defaults, never Mandate's", async (t) => {
  process.env.MANDATE_KEK_FOR_TEST = 'secret';
  t.after(async () => {
    delete process.env.MANDATE_KEK_FOR_TEST;
  });
  const upstream = await start(t);
  const client = await connect(t, upstream.url);
  const names = JSON.parse(textOf(await client.callTool({ name: 'env', arguments: {} }))) as string[];
  assert.ok(names.includes('FIXTURE_FLAG'));
  assert.ok(!names.includes('MANDATE_KEK_FOR_TEST'));
  const allowed = new Set(['FIXTURE_FLAG', 'HOME', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER']);
  // Node and tsx may add their own (e.g. NODE_OPTIONS-free markers); nothing else of the parent's.
  assert.deepEqual(names.filter((n) => !allowed.has(n) && process.env[n] !== undefined && !n.startsWith('TSX')), []);
});

test('a killed child is started again, and calls work again', async (t) => {
  const upstream = await start(t);
  const client = await connect(t, upstream.url);
  const first = Number(textOf(await client.callTool({ name: 'pid', arguments: {} })));
  assert.equal(first, upstream.status().pid);
  process.kill(first, 'SIGKILL');
  await until(() => upstream.status().restarts === 1 && upstream.status().state === 'ready');
  assert.equal(isAlive(first), false);
  assert.equal(upstream.status().lastExit?.signal, 'SIGKILL');
  const second = Number(textOf(await client.callTool({ name: 'pid', arguments: {} })));
  assert.notEqual(second, first);
  assert.equal(second, upstream.status().pid);
  assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'again' } })), 'again');
});

test('a request made while the child is down waits for the new child', async (t) => {
  const upstream = await start(t, { initialDelayMs: 300 });
  const client = await connect(t, upstream.url);
  process.kill(upstream.status().pid as number, 'SIGKILL');
  await until(() => upstream.status().state === 'restarting');
  assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'patient' } })), 'patient');
  assert.equal(upstream.status().restarts, 1);
});

test('close() ends the child and the endpoint, and leaves no process', async (t) => {
  const upstream = await start(t);
  const pid = upstream.status().pid as number;
  assert.ok(isAlive(pid));
  await upstream.close();
  assert.equal(isAlive(pid), false);
  assert.equal(upstream.status().state, 'closed');
  await assert.rejects(fetch(upstream.url, { method: 'POST', body: '{}' }));
  await upstream.close();
});

test('a command that cannot start rejects, and a config names the upstream', async () => {
  await assert.rejects(startStdioUpstream({ id: 'nope', command: '/nonexistent/mcp-server' }, { logger: quietLogger() }));
  const u = GatewayUpstreamSchema.parse({ id: 'nope', stdio: { command: '/nonexistent/mcp-server' }, resource: 'https://mandate.test/mcp/nope' });
  await assert.rejects(startStdioUpstreams([u], { logger: quietLogger(), env: {} }), (err: unknown) => err instanceof ConfigInvalidError && /nope/.test(err.message));
  const missing = GatewayUpstreamSchema.parse({ id: 'x', stdio: { command: 'node', env: { TOKEN: { fromEnv: 'UNSET_FOR_TEST' } } }, resource: 'https://mandate.test/mcp/x' });
  await assert.rejects(startStdioUpstreams([missing], { logger: quietLogger(), env: {} }), /UNSET_FOR_TEST/);
});

test('an upstream has exactly one of url or stdio; MANDATE_* variables are never passed', () => {
  const base = { id: 'x', resource: 'https://mandate.test/mcp/x' };
  assert.equal(GatewayUpstreamSchema.safeParse({ ...base, url: 'http://crm.internal/mcp' }).success, true);
  assert.equal(GatewayUpstreamSchema.safeParse({ ...base, stdio: { command: 'node' } }).success, true);
  assert.equal(GatewayUpstreamSchema.safeParse(base).success, false);
  assert.equal(GatewayUpstreamSchema.safeParse({ ...base, url: 'http://crm.internal/mcp', stdio: { command: 'node' } }).success, false);
  assert.equal(GatewayUpstreamSchema.safeParse({ ...base, stdio: { command: 'node', env: { K: { fromEnv: 'MANDATE_KEK' } } } }).success, false);
});

test('readiness reports local upstreams; one that is down is reported but does not take the node out of rotation', () => {
  const ready = { id: 'a', state: 'ready' as const, restarts: 0 };
  assert.deepEqual(withLocalUpstreams({ ok: true }, [ready]), { ok: true, detail: { localUpstreams: [ready] } });
  const restarting = { id: 'b', state: 'restarting' as const, restarts: 3 };
  const down = withLocalUpstreams({ ok: true }, [ready, restarting]);
  assert.equal(down.ok, true);
  assert.deepEqual((down as unknown as { detail: { localUpstreams: unknown[] } }).detail.localUpstreams, [ready, restarting]);
  assert.equal(withLocalUpstreams({ ok: false, reason: 'keys unavailable' }, [ready]).ok, false, 'the identity check itself still decides');
});

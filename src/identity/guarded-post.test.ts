import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGuardedPost } from './guarded-post.ts';
import { OutboundRefusedError } from './outbound.ts';

const policy = { timeoutMs: 2000, maxBytes: 65536, allowPrivateNetworks: false, allowHosts: [] as string[], allowHttp: true };

test('guarded POST: private literals and names that resolve to private addresses are refused; the checked address is the one connected to; redirects are refused', async (t) => {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers['content-type'] ?? ''}`);
    if (req.url === '/redirect') res.writeHead(302, { location: 'http://example.org/' }).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise((r) => server.close(r)));
  const port = (server.address() as AddressInfo).port;
  const body = Buffer.from('{"a":1}');
  const headers = { 'content-type': 'application/json' };

  const strict = createGuardedPost(policy, { resolve: async () => [{ address: '10.0.0.7', family: 4 }] });
  await assert.rejects(strict({ url: new URL(`http://127.0.0.1:${port}/x`), headers, body, what: 'test' }), (err: unknown) => err instanceof OutboundRefusedError && /test refused: the address is private/.test(err.message));
  await assert.rejects(strict({ url: new URL(`http://internal.example:${port}/x`), headers, body, what: 'test' }), (err: unknown) => err instanceof OutboundRefusedError && /resolves to a private/.test(err.message));
  assert.equal(seen.length, 0, 'nothing was sent');

  // A trusted host name resolving to loopback: the connection goes to the address that was checked (pinned).
  const trusted = createGuardedPost({ ...policy, allowHosts: ['svc.example'] }, { resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
  const ok = await trusted({ url: new URL(`http://svc.example:${port}/x`), headers, body, what: 'test' });
  assert.equal(ok.status, 200);
  ok.response.resume();
  assert.deepEqual(seen, ['POST /x application/json']);
  await assert.rejects(trusted({ url: new URL(`http://svc.example:${port}/redirect`), headers, body, what: 'test' }), (err: unknown) => err instanceof OutboundRefusedError && /redirect/.test(err.message));
});

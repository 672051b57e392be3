/** The HTTP server's limits and timeouts come from the configuration, set explicitly. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.ts';

test('timeouts and the header size limit are set on the Node server from the configuration', async () => {
  const h = await startServer({ config: { server: { requestTimeoutMs: 7000, headersTimeoutMs: 3000, keepAliveTimeoutMs: 4000, maxHeaderSizeBytes: 8192 } } });
  try {
    const s = h.server.app.server;
    assert.deepEqual([s.requestTimeout, s.headersTimeout, s.keepAliveTimeout, (s as unknown as { maxHeaderSize: number }).maxHeaderSize], [7000, 3000, 4000, 8192]);
    // 8 KiB of headers is over the limit configured here (the default is 16 KiB).
    const res = await h.get('/healthz', { headers: { 'x-padding': 'p'.repeat(9000) } });
    assert.equal(res.status, 431);
  } finally {
    await h.close();
  }
});

test('a headers timeout longer than the request timeout is clamped (Node refuses the combination)', async () => {
  const h = await startServer({ config: { server: { requestTimeoutMs: 2000, headersTimeoutMs: 5000 } } });
  try {
    assert.equal(h.server.app.server.headersTimeout, 2000);
  } finally {
    await h.close();
  }
});

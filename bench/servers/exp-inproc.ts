import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { generateCredentialSecret, hashCredential, parseConfig } from '../../src/config/index.ts';
import { startMandate } from '../../src/cli/start-mandate.ts';
import { generatedPolicyDir } from '../fixtures.ts';

const { dir } = await generatedPolicyDir(10, 10);
const dataDir = await mkdtemp(join(tmpdir(), 'mandate-bench-data-'));
const secret = generateCredentialSecret();
const base = parseConfig('', { source: 'bench', env: {}, cwd: dataDir, baseDir: dataDir });
const config = {
  ...base,
  server: { ...base.server, host: '127.0.0.1', port: 0 },
  store: { ...base.store, dataDir },
  audit: { ...base.audit, maxDelayMs: 0 },
  policy: { ...base.policy, dir, watch: false },
  authzen: { ...base.authzen, credentials: [{ id: 'bench', hash: hashCredential(secret) }] },
  rateLimit: { ...base.rateLimit, decisionsPerSecondPerClient: 10_000_000, burst: 10_000_000 },
};
const node = await startMandate(config, { logger: pino({ level: 'warn' }) });
if (process.env.NOAUDIT) (node.store.audit as any).append = async () => {};
const body = JSON.stringify({ subject: { type: 'user', id: 'alice' }, action: { name: 'read' }, resource: { type: 'dataset', id: 'wiki' }, context: { step: 3 } });
const app = (node.server as any).app;
const one = () => app.inject({ method: 'POST', url: '/access/v1/evaluation', payload: body, headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` } });
for (let i = 0; i < 3000; i++) await one();
const N = 20000; const t0 = performance.now();
for (let i = 0; i < N; i += 32) await Promise.all(Array.from({ length: 32 }, one));
console.log('us/req', ((performance.now() - t0) * 1000 / N).toFixed(1), (await one()).body);
await node.stop();

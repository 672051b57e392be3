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
  audit: { ...base.audit, maxDelayMs: Number(process.env.DELAY ?? base.audit.maxDelayMs) },
  policy: { ...base.policy, dir, watch: false },
  authzen: { ...base.authzen, credentials: [{ id: 'bench', hash: hashCredential(secret) }] },
  rateLimit: { ...base.rateLimit, decisionsPerSecondPerClient: 10_000_000, burst: 10_000_000 },
};
const node = await startMandate(config, { logger: pino({ level: 'warn' }) });
if (process.env.NOAUDIT) (node.store.audit as any).append = async () => {};
const body = { subject: { type: 'user', id: 'alice' }, action: { name: 'read' }, resource: { type: 'dataset', id: 'wiki' }, context: { step: 3 } };
console.log(`CREDENTIAL ${secret}`);
console.log(`BODY ${JSON.stringify(body)}`);
console.log(`LISTENING ${new URL(node.url).port}`);
process.on('SIGTERM', () => void node.stop().then(() => process.exit(0)));

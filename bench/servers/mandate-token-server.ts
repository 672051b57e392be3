/**
 * The Mandate node under load for the token benchmark: a fresh SQLite store, a fresh key-encryption key (so a
 * fresh EdDSA signing key), the bench service and agent registered with their public keys (`private_key_jwt`,
 * DPoP optional), the user IdP trusted through a static JWKS file, one resource with one scope that the policy
 * allows. Defaults elsewhere (DPoP nonces off). Prints `LISTENING <port>` when ready; the bench reads the issuer
 * and the token endpoint from the node's RFC 8414 metadata. Logging is at `warn`, and the per-client rate limit is
 * lifted because the load generator is a single client.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/index.ts';
import { startMandate } from '../../src/cli/start-mandate.ts';
import { generateKek, KEK_ENV_VAR } from '../../src/tokens/key-encryption.ts';
import {
  BENCH_AGENT_ID,
  BENCH_IDP_ISSUER,
  BENCH_RESOURCE,
  BENCH_SCOPE,
  BENCH_SERVICE_ID,
  BENCH_USER_AUDIENCE,
  readTokenFixture,
} from '../token-fixtures.ts';

const fixture = await readTokenFixture();
const dataDir = await mkdtemp(join(tmpdir(), 'mandate-bench-token-data-'));
const text = stringify({
  server: { host: '127.0.0.1' },
  store: { dataDir },
  policy: { dir: fixture.policyDir, watch: false },
  log: { level: 'warn' },
  rateLimit: { decisionsPerSecondPerClient: 1_000_000, burst: 10_000_000 },
  identity: {
    issuers: [{ issuer: BENCH_IDP_ISSUER, jwksFile: fixture.idpJwksFile, audiences: [BENCH_USER_AUDIENCE], algorithms: ['ES256'] }],
  },
  resources: [
    {
      uri: BENCH_RESOURCE,
      name: 'CRM (bench)',
      scopes: { [BENCH_SCOPE]: [{ action: 'read', resource: { type: 'Dataset', id: 'crm-accounts' } }] },
    },
  ],
  principals: [
    {
      id: BENCH_SERVICE_ID,
      kind: 'service',
      name: 'Bench service',
      owner: 'ops@acme.example',
      audiences: [BENCH_RESOURCE],
      credentials: [{ type: 'jwks', jwks: { keys: [fixture.serviceJwk] } }],
      dpop: 'optional',
    },
    {
      id: BENCH_AGENT_ID,
      kind: 'agent',
      mode: 'chat',
      name: 'Bench agent',
      owner: 'ops@acme.example',
      audiences: [BENCH_RESOURCE],
      credentials: [{ type: 'jwks', jwks: { keys: [fixture.agentJwk] } }],
      dpop: 'optional',
    },
  ],
});
const parsed = parseConfig(text, { source: 'bench', env: {}, cwd: dataDir, baseDir: dataDir });
const config = { ...parsed, server: { ...parsed.server, port: 0 } };
const node = await startMandate(config, { logger: pino({ level: 'warn' }), env: { [KEK_ENV_VAR]: generateKek() } });
console.log(`LISTENING ${new URL(node.url).port}`);
process.on('SIGTERM', () => void node.stop().then(() => process.exit(0)));

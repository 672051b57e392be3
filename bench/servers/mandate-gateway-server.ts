/**
 * The Mandate node of the gateway benchmark: a fresh SQLite store and key-encryption key, the fixtures of
 * `bench/gateway-fixtures.ts`, and the MCP gateway fronting the upstream named in `MANDATE_BENCH_UPSTREAM_URL` at
 * `/mcp/crm`. Prints `LISTENING <port>` when ready.
 *
 * Started with an IPC channel, it profiles its own CPU (V8's sampling profiler through `node:inspector`) between
 * `{ op: 'profile-start' }` and `{ op: 'profile-stop' }`, and answers the latter with the path of the
 * `.cpuprofile` it wrote: only the load is profiled, not the start-up.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/index.ts';
import { startMandate } from '../../src/cli/start-mandate.ts';
import { generateKek, KEK_ENV_VAR } from '../../src/tokens/key-encryption.ts';
import { gatewayNodeConfig, readGatewayFixture, UPSTREAM_URL_ENV } from '../gateway-fixtures.ts';

const fixture = await readGatewayFixture();
const upstreamUrl = process.env[UPSTREAM_URL_ENV];
if (upstreamUrl === undefined) throw new TypeError(`${UPSTREAM_URL_ENV} must name the upstream MCP server`);
const dataDir = await mkdtemp(join(tmpdir(), 'mandate-bench-gateway-data-'));
const parsed = parseConfig(gatewayNodeConfig(fixture, dataDir, upstreamUrl), { source: 'bench', env: {}, cwd: dataDir, baseDir: dataDir });
const node = await startMandate({ ...parsed, server: { ...parsed.server, port: 0 } }, { logger: pino({ level: 'warn' }), env: { [KEK_ENV_VAR]: generateKek() } });
let profiler: Session | undefined;
process.on('message', (message: { op?: string }) => {
  void (async () => {
    if (message.op === 'profile-start') {
      profiler = new Session();
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.setSamplingInterval', { interval: 200 });
      await profiler.post('Profiler.start');
      process.send?.({ started: true });
    } else if (message.op === 'profile-stop' && profiler !== undefined) {
      const { profile } = await profiler.post('Profiler.stop');
      profiler.disconnect();
      const file = join(dataDir, 'gateway.cpuprofile');
      await writeFile(file, JSON.stringify(profile));
      process.send?.({ file });
    }
  })();
});

console.log(`LISTENING ${new URL(node.url).port}`);
process.on('SIGTERM', () => void node.stop().then(() => process.exit(0)));

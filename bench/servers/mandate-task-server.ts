/**
 * The Mandate node of the task benchmarks: a fresh SQLite store, a fresh key-encryption key, the example policies
 * and workflows, the principals of `bench/task-fixtures.ts`. Prints `LISTENING <port>` when ready.
 *
 * Started with an IPC channel and `--expose-gc`, it answers `{ op: 'memory' }` with its memory after two full
 * garbage collections (`process.memoryUsage()`), the bytes its data directory holds on disk, and the number of
 * open tasks in its store — counted after the memory is read, so that listing them does not inflate it. And
 * `{ op: 'close-all' }` with the number of tasks it closed through the store in one transaction (the control of the
 * memory benchmark: what the open tasks held, against what the load that opened them left behind).
 */
import { readdir, stat, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createAuditEvent } from '../../src/audit/audit-event.ts';
import { parseConfig } from '../../src/config/index.ts';
import { systemClock } from '../../src/core/ports.ts';
import { startMandate } from '../../src/cli/start-mandate.ts';
import { generateKek, KEK_ENV_VAR } from '../../src/tokens/key-encryption.ts';
import { readTaskFixture, taskNodeConfig } from '../task-fixtures.ts';

/** What the node answers to `{ op: 'memory' }`. */
export interface TaskNodeMemory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  dataDirBytes: number;
  openTasks: number;
}

const fixture = await readTaskFixture();
const dataDir = await mkdtemp(join(tmpdir(), 'mandate-bench-task-data-'));
const parsed = parseConfig(taskNodeConfig(fixture, dataDir), { source: 'bench', env: {}, cwd: dataDir, baseDir: dataDir });
const node = await startMandate({ ...parsed, server: { ...parsed.server, port: 0 } }, { logger: pino({ level: 'warn' }), env: { [KEK_ENV_VAR]: generateKek() } });

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

process.on('message', (message: { op?: string }) => {
  if (message.op === 'close-all') {
    void node.store.tasks
      .close({ all: true }, 'ended', Date.now(), 'bench_end', (t) =>
        createAuditEvent({ type: 'task.close', outcome: 'success', actor: 'bench', subject: `User::"${t.userSub}"`, resource: `task:${t.id}`, data: { taskId: t.id, status: 'ended', reason: 'bench_end' } }, { clock: systemClock }),
      )
      .then((closed) => process.send?.({ closed: closed.length }));
    return;
  }
  if (message.op !== 'memory') return;
  void (async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    const m = process.memoryUsage();
    const answer: TaskNodeMemory = {
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      dataDirBytes: await dirBytes(dataDir),
      openTasks: (await node.store.tasks.list({ status: 'open', limit: 1_000_000 })).length,
    };
    process.send?.(answer);
  })();
});

console.log(`LISTENING ${new URL(node.url).port}`);
console.log(`ISSUER ${node.tokens?.issuer() ?? node.url}`);
process.on('SIGTERM', () => void node.stop().then(() => process.exit(0)));

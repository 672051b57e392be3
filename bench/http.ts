/**
 * HTTP throughput: the AuthZEN evaluation endpoint against a bare node:http server answering fixed JSON,
 * each in its own process, loaded by autocannon from this process on loopback.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import { round } from './stats.ts';

/** Result for one HTTP target. */
export interface HttpTargetResult {
  name: string;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
}

/** Both targets and the ratio of their throughput. */
export interface HttpBenchResult {
  targets: HttpTargetResult[];
  ratio: string;
}

const here = new URL('.', import.meta.url).pathname;

/** A server process of `bench/servers/`, with the `NAME value` lines it printed before `LISTENING <port>`. */
export interface BenchServer {
  child: ChildProcess;
  port: number;
  info: Record<string, string>;
}

/**
 * Starts `bench/servers/<script>` in its own process (with `env` added to this one's) and waits for `LISTENING`.
 * `options.ipc` opens an IPC channel to it (`child.send`); `options.nodeArgs` are added to node's flags.
 */
export async function startServer(script: string, env: Record<string, string> = {}, options: { ipc?: boolean; nodeArgs?: readonly string[] } = {}): Promise<BenchServer> {
  const child = spawn(process.execPath, ['--no-turbo-inline-js-wasm-calls', ...(options.nodeArgs ?? []), '--import', 'tsx', `${here}servers/${script}`], {
    stdio: options.ipc === true ? ['ignore', 'pipe', 'inherit', 'ipc'] : ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const info: Record<string, string> = {};
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start within 60 s`)), 60_000);
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
    lines.on('line', (line) => {
      const m = /^(\w+) (.*)$/.exec(line);
      if (!m) return;
      info[m[1] as string] = m[2] as string;
      if (m[1] === 'LISTENING') {
        clearTimeout(timer);
        resolve(Number(m[2]));
      }
    });
  });
  return { child, port, info };
}

async function load(name: string, url: string, body: string, headers: Record<string, string>, durationSeconds: number): Promise<HttpTargetResult> {
  const result = await autocannon({ url, method: 'POST', body, headers: { 'content-type': 'application/json', ...headers }, connections: 32, duration: durationSeconds });
  return {
    name,
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: round(result.latency.p50),
    p99Ms: round(result.latency.p99),
    errors: result.errors,
    non2xx: result.non2xx,
  };
}

/** Runs the HTTP benchmark for `durationSeconds` per target. */
export async function benchHttp(durationSeconds: number): Promise<HttpBenchResult> {
  const targets: HttpTargetResult[] = [];
  const bare = await startServer('bare-http.ts');
  try {
    targets.push(await load('bare node:http (fixed JSON)', `http://127.0.0.1:${bare.port}/`, '{"subject":{"type":"user","id":"alice"}}', {}, durationSeconds));
  } finally {
    bare.child.kill('SIGTERM');
  }
  const mandate = await startServer('mandate-server.ts');
  try {
    const body = mandate.info.BODY ?? '{}';
    targets.push(await load('mandate AuthZEN /access/v1/evaluation', `http://127.0.0.1:${mandate.port}/access/v1/evaluation`, body, { authorization: `Bearer ${mandate.info.CREDENTIAL ?? ''}` }, durationSeconds));
  } finally {
    mandate.child.kill('SIGTERM');
  }
  const [b, m] = targets;
  return { targets, ratio: `${round((m?.requestsPerSecond ?? 0) / (b?.requestsPerSecond || 1))}× of bare node:http` };
}

/**
 * Gateway benchmark (`--only gateway`): MCP `tools/call` of one upstream tool that does a fixed small amount of
 * work (a lookup in an in-memory table of records), measured in the same run three ways —
 * 1. directly to the upstream MCP server (`bench/servers/mcp-upstream.ts`);
 * 2. through a bare pass-through proxy with no checks (`bench/servers/bare-proxy.ts`);
 * 3. through Mandate's MCP gateway on a real node (`bench/servers/mandate-gateway-server.ts`), authenticated by a
 *    bearer mandate of a task opened by token exchange (every call: mandate verified, session binding, strict
 *    parse, the task's step check and policy, an audit event, a minted upstream token, the result held to the
 *    task's ceiling).
 *
 * The client is the same for all three: raw HTTP/1.1 on kept-alive loopback connections, JSON-RPC bodies prepared
 * before the run, one `initialize` (and `notifications/initialized`) per session, then `tools/call` after
 * `tools/call`, each awaited before the next. It runs sequentially (one session) and with 8 concurrent sessions;
 * the three targets take turns in alternating rounds so that a neighbour's burst does not land on one only.
 * Every answer is checked (HTTP 200 and a result with the record), so an error cannot pass for a fast call.
 *
 * Afterwards a second gateway node runs the 8-session load for a few seconds while V8's sampling profiler records
 * it (started after the warm-up, through `node:inspector`); the profile is summarised by self time per area and by
 * inclusive time of Mandate's functions. Profiling slows the node, so the profiled node is never the measured one.
 */
import { readFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { once } from 'node:events';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import { GRANT_TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS_TOKEN } from '../src/tokens/token-service.ts';
import {
  createGatewayFixtures,
  GATEWAY_AGENT_ID,
  GATEWAY_FIXTURE_ENV,
  GATEWAY_RESOURCE,
  GATEWAY_SCOPE,
  GATEWAY_TASK_DETAILS,
  GATEWAY_UPSTREAM_ID,
  GATEWAY_USER,
  UPSTREAM_URL_ENV,
  type GatewayFixtures,
} from './gateway-fixtures.ts';
import { startServer, type BenchServer } from './http.ts';
import { ratio, round } from './stats.ts';
import { clientAssertion, presign, userToken } from './token-fixtures.ts';

const CONCURRENT_SESSIONS = 8;
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** One target under one load: calls per second and latency of the calls that succeeded. */
export interface GatewayTargetResult {
  name: string;
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** p50 and p99 minus the direct target's, in the same load. */
  addedP50Ms: number;
  addedP99Ms: number;
  calls: number;
  /** Answers that were not HTTP 200 with the tool's result (never counted as calls). */
  failed: number;
}

/** The three targets under one load, and their throughput ratios. */
export interface GatewayLoadResult {
  sessions: number;
  direct: GatewayTargetResult;
  bare: GatewayTargetResult;
  gateway: GatewayTargetResult;
  /** Calls per second, gateway ÷ bare proxy (the issue's aim: ≥ 0.9). */
  gatewayToBare: string;
  bareToDirect: string;
  gatewayToDirect: string;
}

/** One line of the CPU profile summary. */
export interface ProfileShare {
  name: string;
  /** Share of the node's busy (non-idle) samples, in per cent. */
  percent: number;
}

/** Results of the gateway benchmark. */
export interface GatewayBenchResult {
  sequential: GatewayLoadResult;
  concurrent: GatewayLoadResult;
  profile: { seconds: number; callsPerSecond: number; busyPercent: number; byArea: ProfileShare[]; inclusive: ProfileShare[] };
  rounds: number;
  load: string;
}

// ---- the client: raw HTTP with prepared bodies -------------------------------------------------------

interface Answer {
  status: number;
  body: string;
  sessionId: string | undefined;
}

/** One MCP session on one kept-alive connection. */
class Session {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  private readonly headers: Record<string, string>;
  private sessionId: string | undefined;
  private next = 0;

  constructor(
    private readonly url: URL,
    authorization: string,
    private readonly bodies: readonly string[],
  ) {
    // The same headers go to every target (the direct upstream and the bare proxy ignore the mandate): equal bytes.
    this.headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization };
  }

  private post(body: string): Promise<Answer> {
    const headers = { ...this.headers, 'content-length': String(Buffer.byteLength(body)), ...(this.sessionId === undefined ? {} : { 'mcp-session-id': this.sessionId }) };
    return new Promise((resolve, reject) => {
      const req = httpRequest({ agent: this.agent, host: this.url.hostname, port: this.url.port, path: this.url.pathname, method: 'POST', headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const sid = res.headers['mcp-session-id'];
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), sessionId: typeof sid === 'string' ? sid : undefined });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** `initialize`, then `notifications/initialized`, as a client opens a session. */
  async open(): Promise<void> {
    const init = await this.post(
      JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'mandate-bench', version: '1.0.0' } } }),
    );
    if (init.status !== 200 || !init.body.includes('"serverInfo"')) throw new Error(`${this.url.href}: initialize answered ${init.status} ${init.body.slice(0, 300)}`);
    this.sessionId = init.sessionId;
    this.headers['mcp-protocol-version'] = LATEST_PROTOCOL_VERSION;
    const initialized = await this.post('{"jsonrpc":"2.0","method":"notifications/initialized"}');
    if (initialized.status !== 202) throw new Error(`${this.url.href}: notifications/initialized answered ${initialized.status}`);
  }

  /** One `tools/call`; the answer body when it is HTTP 200 with the tool's result, else undefined. */
  async call(): Promise<string | undefined> {
    const body = this.bodies[this.next++ % this.bodies.length] as string;
    const answer = await this.post(body);
    return answer.status === 200 && answer.body.includes('"structuredContent"') && !answer.body.includes('"error"') ? answer.body : undefined;
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Prepared `tools/call` bodies: the same list for every target. */
function toolCallBodies(count = 1_000): string[] {
  return Array.from({ length: count }, (_, i) => JSON.stringify({ jsonrpc: '2.0', id: i + 1, method: 'tools/call', params: { name: 'search', arguments: { query: `crm-lead-${(i * 7) % 1_000}` } } }));
}

interface Samples {
  latenciesMs: number[];
  failed: number;
  elapsedMs: number;
}

/** Runs every session's call loop for `seconds`, each call awaited before that session's next. */
async function drive(sessions: readonly Session[], seconds: number, into: Samples): Promise<void> {
  const started = performance.now();
  const until = started + seconds * 1000;
  await Promise.all(
    sessions.map(async (s) => {
      while (performance.now() < until) {
        const t = performance.now();
        const ok = await s.call();
        if (ok === undefined) into.failed++;
        else into.latenciesMs.push(performance.now() - t);
      }
    }),
  );
  into.elapsedMs += performance.now() - started;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

interface Target {
  name: string;
  url: URL;
}

/** Opens `count` sessions per target, warms them up, then alternates the targets for `rounds` rounds. */
async function loadTargets(
  targets: readonly Target[],
  authorizations: readonly string[],
  seconds: number,
  rounds: number,
  warmupSeconds: number,
  afterWarmup?: () => Promise<void>,
): Promise<Samples[]> {
  const bodies = toolCallBodies();
  const sessions = targets.map((t) => authorizations.map((a) => new Session(t.url, a, bodies)));
  try {
    for (const list of sessions) for (const s of list) await s.open();
    for (const list of sessions) await drive(list, warmupSeconds, { latenciesMs: [], failed: 0, elapsedMs: 0 });
    await afterWarmup?.();
    const samples: Samples[] = targets.map(() => ({ latenciesMs: [], failed: 0, elapsedMs: 0 }));
    const perRound = seconds / rounds;
    for (let r = 0; r < rounds; r++) {
      // Rotate who goes first, so that no target always follows the same one.
      for (let k = 0; k < targets.length; k++) {
        const i = (k + r) % targets.length;
        await drive(sessions[i] as Session[], perRound, samples[i] as Samples);
      }
    }
    return samples;
  } finally {
    for (const list of sessions) for (const s of list) s.close();
  }
}

function summarise(name: string, s: Samples, direct?: { p50: number; p99: number }): GatewayTargetResult & { rawP50: number; rawP99: number } {
  const sorted = Float64Array.from(s.latenciesMs).sort();
  const p50 = percentile(sorted, 0.5);
  const p99 = percentile(sorted, 0.99);
  return {
    name,
    callsPerSecond: Math.round(sorted.length / (s.elapsedMs / 1000)),
    p50Ms: round(p50),
    p99Ms: round(p99),
    addedP50Ms: direct === undefined ? 0 : round(p50 - direct.p50),
    addedP99Ms: direct === undefined ? 0 : round(p99 - direct.p99),
    calls: sorted.length,
    failed: s.failed,
    rawP50: p50,
    rawP99: p99,
  };
}

async function measure(targets: { direct: Target; bare: Target; gateway: Target }, mandates: readonly string[], seconds: number, rounds: number, warmupSeconds: number): Promise<GatewayLoadResult> {
  const list = [targets.direct, targets.bare, targets.gateway];
  const [d, b, g] = (await loadTargets(list, mandates.map((m) => `Bearer ${m}`), seconds, rounds, warmupSeconds)) as [Samples, Samples, Samples];
  const direct = summarise(targets.direct.name, d);
  const base = { p50: direct.rawP50, p99: direct.rawP99 };
  const bare = summarise(targets.bare.name, b, base);
  const gateway = summarise(targets.gateway.name, g, base);
  const strip = ({ rawP50: _a, rawP99: _b, ...r }: ReturnType<typeof summarise>): GatewayTargetResult => r;
  return {
    sessions: mandates.length,
    direct: strip(direct),
    bare: strip(bare),
    gateway: strip(gateway),
    gatewayToBare: ratio(gateway.callsPerSecond, bare.callsPerSecond),
    bareToDirect: ratio(bare.callsPerSecond, direct.callsPerSecond),
    gatewayToDirect: ratio(gateway.callsPerSecond, direct.callsPerSecond),
  };
}

// ---- the node: tasks opened by token exchange ------------------------------------------------------

interface Metadata {
  issuer: string;
  token_endpoint: string;
}

/** Opens `count` tasks of the workflow for the user, one client assertion each (signed before the first request). */
async function openTasks(node: BenchServer, fixtures: GatewayFixtures, count: number): Promise<string[]> {
  const meta = (await (await fetch(`http://127.0.0.1:${node.port}/.well-known/oauth-authorization-server`)).json()) as Metadata;
  const subjectToken = await userToken(fixtures.idp, GATEWAY_USER);
  const assertions = await presign(count, () => clientAssertion(fixtures.agent, GATEWAY_AGENT_ID, meta.issuer));
  const mandates: string[] = [];
  for (const assertion of assertions) {
    const res = await fetch(meta.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: GRANT_TOKEN_EXCHANGE,
        subject_token: subjectToken,
        subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
        resource: GATEWAY_RESOURCE,
        scope: GATEWAY_SCOPE,
        authorization_details: GATEWAY_TASK_DETAILS,
        client_id: GATEWAY_AGENT_ID,
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: assertion,
      }).toString(),
    });
    const json = (await res.json()) as { access_token?: unknown; authorization_details?: Array<{ task_id?: unknown }> };
    if (res.status !== 200 || typeof json.access_token !== 'string' || typeof json.authorization_details?.[0]?.task_id !== 'string') {
      throw new Error(`opening a task: expected a task mandate, got ${res.status} ${JSON.stringify(json).slice(0, 300)}`);
    }
    mandates.push(json.access_token);
  }
  return mandates;
}

/**
 * Checks that each target does the work it is credited with: all three answer the same record; the gateway
 * refuses a call without a mandate (401) and a tool outside the task's plan (JSON-RPC error, upstream not reached).
 */
async function sanityCheck(targets: readonly Target[], mandate: string): Promise<void> {
  const body = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"query":"crm-lead-42"}}}';
  const results: string[] = [];
  for (const t of targets) {
    const s = new Session(t.url, `Bearer ${mandate}`, [body]);
    try {
      await s.open();
      const answer = await s.call();
      if (answer === undefined) throw new Error(`${t.name}: no result for tools/call`);
      results.push(JSON.stringify((JSON.parse(answer) as { result: unknown }).result));
    } finally {
      s.close();
    }
  }
  if (new Set(results).size !== 1 || !(results[0] ?? '').includes('crm-lead-42')) throw new Error(`the targets answer differently: ${results.join(' | ').slice(0, 600)}`);
  const gateway = targets.at(-1) as Target;
  const anonymous = await fetch(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body });
  if (anonymous.status !== 401) throw new Error(`the gateway answered ${anonymous.status} to a call without a mandate`);
  const outOfPlan = await fetch(gateway.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${mandate}`, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION },
    body: '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"delete_everything","arguments":{}}}',
  });
  const denied = (await outOfPlan.json()) as { error?: unknown };
  if (denied.error === undefined) throw new Error('the gateway let a tool outside the plan through');
}

// ---- where the node's time goes: a CPU profile -----------------------------------------------------

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const ROOT = new URL('..', import.meta.url).href;

/** The area a frame belongs to: a Mandate source file, an npm package, a Node.js subsystem, or V8's own. */
function areaOf(url: string, functionName: string): string {
  if (url === '') return functionName === '(garbage collector)' ? 'V8: garbage collector' : functionName === '(program)' ? 'V8: native, unattributed (program)' : `native: ${functionName}`;
  if (url.startsWith('wasm://')) return 'wasm (cedar-wasm)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg !== null) return `npm: ${pkg[1]}`;
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?(?:deps\/)?([^/]+)/.exec(url);
    return `node: ${m?.[1] ?? url}`;
  }
  return url.startsWith(ROOT) ? `mandate: ${url.slice(ROOT.length)}` : url;
}

/**
 * Self time by area (a Mandate file, a package, a Node.js subsystem), and inclusive time of Mandate's own
 * functions (a sample counts once for each function on its stack), as shares of the busy (non-idle) samples.
 * Positions are those of tsx's transpiled code, so a Mandate function is named by file and name, not line.
 */
function summariseProfile(profile: CpuProfile): { busyPercent: number; byArea: ProfileShare[]; inclusive: ProfileShare[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    const id = profile.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
  }
  const areas = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let idle = 0;
  for (const [id, t] of self) {
    const frame = (byId.get(id) as CpuProfileNode).callFrame;
    if (frame.functionName === '(idle)') {
      idle += t;
      continue;
    }
    const area = areaOf(frame.url, frame.functionName);
    areas.set(area, (areas.get(area) ?? 0) + t);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const f = (byId.get(at) as CpuProfileNode).callFrame;
      if (!f.url.startsWith(`${ROOT}src/`)) continue;
      const name = `${f.functionName || '(anonymous)'} (${f.url.slice(ROOT.length)})`;
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + t);
    }
  }
  const busy = total - idle;
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, t]) => ({ name, percent: round((t / (busy || 1)) * 100) }));
  return { busyPercent: round((busy / (total || 1)) * 100), byArea: top(areas, 16), inclusive: top(inclusive, 20) };
}

/** Asks the node (over IPC) for `op`, and waits for its answer. */
async function ask<T>(node: BenchServer, op: string): Promise<T> {
  const answer = once(node.child, 'message') as Promise<[T]>;
  node.child.send({ op });
  return (await answer)[0];
}

async function profileGateway(fixtures: GatewayFixtures, upstreamUrl: string, seconds: number): Promise<GatewayBenchResult['profile']> {
  const node = await startServer('mandate-gateway-server.ts', { [GATEWAY_FIXTURE_ENV]: fixtures.path, [UPSTREAM_URL_ENV]: upstreamUrl }, { ipc: true });
  try {
    const mandates = await openTasks(node, fixtures, CONCURRENT_SESSIONS);
    const url = new URL(`http://127.0.0.1:${node.port}/mcp/${GATEWAY_UPSTREAM_ID}`);
    const [samples] = (await loadTargets([{ name: 'gateway (profiled)', url }], mandates.map((m) => `Bearer ${m}`), seconds, 1, 1, () => ask(node, 'profile-start').then(() => undefined))) as [Samples];
    const { file } = await ask<{ file: string }>(node, 'profile-stop');
    const callsPerSecond = Math.round(samples.latenciesMs.length / (samples.elapsedMs / 1000));
    return { seconds, callsPerSecond, ...summariseProfile(JSON.parse(await readFile(file, 'utf8')) as CpuProfile) };
  } finally {
    node.child.kill('SIGTERM');
  }
}

// ---- the benchmark -------------------------------------------------------------------------------

/**
 * Runs the gateway benchmark: `seconds` of calls per target and load (split over `rounds` alternating rounds),
 * sequentially and with {@link CONCURRENT_SESSIONS} sessions, then a profile of `profileSeconds`.
 */
export async function benchGateway(seconds: number, rounds = 3, profileSeconds = 4): Promise<GatewayBenchResult> {
  const before = loadavg().map((n) => n.toFixed(2)).join(' ');
  const fixtures = await createGatewayFixtures();
  const upstream = await startServer('mcp-upstream.ts');
  const servers: BenchServer[] = [upstream];
  try {
    const upstreamUrl = `http://127.0.0.1:${upstream.port}/mcp`;
    const bare = await startServer('bare-proxy.ts', { [UPSTREAM_URL_ENV]: upstreamUrl });
    servers.push(bare);
    const node = await startServer('mandate-gateway-server.ts', { [GATEWAY_FIXTURE_ENV]: fixtures.path, [UPSTREAM_URL_ENV]: upstreamUrl });
    servers.push(node);
    const targets = {
      direct: { name: 'direct to the upstream', url: new URL(upstreamUrl) },
      bare: { name: 'bare pass-through proxy (node:http, no checks)', url: new URL(`http://127.0.0.1:${bare.port}/mcp`) },
      gateway: { name: "Mandate's MCP gateway (task mandate, bearer)", url: new URL(`http://127.0.0.1:${node.port}/mcp/${GATEWAY_UPSTREAM_ID}`) },
    };
    const mandates = await openTasks(node, fixtures, 1 + CONCURRENT_SESSIONS);
    await sanityCheck([targets.direct, targets.bare, targets.gateway], mandates[0] as string);
    const warmup = Math.min(2, Math.max(1, seconds / 3));
    const sequential = await measure(targets, mandates.slice(0, 1), seconds, rounds, warmup);
    const concurrent = await measure(targets, mandates.slice(1), seconds, rounds, warmup);
    // The measured node is stopped first: the profiled one gets the CPU to itself.
    node.child.kill('SIGTERM');
    servers.pop();
    const profile = await profileGateway(fixtures, upstreamUrl, profileSeconds);
    const after = loadavg().map((n) => n.toFixed(2)).join(' ');
    return { sequential, concurrent, profile, rounds, load: `load average ${before} before, ${after} after` };
  } finally {
    for (const s of servers) s.child.kill('SIGTERM');
  }
}

/** Prints the gateway benchmark as Markdown. */
export function printGateway(g: GatewayBenchResult): void {
  console.log(`\n## MCP gateway: tools/call direct, through a bare proxy, through Mandate (${g.load}; ${g.rounds} alternating rounds)\n`);
  console.log('One upstream tool (a lookup in an in-memory table of 1,000 records); raw HTTP with prepared JSON-RPC bodies, one initialize per session.\n');
  for (const l of [g.sequential, g.concurrent]) {
    console.log(`### ${l.sessions === 1 ? 'Sequential (1 session)' : `${l.sessions} concurrent sessions`}\n`);
    console.log('| target | calls/s | p50 ms | p99 ms | added p50 ms | added p99 ms | calls | failed |\n|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const t of [l.direct, l.bare, l.gateway]) console.log(`| ${t.name} | ${t.callsPerSecond} | ${t.p50Ms} | ${t.p99Ms} | ${t.addedP50Ms} | ${t.addedP99Ms} | ${t.calls} | ${t.failed} |`);
    console.log(`\ncalls/s ratios: gateway ÷ bare proxy ${l.gatewayToBare}; bare proxy ÷ direct ${l.bareToDirect}; gateway ÷ direct ${l.gatewayToDirect}\n`);
  }
  const p = g.profile;
  console.log(`### Where the gateway node's CPU goes (${p.seconds} s of ${CONCURRENT_SESSIONS}-session load under the sampling profiler, ${p.callsPerSecond} calls/s; busy ${p.busyPercent} % of samples)\n`);
  console.log('| self time, by area | % of busy |\n|---|---:|');
  for (const a of p.byArea) console.log(`| ${a.name} | ${a.percent} |`);
  console.log('\n| inclusive time, Mandate functions | % of busy |\n|---|---:|');
  for (const a of p.inclusive) console.log(`| ${a.name} | ${a.percent} |`);
}

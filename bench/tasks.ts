/**
 * Task benchmarks (`--only tasks`), with the example policies and the `lead-followup` workflow:
 * - revocation to denial, in-process: end a task (the token service's `closeTask`, or RFC 7009 revocation of its
 *   refresh token), then verify one of its mandates at once (`verifyMandate`) and ask for one of its steps
 *   (AuthZEN with `context.task`); the revoke call's duration is the figure, and every verification and step
 *   check after it must be denied (counted). Beside it in the same run: revoking one plain mandate
 *   (`store.tokens.revoke`) and a bare SQLite transaction of comparable size with `synchronous = FULL`;
 * - tasks opened and closed per second over HTTP (open by token exchange with RFC 9396 `authorization_details`,
 *   close by revoking the refresh token), beside Mandate's plain token exchange, in alternating rounds;
 * - the resident memory of a node holding 10,000 open tasks, beside the same node idle.
 *
 * Client assertions carry a unique `jti` each and are signed before the timed part, as in `bench/tokens.ts`.
 */
import { mkdtemp } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { decodeJwt } from 'jose';
import { pino } from 'pino';
import { createAuditEvent } from '../src/audit/audit-event.ts';
import { startMandate, type RunningMandate } from '../src/cli/start-mandate.ts';
import { parseConfig } from '../src/config/index.ts';
import { systemClock } from '../src/core/ports.ts';
import type { TaskRecord } from '../src/store/store.ts';
import { generateKek, KEK_ENV_VAR } from '../src/tokens/key-encryption.ts';
import { GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS_TOKEN } from '../src/tokens/token-service.ts';
import { startServer, type BenchServer } from './http.ts';
import type { TaskNodeMemory } from './servers/mandate-task-server.ts';
import { ratio, round, summariseSamples, type LatencyResult } from './stats.ts';
import {
  CHAT_AGENT_ID,
  createTaskFixtures,
  PEP_SERVICE_ID,
  TASK_AGENT_ID,
  TASK_DETAILS,
  TASK_FIXTURE_ENV,
  TASK_RESOURCE,
  TASK_SCOPE,
  TASK_USER,
  taskNodeConfig,
  type TaskFixtures,
} from './task-fixtures.ts';
import { clientAssertion, presign, userToken, type BenchKey } from './token-fixtures.ts';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const CONNECTIONS = 32;

/** One way of revoking, measured: the revoke call, then the first verification after it. */
export interface RevocationRow {
  name: string;
  /** Duration of the revoke call, durable commit included. */
  revoke: LatencyResult;
  /** Duration of the first `verifyMandate` after it (a denial, every time); absent for the bare write. */
  denial?: LatencyResult;
  /** Verifications after the revoke that were NOT denied, or denied for another reason. Must be 0. */
  notDenied: number;
  /** `revoke p50 ÷ bare SQLite write p50`. */
  ratioToBareWrite: string;
}

/** Results of the revocation benchmark. */
export interface RevocationResult {
  iterations: number;
  rows: RevocationRow[];
  /** The AuthZEN step check (in-process `inject`) after each `closeTask`: its duration, and how many were allowed. */
  stepCheck: { latency: LatencyResult; notDenied: number; allowedBefore: number };
  /** `closeTask p50 ÷ tokens.revoke p50`. */
  closeToPlain: string;
  /** Bytes of the bare write's event row (a `task.close` audit event as stored). */
  bareEventBytes: number;
}

/** One HTTP target over its rounds. */
export interface TaskHttpResult {
  name: string;
  /** Completed operations per second: a task opened AND closed, or one exchange. */
  perSecond: number;
  /** HTTP requests per second (2 per task). */
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  completed: number;
  errors: number;
  non2xx: number;
  poolExhausted: number;
}

/** Results of the task benchmark. */
export interface TaskBenchResult {
  revocation: RevocationResult;
  throughput: { tasks: TaskHttpResult; exchange: TaskHttpResult; ratio: string; leftOpen: number; rounds: number };
  memory: {
    tasks: number;
    /** Tasks opened and closed (and plain exchanges made) before the idle measurement. */
    warmup: number;
    openedPerSecond: number;
    idle: TaskNodeMemory;
    open: TaskNodeMemory;
    /** The control: the same node once every task was closed (store, one transaction). */
    afterClose: TaskNodeMemory;
    perTaskRssBytes: number;
    perTaskHeapBytes: number;
    perTaskDiskBytes: number;
    rssRatio: string;
  };
  load: string;
}

function form(params: Record<string, string>): string {
  return new URLSearchParams(params).toString();
}

async function postForm(url: string, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

/** Runs `fn(i)` for i < count with at most `limit` in flight. */
async function mapLimit<T>(count: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return out;
}

interface Metadata {
  issuer: string;
  token_endpoint: string;
  revocation_endpoint: string;
  introspection_endpoint: string;
}

async function metadataOf(baseUrl: string): Promise<Metadata> {
  const res = await fetch(`${baseUrl}/.well-known/oauth-authorization-server`);
  if (!res.ok) throw new Error(`the Mandate node answered ${res.status} for its OAuth metadata: is the token service started?`);
  const meta = (await res.json()) as Metadata;
  if (typeof meta.revocation_endpoint !== 'string' || typeof meta.introspection_endpoint !== 'string') throw new Error('the Mandate node names no revocation or introspection endpoint');
  return meta;
}

/** The form that opens a task (without its client assertion). */
function openTaskForm(subjectToken: string, assertion: string): string {
  return form({
    grant_type: GRANT_TOKEN_EXCHANGE,
    subject_token: subjectToken,
    subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
    resource: TASK_RESOURCE,
    scope: TASK_SCOPE,
    authorization_details: TASK_DETAILS,
    client_id: TASK_AGENT_ID,
    client_assertion_type: ASSERTION_TYPE,
    client_assertion: assertion,
  });
}

/** The plain exchange: the chat agent, the same user token, resource and scope, no task. */
function plainExchangeForm(subjectToken: string, assertion: string): string {
  return form({
    grant_type: GRANT_TOKEN_EXCHANGE,
    subject_token: subjectToken,
    subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
    resource: TASK_RESOURCE,
    scope: TASK_SCOPE,
    client_id: CHAT_AGENT_ID,
    client_assertion_type: ASSERTION_TYPE,
    client_assertion: assertion,
  });
}

/** The RFC 7009 form that ends a task, without the `token` (appended once the refresh token is known). */
function revokeForm(assertion: string): string {
  return form({ token_type_hint: 'refresh_token', client_id: TASK_AGENT_ID, client_assertion_type: ASSERTION_TYPE, client_assertion: assertion });
}

interface OpenedTask {
  taskId: string;
  refresh: string;
  mandate: string;
}

async function openTask(meta: Metadata, agent: BenchKey, subjectToken: string): Promise<OpenedTask> {
  const r = await postForm(meta.token_endpoint, openTaskForm(subjectToken, await clientAssertion(agent, TASK_AGENT_ID, meta.issuer)));
  const details = r.json.authorization_details as Array<Record<string, unknown>> | undefined;
  const taskId = details?.[0]?.task_id;
  if (r.status !== 200 || typeof taskId !== 'string' || typeof r.json.refresh_token !== 'string') {
    throw new Error(`opening a task: expected a mandate and a refresh token, got ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
  }
  return { taskId, refresh: r.json.refresh_token, mandate: String(r.json.access_token) };
}

// ---- 1. revocation to denial, in-process ------------------------------------------------------------

/** Starts a node in this process (store on disk under the temporary directory, as the server processes). */
async function startInProcessNode(fixtures: TaskFixtures): Promise<RunningMandate> {
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-bench-revoke-'));
  const parsed = parseConfig(taskNodeConfig(fixtures.file, dataDir), { source: 'bench', env: {}, cwd: dataDir, baseDir: dataDir });
  return startMandate({ ...parsed, server: { ...parsed.server, port: 0 } }, { logger: pino({ level: 'warn' }), env: { [KEK_ENV_VAR]: generateKek() } });
}

/**
 * Revocation to denial. Each iteration takes the four variants in a rotating order (so that none always follows
 * another's fsync): `closeTask` of an open task, RFC 7009 revocation of another task's refresh token through the
 * token service (client assertion verified, its jti recorded), `store.tokens.revoke` of a plain mandate, and a
 * bare SQLite transaction. After each revoke, the first `verifyMandate` of the revoked thing must be denied.
 */
export async function benchRevocation(fixtures: TaskFixtures, iterations: number): Promise<RevocationResult> {
  const node = await startInProcessNode(fixtures);
  const bareDir = await mkdtemp(join(tmpdir(), 'mandate-bench-bare-'));
  const bare = new Database(join(bareDir, 'bare.db'));
  try {
    const tokens = node.tokens;
    if (tokens === undefined) throw new Error('the bench node started without its token service');
    const service = tokens.service;
    const meta = await metadataOf(node.url);
    const warmup = Math.min(50, Math.ceil(iterations / 10));
    const total = iterations + warmup;
    const subjectToken = await userToken(fixtures.idp, TASK_USER);

    // Setup (not timed): the tasks each variant ends, the plain mandates, the PEP's token.
    const closeTasks = await mapLimit(total, 16, () => openTask(meta, fixtures.outreach, subjectToken));
    const revokeTasks = await mapLimit(total, 16, () => openTask(meta, fixtures.outreach, subjectToken));
    const plain = await mapLimit(total, 16, async () => {
      const r = await postForm(meta.token_endpoint, plainExchangeForm(subjectToken, await clientAssertion(fixtures.chat, CHAT_AGENT_ID, meta.issuer)));
      if (r.status !== 200 || typeof r.json.access_token !== 'string') throw new Error(`plain exchange: got ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
      if (r.json.refresh_token !== undefined) throw new Error('plain exchange: a refresh token came back, so this is not a plain mandate');
      return { mandate: r.json.access_token, jti: String(decodeJwt(r.json.access_token).jti) };
    });
    const revokeAssertions = await presign(total, () => clientAssertion(fixtures.outreach, TASK_AGENT_ID, meta.issuer));
    const pep = await postForm(
      meta.token_endpoint,
      form({ grant_type: GRANT_CLIENT_CREDENTIALS, resource: meta.issuer, scope: 'evaluate', client_id: PEP_SERVICE_ID, client_assertion_type: ASSERTION_TYPE, client_assertion: await clientAssertion(fixtures.gateway, PEP_SERVICE_ID, meta.issuer) }),
    );
    if (pep.status !== 200) throw new Error(`the PEP's token: got ${pep.status} ${JSON.stringify(pep.json).slice(0, 300)}`);
    const pepToken = String(pep.json.access_token);
    const records: TaskRecord[] = [];
    for (const t of closeTasks) {
      const rec = await node.store.tasks.get(t.taskId);
      if (rec?.status !== 'open') throw new Error(`task ${t.taskId} is not open after opening it`);
      records.push(rec);
    }

    /** One step of a task through AuthZEN (what a PEP asks before a tool call), in-process. */
    const stepCheck = async (taskId: string): Promise<{ decision: boolean; reason?: string }> => {
      const res = await node.server.app.inject({
        method: 'POST',
        url: '/access/v1/evaluation',
        headers: { authorization: `Bearer ${pepToken}`, 'content-type': 'application/json' },
        payload: JSON.stringify({
          subject: { type: 'user', id: TASK_USER },
          action: { name: 'call' },
          resource: { type: 'tool', id: 'crm.search' },
          context: { task: { type: 'Task', id: taskId }, delegation: { actors: [{ type: 'agent', id: TASK_AGENT_ID }] }, arguments: { query: 'ACME' } },
        }),
      });
      if (res.statusCode !== 200) throw new Error(`step check: HTTP ${res.statusCode} ${res.body.slice(0, 300)}`);
      const body = res.json<{ decision: boolean; context?: { reason_code?: string } }>();
      return { decision: body.decision, ...(body.context?.reason_code === undefined ? {} : { reason: body.context.reason_code }) };
    };
    // Every task to be ended is first allowed a step, so that the denial after the end is the end's doing.
    let allowedBefore = 0;
    for (const t of closeTasks) if ((await stepCheck(t.taskId)).decision) allowedBefore++;
    if (allowedBefore !== total) throw new Error(`only ${allowedBefore} of ${total} open tasks were allowed a step before their end`);
    // And every mandate to be revoked verifies before its revocation.
    for (const m of [...closeTasks, ...revokeTasks, ...plain]) await service.verifyMandate(m.mandate);

    // The bare write: the same pragmas as the store, one transaction updating a row and appending an event row the
    // size of a stored task.close audit event and a revocation-feed row.
    bare.pragma('journal_mode = WAL');
    bare.pragma('synchronous = FULL');
    bare.exec('CREATE TABLE rows (id TEXT PRIMARY KEY, status TEXT NOT NULL, at INTEGER); CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, data TEXT NOT NULL); CREATE TABLE feed (seq INTEGER PRIMARY KEY, row TEXT NOT NULL, at INTEGER NOT NULL)');
    const insertRow = bare.prepare('INSERT INTO rows (id, status, at) VALUES (?, ?, NULL)');
    bare.transaction(() => {
      for (let i = 0; i < total; i++) insertRow.run(`row-${i}`, 'open');
    })();
    const probe = await openTask(meta, fixtures.outreach, subjectToken);
    await service.closeTask((await node.store.tasks.get(probe.taskId)) as TaskRecord, 'ended', 'bench_end', 'bench');
    const stored = await node.store.audit.list({ afterSeq: Math.max(0, (await node.store.audit.count()) - 50), limit: 100 });
    const sample = stored.find((e) => e.type === 'task.close' && (e.data as { taskId?: string }).taskId === probe.taskId);
    if (sample === undefined) throw new Error('the task.close audit event of the probe task was not found');
    const eventBytes = JSON.stringify(sample).length;
    const payload = 'x'.repeat(eventBytes);
    const update = bare.prepare("UPDATE rows SET status = 'ended', at = ? WHERE id = ?");
    const appendEvent = bare.prepare('INSERT INTO events (id, data) VALUES (?, ?)');
    const appendFeed = bare.prepare('INSERT INTO feed (row, at) VALUES (?, ?)');
    const bareWrite = bare.transaction((i: number, at: number) => {
      update.run(at, `row-${i}`);
      appendEvent.run(`event-${i}`, payload);
      appendFeed.run(`row-${i}`, at);
    });

    const samples = { close: [] as number[], closeDenial: [] as number[], step: [] as number[], rfc7009: [] as number[], rfc7009Denial: [] as number[], plain: [] as number[], plainDenial: [] as number[], bare: [] as number[] };
    const notDenied = { close: 0, step: 0, rfc7009: 0, plain: 0 };
    /** Verifies right after a revoke; a denial with the expected message is the only right outcome. */
    const deniedAfter = async (token: string, expected: RegExp): Promise<{ ms: number; denied: boolean }> => {
      const t = performance.now();
      try {
        await service.verifyMandate(token);
        return { ms: performance.now() - t, denied: false };
      } catch (err) {
        const ms = performance.now() - t;
        return { ms, denied: err instanceof Error && expected.test(err.message) };
      }
    };
    /** Keeps a sample once the warm-up iterations are over. */
    const keep = (i: number, into: number[], ms: number) => {
      if (i >= warmup) into.push(ms);
    };

    const variants: Array<(i: number) => Promise<void>> = [
      async (i) => {
        const t0 = performance.now();
        await service.closeTask(records[i] as TaskRecord, 'ended', 'bench_end', 'bench');
        keep(i, samples.close, performance.now() - t0);
        const d = await deniedAfter((closeTasks[i] as OpenedTask).mandate, /task has ended/);
        keep(i, samples.closeDenial, d.ms);
        if (!d.denied) notDenied.close++;
        const t1 = performance.now();
        const step = await stepCheck((closeTasks[i] as OpenedTask).taskId);
        keep(i, samples.step, performance.now() - t1);
        if (step.decision || step.reason !== 'task_not_open') notDenied.step++;
      },
      async (i) => {
        const t = revokeTasks[i] as OpenedTask;
        const body = { token: t.refresh, token_type_hint: 'refresh_token', client_id: TASK_AGENT_ID, client_assertion_type: ASSERTION_TYPE, client_assertion: revokeAssertions[i] as string };
        const t0 = performance.now();
        const r = await service.revoke(body, { method: 'POST', url: meta.revocation_endpoint, requestId: `bench-revoke-${i}` });
        keep(i, samples.rfc7009, performance.now() - t0);
        const d = await deniedAfter(t.mandate, /task has ended/);
        keep(i, samples.rfc7009Denial, d.ms);
        if (!r.revoked || !d.denied) notDenied.rfc7009++;
      },
      async (i) => {
        const p = plain[i] as { mandate: string; jti: string };
        const t0 = performance.now();
        const done = await node.store.tokens.revoke(
          p.jti,
          Date.now(),
          'revoked by client',
          createAuditEvent(
            { type: 'token.revoke', outcome: 'success', actor: CHAT_AGENT_ID, subject: `User::"${TASK_USER}"`, resource: TASK_RESOURCE, data: { requestId: `bench-${i}`, jti: p.jti, reason: 'client request' } },
            { clock: systemClock },
          ),
        );
        keep(i, samples.plain, performance.now() - t0);
        const d = await deniedAfter(p.mandate, /has been revoked/);
        keep(i, samples.plainDenial, d.ms);
        if (!done || !d.denied) notDenied.plain++;
      },
      async (i) => {
        const t0 = performance.now();
        bareWrite.immediate(i, Date.now());
        keep(i, samples.bare, performance.now() - t0);
      },
    ];
    for (let i = 0; i < total; i++) {
      for (let k = 0; k < variants.length; k++) await (variants[(i + k) % variants.length] as (i: number) => Promise<void>)(i);
    }

    const bareResult = summariseSamples('bare SQLite transaction (synchronous = FULL, WAL)', samples.bare);
    const row = (name: string, revoke: number[], denial: number[] | undefined, failures: number): RevocationRow => {
      const r = summariseSamples(name, revoke);
      return {
        name,
        revoke: r,
        ...(denial === undefined ? {} : { denial: summariseSamples(`${name}: first verification after`, denial) }),
        notDenied: failures,
        ratioToBareWrite: ratio(r.p50Micros, bareResult.p50Micros),
      };
    };
    const rows = [
      row('task: token service closeTask (task, its mandates, its refresh tokens, task.close audit event)', samples.close, samples.closeDenial, notDenied.close),
      row('task: RFC 7009 revocation of its refresh token (token service, client assertion verified)', samples.rfc7009, samples.rfc7009Denial, notDenied.rfc7009),
      row('plain mandate: store.tokens.revoke (token row + token.revoke audit event)', samples.plain, samples.plainDenial, notDenied.plain),
      { name: bareResult.name, revoke: bareResult, notDenied: 0, ratioToBareWrite: '1×' },
    ];
    return {
      iterations,
      rows,
      stepCheck: { latency: summariseSamples('AuthZEN step check of the ended task (in-process inject)', samples.step), notDenied: notDenied.step, allowedBefore },
      closeToPlain: ratio((rows[0] as RevocationRow).revoke.p50Micros, (rows[2] as RevocationRow).revoke.p50Micros),
      bareEventBytes: eventBytes,
    };
  } finally {
    bare.close();
    await node.stop();
  }
}

// ---- 2. tasks opened and closed per second over HTTP ------------------------------------------------

/** A load target: one operation is one request (the exchange) or two (open a task, then revoke its refresh token). */
interface SequenceTarget {
  name: string;
  paths: readonly string[];
  /** Signs the bodies of one operation (the second without its `token`). */
  make(): Promise<string[]>;
}

interface SequenceContext {
  bodies?: string[];
  refresh?: string;
}

const REFRESH = /"refresh_token":"([^"]+)"/;

/**
 * Runs autocannon for `seconds`, each operation taking the next pre-signed item of `pool`. In a two-step target
 * the second request revokes the refresh token the first answered; a first step that failed restarts the
 * sequence. Should the pool run out, the run stops and the rate is computed up to that moment.
 */
async function loadSequence(target: SequenceTarget, baseUrl: string, pool: readonly string[][], seconds: number): Promise<TaskHttpResult> {
  let next = 0;
  let exhausted = 0;
  let completed = 0;
  let ranOutAt: number | undefined;
  let instance: autocannon.Instance | undefined;
  const two = target.paths.length === 2;
  const take = (): string[] => {
    const item = pool[next++];
    if (item !== undefined) return item;
    if (exhausted++ === 0) {
      ranOutAt = performance.now();
      instance?.stop();
    }
    return pool[pool.length - 1] as string[];
  };
  const requests: autocannon.Request[] = [
    {
      method: 'POST',
      path: target.paths[0] as string,
      setupRequest: (request, context) => {
        const ctx = context as SequenceContext;
        ctx.bodies = take();
        ctx.refresh = undefined;
        return { ...request, body: ctx.bodies[0] as string };
      },
      onResponse: (status, body, context) => {
        if (status !== 200) return;
        if (!two) completed++;
        else (context as SequenceContext).refresh = REFRESH.exec(body)?.[1];
      },
    },
  ];
  if (two) {
    requests.push({
      method: 'POST',
      path: target.paths[1] as string,
      // No refresh token (the open failed): autocannon starts the sequence again.
      setupRequest: (request, context) => {
        const ctx = context as SequenceContext;
        if (ctx.refresh === undefined) return undefined as unknown as autocannon.Request;
        return { ...request, body: `${ctx.bodies?.[1] ?? ''}&token=${encodeURIComponent(ctx.refresh)}` };
      },
      onResponse: (status) => {
        if (status === 200) completed++;
      },
    });
  }
  const started = performance.now();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      { url: baseUrl, connections: CONNECTIONS, duration: seconds, headers: { 'content-type': 'application/x-www-form-urlencoded' }, requests },
      (err: unknown, res: autocannon.Result) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(res)),
    );
  });
  const elapsed = ranOutAt === undefined ? result.duration || seconds : (ranOutAt - started) / 1000;
  return {
    name: target.name,
    perSecond: Math.round(completed / elapsed),
    requestsPerSecond: Math.round(result['2xx'] / elapsed),
    p50Ms: round(result.latency.p50),
    p99Ms: round(result.latency.p99),
    completed,
    errors: result.errors,
    non2xx: result.non2xx,
    poolExhausted: exhausted,
  };
}

function combine(rounds: readonly TaskHttpResult[]): TaskHttpResult {
  const first = rounds[0] as TaskHttpResult;
  const mean = (f: (r: TaskHttpResult) => number) => round(rounds.reduce((s, r) => s + f(r), 0) / rounds.length);
  const sum = (f: (r: TaskHttpResult) => number) => rounds.reduce((s, r) => s + f(r), 0);
  return {
    name: first.name,
    perSecond: Math.round(mean((r) => r.perSecond)),
    requestsPerSecond: Math.round(mean((r) => r.requestsPerSecond)),
    p50Ms: mean((r) => r.p50Ms),
    p99Ms: mean((r) => r.p99Ms),
    completed: sum((r) => r.completed),
    errors: sum((r) => r.errors),
    non2xx: sum((r) => r.non2xx),
    poolExhausted: sum((r) => r.poolExhausted),
  };
}

/** Alternating rounds after a 2-second warm-up per target; each round's pool is sized from the best rate seen. */
async function runAlternating(targets: readonly SequenceTarget[], baseUrl: string, seconds: number, rounds: number): Promise<TaskHttpResult[]> {
  const rates: number[] = [];
  for (const t of targets) {
    const warm = await loadSequence(t, baseUrl, await presign(3_000, () => t.make()), 2);
    if (warm.completed === 0) throw new Error(`${t.name}: the warm-up completed nothing (${warm.non2xx} non-2xx, ${warm.errors} errors)`);
    rates.push(warm.perSecond);
  }
  const perRound = Math.max(2, Math.round(seconds / rounds));
  const results: TaskHttpResult[][] = targets.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const [i, t] of targets.entries()) {
      const pool = await presign(Math.min(100_000, Math.ceil((rates[i] as number) * perRound * 3) + 2_000), () => t.make());
      const result = await loadSequence(t, baseUrl, pool, perRound);
      (results[i] as TaskHttpResult[]).push(result);
      rates[i] = Math.max(rates[i] as number, result.perSecond);
    }
  }
  return results.map(combine);
}

async function startTaskNode(fixtures: TaskFixtures): Promise<BenchServer> {
  return startServer('mandate-task-server.ts', { [TASK_FIXTURE_ENV]: fixtures.path }, { ipc: true, nodeArgs: ['--expose-gc'] });
}

/** Sends one IPC request to a task node and waits for its answer. */
function ask<T>(server: BenchServer, op: 'memory' | 'close-all'): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the task node did not answer ${op} within 120 s`)), 120_000);
    server.child.once('message', (m) => {
      clearTimeout(timer);
      resolve(m as T);
    });
    server.child.send({ op });
  });
}

/** Asks a task node for its memory (after GC), its data directory's size and its open tasks. */
function memoryOf(server: BenchServer): Promise<TaskNodeMemory> {
  return ask<TaskNodeMemory>(server, 'memory');
}

/** Checks one task over HTTP end to end before loading: opened, ended by revoking its grant, its mandate inactive. */
async function sanityCheck(fixtures: TaskFixtures, meta: Metadata, subjectToken: string): Promise<void> {
  const t = await openTask(meta, fixtures.outreach, subjectToken);
  const revoked = await postForm(meta.revocation_endpoint, `${revokeForm(await clientAssertion(fixtures.outreach, TASK_AGENT_ID, meta.issuer))}&token=${encodeURIComponent(t.refresh)}`);
  if (revoked.status !== 200) throw new Error(`ending a task: got ${revoked.status} ${JSON.stringify(revoked.json)}`);
  const seen = await postForm(meta.introspection_endpoint, form({ token: t.mandate, client_id: TASK_AGENT_ID, client_assertion_type: ASSERTION_TYPE, client_assertion: await clientAssertion(fixtures.outreach, TASK_AGENT_ID, meta.issuer) }));
  if (seen.status !== 200 || seen.json.active !== false) throw new Error(`the mandate of an ended task is still active: ${seen.status} ${JSON.stringify(seen.json).slice(0, 200)}`);
}

/** Tasks opened and closed per second, beside the plain exchange, on one server process. */
async function benchTaskThroughput(fixtures: TaskFixtures, seconds: number, rounds: number): Promise<TaskBenchResult['throughput']> {
  const server = await startTaskNode(fixtures);
  try {
    const base = `http://127.0.0.1:${server.port}`;
    const meta = await metadataOf(base);
    const subjectToken = await userToken(fixtures.idp, TASK_USER);
    await sanityCheck(fixtures, meta, subjectToken);
    const tokenPath = new URL(meta.token_endpoint).pathname;
    const revokePath = new URL(meta.revocation_endpoint).pathname;
    const tasks: SequenceTarget = {
      name: 'task opened (token exchange + authorization_details) and closed (RFC 7009 revocation of its refresh token)',
      paths: [tokenPath, revokePath],
      make: async () => {
        const [a, b] = await Promise.all([clientAssertion(fixtures.outreach, TASK_AGENT_ID, meta.issuer), clientAssertion(fixtures.outreach, TASK_AGENT_ID, meta.issuer)]);
        return [openTaskForm(subjectToken, a), revokeForm(b)];
      },
    };
    const exchange: SequenceTarget = {
      name: 'plain token exchange (user token → mandate, no task)',
      paths: [tokenPath],
      make: async () => [plainExchangeForm(subjectToken, await clientAssertion(fixtures.chat, CHAT_AGENT_ID, meta.issuer))],
    };
    const [t, e] = (await runAlternating([tasks, exchange], base, seconds, rounds)) as [TaskHttpResult, TaskHttpResult];
    const { openTasks } = await memoryOf(server);
    return { tasks: t, exchange: e, ratio: ratio(t.perSecond, e.perSecond), leftOpen: openTasks, rounds };
  } finally {
    server.child.kill('SIGTERM');
  }
}

// ---- 3. resident memory with many open tasks --------------------------------------------------------

/**
 * A fresh node: warmed up (`count ÷ 5` tasks opened and closed over HTTP and as many plain exchanges, 32 in
 * flight, so that the allocator and the SQLite caches reach the size the load gives them) and measured idle;
 * then `count` tasks opened over HTTP (32 in flight, assertions signed beforehand) and left open, and measured
 * again; then, as a control, all of them closed through the store in one transaction, and measured a third time.
 */
async function benchTaskMemory(fixtures: TaskFixtures, count: number): Promise<TaskBenchResult['memory']> {
  const server = await startTaskNode(fixtures);
  try {
    const base = `http://127.0.0.1:${server.port}`;
    const meta = await metadataOf(base);
    const subjectToken = await userToken(fixtures.idp, TASK_USER);
    const warm = Math.max(200, Math.round(count / 5));
    const warmOpen = await presign(warm, () => clientAssertion(fixtures.outreach, TASK_AGENT_ID, meta.issuer));
    const warmClose = await presign(warm, () => clientAssertion(fixtures.outreach, TASK_AGENT_ID, meta.issuer));
    const warmPlain = await presign(warm, () => clientAssertion(fixtures.chat, CHAT_AGENT_ID, meta.issuer));
    await mapLimit(warm, CONNECTIONS, async (i) => {
      const r = await postForm(meta.token_endpoint, openTaskForm(subjectToken, warmOpen[i] as string));
      await postForm(meta.revocation_endpoint, `${revokeForm(warmClose[i] as string)}&token=${encodeURIComponent(String(r.json.refresh_token))}`);
      await postForm(meta.token_endpoint, plainExchangeForm(subjectToken, warmPlain[i] as string));
    });
    const idle = await memoryOf(server);
    if (idle.openTasks !== 0) throw new Error(`${idle.openTasks} warm-up tasks are still open`);

    const assertions = await presign(count, () => clientAssertion(fixtures.outreach, TASK_AGENT_ID, meta.issuer));
    let failed = 0;
    const started = performance.now();
    await mapLimit(count, CONNECTIONS, async (i) => {
      const r = await postForm(meta.token_endpoint, openTaskForm(subjectToken, assertions[i] as string));
      if (r.status !== 200) failed++;
    });
    const openedPerSecond = Math.round(count / ((performance.now() - started) / 1000));
    if (failed > 0) throw new Error(`${failed} of ${count} tasks could not be opened`);
    const open = await memoryOf(server);
    if (open.openTasks !== count) throw new Error(`expected ${count} open tasks, the node holds ${open.openTasks}`);
    const { closed } = await ask<{ closed: number }>(server, 'close-all');
    if (closed !== count) throw new Error(`closing every task closed ${closed}, expected ${count}`);
    const afterClose = await memoryOf(server);
    return {
      tasks: count,
      warmup: warm,
      openedPerSecond,
      idle,
      open,
      afterClose,
      perTaskRssBytes: Math.round((open.rss - idle.rss) / count),
      perTaskHeapBytes: Math.round((open.heapUsed - idle.heapUsed) / count),
      perTaskDiskBytes: Math.round((open.dataDirBytes - idle.dataDirBytes) / count),
      rssRatio: ratio(open.rss, idle.rss),
    };
  } finally {
    server.child.kill('SIGTERM');
  }
}

/**
 * Runs the task benchmarks: `iterations` revocations per variant in-process, `seconds` of HTTP load per target
 * (split over two alternating rounds), and a node holding `openTasks` open tasks.
 */
export async function benchTasks(options: { iterations: number; seconds: number; openTasks: number }): Promise<TaskBenchResult> {
  const fixtures = await createTaskFixtures();
  const before = loadavg().map((n) => n.toFixed(2)).join(' ');
  const revocation = await benchRevocation(fixtures, options.iterations);
  const throughput = await benchTaskThroughput(fixtures, options.seconds, 2);
  const memory = await benchTaskMemory(fixtures, options.openTasks);
  const after = loadavg().map((n) => n.toFixed(2)).join(' ');
  return { revocation, throughput, memory, load: `load average ${before} before, ${after} after` };
}

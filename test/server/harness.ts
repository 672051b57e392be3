/**
 * Test harness for HTTP scenarios: a real server on 127.0.0.1 (port 0), a real SQLite store in a temp
 * directory, a real decision log, a real policy directory, and credentials built fresh for each run (no
 * secret literals). Logs are captured in memory so that tests can assert what reached them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecisionLog } from '../../src/audit/decision-log.ts';
import type { AuditEvent } from '../../src/audit/audit-event.ts';
import { generateCredentialSecret, hashCredential } from '../../src/config/credentials.ts';
import { MandateConfigSchema, type MandateConfig } from '../../src/config/config-schema.ts';
import { PolicyEngine } from '../../src/policy/policy-engine.ts';
import type { AuthorizationRequest } from '../../src/policy/types.ts';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.ts';
import { createServer, type MandateServer } from '../../src/server/create-server.ts';
import { createLogger } from '../../src/server/logger.ts';
import { SAMPLE_POLICIES, writePolicyDir } from '../fixtures/policy-dir.ts';

/** The policies most scenarios use (same world as src/policy/policy-engine.test.ts). */
export const POLICIES: Record<string, string> = SAMPLE_POLICIES;

/** Options of {@link startServer}. */
export interface HarnessOptions {
  /** Policy files; default {@link POLICIES}. */
  policies?: Record<string, string>;
  /** Do not load the policy directory at start (the server then has no valid set). */
  noPolicy?: boolean;
  /** Overrides of the configuration (merged over the defaults, section by section). */
  config?: { server?: Partial<MandateConfig['server']>; rateLimit?: Partial<MandateConfig['rateLimit']> };
  /** Replaces the engine (e.g. one whose decide throws). */
  engine?: PolicyEngine;
  /** Decision log tuning. */
  maxPending?: number;
  clock?: { now(): number };
}

/** A running server with everything around it. */
export interface Harness {
  url: string;
  server: MandateServer;
  engine: PolicyEngine;
  store: SqliteStore;
  decisionLog: DecisionLog;
  policyDir: { dir: string; write(path: string, text: string): Promise<void> };
  /** Secrets of the configured credentials: `evaluate` (scope evaluate), `admin` (policy:reload), `reader` (policy:read), `registrar` (principals:read, principals:write). */
  secrets: { evaluate: string; admin: string; reader: string; registrar: string };
  /** Every captured log line, as text. */
  logs: string[];
  /** How many times `engine.decide` ran. */
  decideCalls(): number;
  /** Audit events in the store, in order. */
  events(): Promise<AuditEvent[]>;
  /** POSTs JSON (or raw text) with a bearer credential. */
  post(path: string, body: unknown, options?: { secret?: string | null; headers?: Record<string, string>; raw?: string }): Promise<Response>;
  get(path: string, options?: { secret?: string | null; headers?: Record<string, string> }): Promise<Response>;
  close(): Promise<void>;
}

/** Starts a server for one test. */
export async function startServer(options: HarnessOptions = {}): Promise<Harness> {
  const fx = await writePolicyDir(options.policies ?? POLICIES);
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-server-test-'));
  const store = await openSqliteStore({ dataDir });
  const decisionLog = new DecisionLog(store.audit, { maxDelayMs: 1, ...(options.maxPending ? { maxPending: options.maxPending } : {}) });
  const engine = options.engine ?? new PolicyEngine(options.clock ? { clock: options.clock } : {});
  if (!options.noPolicy) await engine.loadDirectory(fx.dir);

  let calls = 0;
  const decide = engine.decide.bind(engine);
  engine.decide = (request: AuthorizationRequest) => {
    calls++;
    return decide(request);
  };

  const secrets = { evaluate: generateCredentialSecret(), admin: generateCredentialSecret(), reader: generateCredentialSecret(), registrar: generateCredentialSecret() };
  const config = MandateConfigSchema.parse({
    server: { port: 1, ...options.config?.server },
    rateLimit: { ...options.config?.rateLimit },
    policy: { dir: fx.dir, watch: false },
    authzen: {
      credentials: [
        { id: 'pep-1', hash: hashCredential(secrets.evaluate) },
        { id: 'ops-admin', hash: hashCredential(secrets.admin), scopes: ['policy:reload'] },
        { id: 'ops-reader', hash: hashCredential(secrets.reader), scopes: ['policy:read'] },
        { id: 'registrar', hash: hashCredential(secrets.registrar), scopes: ['principals:read', 'principals:write'] },
      ],
    },
  });

  const logs: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void logs.push(line) } });
  const server = await createServer({ config, engine, store, decisionLog, logger, ...(options.clock ? { clock: options.clock } : {}) });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });

  const headersFor = (secret: string | null | undefined, extra: Record<string, string> = {}) => ({
    ...(secret === null ? {} : { authorization: `Bearer ${secret ?? secrets.evaluate}` }),
    ...extra,
  });

  return {
    url,
    server,
    engine,
    store,
    decisionLog,
    policyDir: fx,
    secrets,
    logs,
    decideCalls: () => calls,
    events: () => store.audit.list({ limit: 10_000 }),
    post: (path, body, o = {}) =>
      fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headersFor(o.secret, o.headers) },
        body: o.raw ?? JSON.stringify(body),
      }),
    get: (path, o = {}) => fetch(`${url}${path}`, { headers: headersFor(o.secret, o.headers) }),
    async close() {
      await server.close();
      await decisionLog.close().catch(() => undefined);
      await store.close();
      await fx.cleanup();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** An AuthZEN evaluation body. */
export function evaluation(subject: string, action: string, resource: [string, string], actors: string[] = [], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    subject: { type: 'user', id: subject },
    action: { name: action },
    resource: { type: resource[0], id: resource[1] },
    ...(actors.length > 0 ? { context: { delegation: { actors: actors.map((id) => ({ type: 'agent', id })) } } } : {}),
    ...extra,
  };
}

/** Problem document fields every error body has, and nothing that looks like a stack trace or a source path. */
export async function expectProblem(res: Response, status: number, code: string, detail?: RegExp): Promise<Record<string, unknown>> {
  const text = await res.text();
  const where = `${status} ${code} ← ${text}`;
  if (res.status !== status) throw new Error(`expected status ${status}, got ${res.status}: ${text}`);
  if (!res.headers.get('content-type')?.startsWith('application/problem+json')) throw new Error(`not problem+json: ${where}`);
  const body = JSON.parse(text) as Record<string, unknown>;
  const problems: string[] = [];
  if (body.code !== code) problems.push(`code ${String(body.code)}`);
  if (body.status !== status) problems.push(`status ${String(body.status)}`);
  if (body.type !== `urn:mandate:error:${code}`) problems.push(`type ${String(body.type)}`);
  if (typeof body.title !== 'string' || typeof body.detail !== 'string') problems.push('title/detail missing');
  if (detail && !detail.test(String(body.detail))) problems.push(`detail does not match ${detail}`);
  // No stack frames, source paths or engine internals reach the client.
  if (/\n\s+at |\bat .*:\d+:\d+|\.ts\b|node_modules|Error:/.test(text)) problems.push('looks like a stack trace');
  if (problems.length > 0) throw new Error(`${problems.join('; ')}: ${where}`);
  return body;
}

/** Reads one sample of a Prometheus text exposition, or undefined. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[3] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v) && Object.keys(got).length === Object.keys(labels).length) return Number(m[4]);
  }
  return undefined;
}

/**
 * Local (stdio) MCP upstreams: Mandate launches the MCP server as a child process and gives the gateway a private
 * Streamable HTTP endpoint for it on loopback, so that `/mcp/<id>` forwards to a local server exactly as it does
 * to a remote one (same authorization, same response checks).
 *
 * - The endpoint listens on 127.0.0.1 at a random port and a random 256-bit path: only the process that was told
 *   the URL (the gateway) can reach the child. It carries no credential and forwards no header to the child.
 * - The bridge is the child's one MCP client: it initializes each incarnation of the child itself (declaring no
 *   client capabilities, so the child asks for no sampling, elicitation or roots) and answers callers'
 *   `initialize` and `ping` from that. Callers' request ids and progress tokens are renamed on the way in and
 *   restored on the way out, so any number of gateway sessions share the child without colliding. The child's
 *   progress goes to the stream of the request it belongs to; its other notifications to every open GET stream.
 * - Supervision: a child that exits is started again after an exponential backoff (bounded by `maxDelayMs`, reset
 *   once a child has stayed up for `stableAfterMs`); requests in flight get a JSON-RPC error, requests arriving
 *   meanwhile wait for the new child. `close()` stops restarting and ends the child: SIGTERM, then SIGKILL.
 * - The child's environment is the explicit `env` plus the SDK's short list of harmless variables
 *   (`getDefaultEnvironment`: HOME, LOGNAME, PATH, SHELL, TERM, USER); never Mandate's own.
 *
 * @see https://modelcontextprotocol.io/specification/2025-11-25/basic/transports (stdio, Streamable HTTP)
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { ConfigInvalidError } from '../core/errors.ts';
import type { GatewayStdio, GatewayUpstream } from './gateway-config.ts';

/** What to launch. */
export interface StdioUpstreamOptions {
  /** The upstream's id (`/mcp/<id>`), for logs and status. */
  readonly id: string;
  readonly command: string;
  readonly args?: readonly string[];
  /** The child's variables, besides the SDK's harmless defaults. Never pass Mandate's environment here. */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

/** The logger the supervisor writes to (a pino logger fits). */
export interface StdioUpstreamLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** How the bridge runs and supervises the child. */
export interface StdioUpstreamDeps {
  readonly logger: StdioUpstreamLogger;
  /** Delay before the first restart; doubled per consecutive crash up to `maxDelayMs`. Default 250. */
  readonly initialDelayMs?: number;
  /** Longest delay between restarts. Default 30 000. */
  readonly maxDelayMs?: number;
  /** A child up this long counts as healthy: the next crash restarts after `initialDelayMs` again. Default 60 000. */
  readonly stableAfterMs?: number;
  /** How long a (re)started child has to answer `initialize`. Default 30 000. */
  readonly startTimeoutMs?: number;
  /** How long a forwarded request may wait for its answer. Default 600 000. */
  readonly requestTimeoutMs?: number;
  /** After SIGTERM, how long `close()` waits before SIGKILL. Default 3 000. */
  readonly killTimeoutMs?: number;
  /** Largest request body the bridge accepts from the gateway, bytes. Default 4 MiB. */
  readonly maxRequestBytes?: number;
}

/** Where a supervised child stands, for `/readyz` and logs. */
export interface StdioUpstreamStatus {
  readonly id: string;
  /** `starting`: the first child is launching; `ready`: answering; `restarting`: waiting to start again; `closed`. */
  readonly state: 'starting' | 'ready' | 'restarting' | 'closed';
  readonly pid?: number;
  /** How many times the child was started again after exiting. */
  readonly restarts: number;
  readonly lastExit?: { readonly code: number | null; readonly signal: string | null; readonly at: string };
}

/** A running local upstream. */
export interface StdioUpstream {
  /** The loopback Streamable HTTP endpoint (with its path secret) the gateway forwards to. Never log it. */
  readonly url: string;
  status(): StdioUpstreamStatus;
  /** Stops restarting, ends the child (SIGTERM, then SIGKILL) and closes the endpoint. */
  close(): Promise<void>;
}

type Message = Record<string, unknown>;
type RpcId = string | number;

/** Where the answers of one caller's HTTP request go. */
interface Sink {
  write(message: Message): void;
  /** One of the sink's requests got its answer. */
  answered(): void;
}

interface Pending {
  readonly sink: Sink;
  readonly callerId: RpcId;
  readonly progressToken?: string;
  readonly timer: NodeJS.Timeout;
}

/** One launched child and what is in flight to it. */
interface Incarnation {
  readonly transport: StdioClientTransport;
  readonly startedAt: number;
  readonly exited: Promise<void>;
  pid?: number;
  initResult?: Message;
  readonly pending: Map<number, Pending>;
}

const isObject = (v: unknown): v is Message => typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown): v is RpcId => typeof v === 'string' || typeof v === 'number';
const rpcError = (id: RpcId | null, code: number, message: string): Message => ({ jsonrpc: '2.0', id, error: { code, message } });
const STDERR_LINES = 20;
const MAX_STREAMS = 32;

/**
 * Launches a local MCP server and serves it on loopback. Resolves once the first child has answered `initialize`.
 * @throws {Error} when the command cannot be launched or does not initialize within `startTimeoutMs`.
 * @example const crm = await startStdioUpstream({ id: 'crm', command: 'node', args: ['crm-server.js'] }, { logger });
 */
export async function startStdioUpstream(options: StdioUpstreamOptions, deps: StdioUpstreamDeps): Promise<StdioUpstream> {
  const { logger } = deps;
  const initialDelayMs = deps.initialDelayMs ?? 250;
  const maxDelayMs = deps.maxDelayMs ?? 30_000;
  const stableAfterMs = deps.stableAfterMs ?? 60_000;
  const startTimeoutMs = deps.startTimeoutMs ?? 30_000;
  const requestTimeoutMs = deps.requestTimeoutMs ?? 600_000;
  const killTimeoutMs = deps.killTimeoutMs ?? 3_000;
  const maxRequestBytes = deps.maxRequestBytes ?? 4 * 1024 * 1024;
  const log = { upstream: options.id };

  let state: StdioUpstreamStatus['state'] = 'starting';
  let current: Incarnation | undefined;
  let restarts = 0;
  let crashes = 0;
  let lastExit: StdioUpstreamStatus['lastExit'];
  let restartTimer: NodeJS.Timeout | undefined;
  let nextId = 1;
  const progress = new Map<string, Pending>();
  const streams = new Set<ServerResponse>();
  let readyWaiters: Array<{ resolve: (i: Incarnation) => void; reject: (e: Error) => void }> = [];
  const stderrTail: string[] = [];

  const settleWaiters = (i: Incarnation | Error): void => {
    const waiters = readyWaiters;
    readyWaiters = [];
    for (const w of waiters) if (i instanceof Error) w.reject(i);
    else w.resolve(i);
  };

  /** Resolves with a child that has answered `initialize`, waiting (bounded) while one is (re)starting. */
  const whenReady = (timeoutMs: number): Promise<Incarnation> => {
    if (state === 'ready' && current?.initResult !== undefined) return Promise.resolve(current);
    if (state === 'closed') return Promise.reject(new Error('the local upstream is closed'));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (i: Incarnation) => {
          clearTimeout(timer);
          resolve(i);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        readyWaiters = readyWaiters.filter((w) => w !== waiter);
        reject(new Error('the local upstream is not running'));
      }, timeoutMs);
      readyWaiters.push(waiter);
    });
  };

  const send = (inc: Incarnation, message: Message): void => {
    inc.transport.send(message as JSONRPCMessage).catch((err: unknown) => logger.debug({ ...log, err: err instanceof Error ? err.message : String(err) }, 'could not write to the local upstream'));
  };

  const settle = (inc: Incarnation, bridgeId: number): Pending | undefined => {
    const p = inc.pending.get(bridgeId);
    if (p === undefined) return undefined;
    inc.pending.delete(bridgeId);
    clearTimeout(p.timer);
    if (p.progressToken !== undefined) progress.delete(p.progressToken);
    return p;
  };

  /** Sends a caller's request to the child under a fresh id; the answer goes to `sink` under the caller's id. */
  const forward = (inc: Incarnation, request: Message, sink: Sink): void => {
    const bridgeId = nextId++;
    const callerId = request.id as RpcId;
    let outgoing: Message = { ...request, id: bridgeId };
    let progressToken: string | undefined;
    const params = request.params;
    const meta = isObject(params) && isObject(params._meta) ? params._meta : undefined;
    if (meta !== undefined && isId(meta.progressToken)) {
      progressToken = `p${bridgeId}`;
      outgoing = { ...outgoing, params: { ...(params as Message), _meta: { ...meta, progressToken } } };
    }
    const timer = setTimeout(() => {
      const p = settle(inc, bridgeId);
      if (p === undefined) return;
      send(inc, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: bridgeId, reason: 'timed out at the gateway' } });
      p.sink.write(rpcError(p.callerId, -32603, 'the local upstream did not answer in time'));
      p.sink.answered();
    }, requestTimeoutMs);
    const pending: Pending = { sink, callerId, timer, ...(progressToken === undefined ? {} : { progressToken }) };
    inc.pending.set(bridgeId, pending);
    if (progressToken !== undefined) progress.set(progressToken, { ...pending, callerId: (meta as Message).progressToken as RpcId });
    send(inc, outgoing);
  };

  /** A message from the child. */
  const onChildMessage = (inc: Incarnation, message: Message): void => {
    if (typeof message.method === 'string') {
      if (isId(message.id)) {
        // The bridge declared no client capabilities: it answers ping, and refuses any other request.
        send(inc, message.method === 'ping' ? { jsonrpc: '2.0', id: message.id, result: {} } : rpcError(message.id, -32601, 'the gateway relays no requests from a local upstream'));
        return;
      }
      const params = isObject(message.params) ? message.params : undefined;
      if (message.method === 'notifications/progress' && params !== undefined) {
        const p = progress.get(String(params.progressToken));
        if (p !== undefined) p.sink.write({ ...message, params: { ...params, progressToken: p.callerId } });
        return;
      }
      // Logging, list changes, resource updates: to every open GET stream (none open: dropped, as the protocol allows).
      for (const s of streams) writeEvent(s, message);
      return;
    }
    if (typeof message.id !== 'number') return;
    const p = settle(inc, message.id);
    if (p === undefined) return;
    p.sink.write({ ...message, id: p.callerId });
    p.sink.answered();
  };

  const scheduleRestart = (): void => {
    if (state === 'closed' || restartTimer !== undefined || current !== undefined) return;
    const delay = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(crashes, 30));
    crashes++;
    state = 'restarting';
    logger.warn({ ...log, lastExit, restartInMs: delay, stderr: stderrTail.slice(-STDERR_LINES) }, 'the local MCP upstream is down; starting it again');
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      restarts++;
      launch().catch((err: unknown) => {
        logger.warn({ ...log, err: err instanceof Error ? err.message : String(err) }, 'the local MCP upstream could not be started again');
        scheduleRestart();
      });
    }, delay);
    restartTimer.unref();
  };

  const onChildExit = (inc: Incarnation): void => {
    for (const id of [...inc.pending.keys()]) {
      const p = settle(inc, id);
      if (p === undefined) continue;
      p.sink.write(rpcError(p.callerId, -32603, "the local upstream exited before answering; the request's outcome is unknown"));
      p.sink.answered();
    }
    if (current !== inc) return;
    current = undefined;
    if (state === 'closed') return;
    // The first start reports its own failure (startStdioUpstream rejects); later ones are supervised.
    if (state === 'starting') return;
    if (inc.initResult !== undefined && Date.now() - inc.startedAt >= stableAfterMs) crashes = 0;
    scheduleRestart();
  };

  /** Spawns a child and initializes it. */
  const launch = async (): Promise<Incarnation> => {
    const transport = new StdioClientTransport({
      command: options.command,
      args: [...(options.args ?? [])],
      env: { ...(options.env ?? {}) },
      stderr: 'pipe',
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    let onExited = (): void => undefined;
    const inc: Incarnation = { transport, startedAt: Date.now(), pending: new Map(), exited: new Promise<void>((resolve) => (onExited = resolve)) };
    let buffered = '';
    transport.stderr?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = (lines.pop() ?? '').slice(-4096);
      for (const line of lines) {
        const text = line.slice(0, 2000);
        stderrTail.push(text);
        if (stderrTail.length > STDERR_LINES) stderrTail.shift();
        logger.debug({ ...log, stderr: text }, 'local MCP upstream stderr');
      }
    });
    transport.onmessage = (message) => {
      if (isObject(message)) onChildMessage(inc, message);
    };
    transport.onerror = (err) => logger.debug({ ...log, err: err.message }, 'local MCP upstream transport error');
    transport.onclose = () => {
      onExited();
      onChildExit(inc);
    };
    current = inc;
    try {
      await transport.start();
    } catch (err) {
      current = undefined;
      onExited();
      throw err;
    }
    inc.pid = transport.pid ?? undefined;
    // The SDK's transport reports a close without its cause; the child it spawned tells the exit code and signal.
    const child = (transport as unknown as { _process?: ChildProcess })._process;
    child?.once('exit', (code, signal) => {
      lastExit = { code, signal, at: new Date().toISOString() };
    });
    const initialized = new Promise<Message>((resolve, reject) => {
      forward(
        inc,
        { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'mandate-gateway', version: '1' } } },
        {
          write: (m) => (isObject(m.result) ? resolve(m.result) : reject(new Error(`initialize failed: ${isObject(m.error) ? String(m.error.message).slice(0, 200) : 'no result'}`))),
          answered: () => undefined,
        },
      );
      setTimeout(() => reject(new Error(`the local upstream did not initialize within ${startTimeoutMs} ms`)), startTimeoutMs).unref();
    });
    try {
      inc.initResult = await initialized;
    } catch (err) {
      kill(inc);
      throw err;
    }
    send(inc, { jsonrpc: '2.0', method: 'notifications/initialized' });
    if (state === 'closed' || current !== inc) {
      kill(inc);
      throw new Error('the local upstream was closed while starting');
    }
    state = 'ready';
    logger.info({ ...log, pid: inc.pid, restarts }, 'local MCP upstream ready');
    settleWaiters(inc);
    return inc;
  };

  /** SIGTERM, then SIGKILL after `killTimeoutMs`; resolves when the child is gone (or after a last bounded wait). */
  const kill = (inc: Incarnation): Promise<void> => {
    const signal = (s: NodeJS.Signals) => {
      if (inc.pid === undefined) return;
      try {
        process.kill(inc.pid, s);
      } catch {
        // Already gone.
      }
    };
    signal('SIGTERM');
    const wait = (ms: number) => Promise.race([inc.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
    return (async () => {
      if (await wait(killTimeoutMs)) return;
      signal('SIGKILL');
      await wait(2000);
    })();
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (!pathMatches(req.url ?? '', path)) {
      res.writeHead(404).end();
      return;
    }
    res.setHeader('cache-control', 'no-store');
    if (req.method === 'GET') return openStream(req, res);
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'GET, POST' }).end();
      return;
    }
    void readBody(req, maxRequestBytes).then(
      (body) => handlePost(req, res, body),
      () => {
        if (!res.headersSent) res.writeHead(413, { 'content-type': 'application/json' }).end(JSON.stringify(rpcError(null, -32600, 'the body is too large')));
      },
    );
  };

  const openStream = (req: IncomingMessage, res: ServerResponse): void => {
    if (!(req.headers.accept ?? '').includes('text/event-stream')) {
      res.writeHead(406).end();
      return;
    }
    if (streams.size >= MAX_STREAMS) {
      res.writeHead(429).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    streams.add(res);
    res.on('close', () => streams.delete(res));
  };

  const handlePost = (req: IncomingMessage, res: ServerResponse, body: string): void => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify(rpcError(null, -32700, 'Parse error')));
      return;
    }
    const batch = Array.isArray(parsed);
    const items = (batch ? (parsed as unknown[]) : [parsed]).filter(isObject);
    const requests = items.filter((m) => typeof m.method === 'string' && isId(m.id));
    if (requests.length === 0) {
      void whenReady(startTimeoutMs).then(
        (inc) => {
          for (const m of items) forwardNotification(inc, m);
        },
        () => undefined,
      );
      res.writeHead(202).end();
      return;
    }
    const sse = (req.headers.accept ?? '').includes('text/event-stream');
    let open = requests.length;
    const answers: Message[] = [];
    const live = new Set<Incarnation>();
    let done = false;
    if (sse) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
    }
    const sink: Sink = {
      write(message) {
        if (done) return;
        if (sse) writeEvent(res, message);
        else if (!('method' in message)) answers.push(message);
      },
      answered() {
        if (done || --open > 0) return;
        done = true;
        if (sse) res.end();
        else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(batch ? answers : answers[0]));
      },
    };
    // The gateway went away: tell the child to stop working on what it no longer waits for.
    res.on('close', () => {
      if (done) return;
      done = true;
      for (const inc of live) {
        for (const [bridgeId, p] of inc.pending) {
          if (p.sink !== sink) continue;
          settle(inc, bridgeId);
          send(inc, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: bridgeId, reason: 'the caller went away' } });
        }
      }
    });
    void whenReady(startTimeoutMs).then(
      (inc) => {
        for (const m of items) {
          if (!(typeof m.method === 'string' && isId(m.id))) {
            forwardNotification(inc, m);
            continue;
          }
          if (m.method === 'initialize') {
            sink.write({ jsonrpc: '2.0', id: m.id, result: initializeAnswer(inc.initResult ?? {}, m.params) });
            sink.answered();
          } else if (m.method === 'ping') {
            sink.write({ jsonrpc: '2.0', id: m.id, result: {} });
            sink.answered();
          } else {
            live.add(inc);
            forward(inc, m, sink);
          }
        }
      },
      (err: Error) => {
        for (const m of requests) {
          sink.write(rpcError(m.id as RpcId, -32603, err.message));
          sink.answered();
        }
      },
    );
  };

  /** A caller's notification: `initialized` was the bridge's to send; a cancellation names the bridge's id. */
  const forwardNotification = (inc: Incarnation, m: Message): void => {
    if (typeof m.method !== 'string' || m.method === 'notifications/initialized') return;
    if (m.method === 'notifications/cancelled') {
      const params = isObject(m.params) ? m.params : {};
      for (const [bridgeId, p] of inc.pending) {
        if (p.callerId !== params.requestId) continue;
        // Ids are per caller: cancel only when exactly one pending request has it.
        if ([...inc.pending.values()].filter((q) => q.callerId === params.requestId).length !== 1) return;
        send(inc, { ...m, params: { ...params, requestId: bridgeId } });
        return;
      }
      return;
    }
    send(inc, m);
  };

  const secret = randomBytes(32).toString('base64url');
  const path = `/${secret}`;
  const server: Server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;

  const close = async (): Promise<void> => {
    if (state === 'closed') return;
    state = 'closed';
    clearTimeout(restartTimer);
    settleWaiters(new Error('the local upstream is closed'));
    for (const s of streams) s.end();
    const inc = current;
    if (inc !== undefined) await kill(inc);
    current = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  };

  try {
    await launch();
  } catch (err) {
    await close();
    throw err;
  }

  return {
    url,
    status: () => ({ id: options.id, state, restarts, ...(current?.pid === undefined ? {} : { pid: current.pid }), ...(lastExit === undefined ? {} : { lastExit }) }),
    close,
  };
}

/** The `initialize` result for a caller: the child's, at the caller's protocol version when the SDK knows it. */
function initializeAnswer(result: Message, params: unknown): Message {
  const requested = isObject(params) ? params.protocolVersion : undefined;
  return typeof requested === 'string' && SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? { ...result, protocolVersion: requested } : result;
}

function writeEvent(res: ServerResponse, message: Message): void {
  res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
}

function pathMatches(requestPath: string, path: string): boolean {
  const a = Buffer.from(requestPath.split('?')[0] ?? '');
  const b = Buffer.from(path);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new Error('too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The child's variables of a `stdio` upstream: its values, and its `fromEnv` names read from `env` (only those).
 * @throws {ConfigInvalidError} when a `fromEnv` variable is not set.
 */
export function resolveStdioEnv(upstreamId: string, stdio: GatewayStdio, env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(stdio.env)) {
    const resolved = typeof value === 'string' ? value : env[value.fromEnv];
    if (resolved === undefined) throw new ConfigInvalidError(`gateway.upstreams ${upstreamId}: stdio.env.${name} reads ${typeof value === 'string' ? '' : value.fromEnv}, which is not set`);
    out[name] = resolved;
  }
  return out;
}

/** The local upstreams of a gateway configuration, running. */
export interface StdioUpstreams {
  /** Loopback endpoints by upstream id, for `registerGateway`'s `localUpstreamUrls`. */
  readonly urls: ReadonlyMap<string, string>;
  status(): StdioUpstreamStatus[];
  close(): Promise<void>;
}

/**
 * Starts every `stdio` upstream of the gateway configuration (before the server, which forwards to them).
 * `fromEnv` values are read from `env` here, and only those.
 * @throws {ConfigInvalidError} naming the upstream that could not be started (the others are stopped again).
 */
export async function startStdioUpstreams(upstreams: readonly GatewayUpstream[], deps: StdioUpstreamDeps & { env: Readonly<Record<string, string | undefined>> }): Promise<StdioUpstreams> {
  const started: Array<StdioUpstream & { id: string }> = [];
  const close = async () => {
    await Promise.all(started.map((s) => s.close()));
  };
  for (const u of upstreams) {
    if (u.stdio === undefined) continue;
    let env: Record<string, string>;
    try {
      env = resolveStdioEnv(u.id, u.stdio, deps.env);
    } catch (err) {
      await close();
      throw err;
    }
    try {
      const s = await startStdioUpstream({ id: u.id, command: u.stdio.command, args: u.stdio.args, env, ...(u.stdio.cwd === undefined ? {} : { cwd: u.stdio.cwd }) }, deps);
      started.push({ id: u.id, url: s.url, status: s.status, close: s.close });
    } catch (err) {
      await close();
      throw new ConfigInvalidError(`gateway.upstreams ${u.id}: the local MCP server could not be started (${err instanceof Error ? err.message : String(err)})`, { cause: err });
    }
  }
  return { urls: new Map(started.map((s) => [s.id, s.url])), status: () => started.map((s) => s.status()), close };
}

/**
 * The node's readiness with its local upstreams: not ready while one of them is down (starting again), so that an
 * orchestrator sees it; their statuses are in the detail either way.
 */
export function withLocalUpstreams<C extends { ok: true; detail?: unknown } | { ok: false; reason: string; detail?: unknown }>(base: C, statuses: readonly StdioUpstreamStatus[]): C | { ok: false; reason: string; detail: unknown } {
  const localUpstreams = statuses.map((s) => ({ id: s.id, state: s.state, restarts: s.restarts }));
  const down = statuses.find((s) => s.state !== 'ready');
  const detail = { ...(base.detail === undefined ? {} : { sources: base.detail }), localUpstreams };
  // Reported, not failing: a crash-looping tool must not take the whole node (decisions, tokens) out of rotation;
  // calls to that upstream fail on their own (502) while it restarts.
  void down;
  return { ...base, detail };
}

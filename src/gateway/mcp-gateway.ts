/**
 * The MCP gateway's transport: `/mcp/:upstream` speaks MCP Streamable HTTP to callers and to a configured
 * upstream, and sits between them as an enforcement point.
 *
 * - Every HTTP request is authenticated (`deps.authenticate`, the mandate for this resource and its DPoP proof);
 *   an MCP session id is never authentication. A session is bound to the caller that opened it (user, agent,
 *   delegation chain, task): another caller presenting it is refused.
 * - 401 answers carry `resource_metadata` (RFC 9728 §5.1); the metadata is served per upstream.
 * - A browser `Origin` outside `allowedOrigins` (and the resource's own) is refused with 403.
 * - The body is parsed strictly (duplicate keys, depth); batches are decided item by item; every request that
 *   would reach the upstream goes through `deps.authorize`, except `initialize` and `ping` ({@link UNGATED_METHODS}).
 *   Exactly the message `authorize` returned is serialized and forwarded.
 * - Upstream calls carry only `deps.upstreamHeaders` plus the protocol's own headers; nothing of the caller's
 *   request headers is copied (no token passthrough).
 * - Answers are bounded in size: past the bound the caller gets JSON-RPC errors for its unanswered requests,
 *   never a truncated message.
 *
 * Forwarding is plain `fetch` of the Streamable HTTP messages rather than the SDK's client and server
 * transports back to back: the gateway then forwards byte-for-byte the canonical message that was authorized
 * (no re-encoding by a second protocol stack), it needs no per-session pair of SDK objects (nor their
 * `initialize` handshake, capabilities and request-id remapping), and SSE streams pass through event by event, so
 * tool results and progress keep streaming. The SSE events are re-framed, not copied, so each one is bounded and
 * seen as one JSON-RPC message (where a response check can hook in).
 *
 * @see https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#streamable-http
 * @see https://modelcontextprotocol.io/specification/2025-11-25/basic/security_best_practices (token passthrough, session hijacking)
 * @see RFC 9728 (OAuth 2.0 Protected Resource Metadata)
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createAuditEvent, type AuditEventFields } from '../audit/audit-event.ts';
import { isMandateError, type MandateError } from '../core/errors.ts';
import { parseStrictJson, StrictJsonError } from './json-strict.ts';
import type { GatewayCaller, JsonRpcId, JsonRpcRequest, JsonRpcResponseMessage, McpGatewayDeps, UpstreamConfig } from './types.ts';

/**
 * Requests forwarded without `authorize`: they carry no tool, resource or prompt and no arguments an upstream
 * acts on (`initialize` negotiates the protocol, `ping` answers an empty result). Notifications (`notifications/*`,
 * no response) and the caller's responses to the upstream's own requests (sampling, elicitation, roots) are
 * forwarded without it too. Any other method, including unknown ones and the 2025-11-25 `tasks/*`, is authorized.
 */
export const UNGATED_METHODS: ReadonlySet<string> = new Set(['initialize', 'ping']);

/** JSON-RPC error codes the gateway answers with. Public: add, never change. */
export const GATEWAY_ERROR_CODES = {
  /** JSON-RPC 2.0: invalid JSON (and, here, duplicate keys or too deep). */
  parseError: -32700,
  /** JSON-RPC 2.0: not a valid request object. */
  invalidRequest: -32600,
  /** JSON-RPC 2.0: internal error (the gateway could not decide, the upstream failed or answered too much). */
  internalError: -32603,
  /** HTTP-level refusal (authentication, Origin, media type), as the MCP SDK's server transport answers them. */
  httpRefused: -32000,
  /** The session is unknown or expired: initialize a new one (MCP SDK convention). */
  sessionNotFound: -32001,
  /** A person's approval is needed; `data.approval` says how to obtain it. */
  approvalRequired: -32003,
} as const;

const DEFAULT_LIMITS = {
  maxRequestBytes: 1024 * 1024,
  maxJsonDepth: 64,
  maxBatchSize: 32,
  maxResponseBytes: 4 * 1024 * 1024,
  upstreamTimeoutMs: 30_000,
  maxSessions: 10_000,
  sessionIdleMs: 60 * 60 * 1000,
};

const UPSTREAM_ID = /^[A-Za-z0-9._-]{1,128}$/;
const SESSION_ID = /^[\x21-\x7e]{1,256}$/;
const PROTOCOL_VERSION = /^\d{4}-\d{2}-\d{2}$/;
const LAST_EVENT_ID = /^[\x20-\x7e]{1,512}$/;

/** A gateway session: the caller's id for it, the upstream's, and who opened it. */
interface Session {
  readonly upstreamId: string;
  readonly upstreamSessionId: string;
  readonly binding: string;
  lastUsedMs: number;
}

/** What the onRequest gate found, for the handler. */
interface Gate {
  upstream: UpstreamConfig;
  caller: GatewayCaller;
  sessionId?: string;
  session?: Session;
}

/** An HTTP-level refusal rendered as a JSON-RPC error body with `id: null`. */
class GatewayRefusal extends Error {
  constructor(
    readonly status: number,
    readonly rpcCode: number,
    readonly description: string,
    readonly headers: Record<string, string> = {},
    cause?: unknown,
  ) {
    super(description, cause === undefined ? undefined : { cause });
  }
}

type JsonRpcResponse = JsonRpcResponseMessage;

const rpcError = (id: JsonRpcId | null, code: number, message: string, data?: unknown): JsonRpcResponse => ({
  jsonrpc: '2.0',
  id,
  error: data === undefined ? { code, message } : { code, message, data },
});

/** The identity a session is bound to: the user, the agent (client), the delegation chain and the task. */
function bindingOf(caller: GatewayCaller): string {
  return JSON.stringify([caller.userSub ?? null, caller.clientId, caller.actors, caller.taskId ?? null]);
}

/** Appends `resource_metadata` to a challenge (RFC 9728 §5.1), or makes a bare Bearer one. */
function withResourceMetadata(challenge: string | undefined, metadataUrl: string): string {
  const param = `resource_metadata="${metadataUrl.replace(/["\\]/g, '')}"`;
  return challenge === undefined || challenge === '' ? `Bearer ${param}` : `${challenge}, ${param}`;
}

const header = (request: FastifyRequest, name: string): string | undefined => {
  const v = request.headers[name];
  return typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined;
};

/** Sessions, least recently used first; bounded in number and idle time. */
class SessionTable {
  private readonly sessions = new Map<string, Session>();
  constructor(
    private readonly max: number,
    private readonly idleMs: number,
    private readonly now: () => number,
  ) {}

  get(id: string): Session | undefined {
    const s = this.sessions.get(id);
    if (s === undefined) return undefined;
    const t = this.now();
    if (t - s.lastUsedMs > this.idleMs) {
      this.sessions.delete(id);
      return undefined;
    }
    s.lastUsedMs = t;
    this.sessions.delete(id);
    this.sessions.set(id, s);
    return s;
  }

  create(session: Omit<Session, 'lastUsedMs'>): string {
    // 256 bits from the CSPRNG: a session id cannot be guessed, and is anyway never enough to use the session.
    const id = randomBytes(32).toString('base64url');
    while (this.sessions.size >= this.max) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.sessions.delete(oldest);
    }
    this.sessions.set(id, { ...session, lastUsedMs: this.now() });
    return id;
  }

  delete(id: string): void {
    this.sessions.delete(id);
  }
}

/** One classified item of a caller's body. */
type Item =
  | { kind: 'request'; message: JsonRpcRequest }
  | { kind: 'notification'; message: Record<string, unknown> }
  | { kind: 'response'; message: Record<string, unknown> }
  | { kind: 'invalid'; id: JsonRpcId | null; reason: string };

const isId = (v: unknown): v is JsonRpcId => typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v));
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Classifies one JSON-RPC message; anything that is not exactly one of the three shapes is invalid. */
function classify(value: unknown): Item {
  if (!isPlainObject(value)) return { kind: 'invalid', id: null, reason: 'each message must be a JSON object' };
  const id = isId(value.id) ? value.id : null;
  if (value.jsonrpc !== '2.0') return { kind: 'invalid', id, reason: 'jsonrpc must be "2.0"' };
  if ('method' in value) {
    if (typeof value.method !== 'string' || value.method === '') return { kind: 'invalid', id, reason: 'method must be a non-empty string' };
    if ('result' in value || 'error' in value) return { kind: 'invalid', id, reason: 'a request carries no result or error' };
    if (value.params !== undefined && !isPlainObject(value.params)) return { kind: 'invalid', id, reason: 'params must be an object' };
    if (!('id' in value)) {
      // An id-less message is a notification; only the protocol's own notifications pass, so that a
      // `tools/call` without an id cannot slip past authorization as a "notification".
      if (!value.method.startsWith('notifications/')) return { kind: 'invalid', id: null, reason: `a message without an id must be a notifications/* notification, not ${value.method.slice(0, 64)}` };
      return { kind: 'notification', message: value };
    }
    if (!isId(value.id)) return { kind: 'invalid', id: null, reason: 'id must be a string or an integer' };
    return { kind: 'request', message: value as unknown as JsonRpcRequest };
  }
  if ('id' in value && ('result' in value) !== ('error' in value)) {
    if (!isId(value.id)) return { kind: 'invalid', id: null, reason: 'id must be a string or an integer' };
    return { kind: 'response', message: value };
  }
  return { kind: 'invalid', id, reason: 'not a JSON-RPC request, notification or response' };
}

/** Reads a web stream whole, up to `max` bytes; undefined when it is larger (the stream is cancelled). */
async function readBounded(body: ReadableStream<Uint8Array> | null, max: number): Promise<Buffer | undefined> {
  if (body === null) return Buffer.alloc(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** One server-sent event. @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation */
interface SseEvent {
  id?: string;
  event?: string;
  retry?: string;
  data: string[];
}

function formatSse(e: SseEvent): string {
  let out = '';
  if (e.id !== undefined) out += `id: ${e.id}\n`;
  if (e.event !== undefined) out += `event: ${e.event}\n`;
  if (e.retry !== undefined) out += `retry: ${e.retry}\n`;
  for (const line of e.data) out += `data: ${line}\n`;
  return `${out}\n`;
}

const sseMessage = (message: unknown): string => formatSse({ event: 'message', data: [JSON.stringify(message)] });

/** The ids of the responses in one upstream message (a response, or a batch of them). */
function answeredIds(message: unknown): JsonRpcId[] {
  const list = Array.isArray(message) ? message : [message];
  const ids: JsonRpcId[] = [];
  for (const m of list) if (isPlainObject(m) && !('method' in m) && isId(m.id)) ids.push(m.id);
  return ids;
}

/**
 * Re-frames an upstream SSE stream event by event. Each event and (for a POST) the whole stream are bounded;
 * on overflow, upstream failure or a malformed event the stream ends with JSON-RPC errors for the requests it
 * left unanswered, so a caller never waits for an answer that will not come.
 */
async function* relaySse(options: {
  body: ReadableStream<Uint8Array>;
  prefix: readonly unknown[];
  pending: Set<JsonRpcId>;
  maxEventBytes: number;
  maxTotalBytes: number | undefined;
  onProblem: (problem: string) => void;
  /** Checks (and may rewrite) each message before it is relayed. */
  transform: (message: unknown) => Promise<unknown>;
}): AsyncGenerator<string> {
  const { pending } = options;
  for (const m of options.prefix) yield sseMessage(m);
  const reader = options.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let current: SseEvent = { data: [] };
  let eventBytes = 0;
  let totalBytes = 0;
  let problem: string | undefined;

  const dispatch = async (): Promise<string | undefined> => {
    const e = current;
    current = { data: [] };
    eventBytes = 0;
    if (e.data.length === 0) {
      // An event without data (e.g. the SDK's priming event carrying only an id) is relayed as it is.
      return e.id === undefined && e.retry === undefined ? undefined : formatSse(e);
    }
    if (e.event === undefined || e.event === 'message') {
      let message: unknown;
      try {
        message = JSON.parse(e.data.join('\n'));
      } catch {
        problem = 'the upstream sent an event that is not JSON';
        return undefined;
      }
      for (const id of answeredIds(message)) pending.delete(id);
      // One JSON line per event: a message never spans `data:` lines that a client could join differently.
      return formatSse({ ...e, data: [JSON.stringify(await options.transform(message))] });
    }
    return formatSse(e);
  };

  try {
    outer: for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      totalBytes += value.byteLength;
      if (options.maxTotalBytes !== undefined && totalBytes > options.maxTotalBytes) {
        problem = `the upstream's answer exceeds ${options.maxTotalBytes} bytes`;
        break;
      }
      buffer += decoder.decode(value, { stream: true });
      let nl: RegExpExecArray | null;
      const lineEnd = /\r\n|\r|\n/g;
      let start = 0;
      while ((nl = lineEnd.exec(buffer)) !== null) {
        // A lone \r at the end of the buffer may be the first half of \r\n: wait for the next chunk.
        if (nl[0] === '\r' && nl.index === buffer.length - 1) break;
        const line = buffer.slice(start, nl.index);
        start = nl.index + nl[0].length;
        if (line === '') {
          const out = await dispatch();
          if (problem !== undefined) break outer;
          if (out !== undefined) yield out;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        let v = colon === -1 ? '' : line.slice(colon + 1);
        if (v.startsWith(' ')) v = v.slice(1);
        eventBytes += v.length;
        if (eventBytes > options.maxEventBytes) {
          problem = `the upstream sent a message larger than ${options.maxEventBytes} bytes`;
          break outer;
        }
        if (field === 'data') current.data.push(v);
        else if (field === 'event') current.event = v;
        else if (field === 'id' && !v.includes('\0')) current.id = v;
        else if (field === 'retry' && /^\d+$/.test(v)) current.retry = v;
      }
      buffer = buffer.slice(start);
      if (buffer.length > options.maxEventBytes) {
        problem = `the upstream sent a line longer than ${options.maxEventBytes} bytes`;
        break;
      }
    }
  } catch {
    problem ??= 'the upstream stream failed';
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  if (problem === undefined && pending.size > 0) problem = 'the upstream ended the stream without answering';
  if (problem !== undefined) {
    options.onProblem(problem);
    for (const id of pending) yield sseMessage(rpcError(id, GATEWAY_ERROR_CODES.internalError, `${problem}; the request's outcome is unknown`));
    pending.clear();
  }
}

/**
 * Builds the response check of one POST (or GET) stream: each answer to a forwarded request goes through
 * `deps.inspectResponse` with that request; an answer to no request of this exchange, or a check that fails, is
 * withheld (fail closed). Answers to ungated requests (`initialize`, `ping`) and the upstream's own requests and
 * notifications pass as they are.
 */
function responseInspector(
  deps: Pick<McpGatewayDeps, 'inspectResponse'>,
  caller: GatewayCaller,
  upstreamId: string,
  forwarded: ReadonlyMap<JsonRpcId, JsonRpcRequest>,
  onFailure: (err: unknown) => void,
): (message: unknown) => Promise<unknown> {
  const check = deps.inspectResponse;
  if (check === undefined) return async (message) => message;
  const withheld = (id: JsonRpcId, why: string) => rpcError(id, GATEWAY_ERROR_CODES.internalError, `the upstream's answer was withheld: ${why}`, { reason_code: 'response_check_error' });
  const one = async (m: unknown): Promise<unknown> => {
    if (!isPlainObject(m) || 'method' in m || !isId(m.id)) return m;
    const request = forwarded.get(m.id);
    if (request === undefined) return withheld(m.id, 'it answers no request the gateway forwarded on this stream');
    if (UNGATED_METHODS.has(request.method)) return m;
    try {
      const out = await check(caller, upstreamId, request, m as JsonRpcResponseMessage);
      if (out.id !== m.id) throw new TypeError('inspectResponse changed the id of an answer');
      return out;
    } catch (err) {
      onFailure(err);
      return withheld(m.id, 'it could not be checked');
    }
  };
  return async (message) => {
    if (!Array.isArray(message)) return one(message);
    const out: unknown[] = [];
    for (const m of message) out.push(await one(m));
    return out;
  };
}

/**
 * Mounts the MCP gateway on a fastify instance: `POST|GET|DELETE /mcp/:upstream` and
 * `GET /.well-known/oauth-protected-resource/mcp/:upstream`. The routes live in their own encapsulated context
 * (own body parser, own error rendering as JSON-RPC errors); nothing else of the instance changes.
 * @param app - the fastify instance (before `ready()`)
 * @param deps - the ports: authentication, authorization, upstream credentials, audit
 * @example
 * registerMcpGateway(app, { upstreams, authenticate, authorize, upstreamHeaders, resourceMetadataUrl, audit, allowedOrigins: [] });
 */
export function registerMcpGateway(app: FastifyInstance, deps: McpGatewayDeps): void {
  const limits = { ...DEFAULT_LIMITS, ...deps.limits };
  const clock = deps.clock ?? { now: () => Date.now() };
  const doFetch = deps.fetch ?? fetch;
  const sessions = new SessionTable(limits.maxSessions, limits.sessionIdleMs, () => clock.now());
  const gates = new WeakMap<FastifyRequest, Gate>();
  const dpopAlgorithms = deps.dpopAlgorithms ?? ['ES256', 'EdDSA', 'PS256', 'RS256'];
  for (const [id, u] of deps.upstreams) {
    if (!UPSTREAM_ID.test(id) || u.id !== id) throw new TypeError(`upstream id ${JSON.stringify(id)} must match its key and use only letters, digits, ".", "_" and "-"`);
  }

  /** Records what the gateway refused by itself; a failing audit log refuses the request (503). */
  const audit = async (fields: AuditEventFields): Promise<void> => {
    try {
      await deps.audit(createAuditEvent(fields, { clock }));
    } catch (err) {
      throw new GatewayRefusal(503, GATEWAY_ERROR_CODES.internalError, 'the audit log cannot record this request, so it was refused; retry shortly', { 'retry-after': '1' }, err);
    }
  };
  const refusalEvent = (upstreamId: string, reasonCode: string, description: string, caller?: GatewayCaller): AuditEventFields => ({
    type: reasonCode === 'unauthenticated' ? 'auth.failure' : 'decision',
    outcome: reasonCode === 'unauthenticated' ? 'failure' : 'deny',
    ...(caller === undefined ? {} : { actor: caller.clientId }),
    ...(caller?.userSub === undefined ? {} : { subject: `User::${JSON.stringify(caller.userSub)}` }),
    resource: `McpServer::${JSON.stringify(upstreamId)}`,
    reasons: [description],
    data: {
      gateway: 'mcp',
      upstream: upstreamId,
      reason_code: reasonCode,
      ...(caller?.taskId === undefined ? {} : { task: caller.taskId }),
      ...(caller === undefined ? {} : { mandate_jti: caller.mandateJti }),
    },
  });

  const renderRefusal = (reply: FastifyReply, r: GatewayRefusal): FastifyReply =>
    reply
      .code(r.status)
      .headers({ 'cache-control': 'no-store', 'content-type': 'application/json', ...r.headers })
      .send(JSON.stringify(rpcError(null, r.rpcCode, r.description)));

  /** Maps an authenticator's error to a 401/403/503 refusal with the RFC 9728 challenge. */
  const authRefusal = (err: unknown, upstreamId: string): GatewayRefusal => {
    if (isMandateError(err)) {
      const e: MandateError = err;
      const headers: Record<string, string> = {};
      const nonce = e.extra?.dpopNonce;
      if (typeof nonce === 'string') headers['dpop-nonce'] = nonce;
      if (e.status === 401) headers['www-authenticate'] = withResourceMetadata(e.wwwAuthenticate(), deps.resourceMetadataUrl(upstreamId));
      else {
        const challenge = e.wwwAuthenticate();
        if (challenge !== undefined) headers['www-authenticate'] = challenge;
      }
      return new GatewayRefusal(e.status, GATEWAY_ERROR_CODES.httpRefused, e.description, headers);
    }
    return new GatewayRefusal(500, GATEWAY_ERROR_CODES.internalError, 'the gateway failed to authenticate the request; it has been logged');
  };

  /** Everything that must hold before the body is even read: upstream, Origin, authentication, session. */
  const gate = async (request: FastifyRequest): Promise<void> => {
    const upstreamId = (request.params as { upstream?: string }).upstream ?? '';
    const upstream = deps.upstreams.get(upstreamId);
    if (upstream === undefined) throw new GatewayRefusal(404, GATEWAY_ERROR_CODES.httpRefused, `no MCP upstream named ${JSON.stringify(upstreamId.slice(0, 128))}`);

    // Browsers send Origin; DNS rebinding and cross-site pages are refused here (MCP transports: "MUST validate").
    const origin = header(request, 'origin');
    if (origin !== undefined && origin !== new URL(upstream.resource).origin && !deps.allowedOrigins.includes(origin)) {
      const description = `requests from origin ${origin.slice(0, 200)} are not allowed`;
      await audit(refusalEvent(upstreamId, 'foreign_origin', description));
      throw new GatewayRefusal(403, GATEWAY_ERROR_CODES.httpRefused, description);
    }

    let caller: GatewayCaller;
    try {
      const dpop = request.headers.dpop;
      caller = await deps.authenticate({
        ...(typeof request.headers.authorization === 'string' ? { authorization: request.headers.authorization } : {}),
        ...(dpop === undefined ? {} : { dpop }),
        method: request.method,
        url: new URL(request.url, upstream.resource).href,
        resource: upstream.resource,
      });
    } catch (err) {
      const refusal = authRefusal(err, upstreamId);
      if (refusal.status === 500) request.log.error({ err }, 'gateway authentication failed');
      await audit(refusalEvent(upstreamId, 'unauthenticated', refusal.description));
      throw refusal;
    }

    const g: Gate = { upstream, caller };
    const sessionId = header(request, 'mcp-session-id');
    if (sessionId !== undefined) {
      const session = SESSION_ID.test(sessionId) ? sessions.get(sessionId) : undefined;
      if (session === undefined || session.upstreamId !== upstreamId) {
        throw new GatewayRefusal(404, GATEWAY_ERROR_CODES.sessionNotFound, 'the MCP session is unknown or expired; initialize a new one');
      }
      if (session.binding !== bindingOf(caller)) {
        const description = 'this MCP session belongs to another caller (user, agent or task); initialize your own';
        await audit(refusalEvent(upstreamId, 'session_mismatch', description, caller));
        throw new GatewayRefusal(403, GATEWAY_ERROR_CODES.httpRefused, description);
      }
      g.sessionId = sessionId;
      g.session = session;
    }
    gates.set(request, g);
  };

  /** The headers of a request to the upstream: its credential, then the protocol's own (which it cannot override). */
  const upstreamRequestHeaders = async (request: FastifyRequest, g: Gate, accept: string): Promise<Headers> => {
    const h = new Headers();
    for (const [k, v] of Object.entries(await deps.upstreamHeaders(g.caller, g.upstream))) h.set(k, v);
    h.set('accept', accept);
    const version = header(request, 'mcp-protocol-version');
    if (version !== undefined && PROTOCOL_VERSION.test(version)) h.set('mcp-protocol-version', version);
    if (g.session !== undefined) h.set('mcp-session-id', g.session.upstreamSessionId);
    return h;
  };

  /** Calls the upstream; the caller going away aborts it, and so does a missing answer within the timeout. */
  const callUpstream = async (reply: FastifyReply, g: Gate, init: { method: string; headers: Headers; body?: string }) => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), limits.upstreamTimeoutMs);
    reply.raw.on('close', () => controller.abort());
    try {
      const res = await doFetch(g.upstream.url, { ...init, signal: controller.signal, redirect: 'manual' });
      return { res, controller };
    } catch (err) {
      const timedOut = controller.signal.aborted;
      throw new GatewayRefusal(timedOut ? 504 : 502, GATEWAY_ERROR_CODES.internalError, timedOut ? 'the upstream did not answer in time' : 'the upstream cannot be reached', {}, err);
    } finally {
      clearTimeout(timer);
    }
  };

  /** Maps an upstream failure status to what the caller sees; never relays the upstream's challenge or body. */
  const upstreamFailure = (status: number, g: Gate): GatewayRefusal => {
    if (status === 404 && g.sessionId !== undefined) {
      sessions.delete(g.sessionId);
      return new GatewayRefusal(404, GATEWAY_ERROR_CODES.sessionNotFound, 'the MCP session ended upstream; initialize a new one');
    }
    if (status === 401 || status === 403) return new GatewayRefusal(502, GATEWAY_ERROR_CODES.internalError, "the upstream refused the gateway's credential");
    if (status === 405) return new GatewayRefusal(405, GATEWAY_ERROR_CODES.httpRefused, 'the upstream does not support this method', { allow: 'POST' });
    if (status >= 400 && status < 500) return new GatewayRefusal(status, GATEWAY_ERROR_CODES.httpRefused, `the upstream refused the request (HTTP ${status})`);
    return new GatewayRefusal(502, GATEWAY_ERROR_CODES.internalError, `the upstream failed (HTTP ${status})`);
  };

  const handlePost = async (request: FastifyRequest, reply: FastifyReply, g: Gate): Promise<FastifyReply> => {
    const upstreamId = g.upstream.id;
    let parsed: unknown;
    try {
      parsed = parseStrictJson(typeof request.body === 'string' ? request.body : '', limits.maxJsonDepth);
    } catch (err) {
      const description = err instanceof StrictJsonError ? err.message : 'the body is not valid JSON';
      await audit(refusalEvent(upstreamId, err instanceof StrictJsonError ? err.reason : 'malformed', description, g.caller));
      return renderRefusal(reply, new GatewayRefusal(400, GATEWAY_ERROR_CODES.parseError, `Parse error: ${description}`));
    }
    const isBatch = Array.isArray(parsed);
    const raw = isBatch ? (parsed as unknown[]) : [parsed];
    if (raw.length === 0 || raw.length > limits.maxBatchSize) {
      return renderRefusal(reply, new GatewayRefusal(400, GATEWAY_ERROR_CODES.invalidRequest, `a batch holds 1 to ${limits.maxBatchSize} messages`));
    }
    const items = raw.map(classify);
    const requestIds = items.flatMap((i) => (i.kind === 'request' ? [i.message.id] : []));
    if (new Set(requestIds).size !== requestIds.length) {
      // Two requests with one id would make their answers (and decisions) ambiguous.
      await audit(refusalEvent(upstreamId, 'duplicate_id', 'a batch repeats a request id', g.caller));
      return renderRefusal(reply, new GatewayRefusal(400, GATEWAY_ERROR_CODES.invalidRequest, 'a batch repeats a request id; each request needs its own'));
    }
    const hasInitialize = items.some((i) => i.kind === 'request' && i.message.method === 'initialize');
    if (hasInitialize && (isBatch || g.session !== undefined)) {
      return renderRefusal(reply, new GatewayRefusal(400, GATEWAY_ERROR_CODES.invalidRequest, 'initialize must be sent alone and outside a session'));
    }

    // Item by item, in order (a task's steps are counted in the order they are asked).
    const local: JsonRpcResponse[] = [];
    const forward: unknown[] = [];
    const pending = new Set<JsonRpcId>();
    const forwarded = new Map<JsonRpcId, JsonRpcRequest>();
    for (const item of items) {
      if (item.kind === 'invalid') {
        await audit(refusalEvent(upstreamId, 'invalid_message', item.reason, g.caller));
        local.push(rpcError(item.id, GATEWAY_ERROR_CODES.invalidRequest, `Invalid Request: ${item.reason}`));
        continue;
      }
      if (item.kind !== 'request') {
        forward.push(item.message);
        continue;
      }
      const message = item.message;
      if (UNGATED_METHODS.has(message.method)) {
        forward.push(message);
        pending.add(message.id);
        forwarded.set(message.id, message);
        continue;
      }
      let decision;
      try {
        decision = await deps.authorize(g.caller, upstreamId, message);
      } catch (err) {
        // Fail closed: an authorizer that cannot decide lets nothing through.
        request.log.error({ err, method: message.method.slice(0, 64) }, 'gateway authorization failed');
        local.push(rpcError(message.id, GATEWAY_ERROR_CODES.internalError, 'the gateway could not decide this request; it was not forwarded', { reason_code: 'decision_error' }));
        continue;
      }
      if (decision.kind === 'forward') {
        const canonical = decision.message;
        if (canonical.id !== message.id || canonical.jsonrpc !== '2.0' || typeof canonical.method !== 'string') {
          request.log.error({ method: message.method.slice(0, 64) }, 'the authorizer rewrote a request into another id or shape');
          local.push(rpcError(message.id, GATEWAY_ERROR_CODES.internalError, 'the gateway could not decide this request; it was not forwarded', { reason_code: 'decision_error' }));
          continue;
        }
        forward.push(canonical);
        pending.add(canonical.id);
        forwarded.set(canonical.id, canonical);
      } else if (decision.kind === 'deny') {
        local.push(rpcError(message.id, decision.code, decision.message, { reason_code: decision.reasonCode }));
      } else {
        const { id, poll, expiresAt } = decision.approval;
        local.push(
          rpcError(message.id, GATEWAY_ERROR_CODES.approvalRequired, 'this call needs the approval of a person; poll the approval, then repeat the call', {
            reason_code: 'approval_required',
            approval: { id, poll, expires_at: expiresAt },
          }),
        );
      }
    }

    const respondLocal = (extra: readonly unknown[] = []): FastifyReply => {
      const all = [...local, ...extra];
      if (all.length === 0) return reply.code(202).header('cache-control', 'no-store').send();
      return reply
        .code(200)
        .headers({ 'content-type': 'application/json', 'cache-control': 'no-store', ...(g.sessionId === undefined ? {} : { 'mcp-session-id': g.sessionId }) })
        .send(JSON.stringify(isBatch ? all : all[0]));
    };
    if (forward.length === 0) return respondLocal();

    const headers = await upstreamRequestHeaders(request, g, 'application/json, text/event-stream');
    headers.set('content-type', 'application/json');
    const { res, controller } = await callUpstream(reply, g, { method: 'POST', headers, body: JSON.stringify(isBatch ? forward : forward[0]) });
    if (res.status === 202) {
      await res.body?.cancel().catch(() => undefined);
      return respondLocal();
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      throw upstreamFailure(res.status, g);
    }

    // A new session: the caller gets the gateway's own id for it, bound to this caller.
    let sessionId = g.sessionId;
    const upstreamSessionId = res.headers.get('mcp-session-id');
    if (hasInitialize && upstreamSessionId !== null && SESSION_ID.test(upstreamSessionId)) {
      sessionId = sessions.create({ upstreamId, upstreamSessionId, binding: bindingOf(g.caller) });
    }
    const sessionHeader = sessionId === undefined ? {} : { 'mcp-session-id': sessionId };
    const inspect = responseInspector(deps, g.caller, upstreamId, forwarded, (err) => request.log.error({ err, upstream: upstreamId }, 'response check failed; answer withheld'));
    const contentType = (res.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();

    if (contentType === 'text/event-stream' && res.body !== null) {
      const stream = relaySse({
        body: res.body,
        prefix: local,
        pending,
        maxEventBytes: limits.maxResponseBytes,
        maxTotalBytes: limits.maxResponseBytes,
        onProblem: (problem) => {
          controller.abort();
          request.log.warn({ upstream: upstreamId, problem }, 'upstream stream ended with a problem');
        },
        transform: inspect,
      });
      return reply.code(200).headers({ 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...sessionHeader }).send(Readable.from(stream));
    }
    if (contentType !== 'application/json') {
      await res.body?.cancel().catch(() => undefined);
      throw new GatewayRefusal(502, GATEWAY_ERROR_CODES.internalError, 'the upstream answered with an unexpected media type');
    }
    const bodyTimer = setTimeout(() => controller.abort(), limits.upstreamTimeoutMs);
    let body: Buffer | undefined;
    try {
      body = await readBounded(res.body, limits.maxResponseBytes);
    } catch (err) {
      throw new GatewayRefusal(504, GATEWAY_ERROR_CODES.internalError, 'the upstream did not finish its answer in time', {}, err);
    } finally {
      clearTimeout(bodyTimer);
    }
    let answers: unknown[];
    if (body === undefined) {
      answers = [...pending].map((id) => rpcError(id, GATEWAY_ERROR_CODES.internalError, `the upstream's answer exceeds ${limits.maxResponseBytes} bytes; the request's outcome is unknown`));
    } else {
      try {
        const value = JSON.parse(body.toString('utf8')) as unknown;
        answers = Array.isArray(value) ? value : [value];
      } catch {
        throw new GatewayRefusal(502, GATEWAY_ERROR_CODES.internalError, 'the upstream answered with invalid JSON');
      }
      const checked: unknown[] = [];
      for (const a of answers) checked.push(await inspect(a));
      answers = checked;
    }
    const all = [...local, ...answers];
    return reply
      .code(200)
      .headers({ 'content-type': 'application/json', 'cache-control': 'no-store', ...sessionHeader })
      .send(JSON.stringify(isBatch ? all : all[0]));
  };

  const handleGet = async (request: FastifyRequest, reply: FastifyReply, g: Gate): Promise<FastifyReply> => {
    if (!(header(request, 'accept') ?? '').includes('text/event-stream')) {
      throw new GatewayRefusal(406, GATEWAY_ERROR_CODES.httpRefused, 'a GET must accept text/event-stream');
    }
    const headers = await upstreamRequestHeaders(request, g, 'text/event-stream');
    const lastEventId = header(request, 'last-event-id');
    if (lastEventId !== undefined && LAST_EVENT_ID.test(lastEventId)) headers.set('last-event-id', lastEventId);
    const { res, controller } = await callUpstream(reply, g, { method: 'GET', headers });
    const contentType = (res.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    if (res.status !== 200 || contentType !== 'text/event-stream' || res.body === null) {
      await res.body?.cancel().catch(() => undefined);
      throw upstreamFailure(res.status === 200 ? 502 : res.status, g);
    }
    const stream = relaySse({
      body: res.body,
      prefix: [],
      pending: new Set(),
      maxEventBytes: limits.maxResponseBytes,
      maxTotalBytes: undefined,
      onProblem: (problem) => {
        controller.abort();
        request.log.warn({ upstream: g.upstream.id, problem }, 'upstream stream ended with a problem');
      },
      // A GET stream answers no request of its own: with a response check configured, any answer on it (a resumed
      // stream) is withheld rather than relayed unchecked.
      transform: responseInspector(deps, g.caller, g.upstream.id, new Map(), (err) => request.log.error({ err }, 'response check failed')),
    });
    return reply
      .code(200)
      .headers({ 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...(g.sessionId === undefined ? {} : { 'mcp-session-id': g.sessionId }) })
      .send(Readable.from(stream));
  };

  const handleDelete = async (request: FastifyRequest, reply: FastifyReply, g: Gate): Promise<FastifyReply> => {
    if (g.sessionId === undefined) throw new GatewayRefusal(400, GATEWAY_ERROR_CODES.httpRefused, 'DELETE ends a session: send its Mcp-Session-Id');
    const headers = await upstreamRequestHeaders(request, g, 'application/json, text/event-stream');
    const { res } = await callUpstream(reply, g, { method: 'DELETE', headers });
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 404 || (res.status >= 200 && res.status < 300)) sessions.delete(g.sessionId);
    if (res.status >= 200 && res.status < 300) return reply.code(200).header('cache-control', 'no-store').send();
    throw upstreamFailure(res.status, g);
  };

  void app.register(async (scope) => {
    // The body is kept as text so that it is parsed once, strictly, after authentication (onRequest runs first).
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: limits.maxRequestBytes }, (_request, body, done) => done(null, body));

    // Errors on these routes are JSON-RPC error bodies (id null) with the HTTP status the transport calls for.
    scope.setErrorHandler(async (error: unknown, request, reply) => {
      if (error instanceof GatewayRefusal) return renderRefusal(reply, error);
      const code = (error as { code?: unknown }).code;
      if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return renderRefusal(reply, new GatewayRefusal(413, GATEWAY_ERROR_CODES.invalidRequest, `the body is larger than ${limits.maxRequestBytes} bytes`));
      if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return renderRefusal(reply, new GatewayRefusal(415, GATEWAY_ERROR_CODES.httpRefused, 'send MCP messages as application/json'));
      if (isMandateError(error) && error.status < 500) return renderRefusal(reply, new GatewayRefusal(error.status, GATEWAY_ERROR_CODES.httpRefused, error.description));
      request.log.error({ err: error }, 'gateway request failed');
      return renderRefusal(reply, new GatewayRefusal(500, GATEWAY_ERROR_CODES.internalError, 'the gateway failed to process the request; it has been logged'));
    });

    scope.get<{ Params: { upstream: string } }>('/.well-known/oauth-protected-resource/mcp/:upstream', async (request, reply) => {
      const upstream = deps.upstreams.get(request.params.upstream);
      if (upstream === undefined) throw new GatewayRefusal(404, GATEWAY_ERROR_CODES.httpRefused, 'no such MCP upstream');
      const scopes = deps.scopesSupported?.(upstream.id) ?? [];
      return reply
        .header('cache-control', 'public, max-age=300')
        .header('content-type', 'application/json')
        .send(
          JSON.stringify({
            resource: upstream.resource,
            authorization_servers: [...(deps.authorizationServers?.() ?? [])],
            bearer_methods_supported: ['header'],
            dpop_signing_alg_values_supported: [...dpopAlgorithms],
            ...(scopes.length === 0 ? {} : { scopes_supported: [...scopes] }),
          }),
        );
    });

    scope.route<{ Params: { upstream: string } }>({
      method: ['POST', 'GET', 'DELETE'],
      url: '/mcp/:upstream',
      onRequest: gate,
      handler: async (request, reply) => {
        const g = gates.get(request);
        if (g === undefined) throw new GatewayRefusal(500, GATEWAY_ERROR_CODES.internalError, 'the request was not authenticated');
        if (request.method === 'POST') return handlePost(request, reply, g);
        if (request.method === 'GET') return handleGet(request, reply, g);
        return handleDelete(request, reply, g);
      },
    });
  });
}

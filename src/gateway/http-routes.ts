/**
 * HTTP tools behind the gateway: configuration of REST tools (an upstream and route rules mapping
 * method + path to a Cedar action and resource), strict path normalisation and exact rule matching, and a
 * reverse proxy that authenticates every request, decides it, and forwards it with the gateway's own
 * credential — never the caller's `Authorization`, `DPoP` or cookies.
 *
 * What is authorized is exactly what is forwarded: the path is decoded segment by segment, refused when it
 * could mean something else to another parser (`..`, `.`, encoded slashes or backslashes, empty segments,
 * `;` parameters, control characters, bad percent-encoding), matched exactly against the rules (no prefix
 * matching, no case folding) and forwarded in its canonical re-encoded form.
 *
 * The ports below (`CallerAuthenticator`, `GatewayDecider`) are shared with `ext-authz.ts`.
 *
 * @see RFC 9110 §7.6.1 (hop-by-hop fields), RFC 3986 §3.3 and §6.2.2 (path segments, normalisation)
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { parseStrictJson } from './json-strict.ts';
import type { EntityRef } from '../core/decision.ts';
import { isMandateError, UnauthenticatedError } from '../core/errors.ts';

// ---- Ports ---------------------------------------------------------------------------------------

/** Who made a request, as established from its mandate. */
export interface AuthenticatedCaller {
  /** The user on whose authority the request is made (the mandate's `sub`). */
  user: EntityRef;
  /** The actors acting for the user, from the first delegate to the caller (the mandate's `act` chain). */
  actors: EntityRef[];
  /** The task the mandate belongs to, if any. */
  taskId?: string;
  /** The mandate's `jti`, for the audit trail. */
  tokenId?: string;
}

/** What the authenticator sees of a request: the credentials and what a DPoP proof is bound to. */
export interface CredentialInput {
  authorization: string | undefined;
  dpop: string | undefined;
  /** The original request's method (a DPoP proof's `htm`). */
  method: string;
  /** The original request's URL without query or fragment (a DPoP proof's `htu`). */
  url: string;
  /** The protected resource (expected `aud`). */
  resource: string;
}

/**
 * Verifies a mandate (signature, expiry, audience, revocation, proof of possession). Throws
 * `UnauthenticatedError` (whose `wwwAuthenticate()` gives the challenge) when it is missing or not valid.
 */
export interface CallerAuthenticator {
  authenticate(input: CredentialInput): Promise<AuthenticatedCaller>;
}

/** One decision the gateway asks for. */
export interface GatewayDecisionInput {
  caller: AuthenticatedCaller;
  action: string;
  resource: EntityRef;
  /** Cedar context from the rule (the decider adds the task's context). */
  context: Record<string, unknown>;
  /** The HTTP request as matched, for the audit event (never given to Cedar as is). */
  http: { method: string; path: string; tool?: string };
}

/** The gateway's view of a decision. */
export interface GatewayDecision {
  decision: 'allow' | 'deny' | 'approval_required';
  decisionId: string;
  /** Stable reason code when denied (`policy_denied`, a step violation code, `approval_required`...). */
  reasonCode?: string;
  /** Client-safe reason. */
  reason?: string;
  /** The approval request's id when approval is required. */
  approvalId?: string;
}

/**
 * Decides a gateway request: the task's step gate, then policy, then the audit event. Never throws for a
 * denial; throws only when it cannot decide (the gateway then denies).
 */
export interface GatewayDecider {
  decide(input: GatewayDecisionInput): Promise<GatewayDecision>;
}

// ---- Configuration -------------------------------------------------------------------------------

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/** A path pattern: `/`-separated literal segments and `:name` parameters, e.g. `/tickets/:id/comments`. */
const PathPatternV1 = z
  .string()
  .min(1)
  .max(1024)
  .refine((p) => p.startsWith('/'), 'a path pattern starts with /')
  .refine((p) => !p.slice(1).split('/').slice(0, -1).includes(''), 'a path pattern has no empty segments')
  .refine((p) => p.split('/').every((s) => s !== '.' && s !== '..'), 'a path pattern has no . or .. segments')
  .refine((p) => p.split('/').every((s) => (s.startsWith(':') ? IDENT.test(s.slice(1)) : !/[%;\\:{}*?#\s]/.test(s))), 'literal segments are plain text; parameters are :name');

/** A route rule: one method and path pattern mapped to a Cedar action and resource. */
export const HttpRouteRuleV1 = z
  .strictObject({
    method: z.enum(METHODS),
    path: PathPatternV1,
    /** Cedar action id, e.g. `read`, `write`, `call`. */
    action: z.string().min(1).max(128),
    resource: z.strictObject({
      type: z.string().min(1).max(128),
      /** Id template; `{name}` is replaced by the decoded path parameter `name`, e.g. `ticket-{id}`. */
      id: z.string().min(1).max(512),
    }),
    /** Extra Cedar context for this route (e.g. `{ args: { path: ... } }` is not templated). */
    context: z.record(z.string(), z.unknown()).optional(),
    /** Whether a query string may be forwarded (default: refused, since it is not part of the decision). */
    allowQuery: z.boolean().default(false),
  })
  .superRefine((rule, ctx) => {
    const params = new Set(rule.path.split('/').filter((s) => s.startsWith(':')).map((s) => s.slice(1)));
    for (const m of rule.resource.id.matchAll(/\{([^}]*)\}/g)) {
      if (!params.has(m[1] ?? '')) ctx.addIssue({ code: 'custom', path: ['resource', 'id'], message: `{${m[1]}} is not a parameter of ${rule.path}` });
    }
    if (rule.path.split('/').filter((s) => s.startsWith(':')).length !== params.size) {
      ctx.addIssue({ code: 'custom', path: ['path'], message: 'a parameter name appears twice' });
    }
  });
/** A route rule. */
export type HttpRouteRule = z.infer<typeof HttpRouteRuleV1>;

/** One REST tool: where it lives, its rules and the gateway's credential for it. */
export const HttpToolV1 = z.strictObject({
  /** Upstream base URL; forwarded paths are appended to its path. */
  upstream: z.url({ protocol: /^https?$/ }),
  /** The protected resource a mandate must name (`aud`) to use this tool. */
  resource: z.url(),
  rules: z.array(HttpRouteRuleV1).min(1).max(1000),
  /** Request headers forwarded besides `content-type`, `accept`, `accept-language` (lower case). */
  forwardHeaders: z.array(z.string().regex(/^[a-z0-9-]+$/)).max(50).default([]),
  timeoutMs: z.number().int().min(1).max(120_000).default(10_000),
  maxRequestBytes: z.number().int().min(0).max(64 * 1024 * 1024).default(1024 * 1024),
  maxResponseBytes: z.number().int().min(1).max(256 * 1024 * 1024).default(4 * 1024 * 1024),
});
/** One REST tool. */
export type HttpTool = z.infer<typeof HttpToolV1>;

/** The REST tools section of the configuration: tool name → tool. */
export const HttpToolsConfigV1 = z.record(z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/), HttpToolV1);
/** The REST tools section. */
export type HttpToolsConfig = z.infer<typeof HttpToolsConfigV1>;

// ---- Paths and matching --------------------------------------------------------------------------

/** A request path that passed normalisation. */
export interface NormalizedPath {
  /** Decoded segments. */
  segments: string[];
  /** The canonical form forwarded upstream: each segment re-encoded with `encodeURIComponent`. */
  canonical: string;
}

/** Why a path was refused. */
export type PathRefusal = 'not_absolute' | 'dot_segment' | 'empty_segment' | 'encoded_separator' | 'bad_encoding' | 'forbidden_character' | 'too_long';

/**
 * Normalises a request path (without its query): decodes each segment and refuses anything another parser
 * could read differently. Returns the decoded segments and the canonical path, or the refusal.
 * @example normalizePath('/tickets/a%20b') // → { segments: ['tickets', 'a b'], canonical: '/tickets/a%20b' }
 */
export function normalizePath(path: string): NormalizedPath | { refused: PathRefusal } {
  if (path.length > 4096) return { refused: 'too_long' };
  if (!path.startsWith('/')) return { refused: 'not_absolute' };
  if (path === '/') return { segments: [], canonical: '/' };
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused here
  if (/[\\;\u0000-\u001f\u007f\s#?]/.test(path)) return { refused: 'forbidden_character' };
  const raw = path.slice(1).split('/');
  const segments: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const s = raw[i] as string;
    // A single trailing slash is kept as an empty last segment; any other empty segment is refused.
    if (s === '' && i !== raw.length - 1) return { refused: 'empty_segment' };
    if (/%(2f|5c|00)/i.test(s)) return { refused: 'encoded_separator' };
    let decoded: string;
    try {
      decoded = decodeURIComponent(s);
    } catch {
      return { refused: 'bad_encoding' };
    }
    if (decoded === '.' || decoded === '..') return { refused: 'dot_segment' };
    // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused here
    if (/[/\\;\u0000-\u001f\u007f]/.test(decoded)) return { refused: 'forbidden_character' };
    segments.push(decoded);
  }
  return { segments, canonical: `/${segments.map((s) => encodeURIComponent(s)).join('/')}` };
}

/** A matched rule with the request's action, resource and parameters. */
export interface RouteMatch {
  rule: HttpRouteRule;
  params: Record<string, string>;
  action: string;
  resource: EntityRef;
  /** The canonical path to forward. */
  path: string;
}

/** Why no rule matched. */
export type MatchFailure = { reason: 'bad_path'; refusal: PathRefusal } | { reason: 'no_route' } | { reason: 'method_not_allowed'; allowed: string[] } | { reason: 'query_not_allowed' };

function matchSegments(pattern: string, segments: string[]): Record<string, string> | undefined {
  const parts = pattern === '/' ? [] : pattern.slice(1).split('/');
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string;
    const s = segments[i] as string;
    if (p.startsWith(':')) {
      if (s === '') return undefined;
      params[p.slice(1)] = s;
    } else if (p !== s) {
      return undefined;
    }
  }
  return params;
}

/**
 * Finds the rule for a request: the method must be exactly the rule's (`HEAD` is not `GET`), the path must
 * match the whole pattern after normalisation. The first matching rule in configuration order wins.
 * @param rules - the tool's rules
 * @param method - the request method as received
 * @param path - the request path, possibly with a query string
 */
export function matchRoute(rules: readonly HttpRouteRule[], method: string, path: string): RouteMatch | MatchFailure {
  const q = path.indexOf('?');
  const pathOnly = q === -1 ? path : path.slice(0, q);
  const hasQuery = q !== -1 && q < path.length - 1;
  const n = normalizePath(pathOnly);
  if ('refused' in n) return { reason: 'bad_path', refusal: n.refused };
  const allowed: string[] = [];
  for (const rule of rules) {
    const params = matchSegments(rule.path, n.segments);
    if (!params) continue;
    if (rule.method !== method) {
      allowed.push(rule.method);
      continue;
    }
    if (hasQuery && !rule.allowQuery) return { reason: 'query_not_allowed' };
    const id = rule.resource.id.replace(/\{([^}]*)\}/g, (_, name: string) => params[name] ?? '');
    return { rule, params, action: rule.action, resource: { type: rule.resource.type, id }, path: n.canonical };
  }
  return allowed.length > 0 ? { reason: 'method_not_allowed', allowed: [...new Set(allowed)] } : { reason: 'no_route' };
}

// ---- Headers -------------------------------------------------------------------------------------

/** Hop-by-hop fields, never forwarded in either direction. @see RFC 9110 §7.6.1 */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Headers that ask a server to treat a request as another method; refused (method confusion). */
export const METHOD_OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'] as const;

/** Fields named by `Connection` are hop-by-hop too. */
export function connectionTokens(value: string | string[] | undefined): Set<string> {
  const v = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(v.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
}

const NEVER_FORWARDED = new Set(['authorization', 'dpop', 'cookie', 'host', 'content-length', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip']);

/**
 * The request headers sent upstream: an allowlist (content type, accept, the tool's `forwardHeaders`), never
 * a credential of the caller, a hop-by-hop field or a `x-mandate-*` field, then the gateway's own credential.
 */
export function upstreamRequestHeaders(incoming: Record<string, string | string[] | undefined>, tool: Pick<HttpTool, 'forwardHeaders'>, credential: Record<string, string>): Record<string, string> {
  const allow = new Set(['content-type', 'accept', 'accept-language', ...tool.forwardHeaders]);
  const hop = connectionTokens(incoming.connection);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(incoming)) {
    const k = name.toLowerCase();
    if (!allow.has(k) || NEVER_FORWARDED.has(k) || HOP_BY_HOP.has(k) || hop.has(k) || k.startsWith('x-mandate-') || value === undefined) continue;
    out[k] = Array.isArray(value) ? value.join(', ') : value;
  }
  for (const [k, v] of Object.entries(credential)) out[k.toLowerCase()] = v;
  return out;
}

const RESPONSE_DROPPED = new Set(['set-cookie', 'content-length', 'content-encoding', 'server', 'alt-svc']);

/** The response headers sent back to the caller: hop-by-hop, cookies and framing fields removed. */
export function downstreamResponseHeaders(headers: Headers): Record<string, string> {
  const hop = connectionTokens(headers.get('connection') ?? undefined);
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    const k = name.toLowerCase();
    if (HOP_BY_HOP.has(k) || hop.has(k) || RESPONSE_DROPPED.has(k)) return;
    out[k] = value;
  });
  return out;
}

// ---- The reverse proxy ---------------------------------------------------------------------------

/** Dependencies of the REST tool proxy. */
export interface HttpToolProxyDeps {
  tools: HttpToolsConfig;
  authenticator: CallerAuthenticator;
  decider: GatewayDecider;
  /** The gateway's own credential headers for a tool (e.g. `authorization: Bearer <its token>`). */
  credentials(tool: string, caller: AuthenticatedCaller): Promise<Record<string, string>>;
  /** The public origin of this server, for DPoP `htu` (e.g. `https://mandate.example`). */
  publicOrigin: string;
  /** Route prefix (default `/http`): requests go to `<prefix>/<tool>/<path>`. */
  prefix?: string;
  fetch?: typeof fetch;
}

/** A refusal as the proxy writes it: JSON with a stable code and a reason code. */
function refuse(reply: FastifyReply, status: number, code: string, reasonCode: string, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  for (const [k, v] of Object.entries(headers)) void reply.header(k, v);
  return reply.code(status).type('application/json').send({ error: { code, reason_code: reasonCode, message, ...extra } });
}

/** Client-safe explanation of a match failure, with its status. */
export function describeMatchFailure(f: MatchFailure): { status: number; code: string; reasonCode: string; message: string } {
  switch (f.reason) {
    case 'bad_path':
      return { status: 400, code: 'ERR_INVALID_REQUEST', reasonCode: `path_${f.refusal}`, message: `the request path is refused (${f.refusal.replace(/_/g, ' ')})` };
    case 'method_not_allowed':
      return { status: 403, code: 'ERR_FORBIDDEN', reasonCode: 'method_not_routed', message: `no rule allows this method on this path (rules exist for ${f.allowed.join(', ')})` };
    case 'query_not_allowed':
      return { status: 403, code: 'ERR_FORBIDDEN', reasonCode: 'query_not_allowed', message: 'this route takes no query string' };
    default:
      return { status: 403, code: 'ERR_FORBIDDEN', reasonCode: 'no_route', message: 'no rule maps this request to an action and resource' };
  }
}

/** Reads a response body, refusing one larger than `max` bytes (checked while streaming, not after). */
async function readBounded(res: Response, max: number): Promise<Buffer | undefined> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > max) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks);
}

/** The raw URL of a request, as received (Fastify's own routing may have normalised `request.url`'s params). */
function rawUrl(request: FastifyRequest): string {
  return request.raw.url ?? request.url;
}

/**
 * Registers the REST tool proxy at `<prefix>/<tool>/<path>` for every method. Order of work, each step
 * failing closed: method override headers refused → tool and rule matched (before authentication, so that a
 * malformed path costs nothing) → mandate authenticated → decided → forwarded with the gateway's credential →
 * response bounded and filtered. A denied request never reaches upstream.
 */
export function registerHttpToolProxy(app: FastifyInstance, deps: HttpToolProxyDeps): void {
  const prefix = deps.prefix ?? '/http';
  const doFetch = deps.fetch ?? fetch;
  const maxBody = Math.max(0, ...Object.values(deps.tools).map((t) => t.maxRequestBytes));
  void app.register(
    async (scope) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: Math.max(1, maxBody) }, (_req, body, done) => done(null, body));
      scope.all('/*', async (request, reply) => {
        const url = rawUrl(request);
        const rest = url.slice(prefix.length);
        const slash = rest.indexOf('/', 1);
        const toolName = slash === -1 ? rest.slice(1).split('?')[0] : rest.slice(1, slash);
        const tool = toolName === undefined ? undefined : Object.hasOwn(deps.tools, toolName) ? deps.tools[toolName] : undefined;
        if (!tool || slash === -1) return refuse(reply, 404, 'ERR_NOT_FOUND', 'unknown_tool', 'no such HTTP tool');
        for (const h of METHOD_OVERRIDE_HEADERS) {
          if (request.headers[h] !== undefined) return refuse(reply, 400, 'ERR_INVALID_REQUEST', 'method_override', `the ${h} header is refused: the method is the request's own`);
        }
        const toolPath = rest.slice(slash);
        const match = matchRoute(tool.rules, request.method, toolPath);
        if (!('rule' in match)) {
          const d = describeMatchFailure(match);
          return refuse(reply, d.status, d.code, d.reasonCode, d.message);
        }
        const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        if (body.length > tool.maxRequestBytes) return refuse(reply, 413, 'ERR_BODY_TOO_LARGE', 'body_too_large', `the request body exceeds ${tool.maxRequestBytes} bytes`);

        const pathOnly = url.split('?')[0] ?? url;
        let caller: AuthenticatedCaller;
        try {
          caller = await deps.authenticator.authenticate({
            authorization: single(request.headers.authorization),
            dpop: single(request.headers.dpop),
            method: request.method,
            url: `${deps.publicOrigin}${pathOnly}`,
            resource: tool.resource,
          });
        } catch (err) {
          const e = err instanceof UnauthenticatedError ? err : new UnauthenticatedError('the mandate could not be verified', { cause: err });
          return refuse(reply, 401, e.code, 'unauthenticated', e.description, {}, { 'www-authenticate': e.wwwAuthenticate() });
        }
        // A JSON body is the call's arguments: held to a task's workflow limits (JSON Schema) and bound into an
        // approval. Parsed strictly (duplicate keys refused) so that what is decided is what is forwarded.
        let args: unknown;
        if (body.length > 0 && /^application\/json\b/i.test(single(request.headers['content-type']) ?? '')) {
          try {
            args = parseStrictJson(body.toString('utf8'), 32);
          } catch {
            return refuse(reply, 400, 'ERR_INVALID_REQUEST', 'invalid_json', 'the JSON body is malformed or has duplicate keys');
          }
        }
        let decision: GatewayDecision;
        try {
          decision = await deps.decider.decide({
            caller,
            action: match.action,
            resource: match.resource,
            context: { ...(match.rule.context ?? {}), ...(args === undefined ? {} : { arguments: args }) },
            http: { method: request.method, path: match.path, tool: toolName },
          });
        } catch (err) {
          request.log.error({ err: isMandateError(err) ? err.code : 'decider_failed' }, 'gateway decision failed; denied');
          return refuse(reply, 503, 'ERR_DECISION_UNAVAILABLE', 'decision_unavailable', 'no decision could be made; the request is denied');
        }
        void reply.header('x-mandate-decision-id', decision.decisionId);
        if (decision.decision === 'approval_required') {
          return refuse(reply, 403, 'ERR_APPROVAL_REQUIRED', 'approval_required', decision.reason ?? 'a person must approve this request first', decision.approvalId ? { approval_id: decision.approvalId } : {});
        }
        if (decision.decision !== 'allow') {
          return refuse(reply, 403, 'ERR_POLICY_DENIED', decision.reasonCode ?? 'policy_denied', decision.reason ?? 'denied by policy', { decision_id: decision.decisionId });
        }

        const target = new URL(tool.upstream);
        const q = url.indexOf('?');
        target.pathname = `${target.pathname.replace(/\/+$/, '')}${match.path}`;
        target.search = q === -1 ? '' : url.slice(q);
        let credential: Record<string, string>;
        try {
          credential = await deps.credentials(toolName as string, caller);
        } catch {
          return refuse(reply, 502, 'ERR_UPSTREAM_CREDENTIAL', 'upstream_credential', 'the gateway has no credential for this tool');
        }
        let res: Response;
        try {
          res = await doFetch(target, {
            method: request.method,
            headers: upstreamRequestHeaders(request.headers, tool, credential),
            ...(request.method === 'GET' || request.method === 'HEAD' || body.length === 0 ? {} : { body }),
            redirect: 'manual',
            signal: AbortSignal.timeout(tool.timeoutMs),
          });
        } catch {
          return refuse(reply, 502, 'ERR_UPSTREAM', 'upstream_unreachable', 'the tool did not answer');
        }
        const payload = await readBounded(res, tool.maxResponseBytes).catch(() => undefined);
        if (payload === undefined) return refuse(reply, 502, 'ERR_UPSTREAM', 'upstream_response_too_large', `the tool's response exceeds ${tool.maxResponseBytes} bytes`);
        void reply.headers(downstreamResponseHeaders(res.headers));
        return reply.code(res.status).send(payload);
      });
    },
    { prefix },
  );
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v;
}

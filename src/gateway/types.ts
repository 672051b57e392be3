/**
 * The ports of the MCP gateway (`/mcp/:upstream`): what the gateway needs from the rest of Mandate to
 * authenticate a caller, decide each JSON-RPC request, call the upstream with the gateway's own credential and
 * record what it refused. The gateway (src/gateway/mcp-gateway.ts) owns the transport; the message authorizer
 * (src/gateway/mcp-authorize.ts) and the step gate implement {@link AuthorizeMessage}.
 *
 * @see https://modelcontextprotocol.io/specification/2025-11-25/basic/transports (Streamable HTTP)
 * @see https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization (RFC 9728, no token passthrough)
 */
import type { NewAuditEvent } from '../audit/audit-event.ts';

/** A JSON-RPC 2.0 request id. `null` is refused on requests (MCP: "the ID MUST NOT be null"). */
export type JsonRpcId = string | number;

/**
 * One JSON-RPC 2.0 request as the gateway parsed it from the caller's body (duplicate keys already refused).
 * `params`, when present, is an object (MCP sends named parameters only).
 */
export interface JsonRpcRequest {
  readonly jsonrpc: '2.0';
  readonly id: JsonRpcId;
  readonly method: string;
  readonly params?: Readonly<Record<string, unknown>>;
}

/** A JSON-RPC 2.0 error object. @see JSON-RPC 2.0 §5.1 */
export interface JsonRpcErrorObject {
  readonly code: number;
  readonly message: string;
  readonly data?: unknown;
}

/** A JSON-RPC 2.0 response: a result or an error for one request. */
export type JsonRpcResponseMessage =
  | { readonly jsonrpc: '2.0'; readonly id: JsonRpcId; readonly result: unknown }
  | { readonly jsonrpc: '2.0'; readonly id: JsonRpcId | null; readonly error: JsonRpcErrorObject };

/**
 * Checks the upstream's answer to one forwarded request before the caller sees it (e.g. removes records above
 * the task's sensitivity, or replaces the answer with an error). Returns the answer to send, same `id`.
 * A rejection withholds the answer (the caller gets a JSON-RPC error): fail closed.
 */
export type InspectResponse = (caller: GatewayCaller, upstreamId: string, request: JsonRpcRequest, response: JsonRpcResponseMessage) => Promise<JsonRpcResponseMessage>;

/** An upstream MCP server the gateway fronts at `/mcp/<id>`. */
export interface UpstreamConfig {
  /** The path segment: `/mcp/<id>`. Letters, digits, `.`, `_`, `-`. */
  readonly id: string;
  /** The upstream's Streamable HTTP endpoint (remote). */
  readonly url: string;
  /** The gateway resource URI of this upstream (`https://mandate.example.com/mcp/<id>`): the `aud` of mandates for it (RFC 8707). */
  readonly resource: string;
}

/** Who called, as the verified mandate (and its DPoP proof) say. Never holds the token itself. */
export interface GatewayCaller {
  /** The user the agent acts for (`sub`); absent for a service acting for itself. */
  userSub?: string;
  /** The issuer of that user at their IdP (the mandate's `sub_id`, RFC 9493 `iss_sub`), when the mandate names it. */
  userIss?: string;
  /** The OAuth client that holds the mandate (the agent or service). */
  clientId: string;
  /** The delegation chain (`act`), outermost first; empty when nobody acts for another. */
  actors: string[];
  /** The task the mandate belongs to (`task` claim). */
  taskId?: string;
  /** Granted scopes of the mandate. */
  scopes: string[];
  /** The mandate's `jti`, for audit and revocation. */
  mandateJti: string;
  /** The DPoP key thumbprint the mandate is bound to (`cnf.jkt`), when DPoP-bound. */
  dpopJkt?: string;
  /** The mandate's `exp`, in seconds since the Unix epoch. */
  expiresAt: number;
}

/** What the gateway asks the authenticator to verify: the raw credentials of one HTTP request. */
export interface GatewayAuthRequest {
  /** The `Authorization` header as received (never logged). */
  authorization?: string;
  /** The `DPoP` header(s) as received. */
  dpop?: string | string[];
  /** The HTTP method (DPoP `htm`). */
  method: string;
  /** The request's public URL (DPoP `htu`): the path and query resolved against the resource URI's origin. */
  url: string;
  /** The gateway resource URI the mandate must be for (`aud`). */
  resource: string;
}

/**
 * The decision on one JSON-RPC request, before anything reaches the upstream.
 * - `forward`: send `message` (possibly rewritten to its canonical form: exactly what was authorized is forwarded).
 * - `deny`: answer the caller with a JSON-RPC error `{ code, message, data: { reason_code } }`; the upstream never sees it.
 * - `pending`: a person's approval is needed; the caller gets a structured JSON-RPC error with the approval handle.
 *
 * The authorizer records its own decision events; the gateway audits only what it refuses by itself
 * (authentication, Origin, sessions, malformed bodies).
 */
export type AuthorizeMessage = (caller: GatewayCaller, upstreamId: string, message: JsonRpcRequest) => Promise<
  | { kind: 'forward'; message: JsonRpcRequest }
  | { kind: 'deny'; code: number; reasonCode: string; message: string }
  | { kind: 'pending'; approval: { id: string; poll: string; expiresAt: string } }
>;

/** One decision of {@link AuthorizeMessage}. */
export type AuthorizeResult = Awaited<ReturnType<AuthorizeMessage>>;

/** Size and time limits of the gateway; every field has a default. */
export interface McpGatewayLimits {
  /** Largest request body accepted from a caller; default 1 MiB. */
  readonly maxRequestBytes?: number;
  /** Deepest nesting of objects and arrays in a request body; default 64. */
  readonly maxJsonDepth?: number;
  /** Most messages in one JSON-RPC batch; default 32. */
  readonly maxBatchSize?: number;
  /**
   * Largest upstream answer to one POST (a JSON body, or the sum of an SSE stream's events), and the largest
   * single event of a GET stream; default 4 MiB. Past it the caller gets JSON-RPC errors, never a cut message.
   */
  readonly maxResponseBytes?: number;
  /** Time to wait for the upstream's response headers; default 30 s. */
  readonly upstreamTimeoutMs?: number;
  /** Most live MCP sessions the gateway keeps; the least recently used one is dropped past it; default 10 000. */
  readonly maxSessions?: number;
  /** A session unused this long is forgotten; default 1 h. */
  readonly sessionIdleMs?: number;
}

/** What the gateway needs from the node. */
export interface McpGatewayDeps {
  /** The upstreams, by id. */
  upstreams: ReadonlyMap<string, UpstreamConfig>;
  /** Verifies the Authorization (+ DPoP) of a request for this resource; rejects with InvalidTokenError / DPoP errors (401 + WWW-Authenticate). */
  authenticate(req: GatewayAuthRequest): Promise<GatewayCaller>;
  /** Decides one JSON-RPC request before it is forwarded (the message authorizer + the step gate). */
  authorize: AuthorizeMessage;
  /** Headers with the gateway's credential for this upstream (never the caller's token). */
  upstreamHeaders(caller: GatewayCaller, upstream: UpstreamConfig): Promise<Record<string, string>>;
  /** RFC 9728 metadata URL for the challenge, e.g. `https://mandate.example.com/.well-known/oauth-protected-resource/mcp/crm`. */
  resourceMetadataUrl(upstreamId: string): string;
  /**
   * Checks each answer to a forwarded request; absent: answers pass unchanged. When set, answers that arrive
   * where their request is unknown (a resumed GET stream) are withheld rather than passed unchecked.
   */
  inspectResponse?: InspectResponse;
  /** Records an audit event; a rejection refuses the request (503) rather than leave it unlogged. */
  audit(event: NewAuditEvent): Promise<void>;
  /** Browser origins allowed to call the gateway (besides the resource's own); a request with any other `Origin` is refused. */
  allowedOrigins: readonly string[];
  /** The authorization servers named in the RFC 9728 metadata (Mandate's issuer); default none listed. */
  authorizationServers?: () => readonly string[];
  /** DPoP proof algorithms named in the RFC 9728 metadata; default ES256, EdDSA, PS256, RS256. */
  dpopAlgorithms?: readonly string[];
  /** Scopes named in the RFC 9728 metadata per upstream; default none listed. */
  scopesSupported?: (upstreamId: string) => readonly string[];
  /** Size and time limits. */
  limits?: McpGatewayLimits;
  /** Replaces `fetch` towards upstreams (tests, or a guarded fetch); default the global `fetch`. */
  fetch?: typeof fetch;
  /** Clock for audit timestamps and session expiry; default the system clock. */
  clock?: { now(): number };
}

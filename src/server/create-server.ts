/**
 * Builds Mandate's HTTP server (fastify 5): limits and timeouts, the defensive JSON parser, the one error
 * handler, authentication and rate limiting hooks, and the routes (AuthZEN, policy admin, health, metrics).
 * HTTP wiring only: every decision is made by the ports passed in. No demo parts live here; `mandate serve`
 * and `mandate demo` (src/cli) assemble the ports and call {@link createServer}.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fastify, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ConfigInvalidError, MethodNotAllowedError, NotFoundError, RateLimitedError } from '../core/errors.ts';
import { systemClock, type Clock, type IdGenerator } from '../core/ports.ts';
import { registerAdminRoutes } from './admin-routes.ts';
import { registerPrincipalRoutes } from './principal-routes.ts';
import { registerOAuthRoutes, type OAuthServerPort } from './oauth-routes.ts';
import { refusalEvent } from './audit-events.ts';
import { authenticateBearer, isMandateAuthorization, requireScope } from './authenticate-client.ts';
import { registerAuthzenRoutes } from './authzen-routes.ts';
import { createClientErrorHandler, createErrorHandler } from './error-handler.ts';
import { registerHealthRoutes } from './health-routes.ts';
import { parseJsonBody } from './json-body.ts';
import { createLogger } from './logger.ts';
import { createMetrics, type ServerMetrics } from './metrics.ts';
import { TokenBucketLimiter } from './rate-limiter.ts';
import { reloadPolicies, type ReloadOutcome, type ReloadTrigger } from './reload-policies.ts';
import { stateOf, type AuditRecorder, type PolicyEnginePort, type ServerConfig, type ServerContext, type ServerStore } from './server-context.ts';
import type { TaskRecord } from '../store/store.ts';
import { createTaskAdmin } from './task-admin.ts';
import { registerTaskRoutes } from './task-routes.ts';
import type { StepGate } from '../tasks/step-gate.ts';
import { registerApprovalRoutes, type ApprovalRoutesDeps } from './approval-routes.ts';
import { registerSsfRoutes, type SsfRoutesDeps } from '../signals/ssf-routes.ts';
import { registerGateway, type GatewayServerOptions } from './gateway-wiring.ts';
import { registerVaultRoutes, type VaultRoutesDeps } from './vault-routes.ts';

/** Options of {@link createServer}. */
export interface CreateServerOptions {
  /** The validated configuration (sections `server`, `authzen`, `rateLimit`, `policy`). */
  config: ServerConfig;
  /** The policy decision point (`PolicyEngine`): decides, reports the active set, reloads `config.policy.dir`. */
  engine: PolicyEnginePort;
  /** The store: `/readyz` (`ping`), the registry, and tasks, users, lockdown and revocations for the admin API. The server never closes it: its owner does. */
  store: ServerStore;
  /** The decision log (`DecisionLog`): every decision and refusal is recorded through it. Not closed by the server. */
  decisionLog: AuditRecorder;
  /** Logger; default {@link createLogger} at `info`. */
  logger?: Logger;
  /** Clock for audit timestamps and rate limiting; default the system clock. */
  clock?: Clock;
  /** Audit event id generator; default random UUIDs. */
  ids?: IdGenerator;
  /** Public base URL (e.g. `https://mandate.example.com`) for the AuthZEN metadata; default: derived from the request. */
  publicUrl?: string;
  /** Metrics to use; default a fresh registry with process metrics. */
  metrics?: ServerMetrics;
  /** The OAuth authorization server (token service, metadata, JWKS); absent when no resources are configured. */
  oauth?: OAuthServerPort;
  /** Told of every task the admin API closes (end, user disabled, agent stopped, lockdown), e.g. the SSF transmitter. */
  onTasksClosed?: (tasks: readonly TaskRecord[]) => void;
  /** The step gate: decisions inside live tasks are held to the task and its workflow first. */
  stepGate?: StepGate;
  /** Human approvals of steps (with the step gate). */
  approvals?: ApprovalRoutesDeps;
  /** Shared Signals: the SET receiver's push endpoints and the transmitter's stream API. */
  signals?: SsfRoutesDeps;
  /** The MCP gateway (`/mcp/<upstream>`). */
  gateway?: GatewayServerOptions;
  /** The gateway vault's API (`/vault/v1/...`): users' credentials for `vault` upstreams. */
  vault?: VaultRoutesDeps;
}

/** A created server. */
export interface MandateServer {
  /** The fastify instance (for `inject` in tests and for later route modules). */
  readonly app: FastifyInstance;
  /** The server's metrics registry and recorders. */
  readonly metrics: ServerMetrics;
  /**
   * Starts listening; defaults to `config.server.host` / `config.server.port`.
   * @returns the base URL, e.g. `http://127.0.0.1:8080`
   */
  listen(options?: { host?: string; port?: number }): Promise<string>;
  /** Reloads the policy directory, as `POST /admin/v1/policies/reload` does (the CLI calls it on SIGHUP). */
  reloadPolicies(trigger?: ReloadTrigger): Promise<ReloadOutcome>;
  /** Stops accepting connections and waits for in-flight requests; leaves the store and the decision log open. */
  close(): Promise<void>;
}

// X-Request-ID values we echo and log: printable ASCII without spaces, bounded (AuthZEN 1.0 §10: "an arbitrary string").
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
// W3C Trace Context `traceparent`: version-traceid-parentid-flags; an all-zero trace id is invalid.
const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

function traceIdOf(request: FastifyRequest): string | undefined {
  const h = request.headers.traceparent;
  const id = typeof h === 'string' ? TRACEPARENT.exec(h.trim())?.[1] : undefined;
  return id === undefined || /^0+$/.test(id) ? undefined : id;
}

function costOf(body: unknown): number {
  const evaluations = (body as { evaluations?: unknown } | null | undefined)?.evaluations;
  return Array.isArray(evaluations) ? Math.max(1, evaluations.length) : 1;
}

function readTlsFile(path: string, key: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigInvalidError(`${key}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
}

/**
 * Creates the HTTP server. It does not listen until `listen()` is called.
 * @example
 * const server = await createServer({ config, engine, store, decisionLog, logger });
 * const url = await server.listen();
 * process.on('SIGHUP', () => void server.reloadPolicies({ source: 'sighup' }));
 */
export async function createServer(options: CreateServerOptions): Promise<MandateServer> {
  const { config, engine, store, decisionLog } = options;
  const limits = config.server;
  const logger = options.logger ?? createLogger();
  const clock = options.clock ?? systemClock;
  const metrics = options.metrics ?? createMetrics();
  const limiter = new TokenBucketLimiter({ ratePerSecond: config.rateLimit.decisionsPerSecondPerClient, burst: config.rateLimit.burst }, clock);
  // Node refuses a headers timeout longer than the request timeout.
  const headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);

  // HTTPS when configured. Client certificates are requested but not judged by the TLS stack: an X.509-SVID is
  // verified against the SPIFFE bundles by the client authenticator, and a request without one is not refused here.
  const tls = limits.tls;
  const https =
    tls === undefined
      ? undefined
      : {
          cert: readTlsFile(tls.certFile, 'server.tls.certFile'),
          key: readTlsFile(tls.keyFile, 'server.tls.keyFile'),
          minVersion: 'TLSv1.2' as const,
          requestCert: tls.clientCertificates === 'request',
          rejectUnauthorized: false,
        };
  const app = fastify({
    ...(https === undefined ? {} : { https }),
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: limits.bodyLimitBytes,
    trustProxy: limits.trustProxy,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Passed to http.createServer: the header limit is enforced by Node's parser, before fastify sees a request.
    http: {
      maxHeaderSize: limits.maxHeaderSizeBytes,
      headersTimeout,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
    },
    genReqId: (req) => {
      const h = req.headers['x-request-id'];
      return typeof h === 'string' && REQUEST_ID.test(h) ? h : randomUUID();
    },
    clientErrorHandler: createClientErrorHandler(logger),
    return503OnClosing: true,
  });
  app.server.headersTimeout = headersTimeout;

  const ctx: ServerContext = {
    config,
    engine,
    store,
    // Without a token service no API token exists to spare: lockdown revokes every active token.
    taskAdmin: createTaskAdmin({ store, clock, ids: options.ids, apiAudience: () => options.oauth?.issuer() ?? '', onClosed: options.onTasksClosed }),
    auditLog: decisionLog,
    logger,
    clock,
    ids: options.ids,
    metrics,
    limiter,
    publicUrl: options.publicUrl?.replace(/\/+$/, ''),
    ...(options.oauth === undefined ? {} : { identityReadiness: () => (options.oauth as OAuthServerPort).readiness() }),
    ...(options.stepGate === undefined ? {} : { stepGate: options.stepGate }),
    reloadPolicies: (trigger) => reloadPolicies({ engine, policyDir: config.policy.dir, auditLog: decisionLog, logger, clock, ids: options.ids, metrics }, trigger),
  };

  // JSON only, parsed defensively (depth before parse, stable errors, no prototype pollution). Every other
  // media type is refused with 415 by fastify's missing-parser error, mapped in the error handler.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    try {
      const text = body as string;
      // Commands without parameters (reload) accept an empty body even when a client labels it JSON.
      if (text === '' && request.routeOptions.config.allowEmptyBody === true) return done(null, undefined);
      done(null, parseJsonBody(text, limits.maxJsonDepth));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  const takeTokens = (clientId: string, cost: number) => {
    const verdict = limiter.take(clientId, cost);
    if (!verdict.allowed) {
      throw new RateLimitedError(`too many decision requests from this client; retry after ${verdict.retryAfterSeconds} s`, {
        extra: { retryAfterSeconds: verdict.retryAfterSeconds },
      });
    }
  };

  app.decorateRequest('mandate', null as never);
  app.addHook('onRequest', async (request) => {
    const traceId = traceIdOf(request);
    request.mandate = { endpoint: request.routeOptions.config.endpoint ?? 'other', requestId: request.id, ...(traceId ? { traceId } : {}) };
  });

  // Authentication runs before the body is read: an unauthenticated caller costs no parsing and never
  // reaches the policy engine.
  app.addHook('onRequest', async (request) => {
    const scopes = request.routeOptions.config.scopes;
    if (scopes === undefined) return;
    const raw = request.headers.authorization;
    const header = typeof raw === 'string' ? raw : undefined;
    const client =
      options.oauth !== undefined && header !== undefined && isMandateAuthorization(header)
        ? await options.oauth.authenticateApiCaller({
            authorization: header,
            ...(request.headers.dpop === undefined ? {} : { dpop: request.headers.dpop }),
            method: request.method,
            path: request.url.split('?')[0] ?? '/',
          })
        : authenticateBearer(header, config.authzen.credentials);
    const state = stateOf(request);
    state.client = client;
    state.clientId = client.id;
    requireScope(client, scopes);
    // One token before the body is read, so that a flood of malformed bodies is limited too.
    if (request.routeOptions.config.rateLimited === true) takeTokens(client.id, 1);
  });

  // A batch costs one token per evaluation: the rest of its cost is taken once the body is parsed.
  app.addHook('preHandler', async (request) => {
    if (request.routeOptions.config.rateLimited !== true) return;
    const clientId = stateOf(request).clientId;
    const extra = Math.min(costOf(request.body), config.rateLimit.burst) - 1;
    if (clientId !== undefined && extra > 0) takeTokens(clientId, extra);
  });

  app.addHook('onSend', async (request, reply) => {
    // AuthZEN 1.0 §10: a PDP MUST return the caller's X-Request-ID; every response carries one.
    reply.header('x-request-id', request.id);
    reply.header('x-content-type-options', 'nosniff');
  });

  app.addHook('onResponse', async (request, reply) => {
    metrics.countRequest(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode);
  });

  app.setErrorHandler(
    createErrorHandler({
      auditRefusal: async (request, error) => {
        const state = request.mandate as typeof request.mandate | null;
        if (!state || state.auditHandled) return;
        state.auditHandled = true;
        await decisionLog.record(refusalEvent(error, state, { clock, ids: options.ids, policySetVersion: engine.current()?.version }));
      },
      onAuditRefused: () => metrics.countAuditRefused(),
    }),
  );

  // 404 and 405 go through the same error handler, with stable codes.
  const methodsByPath = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const methods = methodsByPath.get(route.url) ?? new Set<string>();
    for (const m of Array.isArray(route.method) ? route.method : [route.method]) methods.add(m);
    methodsByPath.set(route.url, methods);
  });
  app.setNotFoundHandler(async (request) => {
    const path = request.url.split('?')[0] ?? '';
    const allowed = methodsByPath.get(path);
    if (allowed && allowed.size > 0) {
      const allow = [...allowed].sort();
      throw new MethodNotAllowedError(`${request.method} is not allowed on ${path}; use ${allow.join(' or ')}`, { extra: { allow } });
    }
    throw new NotFoundError(`no endpoint at ${path.slice(0, 200)}`);
  });

  registerHealthRoutes(app, ctx);
  registerAuthzenRoutes(app, ctx);
  registerAdminRoutes(app, ctx);
  registerPrincipalRoutes(app, ctx);
  registerTaskRoutes(app, ctx);
  if (options.oauth !== undefined) registerOAuthRoutes(app, ctx, options.oauth);
  if (options.approvals !== undefined) registerApprovalRoutes(app, ctx, options.approvals);
  if (options.signals !== undefined) registerSsfRoutes(app, options.signals);
  if (options.gateway !== undefined) registerGateway(app, ctx, options.gateway);
  if (options.vault !== undefined) registerVaultRoutes(app, ctx, options.vault);
  metrics.setPolicyVersion(engine.current()?.version);
  await app.ready();

  return {
    app,
    metrics,
    async listen(listenOptions = {}) {
      await app.listen({ host: listenOptions.host ?? limits.host, port: listenOptions.port ?? limits.port });
      const address = app.server.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `${tls === undefined ? 'http' : 'https'}://${host}:${address.port}`;
    },
    reloadPolicies: (trigger = { source: 'api' }) => ctx.reloadPolicies(trigger),
    close: () => app.close(),
  };
}

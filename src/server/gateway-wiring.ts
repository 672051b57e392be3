/**
 * Mounts the MCP gateway (src/gateway/) on the server: the transport (authentication, sessions, forwarding with
 * the gateway's own credential), the message authorizer (each request's Cedar meaning, list and result
 * filtering, tool pinning) and the node's one decision path (step gate for tasks, policy, audit).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { EntityRef } from '../core/decision.ts';
import type { GatewayConfig } from '../gateway/gateway-config.ts';
import { createMcpAuthorizer, type DecideResult, type ListMethod, type UpstreamCatalog } from '../gateway/mcp-authorize.ts';
import { registerMcpGateway } from '../gateway/mcp-gateway.ts';
import { registerExtAuthz } from '../gateway/ext-authz.ts';
import { registerHttpToolProxy, type AuthenticatedCaller, type CallerAuthenticator, type GatewayDecider } from '../gateway/http-routes.ts';
import type { GatewayAuthRequest, GatewayCaller, JsonRpcResponseMessage, UpstreamConfig } from '../gateway/types.ts';
import type { UpstreamCredentialSource } from '../gateway/vault.ts';
import type { RequestAuditContext } from './audit-events.ts';
import { createRequestDecider } from './decide-request.ts';
import type { ServerContext } from './server-context.ts';

/** What the node gives the gateway. */
export interface GatewayServerOptions {
  config: GatewayConfig;
  authenticate(req: GatewayAuthRequest): Promise<GatewayCaller>;
  mintUpstreamToken(caller: GatewayCaller, audience: string): Promise<string>;
  /** The task's workflow ceiling, or undefined (then the upstream's configured ceiling applies). */
  taskCeiling(taskId: string): Promise<number | undefined>;
  issuer(): string;
  dpopAlgorithms: readonly string[];
  /** The loopback endpoints of the local (`stdio`) upstreams, by id (src/gateway/stdio-upstream.ts). */
  localUpstreamUrls?: ReadonlyMap<string, string>;
  /** The users' connected credentials, for `vault` upstreams (src/gateway/vault.ts). */
  vault?: UpstreamCredentialSource;
}

const LIST_METHODS = new Set<string>(['tools/list', 'resources/list', 'prompts/list']);

/** Registers `/mcp/:upstream` (and its RFC 9728 metadata), `/http/<tool>/...` and `/ext_authz/...` as configured. */
export function registerGateway(app: FastifyInstance, ctx: ServerContext, options: GatewayServerOptions): void {
  const { config } = options;
  const decideRequest = createRequestDecider(ctx);
  registerRestEnforcement(app, options, decideRequest);
  if (config.upstreams.length === 0) return;
  const byId = new Map(config.upstreams.map((u) => [u.id, u]));
  const catalogs = new Map<string, UpstreamCatalog>(
    config.upstreams.map((u) => [
      u.id,
      {
        tools: new Map(Object.entries(u.tools)),
        resources: new Map(Object.entries(u.resources)),
        prompts: new Map(Object.entries(u.prompts)),
        allowedMethods: new Set(u.allowedMethods),
        pinning: u.pinning,
      },
    ]),
  );

  const authorizer = createMcpAuthorizer({
    async decide(request, decideOptions): Promise<DecideResult> {
      const actors: EntityRef[] = request.delegation?.actors ?? [];
      const audit: RequestAuditContext = { endpoint: 'gateway.mcp', requestId: randomUUID(), subject: request.principal, action: request.action, resource: request.resource, actors };
      const decided = await decideRequest(request, audit, { dryRun: decideOptions?.dryRun === true });
      await decided.committed;
      const extra = decided.extra ?? {};
      if (decided.decision.decision === 'allow') return { outcome: 'allow' };
      const approval = extra.approval as { id?: string; poll?: string; expires_at?: string } | undefined;
      if (approval?.id !== undefined) return { outcome: 'pending', approval: { id: approval.id, poll: approval.poll ?? `/approvals/v1/${approval.id}`, expiresAt: approval.expires_at ?? '' } };
      if (decided.decision.decision === 'approval_required') return { outcome: 'pending' };
      return { outcome: 'deny', reasonCode: typeof extra.reason_code === 'string' ? extra.reason_code : 'policy_denied', message: decided.decision.reasons.join('; ') || 'denied by policy' };
    },
    catalog: (id) => catalogs.get(id),
    async sensitivityCeiling(caller, upstreamId) {
      if (caller.taskId !== undefined) {
        const ceiling = await options.taskCeiling(caller.taskId);
        if (ceiling !== undefined) return ceiling;
      }
      return byId.get(upstreamId)?.sensitivityCeiling;
    },
    results: { onSensitive: config.results.onSensitive, maxBytes: config.results.maxBytes },
  });

  const upstreams = new Map<string, UpstreamConfig>(config.upstreams.map((u) => [u.id, { id: u.id, url: upstreamUrl(u, options.localUpstreamUrls), resource: u.resource }]));
  registerMcpGateway(app, {
    upstreams,
    // DPoP's htu is the URL the client called: Mandate's public origin, whatever the resource identifier is.
    authenticate: (req) => {
      const called = new URL(req.url);
      return options.authenticate({ ...req, url: `${new URL(options.issuer()).origin}${called.pathname}${called.search}` });
    },
    authorize: authorizer,
    async upstreamHeaders(caller, upstream): Promise<Record<string, string>> {
      const u = byId.get(upstream.id);
      // A local upstream is reached over a private loopback path and has no use for a token.
      if (u === undefined || u.credential.type === 'none' || u.stdio !== undefined) return {};
      if (u.credential.type === 'vault') {
        // Fail closed: no vault, or no credential of this user, and the call never reaches the upstream.
        if (options.vault === undefined) throw new TypeError(`gateway upstream ${u.id}: a vault upstream needs the vault`);
        return { authorization: `Bearer ${await options.vault.accessToken(u.id, { ...(caller.userIss === undefined ? {} : { iss: caller.userIss }), ...(caller.userSub === undefined ? {} : { sub: caller.userSub }) })}` };
      }
      return { authorization: `Bearer ${await options.mintUpstreamToken(caller, u.credential.audience)}` };
    },
    resourceMetadataUrl: (id) => `${options.issuer()}/.well-known/oauth-protected-resource/mcp/${id}`,
    audit: (event) => ctx.auditLog.record(event),
    allowedOrigins: config.allowedOrigins,
    authorizationServers: () => [options.issuer()],
    dpopAlgorithms: options.dpopAlgorithms,
    async inspectResponse(caller, upstreamId, request, response): Promise<JsonRpcResponseMessage> {
      if (!('result' in response)) return response;
      if (request.method === 'tools/call') {
        const name = String((request.params as { name?: unknown } | undefined)?.name ?? '');
        const outcome = await authorizer.filterToolResult(caller, upstreamId, name, response.result);
        if (outcome.kind === 'deny') return { jsonrpc: '2.0', id: response.id, error: { code: outcome.code, message: outcome.message, data: { reason_code: outcome.reasonCode } } };
        return { jsonrpc: '2.0', id: response.id, result: outcome.result };
      }
      if (LIST_METHODS.has(request.method)) {
        return { jsonrpc: '2.0', id: response.id, result: await authorizer.filterListResult(caller, upstreamId, request.method as ListMethod, response.result) };
      }
      return response;
    },
  });
}

/** The REST tool proxy and the Envoy ext_authz check, over the same authentication and decision path. */
function registerRestEnforcement(app: FastifyInstance, options: GatewayServerOptions, decideRequest: ReturnType<typeof createRequestDecider>): void {
  const { config } = options;
  const authenticator: CallerAuthenticator = {
    async authenticate(input) {
      const caller = await options.authenticate({ ...(input.authorization === undefined ? {} : { authorization: input.authorization }), ...(input.dpop === undefined ? {} : { dpop: input.dpop }), method: input.method, url: input.url, resource: input.resource });
      return {
        user: caller.userSub === undefined ? { type: 'Service', id: caller.clientId } : { type: 'User', id: caller.userSub },
        actors: caller.userSub === undefined ? [] : [...caller.actors].reverse().map((id) => ({ type: 'Agent', id })),
        ...(caller.taskId === undefined ? {} : { taskId: caller.taskId }),
        tokenId: caller.mandateJti,
        caller,
      } as AuthenticatedCaller;
    },
  };
  const decider: GatewayDecider = {
    async decide(input) {
      const request = {
        principal: input.caller.user,
        action: input.action,
        resource: input.resource,
        // `arguments` is for the step gate (a task's workflow limits); outside a task Cedar's schema has no place for it.
        context: input.caller.taskId === undefined ? withoutArguments(input.context) : { ...input.context, task: { type: 'Task', id: input.caller.taskId } },
        ...(input.caller.actors.length > 0 ? { delegation: { actors: input.caller.actors } } : {}),
      };
      const audit: RequestAuditContext = { endpoint: `gateway.http${input.http.tool === undefined ? '' : `.${input.http.tool}`}`, requestId: randomUUID(), subject: request.principal, action: request.action, resource: request.resource, actors: input.caller.actors };
      const decided = await decideRequest(request, audit);
      await decided.committed;
      const extra = decided.extra ?? {};
      const approval = extra.approval as { id?: string } | undefined;
      return {
        decision: decided.decision.decision,
        decisionId: decided.decision.decisionId,
        ...(typeof extra.reason_code === 'string' ? { reasonCode: extra.reason_code } : decided.decision.decision === 'deny' ? { reasonCode: 'policy_denied' } : {}),
        ...(decided.decision.reasons.length > 0 ? { reason: decided.decision.reasons.join('; ').slice(0, 500) } : {}),
        ...(approval?.id === undefined ? {} : { approvalId: approval.id }),
      };
    },
  };
  if (Object.keys(config.http).length > 0) {
    registerHttpToolProxy(app, {
      tools: config.http,
      authenticator,
      decider,
      // Read per request (DPoP htu): the issuer is known once the node listens.
      get publicOrigin() {
        return new URL(options.issuer()).origin;
      },
      async credentials(tool, caller): Promise<Record<string, string>> {
        const c = (caller as AuthenticatedCaller & { caller?: GatewayCaller }).caller;
        const t = config.http[tool];
        if (c === undefined || t === undefined) return {};
        return { authorization: `Bearer ${await options.mintUpstreamToken(c, t.upstream)}` };
      },
    });
  }
  if (config.extAuthz.enabled && config.extAuthz.resource !== undefined) {
    registerExtAuthz(app, { rules: config.extAuthz.rules, authenticator, decider, resource: config.extAuthz.resource });
  }
}

function upstreamUrl(u: GatewayConfig['upstreams'][number], local: ReadonlyMap<string, string> | undefined): string {
  const url = u.url ?? local?.get(u.id);
  if (url === undefined) throw new TypeError(`gateway upstream ${u.id}: a stdio upstream must be started before the gateway is registered`);
  return url;
}

function withoutArguments(context: Record<string, unknown>): Record<string, unknown> {
  const { arguments: _ignored, ...rest } = context;
  return rest;
}

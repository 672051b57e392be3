/**
 * The AuthZEN routes: `POST /access/v1/evaluation`, `POST /access/v1/evaluations` and the PDP metadata at
 * `GET /.well-known/authzen-configuration`. HTTP wiring only; the translation is in `authzen.ts`.
 *
 * Order of work on a decision request, each step failing closed: authenticate (before the body is even read;
 * the engine never runs for an unauthenticated caller) → rate limit → parse → translate → decide → write the
 * audit event and wait for its commit → answer. A decision whose audit event cannot be committed is never
 * returned: the request is refused with 503 instead.
 *
 * @see https://openid.net/specs/authorization-api-1_0.html
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isMandateError, PolicyNotLoadedError, StoreUnavailableError, type MandateError } from '../core/errors.ts';
import type { Decision } from '../core/decision.ts';
import type { AuthorizationRequest } from '../policy/types.ts';
import { refusalEvent, type RequestAuditContext } from './audit-events.ts';
import { createRequestDecider, engineFailure } from './decide-request.ts';
import {
  authzenMetadata,
  errorEvaluationResponse,
  expandEvaluations,
  parseEvaluationRequest,
  parseEvaluationsRequest,
  runEvaluations,
  toAuthorizationRequest,
  toEvaluationResponse,
  type AccessEvaluationRequest,
  type AccessEvaluationResponse,
  type SchemaView,
} from './authzen.ts';
import { stateOf, type ServerContext } from './server-context.ts';

/** Paths of the AuthZEN endpoints. */
export const AUTHZEN_PATHS = {
  evaluation: '/access/v1/evaluation',
  evaluations: '/access/v1/evaluations',
  metadata: '/.well-known/authzen-configuration',
} as const;

/** What the caller supplied that the audit event leaves out. */
function redactedPaths(req: AccessEvaluationRequest): string[] {
  const out: string[] = [];
  if (req.subject.properties !== undefined) out.push('subject.properties');
  if (req.resource.properties !== undefined) out.push('resource.properties');
  const { delegation, ...rest } = req.context ?? {};
  if (Object.keys(rest).length > 0) out.push('context');
  const actors = (delegation as { actors?: Array<{ properties?: unknown }> } | undefined)?.actors;
  if (Array.isArray(actors)) actors.forEach((a, i) => a?.properties !== undefined && out.push(`context.delegation.actors[${i}].properties`));
  return out;
}

/** Registers the AuthZEN routes. */
export function registerAuthzenRoutes(app: FastifyInstance, ctx: ServerContext): void {
  let approvalCache: { version: string; ids: ReadonlySet<string> } | undefined;
  const approvalIds = (): ReadonlySet<string> => {
    const info = ctx.engine.current();
    if (!info) return new Set();
    if (approvalCache?.version !== info.version) {
      approvalCache = { version: info.version, ids: new Set(info.policies.filter((p) => p.annotations.approval === 'required').map((p) => p.id)) };
    }
    return approvalCache.ids;
  };

  const activeSchema = (): SchemaView => {
    const set = ctx.engine.activeSet();
    if (!set || !ctx.engine.current()) {
      ctx.metrics.observeDecision('error');
      throw new PolicyNotLoadedError('no valid policy set is loaded; every request is refused until one is');
    }
    return set.schemaInfo;
  };

  const decideRequest = createRequestDecider(ctx);

  /**
   * Translates and decides one evaluation, filling `audit` with what was asked; a request naming a live task goes
   * through the step gate (src/server/decide-request.ts). Resolves the decision, its audit commit, and what to add
   * to the response's context. Throws (input error, engine failure) without recording anything.
   */
  const decideStep = async (
    req: AccessEvaluationRequest,
    _schema: SchemaView,
    audit: RequestAuditContext,
  ): Promise<{ decision: Decision; committed: Promise<void>; extra?: Record<string, unknown> }> => {
    audit.redacted = redactedPaths(req);
    let areq: AuthorizationRequest;
    try {
      areq = toAuthorizationRequest(req, _schema);
      audit.subject = areq.principal;
      audit.action = areq.action;
      audit.resource = areq.resource;
      audit.actors = areq.delegation?.actors ?? [];
    } catch (err) {
      ctx.metrics.observeDecision('error');
      throw err;
    }
    return decideRequest(areq, audit);
  };

  const withExtra = (response: AccessEvaluationResponse, extra: Record<string, unknown> | undefined): AccessEvaluationResponse => {
    if (extra === undefined) return response;
    const base = (response.context ?? {}) as Record<string, unknown>;
    const context: Record<string, unknown> = { ...base, ...extra };
    if (extra.approval !== undefined && typeof base.approval === 'object' && base.approval !== null) {
      context.approval = { ...(base.approval as Record<string, unknown>), ...(extra.approval as Record<string, unknown>) };
    }
    return { ...response, context: context as AccessEvaluationResponse['context'] };
  };

  /** Waits for audit commits; when any failed, the whole answer is withheld and the request refused with 503. */
  const awaitCommits = async (request: FastifyRequest, commits: Promise<void>[]): Promise<void> => {
    const state = stateOf(request);
    const results = await Promise.allSettled(commits);
    state.auditHandled = true;
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed === undefined) return;
    ctx.metrics.countAuditRefused();
    const reason: unknown = failed.reason;
    throw isMandateError(reason) && reason.status === 503
      ? reason
      : new StoreUnavailableError('the audit log cannot record this decision, so it was refused; retry shortly', { cause: reason });
  };

  const toResponse = (decision: Decision) => toEvaluationResponse(decision, { isApprovalPolicy: (id) => approvalIds().has(id) });

  const evaluateSingle = async (request: FastifyRequest, reply: FastifyReply, body: AccessEvaluationRequest, schema: SchemaView) => {
    const { decision, committed, extra } = await decideStep(body, schema, stateOf(request));
    await awaitCommits(request, [committed]);
    return reply.header('cache-control', 'no-store').send(withExtra(toResponse(decision), extra));
  };

  const routeConfig = (endpoint: string) => ({ endpoint, scopes: ['evaluate'], auditRefusals: true, rateLimited: true });

  app.post(AUTHZEN_PATHS.evaluation, { config: routeConfig('authzen.evaluation') }, async (request, reply) => {
    const schema = activeSchema();
    return evaluateSingle(request, reply, parseEvaluationRequest(request.body), schema);
  });

  app.post(AUTHZEN_PATHS.evaluations, { config: routeConfig('authzen.evaluations') }, async (request, reply) => {
    const schema = activeSchema();
    const body = parseEvaluationsRequest(request.body);
    if (body.evaluations === undefined) {
      // §7.1: without `evaluations` the request behaves as a single Access Evaluation request.
      return evaluateSingle(request, reply, parseEvaluationRequest({ subject: body.subject, action: body.action, resource: body.resource, ...(body.context ? { context: body.context } : {}) }), schema);
    }
    const state = stateOf(request);
    const items = expandEvaluations(body);
    const commits: Promise<void>[] = [];
    const refuse = (error: MandateError, audit: RequestAuditContext): AccessEvaluationResponse => {
      const committed = ctx.auditLog.record(refusalEvent(error, audit, { clock: ctx.clock, ids: ctx.ids, policySetVersion: ctx.engine.current()?.version }));
      committed.catch(() => undefined);
      commits.push(committed);
      return errorEvaluationResponse(error);
    };
    const evaluations = await runEvaluations(items, body.options?.evaluations_semantic ?? 'execute_all', async (item, index) => {
      const audit: RequestAuditContext = { endpoint: state.endpoint, requestId: `${state.requestId}#${index}`, ...(state.traceId ? { traceId: state.traceId } : {}), ...(state.clientId ? { clientId: state.clientId } : {}) };
      if (!('subject' in item)) {
        ctx.metrics.observeDecision('error');
        return refuse(item, audit);
      }
      try {
        const { decision, committed, extra } = await decideStep(item, schema, audit);
        commits.push(committed);
        return withExtra(toResponse(decision), extra);
      } catch (err) {
        return refuse(engineFailure(err), audit);
      }
    });
    await awaitCommits(request, commits);
    return reply.header('cache-control', 'no-store').send({ evaluations });
  });

  app.get(AUTHZEN_PATHS.metadata, async (request, reply) => {
    const base = ctx.publicUrl ?? `${request.protocol}://${request.host}`;
    return reply.header('cache-control', 'public, max-age=300').send(authzenMetadata(base));
  });
}

/**
 * The policy admin API: `POST /admin/v1/policies/reload` (scope `policy:reload`) and `GET /admin/v1/policies`
 * (scope `policy:read` or `policy:reload`). Both are authenticated and audited; a reload that does not validate
 * is answered with 400 `ERR_POLICY_INVALID` and its diagnostics while the previous set stays active.
 */
import type { FastifyInstance } from 'fastify';
import { PolicyNotLoadedError, PolicySetInvalidError, StoreUnavailableError } from '../core/errors.ts';
import { adminEvent } from './audit-events.ts';
import { formatDiagnostic } from './reload-policies.ts';
import { stateOf, type ServerContext } from './server-context.ts';

/** Paths of the admin endpoints. */
export const ADMIN_PATHS = {
  policies: '/admin/v1/policies',
  reload: '/admin/v1/policies/reload',
} as const;

/** Registers the admin routes. */
export function registerAdminRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post(ADMIN_PATHS.reload, { config: { endpoint: 'admin.policies.reload', scopes: ['policy:reload'], auditRefusals: true, allowEmptyBody: true } }, async (request, reply) => {
    const state = stateOf(request);
    const outcome = await ctx.reloadPolicies({
      source: 'admin-api',
      ...(state.clientId === undefined ? {} : { actor: state.clientId }),
      ...(state.traceId === undefined ? {} : { traceId: state.traceId }),
      requestId: state.requestId,
    });
    // The reload wrote its own event (policy.load / policy.reject); no second, refusal event.
    state.auditHandled = true;
    if (!outcome.audited) {
      ctx.metrics.countAuditRefused();
      throw new StoreUnavailableError(
        `the policy set was ${outcome.ok ? 'loaded' : 'refused'}, but the audit log could not record it; check the store`,
        { cause: outcome.auditError },
      );
    }
    if (!outcome.ok) {
      if (outcome.error instanceof PolicySetInvalidError) {
        throw new PolicySetInvalidError(outcome.error.description, {
          cause: outcome.error,
          extra: { ...(outcome.error.extra ?? {}), activeVersion: outcome.activeVersion ?? null },
        });
      }
      throw outcome.error;
    }
    return reply.header('cache-control', 'no-store').send({
      version: outcome.info.version,
      changed: outcome.changed,
      loadedAt: new Date(outcome.info.loadedAt).toISOString(),
      policies: outcome.info.policies.length,
      warnings: outcome.info.warnings.map(formatDiagnostic),
    });
  });

  app.get(ADMIN_PATHS.policies, { config: { endpoint: 'admin.policies.read', scopes: ['policy:read', 'policy:reload'], auditRefusals: true } }, async (request, reply) => {
    const state = stateOf(request);
    const info = ctx.engine.current();
    if (!info) throw new PolicyNotLoadedError('no valid policy set is loaded');
    state.auditHandled = true;
    try {
      await ctx.auditLog.record(adminEvent('policies.read', state, { clock: ctx.clock, ids: ctx.ids, policySetVersion: info.version }));
    } catch (err) {
      ctx.metrics.countAuditRefused();
      throw new StoreUnavailableError('the audit log cannot record this request, so it was refused; retry shortly', { cause: err });
    }
    return reply.header('cache-control', 'no-store').send({
      version: info.version,
      loadedAt: new Date(info.loadedAt).toISOString(),
      entityCount: info.entityCount,
      policies: info.policies.map((p) => ({ id: p.id, effect: p.effect, file: p.file, line: p.line, source: `${p.file}:${p.line}` })),
      warnings: info.warnings.map(formatDiagnostic),
    });
  });
}

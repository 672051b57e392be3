/**
 * The principal registry admin API:
 * - `GET /admin/v1/principals` and `GET /admin/v1/principals/:id` (scope `principals:read` or `principals:write`)
 * - `POST /admin/v1/principals` registers an agent or service (scope `principals:write`), 201
 * - `POST /admin/v1/principals/:id/status` sets its status (`active`, `suspended`, `quarantined`, `retired`); a
 *   status other than `active` also revokes the agent's open tasks (reason `agent_suspended`, …)
 *
 * Every call is authenticated and audited; a change commits in the same transaction as its audit event. A
 * registration is validated whole (every problem listed); a taken id or credential is 409 `ERR_CONFLICT`.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { createAuditEvent } from '../audit/audit-event.ts';
import { InvalidRequestError, NotFoundError, StoreUnavailableError } from '../core/errors.ts';
import { PRINCIPAL_ID, PRINCIPAL_STATUSES, PrincipalRegistrationSchema, registrationProblems } from '../identity/registry.ts';
import type { PrincipalRecord } from '../store/store.ts';
import { adminEvent } from './audit-events.ts';
import { stateOf, type ServerContext } from './server-context.ts';

/** Paths of the registry endpoints. */
export const PRINCIPAL_PATHS = {
  list: '/admin/v1/principals',
  one: '/admin/v1/principals/:id',
  status: '/admin/v1/principals/:id/status',
} as const;

const StatusChange = z.strictObject({
  status: z.enum(PRINCIPAL_STATUSES, { error: `one of: ${PRINCIPAL_STATUSES.join(', ')}` }),
  reason: z.string().min(1).max(500).optional(),
});

/** A registry record as the API shows it (times as ISO 8601). */
export function principalView(p: PrincipalRecord): Record<string, unknown> {
  return {
    id: p.id,
    kind: p.kind,
    name: p.name,
    owner: p.owner,
    ...(p.mode === undefined ? {} : { mode: p.mode }),
    workflows: p.workflows,
    audiences: p.audiences,
    apiScopes: p.apiScopes,
    credentials: p.credentials,
    status: p.status,
    dpop: p.dpop,
    source: p.source,
    createdAt: new Date(p.createdAt).toISOString(),
    updatedAt: new Date(p.updatedAt).toISOString(),
    lastUsedAt: p.lastUsedAt === undefined ? null : new Date(p.lastUsedAt).toISOString(),
  };
}

function idParam(params: unknown): string {
  const id = (params as { id?: unknown }).id;
  if (typeof id !== 'string' || !PRINCIPAL_ID.test(id)) throw new InvalidRequestError('the principal id in the path is not a valid id');
  return id;
}

/** Registers the registry routes. */
export function registerPrincipalRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const deps = () => ({ clock: ctx.clock, ids: ctx.ids });

  // Reads are audited too (who looked at the inventory), group-committed like decisions.
  const auditRead = async (operation: string, request: Parameters<typeof stateOf>[0], data: Record<string, unknown> = {}) => {
    const state = stateOf(request);
    state.auditHandled = true;
    try {
      await ctx.auditLog.record(adminEvent(operation, state, deps(), data));
    } catch (err) {
      ctx.metrics.countAuditRefused();
      throw new StoreUnavailableError('the audit log cannot record this request, so it was refused; retry shortly', { cause: err });
    }
  };

  app.get(PRINCIPAL_PATHS.list, { config: { endpoint: 'admin.principals.list', scopes: ['principals:read', 'principals:write'], auditRefusals: true } }, async (request, reply) => {
    const list = await ctx.store.principals.list();
    await auditRead('principals.list', request, { count: list.length });
    return reply.header('cache-control', 'no-store').send({ principals: list.map(principalView) });
  });

  app.get(PRINCIPAL_PATHS.one, { config: { endpoint: 'admin.principals.read', scopes: ['principals:read', 'principals:write'], auditRefusals: true } }, async (request, reply) => {
    const id = idParam(request.params);
    const p = await ctx.store.principals.get(id);
    if (p === undefined) throw new NotFoundError(`no principal ${id} is registered`);
    await auditRead('principals.read', request, { principal: id });
    return reply.header('cache-control', 'no-store').send(principalView(p));
  });

  app.post(PRINCIPAL_PATHS.list, { config: { endpoint: 'admin.principals.create', scopes: ['principals:write'], auditRefusals: true } }, async (request, reply) => {
    const parsed = PrincipalRegistrationSchema.safeParse(request.body);
    if (!parsed.success) {
      const problems = registrationProblems(parsed.error);
      throw new InvalidRequestError(`the registration is invalid: ${problems.join('; ')}`, { extra: { problems } });
    }
    const state = stateOf(request);
    const now = ctx.clock.now();
    const record: PrincipalRecord = { ...parsed.data, source: 'api', createdAt: now, updatedAt: now };
    await ctx.store.principals.create(record, adminEvent('principals.create', state, deps(), { principal: record.id, kind: record.kind, owner: record.owner }));
    state.auditHandled = true;
    return reply.code(201).header('cache-control', 'no-store').header('location', `${PRINCIPAL_PATHS.list}/${record.id}`).send(principalView(record));
  });

  app.post(PRINCIPAL_PATHS.status, { config: { endpoint: 'admin.principals.status', scopes: ['principals:write'], auditRefusals: true } }, async (request, reply) => {
    const id = idParam(request.params);
    const parsed = StatusChange.safeParse(request.body);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
      throw new InvalidRequestError(`the status change is invalid: ${problems.join('; ')}`, { extra: { problems } });
    }
    const state = stateOf(request);
    const { status, reason } = parsed.data;
    const updated = await ctx.store.principals.update(
      id,
      { status },
      ctx.clock.now(),
      adminEvent(`principals.status.${status}`, state, deps(), { principal: id, status, ...(reason === undefined ? {} : { reason }) }),
    );
    if (updated === undefined) throw new NotFoundError(`no principal ${id} is registered`);
    state.auditHandled = true;
    // A stopped agent keeps nothing: its open tasks are revoked (with their mandates) before the answer, so
    // the very next call of a task it ran is denied. Services run no tasks; the selector finds none for them.
    if (status !== 'active') {
      await ctx.taskAdmin.closeAgentTasks(id, status, { actor: state.clientId ?? 'unknown', endpoint: state.endpoint, requestId: state.requestId, ...(state.traceId === undefined ? {} : { traceId: state.traceId }) }, reason);
    }
    return reply.header('cache-control', 'no-store').send(principalView(updated));
  });
}

/** The audit event of a registry change made from the configuration file at start-up. */
export function configPrincipalEvent(operation: string, principalId: string, deps: { clock: { now(): number }; ids?: { next(): string } }) {
  return createAuditEvent({ type: 'admin', outcome: 'success', actor: 'config', data: { operation, principal: principalId, source: 'mandate.yaml' } }, deps);
}

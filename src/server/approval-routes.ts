/**
 * Human approval (step-up) of a step inside a task:
 * - `GET /approvals/v1/:id` — a PEP polls the request it got in a decision's `context.approval` (scope `evaluate`)
 * - `GET /approvals/v1?status=pending` — an approver lists what waits for a person
 * - `POST /approvals/v1/:id/decision` `{ "decision": "approve" | "deny", "reason"?: "…" }` — an approver decides
 *
 * Approvers are people: a user authenticated by an access token from a trusted IdP (`Authorization: Bearer`)
 * whose roles claim holds `approver`. An approval is bound to one exact call (action, resource and the hash of
 * its arguments), expires, and is used once — by repeating the call with `context.approval_id`. Every request,
 * decision and refusal is audited.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { createAuditEvent } from '../audit/audit-event.ts';
import { ConflictError, ForbiddenError, InvalidRequestError, NotFoundError, StoreUnavailableError, UnauthenticatedError } from '../core/errors.ts';
import type { AuthenticatedUser } from '../identity/types.ts';
import type { ApprovalRecord, ApprovalStore } from '../store/store.ts';
import { stateOf, type ServerContext } from './server-context.ts';

/** Paths of the approval endpoints. */
export const APPROVAL_PATHS = {
  list: '/approvals/v1',
  one: '/approvals/v1/:id',
  decision: '/approvals/v1/:id/decision',
} as const;

/** What the approval routes need besides the server context. */
export interface ApprovalRoutesDeps {
  approvals: ApprovalStore;
  /** Verifies a user's access token from a trusted IdP (rejects with an `InvalidTokenError`). */
  authenticateUser(token: string): Promise<AuthenticatedUser>;
}

const ID = /^apr_[A-Za-z0-9-]{1,80}$/;
const Decision = z.strictObject({ decision: z.enum(['approve', 'deny'], { error: 'approve or deny' }), reason: z.string().min(1).max(500).optional() });
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** The status a person sees at `nowMs`: an undecided request whose deadline passed can no longer be decided. */
export function approvalStatus(a: ApprovalRecord, nowMs: number): ApprovalRecord['status'] {
  return a.status === 'pending' && a.expiresAt <= nowMs ? 'expired' : a.status;
}

/** An approval as the API (and `mandate approvals --json`) shows it: times as ISO 8601, never the arguments. */
export function approvalView(a: ApprovalRecord, nowMs: number): Record<string, unknown> {
  return {
    id: a.id,
    status: approvalStatus(a, nowMs),
    ...(a.taskId === undefined ? {} : { task_id: a.taskId }),
    user: a.userSub,
    actors: a.actors,
    action: a.action,
    resource: a.resource,
    summary: a.summary,
    created_at: new Date(a.createdAt).toISOString(),
    expires_at: new Date(a.expiresAt).toISOString(),
    ...(a.decidedAt === undefined ? {} : { decided_at: new Date(a.decidedAt).toISOString(), decided_by: a.decidedBy }),
    ...(a.reason === undefined ? {} : { reason: a.reason }),
  };
}

function idParam(params: unknown): string {
  const id = (params as { id?: unknown }).id;
  if (typeof id !== 'string' || !ID.test(id)) throw new InvalidRequestError('the approval id in the path is not a valid id');
  return id;
}

/** Registers the approval routes. */
export function registerApprovalRoutes(app: FastifyInstance, ctx: ServerContext, deps: ApprovalRoutesDeps): void {
  /** The approver: a person with the approver role, by their IdP access token. */
  const approver = async (request: FastifyRequest): Promise<AuthenticatedUser> => {
    const header = request.headers.authorization;
    const token = typeof header === 'string' ? BEARER.exec(header)?.[1] : undefined;
    if (token === undefined) throw new UnauthenticatedError('an approver authenticates with their access token: Authorization: Bearer <token>', { credentialMissing: header === undefined });
    const user = await deps.authenticateUser(token);
    const state = stateOf(request);
    state.clientId = `user:${user.subject}`;
    if (!user.roles.includes('approver')) throw new ForbiddenError('only a person with the approver role may decide approvals');
    return user;
  };

  const audit = async (request: FastifyRequest, event: Parameters<typeof createAuditEvent>[0]) => {
    const state = stateOf(request);
    state.auditHandled = true;
    try {
      await ctx.auditLog.record(createAuditEvent(event, { clock: ctx.clock, ids: ctx.ids }));
    } catch (err) {
      ctx.metrics.countAuditRefused();
      throw new StoreUnavailableError('the audit log cannot record this request, so it was refused; retry shortly', { cause: err });
    }
  };

  app.get(APPROVAL_PATHS.one, { config: { endpoint: 'approvals.read', scopes: ['evaluate'], auditRefusals: true } }, async (request, reply) => {
    const id = idParam(request.params);
    const a = await deps.approvals.get(id);
    if (a === undefined) throw new NotFoundError(`no approval ${id}`);
    await audit(request, { type: 'admin', outcome: 'success', actor: stateOf(request).clientId ?? 'unknown', resource: `approval:${id}`, data: { operation: 'approvals.read', approvalId: id } });
    return reply.header('cache-control', 'no-store').send(approvalView(a, ctx.clock.now()));
  });

  app.get(APPROVAL_PATHS.list, { config: { endpoint: 'approvals.list', auditRefusals: true } }, async (request, reply) => {
    const user = await approver(request);
    const status = (request.query as { status?: unknown }).status;
    if (status !== undefined && !['pending', 'approved', 'denied', 'expired', 'used'].includes(String(status))) {
      throw new InvalidRequestError('status must be one of pending, approved, denied, expired, used');
    }
    const now = ctx.clock.now();
    const list = (await deps.approvals.list({ ...(status === undefined ? {} : { status: status as ApprovalRecord['status'] }), limit: 500 })).filter((a) => status !== 'pending' || a.expiresAt > now);
    await audit(request, { type: 'admin', outcome: 'success', actor: `user:${user.subject}`, data: { operation: 'approvals.list', count: list.length } });
    return reply.header('cache-control', 'no-store').send({ approvals: list.map((a) => approvalView(a, now)) });
  });

  app.post(APPROVAL_PATHS.decision, { config: { endpoint: 'approvals.decide', auditRefusals: true } }, async (request, reply) => {
    const user = await approver(request);
    const id = idParam(request.params);
    const parsed = Decision.safeParse(request.body);
    if (!parsed.success) throw new InvalidRequestError(`the decision is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`);
    const existing = await deps.approvals.get(id);
    if (existing === undefined) throw new NotFoundError(`no approval ${id}`);
    const now = ctx.clock.now();
    const status = parsed.data.decision === 'approve' ? 'approved' : 'denied';
    const by = `${user.issuer} ${user.subject}`;
    const decided = await deps.approvals.decide(
      id,
      { status, by, atMs: now, ...(parsed.data.reason === undefined ? {} : { reason: parsed.data.reason }) },
      createAuditEvent(
        {
          type: 'approval.decide',
          outcome: 'success',
          actor: `user:${user.subject}`,
          subject: `User::"${existing.userSub}"`,
          resource: `approval:${id}`,
          ...(parsed.data.reason === undefined ? {} : { reasons: [parsed.data.reason] }),
          data: { approvalId: id, decision: status, ...(existing.taskId === undefined ? {} : { taskId: existing.taskId }) },
        },
        { clock: ctx.clock, ids: ctx.ids },
      ),
    );
    if (decided === undefined) throw new ConflictError(`approval ${id} is no longer pending (it is ${approvalStatus(existing, now)})`);
    stateOf(request).auditHandled = true;
    return reply.header('cache-control', 'no-store').send(approvalView(decided, now));
  });
}

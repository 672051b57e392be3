/**
 * One decision, the same way for every enforcement point (the AuthZEN API, the gateway): a request that names a
 * live task goes through the step gate first (src/tasks/step-gate.ts) — held to its task and workflow, then
 * decided by policy, recorded, or turned into a pending approval — and every other request is decided by policy.
 * Each decision's audit event is recorded; the caller awaits `committed` before answering (a decision whose event
 * cannot be written is never returned).
 */
import { randomUUID } from 'node:crypto';
import type { Decision } from '../core/decision.ts';
import { isMandateError, PolicyEngineError, type MandateError } from '../core/errors.ts';
import type { AuthorizationRequest } from '../policy/types.ts';
import { decisionEvent, type RequestAuditContext } from './audit-events.ts';
import { TASK_APPROVAL_HOW } from './authzen.ts';
import type { ServerContext } from './server-context.ts';

/** What a decision came to, with what an AuthZEN response adds to its context (reason_code, approval). */
export interface DecidedRequest {
  decision: Decision;
  /** The audit event's commit; undefined for a dry run (nothing was recorded). */
  committed: Promise<void>;
  extra?: Record<string, unknown>;
}

/** Options of one decision. */
export interface DecideOptions {
  /**
   * What-if: no step is recorded, no approval created, no violation rule applied, no audit event written (the
   * caller audits the view it builds from many such decisions, e.g. a filtered tools/list).
   */
  dryRun?: boolean;
}

/** Engine failures that are not the caller's fault become `PolicyEngineError`; input errors stay as they are. */
export function engineFailure(err: unknown): MandateError {
  if (isMandateError(err)) return err;
  return new PolicyEngineError('the policy engine failed; the request is denied', { cause: err, detail: err instanceof Error ? err.message : String(err) });
}

/** Builds the decider over the server context's engine, step gate and audit log. */
export function createRequestDecider(ctx: Pick<ServerContext, 'engine' | 'stepGate' | 'auditLog' | 'metrics' | 'clock' | 'ids'>) {
  const done: Promise<void> = Promise.resolve();

  const finish = (decision: Decision, audit: RequestAuditContext, dryRun: boolean): DecidedRequest => {
    ctx.metrics.observeDecision(decision.decision, decision.durationMicros);
    if (dryRun) return { decision, committed: done };
    const committed = ctx.auditLog.record(decisionEvent(decision, audit, { clock: ctx.clock, ids: ctx.ids }));
    // Observed here so that a rejection is never unhandled; callers await `committed` themselves.
    committed.catch(() => undefined);
    return { decision, committed };
  };

  /** A deny decided before policy (a step outside its task's workflow, an ended task): audited like any decision. */
  const refused = (code: string, message: string): Decision => ({
    decision: 'deny',
    decisionId: ctx.ids ? ctx.ids.next() : randomUUID(),
    policySetVersion: ctx.engine.current()?.version ?? 'none',
    principals: [],
    reasons: [`${code}: ${message}`],
    errors: [],
    durationMicros: 0,
  });

  const decideByPolicy = (request: AuthorizationRequest): Decision => {
    try {
      return ctx.engine.decide(request);
    } catch (err) {
      ctx.metrics.observeDecision('error');
      throw engineFailure(err);
    }
  };

  /**
   * Decides one translated request; `audit` must already name the subject, action, resource and actors. Throws
   * (input error, engine failure) without recording anything.
   */
  return async function decideRequest(request: AuthorizationRequest, audit: RequestAuditContext, options: DecideOptions = {}): Promise<DecidedRequest> {
    const dryRun = options.dryRun === true;
    const gate = ctx.stepGate;
    const taskRef = (request.context as { task?: unknown } | undefined)?.task;
    if (gate === undefined || taskRef === undefined) return finish(decideByPolicy(request), audit, dryRun);
    const plan = await gate.prepare(request, { dryRun });
    if (plan === undefined) return finish(decideByPolicy(request), audit, dryRun);
    if ('refusal' in plan) return { ...finish(refused(plan.refusal.code, plan.refusal.message), audit, dryRun), extra: { reason_code: plan.refusal.code } };
    const decision = decideByPolicy(plan.request);
    if (dryRun) return finish(decision.decision !== 'deny' && plan.needsApproval ? { ...decision, decision: 'approval_required' } : decision, audit, true);
    const outcome = await gate.settle(plan, decision, { ...(audit.clientId === undefined ? {} : { actor: audit.clientId }), ...(audit.traceId === undefined ? {} : { traceId: audit.traceId }) });
    switch (outcome.kind) {
      case 'allow':
        // An approval used for this exact call turns approval_required into allow, on the record.
        return finish(decision.decision === 'allow' ? decision : { ...decision, decision: 'allow', reasons: [...decision.reasons, `approved: ${plan.approvalId ?? ''}`] }, audit, false);
      case 'deny':
        return finish(decision, audit, false);
      case 'refused':
        return { ...finish(refused(outcome.refusal.code, outcome.refusal.message), audit, false), extra: { reason_code: outcome.refusal.code } };
      case 'approval_pending':
        return {
          ...finish({ ...decision, decision: 'approval_required', reasons: [...decision.reasons, `approval requested: ${outcome.approval.id}`] }, audit, false),
          extra: {
            approval: {
              required: true,
              id: outcome.approval.id,
              status: 'pending',
              expires_at: new Date(outcome.approval.expiresAt).toISOString(),
              poll: `/approvals/v1/${outcome.approval.id}`,
              how: TASK_APPROVAL_HOW,
            },
          },
        };
    }
  };
}

/** The decider's type. */
export type RequestDecider = ReturnType<typeof createRequestDecider>;

/**
 * The step gate: every decision asked for inside a live task (an AuthZEN request whose `context.task` names one
 * of Mandate's tasks) is first held to the task and its workflow — open, within duration and idle time, the
 * user and agent of the task, the step budget and rate, the action, tool, dataset and sensitivity ceiling, the
 * tool call's arguments (JSON Schema) — then decided by policy with the task's own Task and Workflow entities
 * (authoritative over anything the caller says) and the step number. An allowed step is recorded; an
 * out-of-plan step is denied with a stable reason code and the workflow's violation rule applies (`revoke` the
 * task, optionally quarantine the agent). A step that needs a person's approval creates an approval request
 * bound to the exact call; the same call with the approval's id, once approved, goes through once.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createAuditEvent, type NewAuditEventV1 } from '../audit/audit-event.ts';
import type { Decision, EntityRef } from '../core/decision.ts';
import type { Clock, IdGenerator } from '../core/ports.ts';
import type { AuthorizationRequest, EntityJson } from '../policy/types.ts';
import type { ApprovalRecord, ApprovalStore, PrincipalStore, TaskRecord, TaskStore } from '../store/store.ts';
import { checkPlan, checkStep, checkTaskState, nextTaskState, type ResourceLookup, type StepViolationCode } from './step-check.ts';
import { stepState, taskDecisionInput, taskEndReason } from './task-grants.ts';
import { canonicalJson, type Workflow } from './workflows.ts';

/** How long an approval request waits for a person, ms. */
export const APPROVAL_TTL_MS = 15 * 60_000;

/** Why a step was refused before policy: a workflow violation or a task that cannot take steps. */
export interface StepRefusal {
  readonly code: StepViolationCode | 'task_mismatch' | 'workflow_changed' | 'workflow_removed' | 'approval_invalid' | 'agent_inactive';
  readonly message: string;
}

/** A step that passed the task's checks, ready for the policy decision. */
export interface StepPlan {
  readonly task: TaskRecord;
  readonly workflow: Workflow;
  /** The request to decide: the caller's, with the task's entities and context. */
  readonly request: AuthorizationRequest;
  /** The workflow asks for a person's approval of this step. */
  readonly needsApproval: boolean;
  /** The approval the caller presents for this exact call, if any. */
  readonly approvalId?: string;
  readonly argsHash: string;
}

/** What the gate concluded, after the policy decision. */
export type StepOutcome =
  | { readonly kind: 'allow' }
  | { readonly kind: 'deny' }
  | { readonly kind: 'approval_pending'; readonly approval: ApprovalRecord }
  | { readonly kind: 'refused'; readonly refusal: StepRefusal };

/** Dependencies of the gate. */
export interface StepGateDeps {
  tasks: TaskStore;
  approvals: ApprovalStore;
  principals: Pick<PrincipalStore, 'get' | 'update'>;
  workflows(): ReadonlyMap<string, Workflow>;
  lookup?: ResourceLookup;
  /** Closes a task (revocation path shared with the token service). */
  closeTask(task: TaskRecord, status: 'ended' | 'revoked', reason: string, actor: string): Promise<void>;
  /** Revokes every open task of an agent (it was quarantined). */
  closeAgentTasks(agentId: string, reason: string): Promise<void>;
  clock: Clock;
  ids?: IdGenerator;
}

function isRef(v: unknown): v is EntityRef {
  return typeof v === 'object' && v !== null && typeof (v as EntityRef).type === 'string' && typeof (v as EntityRef).id === 'string';
}

/**
 * The hash an approval is bound to: the task (so its user and agent), the action, the resource and the exact
 * arguments. An approval given in one task is useless in any other.
 */
export function callHash(taskId: string, action: string, resource: EntityRef, args: unknown): string {
  return createHash('sha256').update(canonicalJson({ task: taskId, action, resource, args: args ?? {} })).digest('base64url');
}

/** The step check without arguments, for dry runs: the task's state and the plan (action, tool, data). */
function whatIf(workflow: Workflow, task: TaskRecord, step: Parameters<typeof checkPlan>[1], nowMs: number): ReturnType<typeof checkStep> {
  const state = checkTaskState(workflow, stepState(task), nowMs);
  if (state !== undefined) return state;
  const plan = checkPlan(workflow, step);
  return plan.ok ? { ok: true, needsApproval: plan.needsApproval, step: task.stepsTaken + 1 } : plan;
}

/** Builds the step gate. */
export function createStepGate(deps: StepGateDeps) {
  const event = (e: Parameters<typeof createAuditEvent>[0]): NewAuditEventV1 => createAuditEvent(e, { clock: deps.clock, ids: deps.ids });

  /** Applies the workflow's violation rule. Never throws into the decision: a failure is logged by the caller. */
  const onViolation = async (task: TaskRecord, workflow: Workflow, code: string): Promise<void> => {
    if (workflow.onViolation.action !== 'revoke') return;
    await deps.closeTask(task, 'revoked', `violation:${code}`, 'mandate');
    if (workflow.onViolation.quarantineAgent) {
      const now = deps.clock.now();
      await deps.principals.update(task.agentId, { status: 'quarantined' }, now, event({ type: 'admin', outcome: 'success', actor: 'mandate', resource: `principal:${task.agentId}`, reasons: [`workflow ${workflow.id} violation ${code} in task ${task.id}`], data: { operation: 'principals.status.quarantined', principal: task.agentId, taskId: task.id } }));
      // A quarantined agent holds nothing: its other open tasks go too.
      await deps.closeAgentTasks(task.agentId, 'agent_quarantined');
    }
  };

  return {
    /**
     * Prepares a request that names a live task. Undefined when `context.task` is absent or not one of Mandate's
     * tasks (a task of the policy directory's entities is decided as before). A refusal is final: the caller
     * denies with its code (the violation rule has been applied).
     */
    async prepare(request: AuthorizationRequest, options: { dryRun?: boolean } = {}): Promise<StepPlan | { refusal: StepRefusal } | undefined> {
      const dryRun = options.dryRun === true;
      const ctx = request.context ?? {};
      const ref = (ctx as Record<string, unknown>).task;
      if (!isRef(ref) || ref.type !== 'Task') return undefined;
      const task = await deps.tasks.get(ref.id);
      if (task === undefined) return undefined;
      const now = deps.clock.now();
      if (task.status !== 'open') return { refusal: { code: 'task_not_open', message: `the task has ended (${task.endReason ?? task.status})` } };
      const workflow = deps.workflows().get(task.workflowId);
      const end = taskEndReason(task, workflow, now);
      if (end !== undefined || workflow === undefined) {
        const code = (end?.code ?? 'workflow_removed') as StepRefusal['code'];
        if (!dryRun) await deps.closeTask(task, code === 'task_expired' || code === 'task_idle' ? 'ended' : 'revoked', code, 'mandate');
        return { refusal: { code, message: end?.message ?? 'the workflow no longer exists' } };
      }
      // The agent must still be registered and active: a stopped agent's task takes no further step.
      const agent = await deps.principals.get(task.agentId);
      if (agent === undefined || agent.status !== 'active') {
        if (!dryRun) await deps.closeTask(task, 'revoked', `agent_${agent?.status ?? 'unregistered'}`, 'mandate');
        return { refusal: { code: 'agent_inactive', message: `the task's agent is ${agent?.status ?? 'no longer registered'}` } };
      }
      // The request must be the task's: its user as principal, its agent acting.
      const actors = request.delegation?.actors ?? [];
      if (request.principal.type !== 'User' || request.principal.id !== task.userSub || !actors.some((a) => a.type === 'Agent' && a.id === task.agentId)) {
        return { refusal: { code: 'task_mismatch', message: `the task belongs to User::"${task.userSub}" acted for by Agent::"${task.agentId}"` } };
      }
      const { arguments: rawArgs, approval_id: approvalId, ...rest } = ctx as Record<string, unknown>;
      const args = rawArgs ?? rest.args;
      const sensitivityLevel = deps.lookup?.sensitivityOf(request.resource);
      const datasetId = request.resource.type === 'Record' ? deps.lookup?.datasetOf?.(request.resource) : undefined;
      const step = {
        action: request.action,
        resource: request.resource,
        ...(args === undefined ? {} : { args }),
        ...(sensitivityLevel === undefined ? {} : { sensitivityLevel }),
        ...(datasetId === undefined ? {} : { datasetId }),
      };
      // A what-if question (may this tool be listed?) has no arguments yet: the task and the plan only.
      const checked = dryRun ? whatIf(workflow, task, step, now) : checkStep(workflow, stepState(task), step, now);
      if (!checked.ok) {
        // A what-if question (a filtered list) is no violation: only an attempted step is.
        if (!dryRun) await onViolation(task, workflow, checked.code);
        return { refusal: { code: checked.code, message: checked.message } };
      }
      const input = taskDecisionInput(task, workflow);
      const callerEntities = (request.entities ?? []).filter((e: EntityJson) => !(e.uid.type === 'Task' && e.uid.id === task.id) && !(e.uid.type === 'Workflow' && e.uid.id === workflow.id));
      return {
        task,
        workflow,
        needsApproval: checked.needsApproval,
        ...(typeof approvalId === 'string' ? { approvalId } : {}),
        argsHash: callHash(task.id, request.action, request.resource, args),
        request: { ...request, context: { ...rest, ...input.context, step: checked.step }, entities: [...callerEntities, ...input.entities] },
      };
    },

    /**
     * Settles a decided step: records an allowed step; turns an approval requirement into a pending approval
     * request (or consumes the approval presented for this exact call). Resolves what to answer.
     */
    async settle(plan: StepPlan, decision: Decision, who: { actor?: string; traceId?: string }): Promise<StepOutcome> {
      if (decision.decision === 'deny') return { kind: 'deny' };
      const approvalNeeded = decision.decision === 'approval_required' || plan.needsApproval;
      const now = deps.clock.now();
      if (approvalNeeded) {
        if (plan.approvalId !== undefined) {
          const used = await deps.approvals.consume(plan.approvalId, plan.argsHash, now, event({ type: 'approval.decide', outcome: 'success', ...(who.actor === undefined ? {} : { actor: who.actor }), resource: `approval:${plan.approvalId}`, data: { operation: 'approval.use', approvalId: plan.approvalId, taskId: plan.task.id } }));
          if (!used) return { kind: 'refused', refusal: { code: 'approval_invalid', message: 'the approval is not approved, already used, expired, or for another call' } };
        } else {
          const approval: ApprovalRecord = {
            id: `apr_${deps.ids ? deps.ids.next() : randomUUID()}`,
            taskId: plan.task.id,
            userIss: plan.task.userIss,
            userSub: plan.task.userSub,
            actors: (plan.request.delegation?.actors ?? []).map((a) => a.id).reverse(),
            action: plan.request.action,
            resource: plan.request.resource,
            argsHash: plan.argsHash,
            summary: `${plan.request.action} ${plan.request.resource.type}::"${plan.request.resource.id}" in task ${plan.task.id} (${plan.workflow.id}) for ${plan.task.userSub}`.slice(0, 500),
            status: 'pending',
            createdAt: now,
            expiresAt: now + APPROVAL_TTL_MS,
          };
          await deps.approvals.create(approval, event({ type: 'approval.request', outcome: 'success', ...(who.actor === undefined ? {} : { actor: who.actor }), subject: `User::"${plan.task.userSub}"`, resource: `approval:${approval.id}`, ...(who.traceId === undefined ? {} : { traceId: who.traceId }), data: { approvalId: approval.id, taskId: plan.task.id, action: approval.action, target: `${approval.resource.type}::${approval.resource.id}` } }));
          return { kind: 'approval_pending', approval };
        }
      }
      // Record the step; a concurrent step of the same task is retried against fresh counters.
      let task = plan.task;
      for (let attempt = 0; attempt < 5; attempt++) {
        const next = nextTaskState(stepState(task), now, plan.workflow);
        if (await deps.tasks.recordStep(task.id, task.stepsTaken, { stepsTaken: next.stepsTaken, recentSteps: next.recentStepTimes, lastActivityAt: now })) return { kind: 'allow' };
        const fresh = await deps.tasks.get(task.id);
        if (fresh === undefined || fresh.status !== 'open') return { kind: 'refused', refusal: { code: 'task_not_open', message: 'the task ended during this step' } };
        const refused = checkTaskState(plan.workflow, stepState(fresh), now);
        if (refused !== undefined) return { kind: 'refused', refusal: { code: refused.code, message: refused.message } };
        task = fresh;
      }
      return { kind: 'refused', refusal: { code: 'rate_limit', message: 'too many concurrent steps in this task; retry' } };
    },
  };
}

/** The step gate's type. */
export type StepGate = ReturnType<typeof createStepGate>;

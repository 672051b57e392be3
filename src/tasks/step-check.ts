/**
 * The step check: is this step of a task inside the task's workflow? Run at every step before the policy
 * decision (DESIGN.md "The path of one tool call": tasks/ then policy/). Pure: the workflow, the task's state,
 * the step and the time are passed in; nothing is read or written here.
 *
 * Order of the checks: the task (open, workflow not retired, within its duration, not idle, within its step
 * budget and rate), then the plan (action, tool, dataset, sensitivity, arguments). The first failing check
 * decides and gives a stable reason code.
 */
import type { EntityRef } from '../core/decision.ts';
import { DATA_RESOURCE_TYPES, MAX_RATE_COUNT, type Workflow } from './workflows.ts';

/**
 * Why a step (or a scope) is outside its task's workflow. Codes are public API: add, never rename.
 * - `task_not_open`: the task is closed, revoked or expired.
 * - `workflow_retired`: the task's workflow has been retired.
 * - `task_expired`: the task has run for its workflow's `duration.maxSeconds`.
 * - `task_idle`: no step for `duration.idleSeconds`.
 * - `step_limit`: the task has taken `steps.max` steps.
 * - `rate_limit`: `steps.rate.count` steps within the last `steps.rate.perSeconds` seconds.
 * - `action_not_in_workflow`: the action is not among the workflow's `actions`.
 * - `tool_not_in_workflow`: the tool is not among the workflow's `tools`.
 * - `dataset_not_in_workflow`: the workflow lists `data.datasets` and the data is not in one of them.
 * - `sensitivity_ceiling`: the data is above `data.maxSensitivityLevel`, or its level is unknown.
 * - `args_invalid`: the tool call's arguments do not satisfy the tool's `args` schema.
 */
export type StepViolationCode =
  | 'task_not_open'
  | 'workflow_retired'
  | 'task_expired'
  | 'task_idle'
  | 'step_limit'
  | 'rate_limit'
  | 'action_not_in_workflow'
  | 'tool_not_in_workflow'
  | 'dataset_not_in_workflow'
  | 'sensitivity_ceiling'
  | 'args_invalid';

/** Every {@link StepViolationCode}, for tests and documentation. */
export const STEP_VIOLATION_CODES: readonly StepViolationCode[] = [
  'task_not_open',
  'workflow_retired',
  'task_expired',
  'task_idle',
  'step_limit',
  'rate_limit',
  'action_not_in_workflow',
  'tool_not_in_workflow',
  'dataset_not_in_workflow',
  'sensitivity_ceiling',
  'args_invalid',
];

/** What the step check needs to know about a task. Times are milliseconds since the epoch. */
export interface TaskStepState {
  /** `open` is the only status in which steps are taken (`closed`, `revoked`, `expired`, ...). */
  readonly status: string;
  readonly openedAt: number;
  /** Time of the last step taken, or of opening when none was. */
  readonly lastActivityAt: number;
  /** Steps taken so far (accepted steps; the next step is number `stepsTaken + 1`). */
  readonly stepsTaken: number;
  /** Times of the most recent steps, oldest first; bounded by {@link nextTaskState}. */
  readonly recentStepTimes: readonly number[];
}

/** One step of a task: an action on a resource, with the tool and its arguments for a tool call. */
export interface TaskStep {
  /** Cedar action id: `read`, `write`, `call`, `send`, ... */
  readonly action: string;
  readonly resource: EntityRef;
  /** The tool's qualified name (`crm.update`); defaults to the resource's id when the resource is a `Tool`. */
  readonly toolName?: string;
  /** The tool call's arguments (MCP `tools/call` `arguments`); absent counts as `{}`. */
  readonly args?: unknown;
  /** The data's sensitivity level (0..3) when the resource holds data (Dataset, Record). */
  readonly sensitivityLevel?: number;
  /** The dataset a Record belongs to (its parent), when the workflow limits datasets. */
  readonly datasetId?: string;
}

/** The step is inside the workflow. */
export interface StepAccepted {
  ok: true;
  /** True when the workflow says the action or the tool needs a person's approval. */
  needsApproval: boolean;
  /** This step's 1-based number (the Cedar context's `step`). */
  step: number;
}

/** The step is outside the workflow. `message` is client-safe: it never holds argument values. */
export interface StepRefused {
  ok: false;
  code: StepViolationCode;
  message: string;
  /** For `args_invalid`: where the arguments failed, as JSON Pointers and keywords, never values. */
  argsErrors?: { instancePath: string; schemaPath: string; keyword: string }[];
}

/** The answer of {@link checkStep}. */
export type StepCheckResult = StepAccepted | StepRefused;

const refuse = (code: StepViolationCode, message: string): StepRefused => ({ ok: false, code, message });

/** Quotes a caller-supplied name for a message, bounded so that a huge name cannot flood logs. */
function q(name: string): string {
  return JSON.stringify(name.length > 128 ? `${name.slice(0, 128)}…` : name);
}

/**
 * Checks the task itself: open, workflow not retired, within duration, not idle, within the step budget and
 * rate. Returns undefined when the task may take another step.
 */
export function checkTaskState(workflow: Workflow, task: TaskStepState, nowMs: number): StepRefused | undefined {
  if (task.status !== 'open') return refuse('task_not_open', `the task is ${q(task.status)}, not open`);
  if (workflow.status !== 'active') return refuse('workflow_retired', `the workflow ${q(workflow.id)} is retired`);
  // Expired at exactly openedAt + maxSeconds, like a token at its exp.
  if (nowMs - task.openedAt >= workflow.duration.maxSeconds * 1000) {
    return refuse('task_expired', `the task reached its workflow's maximum duration of ${workflow.duration.maxSeconds} s`);
  }
  const idle = workflow.duration.idleSeconds;
  if (idle !== undefined && nowMs - task.lastActivityAt >= idle * 1000) {
    return refuse('task_idle', `the task was idle for ${idle} s or more`);
  }
  if (task.stepsTaken >= workflow.steps.max) return refuse('step_limit', `the task has taken its workflow's ${workflow.steps.max} steps`);
  const rate = workflow.steps.rate;
  if (rate !== undefined) {
    // A sliding window of perSeconds ending now: a step exactly perSeconds ago has left it.
    const windowStart = nowMs - rate.perSeconds * 1000;
    let inWindow = 0;
    for (const t of task.recentStepTimes) if (t > windowStart) inWindow++;
    if (inWindow >= rate.count) return refuse('rate_limit', `the workflow allows ${rate.count} step${rate.count === 1 ? '' : 's'} per ${rate.perSeconds} s`);
  }
  return undefined;
}

/** The tool a step uses, if any: its `toolName`, or the resource's id when the resource is a Tool. */
export function toolOfStep(step: Pick<TaskStep, 'toolName' | 'resource'>): string | undefined {
  return step.toolName ?? (step.resource.type === 'Tool' ? step.resource.id : undefined);
}

/**
 * Checks what a step does against the plan: the action, the tool, the dataset and the sensitivity ceiling.
 * Arguments are checked by {@link checkStep}. Returns whether approval is needed, or why the step is refused.
 * @param sensitivityRequired refuse data whose level is unknown (true at a step; false for scopes, where the
 *   level is checked again at each step).
 */
export function checkPlan(
  workflow: Workflow,
  step: Pick<TaskStep, 'action' | 'resource' | 'toolName' | 'sensitivityLevel' | 'datasetId'>,
  sensitivityRequired = true,
): { ok: true; needsApproval: boolean } | StepRefused {
  const action = workflow.actions.find((a) => a.name === step.action);
  if (action === undefined) return refuse('action_not_in_workflow', `the action ${q(step.action)} is not in the workflow ${q(workflow.id)}`);
  let needsApproval = action.approval === 'required';
  // A step names its tool twice when its resource is the Tool and it also gives toolName: both must be listed.
  const toolNames = new Set<string>();
  if (step.toolName !== undefined) toolNames.add(step.toolName);
  if (step.resource.type === 'Tool') toolNames.add(step.resource.id);
  for (const toolName of toolNames) {
    const tool = workflow.tools.find((t) => t.name === toolName);
    if (tool === undefined) return refuse('tool_not_in_workflow', `the tool ${q(toolName)} is not in the workflow ${q(workflow.id)}`);
    needsApproval ||= tool.approval === 'required';
  }
  if (DATA_RESOURCE_TYPES.has(step.resource.type)) {
    const datasets = workflow.data.datasets;
    if (datasets !== undefined) {
      const dataset = step.resource.type === 'Dataset' ? step.resource.id : step.datasetId;
      if (dataset === undefined || !datasets.includes(dataset)) {
        return refuse('dataset_not_in_workflow', dataset === undefined
          ? `the workflow ${q(workflow.id)} limits datasets and the record's dataset is not known`
          : `the dataset ${q(dataset)} is not in the workflow ${q(workflow.id)}`);
      }
    }
    const level = step.sensitivityLevel;
    if (level === undefined || !Number.isInteger(level)) {
      if (sensitivityRequired) return refuse('sensitivity_ceiling', `the data's sensitivity is not known, so it cannot be held to the workflow's ceiling`);
    } else if (level > workflow.data.maxSensitivityLevel) {
      return refuse('sensitivity_ceiling', `the data's sensitivity level ${level} is above the workflow's ceiling ${workflow.data.maxSensitivityLevel}`);
    }
  }
  return { ok: true, needsApproval };
}

/**
 * Checks one step of a task against its workflow. Pure.
 * @param workflow the version of the workflow the task was opened with.
 * @param task the task's state before this step.
 * @param step what the agent is about to do.
 * @param nowMs the current time (Mandate's clock), milliseconds since the epoch.
 * @example
 * const r = checkStep(workflow, task, { action: 'call', resource: { type: 'Tool', id: 'crm.update' }, args }, clock.now());
 * if (!r.ok) deny(r.code, r.message); else if (r.needsApproval) askForApproval(); else decideByPolicy(r.step);
 */
export function checkStep(workflow: Workflow, task: TaskStepState, step: TaskStep, nowMs: number): StepCheckResult {
  const refused = checkTaskState(workflow, task, nowMs);
  if (refused !== undefined) return refused;
  const plan = checkPlan(workflow, step);
  if (!plan.ok) return plan;
  const toolName = toolOfStep(step);
  const validate = toolName === undefined ? undefined : workflow.argsValidators.get(toolName);
  if (validate !== undefined) {
    const r = validate(step.args === undefined ? {} : step.args);
    if (!r.ok) {
      const first = r.errors[0];
      const where = first === undefined ? '' : ` at ${first.instancePath === '' ? '(the arguments)' : first.instancePath} (${first.keyword}, ${first.schemaPath})`;
      return { ok: false, code: 'args_invalid', message: `the arguments of ${q(toolName as string)} are outside the workflow's limits${where}`, argsErrors: r.errors };
    }
  }
  return { ok: true, needsApproval: plan.needsApproval, step: task.stepsTaken + 1 };
}

/**
 * The task's state after it took a step at `nowMs`: one more step, last activity now, and the step's time
 * added to `recentStepTimes`, which keeps only what the rate check needs (the workflow's `rate.count` most
 * recent times; without a workflow, at most {@link MAX_RATE_COUNT}).
 */
export function nextTaskState<T extends TaskStepState>(task: T, nowMs: number, workflow?: Pick<Workflow, 'steps'>): T {
  const keep = workflow === undefined ? MAX_RATE_COUNT : (workflow.steps.rate?.count ?? 0);
  const times = keep === 0 ? [] : [...task.recentStepTimes, nowMs].slice(-keep);
  return { ...task, stepsTaken: task.stepsTaken + 1, lastActivityAt: nowMs, recentStepTimes: times };
}

/** One (action, resource) pair a scope stands for (src/tokens/resources.ts `ResourceConfig.scopes`). */
export interface ScopePair {
  action: string;
  resource: EntityRef;
}

/** What {@link scopeWithinWorkflow} may look up about a resource; each answer may be unknown. */
export interface ResourceLookup {
  /** The sensitivity level (0..3) of a Dataset or Record. */
  sensitivityOf(resource: EntityRef): number | undefined;
  /** The dataset a Record belongs to. */
  datasetOf?(resource: EntityRef): string | undefined;
}

/** The answer of {@link scopeWithinWorkflow}. */
export type ScopeWithinResult = { ok: true; needsApproval: boolean } | (StepRefused & { pair: ScopePair });

/**
 * Whether a workflow covers every (action, resource) pair of a scope: the workflow is active, each action is
 * in it, each tool is listed, each dataset is listed (when it lists datasets) and each data resource is within
 * its ceiling when its level is known (an unknown level is checked at each step instead). A scope is granted to
 * a task's mandate only if policy allows it AND this says it is within the workflow. Pure.
 * @example scopeWithinWorkflow(workflow, resource.scopes['crm.read'], { sensitivityOf: (r) => levels.get(r.id) })
 */
export function scopeWithinWorkflow(workflow: Workflow, pairs: readonly ScopePair[], lookup?: ResourceLookup): ScopeWithinResult {
  const empty: ScopePair = { action: '', resource: { type: '', id: '' } };
  if (workflow.status !== 'active') return { ...refuse('workflow_retired', `the workflow ${q(workflow.id)} is retired`), pair: pairs[0] ?? empty };
  let needsApproval = false;
  for (const pair of pairs) {
    const isRecord = pair.resource.type === 'Record';
    const sensitivityLevel = DATA_RESOURCE_TYPES.has(pair.resource.type) ? lookup?.sensitivityOf(pair.resource) : undefined;
    const datasetId = isRecord ? lookup?.datasetOf?.(pair.resource) : undefined;
    const r = checkPlan(
      workflow,
      { action: pair.action, resource: pair.resource, ...(sensitivityLevel === undefined ? {} : { sensitivityLevel }), ...(datasetId === undefined ? {} : { datasetId }) },
      false,
    );
    if (!r.ok) return { ...r, pair };
    needsApproval ||= r.needsApproval;
  }
  return { ok: true, needsApproval };
}

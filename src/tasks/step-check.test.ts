import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkStep,
  nextTaskState,
  scopeWithinWorkflow,
  STEP_VIOLATION_CODES,
  type StepCheckResult,
  type StepViolationCode,
  type TaskStep,
  type TaskStepState,
} from './step-check.ts';
import { parseWorkflowFile, type Workflow } from './workflows.ts';
import type { EntityRef } from '../core/decision.ts';

const T0 = Date.parse('2026-03-02T10:00:00Z');
const S = 1000;

function workflow(overrides: Record<string, string> = {}): Workflow {
  let text = `id: wf
name: Test workflow
status: active
tools:
  - name: crm.search
    args:
      type: object
      properties:
        query: { type: string, maxLength: 10 }
        limit: { type: integer, maximum: 50 }
      required: [query]
      additionalProperties: false
  - name: crm.update
  - name: payments.refund
    approval: required
data:
  maxSensitivityLevel: 2
actions:
  - name: read
  - name: write
  - name: call
  - name: trigger
  - name: send
    approval: required
steps:
  max: 5
  rate: { count: 3, perSeconds: 10 }
duration:
  maxSeconds: 3600
  idleSeconds: 300
`;
  for (const [from, to] of Object.entries(overrides)) {
    assert.ok(text.includes(from), `the workflow text has ${from}`);
    text = text.replace(from, to);
  }
  const r = parseWorkflowFile({ path: 'workflows/wf.yaml', text });
  assert.deepEqual(r.diagnostics, []);
  assert.ok(r.workflow);
  return r.workflow;
}

const WF = workflow();

const fresh = (over: Partial<TaskStepState> = {}): TaskStepState => ({
  status: 'open',
  openedAt: T0,
  lastActivityAt: T0,
  stepsTaken: 0,
  recentStepTimes: [],
  ...over,
});

const tool = (id: string): EntityRef => ({ type: 'Tool', id });
const search = (args: unknown = { query: 'acme' }): TaskStep => ({ action: 'call', resource: tool('crm.search'), args });

function refused(r: StepCheckResult, code: StepViolationCode): string {
  assert.equal(r.ok, false, `expected ${code}, got ${JSON.stringify(r)}`);
  if (r.ok) return '';
  assert.equal(r.code, code);
  return r.message;
}

test('a step inside the workflow: accepted, with its number and whether it needs approval', () => {
  assert.deepEqual(checkStep(WF, fresh(), search(), T0 + S), { ok: true, needsApproval: false, step: 1 });
  assert.deepEqual(checkStep(WF, fresh({ stepsTaken: 3, recentStepTimes: [T0] }), search(), T0 + 60 * S), { ok: true, needsApproval: false, step: 4 });
  // Approval by the tool, by the action, or both.
  assert.deepEqual(checkStep(WF, fresh(), { action: 'trigger', resource: tool('payments.refund') }, T0), { ok: true, needsApproval: true, step: 1 });
  assert.deepEqual(checkStep(WF, fresh(), { action: 'call', resource: tool('payments.refund') }, T0), { ok: true, needsApproval: true, step: 1 });
  assert.deepEqual(checkStep(WF, fresh(), { action: 'send', resource: tool('crm.update') }, T0), { ok: true, needsApproval: true, step: 1 });
  // Data within the ceiling.
  assert.deepEqual(checkStep(WF, fresh(), { action: 'read', resource: { type: 'Dataset', id: 'crm' }, sensitivityLevel: 2 }, T0), { ok: true, needsApproval: false, step: 1 });
  assert.deepEqual(checkStep(WF, fresh(), { action: 'write', resource: { type: 'Record', id: 'r1' }, sensitivityLevel: 0 }, T0), { ok: true, needsApproval: false, step: 1 });
  // A tool without an args schema takes any arguments.
  assert.equal(checkStep(WF, fresh(), { action: 'call', resource: tool('crm.update'), args: { anything: [1, 2] } }, T0).ok, true);
});

test('task_not_open: closed, revoked, expired or any other status', () => {
  for (const status of ['closed', 'revoked', 'expired', 'OPEN', '']) {
    assert.match(refused(checkStep(WF, fresh({ status }), search(), T0), 'task_not_open'), /not open/);
  }
});

test('workflow_retired: a task of a retired workflow takes no further step', () => {
  const retired = workflow({ 'status: active': 'status: retired' });
  assert.equal(refused(checkStep(retired, fresh(), search(), T0), 'workflow_retired'), 'the workflow "wf" is retired');
});

test('task_expired: at exactly openedAt + maxSeconds, not a millisecond before', () => {
  const busy = (now: number) => fresh({ lastActivityAt: now - S });
  const end = T0 + 3600 * S;
  assert.equal(checkStep(WF, busy(end - 1), search(), end - 1).ok, true);
  assert.match(refused(checkStep(WF, busy(end), search(), end), 'task_expired'), /maximum duration of 3600 s/);
  refused(checkStep(WF, busy(end + 86_400 * S), search(), end + 86_400 * S), 'task_expired');
});

test('task_idle: at exactly lastActivityAt + idleSeconds; no idle limit when the workflow sets none', () => {
  const last = T0 + 100 * S;
  const task = fresh({ lastActivityAt: last, stepsTaken: 1, recentStepTimes: [last] });
  assert.equal(checkStep(WF, task, search(), last + 300 * S - 1).ok, true);
  assert.match(refused(checkStep(WF, task, search(), last + 300 * S), 'task_idle'), /idle for 300 s/);
  const noIdle = workflow({ '  idleSeconds: 300\n': '' });
  assert.equal(checkStep(noIdle, task, search(), last + 3000 * S).ok, true);
});

test('step_limit: steps.max steps are allowed, the next is not', () => {
  assert.deepEqual(checkStep(WF, fresh({ stepsTaken: 4 }), search(), T0 + 60 * S), { ok: true, needsApproval: false, step: 5 });
  assert.match(refused(checkStep(WF, fresh({ stepsTaken: 5 }), search(), T0 + 60 * S), 'step_limit'), /taken its workflow's 5 steps/);
  refused(checkStep(WF, fresh({ stepsTaken: 500 }), search(), T0 + 60 * S), 'step_limit');
});

test('rate_limit: a sliding window of perSeconds; a step exactly perSeconds ago has left it', () => {
  const now = T0 + 100 * S;
  const times = [now - 9 * S, now - 5 * S, now - 1];
  const task = (recentStepTimes: number[]) => fresh({ lastActivityAt: now - 1, stepsTaken: recentStepTimes.length, recentStepTimes });
  assert.match(refused(checkStep(WF, task(times), search(), now), 'rate_limit'), /3 steps per 10 s/);
  // The oldest of the three is exactly 10 s old: out of the window, so a third step fits.
  assert.equal(checkStep(WF, task([now - 10 * S, now - 5 * S, now - 1]), search(), now).ok, true);
  // One millisecond younger than 10 s: still in it.
  refused(checkStep(WF, task([now - 10 * S + 1, now - 5 * S, now - 1]), search(), now), 'rate_limit');
  // Two in the window: a third is allowed.
  assert.equal(checkStep(WF, task([now - 5 * S, now - 1]), search(), now).ok, true);
  // A step recorded at this very millisecond counts.
  refused(checkStep(WF, task([now, now, now]), search(), now), 'rate_limit');
  // No rate: no limit.
  const noRate = workflow({ '  rate: { count: 3, perSeconds: 10 }\n': '' });
  assert.equal(checkStep(noRate, task([now - 3, now - 2, now - 1]), search(), now).ok, true);
});

test('action_not_in_workflow and tool_not_in_workflow', () => {
  assert.equal(refused(checkStep(WF, fresh(), { action: 'export', resource: { type: 'Dataset', id: 'crm' }, sensitivityLevel: 1 }, T0), 'action_not_in_workflow'), 'the action "export" is not in the workflow "wf"');
  assert.equal(refused(checkStep(WF, fresh(), { action: 'call', resource: tool('email.send') }, T0), 'tool_not_in_workflow'), 'the tool "email.send" is not in the workflow "wf"');
  // toolName names the tool when the resource is not the Tool itself, and must be listed too when it is.
  refused(checkStep(WF, fresh(), { action: 'read', resource: { type: 'Dataset', id: 'crm' }, toolName: 'wiki.search', sensitivityLevel: 1 }, T0), 'tool_not_in_workflow');
  refused(checkStep(WF, fresh(), { action: 'call', resource: tool('crm.search'), toolName: 'email.send', args: { query: 'x' } }, T0), 'tool_not_in_workflow');
  refused(checkStep(WF, fresh(), { action: 'call', resource: tool('email.send'), toolName: 'crm.search', args: { query: 'x' } }, T0), 'tool_not_in_workflow');
  // A huge caller-supplied name is cut in the message.
  const message = refused(checkStep(WF, fresh(), { action: 'call', resource: tool(`x.${'y'.repeat(10_000)}`) }, T0), 'tool_not_in_workflow');
  assert.ok(message.length < 300);
});

test('dataset_not_in_workflow: when the workflow lists datasets', () => {
  const limited = workflow({ '  maxSensitivityLevel: 2\n': '  maxSensitivityLevel: 2\n  datasets: [crm]\n' });
  assert.equal(checkStep(limited, fresh(), { action: 'read', resource: { type: 'Dataset', id: 'crm' }, sensitivityLevel: 2 }, T0).ok, true);
  assert.equal(checkStep(limited, fresh(), { action: 'read', resource: { type: 'Record', id: 'lead-1' }, datasetId: 'crm', sensitivityLevel: 2 }, T0).ok, true);
  assert.match(refused(checkStep(limited, fresh(), { action: 'read', resource: { type: 'Dataset', id: 'wiki' }, sensitivityLevel: 1 }, T0), 'dataset_not_in_workflow'), /"wiki" is not in/);
  assert.match(refused(checkStep(limited, fresh(), { action: 'read', resource: { type: 'Record', id: 'lead-1' }, sensitivityLevel: 1 }, T0), 'dataset_not_in_workflow'), /record's dataset is not known/);
  // Without datasets, any dataset within the ceiling.
  assert.equal(checkStep(WF, fresh(), { action: 'read', resource: { type: 'Dataset', id: 'wiki' }, sensitivityLevel: 1 }, T0).ok, true);
});

test('sensitivity_ceiling: above the ceiling, or unknown for data', () => {
  assert.equal(refused(checkStep(WF, fresh(), { action: 'read', resource: { type: 'Dataset', id: 'hr' }, sensitivityLevel: 3 }, T0), 'sensitivity_ceiling'), "the data's sensitivity level 3 is above the workflow's ceiling 2");
  assert.match(refused(checkStep(WF, fresh(), { action: 'read', resource: { type: 'Record', id: 'r' } }, T0), 'sensitivity_ceiling'), /not known/);
  refused(checkStep(WF, fresh(), { action: 'read', resource: { type: 'Record', id: 'r' }, sensitivityLevel: 1.5 }, T0), 'sensitivity_ceiling');
  // A tool is not data: no level needed.
  assert.equal(checkStep(WF, fresh(), search(), T0).ok, true);
  const publicOnly = workflow({ 'maxSensitivityLevel: 2': 'maxSensitivityLevel: 0' });
  assert.equal(checkStep(publicOnly, fresh(), { action: 'read', resource: { type: 'Dataset', id: 'p' }, sensitivityLevel: 0 }, T0).ok, true);
  refused(checkStep(publicOnly, fresh(), { action: 'read', resource: { type: 'Dataset', id: 'w' }, sensitivityLevel: 1 }, T0), 'sensitivity_ceiling');
});

test('args_invalid: the JSON Schema path and keyword, never the argument values', () => {
  const secret = 'SECRET-VALUE-1234567890';
  const r = checkStep(WF, fresh(), search({ query: secret }), T0);
  assert.equal(refused(r, 'args_invalid'), 'the arguments of "crm.search" are outside the workflow\'s limits at /query (maxLength, #/properties/query/maxLength)');
  assert.ok(!JSON.stringify(r).includes(secret));
  assert.deepEqual(!r.ok && r.argsErrors, [{ instancePath: '/query', schemaPath: '#/properties/query/maxLength', keyword: 'maxLength' }]);
  const extra = checkStep(WF, fresh(), search({ query: 'a', [secret]: 1 }), T0);
  refused(extra, 'args_invalid');
  assert.ok(!(!extra.ok && extra.message.includes(secret)));
  assert.match(refused(checkStep(WF, fresh(), search({ query: 'a', limit: 51 }), T0), 'args_invalid'), /at \/limit \(maximum/);
  assert.match(refused(checkStep(WF, fresh(), search({ query: 'a', limit: 'ten' }), T0), 'args_invalid'), /at \/limit \(type/);
  // Missing arguments count as {}: the required query is missing.
  assert.match(refused(checkStep(WF, fresh(), { action: 'call', resource: tool('crm.search') }, T0), 'args_invalid'), /at \(the arguments\) \(required/);
  refused(checkStep(WF, fresh(), search(['query']), T0), 'args_invalid');
  refused(checkStep(WF, fresh(), search(null), T0), 'args_invalid');
  // The schema applies when the tool is named by toolName too.
  refused(checkStep(WF, fresh(), { action: 'call', resource: tool('crm.search'), toolName: 'crm.search', args: { query: secret } }, T0), 'args_invalid');
});

test('checks run in a fixed order: the task before the plan, the plan before the arguments', () => {
  const everything: TaskStep = { action: 'export', resource: tool('email.send'), args: { bad: true } };
  const order: [Partial<TaskStepState>, number, StepViolationCode][] = [
    [{ status: 'closed', stepsTaken: 99 }, T0 + 9999 * S, 'task_not_open'],
    [{ stepsTaken: 99 }, T0 + 9999 * S, 'task_expired'],
    [{ stepsTaken: 99 }, T0 + 301 * S, 'task_idle'],
    [{ stepsTaken: 99 }, T0 + 1, 'step_limit'],
    [{ recentStepTimes: [T0, T0, T0] }, T0 + 1, 'rate_limit'],
    [{}, T0 + 1, 'action_not_in_workflow'],
  ];
  for (const [state, now, code] of order) refused(checkStep(WF, fresh(state), everything, now), code);
  refused(checkStep(workflow({ 'status: active': 'status: retired' }), fresh({ stepsTaken: 99 }), everything, T0 + 9999 * S), 'workflow_retired');
  refused(checkStep(WF, fresh(), { ...everything, action: 'call' }, T0), 'tool_not_in_workflow');
  refused(checkStep(WF, fresh(), { action: 'call', resource: tool('crm.search'), args: { bad: true } }, T0), 'args_invalid');
});

test('every reason code is exercised and listed', () => {
  assert.deepEqual([...STEP_VIOLATION_CODES].sort(), [
    'action_not_in_workflow', 'args_invalid', 'dataset_not_in_workflow', 'rate_limit', 'sensitivity_ceiling', 'step_limit',
    'task_expired', 'task_idle', 'task_not_open', 'tool_not_in_workflow', 'workflow_retired',
  ]);
});

test('nextTaskState: one more step, activity now, recent times bounded by the rate count; the input is not changed', () => {
  const task = fresh();
  let s = task;
  for (let i = 1; i <= 5; i++) s = nextTaskState(s, T0 + i * S, WF);
  assert.deepEqual(task, fresh(), 'pure');
  assert.deepEqual(s, { ...task, stepsTaken: 5, lastActivityAt: T0 + 5 * S, recentStepTimes: [T0 + 3 * S, T0 + 4 * S, T0 + 5 * S] });
  // Without a rate, nothing needs keeping.
  assert.deepEqual(nextTaskState(task, T0 + S, workflow({ '  rate: { count: 3, perSeconds: 10 }\n': '' })).recentStepTimes, []);
  // Without a workflow, at most MAX_RATE_COUNT (1000).
  let big: TaskStepState = task;
  for (let i = 0; i < 1005; i++) big = nextTaskState(big, T0 + i);
  assert.equal(big.recentStepTimes.length, 1000);
  assert.equal(big.recentStepTimes[0], T0 + 5);
  // Extra fields of the caller's task type are kept.
  const withId = nextTaskState({ ...task, taskId: 't1' }, T0 + S, WF);
  assert.equal(withId.taskId, 't1');
});

test('a task walked step by step: allowed steps, then the rate, then the budget', () => {
  let task = fresh();
  const now = (i: number) => T0 + i * 4 * S;
  const results: string[] = [];
  for (let i = 1; i <= 8; i++) {
    const r = checkStep(WF, task, search(), now(i));
    results.push(r.ok ? `ok ${r.step}` : r.code);
    if (r.ok) task = nextTaskState(task, now(i), WF);
  }
  // Steps every 4 s with 3 per 10 s: the window holds at most 3, so each step fits; then the budget of 5 ends it.
  assert.deepEqual(results, ['ok 1', 'ok 2', 'ok 3', 'ok 4', 'ok 5', 'step_limit', 'step_limit', 'step_limit']);
  let fast = fresh();
  const fastResults: string[] = [];
  for (let i = 1; i <= 4; i++) {
    const r = checkStep(WF, fast, search(), T0 + i);
    fastResults.push(r.ok ? `ok ${r.step}` : r.code);
    if (r.ok) fast = nextTaskState(fast, T0 + i, WF);
  }
  assert.deepEqual(fastResults, ['ok 1', 'ok 2', 'ok 3', 'rate_limit']);
});

test('scopeWithinWorkflow: every pair of the scope must be within the workflow', () => {
  const levels = new Map([['crm', 2], ['hr', 3], ['lead-1', 2]]);
  const lookup = { sensitivityOf: (r: EntityRef) => levels.get(r.id), datasetOf: (r: EntityRef) => (r.id === 'lead-1' ? 'crm' : undefined) };
  const crmRead = [{ action: 'call', resource: tool('crm.search') }, { action: 'read', resource: { type: 'Dataset', id: 'crm' } }];
  assert.deepEqual(scopeWithinWorkflow(WF, crmRead, lookup), { ok: true, needsApproval: false });
  assert.deepEqual(scopeWithinWorkflow(WF, [{ action: 'trigger', resource: tool('payments.refund') }], lookup), { ok: true, needsApproval: true });
  const tooHigh = scopeWithinWorkflow(WF, [...crmRead, { action: 'read', resource: { type: 'Dataset', id: 'hr' } }], lookup);
  assert.equal(tooHigh.ok, false);
  assert.deepEqual(!tooHigh.ok && [tooHigh.code, tooHigh.pair.resource.id], ['sensitivity_ceiling', 'hr']);
  // An unknown level is not refused here: the step check refuses it at the call.
  assert.equal(scopeWithinWorkflow(WF, [{ action: 'read', resource: { type: 'Dataset', id: 'unknown' } }], lookup).ok, true);
  assert.equal(scopeWithinWorkflow(WF, [{ action: 'read', resource: { type: 'Dataset', id: 'unknown' } }]).ok, true);
  const badTool = scopeWithinWorkflow(WF, [{ action: 'call', resource: tool('email.send') }], lookup);
  assert.deepEqual(!badTool.ok && badTool.code, 'tool_not_in_workflow');
  const badAction = scopeWithinWorkflow(WF, [{ action: 'delete', resource: { type: 'Dataset', id: 'crm' } }], lookup);
  assert.deepEqual(!badAction.ok && badAction.code, 'action_not_in_workflow');
  const limited = workflow({ '  maxSensitivityLevel: 2\n': '  maxSensitivityLevel: 2\n  datasets: [crm]\n' });
  assert.equal(scopeWithinWorkflow(limited, [{ action: 'read', resource: { type: 'Record', id: 'lead-1' } }], lookup).ok, true);
  const otherRecord = scopeWithinWorkflow(limited, [{ action: 'read', resource: { type: 'Record', id: 'other' } }], lookup);
  assert.deepEqual(!otherRecord.ok && otherRecord.code, 'dataset_not_in_workflow');
  const retired = scopeWithinWorkflow(workflow({ 'status: active': 'status: retired' }), crmRead, lookup);
  assert.deepEqual(!retired.ok && retired.code, 'workflow_retired');
  assert.deepEqual(scopeWithinWorkflow(WF, [], lookup), { ok: true, needsApproval: false });
});

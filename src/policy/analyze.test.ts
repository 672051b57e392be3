import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PolicyJson } from '@cedar-policy/cedar-wasm/nodejs';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { writePolicyDir } from '../../test/fixtures/policy-dir.ts';
import { CLEAN_POLICIES, OVERBROAD_POLICIES } from '../../test/cli/policy-fixtures.ts';
import { formatEntityRef } from '../core/decision.ts';
import { computeAccessMatrix, type AccessMatrix, type MatrixCell } from './analyze-matrix.ts';
import { describeChangeGroup, diffAccessMatrices, groupChanges } from './analyze-diff.ts';
import { lintPolicySet, reachesSeverity } from './analyze-lint.ts';
import { residualConditionText, simplifyExpr } from './analyze-residual.ts';
import { compilePolicySet, type CompiledPolicySet } from './compile-policy-set.ts';
import { readPolicyDirectory } from './read-policy-directory.ts';

const compile = async (files: Record<string, string>): Promise<CompiledPolicySet> => {
  const fx = await writePolicyDir(files);
  try {
    return compilePolicySet(await readPolicyDirectory(fx.dir));
  } finally {
    await fx.cleanup();
  }
};

const cell = (m: AccessMatrix, row: string, action: string, resource: string): MatrixCell | undefined =>
  m.rows
    .find((r) => `${formatEntityRef(r.principal)}${r.actingFor ? ` for ${formatEntityRef(r.actingFor)}` : ''}` === row)
    ?.cells.find((c) => c.action === action && formatEntityRef(c.resource) === resource);

test('matrix: rows for users, agents (directly and acting for their owner) and services; concrete cells', async () => {
  const m = computeAccessMatrix(await compile(CLEAN_POLICIES));
  assert.deepEqual(m.rows.map((r) => `${formatEntityRef(r.principal)}${r.actingFor ? ` for ${formatEntityRef(r.actingFor)}` : ''}`), [
    'User::"alice"',
    'User::"bob"',
    'Agent::"helper"',
    'Agent::"helper" for User::"bob"',
    'Agent::"writer"',
    'Agent::"writer" for User::"alice"',
  ]);
  assert.equal(cell(m, 'User::"bob"', 'read', 'Dataset::"wiki"')?.outcome, 'deny');
  assert.equal(cell(m, 'User::"alice"', 'read', 'Dataset::"salaries"')?.outcome, 'deny');
  // Only send/call/... on tools and data actions on datasets: cells follow the schema's appliesTo.
  assert.equal(cell(m, 'User::"alice"', 'read', 'Tool::"crm.update"'), undefined);
  assert.ok(m.unknownContext.includes('args') && !m.unknownContext.includes('delegation'));
});

test('matrix: a cell that depends on the context is conditional and shows the residual condition', async () => {
  const m = computeAccessMatrix(await compile(CLEAN_POLICIES));
  const send = cell(m, 'User::"alice"', 'send', 'Tool::"crm.update"');
  assert.equal(send?.outcome, 'conditional');
  assert.equal(send?.allowedUnless, undefined);
  const permit = send?.residuals.find((t) => t.policyId === 'alice-send-internal');
  assert.equal(permit?.effect, 'permit');
  assert.equal(permit?.source, 'users.cedar:7');
  assert.equal(permit?.condition, 'context has args && context.args has recipientDomain && context.args.recipientDomain == "acme.example"');
  // The risk forbid applies everywhere with the same residual; alice's wiki read is allowed unless it holds.
  const read = cell(m, 'User::"alice"', 'read', 'Dataset::"wiki"');
  assert.equal(read?.outcome, 'conditional');
  assert.equal(read?.allowedUnless, 'allow');
  assert.deepEqual(read?.determining, ['sales-read-internal']);
  assert.deepEqual(read?.residuals.map((t) => [t.policyId, t.condition]), [['deny-high-risk', 'context has risk && context.risk.score >= 80']]);
});

test('matrix: a delegated row is the intersection of the owner and the agent', async () => {
  const files = {
    'p.cedar': `@id("sales-read") permit (principal in Group::"sales", action == Action::"read", resource is Dataset);
@id("agents-read-in-task") permit (principal is Agent, action == Action::"read", resource is Dataset) when { context has task };
@id("no-delegated-restricted") forbid (principal, action, resource is Dataset) when { context.delegation.depth > 0 && resource.sensitivityLevel >= 3 };`,
  };
  const m = computeAccessMatrix(await compile(files));
  assert.equal(cell(m, 'User::"alice"', 'read', 'Dataset::"salaries"')?.outcome, 'allow');
  // writer acting for alice: alice may, the agent needs a task → conditional on the agent's permit.
  const wiki = cell(m, 'Agent::"writer" for User::"alice"', 'read', 'Dataset::"wiki"');
  assert.equal(wiki?.outcome, 'conditional');
  assert.deepEqual(wiki?.residuals.map((t) => [formatEntityRef(t.principal), t.policyId, t.condition]), [['Agent::"writer"', 'agents-read-in-task', 'context has task']]);
  // Delegated access to restricted data is forbidden whatever the context (delegation is concrete).
  assert.equal(cell(m, 'Agent::"writer" for User::"alice"', 'read', 'Dataset::"salaries"')?.outcome, 'deny');
  assert.deepEqual(cell(m, 'Agent::"writer" for User::"alice"', 'read', 'Dataset::"salaries"')?.determining, ['no-delegated-restricted']);
  // helper acts for bob, who is not in sales: deny whatever the agent may.
  assert.equal(cell(m, 'Agent::"helper" for User::"bob"', 'read', 'Dataset::"wiki"')?.outcome, 'deny');
});

test('matrix: approval-required permits give approval_required cells', async () => {
  const files = { 'p.cedar': '@id("send-with-approval") @approval("required") permit (principal == User::"alice", action == Action::"send", resource == Tool::"crm.update");' };
  const m = computeAccessMatrix(await compile(files));
  assert.equal(cell(m, 'User::"alice"', 'send', 'Tool::"crm.update"')?.outcome, 'approval_required');
});

test('lint flags the over-broad permit and nothing in the clean set', async () => {
  assert.deepEqual(lintPolicySet(await compile(CLEAN_POLICIES)), []);
  const findings = lintPolicySet(await compile(OVERBROAD_POLICIES));
  assert.deepEqual(findings.map((f) => [f.severity, f.rule, f.policyId, `${f.file}:${f.line}`]), [
    ['error', 'unconditioned-effect-permit', 'anyone-sends', 'oops.cedar:1'],
    ['error', 'permit-any-principal', 'anyone-sends', 'oops.cedar:1'],
  ]);
  assert.match(findings[0]?.message ?? '', /permits send to every principal on every resource with no condition/);
  assert.ok(reachesSeverity(findings, 'error'));
  assert.ok(reachesSeverity(findings, 'warning'));
});

test('lint severities: scope narrowed only by a condition, approval, unconstrained action, call on any tool', async () => {
  const files = {
    'p.cedar': `@id("cond-mentions-principal") permit (principal, action == Action::"read", resource) when { principal in Group::"sales" };
@id("cond-ignores-principal") permit (principal, action == Action::"read", resource) when { resource.sensitivityLevel == 0 };
@id("scoped-unconditioned-write") permit (principal in Group::"sales", action == Action::"write", resource == Dataset::"wiki");
@id("agents-call-anything") permit (principal is Agent, action == Action::"call", resource);
@id("approved-effects") @approval("required") permit (principal is Agent, action in Action::"effect", resource);
@id("alice-anything") permit (principal == User::"alice", action, resource) when { context has task };`,
  };
  const byId = new Map<string, string[]>();
  for (const f of lintPolicySet(await compile(files))) byId.set(f.policyId, [...(byId.get(f.policyId) ?? []), `${f.severity} ${f.rule}`]);
  assert.deepEqual(Object.fromEntries(byId), {
    'cond-mentions-principal': ['info permit-any-principal'],
    'cond-ignores-principal': ['warning permit-any-principal'],
    'scoped-unconditioned-write': ['warning unconditioned-effect-permit'],
    'agents-call-anything': ['error unconditioned-effect-permit'],
    'approved-effects': ['warning unconditioned-effect-permit'],
    'alice-anything': ['warning permit-any-action'],
  });
});

test('diff: what the over-broad set newly allows, grouped into sentences', async () => {
  const before = computeAccessMatrix(await compile(CLEAN_POLICIES));
  const after = computeAccessMatrix(await compile(OVERBROAD_POLICIES));
  const changes = diffAccessMatrices(before, after);
  assert.ok(changes.length > 0);
  assert.ok(changes.every((c) => c.action === 'send'));
  const bob = changes.find((c) => formatEntityRef(c.principal) === 'User::"bob"' && formatEntityRef(c.resource) === 'Tool::"crm.update"');
  assert.equal(bob?.kind, 'newly-allows');
  assert.deepEqual(bob?.determining, ['anyone-sends']);
  const sentences = groupChanges(changes).map(describeChangeGroup);
  assert.ok(sentences.includes('newly allows User::"bob" → send Tool::"crm.update" [anyone-sends]'), sentences.join('\n'));
  assert.ok(sentences.includes('newly allows Agent::"helper" → send Tool::"crm.update" (acting for User::"bob") [anyone-sends]'), sentences.join('\n'));
  // alice could send to Acme before; now she may send anywhere: conditional → allowed.
  const alice = changes.find((c) => formatEntityRef(c.principal) === 'User::"alice"' && !c.actingFor);
  assert.equal(alice?.kind, 'now-unconditional');
  // The reverse direction reads as a loss.
  assert.ok(diffAccessMatrices(after, before).some((c) => c.kind === 'no-longer-allows' && formatEntityRef(c.principal) === 'User::"bob"'));
  assert.deepEqual(diffAccessMatrices(before, before), []);
});

test('residuals: trivial true/false folded, comparisons un-negated, context unknowns written as context', () => {
  assert.deepEqual(simplifyExpr({ '&&': { left: { Value: true }, right: { '!': { arg: { '<=': { left: { Var: 'principal' }, right: { Value: 2 } } } } } } }), {
    '>': { left: { Var: 'principal' }, right: { Value: 2 } },
  });
  assert.deepEqual(simplifyExpr({ '||': { left: { Value: false }, right: { '!': { arg: { '!': { arg: { Var: 'context' } } } } } } }), { Var: 'context' });
  const policy = cedar.policyToJson('permit (principal, action, resource) when { true && context.step > 2 } unless { false };');
  assert.equal(policy.type, 'success');
  const json = (policy as { json: PolicyJson }).json;
  assert.equal(residualConditionText(json), 'context.step > 2');
  const withUnknown = { ...json, conditions: [{ kind: 'when', body: { '&&': { left: { unknown: [{ Value: 'context has task' }] }, right: { '==': { left: { '.': { left: { unknown: [{ Value: 'context.task' }] }, attr: 'status' } }, right: { Value: 'open' } } } } } }] } as unknown as PolicyJson;
  assert.equal(residualConditionText(withUnknown), 'context has task && context.task.status == "open"');
});

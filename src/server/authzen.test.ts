import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Decision } from '../core/decision.ts';
import type { MandateError} from '../core/errors.ts';
import { InvalidEntityError, InvalidRequestError, UnknownActionError, UnknownEntityTypeError } from '../core/errors.ts';
import {
  APPROVAL_HOW,
  authzenMetadata,
  errorEvaluationResponse,
  expandEvaluations,
  parseEvaluationRequest,
  parseEvaluationsRequest,
  resolveEntityType,
  runEvaluations,
  toAuthorizationRequest,
  toEvaluationResponse,
  type AccessEvaluationResponse,
  type SchemaView,
} from './authzen.ts';

const SCHEMA: SchemaView = {
  entityTypes: new Set(['User', 'Agent', 'Group', 'Dataset', 'Tool', 'ToolServer']),
  actions: new Map([['read', {}], ['call', {}]]),
};

const base = { subject: { type: 'user', id: 'alice' }, action: { name: 'read' }, resource: { type: 'dataset', id: 'wiki' } };

test('subject and resource types map to schema types case-insensitively; an exact match wins', () => {
  assert.equal(resolveEntityType('user', 'subject', SCHEMA), 'User');
  assert.equal(resolveEntityType('AGENT', 'subject', SCHEMA), 'Agent');
  assert.equal(resolveEntityType('Dataset', 'resource', SCHEMA), 'Dataset');
  const both: SchemaView = { entityTypes: new Set(['user', 'User']), actions: new Map() };
  assert.equal(resolveEntityType('User', 'subject', both), 'User');
  assert.throws(() => resolveEntityType('USER', 'subject', both), UnknownEntityTypeError);
  assert.throws(() => resolveEntityType('robot', 'subject', SCHEMA), (e: unknown) => e instanceof UnknownEntityTypeError && /subject\.type "robot".*known types: Agent, Dataset/.test(e.description));
});

test('a plain evaluation becomes a Cedar request with no entities and no delegation', () => {
  assert.deepEqual(toAuthorizationRequest(parseEvaluationRequest(base), SCHEMA), {
    principal: { type: 'User', id: 'alice' },
    action: 'read',
    resource: { type: 'Dataset', id: 'wiki' },
    context: {},
  });
});

test('properties become attributes, properties.parents become parents; context.delegation becomes the actor chain', () => {
  const req = parseEvaluationRequest({
    subject: { type: 'user', id: 'carol', properties: { roles: ['admin'], parents: [{ type: 'group', id: 'sales' }] } },
    action: { name: 'read' },
    resource: { type: 'dataset', id: 'x', properties: { sensitivity: 'internal', tenant: 'acme' } },
    context: {
      step: 2,
      delegation: { actors: [{ type: 'agent', id: 'a1', properties: { mode: 'chat' } }, { type: 'agent', id: 'a2' }] },
    },
  });
  const out = toAuthorizationRequest(req, SCHEMA);
  assert.deepEqual(out.principal, { type: 'User', id: 'carol' });
  assert.deepEqual(out.context, { step: 2 });
  assert.deepEqual(out.delegation, { actors: [{ type: 'Agent', id: 'a1' }, { type: 'Agent', id: 'a2' }] });
  assert.deepEqual(out.entities, [
    { uid: { type: 'User', id: 'carol' }, attrs: { roles: ['admin'] }, parents: [{ type: 'Group', id: 'sales' }] },
    { uid: { type: 'Dataset', id: 'x' }, attrs: { sensitivity: 'internal', tenant: 'acme' }, parents: [] },
    { uid: { type: 'Agent', id: 'a1' }, attrs: { mode: 'chat' }, parents: [] },
  ]);
});

test('translation errors carry stable codes and name the offending field', () => {
  const cases: Array<[unknown, new (...a: never[]) => MandateError, RegExp]> = [
    [{ ...base, subject: { type: 'robot', id: 'r' } }, UnknownEntityTypeError, /subject\.type "robot"/],
    [{ ...base, resource: { type: 'planet', id: 'p' } }, UnknownEntityTypeError, /resource\.type "planet"/],
    [{ ...base, action: { name: 'fly' } }, UnknownActionError, /action\.name "fly".*known actions: call, read/],
    [{ ...base, action: { name: 'read', properties: { method: 'GET' } } }, InvalidRequestError, /action\.properties is not supported/],
    [{ ...base, subject: { ...base.subject, properties: { parents: 'sales' } } }, InvalidEntityError, /subject\.properties\.parents must be a list/],
    [{ ...base, subject: { ...base.subject, properties: { parents: [{ type: 'club', id: 'x' }] } } }, UnknownEntityTypeError, /subject\.properties\.parents\[0\]\.type "club"/],
    [{ ...base, context: { delegation: ['agent'] } }, InvalidRequestError, /context\.delegation must be/],
    [{ ...base, context: { delegation: { actors: [{ type: 'robot', id: 'r' }] } } }, UnknownEntityTypeError, /context\.delegation\.actors\[0\]\.type "robot"/],
  ];
  for (const [body, cls, message] of cases) {
    assert.throws(
      () => toAuthorizationRequest(parseEvaluationRequest(body), SCHEMA),
      (e: unknown) => e instanceof cls && message.test((e as MandateError).description),
      JSON.stringify(body),
    );
  }
});

test('the request schema refuses wrong types, missing keys and unknown members, naming the path', () => {
  const cases: Array<[unknown, RegExp]> = [
    [[base], /must be a JSON object/],
    ['x', /must be a JSON object/],
    [{ ...base, subject: { type: 'user', id: 7 } }, /subject\.id: Invalid input: expected string, received number/],
    [{ subject: base.subject, resource: base.resource }, /action: Invalid input/],
    [{ ...base, extra: 1 }, /Unrecognized key: "extra"/],
    [{ ...base, subject: { type: '', id: 'a' } }, /subject\.type/],
    [{ ...base, context: [] }, /context: Invalid input/],
  ];
  for (const [body, message] of cases) {
    assert.throws(() => parseEvaluationRequest(body), (e: unknown) => e instanceof InvalidRequestError && e.code === 'ERR_INVALID_REQUEST' && message.test(e.description), JSON.stringify(body));
  }
});

test('batch defaults: each item key replaces the top-level default; a missing key is an error in place', () => {
  const req = parseEvaluationsRequest({
    subject: { type: 'user', id: 'alice' },
    action: { name: 'read' },
    context: { step: 1 },
    evaluations: [
      { resource: { type: 'dataset', id: 'a' } },
      { action: { name: 'call' }, resource: { type: 'tool', id: 't' }, context: { step: 2 } },
      { subject: { type: 'user', id: 'bob' }, resource: { type: 'dataset', id: 'b' } },
    ],
  });
  const items = expandEvaluations(req);
  assert.deepEqual(items, [
    { subject: { type: 'user', id: 'alice' }, action: { name: 'read' }, resource: { type: 'dataset', id: 'a' }, context: { step: 1 } },
    { subject: { type: 'user', id: 'alice' }, action: { name: 'call' }, resource: { type: 'tool', id: 't' }, context: { step: 2 } },
    { subject: { type: 'user', id: 'bob' }, action: { name: 'read' }, resource: { type: 'dataset', id: 'b' }, context: { step: 1 } },
  ]);
  const partial = expandEvaluations(parseEvaluationsRequest({ evaluations: [{ subject: base.subject, action: base.action, resource: base.resource }, { action: base.action }] }));
  assert.ok(!(partial[0] instanceof Error));
  assert.ok(partial[1] instanceof InvalidRequestError);
  assert.match(partial[1].description, /evaluations\[1\] has no subject, resource/);
});

test('batch options: the three semantics are accepted, anything else is refused; other options are ignored', () => {
  for (const s of ['execute_all', 'deny_on_first_deny', 'permit_on_first_permit']) {
    assert.equal(parseEvaluationsRequest({ ...base, evaluations: [{}], options: { evaluations_semantic: s, another_option: 'x' } }).options?.evaluations_semantic, s);
  }
  assert.throws(() => parseEvaluationsRequest({ ...base, evaluations: [{}], options: { evaluations_semantic: 'first' } }), /options\.evaluations_semantic/);
  assert.throws(() => parseEvaluationsRequest({ ...base, evaluations: [] }), /evaluations/);
});

test('runEvaluations follows the semantic and keeps request order', async () => {
  const verdicts = [true, false, true, false];
  const run = async (semantic: 'execute_all' | 'deny_on_first_deny' | 'permit_on_first_permit', order = verdicts) => {
    const seen: number[] = [];
    const out = await runEvaluations(order, semantic, async (v, i) => {
      seen.push(i);
      return { decision: v };
    });
    return { decisions: out.map((r) => r.decision), seen };
  };
  assert.deepEqual(await run('execute_all'), { decisions: [true, false, true, false], seen: [0, 1, 2, 3] });
  assert.deepEqual(await run('deny_on_first_deny'), { decisions: [true, false], seen: [0, 1] });
  assert.deepEqual(await run('permit_on_first_permit'), { decisions: [true], seen: [0] });
  assert.deepEqual(await run('permit_on_first_permit', [false, false, true, true]), { decisions: [false, false, true], seen: [0, 1, 2] });
});

const decision = (over: Partial<Decision>): Decision => ({
  decision: 'allow',
  decisionId: 'd-1',
  policySetVersion: 'sha256:v',
  principals: [{ principal: { type: 'User', id: 'alice' }, decision: 'allow', approvalRequired: false, determining: [{ id: 'p1', effect: 'permit', source: 'a.cedar:2' }], errors: [] }],
  reasons: ['User::"alice": permitted by p1'],
  errors: [],
  durationMicros: 10,
  ...over,
});

test('allow is decision true with the decision id, version, reason_admin and per-principal report', () => {
  assert.deepEqual(toEvaluationResponse(decision({})), {
    decision: true,
    context: {
      id: 'd-1',
      policy_set_version: 'sha256:v',
      reason_admin: { en: 'User::"alice": permitted by p1' },
      principals: [{ principal: 'User::"alice"', decision: 'allow', approval_required: false, determining: [{ id: 'p1', effect: 'permit', source: 'a.cedar:2' }], errors: [] }],
    },
  });
});

test('deny is decision false with a reason_user; approval_required is false with context.approval naming the policy', () => {
  const denied = toEvaluationResponse(decision({ decision: 'deny' }));
  assert.equal(denied.decision, false);
  assert.deepEqual((denied.context as { reason_user: unknown }).reason_user, { en: 'Access denied by policy.' });

  const approval = decision({
    decision: 'approval_required',
    principals: [
      { principal: { type: 'User', id: 'alice' }, decision: 'allow', approvalRequired: false, determining: [{ id: 'p1', effect: 'permit' }], errors: [] },
      { principal: { type: 'Agent', id: 'w' }, decision: 'allow', approvalRequired: true, determining: [{ id: 'needs-approval', effect: 'permit' }, { id: 'plain', effect: 'permit' }], errors: [] },
    ],
  });
  const r = toEvaluationResponse(approval, { isApprovalPolicy: (id) => id === 'needs-approval' });
  assert.equal(r.decision, false);
  assert.deepEqual((r.context as { approval: unknown }).approval, { required: true, policies: ['needs-approval'], how: APPROVAL_HOW });
});

test('a batch item error is closed with the error in context.error', () => {
  const r: AccessEvaluationResponse = errorEvaluationResponse(new UnknownActionError('action.name "fly" is not an action'));
  assert.deepEqual(r, { decision: false, context: { error: { status: 400, code: 'ERR_UNKNOWN_ACTION', message: 'action.name "fly" is not an action' } } });
});

test('metadata names the PDP and both evaluation endpoints from the base URL', () => {
  assert.deepEqual(authzenMetadata('https://pdp.example.com/'), {
    policy_decision_point: 'https://pdp.example.com',
    access_evaluation_endpoint: 'https://pdp.example.com/access/v1/evaluation',
    access_evaluations_endpoint: 'https://pdp.example.com/access/v1/evaluations',
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { InvalidContextError, InvalidEntityError, InvalidRequestError, UnknownActionError, UnknownEntityTypeError } from '../../core/errors.ts';
import { compilePolicySet } from '../compile-policy-set.ts';
import { readPolicyDirectory } from '../read-policy-directory.ts';
import { checkRequestTypes, convertContext } from './convert-context.ts';
import { disagreeingContext, referenceAcceptsContext } from './convert-test-oracle.ts';
import { buildSchemaModel, findAction, type ActionModel, type SchemaModel } from './schema-model.ts';
import { CedarRecord } from './value.ts';

// Every row runs through convertContext and cedar-wasm (`isAuthorized` with the schema and
// `validateRequest: true`, as the reference path calls it): both must accept or both refuse, as the row
// expects; for an accepted row Cedar must find `context == <the converted record>`.

const SCHEMA = `
entity User in [Team] { name?: String };
entity Team;
entity Doc;
entity Color enum ["red", "green"];
type Inner = { a: Long, b?: { c: decimal } };
action view appliesTo {
  principal: [User],
  resource: [Doc],
  context: {
    n: Long,
    s?: String,
    ok?: Bool,
    ip?: ipaddr,
    when?: datetime,
    ttl?: duration,
    who?: User,
    many?: Set<User>,
    rec?: Inner,
    recs?: Set<Inner>,
    color?: Color,
    "odd key"?: Long,
  },
};
action bare appliesTo { principal: [User], resource: [Doc, Color] };
action group;
`;

type Row = [name: string, context: unknown, expect: 'accept' | 'refuse'];

/** `facts: false` compares accept/refuse only (Cedar's policy parser cannot take a literal ~120 levels deep). */
function agree(schema: string, model: SchemaModel, action: ActionModel, rows: Row[], facts = true): void {
  for (const [name, context, expect] of rows) {
    const reference = referenceAcceptsContext(schema, model, action, context);
    let converted: CedarRecord | undefined;
    let refusal: unknown;
    try {
      converted = convertContext(context, action, model);
    } catch (err) {
      refusal = err;
    }
    if (refusal !== undefined && !(refusal instanceof InvalidContextError)) throw refusal;
    const ours = converted ? 'accept' : 'refuse';
    const theirs = reference.ok ? 'accept' : 'refuse';
    assert.equal(theirs, expect, `${name}: cedar-wasm ${theirs}s (${reference.ok ? '' : reference.message})`);
    assert.equal(ours, expect, `${name}: convertContext ${ours}s (${refusal instanceof Error ? refusal.message : ''})`);
    if (converted && facts) assert.deepEqual(disagreeingContext(schema, model, action, context, converted), [], name);
  }
}

test('context against its action\'s type, as validateRequest checks it', () => {
  const model = buildSchemaModel(SCHEMA);
  const view = findAction(model, 'view') as ActionModel;
  agree(SCHEMA, model, view, [
    ['required only', { n: 1 }, 'accept'],
    ['everything', {
      n: -1, s: 'x', ok: true, ip: '10.0.0.0/8', when: '2026-11-30T03:21:03.123Z', ttl: '90m', who: { type: 'User', id: 'u' },
      many: [{ type: 'User', id: 'u' }, ['User', 'v']], rec: { a: 1, b: { c: '0.5' } }, recs: [{ a: 1 }, { a: 2, b: { c: '1.0' } }], color: { type: 'Color', id: 'red' }, 'odd key': 3,
    }, 'accept'],
    ['missing required', {}, 'refuse'],
    ['undefined required is missing', { n: undefined }, 'refuse'],
    ['undeclared attribute', { n: 1, extra: 1 }, 'refuse'],
    ['wrong type', { n: '1' }, 'refuse'],
    ['null', { n: null }, 'refuse'],
    ['fraction', { n: 0.5 }, 'refuse'],
    ['2^60', { n: 2 ** 60 }, 'accept'],
    ['entity of the wrong type', { n: 1, who: { type: 'Doc', id: 'd' } }, 'refuse'],
    ['enum id not listed', { n: 1, color: { type: 'Color', id: 'blue' } }, 'refuse'],
    ['set element of the wrong type', { n: 1, many: [{ type: 'User', id: 'u' }, { type: 'Team', id: 't' }] }, 'refuse'],
    ['empty set', { n: 1, many: [] }, 'accept'],
    ['nested record missing required', { n: 1, rec: { b: { c: '1.0' } } }, 'refuse'],
    ['nested record undeclared attribute', { n: 1, rec: { a: 1, z: 1 } }, 'refuse'],
    ['nested decimal bad', { n: 1, rec: { a: 1, b: { c: '1.23456' } } }, 'refuse'],
    ['record given __entity', { n: 1, rec: { __entity: { type: 'User', id: 'u' } } }, 'refuse'],
    ['ip bad', { n: 1, ip: '1.2.3' }, 'refuse'],
    ['datetime via offset()', { n: 1, when: { __extn: { fn: 'offset', args: ['2026-01-01', '1h'] } } }, 'accept'],
    ['Long via toHours()', { n: { __extn: { fn: 'toHours', arg: { __extn: { fn: 'duration', arg: '3h' } } } } }, 'accept'],
    ['unknown() placeholder', { n: { __extn: { fn: 'unknown', arg: 'x' } } }, 'refuse'],
    ['unknown() where an entity is expected', { n: 1, who: { __extn: { fn: 'unknown', arg: 'x' } } }, 'refuse'],
    ['__expr', { n: 1, s: { __expr: '"x"' } }, 'refuse'],
    ['lone surrogate (the engine throws)', { n: 1, s: '\udc00' }, 'refuse'],
    ['lone surrogate in a key (the engine throws)', { n: 1, '\ud800': 1 }, 'refuse'],
  ]);
  const bare = findAction(model, 'bare') as ActionModel;
  agree(SCHEMA, model, bare, [
    ['no context type: empty record', {}, 'accept'],
    ['no context type: any attribute refused', { a: 1 }, 'refuse'],
  ]);
});

test('Mandate\'s example schema: the context authorize builds converts, with caller arguments', async () => {
  const dir = await readPolicyDirectory(new URL('../../../examples/policies', import.meta.url).pathname);
  const set = compilePolicySet(dir);
  const model = buildSchemaModel(set.schemaText);
  const send = findAction(model, 'send') as ActionModel;
  const base = { delegation: { depth: 1, user: { type: 'User', id: 'alice' }, agents: [{ type: 'Agent', id: 'sales-outreach' }] }, time: { now: '2026-11-30T03:21:03.123Z' } };
  agree(set.schemaText, model, send, [
    ['what Mandate sets', base, 'accept'],
    ['with task, workflow, args and risk', {
      ...base, task: { type: 'Task', id: 't1' }, workflow: { type: 'Workflow', id: 'lead-followup' }, intent: 'follow up', step: 2,
      authn: { method: 'oidc', proofOfPossession: true, assurance: 2 }, args: { recipient: 'a@b.example', amount: 100, limit: 5 }, risk: { score: 10, signals: ['new-device'] },
    }, 'accept'],
    ['an undeclared tool argument', { ...base, args: { recipient: 'a@b.example', attachment: 'x' } }, 'refuse'],
    ['a wrongly typed tool argument', { ...base, args: { amount: '100' } }, 'refuse'],
    ['a task that is not a Task', { ...base, task: { type: 'Workflow', id: 'w' } }, 'refuse'],
    ['without time', { delegation: base.delegation }, 'refuse'],
  ]);
});

test('context refusals name the attribute path; an action given by uid works too', () => {
  const model = buildSchemaModel(SCHEMA);
  const view = { type: 'Action', id: 'view' };
  const cases: Array<[unknown, RegExp]> = [
    [{ n: 1, rec: { a: 1, b: { c: 5 } } }, /^context\.rec\.b\.c: type error: expected string, got long/],
    [{ n: 1, many: [{ type: 'User', id: 'u' }, 5] }, /^context\.many\[1\]: expected a literal entity reference/],
    [{ n: 1, 'odd key': 'x' }, /^context\["odd key"\]: expected long, got string/],
    [{}, /^context\.n: required context attribute `n` is missing/],
    [[], /^context must be a JSON object/],
  ];
  for (const [context, message] of cases) {
    assert.throws(() => convertContext(context, view, model), (err: unknown) => err instanceof InvalidContextError && message.test(err.message), message.source);
  }
  assert.ok(convertContext({ n: 1 }, view, model) instanceof CedarRecord);
  assert.throws(() => convertContext({}, { type: 'Action', id: 'nope' }, model), UnknownActionError);
});

test('checkRequestTypes refuses what validateRequest refuses, with authorize.ts\'s errors', () => {
  const model = buildSchemaModel(SCHEMA);
  const rows: Array<[string, unknown, string, unknown, (new (...a: never[]) => Error) | undefined]> = [
    ['applies', { type: 'User', id: 'u' }, 'view', { type: 'Doc', id: 'd' }, undefined],
    ['enumerated resource, listed id', { type: 'User', id: 'u' }, 'bare', { type: 'Color', id: 'red' }, undefined],
    ['enumerated resource, unlisted id', { type: 'User', id: 'u' }, 'bare', { type: 'Color', id: 'blue' }, InvalidEntityError],
    ['undeclared action', { type: 'User', id: 'u' }, 'fly', { type: 'Doc', id: 'd' }, UnknownActionError],
    ['action group applies to nothing', { type: 'User', id: 'u' }, 'group', { type: 'Doc', id: 'd' }, UnknownActionError],
    ['undeclared principal type', { type: 'Robot', id: 'r' }, 'view', { type: 'Doc', id: 'd' }, UnknownEntityTypeError],
    ['principal type not applicable', { type: 'Team', id: 't' }, 'view', { type: 'Doc', id: 'd' }, UnknownActionError],
    ['resource type not applicable', { type: 'User', id: 'u' }, 'view', { type: 'User', id: 'd' }, UnknownActionError],
    ['action type as principal', { type: 'Action', id: 'view' }, 'view', { type: 'Doc', id: 'd' }, UnknownEntityTypeError],
  ];
  for (const [name, principal, action, resource, error] of rows) {
    const answer = cedar.isAuthorized({
      principal: principal as never, action: { type: 'Action', id: action }, resource: resource as never, context: (action === 'view' ? { n: 1 } : {}) as never,
      schema: SCHEMA, validateRequest: true, policies: { staticPolicies: {} }, entities: [],
    });
    assert.equal(answer.type === 'success', error === undefined, `${name}: cedar-wasm ${answer.type}`);
    if (error) assert.throws(() => checkRequestTypes(principal as never, action, resource as never, model), error, name);
    else assert.equal(checkRequestTypes(principal as never, action, resource as never, model).uid.id, action, name);
  }
  assert.throws(() => checkRequestTypes({ type: 5 } as never, 'view', { type: 'Doc', id: 'd' }, model), InvalidRequestError);
  assert.throws(
    () => checkRequestTypes({ type: 'Team', id: 't' }, 'view', { type: 'Doc', id: 'd' }, model),
    (e: unknown) => e instanceof UnknownActionError && e.message === 'action "view" does not apply to principals of type Team; it applies to User',
  );
});

test('nesting: a context is refused exactly where cedar-wasm\'s JSON reader gives up', () => {
  const nested = (d: number): unknown => (d === 0 ? 1 : [nested(d - 1)]);
  const setOf = (d: number): string => (d === 0 ? 'Long' : `Set<${setOf(d - 1)}>`);
  for (const d of [125, 126]) {
    const schema = `entity A; action go appliesTo { principal: A, resource: A, context: { x?: ${setOf(d)}, ip?: ipaddr } };`;
    const model = buildSchemaModel(schema);
    const expect = d === 125 ? 'accept' : 'refuse';
    agree(schema, model, findAction(model, 'go') as ActionModel, [
      [`${d} levels`, { x: nested(d) }, expect],
      [`an extra key of an implicit extension call ${d - 1} levels deep`, { ip: { fn: 'ip', arg: '1.1.1.1', note: nested(d - 1) } }, expect],
    ], false);
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileAuthorizer, type CompiledAuthorizationResponse } from './compiled-authorizer.ts';
import { compileTexts, decideBoth, decideReference, normalizeResponse, toCompiledRequest, type EntityJsonInput, type ReferenceRequest, type UidJson } from './reference-check.ts';
import { CedarRecord, EntityUid, type EntityLookup } from './value.ts';

const uid = (type: string, id: string): UidJson => ({ type, id });

// A small world: a user group hierarchy, a folder, and an action hierarchy (read ∈ readGroup ∈ all, write ∈ all).
const world: EntityJsonInput[] = [
  { uid: uid('User', 'u0'), attrs: { level: 1 }, parents: [uid('Group', 'g0')] },
  { uid: uid('User', 'u1'), attrs: { level: 2 }, parents: [uid('Group', 'g1')] },
  { uid: uid('User', 'u2') },
  { uid: uid('Agent', 'a0'), parents: [uid('Group', 'g0')] },
  { uid: uid('Group', 'g0'), parents: [uid('Group', 'g1')] },
  { uid: uid('Group', 'g1') },
  { uid: uid('Doc', 'd0'), attrs: { owner: { __entity: uid('User', 'u0') } }, parents: [uid('Folder', 'f0')] },
  { uid: uid('Doc', 'd1') },
  { uid: uid('Folder', 'f0') },
  { uid: uid('Action', 'read'), parents: [uid('Action', 'readGroup')] },
  { uid: uid('Action', 'readGroup'), parents: [uid('Action', 'all')] },
  { uid: uid('Action', 'write'), parents: [uid('Action', 'all')] },
  { uid: uid('Action', 'delete') },
  { uid: uid('Action', 'all') },
];

const principals = [uid('User', 'u0'), uid('User', 'u1'), uid('User', 'u2'), uid('Agent', 'a0'), uid('User', 'ghost')];
const actions = [uid('Action', 'read'), uid('Action', 'write'), uid('Action', 'delete'), uid('Action', 'readGroup'), uid('Action', 'ghost')];
const resources = [uid('Doc', 'd0'), uid('Doc', 'd1'), uid('Folder', 'f0'), uid('Doc', 'ghost')];
const requests: ReferenceRequest[] = principals.flatMap((principal) =>
  actions.flatMap((action) => resources.map((resource) => ({ principal, action, resource, entities: world, context: { flag: principal.id === 'u1' } }))),
);

test("Cedar's algorithm: default deny, forbid overrides permit, determining policies, erroring policies skipped", () => {
  const sets: Array<[string, Record<string, string>, { decision: 'allow' | 'deny'; reason: string[]; errors: string[] }]> = [
    ['no policy applies: default deny', { p: 'permit(principal == User::"u1", action, resource);' }, { decision: 'deny', reason: [], errors: [] }],
    ['one permit', { p: 'permit(principal, action, resource);' }, { decision: 'allow', reason: ['p'], errors: [] }],
    ['all satisfied permits determine', { p1: 'permit(principal, action, resource);', p2: 'permit(principal in Group::"g1", action, resource);' }, { decision: 'allow', reason: ['p1', 'p2'], errors: [] }],
    ['forbid overrides permit; only forbids determine', { p: 'permit(principal, action, resource);', f: 'forbid(principal, action, resource);' }, { decision: 'deny', reason: ['f'], errors: [] }],
    ['an erroring forbid is skipped (so the permit allows) and reported', { p: 'permit(principal, action, resource);', f: 'forbid(principal, action, resource) when { principal.nope };' }, { decision: 'allow', reason: ['p'], errors: ['f'] }],
    ['an erroring permit is skipped', { p: 'permit(principal, action, resource) when { principal.nope == 1 };' }, { decision: 'deny', reason: [], errors: ['p'] }],
    ['errors are reported even when a forbid decides', { p: 'permit(principal, action, resource) when { 1 };', f: 'forbid(principal, action, resource);' }, { decision: 'deny', reason: ['f'], errors: ['p'] }],
    ['a false scope hides an erroring condition', { p: 'permit(principal == User::"u1", action, resource) when { principal.nope };' }, { decision: 'deny', reason: [], errors: [] }],
    ['when and unless in order', { p: 'permit(principal, action, resource) when { true } unless { false } when { principal.level == 1 };' }, { decision: 'allow', reason: ['p'], errors: [] }],
    ['a non-bool when is an error', { p: 'permit(principal, action, resource) when { 1 };' }, { decision: 'deny', reason: [], errors: ['p'] }],
    ['a non-bool unless is an error', { p: 'permit(principal, action, resource) unless { "x" };' }, { decision: 'deny', reason: [], errors: ['p'] }],
    ['a false when stops before an erroring one', { p: 'permit(principal, action, resource) when { false } when { principal.nope };' }, { decision: 'deny', reason: [], errors: [] }],
  ];
  const req: ReferenceRequest = { principal: uid('User', 'u0'), action: uid('Action', 'read'), resource: uid('Doc', 'd0'), entities: world };
  for (const [name, policies, expected] of sets) {
    const { reference, compiled } = decideBoth(policies, req);
    assert.deepEqual(compiled, reference, `${name}: compiled path differs from cedar-wasm`);
    assert.deepEqual({ decision: reference.decision, reason: reference.reason, errors: reference.errors.map((e) => e.policyId) }, expected, name);
  }
});

test('every scope form, over every request of the world, as cedar-wasm decides it', () => {
  const policies: Record<string, string> = {
    pAll: 'permit(principal, action, resource) when { context.flag };',
    pEq: 'permit(principal == User::"u0", action, resource);',
    pIn: 'permit(principal in Group::"g1", action == Action::"read", resource);',
    pIs: 'permit(principal is Agent, action in Action::"all", resource);',
    pIsIn: 'permit(principal is User in Group::"g0", action in [Action::"write", Action::"delete"], resource is Doc);',
    pGhost: 'permit(principal in User::"ghost", action == Action::"ghost", resource);',
    rEq: 'permit(principal, action in Action::"readGroup", resource == Doc::"d1");',
    rIn: 'permit(principal, action, resource in Folder::"f0") when { resource has owner && principal in resource.owner };',
    rIsIn: 'permit(principal, action == Action::"readGroup", resource is Doc in Folder::"f0");',
    fWrite: 'forbid(principal is User, action == Action::"write", resource == Doc::"d1");',
    fErr: 'forbid(principal, action in Action::"readGroup", resource is Folder) when { principal.level > 1 };',
    fUnless: 'forbid(principal in Group::"g0", action, resource is Doc) unless { resource has owner };',
  };
  const compiled = compileTexts(policies);
  assert.ok(compiled.ok);
  let allowed = 0;
  let errored = 0;
  for (const req of requests) {
    const reference = decideReference(policies, req);
    const request = toCompiledRequest(req);
    assert.deepEqual(normalizeResponse(compiled.authorizer.isAuthorized(request)), reference, JSON.stringify({ principal: req.principal, action: req.action, resource: req.resource }));
    // The index never leaves out a policy that could be satisfied or error.
    const applicable = new Set(compiled.authorizer.applicablePolicyIds(request));
    for (const id of [...reference.reason, ...reference.errors.map((e) => e.policyId)]) assert.ok(applicable.has(id), `${id} left out by the index`);
    if (reference.decision === 'allow') allowed++;
    if (reference.errors.length > 0) errored++;
  }
  // The world must exercise both outcomes and errors to mean anything.
  assert.ok(allowed > 10 && allowed < requests.length - 10 && errored > 0, `${allowed} allowed, ${errored} errored`);
});

test('random policy sets over the world decide every request exactly as cedar-wasm (seeded)', () => {
  const entityOf = (types: string[]) => fc.constantFrom(...world.map((e) => e.uid).filter((u) => types.includes(u.type)), uid('User', 'ghost'), uid('Group', 'ghost'));
  const ref = (u: UidJson) => `${u.type}::"${u.id}"`;
  const principalScope = fc.oneof(
    fc.constant('principal'),
    entityOf(['User', 'Agent']).map((u) => `principal == ${ref(u)}`),
    entityOf(['Group', 'User']).map((u) => `principal in ${ref(u)}`),
    fc.constantFrom('User', 'Agent', 'Group').map((t) => `principal is ${t}`),
    fc.tuple(fc.constantFrom('User', 'Agent'), entityOf(['Group'])).map(([t, u]) => `principal is ${t} in ${ref(u)}`),
  );
  const actionRef = fc.constantFrom(...actions, uid('Action', 'all')).map(ref);
  const actionScope = fc.oneof(
    fc.constant('action'),
    actionRef.map((a) => `action == ${a}`),
    actionRef.map((a) => `action in ${a}`),
    fc.array(actionRef, { maxLength: 3 }).map((list) => `action in [${list.join(', ')}]`),
  );
  const resourceScope = fc.oneof(
    fc.constant('resource'),
    entityOf(['Doc', 'Folder']).map((u) => `resource == ${ref(u)}`),
    entityOf(['Folder', 'Doc']).map((u) => `resource in ${ref(u)}`),
    fc.constantFrom('Doc', 'Folder').map((t) => `resource is ${t}`),
    entityOf(['Folder']).map((u) => `resource is Doc in ${ref(u)}`),
  );
  const condition = fc.constantFrom(
    '',
    ' when { context.flag }',
    ' unless { context.flag }',
    ' when { principal.level == 1 }',
    ' when { principal has level && principal.level > 1 }',
    ' when { resource.owner == principal }',
    ' when { action in Action::"readGroup" }',
    ' unless { principal in Group::"g1" }',
  );
  const policy = fc.tuple(fc.constantFrom('permit', 'permit', 'forbid'), principalScope, actionScope, resourceScope, condition).map(([effect, p, a, r, c]) => `${effect}(${p}, ${a}, ${r})${c};`);
  const sets = fc.sample(fc.array(policy, { minLength: 1, maxLength: 25 }), { seed: 3, numRuns: 12 });
  for (const list of sets) {
    const policies = Object.fromEntries(list.map((text, i) => [`p${i}`, text]));
    const compiled = compileTexts(policies);
    assert.ok(compiled.ok);
    for (const req of requests) {
      const reference = decideReference(policies, req);
      assert.deepEqual(normalizeResponse(compiled.authorizer.isAuthorized(toCompiledRequest(req))), reference, `${JSON.stringify(policies)}\n${JSON.stringify([req.principal, req.action, req.resource])}`);
    }
  }
});

test('the index evaluates only the policies that can apply: 1,000 policies, a handful selected', () => {
  const policies: Record<string, string> = {};
  for (let i = 0; i < 250; i++) {
    policies[`eq${i}`] = `permit(principal, action == Action::"a${i}", resource);`;
    policies[`in${i}`] = `permit(principal, action in Action::"g${i}", resource);`;
    policies[`type${i}`] = `permit(principal is Agent, action == Action::"a${i}", resource is Doc);`;
    policies[`user${i}`] = `forbid(principal == User::"u${i}", action == Action::"a${i}", resource);`;
  }
  policies.always = 'permit(principal, action, resource) when { context.flag };';
  const compiled = compileTexts(policies);
  assert.ok(compiled.ok);
  const entities = [{ uid: uid('Action', 'a7'), parents: [uid('Action', 'g3'), uid('Action', 'g9')] }];
  const user = { principal: uid('User', 'u7'), action: uid('Action', 'a7'), resource: uid('Doc', 'd'), entities, context: { flag: false } };
  assert.deepEqual(compiled.authorizer.applicablePolicyIds(toCompiledRequest(user)), ['in3', 'eq7', 'user7', 'in9', 'always']);
  const agent = { ...user, principal: uid('Agent', 'x') };
  assert.deepEqual(compiled.authorizer.applicablePolicyIds(toCompiledRequest(agent)), ['in3', 'eq7', 'type7', 'in9', 'always']);
  // Same answers as cedar-wasm, which evaluates all 1,001.
  for (const req of [user, agent]) assert.deepEqual(normalizeResponse(compiled.authorizer.isAuthorized(toCompiledRequest(req))), decideReference(policies, req));
  // An action with no entity is only `in` itself.
  assert.deepEqual(compiled.authorizer.applicablePolicyIds(toCompiledRequest({ ...user, entities: [] })), ['eq7', 'user7', 'always']);
});

test('the index follows the action hierarchy of each request, not a cached one', () => {
  const compiled = compileTexts({ p: 'permit(principal, action in Action::"all", resource);' });
  assert.ok(compiled.ok);
  const ask = (entities: EntityLookup) =>
    compiled.authorizer.isAuthorized({ principal: new EntityUid('User', 'u'), action: new EntityUid('Action', 'read'), resource: new EntityUid('Doc', 'd'), context: new CedarRecord(new Map()), entities }).decision;
  const member = toCompiledRequest({ entities: [{ uid: uid('Action', 'read'), parents: [uid('Action', 'all')] }] }).entities;
  const alone = toCompiledRequest({ entities: [{ uid: uid('Action', 'read') }] }).entities;
  assert.equal(ask(member), 'allow');
  assert.equal(ask(alone), 'deny');
  assert.equal(ask(member), 'allow');
  assert.equal(ask(toCompiledRequest({}).entities), 'deny');
  // Many principal and resource types: the cache stays bounded and answers stay right.
  for (let i = 0; i < 5000; i++) {
    const r: CompiledAuthorizationResponse = compiled.authorizer.isAuthorized({ principal: new EntityUid(`P${i}`, 'x'), action: new EntityUid('Action', 'read'), resource: new EntityUid(`R${i}`, 'y'), context: new CedarRecord(new Map()), entities: member });
    assert.equal(r.decision, 'allow');
  }
});

test('a set with unsupported features is refused whole, every feature listed by policy', () => {
  const result = compileAuthorizer([
    { id: 'ok', effect: 'permit', json: { effect: 'permit', principal: { op: 'All' }, action: { op: 'All' }, resource: { op: 'All' }, conditions: [] } },
    { id: 'slot', effect: 'permit', json: { effect: 'permit', principal: { op: '==', slot: '?principal' }, action: { op: 'All' }, resource: { op: 'in', slot: '?resource' }, conditions: [] } },
    { id: 'big', effect: 'forbid', json: { effect: 'forbid', principal: { op: 'All' }, action: { op: 'All' }, resource: { op: 'All' }, conditions: [{ kind: 'when', body: { '==': { left: { Value: 2 ** 60 }, right: { unknown: [{ Value: 'x' }] } } } }] } },
    { id: 'mismatch', effect: 'forbid', json: { effect: 'permit', principal: { op: 'All' }, action: { op: 'All' }, resource: { op: 'All' }, conditions: [] } },
    { id: 'ok', effect: 'permit', json: { effect: 'permit', principal: { op: 'All' }, action: { op: 'All' }, resource: { op: 'All' }, conditions: [] } },
  ]);
  assert.deepEqual(result, {
    ok: false,
    unsupported: [
      { policyId: 'slot', feature: 'template slot' },
      { policyId: 'big', feature: 'number literal 1152921504606847000 (not an integer the JSON form carries exactly)' },
      { policyId: 'big', feature: 'unknown() (partial evaluation)' },
      { policyId: 'mismatch', feature: "effect forbid does not match the policy's JSON (permit)" },
      { policyId: 'ok', feature: 'duplicate policy id' },
    ],
  });
});

test('a defect is not disguised as a policy error: anything but an evaluation error propagates', () => {
  const compiled = compileTexts({ p: 'permit(principal, action, resource) when { principal has x };' });
  assert.ok(compiled.ok);
  const broken: EntityLookup = {
    get: (key) => {
      if (key.startsWith('User')) throw new RangeError('store exploded');
      return undefined;
    },
  };
  assert.throws(
    () => compiled.authorizer.isAuthorized({ principal: new EntityUid('User', 'u'), action: new EntityUid('Action', 'a'), resource: new EntityUid('Doc', 'd'), context: new CedarRecord(new Map()), entities: broken }),
    RangeError,
  );
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileCondition, compileExpression, EvaluationError, valueFromJson, UnsupportedValue } from './compile-expression.ts';
import { assertBoth, compileTexts, decideBoth, lookupFromJson, type EntityJsonInput, type ReferenceRequest } from './reference-check.ts';
import { Datetime, ExtensionError } from './extensions.ts';
import { CedarRecord, CedarSet, EntityUid } from './value.ts';

// Every table row runs through cedar-wasm (no schema, so errors surface) and the compiled path: both must
// give the expected outcome, and the same one, error messages included.

const u = (type: string, id: string) => ({ __entity: { type, id } });

const entities: EntityJsonInput[] = [
  {
    uid: { type: 'User', id: 'alice' },
    attrs: { n: 1, s: 'str', r: { x: 1, inner: { y: 2 } }, mgr: u('User', 'bob'), ghost: u('User', 'nobody'), list: [1, 2] },
    parents: [{ type: 'Group', id: 'g1' }],
    tags: { t: 'v', n: 1 },
  },
  { uid: { type: 'User', id: 'bob' }, attrs: { name: 'Bob' }, parents: [] },
  { uid: { type: 'Group', id: 'g1' }, parents: [{ type: 'Group', id: 'g2' }] },
  { uid: { type: 'Group', id: 'g2' }, parents: [{ type: 'Group', id: 'g3' }] },
  { uid: { type: 'Group', id: 'g3' } },
  { uid: { type: 'Doc', id: 'd' }, attrs: { owner: u('User', 'alice'), labels: ['a', 'b'], level: 3 }, parents: [{ type: 'Folder', id: 'f' }] },
  { uid: { type: 'Folder', id: 'f' } },
  { uid: { type: 'Action', id: 'view' }, parents: [{ type: 'Action', id: 'read' }] },
  { uid: { type: 'Action', id: 'read' }, parents: [{ type: 'Action', id: 'any' }] },
];
const context = { n: 5, s: 'hello', list: [1, 2, 3], rec: { a: 1, b: { c: true } }, who: u('User', 'bob'), flag: true };
const req: ReferenceRequest = { entities, context };

// Long's bounds, built from literals the JSON policy form carries exactly (|n| < 2^53).
const MAX = '((4294967296 * 1073741824 - 1) * 2 + 1)';
const MIN = '(-4294967296 * 1073741824 * 2)';

test('Long arithmetic: exact 64-bit results and overflow errors on + - * and negation', () => {
  assertBoth(
    [
      [`${MAX} == ${MAX}`, true],
      [`${MAX} + 1 == 0`, /integer overflow while attempting to add the values `9223372036854775807` and `1`/],
      [`${MAX} + 0 == ${MAX}`, true],
      [`${MIN} - 1 == 0`, /integer overflow while attempting to subtract the values `-9223372036854775808` and `1`/],
      [`${MIN} + ${MAX} == -1`, true],
      [`${MAX} * 2 == 0`, /integer overflow while attempting to multiply the values `9223372036854775807` and `2`/],
      [`${MIN} * -1 == 0`, /integer overflow while attempting to multiply the values `-9223372036854775808` and `-1`/],
      [`-${MIN} == 0`, /integer overflow while attempting to negate the value `-9223372036854775808`/],
      [`-(${MAX}) == ${MIN} + 1`, true],
      ['-(-(5)) == 5', true],
      // Beyond 2^53 the results stay exact: no double rounding.
      ['9007199254740991 + 2 - 2 == 9007199254740991', true],
      ['(9007199254740991 + 2) * 3 == 9007199254740991 * 3 + 6', true],
      ['(9007199254740991 + 1) == (9007199254740991 + 2)', false],
      ['3 - 5 * 2 == -7', true],
      ['1 + "a"', /type error: expected long, got string/],
      ['"a" + 1', /type error: expected long, got string/],
      ['principal + 1', /type error: expected long, got \(entity of type `User`\)/],
      ['-"a" == 1', /type error: expected long, got string/],
      ['context.n * context.n == 25', true],
      ['1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 3 && !(3 < 3)', true],
      ['"a" < "b"', /type error: expected one of \[long, datetime, duration\], got string/],
      ['"x" > 1', /type error: expected long, got string/],
      ['principal < 1', /type error: expected long, got \(entity of type `User`\)/],
    ],
    req,
  );
});

test('== and !=: different types are unequal (never an error); sets by members, records by fields', () => {
  assertBoth(
    [
      ['1 == "1"', false],
      ['1 != "1"', true],
      ['true == 1', false],
      ['principal == User::"alice"', true],
      ['principal == Admin::"alice"', false],
      ['principal != User::"bob"', true],
      ['User::"alice" == principal', true],
      ['[1, 2] == [2, 1]', true],
      ['[1, 2, 2] == [2, 1]', true],
      ['[1, 2] == [1, 2, 3]', false],
      ['[[1, 2], [3]] == [[3], [2, 1]]', true],
      ['[1, "1"] == ["1", 1]', true],
      ['[] == []', true],
      ['{a: 1, b: 2} == {b: 2, a: 1}', true],
      ['{a: 1, b: 2} == {a: 1, b: 2, c: 3}', false],
      ['{a: [1, 2]} == {a: [2, 1]}', true],
      ['{a: 1} == {a: "1"}', false],
      ['{"__proto__": 1} == {"__proto__": 1}', true],
      ['context.rec == {b: {c: true}, a: 1}', true],
      ['context.list == [3, 2, 1]', true],
      ['[principal, User::"alice"] == [User::"alice"]', true],
      ['[decimal("1.0"), ip("::1")] == [ip("0::1"), decimal("1.0000")]', true],
      ['principal == principal.nope', /`User::"alice"` does not have the attribute `nope`/],
      ['principal.nope != 1', /does not have the attribute `nope`/],
    ],
    req,
  );
});

test('in: transitive over the hierarchy, equality counts, a missing entity is only in itself, types checked', () => {
  assertBoth(
    [
      ['principal in Group::"g1"', true],
      ['principal in Group::"g3"', true],
      ['principal in principal', true],
      ['principal in User::"bob"', false],
      ['principal in [Group::"nope", Group::"g2"]', true],
      ['principal in []', false],
      ['Group::"g1" in Group::"g3"', true],
      ['Group::"g3" in Group::"g1"', false],
      ['User::"nobody" in User::"nobody"', true],
      ['User::"nobody" in Group::"g1"', false],
      ['Group::"nope" in [Group::"nope"]', true],
      ['resource in Folder::"f"', true],
      ['action in Action::"any"', true],
      ['principal in [Group::"g2", 1]', /type error: expected \(entity of type `any_entity_type`\), got long/],
      ['principal in [1, Group::"g2"]', /got long/],
      ['User::"nobody" in [User::"nobody", 1]', /got long/],
      ['1 in Group::"g1"', /type error: expected \(entity of type `any_entity_type`\), got long/],
      ['principal in 1', /type error: expected one of \[set, \(entity of type `any_entity_type`\)\], got long/],
      ['principal in {a: Group::"g1"}', /got record/],
      ['principal.mgr in principal.mgr', true],
      ['context.who in User::"bob"', true],
    ],
    req,
  );
});

test('attribute access and has: records, entities, missing attributes and missing entities', () => {
  assertBoth(
    [
      ['principal.n == 1', true],
      ['principal.r.inner.y == 2', true],
      ['principal["s"] == "str"', true],
      ['principal.mgr.name == "Bob"', true],
      ['resource.owner.n == 1', true],
      ['principal.nope == 1', /`User::"alice"` does not have the attribute `nope`/],
      ['principal.r.nope == 1', /record does not have the attribute `nope`/],
      ['context.nope == 1', /record does not have the attribute `nope`/],
      ['User::"nobody".x == 1', /entity `User::"nobody"` does not exist/],
      ['principal.ghost.x == 1', /entity `User::"nobody"` does not exist/],
      ['[1].x == 1', /type error: expected one of \[record, \(entity of type `any_entity_type`\)\], got set/],
      ['"s".x == 1', /got string/],
      ['principal has n', true],
      ['principal has nope', false],
      ['principal has "s"', true],
      ['User::"nobody" has x', false],
      ['principal.ghost has x', false],
      ['principal has r.x', true],
      ['principal has r.y', false],
      ['principal has q.y', false],
      ['principal has r.inner.y', true],
      ['principal has r.inner.z', false],
      ['principal has mgr.name', true],
      ['principal has ghost.name', false],
      ['principal has n.b', /type error: expected one of \[record, \(entity of type `any_entity_type`\)\], got long/],
      ['[1] has x', /got set/],
      ['context has rec.b.c', true],
      ['{a: 1} has a', true],
      ['principal has nope && principal.nope == 1', false],
    ],
    req,
  );
});

test('getTag and hasTag: missing tag is an error, missing entity is an error for getTag and false for hasTag', () => {
  assertBoth(
    [
      ['principal.getTag("t") == "v"', true],
      ['principal.getTag("n") + 1 == 2', true],
      ['principal.hasTag("t")', true],
      ['principal.hasTag("u")', false],
      ['principal.getTag("u") == "v"', /`User::"alice"` does not have the tag `u`/],
      ['User::"bob".getTag("t") == 1', /`User::"bob"` does not have the tag `t`/],
      ['User::"bob".hasTag("t")', false],
      ['User::"nobody".hasTag("t")', false],
      ['User::"nobody".getTag("t") == 1', /entity `User::"nobody"` does not exist/],
      ['principal.hasTag(1)', /type error: expected string, got long/],
      ['principal.getTag(1) == 1', /type error: expected string, got long/],
      ['{a: 1}.hasTag("t")', /type error: expected \(entity of type `any_entity_type`\), got record/],
      ['{a: 1}.hasTag(1)', /got record/],
      ['principal.hasTag("t") && principal.getTag("t") == "v"', true],
    ],
    req,
  );
});

test('like: wildcards, escaped star, anchoring, and types', () => {
  assertBoth(
    [
      ['"a*b" like "a\\*b"', true],
      ['"axb" like "a\\*b"', false],
      ['"axxb" like "a*b"', true],
      ['"ab" like "a*b"', true],
      ['"abc" like "a*b"', false],
      ['"" like ""', true],
      ['"" like "*"', true],
      ['"x" like ""', false],
      ['"abcabc" like "*abc"', true],
      ['"aXbXc" like "a*b*c"', true],
      ['"abcb" like "*b*b"', true],
      ['"abab" like "*ab*ab*"', true],
      ['"aba" like "ab*ba"', false],
      ['"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab" like "*a*a*a*a*a*a*a*a*a*a*a*a*c"', false],
      ['"***" like "\\**"', true],
      ['"é🙂ü" like "é*ü"', true],
      ['"é🙂ü" like "*🙂*"', true],
      ['context.s like "h*o"', true],
      ['1 like "x"', /type error: expected string, got long/],
    ],
    req,
  );
});

test('&&, || and if-then-else: short-circuit and lazy branches; non-bool operands are type errors', () => {
  assertBoth(
    [
      ['false && principal.nope', false],
      ['false && 1', false],
      ['true || principal.nope', true],
      ['true || 1', true],
      ['true && principal.nope', /does not have the attribute `nope`/],
      ['false || principal.nope', /does not have the attribute `nope`/],
      ['principal.nope && false', /does not have the attribute `nope`/],
      ['true && 1', /type error: expected bool, got long/],
      ['false || 1', /type error: expected bool, got long/],
      ['1 && false', /type error: expected bool, got long/],
      ['1 || true', /type error: expected bool, got long/],
      ['!1', /type error: expected bool, got long/],
      ['!false', true],
      ['if true then 1 else principal.nope', /type error: expected bool, got long/],
      ['(if true then 1 else principal.nope) == 1', true],
      ['(if false then principal.nope else 2) == 2', true],
      ['(if false then decimal("bad") else 2) == 2', true],
      ['(if true then decimal("bad") else 2) == 2', /`bad` is not a well-formed decimal value/],
      ['(if 1 then 2 else 3) == 3', /type error: expected bool, got long/],
      ['(if principal.nope then 2 else 3) == 3', /does not have the attribute `nope`/],
      [`false && ${MAX} + 1 == 0`, false],
      ['context.flag || principal.nope', true],
    ],
    req,
  );
});

test('sets: contains, containsAll, containsAny, isEmpty, and element errors', () => {
  assertBoth(
    [
      ['[1, 2].contains(2)', true],
      ['[1, 2].contains("2")', false],
      ['[[1], [2, 3]].contains([3, 2])', true],
      ['[{a: 1}].contains({a: 1})', true],
      ['[principal].contains(User::"alice")', true],
      ['[1, 2, 3].containsAll([3, 1])', true],
      ['[1, 2].containsAll([1, 4])', false],
      ['[1, 2].containsAll([])', true],
      ['[].containsAll([1])', false],
      ['[1, 2].containsAny([4, 2])', true],
      ['[1, 2].containsAny([])', false],
      ['[].isEmpty()', true],
      ['[1].isEmpty()', false],
      ['context.list.contains(2)', true],
      ['resource.labels.containsAny(["b", "z"])', true],
      ['{}.isEmpty()', /type error: expected set, got record/],
      ['1.contains(1)', /type error: expected set, got long/],
      ['[1].containsAll(1)', /type error: expected set, got long/],
      ['1.containsAny([1])', /type error: expected set, got long/],
      ['[1].contains(principal.nope)', /does not have the attribute `nope`/],
      ['[1, principal.nope].contains(1)', /does not have the attribute `nope`/],
      ['[principal.x, principal.y].isEmpty()', /does not have the attribute `x`/],
      ['{b: principal.y, a: principal.x} == {}', /does not have the attribute `x`/],
    ],
    req,
  );
});

test('is and is-in: entity type tests, lazy in, type errors', () => {
  assertBoth(
    [
      ['principal is User', true],
      ['principal is Group', false],
      ['principal is User in Group::"g2"', true],
      ['principal is User in Group::"zzz"', false],
      ['principal is Doc in 1', false],
      ['principal is User in 1', /type error: expected one of \[set, \(entity of type `any_entity_type`\)\], got long/],
      ['principal is User in [Group::"g3"]', true],
      ['1 is User', /type error: expected \(entity of type `any_entity_type`\), got long/],
      ['1 is User in 2', /got long/],
      ['User::"nobody" is User', true],
    ],
    req,
  );
});

test('extension calls inside expressions: arguments from the request, wrong arity at evaluation time', () => {
  assertBoth(
    [
      ['ip(context.s).isIpv4()', /invalid IP address: hello/],
      ['ip("10.0.0.1").isInRange(ip("10.0.0.0/8")) && !ip("11.0.0.1").isInRange(ip("10.0.0.0/8"))', true],
      ['decimal("1.5").lessThan(decimal("2.0"))', true],
      ['datetime("2024-01-01").offset(duration("1d")) > datetime("2024-01-01")', true],
      ['ip("1.2.3.4").isIpv4(principal.nope)', /does not have the attribute `nope`/],
      ['ip("1.2.3.4").isIpv4(1)', /wrong number of arguments provided to extension function `isIpv4`: expected 1, got 2/],
    ],
    req,
  );
});

test('unsupported features are reported at compile time, never approximated', () => {
  const expr = (e: unknown) => {
    const unsupported: string[] = [];
    compileExpression(e, unsupported);
    return unsupported;
  };
  assert.deepEqual(expr({ Value: 9007199254740992 }), ['number literal 9007199254740992 (not an integer the JSON form carries exactly)']);
  assert.deepEqual(expr({ Value: 1.5 }), ['number literal 1.5 (not an integer the JSON form carries exactly)']);
  assert.deepEqual(expr({ Value: null }), ['value literal null']);
  assert.deepEqual(expr({ Slot: '?principal' }), ['template slot']);
  assert.deepEqual(expr({ unknown: [{ Value: 'x' }] }), ['unknown() (partial evaluation)']);
  assert.deepEqual(expr({ frobnicate: [] }), ['extension function frobnicate']);
  assert.deepEqual(expr({ '==': { left: { Var: 'principal' } } }), ['malformed expression']);
  assert.deepEqual(expr({ Var: 'nobody' }), ['variable nobody']);
  assert.deepEqual(expr({ Value: 9007199254740991 }), []);
  assert.deepEqual(expr({ Value: 2n ** 63n - 1n }), []);
  assert.deepEqual(expr({ Value: 2n ** 63n }), ["integer literal 9223372036854775808 outside Cedar's Long range"]);

  // A literal beyond 2^53 is lossy in the JSON form (cedar-wasm gives 9007199254740992 for ...993).
  const big = compileTexts({ p: 'permit(principal, action, resource) when { context.n == 9007199254740993 };' });
  assert.deepEqual(big, { ok: false, unsupported: [{ policyId: 'p', feature: 'number literal 9007199254740992 (not an integer the JSON form carries exactly)' }] });

  const slot = compileCondition({ effect: 'permit', principal: { op: '==', slot: '?principal' }, action: { op: 'All' }, resource: { op: 'in', slot: '?resource' }, conditions: [] }, []);
  assert.ok(slot);
  const features: string[] = [];
  compileCondition({ effect: 'permit', principal: { op: '==', slot: '?principal' }, action: { op: 'All' }, resource: { op: 'All' }, conditions: [] }, features);
  assert.deepEqual(features, ['template slot']);
});

test('constant folding keeps errors lazy and values exact', () => {
  const none: string[] = [];
  const env = { principal: new EntityUid('User', 'a'), action: new EntityUid('Action', 'v'), resource: new EntityUid('Doc', 'd'), context: new CedarRecord(new Map()), entities: lookupFromJson([]) };
  // The folded error is raised only when evaluated.
  const f = compileExpression({ 'if-then-else': { if: { Var: 'context' }, then: { Value: 1 }, else: { decimal: [{ Value: 'bad' }] } } }, none);
  assert.throws(() => f(env), (e: unknown) => e instanceof EvaluationError && /type error: expected bool, got record/.test(e.message));
  const set = compileExpression({ Set: [{ Value: 1 }, { Value: 1 }, { Value: 2 }] }, none)(env);
  assert.ok(set instanceof CedarSet && set.items.length === 2);
  assert.deepEqual(none, []);
  // Value literals in every JSON form.
  assert.deepEqual(valueFromJson({ __entity: { type: 'User', id: 'a' } }), new EntityUid('User', 'a'));
  assert.ok(valueFromJson({ __extn: { fn: 'ip', arg: 'bad' } }) instanceof ExtensionError);
  assert.ok(valueFromJson(null) instanceof UnsupportedValue);
  const offset = valueFromJson({ __extn: { fn: 'offset', args: [{ __extn: { fn: 'datetime', arg: '1970-01-01' } }, { __extn: { fn: 'duration', arg: '1d' } }] } });
  assert.ok(offset instanceof Datetime);
  assert.equal(offset.epochMs, 86_400_000n);
});

test('random expressions over the whole language, error-producing ones included, evaluate exactly as cedar-wasm (seeded)', () => {
  const leaf = fc.constantFrom(
    '0', '1', '-1', '5', MAX, MIN, '(4294967296 * 1073741824)', '"a"', '""', '"hello"', '"a*b"', 'true', 'false',
    'principal', 'resource', 'action', 'context', 'context.n', 'context.s', 'context.list', 'context.rec', 'context.who', 'context.flag',
    'User::"alice"', 'User::"bob"', 'User::"nobody"', 'Group::"g1"', 'Group::"g3"', 'Folder::"f"', 'Action::"read"',
    'principal.n', 'principal.s', 'principal.r', 'principal.mgr', 'principal.list', 'resource.owner', 'resource.labels', 'resource.level',
    'ip("10.0.0.0/8")', 'ip("::1")', 'ip("bad")', 'decimal("1.5")', 'decimal("-0.5")', 'decimal("x")', 'datetime("2024-10-15")', 'duration("1h")', 'duration("-2d")', 'duration("1x")',
    '[]', '[1, 2]', '["a", "b"]', '[User::"alice", Group::"g3"]', '{}', '{a: 1}', '{x: 1, inner: {y: 2}}',
  );
  const { e: expression } = fc.letrec<{ e: string; op: string }>((tie) => ({
    e: fc.oneof({ depthSize: 'small' }, leaf, leaf, tie('op')),
    op: fc.oneof(
      fc.tuple(tie('e'), fc.constantFrom('==', '!=', '<', '<=', '>', '>=', '&&', '||', '+', '-', '*', 'in'), tie('e')).map(([a, o, b]) => `(${a} ${o} ${b})`),
      fc.tuple(fc.constantFrom('!', '-'), tie('e')).map(([o, a]) => `${o}(${a})`),
      fc.tuple(tie('e'), fc.constantFrom('contains', 'containsAll', 'containsAny', 'getTag', 'hasTag', 'isInRange', 'lessThan', 'offset', 'durationSince'), tie('e')).map(([a, m, b]) => `(${a}).${m}(${b})`),
      fc.tuple(tie('e'), fc.constantFrom('isEmpty', 'isIpv4', 'isLoopback', 'toDate', 'toTime', 'toMilliseconds', 'toDays')).map(([a, m]) => `(${a}).${m}()`),
      fc.tuple(tie('e'), fc.constantFrom('n', 's', 'x', 'inner', 'y', 'a', 'b', 'owner', 'name', 'mgr')).map(([a, f]) => `(${a}).${f}`),
      fc.tuple(tie('e'), fc.constantFrom('n', 'x', 'inner.y', 'r.x', 'mgr.name', 'b.c', 'zz.q')).map(([a, f]) => `((${a}) has ${f})`),
      fc.tuple(tie('e'), fc.constantFrom('"*"', '"a*"', '"*l*"', '"h\\*o"', '""')).map(([a, p]) => `((${a}) like ${p})`),
      fc.tuple(tie('e'), fc.constantFrom('User', 'Group', 'Doc')).map(([a, t]) => `((${a}) is ${t})`),
      fc.tuple(tie('e'), fc.constantFrom('User', 'Group'), tie('e')).map(([a, t, b]) => `((${a}) is ${t} in (${b}))`),
      fc.tuple(tie('e'), tie('e'), tie('e')).map(([a, b, c]) => `(if ${a} then ${b} else ${c})`),
      fc.array(tie('e'), { maxLength: 3 }).map((xs) => `[${xs.join(', ')}]`),
      fc.tuple(tie('e'), tie('e')).map(([a, b]) => `{p: ${a}, q: ${b}}`),
      fc.tuple(fc.constantFrom('ip', 'decimal', 'datetime', 'duration'), tie('e')).map(([f, a]) => `${f}(${a})`),
    ),
  }));
  const expressions = fc.sample(expression, { seed: 20261130, numRuns: 400 });
  const policies: Record<string, string> = {};
  expressions.forEach((e, i) => {
    // The expression as a condition (a non-bool is a type error), and its value compared with itself.
    policies[`when${i}`] = `permit(principal, action, resource) when { ${e} };`;
    policies[`value${i}`] = `permit(principal, action, resource) when { (${e}) == (${e}) };`;
  });
  const { reference, compiled } = decideBoth(policies, req);
  assert.deepEqual(compiled, reference);
  assert.ok(reference.errors.length > 100 && reference.reason.length > 50, `${reference.errors.length} errors, ${reference.reason.length} satisfied`);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidEntityError } from '../../core/errors.ts';
import { compilePolicySet } from '../compile-policy-set.ts';
import { readPolicyDirectory } from '../read-policy-directory.ts';
import type { EntityJson } from '../types.ts';
import { convertEntities, convertEntitiesOnto, convertEntityOnto } from './convert-entities.ts';
import { disagreeingEntityFacts, referenceAcceptsEntities } from './convert-test-oracle.ts';
import { buildSchemaModel, type SchemaModel } from './schema-model.ts';
import { Datetime, Decimal, IpAddr } from './extensions.ts';
import { CedarRecord, CedarSet, EntityUid, type EntityData } from './value.ts';

// Every row runs through convertEntities and cedar-wasm (`isAuthorized` with the schema, as the reference
// path calls it): both must accept or both refuse, as the row expects; for an accepted row every attribute,
// tag and `in` relation of the converted set is evaluated in Cedar and must hold there too.

const RICH = `
entity Org;
entity Group in [Group, Org] { name?: String };
entity User in [Group] {
  age: Long,
  nick?: String,
  active?: Bool,
  manager?: User,
  friends?: Set<User>,
  ip?: ipaddr,
  score?: decimal,
  born?: datetime,
  ttl?: duration,
  addr?: Addr,
  history?: Set<Addr>,
  nested?: Set<Set<Long>>,
  ips?: Set<ipaddr>,
  "weird key"?: Long,
  color?: Color,
  flag?: Bool,
} tags String;
type Addr = { street: String, zip?: Long, geo?: { lat: decimal, lon: decimal } };
entity Color enum ["red", "green"];
entity Doc in [Org] { owner: User, "__proto__"?: String } tags Set<User>;
action group;
action view in [group] appliesTo { principal: [User], resource: [Doc], context: { n?: Long } };
action edit in [view] appliesTo { principal: [User], resource: [Doc] };
`;

const NAMESPACED = `
namespace App {
  type Count = Long;
  entity Team in [Ext::Org];
  entity User in [Team] { team: Team, org?: Ext::Org, n?: Count, c?: Ext::Conf };
  action "all";
  action read in ["all"] appliesTo { principal: User, resource: Team, context: { n: Count } };
}
namespace Ext {
  type Conf = { level: Long };
  entity Org;
}
entity Root { user: App::User };
`;

// A common type shadows the extension type of its name; `__cedar::` still names the built-in.
const SHADOWING = `
type decimal = Long;
entity A { d: decimal, e?: __cedar::decimal };
entity B;
type B = String;
entity C { b: B };
action go appliesTo { principal: A, resource: A };
`;

type Row = [name: string, entities: unknown[], expect: 'accept' | 'refuse'];

const u = (id: string, attrs: Record<string, unknown> = { age: 1 }, parents: unknown[] = [], tags?: Record<string, unknown>): EntityJson => ({
  uid: { type: 'User', id },
  attrs,
  parents: parents as EntityJson['parents'],
  ...(tags ? { tags } : {}),
});
const g = (id: string, parents: string[] = []) => ({ uid: { type: 'Group', id }, attrs: {}, parents: parents.map((p) => ({ type: 'Group', id: p })) });

/** `facts: false` compares accept/refuse only (Cedar's policy parser cannot take a literal ~120 levels deep). */
function agree(schema: string, model: SchemaModel, rows: Row[], facts = true): void {
  for (const [name, entities, expect] of rows) {
    const reference = referenceAcceptsEntities(schema, model, entities);
    let converted: Map<string, EntityData> | undefined;
    let refusal: unknown;
    try {
      converted = convertEntities(entities as EntityJson[], model);
    } catch (err) {
      refusal = err;
    }
    if (refusal !== undefined && !(refusal instanceof InvalidEntityError)) throw refusal;
    const ours = converted ? 'accept' : 'refuse';
    const theirs = reference.ok ? 'accept' : 'refuse';
    assert.equal(theirs, expect, `${name}: cedar-wasm ${theirs}s (${reference.ok ? '' : reference.message})`);
    assert.equal(ours, expect, `${name}: convertEntities ${ours}s (${refusal instanceof Error ? refusal.message : ''})`);
    if (converted && facts) assert.deepEqual(disagreeingEntityFacts(schema, model, entities, converted), [], name);
  }
}

test('entity types, attributes and their types, as cedar-wasm checks them', () => {
  const model = buildSchemaModel(RICH);
  agree(RICH, model, [
    ['minimal user', [u('a')], 'accept'],
    ['all optional attributes', [u('a', {
      age: -5, nick: 'x"\\\n\u00e9', active: true, manager: { type: 'User', id: 'b' }, friends: [{ type: 'User', id: 'b' }, { __entity: { type: 'User', id: 'c' } }],
      ip: '10.0.0.1/24', score: '-1.5', born: '2024-02-29T12:00:00.123Z', ttl: '1d2h3m4s5ms',
      addr: { street: 's', zip: 12345, geo: { lat: '1.0', lon: '-2.25' } }, history: [{ street: 'a' }, { street: 'b', zip: 2 }, { street: 'a' }],
      nested: [[1, 2], [], [2, 1]], ips: ['::1', '127.0.0.1', { __extn: { fn: 'ip', arg: '::1' } }], 'weird key': 7, color: { type: 'Color', id: 'green' }, flag: false,
    })], 'accept'],
    ['missing required attribute', [u('a', {})], 'refuse'],
    ['undeclared attribute', [u('a', { age: 1, shoe: 42 })], 'refuse'],
    ['undefined attribute is absent (JSON.stringify drops it)', [u('a', { age: 1, nick: undefined })], 'accept'],
    ['undefined required attribute is missing', [u('a', { age: undefined })], 'refuse'],
    ['string for Long', [u('a', { age: '1' })], 'refuse'],
    ['boolean for Long', [u('a', { age: true })], 'refuse'],
    ['Long for Bool', [u('a', { age: 1, active: 1 })], 'refuse'],
    ['null value', [u('a', { age: 1, nick: null })], 'refuse'],
    ['NaN is null', [u('a', { age: Number.NaN })], 'refuse'],
    ['fraction', [u('a', { age: 1.5 })], 'refuse'],
    ['integer-valued float', [u('a', { age: 2.0 })], 'accept'],
    ['-0', [u('a', { age: -0 })], 'accept'],
    ['2^53 + 2', [u('a', { age: 2 ** 53 + 2 })], 'accept'],
    // Cedar reads the number's JSON text: 2^60 is 1152921504606847000 there (checked by the facts).
    ['2^60 reads as its shortest decimal', [u('a', { age: 2 ** 60 })], 'accept'],
    ['2^63 is out of range', [u('a', { age: 2 ** 63 })], 'refuse'],
    ['-(2^63) prints as -9223372036854776000: out of range', [u('a', { age: -(2 ** 63) })], 'refuse'],
    ['1e21', [u('a', { age: 1e21 })], 'refuse'],
    ['entity ref of the wrong type', [u('a', { age: 1, manager: { type: 'Group', id: 'g' } })], 'refuse'],
    ['entity ref of an undeclared type', [u('a', { age: 1, manager: { type: 'Nope', id: 'g' } })], 'refuse'],
    ['entity ref as a string', [u('a', { age: 1, manager: 'User::"b"' })], 'refuse'],
    ['entity ref with extra keys', [u('a', { age: 1, manager: { type: 'User', id: 'b', note: 1 } })], 'accept'],
    ['entity ref as [type, id]', [u('a', { age: 1, manager: ['User', 'b'] })], 'accept'],
    ['entity ref as [type, id, x]', [u('a', { age: 1, manager: ['User', 'b', 'x'] })], 'refuse'],
    ['__entity with extra outer key', [u('a', { age: 1, manager: { __entity: { type: 'User', id: 'b' }, x: 1 } })], 'accept'],
    ['__entity that is not a ref, then {type, id}', [u('a', { age: 1, manager: { __entity: 5, type: 'User', id: 'b' } })], 'accept'],
    ['__expr escape', [u('a', { age: 1, nick: { __expr: 'x' } })], 'refuse'],
    ['__expr that is not a string is an ordinary key', [u('a', { age: 1, manager: { __expr: 1, type: 'User', id: 'b' } })], 'accept'],
    ['entity where a String is expected', [u('a', { age: 1, nick: { __entity: { type: 'User', id: 'b' } } })], 'refuse'],
    ['set elements of the wrong type', [u('a', { age: 1, friends: [{ type: 'User', id: 'b' }, { type: 'Group', id: 'g' }] })], 'refuse'],
    ['set given a non-list', [u('a', { age: 1, friends: { type: 'User', id: 'b' } })], 'refuse'],
    ['set with a null', [u('a', { age: 1, nested: [[1], [null]] })], 'refuse'],
    ['set with an undefined (JSON null)', [u('a', { age: 1, nested: [[1], [undefined]] })], 'refuse'],
    ['set with duplicates', [u('a', { age: 1, nested: [[1, 1], [1]] })], 'accept'],
    ['record missing a required attribute', [u('a', { age: 1, addr: { zip: 1 } })], 'refuse'],
    ['record with an undeclared attribute', [u('a', { age: 1, addr: { street: 's', x: 1 } })], 'refuse'],
    ['record given a list', [u('a', { age: 1, addr: [] })], 'refuse'],
    ['record given __entity', [u('a', { age: 1, addr: { __entity: { type: 'User', id: 'b' } } })], 'refuse'],
    ['nested record type error', [u('a', { age: 1, addr: { street: 's', geo: { lat: '1.0', lon: 2 } } })], 'refuse'],
    ['records in a set with different optional attributes', [u('a', { age: 1, history: [{ street: 'a', zip: 1 }, { street: 'b' }] })], 'accept'],
    ['enum ref listed', [u('a', { age: 1, color: { type: 'Color', id: 'red' } })], 'accept'],
    ['enum ref not listed', [u('a', { age: 1, color: { type: 'Color', id: 'blue' } })], 'refuse'],
    ['weird attribute name', [u('a', { age: 1, 'weird key': 2 })], 'accept'],
    ['__proto__ as a declared attribute', [{ uid: { type: 'Doc', id: 'd' }, attrs: JSON.parse('{"owner": {"type": "User", "id": "a"}, "__proto__": "p"}') as Record<string, unknown>, parents: [] }], 'accept'],
    ['__proto__ as an undeclared attribute', [u('a', JSON.parse('{"age": 1, "__proto__": "p"}') as Record<string, unknown>)], 'refuse'],
    ['lone surrogate in a string (the engine throws)', [u('a', { age: 1, nick: 'x\ud800' })], 'refuse'],
    ['surrogate pair', [u('a', { age: 1, nick: '\ud83d\ude00' })], 'accept'],
  ]);
});

test('extension values: plain strings, escapes, any extension function, as cedar-wasm reads them', () => {
  const model = buildSchemaModel(RICH);
  const x = (attrs: Record<string, unknown>) => [u('a', { age: 1, ...attrs })];
  agree(RICH, model, [
    ['ip string', x({ ip: '192.168.0.1' }), 'accept'],
    ['ip string, bad', x({ ip: 'nope' }), 'refuse'],
    ['ip __extn', x({ ip: { __extn: { fn: 'ip', arg: '10.0.0.0/8' } } }), 'accept'],
    ['ip implicit {fn, arg}', x({ ip: { fn: 'ip', arg: '10.0.0.0/8' } }), 'accept'],
    ['ip {fn, arg} with extra keys', x({ ip: { fn: 'ip', arg: '1.1.1.1', note: 5 } }), 'accept'],
    ['ip __extn with extra outer key', x({ ip: { __extn: { fn: 'ip', arg: '1.1.1.1' }, note: 5 } }), 'accept'],
    ['ip __extn args [one]', x({ ip: { __extn: { fn: 'ip', args: ['1.1.1.1'] } } }), 'accept'],
    ['ip __extn args [two]', x({ ip: { __extn: { fn: 'ip', args: ['1.1.1.1', 'x'] } } }), 'refuse'],
    ['arg wins over args', x({ ip: { __extn: { fn: 'ip', arg: '1.1.1.1', args: [1, 2] } } }), 'accept'],
    ['a fraction in arg falls through to args', x({ ip: { __extn: { fn: 'ip', arg: 1.5, args: ['1.1.1.1'] } } }), 'accept'],
    ['ip __extn as an array', x({ ip: { __extn: ['ip', '1.2.3.4'] } }), 'refuse'],
    ['ip number', x({ ip: 5 }), 'refuse'],
    ['ip from decimal()', x({ ip: { __extn: { fn: 'decimal', arg: '1.0' } } }), 'refuse'],
    ['ip arg that is an ipaddr', x({ ip: { fn: 'ip', arg: { __extn: { fn: 'ip', arg: '1.1.1.1' } } } }), 'refuse'],
    ['ip null arg', x({ ip: { __extn: { fn: 'ip', arg: null } } }), 'refuse'],
    ['unknown function', x({ ip: { __extn: { fn: 'nope', arg: 'x' } } }), 'refuse'],
    ['__expr where ipaddr expected', x({ ip: { __expr: 'ip("1.1.1.1")' } }), 'refuse'],
    ['decimal string', x({ score: '3.1415' }), 'accept'],
    ['decimal, too many digits', x({ score: '3.14159' }), 'refuse'],
    ['datetime string', x({ born: '2024-01-01' }), 'accept'],
    ['datetime with offset', x({ born: '2024-01-01T10:00:00+0130' }), 'accept'],
    ['datetime, bad', x({ born: '2024-13-01' }), 'refuse'],
    ['datetime from offset(), arguments read by type', x({ born: { __extn: { fn: 'offset', args: ['2024-01-01', '1h'] } } }), 'accept'],
    ['datetime from offset(), implicit', x({ born: { fn: 'offset', args: ['2024-01-01', '-1d'] } }), 'accept'],
    ['datetime from toDate()', x({ born: { __extn: { fn: 'toDate', arg: '2024-01-01T23:59:59Z' } } }), 'accept'],
    ['duration from durationSince()', x({ ttl: { __extn: { fn: 'durationSince', args: ['2024-01-02', '2024-01-01'] } } }), 'accept'],
    ['duration string', x({ ttl: '-3h' }), 'accept'],
    ['Bool from isLoopback(), explicit arguments', x({ flag: { __extn: { fn: 'isLoopback', arg: { __extn: { fn: 'ip', arg: '127.0.0.1' } } } } }), 'accept'],
    ['Bool from isLoopback(), untyped string argument', x({ flag: { __extn: { fn: 'isLoopback', arg: '127.0.0.1' } } }), 'refuse'],
    ['Long from toDays()', x({ age: { __extn: { fn: 'toDays', arg: { __extn: { fn: 'duration', arg: '3d' } } } } }), 'accept'],
    ['String from ip() is a type error', x({ nick: { __extn: { fn: 'ip', arg: '1.1.1.1' } } }), 'refuse'],
    ['{fn, arg} where a String is expected is a record', x({ nick: { fn: 'ip', arg: '1.1.1.1' } }), 'refuse'],
    ['set of ipaddr, mixed forms', x({ ips: ['1.1.1.1', { fn: 'ip', arg: '::' }, { __extn: { fn: 'ip', args: ['10.0.0.0/8'] } }] }), 'accept'],
    ['decimal in a nested record', x({ addr: { street: 's', geo: { lat: { __extn: { fn: 'decimal', arg: '0.5' } }, lon: '0.0' } } }), 'accept'],
  ]);
});

test('hierarchy: parents, transitive parent types, cycles, duplicates, enums, tags, as cedar-wasm', () => {
  const model = buildSchemaModel(RICH);
  agree(RICH, model, [
    ['chain of groups', [u('a', { age: 1 }, [{ type: 'Group', id: 'g1' }]), g('g1', ['g2']), g('g2', ['g3']), g('g3')], 'accept'],
    ['diamond', [u('a', { age: 1 }, [{ type: 'Group', id: 'l' }, { type: 'Group', id: 'r' }]), g('l', ['top']), g('r', ['top']), g('top')], 'accept'],
    ['dangling parent', [u('a', { age: 1 }, [{ type: 'Group', id: 'nowhere' }])], 'accept'],
    ['parent of a transitively allowed type (User in Group in Org)', [u('a', { age: 1 }, [{ type: 'Org', id: 'o' }])], 'accept'],
    ['parent of a type not allowed', [u('a', { age: 1 }, [{ type: 'User', id: 'b' }])], 'refuse'],
    ['parent of an undeclared type', [u('a', { age: 1 }, [{ type: 'Nope', id: 'b' }])], 'refuse'],
    ['parent that is an action', [u('a', { age: 1 }, [{ type: 'Action', id: 'view' }])], 'refuse'],
    ['parent as __entity', [u('a', { age: 1 }, [{ __entity: { type: 'Group', id: 'g' } }])], 'accept'],
    ['parent as a string', [u('a', { age: 1 }, ['Group::"g"'])], 'refuse'],
    ['parent undefined (JSON null)', [u('a', { age: 1 }, [undefined])], 'refuse'],
    ['self-parent', [g('g', ['g'])], 'refuse'],
    ['two-cycle', [g('a', ['b']), g('b', ['a'])], 'refuse'],
    ['cycle below an entity', [u('a', { age: 1 }, [{ type: 'Group', id: 'x' }]), g('x', ['y']), g('y', ['z']), g('z', ['x'])], 'refuse'],
    ['same uid twice, equal descriptions', [g('g'), g('g')], 'accept'],
    ['same uid twice, parents in another order and repeated', [g('g', ['a', 'b']), g('g', ['b', 'a', 'b'])], 'accept'],
    ['same uid twice, equal values written differently', [u('a', { age: 1, ip: '1.1.1.1', score: '1.0', nested: [[1, 2]] }), u('a', { age: 1, ip: { __extn: { fn: 'ip', arg: '1.1.1.1/32' } }, score: '1.0000', nested: [[2, 1], [1, 2]] })], 'accept'],
    ['same uid twice, different attributes (statefulIsAuthorized refuses it)', [u('a', { age: 1 }), u('a', { age: 2 })], 'refuse'],
    ['same uid twice, an attribute only in one', [u('a', { age: 1 }), u('a', { age: 1, nick: 'n' })], 'refuse'],
    ['same uid twice, different parents', [g('g', ['a']), g('g', ['b'])], 'refuse'],
    ['same uid twice, tags only in one', [u('a', { age: 1 }, [], { t: 'x' }), u('a', { age: 1 })], 'refuse'],
    ['same uid twice, empty tags and none', [u('a', { age: 1 }, [], {}), u('a', { age: 1 })], 'accept'],
    ['undeclared entity type', [{ uid: { type: 'Nope', id: 'x' }, attrs: {}, parents: [] }], 'refuse'],
    ['__cedar entity type', [{ uid: { type: '__cedar::User', id: 'x' }, attrs: { age: 1 }, parents: [] }], 'refuse'],
    ['uid as __entity', [{ uid: { __entity: { type: 'Group', id: 'g' } }, attrs: {}, parents: [] }], 'accept'],
    ['uid as [type, id]', [{ uid: ['Group', 'g'], attrs: {}, parents: [] }], 'accept'],
    ['uid with an id that is not a string', [{ uid: { type: 'Group', id: 5 }, attrs: {}, parents: [] }], 'refuse'],
    ['uid with a lone surrogate (the engine throws)', [{ uid: { type: 'Group', id: 'g\udc00' }, attrs: {}, parents: [] }], 'refuse'],
    ['parent with a lone surrogate', [g('g', ['\ud800'])], 'refuse'],
    ['lone surrogate in an ignored field', [{ uid: { type: 'Group', id: 'g' }, attrs: {}, parents: [], note: ['\ud800'] }], 'refuse'],
    ['lone surrogate in an ignored key of a reference', [u('a', { age: 1, manager: { type: 'User', id: 'b', '\ud800': 1 } })], 'refuse'],
    ['entity as [uid, attrs, parents]', [[{ type: 'Group', id: 'g' }, {}, []]], 'accept'],
    ['entity as [uid, attrs, parents, tags]', [[{ type: 'User', id: 'a' }, { age: 1 }, [], { t: 'x' }]], 'accept'],
    ['entity as a 5-element list', [[{ type: 'Group', id: 'g' }, {}, [], {}, 1]], 'refuse'],
    ['missing attrs', [{ uid: { type: 'Group', id: 'g' }, parents: [] }], 'refuse'],
    ['missing parents', [{ uid: { type: 'Group', id: 'g' }, attrs: {} }], 'refuse'],
    ['null attrs', [{ uid: { type: 'Group', id: 'g' }, attrs: null, parents: [] }], 'refuse'],
    ['attrs as a list', [{ uid: { type: 'Group', id: 'g' }, attrs: [], parents: [] }], 'refuse'],
    ['parents as a map', [{ uid: { type: 'Group', id: 'g' }, attrs: {}, parents: {} }], 'refuse'],
    ['unknown top-level field is ignored', [{ uid: { type: 'Group', id: 'g' }, attrs: {}, parents: [], note: 'x' }], 'accept'],
    ['enum entity listed', [{ uid: { type: 'Color', id: 'red' }, attrs: {}, parents: [] }], 'accept'],
    ['enum entity not listed', [{ uid: { type: 'Color', id: 'blue' }, attrs: {}, parents: [] }], 'refuse'],
    ['enum entity with an attribute', [{ uid: { type: 'Color', id: 'red' }, attrs: { x: 1 }, parents: [] }], 'refuse'],
    ['enum entity with a parent', [{ uid: { type: 'Color', id: 'red' }, attrs: {}, parents: [{ type: 'Color', id: 'green' }] }], 'refuse'],
    ['enum entity with empty tags', [{ uid: { type: 'Color', id: 'red' }, attrs: {}, parents: [], tags: {} }], 'accept'],
    ['tags of the declared type', [u('a', { age: 1 }, [], { t1: 'x', 'odd tag': '' })], 'accept'],
    ['tags of the wrong type', [u('a', { age: 1 }, [], { t1: 1 })], 'refuse'],
    ['tags on a type without tags', [{ uid: { type: 'Group', id: 'g' }, attrs: {}, parents: [], tags: { t: 'x' } }], 'refuse'],
    ['empty tags on a type without tags', [{ uid: { type: 'Group', id: 'g' }, attrs: {}, parents: [], tags: {} }], 'accept'],
    ['undefined tag on a type without tags', [{ uid: { type: 'Group', id: 'g' }, attrs: {}, parents: [], tags: { t: undefined } }], 'accept'],
    ['null tags', [{ uid: { type: 'Group', id: 'g' }, attrs: {}, parents: [], tags: null }], 'refuse'],
    ['tags as a list', [{ uid: { type: 'User', id: 'a' }, attrs: { age: 1 }, parents: [], tags: [] }], 'refuse'],
    ['set-of-entity tags', [{ uid: { type: 'Doc', id: 'd' }, attrs: { owner: { type: 'User', id: 'a' } }, parents: [], tags: { readers: [{ type: 'User', id: 'a' }, ['User', 'b']] } }], 'accept'],
    ['set-of-entity tag with a wrong element', [{ uid: { type: 'Doc', id: 'd' }, attrs: { owner: { type: 'User', id: 'a' } }, parents: [], tags: { readers: [{ type: 'Doc', id: 'a' }] } }], 'refuse'],
  ]);
});

test('action entities given as data must match the schema; the schema adds its own', () => {
  const model = buildSchemaModel(RICH);
  const act = (id: string, parents: string[], extra: Record<string, unknown> = {}) => ({ uid: { type: 'Action', id }, attrs: {}, parents: parents.map((p) => ({ type: 'Action', id: p })), ...extra });
  agree(RICH, model, [
    ['no entities: only the schema actions', [], 'accept'],
    ['action with all its ancestors', [act('edit', ['view', 'group'])], 'accept'],
    ['action with its direct parent only', [act('edit', ['view'])], 'refuse'],
    ['action whose parent is given as data too', [act('edit', ['view']), act('view', ['group'])], 'accept'],
    ['action with no parents', [act('edit', [])], 'refuse'],
    ['action with a wrong parent', [act('view', ['edit'])], 'refuse'],
    ['undeclared action', [act('fly', [])], 'refuse'],
    ['action with an attribute', [{ ...act('group', []), attrs: { x: 1 } }], 'refuse'],
    ['action with a tag', [act('group', [], { tags: { x: 'y' } })], 'refuse'],
    ['action with empty tags', [act('group', [], { tags: {} })], 'accept'],
    ['action that is its own parent', [act('group', ['group'])], 'refuse'],
  ]);
  const converted = convertEntities([], model);
  assert.deepEqual([...(converted.get('Action::"edit"') as EntityData).ancestors].sort(), ['Action::"group"', 'Action::"view"']);
});

test('namespaces, common types and shadowing, as cedar-wasm resolves them', () => {
  const ns = buildSchemaModel(NAMESPACED);
  agree(NAMESPACED, ns, [
    ['namespaced entities', [
      { uid: { type: 'App::User', id: 'u' }, attrs: { team: { type: 'App::Team', id: 't' }, org: { type: 'Ext::Org', id: 'o' }, n: 3, c: { level: 2 } }, parents: [{ type: 'App::Team', id: 't' }] },
      { uid: { type: 'App::Team', id: 't' }, attrs: {}, parents: [{ type: 'Ext::Org', id: 'o' }] },
      { uid: { type: 'Root', id: 'r' }, attrs: { user: { type: 'App::User', id: 'u' } }, parents: [] },
    ], 'accept'],
    ['unqualified type', [{ uid: { type: 'User', id: 'u' }, attrs: { team: { type: 'App::Team', id: 't' } }, parents: [] }], 'refuse'],
    ['reference without its namespace', [{ uid: { type: 'App::User', id: 'u' }, attrs: { team: { type: 'Team', id: 't' } }, parents: [] }], 'refuse'],
    ['common type from another namespace', [{ uid: { type: 'App::User', id: 'u' }, attrs: { team: { type: 'App::Team', id: 't' }, c: { level: 'x' } }, parents: [] }], 'refuse'],
    ['namespaced action entity', [{ uid: { type: 'App::Action', id: 'read' }, attrs: {}, parents: [{ type: 'App::Action', id: 'all' }] }], 'accept'],
    ['action of the wrong namespace', [{ uid: { type: 'Action', id: 'read' }, attrs: {}, parents: [] }], 'refuse'],
  ]);
  const sh = buildSchemaModel(SHADOWING);
  agree(SHADOWING, sh, [
    ['common `decimal` is a Long', [{ uid: { type: 'A', id: 'a' }, attrs: { d: 5, e: '1.5' }, parents: [] }], 'accept'],
    ['common `decimal` refuses a decimal string', [{ uid: { type: 'A', id: 'a' }, attrs: { d: '1.5' }, parents: [] }], 'refuse'],
    ['common type B (String) shadows entity type B', [{ uid: { type: 'C', id: 'c' }, attrs: { b: 'text' }, parents: [] }], 'accept'],
    ['so an entity reference is refused there', [{ uid: { type: 'C', id: 'c' }, attrs: { b: { type: 'B', id: 'b' } }, parents: [] }], 'refuse'],
  ]);
});

test('Mandate\'s example directory converts whole, with the values, tags and hierarchy Cedar sees', async () => {
  const dir = await readPolicyDirectory(new URL('../../../examples/policies', import.meta.url).pathname);
  const set = compilePolicySet(dir);
  const model = buildSchemaModel(set.schemaText);
  const entities = [...set.entities.values()];
  const converted = convertEntities(entities, model);
  assert.equal(converted.size, entities.length + model.actionEntities.size);
  assert.equal(referenceAcceptsEntities(set.schemaText, model, entities).ok, true);
  assert.deepEqual(disagreeingEntityFacts(set.schemaText, model, entities, converted), []);
  const dave = converted.get('User::"dave"') as EntityData;
  assert.ok(dave.ancestors.has('Group::"staff"') && dave.ancestors.has('Group::"customer-teams"'));
  assert.ok(dave.attrs.get('roles') instanceof CedarSet);
});

test('converted values use the shared representation', () => {
  const model = buildSchemaModel(RICH);
  const [a] = convertEntities([u('a', { age: 2 ** 60, manager: ['User', 'b'], ip: '10.0.0.1/24', score: '1.5', born: '2024-01-01', addr: { street: 's' } })], model).values();
  const attrs = (a as EntityData).attrs;
  assert.equal(attrs.get('age'), 1152921504606847000n);
  assert.ok(attrs.get('manager') instanceof EntityUid && (attrs.get('manager') as EntityUid).key === 'User::"b"');
  assert.ok(attrs.get('ip') instanceof IpAddr);
  assert.ok(attrs.get('score') instanceof Decimal && (attrs.get('score') as Decimal).value === 15_000n);
  assert.ok(attrs.get('born') instanceof Datetime);
  assert.ok(attrs.get('addr') instanceof CedarRecord && (attrs.get('addr') as CedarRecord).attrs.get('street') === 's');
});

test('refusals name the entity and the attribute path', () => {
  const model = buildSchemaModel(RICH);
  const cases: Array<[EntityJson[], RegExp]> = [
    [[u('a', { age: 1, addr: { street: 's', geo: { lat: '1.0', lon: 2 } } })], /^entity User::"a": attribute addr\.geo\.lon: type error: expected string, got long/],
    [[u('a', { age: 1, nested: [[1], ['x']] })], /^entity User::"a": attribute nested\[1\]\[0\]: expected long, got string/],
    [[u('a', { age: 1, 'weird key': 'x' })], /^entity User::"a": attribute \["weird key"\]: expected long/],
    [[u('a', {})], /^entity User::"a": attribute age: required attribute `age` is missing/],
    [[u('a', { age: 1 }, [], { t: 1 })], /^entity User::"a": tag t: expected string, got long/],
    [[u('a', { age: 1 }, [{ type: 'User', id: 'b' }])], /^entity User::"a": parents\[0\]: User::"b" may not be a parent/],
    [[g('x', ['y']), g('y', ['x'])], /cycle/],
    [[{ uid: { type: 'Color', id: 'blue' }, attrs: {}, parents: [] }], /^entity Color::"blue": uid: Color::"blue" is of an enumerated entity type/],
  ];
  for (const [entities, message] of cases) {
    assert.throws(() => convertEntities(entities, model), (err: unknown) => err instanceof InvalidEntityError && message.test(err.message), message.source);
  }
});

test('a long chain is closed transitively (iteratively: no recursion per level)', () => {
  const model = buildSchemaModel(RICH);
  const chain = Array.from({ length: 2_000 }, (_, i) => g(`g${i}`, i + 1 < 2_000 ? [`g${i + 1}`] : []));
  const converted = convertEntities(chain.reverse(), model);
  assert.equal((converted.get('Group::"g0"') as EntityData).ancestors.size, 1_999);
  assert.equal((converted.get('Group::"g1998"') as EntityData).ancestors.size, 1);
});

test('incremental: request entities over a converted directory, ancestors spanning both', () => {
  const model = buildSchemaModel(RICH);
  // The directory knows alice, in Group::"sales", which it does not define: the request may.
  const directory = [u('alice', { age: 30 }, [{ type: 'Group', id: 'sales' }]), g('staff', ['all']), g('all')];
  const base = convertEntities(directory, model);
  const request = [g('sales', ['staff']), u('bob', { age: 1 }, [{ type: 'Group', id: 'sales' }])];
  const overlay = convertEntitiesOnto(request, model, base);
  const whole = convertEntities([...directory, ...request], model);
  for (const key of whole.keys()) {
    assert.deepEqual([...(overlay.get(key) as EntityData).ancestors].sort(), [...(whole.get(key) as EntityData).ancestors].sort(), key);
  }
  assert.equal(overlay.get('Group::"nowhere"'), undefined);
  // The base is left as it was.
  assert.deepEqual([...(base.get('User::"alice"') as EntityData).ancestors], ['Group::"sales"']);
  // A single entity, the same way.
  assert.deepEqual([...convertEntityOnto(u('carol', { age: 2 }, [{ type: 'Group', id: 'staff' }]), model, base).ancestors].sort(), ['Group::"all"', 'Group::"staff"']);

  // Refusals: a cycle through both sets, a duplicate of a directory entity, a bad request entity.
  const cyclicBase = convertEntities([g('d', ['r'])], model);
  assert.throws(() => convertEntitiesOnto([g('r', ['d'])], model, cyclicBase), (e: unknown) => e instanceof InvalidEntityError && /cycle/.test(e.message));
  assert.throws(() => convertEntitiesOnto([g('staff')], model, base), (e: unknown) => e instanceof InvalidEntityError && /duplicate entity entry Group::"staff"/.test(e.message));
  assert.throws(() => convertEntitiesOnto([u('x', {})], model, base), InvalidEntityError);
  // An action entity matching the schema is accepted and is the schema's.
  const action = convertEntityOnto({ uid: { type: 'Action', id: 'edit' }, attrs: {}, parents: [{ type: 'Action', id: 'view' }, { type: 'Action', id: 'group' }] }, model, base);
  assert.equal(action, base.get('Action::"edit"'));
  assert.throws(() => convertEntityOnto({ uid: { type: 'Action', id: 'edit' }, attrs: {}, parents: [{ type: 'Action', id: 'view' }] }, model, base), InvalidEntityError);
});

test('nesting: refused exactly where cedar-wasm\'s JSON reader gives up (128 levels of the whole call)', () => {
  const nested = (d: number, leaf: unknown = 1): unknown => (d === 0 ? leaf : [nested(d - 1, leaf)]);
  const setOf = (d: number): string => (d === 0 ? 'Long' : `Set<${setOf(d - 1)}>`);
  const a = (attrs: Record<string, unknown>, extra: Record<string, unknown> = {}) => [{ uid: { type: 'A', id: 'a' }, attrs, parents: [], ...extra }];
  for (const d of [123, 124]) {
    const schema = `entity A { x?: ${setOf(d)}, u?: A } tags ${setOf(d)}; action go appliesTo { principal: A, resource: A };`;
    const expect = d === 123 ? 'accept' : 'refuse';
    agree(schema, buildSchemaModel(schema), [
      [`${d} levels in an attribute`, a({ x: nested(d) }), expect],
      [`${d} levels in a tag`, a({}, { tags: { t: nested(d) } }), expect],
      [`an extra key of an entity reference ${d - 1} levels deep`, a({ u: { type: 'A', id: 'b', note: nested(d - 1) } }), expect],
      [`an extra field of an entity ${d + 1} levels deep`, a({}, { note: nested(d + 1) }), expect],
    ], false);
  }
});

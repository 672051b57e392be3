import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { PolicySetInvalidError } from '../../core/errors.ts';
import { describeSchema } from '../compile-policy-set.ts';
import { buildSchemaModel, findAction, isActionType, type SchemaType } from './schema-model.ts';

const MANDATE = readFileSync(new URL('../../../examples/policies/schema.cedarschema', import.meta.url), 'utf8');

const NAMESPACED = `
namespace App {
  type Addr = { street: String, zip?: Long };
  entity User in [Group] { addr: Addr, home?: ipaddr, manager?: User, friends: Set<User> } tags String;
  entity Group in [Ext::Org];
  entity Color enum ["red", "green"];
  action view appliesTo { principal: [User], resource: [Group, Color], context: { a: Addr } };
  action "grp";
  action edit in [view, "grp"] appliesTo { principal: User, resource: [Group] };
}
namespace Ext { entity Org; }
entity Top in [App::Group] { x: App::User };
type Q = { d: decimal };
action top appliesTo { principal: Top, resource: Top, context: Q };
action "other" in [App::Action::"view"];
`;

test('agrees with describeSchema on entity types, actions and what they apply to', () => {
  for (const text of [MANDATE, NAMESPACED]) {
    const model = buildSchemaModel(text);
    const json = cedar.schemaToJson(text);
    assert.equal(json.type, 'success');
    if (json.type !== 'success') return;
    const info = describeSchema(json.json);
    assert.deepEqual([...model.entityTypes.keys()].sort(), [...info.entityTypes].sort());
    assert.equal(model.actionType, info.actionType);
    for (const [id, a] of info.actions) {
      const m = [...model.actions.values()].find((x) => x.uid.id === id);
      assert.ok(m, id);
      assert.deepEqual(m.principalTypes, a.principalTypes, id);
      assert.deepEqual(m.resourceTypes, a.resourceTypes, id);
      assert.deepEqual(m.memberOf.map((x) => x.id), a.memberOf, id);
    }
  }
});

test('resolves common types, namespaces, enums, tags and optional attributes', () => {
  const model = buildSchemaModel(NAMESPACED);
  const user = model.entityTypes.get('App::User');
  assert.ok(user);
  const attr = (name: string) => user.shape.attrs.get(name);
  const addr: SchemaType = { kind: 'Record', attrs: new Map([['street', { type: { kind: 'String' }, required: true }], ['zip', { type: { kind: 'Long' }, required: false }]]) };
  assert.deepEqual(attr('addr'), { type: addr, required: true });
  assert.deepEqual(attr('home'), { type: { kind: 'Extension', name: 'ipaddr' }, required: false });
  assert.deepEqual(attr('manager'), { type: { kind: 'Entity', name: 'App::User' }, required: false });
  assert.deepEqual(attr('friends'), { type: { kind: 'Set', element: { kind: 'Entity', name: 'App::User' } }, required: true });
  assert.deepEqual(user.tags, { kind: 'String' });
  assert.deepEqual(user.memberOfTypes, ['App::Group']);
  // `in` is checked against the transitive closure of memberOfTypes.
  assert.deepEqual([...user.ancestorTypes].sort(), ['App::Group', 'Ext::Org']);
  assert.deepEqual([...(model.entityTypes.get('App::Color')?.enumIds ?? [])], ['red', 'green']);
  assert.equal(model.entityTypes.get('App::Group')?.tags, undefined);

  const view = model.actions.get('App::Action::"view"');
  assert.deepEqual(view?.context.attrs.get('a'), { type: addr, required: true });
  const top = model.actions.get('Action::"top"');
  assert.deepEqual(top?.context, { kind: 'Record', attrs: new Map([['d', { type: { kind: 'Extension', name: 'decimal' }, required: true }]]) });
  // An action declared without a context takes the empty record; one without appliesTo applies to nothing.
  assert.equal(model.actions.get('App::Action::"edit"')?.context.attrs.size, 0);
  assert.deepEqual(model.actions.get('App::Action::"grp"')?.principalTypes, []);
  // The action hierarchy crosses namespaces and is closed transitively.
  assert.deepEqual([...(model.actions.get('App::Action::"edit"')?.ancestors ?? [])].sort(), ['App::Action::"grp"', 'App::Action::"view"']);
  assert.deepEqual([...(model.actionEntities.get('Action::"other"')?.ancestors ?? [])], ['App::Action::"view"']);
  assert.equal(model.actionEntities.size, model.actions.size);
  // A bare action id resolves under the last namespace that declares actions, as in authorize.ts.
  assert.equal(model.actionType, 'App::Action');
  assert.equal(findAction(model, 'view')?.uid.key, 'App::Action::"view"');
  assert.equal(findAction(model, 'top'), undefined);
});

test('built-in names: a common type shadows an extension type of its name; __cedar:: names the built-in', () => {
  const model = buildSchemaModel(`
    type decimal = Long;
    type EntityOrCommon = String;
    entity A { d: decimal, e: __cedar::decimal, b: Bool, c: __cedar::Bool, x: EntityOrCommon, dt: datetime, du: duration };
    namespace N { entity B { d: decimal, ip: ipaddr }; }
  `);
  const a = model.entityTypes.get('A')?.shape.attrs;
  assert.deepEqual(a?.get('d')?.type, { kind: 'Long' });
  assert.deepEqual(a?.get('e')?.type, { kind: 'Extension', name: 'decimal' });
  assert.deepEqual(a?.get('b')?.type, { kind: 'Bool' });
  assert.deepEqual(a?.get('c')?.type, { kind: 'Bool' });
  assert.deepEqual(a?.get('x')?.type, { kind: 'String' });
  assert.deepEqual(a?.get('dt')?.type, { kind: 'Extension', name: 'datetime' });
  assert.deepEqual(a?.get('du')?.type, { kind: 'Extension', name: 'duration' });
  // In a namespace an unqualified name falls back to the root namespace's common type.
  assert.deepEqual(model.entityTypes.get('N::B')?.shape.attrs.get('d')?.type, { kind: 'Long' });
  assert.deepEqual(model.entityTypes.get('N::B')?.shape.attrs.get('ip')?.type, { kind: 'Extension', name: 'ipaddr' });
});

test('a schema cedar-wasm refuses is refused', () => {
  assert.throws(() => buildSchemaModel('entity A { x: Nope };'), PolicySetInvalidError);
  assert.throws(() => buildSchemaModel('entity A; action a in a;'), PolicySetInvalidError);
});

test('action types are recognised by their basename', () => {
  assert.ok(isActionType('Action'));
  assert.ok(isActionType('App::Action'));
  assert.ok(!isActionType('Actions'));
  assert.ok(!isActionType('MyAction'));
});

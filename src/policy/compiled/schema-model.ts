/**
 * The schema as the compiled path's converters need it: every entity type with its attribute types, the
 * parent types it allows and its tag type; every action with what it applies to, its context type and its
 * place in the action hierarchy; and the action entities Cedar adds to every request's entity set when it is
 * given a schema.
 *
 * Built from `schemaToJsonWithResolvedTypes`, whose output names every type fully qualified but leaves
 * common types as references (`{ "type": "App::Addr" }`) and writes built-in and extension types by bare
 * name (`{ "type": "Bool" }`, `{ "type": "ipaddr" }`). Resolution follows Cedar's precedence, checked against
 * cedar-wasm 4.13 in `schema-model.test.ts`: a common type shadows an extension type of the same name
 * (`type decimal = Long` makes `decimal` a Long), `__cedar::` always names the built-in, and the primitive
 * names are reserved, so no common type can shadow them.
 *
 * @see https://docs.cedarpolicy.com/schema/json-schema.html
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { SchemaJson } from '@cedar-policy/cedar-wasm/nodejs';
import { PolicySetInvalidError } from '../../core/errors.ts';
import { EntityUid, type CedarValue, type EntityData } from './value.ts';

/** Names of Cedar's extension types. */
export type ExtensionTypeName = 'ipaddr' | 'decimal' | 'datetime' | 'duration';

/** A record type: attributes by name; records in Mandate's schemas are closed (no other attribute allowed). */
export interface RecordType {
  readonly kind: 'Record';
  readonly attrs: ReadonlyMap<string, AttributeType>;
}

/** One attribute of a record or entity shape. */
export interface AttributeType {
  readonly type: SchemaType;
  /** `false` for attributes declared with `?`. */
  readonly required: boolean;
}

/** A Cedar type, with common types resolved. */
export type SchemaType =
  | { readonly kind: 'Bool' }
  | { readonly kind: 'Long' }
  | { readonly kind: 'String' }
  | { readonly kind: 'Set'; readonly element: SchemaType }
  | RecordType
  | { readonly kind: 'Entity'; readonly name: string }
  | { readonly kind: 'Extension'; readonly name: ExtensionTypeName };

/** An entity type of the schema. */
export interface EntityTypeModel {
  /** Fully qualified name, e.g. `User` or `App::User`. */
  readonly name: string;
  /** Attributes; an entity type declared without a shape has none. */
  readonly shape: RecordType;
  /** Parent types as declared (`entity User in [Group]`). */
  readonly memberOfTypes: readonly string[];
  /**
   * Types an entity of this type may have as parent: the transitive closure of `memberOfTypes`. Cedar checks
   * parents against this closure (a `User in [Group]` with `Group in [Org]` may name an `Org` as parent).
   */
  readonly ancestorTypes: ReadonlySet<string>;
  /** Type of tag values (`tags T`), or `undefined` when the type declares no tags. */
  readonly tags: SchemaType | undefined;
  /** The valid ids of an enumerated type (`entity Color enum ["red"]`), otherwise `undefined`. */
  readonly enumIds: ReadonlySet<string> | undefined;
}

/** An action of the schema. */
export interface ActionModel {
  readonly uid: EntityUid;
  /** Direct parents in the action hierarchy (`action read in [data]`). */
  readonly memberOf: readonly EntityUid[];
  /** Keys of all ancestors, transitively. */
  readonly ancestors: ReadonlySet<string>;
  /** Principal types the action applies to, in declaration order (empty: it applies to no request). */
  readonly principalTypes: readonly string[];
  /** Resource types the action applies to, in declaration order. */
  readonly resourceTypes: readonly string[];
  /** The context type; an action declared without one takes the empty record. */
  readonly context: RecordType;
}

/** The schema, as the compiled path's converters use it. */
export interface SchemaModel {
  /** Entity types by fully qualified name. */
  readonly entityTypes: ReadonlyMap<string, EntityTypeModel>;
  /** Actions by their uid key (`Action::"read"`, `App::Action::"read"`). */
  readonly actions: ReadonlyMap<string, ActionModel>;
  /**
   * The schema's action entities by key, ancestors closed. Cedar adds these to the entity set of every
   * request when it is given a schema, so `action in Action::"data"` works without any entity data.
   */
  readonly actionEntities: ReadonlyMap<string, EntityData>;
  /**
   * The action entity type requests name with a bare action id, chosen as `describeSchema` chooses it (the
   * last namespace that declares actions), so that both paths resolve `request.action` alike.
   */
  readonly actionType: string;
}

const EXTENSION_TYPES: ReadonlySet<string> = new Set<ExtensionTypeName>(['ipaddr', 'decimal', 'datetime', 'duration']);
const BOOL: SchemaType = { kind: 'Bool' };
const LONG: SchemaType = { kind: 'Long' };
const STRING: SchemaType = { kind: 'String' };
/** The type of an action's context when the schema declares none, and of entity types without a shape. */
export const EMPTY_RECORD: RecordType = Object.freeze({ kind: 'Record', attrs: new Map() });

/**
 * Builds the model of a schema written in Cedar's schema syntax. Throws `PolicySetInvalidError` when cedar-wasm
 * refuses the schema.
 *
 * @example buildSchemaModel('entity User; action read appliesTo { principal: User, resource: User };')
 */
export function buildSchemaModel(schemaText: string): SchemaModel {
  // schemaToJsonWithResolvedTypes converts without validating (it lets a cyclic action hierarchy through).
  const check = cedar.checkParseSchema(schemaText);
  const answer = check.type === 'failure' ? check : cedar.schemaToJsonWithResolvedTypes(schemaText);
  if (answer.type === 'failure') {
    throw new PolicySetInvalidError(`the policy schema is invalid: ${answer.errors.map((e) => e.message).join('; ')}`);
  }
  return schemaModelFromResolvedJson(answer.json);
}

/**
 * Builds the model from the JSON form `schemaToJsonWithResolvedTypes` returns (types fully qualified,
 * `EntityOrCommon` resolved). Throws `PolicySetInvalidError` for a type it cannot resolve and for features a
 * Cedar-syntax schema cannot express and this model does not hold (action attributes, open records).
 */
export function schemaModelFromResolvedJson(json: SchemaJson<string>): SchemaModel {
  const commonTypes = new Map<string, unknown>();
  const declaredEntityTypes = new Set<string>();
  for (const [ns, def] of Object.entries(json)) {
    for (const [name, t] of Object.entries(def.commonTypes ?? {})) commonTypes.set(qualify(ns, name), t);
    for (const name of Object.keys(def.entityTypes ?? {})) declaredEntityTypes.add(qualify(ns, name));
  }

  const resolving = new Set<string>();
  const resolved = new Map<string, SchemaType>();
  const resolveCommon = (name: string): SchemaType => {
    const done = resolved.get(name);
    if (done) return done;
    // Cedar refuses cyclic common types; the guard keeps a malformed input from recursing forever.
    if (resolving.has(name)) throw invalid(`common type ${name} refers to itself`);
    resolving.add(name);
    const t = toType(commonTypes.get(name));
    resolving.delete(name);
    resolved.set(name, t);
    return t;
  };

  const toType = (raw: unknown): SchemaType => {
    if (typeof raw !== 'object' || raw === null) throw invalid(`unexpected type ${JSON.stringify(raw)}`);
    const t = raw as { type?: unknown; element?: unknown; attributes?: unknown; name?: unknown; additionalAttributes?: unknown };
    const type = t.type;
    if (typeof type !== 'string') throw invalid(`unexpected type ${JSON.stringify(raw)}`);
    // Structural forms carry their payload; a common type that happens to be named like one (e.g.
    // `type EntityOrCommon = Long`, which Cedar allows) is a bare `{ "type": name }` and falls through.
    if (type === 'Set' && t.element !== undefined) return { kind: 'Set', element: toType(t.element) };
    if (type === 'Record' && t.attributes !== undefined) return toRecord(t);
    if (type === 'Entity' && typeof t.name === 'string') return { kind: 'Entity', name: t.name };
    if (type === 'EntityOrCommon' && typeof t.name === 'string') {
      return commonTypes.has(t.name) ? resolveCommon(t.name) : { kind: 'Entity', name: t.name };
    }
    if (type === 'Extension' && typeof t.name === 'string') return extensionType(t.name);
    return namedType(type);
  };

  const namedType = (name: string): SchemaType => {
    const builtin = name.startsWith('__cedar::') ? name.slice('__cedar::'.length) : undefined;
    if (builtin === undefined && commonTypes.has(name)) return resolveCommon(name);
    switch (builtin ?? name) {
      case 'Bool':
      case 'Boolean':
        return BOOL;
      case 'Long':
        return LONG;
      case 'String':
        return STRING;
    }
    if (EXTENSION_TYPES.has(builtin ?? name)) return extensionType(builtin ?? name);
    if (builtin === undefined && declaredEntityTypes.has(name)) return { kind: 'Entity', name };
    throw invalid(`cannot resolve type ${name}`);
  };

  const extensionType = (name: string): SchemaType => {
    if (!EXTENSION_TYPES.has(name)) throw invalid(`unknown extension type ${name}`);
    return { kind: 'Extension', name: name as ExtensionTypeName };
  };

  const toRecord = (t: { attributes?: unknown; additionalAttributes?: unknown }): RecordType => {
    // Cedar-syntax schemas cannot declare open records; a model of one would need untyped attribute parsing.
    if (t.additionalAttributes === true) throw invalid('records with additionalAttributes are not supported');
    const attrs = new Map<string, AttributeType>();
    for (const [k, a] of Object.entries((t.attributes ?? {}) as Record<string, unknown>)) {
      attrs.set(k, { type: toType(a), required: (a as { required?: unknown }).required !== false });
    }
    return { kind: 'Record', attrs };
  };

  const toContextRecord = (raw: unknown, where: string): RecordType => {
    if (raw === undefined) return EMPTY_RECORD;
    const t = toType(raw);
    if (t.kind !== 'Record') throw invalid(`the context of ${where} is not a record type`);
    return t;
  };

  // Entity types.
  const entityTypes = new Map<string, EntityTypeModel>();
  const pending: Array<{ name: string; shape: RecordType; memberOfTypes: string[]; tags: SchemaType | undefined; enumIds: ReadonlySet<string> | undefined }> = [];
  for (const [ns, def] of Object.entries(json)) {
    for (const [basename, et] of Object.entries(def.entityTypes ?? {})) {
      const name = qualify(ns, basename);
      const e = et as { enum?: string[]; memberOfTypes?: string[]; shape?: unknown; tags?: unknown };
      const shape = e.shape === undefined ? EMPTY_RECORD : toType(e.shape);
      if (shape.kind !== 'Record') throw invalid(`the shape of entity type ${name} is not a record type`);
      pending.push({
        name,
        shape,
        memberOfTypes: (e.memberOfTypes ?? []).map((m) => (declaredEntityTypes.has(m) ? m : qualify(ns, m))),
        tags: e.tags === undefined ? undefined : toType(e.tags),
        enumIds: e.enum === undefined ? undefined : new Set(e.enum),
      });
    }
  }
  const directParents = new Map(pending.map((p) => [p.name, p.memberOfTypes]));
  for (const p of pending) {
    entityTypes.set(p.name, Object.freeze({ ...p, ancestorTypes: closure(p.memberOfTypes, (t) => directParents.get(t) ?? []) }));
  }

  // Actions.
  const actions = new Map<string, ActionModel>();
  const declared: Array<{ uid: EntityUid; memberOf: EntityUid[]; principalTypes: string[]; resourceTypes: string[]; context: RecordType }> = [];
  let actionType = 'Action';
  for (const [ns, def] of Object.entries(json)) {
    const nsActionType = qualify(ns, 'Action');
    const entries = Object.entries(def.actions ?? {});
    // Same rule as describeSchema in compile-policy-set.ts, so that both paths resolve a bare action id alike.
    if (entries.length > 0) actionType = nsActionType;
    for (const [id, a] of entries) {
      if (a.attributes !== undefined && Object.keys(a.attributes).length > 0) throw invalid(`action ${id} has attributes, which are not supported`);
      declared.push({
        uid: new EntityUid(nsActionType, id),
        memberOf: (a.memberOf ?? []).map((m) => new EntityUid(m.type ?? nsActionType, m.id)),
        principalTypes: [...(a.appliesTo?.principalTypes ?? [])],
        resourceTypes: [...(a.appliesTo?.resourceTypes ?? [])],
        context: toContextRecord(a.appliesTo?.context, `action ${id}`),
      });
    }
  }
  const actionParents = new Map(declared.map((d) => [d.uid.key, d.memberOf.map((m) => m.key)]));
  const actionEntities = new Map<string, EntityData>();
  const noValues: ReadonlyMap<string, CedarValue> = new Map();
  for (const d of declared) {
    const ancestors = closure(actionParents.get(d.uid.key) ?? [], (k) => actionParents.get(k) ?? []);
    actions.set(d.uid.key, Object.freeze({ ...d, ancestors }));
    actionEntities.set(d.uid.key, Object.freeze({ uid: d.uid, attrs: noValues, ancestors, tags: noValues }));
  }

  return Object.freeze({ entityTypes, actions, actionEntities, actionType });
}

/**
 * Finds the action a request names by its bare id (`read`), under the model's action type, as
 * `authorize` does.
 */
export function findAction(model: SchemaModel, id: string): ActionModel | undefined {
  return model.actions.get(new EntityUid(model.actionType, id).key);
}

/** Whether an entity type name is an action type (`Action`, `App::Action`): Cedar decides by the basename. */
export function isActionType(type: string): boolean {
  return type === 'Action' || type.endsWith('::Action');
}

function qualify(ns: string, name: string): string {
  return ns === '' ? name : `${ns}::${name}`;
}

/** All nodes reachable from `start` (not including a start node unless reachable again); cycles terminate. */
function closure(start: readonly string[], next: (node: string) => readonly string[]): ReadonlySet<string> {
  const seen = new Set<string>();
  const stack = [...start];
  while (stack.length > 0) {
    const n = stack.pop() as string;
    if (seen.has(n)) continue;
    seen.add(n);
    for (const m of next(n)) if (!seen.has(m)) stack.push(m);
  }
  return seen;
}

function invalid(message: string): PolicySetInvalidError {
  return new PolicySetInvalidError(`the policy schema cannot be used by the compiled path: ${message}`);
}

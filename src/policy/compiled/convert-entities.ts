/**
 * Converts entities from Cedar's JSON entity format into the compiled path's {@link EntityData}, checked
 * against the schema exactly as cedar-wasm 4.13 checks them when it is given a schema (`statefulIsAuthorized`,
 * `checkParseEntities`), and with the transitive closure of the hierarchy computed once.
 *
 * What Cedar refuses, and so what this refuses (each case is run through both in `convert-entities.test.ts`):
 * an entity type the schema does not declare; an id an enumerated type does not list (as uid, parent or
 * referenced value); a missing required attribute, an undeclared one, a value of the wrong type (see
 * `convert-value.ts`); tags on a type that declares none, or of the wrong type; a parent whose type is not
 * among the type's transitive `memberOfTypes`; the same uid twice with different descriptions
 * (`statefulIsAuthorized` refuses it, although `checkParseEntities` alone lets it pass; two equal
 * descriptions are one entity); a cycle in the hierarchy; and an action entity that is not declared or
 * differs from the schema's (its parents, closed over the data given, must equal the schema's ancestors; no
 * attributes, no tags). Cedar then adds the schema's action entities.
 *
 * Two entry points: {@link convertEntities} for a whole set (the policy directory, once per load) and
 * {@link convertEntitiesOnto} for the entities a request describes, converted against the already converted
 * directory: ancestors then span both, so a request entity can extend the ancestry of a directory entity
 * whose parent the directory does not define, as it does when both go to cedar-wasm together.
 */
import { InvalidEntityError } from '../../core/errors.ts';
import { checkEnumId, checkNesting, convertRecordAttributes, convertTypedValue, formatPath, nestingLimitBelow, presentKeys, readEntityUid, type ValuePath, type ValueSite } from './convert-value.ts';
import { isActionType, type ActionModel, type EntityTypeModel, type SchemaModel } from './schema-model.ts';
import type { EntityJson } from '../types.ts';
import { valueEquals, type CedarValue, type EntityData, type EntityLookup, type EntityUid } from './value.ts';

/** One entity, checked on its own (everything but the hierarchy, which needs the whole set). */
interface ParsedEntity {
  uid: EntityUid;
  attrs: ReadonlyMap<string, CedarValue>;
  tags: ReadonlyMap<string, CedarValue>;
  parentKeys: string[];
  /** Set for an action entity: the schema's declaration it must match. */
  action: ActionModel | undefined;
}

const NO_VALUES: ReadonlyMap<string, CedarValue> = new Map();

/**
 * Converts a set of entities (Cedar JSON) and computes each one's ancestors over the whole set. The result
 * also holds the schema's action entities, as Cedar's entity set does. Throws `InvalidEntityError` naming
 * the entity and the attribute path for anything cedar-wasm would refuse.
 *
 * @example convertEntities([{ uid: { type: 'User', id: 'alice' }, attrs: {}, parents: [] }], model)
 */
export function convertEntities(json: readonly EntityJson[], model: SchemaModel): Map<string, EntityData> {
  const parsed = parseAll(json, model, undefined);
  const ancestors = closeHierarchy(parsed);
  const out = new Map<string, EntityData>();
  for (const [key, p] of parsed) {
    const anc = ancestors.get(key) as ReadonlySet<string>;
    if (p.action) checkActionAncestors(p, anc);
    out.set(key, { uid: p.uid, attrs: p.attrs, ancestors: anc, tags: p.tags });
  }
  for (const [key, e] of model.actionEntities) if (!out.has(key)) out.set(key, e);
  return out;
}

/**
 * Converts the entities one request describes against `base`, a set already converted by
 * {@link convertEntities} (the policy directory, with the schema's actions). Ancestors span both sets, and a
 * cycle through both is refused. A uid that `base` already holds is refused as a duplicate (callers drop
 * caller data for directory entities before converting), except an action entity that matches the schema.
 */
export function convertEntitiesOnto(json: readonly EntityJson[], model: SchemaModel, base: ReadonlyMap<string, EntityData>): EntityOverlay {
  const parsed = parseAll(json, model, base);
  const added = new Map<string, EntityData>();
  for (const [key, p] of parsed) {
    const anc = new Set<string>();
    const stack = [...p.parentKeys];
    while (stack.length > 0) {
      const k = stack.pop() as string;
      if (anc.has(k)) continue;
      anc.add(k);
      const own = parsed.get(k);
      if (own) {
        stack.push(...own.parentKeys);
        continue;
      }
      const b = base.get(k);
      // Cedar closes the hierarchy over the entity data it is given; the schema's own action entities are
      // added afterwards, so they are not expanded when an action entity's parents are checked.
      if (!b || model.actionEntities.get(k) === b) continue;
      for (const a of b.ancestors) {
        if (anc.has(a)) continue;
        anc.add(a);
        // A directory entity's ancestors stop at parents the directory does not define; the request may.
        const more = parsed.get(a);
        if (more) stack.push(...more.parentKeys);
      }
    }
    if (anc.has(key)) throw cycle(key);
    if (p.action) checkActionAncestors(p, anc);
    // An action entity that matches the schema is the one the base already holds.
    added.set(key, (p.action ? base.get(key) : undefined) ?? { uid: p.uid, attrs: p.attrs, ancestors: anc, tags: p.tags });
  }
  return new EntityOverlay(base, added);
}

/**
 * Converts one entity a request describes against `base` (see {@link convertEntitiesOnto}).
 *
 * @example convertEntityOnto({ uid: { type: 'Tool', id: 'x' }, attrs: {...}, parents: [] }, model, directory)
 */
export function convertEntityOnto(json: EntityJson, model: SchemaModel, base: ReadonlyMap<string, EntityData>): EntityData {
  const [only] = convertEntitiesOnto([json], model, base).added.values();
  return only as EntityData;
}

/**
 * The entities of one request: those it describes (`added`) over the converted directory (`base`). A
 * directory entity whose ancestors reach an entity the request describes gets that entity's ancestors too.
 */
export class EntityOverlay implements EntityLookup {
  /** The entities the request describes, converted, by key (an action entity given as data is the base's). */
  readonly added: ReadonlyMap<string, EntityData>;
  readonly #base: ReadonlyMap<string, EntityData>;
  readonly #patched = new Map<string, EntityData>();

  constructor(base: ReadonlyMap<string, EntityData>, added: ReadonlyMap<string, EntityData>) {
    this.#base = base;
    this.added = added;
  }

  /** The entity with this key, or `undefined` when neither the request nor the base defines it. */
  get(key: string): EntityData | undefined {
    const own = this.added.get(key);
    if (own) return own;
    const b = this.#base.get(key);
    if (!b || this.added.size === 0) return b;
    const done = this.#patched.get(key);
    if (done) return done;
    let extended: Set<string> | undefined;
    const visit = (k: string) => {
      const a = this.added.get(k);
      if (!a) return;
      extended ??= new Set(b.ancestors);
      for (const x of a.ancestors) extended.add(x);
    };
    // Walk whichever set is smaller: usually the request's few entities.
    if (this.added.size < b.ancestors.size) {
      for (const k of this.added.keys()) if (b.ancestors.has(k)) visit(k);
    } else {
      for (const k of b.ancestors) visit(k);
    }
    const result = extended ? { ...b, ancestors: extended } : b;
    this.#patched.set(key, result);
    return result;
  }
}

function parseAll(json: readonly EntityJson[], model: SchemaModel, base: ReadonlyMap<string, EntityData> | undefined): Map<string, ParsedEntity> {
  if (!Array.isArray(json)) throw new InvalidEntityError('entities must be a list');
  const parsed = new Map<string, ParsedEntity>();
  for (let index = 0; index < json.length; index++) {
    const p = parseEntity(json[index], index, model);
    const earlier = parsed.get(p.uid.key);
    // Cedar keeps one of two equal descriptions of an entity and refuses two that differ.
    if (earlier && sameEntity(earlier, p)) continue;
    const inBase = base?.get(p.uid.key);
    if (earlier || (inBase && !(p.action && model.actionEntities.has(p.uid.key)))) {
      throw new InvalidEntityError(`duplicate entity entry ${p.uid.key}: it is described twice, differently`);
    }
    parsed.set(p.uid.key, p);
  }
  return parsed;
}

/** Cedar's entity equality: attributes and tags by value, parents as a set. */
function sameEntity(a: ParsedEntity, b: ParsedEntity): boolean {
  const sameValues = (x: ReadonlyMap<string, CedarValue>, y: ReadonlyMap<string, CedarValue>) =>
    x.size === y.size && [...x].every(([k, v]) => y.has(k) && valueEquals(v, y.get(k) as CedarValue));
  const pa = new Set(a.parentKeys);
  const pb = new Set(b.parentKeys);
  return sameValues(a.attrs, b.attrs) && sameValues(a.tags, b.tags) && pa.size === pb.size && [...pa].every((k) => pb.has(k));
}

/** Checks one entity against the schema and converts its attributes, tags and parents. */
function parseEntity(raw: unknown, index: number, model: SchemaModel): ParsedEntity {
  // serde reads a struct from a JSON array too: [uid, attrs, parents] or [uid, attrs, parents, tags].
  let e: Record<string, unknown>;
  if (Array.isArray(raw)) {
    if (raw.length < 3 || raw.length > 4) throw new InvalidEntityError(`entity #${index}: an entity is { uid, attrs, parents, tags? }`);
    e = { uid: raw[0], attrs: raw[1], parents: raw[2], tags: raw[3] };
  } else if (typeof raw === 'object' && raw !== null) {
    e = raw as Record<string, unknown>;
  } else {
    throw new InvalidEntityError(`entity #${index}: an entity is { uid, attrs, parents, tags? }`);
  }
  for (const field of ['uid', 'attrs', 'parents'] as const) {
    if (!present(e[field])) throw new InvalidEntityError(`entity #${index}: missing field \`${field}\``);
  }
  const uid = readEntityUid(e.uid);
  if (uid === 'expr-escape') throw new InvalidEntityError(`entity #${index}: uid: the \`__expr\` escape is no longer supported`);
  if (!uid) throw new InvalidEntityError(`entity #${index}: uid must be { "type": "...", "id": "..." }`);
  const name = uid.key;
  const { attrs, parents, tags } = e;
  // Fields the conversion does not descend into are still read by cedar-wasm's JSON reader, nesting limit
  // included; attribute and tag values are checked as they are converted.
  for (const field of Object.keys(e)) {
    if (field !== 'attrs' && field !== 'tags') checkNesting(e[field], new EntitySite(model, name, field), [], true);
  }
  if (!isObject(attrs)) throw new InvalidEntityError(`entity ${name}: attrs must be a map of attribute names to values`);
  if (!Array.isArray(parents)) throw new InvalidEntityError(`entity ${name}: parents must be a list of entity references`);
  if (present(tags) && !isObject(tags)) throw new InvalidEntityError(`entity ${name}: tags must be a map of tag names to values`);
  const tagMap = isObject(tags) ? tags : {};

  const parentUids: EntityUid[] = [];
  const parentKeys: string[] = [];
  for (let i = 0; i < parents.length; i++) {
    const puid = readEntityUid(present(parents[i]) ? parents[i] : null);
    if (puid === 'expr-escape') throw new InvalidEntityError(`entity ${name}: parents[${i}]: the \`__expr\` escape is no longer supported`);
    if (!puid) throw new InvalidEntityError(`entity ${name}: parents[${i}] must be { "type": "...", "id": "..." }`);
    parentUids.push(puid);
    parentKeys.push(puid.key);
  }

  if (isActionType(uid.type)) {
    const action = model.actions.get(name);
    if (!action) throw new InvalidEntityError(`entity ${name}: found an action entity that the schema does not declare`);
    // The schema's action entities have no attributes or tags (Cedar-syntax schemas cannot give them any).
    if (presentKeys(attrs).length > 0 || presentKeys(tagMap).length > 0) throw mismatch(name);
    return { uid, attrs: NO_VALUES, tags: NO_VALUES, parentKeys, action };
  }

  const et = model.entityTypes.get(uid.type);
  if (!et) throw new InvalidEntityError(`entity ${name}: type \`${uid.type}\` is not declared in the schema`);
  const root: ValuePath = [];
  checkEnumId(uid, new EntitySite(model, name, 'uid'), root);
  const convertedAttrs = convertRecordAttributes(attrs, et.shape, new EntitySite(model, name, 'attribute'), root, 'attribute');
  const convertedTags = convertTags(tagMap, et, new EntitySite(model, name, 'tag'));
  for (let i = 0; i < parentUids.length; i++) {
    const puid = parentUids[i] as EntityUid;
    if (!et.ancestorTypes.has(puid.type)) {
      throw new InvalidEntityError(`entity ${name}: parents[${i}]: ${puid.key} may not be a parent: the schema allows ${describeParents(et)}`);
    }
    checkEnumId(puid, new EntitySite(model, name, `parents[${i}]`), root);
  }
  return { uid, attrs: convertedAttrs, tags: convertedTags, parentKeys, action: undefined };
}

/**
 * Refusals inside one entity: `entity User::"a": attribute addr.zip: …`. A class rather than a closure per
 * entity: tsx's transform wraps every function expression in a naming helper that costs on hot paths.
 */
class EntitySite implements ValueSite {
  readonly model: SchemaModel;
  // Attribute and tag values sit at `{ "entities": [ { "attrs": { here } } ] }`.
  readonly nestingLimit = nestingLimitBelow(4);
  readonly #name: string;
  readonly #what: string;

  constructor(model: SchemaModel, name: string, what: string) {
    this.model = model;
    this.#name = name;
    this.#what = what;
  }

  refuse(path: string, message: string): Error {
    return new InvalidEntityError(`entity ${this.#name}: ${path === '' ? `${this.#what}: ` : `${this.#what} ${path}: `}${message}`);
  }
}

function convertTags(tags: Record<string, unknown>, et: EntityTypeModel, site: ValueSite): ReadonlyMap<string, CedarValue> {
  const keys = presentKeys(tags);
  if (keys.length === 0) return NO_VALUES;
  if (!et.tags) throw site.refuse(formatPath([keys[0] as string]), `the schema declares no tags for \`${et.name}\``);
  const out = new Map<string, CedarValue>();
  const path: ValuePath = [];
  for (const k of keys) {
    path.push(k);
    out.set(k, convertTypedValue(tags[k], et.tags, site, path));
    path.pop();
  }
  return out;
}

/**
 * Ancestors of every entity over the set (parents, and their ancestors when the set defines them), refusing
 * a cycle as Cedar does. Iterative depth-first search, so a long chain cannot overflow the stack.
 */
function closeHierarchy(parsed: ReadonlyMap<string, ParsedEntity>): Map<string, ReadonlySet<string>> {
  const ACTIVE = 1;
  const DONE = 2;
  const state = new Map<string, number>();
  const ancestors = new Map<string, ReadonlySet<string>>();
  for (const start of parsed.keys()) {
    if (state.has(start)) continue;
    state.set(start, ACTIVE);
    const stack: Array<{ key: string; next: number }> = [{ key: start, next: 0 }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as { key: string; next: number };
      const parents = (parsed.get(top.key) as ParsedEntity).parentKeys;
      if (top.next < parents.length) {
        const p = parents[top.next++] as string;
        if (!parsed.has(p)) continue;
        const s = state.get(p);
        if (s === ACTIVE) throw cycle(p);
        if (s === undefined) {
          state.set(p, ACTIVE);
          stack.push({ key: p, next: 0 });
        }
        continue;
      }
      const anc = new Set<string>();
      for (const p of parents) {
        anc.add(p);
        const more = ancestors.get(p);
        if (more) for (const a of more) anc.add(a);
      }
      ancestors.set(top.key, anc);
      state.set(top.key, DONE);
      stack.pop();
    }
  }
  return ancestors;
}

/** An action entity given as data must equal the schema's: the same ancestors once the data is closed. */
function checkActionAncestors(p: ParsedEntity, ancestors: ReadonlySet<string>): void {
  const expected = (p.action as ActionModel).ancestors;
  if (ancestors.size !== expected.size || [...expected].some((a) => !ancestors.has(a))) throw mismatch(p.uid.key);
}

function mismatch(name: string): InvalidEntityError {
  return new InvalidEntityError(`entity ${name}: the definition of this action does not match its schema declaration (give it its ancestors, no attributes and no tags, or leave it out: the schema defines it)`);
}

function cycle(key: string): InvalidEntityError {
  return new InvalidEntityError(`entity ${key}: the entity hierarchy has a cycle through this entity`);
}

function describeParents(et: EntityTypeModel): string {
  return et.ancestorTypes.size === 0 ? `no parents for \`${et.name}\`` : `parents of type ${[...et.ancestorTypes].sort().map((t) => `\`${t}\``).join(', ')}`;
}

function present(v: unknown): boolean {
  return v !== undefined && typeof v !== 'function' && typeof v !== 'symbol';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

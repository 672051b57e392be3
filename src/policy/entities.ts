/**
 * Entity helpers: normalisation of entity data before it reaches the engine, and the minimal slice of
 * entities one request needs (marshalling entities into the engine dominates its cost).
 */
import { InvalidEntityError, IntegerOutOfRangeError } from '../core/errors.ts';
import { formatEntityRef, type EntityRef } from '../core/decision.ts';
import type { EntityJson } from './types.ts';

/** Data sensitivity names and their levels; policies compare `sensitivityLevel`. */
export const SENSITIVITY_LEVELS: Readonly<Record<string, number>> = Object.freeze({
  public: 0,
  internal: 1,
  confidential: 2,
  restricted: 3,
});

/** Key of an entity in maps: its Cedar form, `Type::"id"`. */
export function entityKey(ref: EntityRef): string {
  return formatEntityRef(ref);
}

/** Reads an entity reference from a value in Cedar JSON (`{type, id}` or `{__entity: {type, id}}`). */
export function asEntityRef(value: unknown, entityTypes: ReadonlySet<string>): EntityRef | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const v = (value as { __entity?: unknown }).__entity ?? value;
  if (typeof v !== 'object' || v === null) return undefined;
  const { type, id } = v as { type?: unknown; id?: unknown };
  if (typeof type !== 'string' || typeof id !== 'string' || !entityTypes.has(type)) return undefined;
  const keys = Object.keys(v);
  if (keys.length !== 2) return undefined;
  return { type, id };
}

/**
 * Checks shapes the engine would otherwise misread and derives `sensitivityLevel` from `sensitivity`.
 * Throws `InvalidEntityError` or `IntegerOutOfRangeError` with the offending path.
 */
export function normalizeEntity(raw: EntityJson, schema: { entityTypes: ReadonlySet<string> }): EntityJson {
  if (typeof raw !== 'object' || raw === null) throw new InvalidEntityError('an entity must be an object with uid, attrs and parents');
  const uid = raw.uid as unknown;
  if (typeof uid !== 'object' || uid === null || typeof (uid as EntityRef).type !== 'string' || typeof (uid as EntityRef).id !== 'string') {
    throw new InvalidEntityError('entity uid must be { type: string, id: string }');
  }
  const ref = { type: (uid as EntityRef).type, id: (uid as EntityRef).id };
  const name = formatEntityRef(ref);
  if (!schema.entityTypes.has(ref.type)) {
    throw new InvalidEntityError(`entity ${name}: type ${JSON.stringify(ref.type)} is not defined by the policy schema`);
  }
  const attrs = raw.attrs ?? {};
  if (typeof attrs !== 'object' || Array.isArray(attrs)) throw new InvalidEntityError(`entity ${name}: attrs must be an object`);
  const parents = raw.parents ?? [];
  if (!Array.isArray(parents)) throw new InvalidEntityError(`entity ${name}: parents must be a list of { type, id }`);
  for (const p of parents) {
    if (typeof p !== 'object' || p === null || typeof p.type !== 'string' || typeof p.id !== 'string') {
      throw new InvalidEntityError(`entity ${name}: each parent must be { type: string, id: string }`);
    }
  }
  assertRepresentable(attrs, `entity ${name} attrs`);
  if (raw.tags !== undefined) assertRepresentable(raw.tags, `entity ${name} tags`);
  assertRepresentable([ref.type, ref.id, ...parents.flatMap((p) => [p.type, p.id])], `entity ${name} uid and parents`);
  const out: Record<string, unknown> = { ...attrs };
  if (typeof out.sensitivity === 'string') {
    const level = SENSITIVITY_LEVELS[out.sensitivity];
    if (level === undefined) {
      throw new InvalidEntityError(`entity ${name}: sensitivity ${JSON.stringify(out.sensitivity)} is not one of ${Object.keys(SENSITIVITY_LEVELS).join(', ')}`);
    }
    if (out.sensitivityLevel !== undefined && out.sensitivityLevel !== level) {
      throw new InvalidEntityError(`entity ${name}: sensitivityLevel ${String(out.sensitivityLevel)} disagrees with sensitivity ${JSON.stringify(out.sensitivity)} (level ${level}); omit it and Mandate derives it`);
    }
    out.sensitivityLevel = level;
  }
  return { uid: ref, attrs: out, parents: parents.map((p) => ({ type: p.type, id: p.id })), ...(raw.tags ? { tags: raw.tags } : {}) };
}

/**
 * Refuses input that the two engines could read differently, before either sees it: numbers that Cedar's
 * 64-bit `Long` and JSON cannot agree on (fractions, integers beyond 2^53), strings with lone UTF-16
 * surrogates (not valid Unicode; cedar-wasm throws on them), `unknown(...)` extension values (partial
 * evaluation only: a decision never evaluates unknowns), and nesting deeper than 64 levels.
 * @param errorType - the error class for this input (`InvalidEntityError` or `InvalidContextError`)
 * @see https://docs.cedarpolicy.com/policies/syntax-datatypes.html#datatype-long
 */
export function assertRepresentable(value: unknown, path: string, errorType: typeof InvalidEntityError = InvalidEntityError, depth = 0): void {
  if (depth > 64) throw new errorType(`${path}: nested deeper than 64 levels`);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new IntegerOutOfRangeError(`${path}: ${value} is not an integer between -(2^53-1) and 2^53-1; Cedar has no fractions and larger integers cannot be represented exactly in JSON`);
    }
    return;
  }
  if (typeof value === 'string') {
    if (!value.isWellFormed()) throw new errorType(`${path}: the string holds a lone UTF-16 surrogate; send valid Unicode`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => assertRepresentable(v, `${path}[${i}]`, errorType, depth + 1));
    return;
  }
  if (typeof value === 'object' && value !== null) {
    const extn = (value as { __extn?: { fn?: unknown } }).__extn;
    if (typeof extn === 'object' && extn !== null && extn.fn === 'unknown') {
      throw new errorType(`${path}: unknown(...) values are for partial evaluation and cannot appear in a decision request`);
    }
    for (const [k, v] of Object.entries(value)) {
      if (!k.isWellFormed()) throw new errorType(`${path}: an attribute name holds a lone UTF-16 surrogate; send valid Unicode`);
      assertRepresentable(v, `${path}.${k}`, errorType, depth + 1);
    }
  }
}

/** Collects entity references found anywhere in a value. */
export function collectRefs(value: unknown, entityTypes: ReadonlySet<string>, out: EntityRef[], depth = 0): void {
  if (depth > 64 || typeof value !== 'object' || value === null) return;
  const ref = asEntityRef(value, entityTypes);
  if (ref) {
    out.push(ref);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collectRefs(v, entityTypes, out, depth + 1);
  else for (const v of Object.values(value)) collectRefs(v, entityTypes, out, depth + 1);
}

/**
 * The entities a request needs: the seeds, their ancestors and every entity reachable through attribute
 * references, transitively. Bounded by `limit`.
 */
export function entitySlice(
  seeds: readonly EntityRef[],
  lookup: (key: string) => EntityJson | undefined,
  entityTypes: ReadonlySet<string>,
  limit = 10_000,
  options: { skip?: ReadonlySet<string>; seen?: Set<string>; missing?: Set<string> } = {},
): EntityJson[] {
  // `skip`: keys already given (with their closure) by another slice; `missing`: collects keys reached but not found.
  const seen = options.seen ?? new Set<string>();
  const out: EntityJson[] = [];
  const queue: EntityRef[] = [...seeds];
  while (queue.length > 0) {
    const ref = queue.pop() as EntityRef;
    const key = entityKey(ref);
    if (seen.has(key) || options.skip?.has(key)) continue;
    seen.add(key);
    const e = lookup(key);
    if (!e) {
      options.missing?.add(key);
      continue;
    }
    out.push(e);
    if (out.length > limit) throw new InvalidEntityError(`the request reaches more than ${limit} entities`);
    for (const p of e.parents) queue.push(p);
    collectRefs(e.attrs, entityTypes, queue);
  }
  return out;
}

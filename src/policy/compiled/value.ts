/**
 * Cedar values as the compiled evaluator holds them: plain JavaScript, converted once (directory entities at
 * load, request data per request) so that no decision serialises anything.
 *
 * Representation (shared by the evaluator, the extension types and the schema-directed converter):
 * - Bool → `boolean`; String → `string`;
 * - Long → `bigint`, always (Cedar's Long is a signed 64-bit integer; every arithmetic result is checked
 *   against [-2^63, 2^63-1] and overflow is an evaluation error, as in Cedar);
 * - Entity reference → {@link EntityUid} (compare by `key`);
 * - Set → {@link CedarSet}; Record → {@link CedarRecord};
 * - extension values → instances of the classes in `extensions.ts` (`Decimal`, `IpAddr`, `Datetime`,
 *   `Duration`), each implementing {@link ExtensionValue}.
 *
 * @see https://docs.cedarpolicy.com/policies/syntax-datatypes.html
 */

/** An entity reference, e.g. `Agent::"triage-bot"`. `key` is its Cedar text form and its identity. */
export class EntityUid {
  readonly type: string;
  readonly id: string;
  /** `Type::"id"` with the id JSON-quoted, as `formatEntityRef` writes it; equal keys ⇔ equal uids. */
  readonly key: string;

  constructor(type: string, id: string) {
    this.type = type;
    this.id = id;
    this.key = `${type}::${JSON.stringify(id)}`;
  }
}

/** A Cedar extension value (decimal, ipaddr, datetime, duration). */
export interface ExtensionValue {
  /** Extension type name as Cedar writes it: `decimal`, `ipaddr`, `datetime`, `duration`. */
  readonly extension: string;
  /** Equality as Cedar defines it for this type. */
  equals(other: ExtensionValue): boolean;
  /** A canonical string, used to key values in sets. */
  canonical(): string;
}

/** A Cedar value. */
export type CedarValue = boolean | string | bigint | EntityUid | CedarSet | CedarRecord | ExtensionValue;

/** A Cedar set: unordered, without duplicates (by Cedar equality). */
export class CedarSet {
  readonly items: readonly CedarValue[];
  #keys: Set<string> | undefined;

  constructor(items: readonly CedarValue[]) {
    const seen = new Set<string>();
    const unique: CedarValue[] = [];
    for (const v of items) {
      const k = valueKey(v);
      if (!seen.has(k)) {
        seen.add(k);
        unique.push(v);
      }
    }
    this.items = unique;
    this.#keys = seen;
  }

  /** Canonical keys of the members (for membership tests). */
  keys(): Set<string> {
    this.#keys ??= new Set(this.items.map(valueKey));
    return this.#keys;
  }

  has(v: CedarValue): boolean {
    return this.keys().has(valueKey(v));
  }
}

/** A Cedar record. Attributes are held in a Map so that no key (e.g. `__proto__`) can touch a prototype. */
export class CedarRecord {
  readonly attrs: ReadonlyMap<string, CedarValue>;

  constructor(attrs: ReadonlyMap<string, CedarValue>) {
    this.attrs = attrs;
  }
}

/** An entity as the evaluator holds it. */
export interface EntityData {
  uid: EntityUid;
  attrs: ReadonlyMap<string, CedarValue>;
  /** Keys of all ancestors, transitively (Cedar's `in` is transitive over the hierarchy). */
  ancestors: ReadonlySet<string>;
  tags: ReadonlyMap<string, CedarValue>;
}

/** Looks up entities by key; `undefined` means the entity does not exist. */
export interface EntityLookup {
  get(key: string): EntityData | undefined;
}

/**
 * A canonical string for any value; two values are Cedar-equal iff their keys are equal. Used for set
 * membership and equality of sets and records.
 */
export function valueKey(v: CedarValue): string {
  switch (typeof v) {
    case 'boolean':
      return v ? 'b:1' : 'b:0';
    case 'string':
      return `s:${JSON.stringify(v)}`;
    case 'bigint':
      return `l:${v.toString()}`;
  }
  if (v instanceof EntityUid) return `e:${v.key}`;
  if (v instanceof CedarSet) return `S:[${[...v.keys()].sort().join(',')}]`;
  if (v instanceof CedarRecord) {
    const parts = [...v.attrs.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => `${JSON.stringify(k)}:${valueKey(x)}`);
    return `R:{${parts.join(',')}}`;
  }
  return `x:${v.extension}:${v.canonical()}`;
}

/** Cedar equality (`==`): values of different types are unequal, never an error. */
export function valueEquals(a: CedarValue, b: CedarValue): boolean {
  if (typeof a !== 'object' || typeof b !== 'object') return a === b;
  if (a instanceof EntityUid) return b instanceof EntityUid && a.key === b.key;
  return valueKey(a) === valueKey(b);
}

/** Cedar's name for a value's type, for error messages. */
export function typeOfValue(v: CedarValue): string {
  switch (typeof v) {
    case 'boolean':
      return 'bool';
    case 'string':
      return 'string';
    case 'bigint':
      return 'long';
  }
  if (v instanceof EntityUid) return `(entity of type \`${v.type}\`)`;
  if (v instanceof CedarSet) return 'set';
  if (v instanceof CedarRecord) return 'record';
  return v.extension;
}

/** Bounds of Cedar's Long. */
export const LONG_MIN = -(2n ** 63n);
export const LONG_MAX = 2n ** 63n - 1n;

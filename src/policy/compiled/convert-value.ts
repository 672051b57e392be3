/**
 * Schema-directed conversion of one value from Cedar's JSON value format into the compiled path's
 * representation ({@link CedarValue}), accepting and refusing exactly what cedar-wasm 4.13 accepts and refuses
 * for entity attributes, entity tags and context (checked case by case in `convert-entities.test.ts` and
 * `convert-context.test.ts`).
 *
 * What cedar-wasm does, and therefore what this does:
 * - Its JavaScript binding passes every argument through `JSON.stringify`: an `undefined` property is absent,
 *   `undefined` inside an array and a non-finite number are `null`, and `null` is refused everywhere. A number
 *   is read back from its JSON text, so `2 ** 60` arrives as 1152921504606847000 (the shortest decimal that
 *   round-trips), a fraction or a value outside the 64-bit range is refused. A string holding a lone UTF-16
 *   surrogate makes the engine throw; it is refused here.
 * - Where the schema expects an entity, `{ "type", "id" }`, `{ "__entity": { "type", "id" } }` and even
 *   `["Type", "id"]` are references (extra keys ignored); where it expects an extension type, a plain string
 *   calls the type's constructor, `{ "fn", "arg" }` or `{ "__extn": { "fn", "arg" | "args" } }` call any
 *   extension function (`offset`, `toDate`, …) whose arguments are again read by their declared types.
 * - Elsewhere (a Bool, Long or String position, or an extension function's argument read without a type) only
 *   the explicit escapes count, and only as a record's single key; `__expr` is refused.
 * - Records are closed: a missing required attribute or one the type does not declare is refused.
 * - Its JSON reader stops at 128 levels of nesting of the whole call, parts it then ignores included.
 * - `{"__extn": {"fn": "unknown", …}}` is Cedar's partial-evaluation placeholder: refused here (see
 *   {@link convertTypedValue}).
 *
 * @see https://docs.cedarpolicy.com/auth/entities-syntax.html
 */
import { callExtensionFunction, ExtensionError } from './extensions.ts';
import { CedarRecord, CedarSet, EntityUid, LONG_MAX, LONG_MIN, typeOfValue, type CedarValue } from './value.ts';
import type { ExtensionTypeName, RecordType, SchemaModel, SchemaType } from './schema-model.ts';

/** Where a value sits, for error messages, and how to report a refusal. */
export interface ValueSite {
  readonly model: SchemaModel;
  /**
   * Nesting cedar-wasm's JSON reader allows below the root of the converted values (the limit is 128 levels
   * of the whole call document, whose own levels come first): a value at path length L holding n levels of
   * arrays and objects is refused when L + n exceeds it.
   */
  readonly nestingLimit: number;
  /** Builds the error that refuses the value; `path` names the attribute, e.g. `roles[2]` or `args.amount`. */
  refuse(path: string, message: string): Error;
}

/** A path from the root of the value being converted: attribute names and set positions. */
export type ValuePath = Array<string | number>;

/** Formats a path the way the refusals print it: `a.b[2].c`; names that are not identifiers are quoted. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) out += out === '' ? p : `.${p}`;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out;
}

// The constructor Cedar calls for a plain string where the schema expects each extension type.
const CONSTRUCTORS: Readonly<Record<ExtensionTypeName, string>> = { ipaddr: 'ip', decimal: 'decimal', datetime: 'datetime', duration: 'duration' };

const S: SchemaType = { kind: 'String' };
const DEC: SchemaType = { kind: 'Extension', name: 'decimal' };
const IP: SchemaType = { kind: 'Extension', name: 'ipaddr' };
const DT: SchemaType = { kind: 'Extension', name: 'datetime' };
const DUR: SchemaType = { kind: 'Extension', name: 'duration' };

/**
 * Declared argument types of Cedar's extension functions. Where the schema expects an extension value, each
 * argument is read by its declared type, so `offset`'s arguments may be plain strings.
 */
const ARGUMENT_TYPES: ReadonlyMap<string, readonly SchemaType[]> = new Map([
  ['decimal', [S]],
  ['lessThan', [DEC, DEC]],
  ['lessThanOrEqual', [DEC, DEC]],
  ['greaterThan', [DEC, DEC]],
  ['greaterThanOrEqual', [DEC, DEC]],
  ['ip', [S]],
  ['isIpv4', [IP]],
  ['isIpv6', [IP]],
  ['isLoopback', [IP]],
  ['isMulticast', [IP]],
  ['isInRange', [IP, IP]],
  ['datetime', [S]],
  ['duration', [S]],
  ['offset', [DT, DUR]],
  ['durationSince', [DT, DT]],
  ['toDate', [DT]],
  ['toTime', [DT]],
  ['toMilliseconds', [DUR]],
  ['toSeconds', [DUR]],
  ['toMinutes', [DUR]],
  ['toHours', [DUR]],
  ['toDays', [DUR]],
]);

// A lone surrogate: JSON.stringify escapes it and cedar-wasm's JSON reader then throws.
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Whether a property value survives `JSON.stringify` (it drops `undefined`, functions and symbols). */
function present(v: unknown): boolean {
  return v !== undefined && typeof v !== 'function' && typeof v !== 'symbol';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Own keys whose values survive `JSON.stringify`. */
export function presentKeys(o: Record<string, unknown>): string[] {
  const keys = Object.keys(o);
  for (const k of keys) if (!present(o[k])) return keys.filter((x) => present(o[x]));
  return keys;
}

/** Reads a JSON array element: `JSON.stringify` writes `null` for what it cannot represent. */
function element(v: unknown): unknown {
  return present(v) ? v : null;
}

/**
 * The Long a JSON number denotes, as cedar-wasm reads it: from the number's JSON text, which must be an
 * integer literal within the 64-bit range. `undefined` when it is not.
 */
export function longFromNumber(n: number): bigint | undefined {
  const text = JSON.stringify(n);
  if (!/^-?\d+$/.test(text)) return undefined;
  const v = BigInt(text);
  return v >= LONG_MIN && v <= LONG_MAX ? v : undefined;
}

/** Whether a string survives cedar-wasm's JSON round trip (no lone surrogate). */
export function isWellFormedString(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

/**
 * Whether `v` deserialises as Cedar's raw JSON value (any JSON without a fraction, an out-of-range integer or
 * a lone surrogate). Untagged variants whose payload fails this are skipped, as serde skips them.
 */
function isRawJson(v: unknown, depth = 0): boolean {
  if (depth > JSON_NESTING_LIMIT) return false;
  switch (typeof v) {
    case 'boolean':
      return true;
    case 'string':
      return isWellFormedString(v);
    case 'number':
      return !Number.isFinite(v) || longFromNumber(v) !== undefined;
    case 'object':
      if (v === null) return true;
      if (Array.isArray(v)) return v.every((x) => isRawJson(element(x), depth + 1));
      return Object.keys(v).every((k) => isWellFormedString(k) && (!present((v as Record<string, unknown>)[k]) || isRawJson((v as Record<string, unknown>)[k], depth + 1)));
    default:
      return !present(v);
  }
}

/** serde_json's default recursion limit: a document nested 128 levels deep is refused. */
const JSON_NESTING_LIMIT = 128;

/**
 * The nesting limit below a value that sits `levels` levels deep in the document cedar-wasm reads (the
 * entity attributes of `{ "entities": [ { "attrs": { … } } ] }` sit at 4, a context's at 2).
 */
export function nestingLimitBelow(levels: number): number {
  return JSON_NESTING_LIMIT - levels;
}

/**
 * Levels of arrays and objects in `v` as JSON.stringify writes it, counted up to `cap`; `Infinity` when a
 * string or key in it holds a lone surrogate (the reader refuses that at any depth).
 */
function jsonNesting(v: unknown, cap: number): number {
  if (typeof v === 'string') return isWellFormedString(v) ? 0 : Infinity;
  if (typeof v !== 'object' || v === null || cap <= 0) return 0;
  let deepest = 0;
  if (Array.isArray(v)) {
    for (const x of v) deepest = Math.max(deepest, jsonNesting(x, cap - 1));
  } else {
    for (const k of Object.keys(v)) {
      if (!isWellFormedString(k)) return Infinity;
      deepest = Math.max(deepest, jsonNesting((v as Record<string, unknown>)[k], cap - 1));
    }
  }
  return 1 + deepest;
}

/**
 * Refuses a value nested deeper than cedar-wasm's JSON reader goes. Measured near the limit only, where the
 * conversion descends into the value anyway; `always` for values whose parts the conversion skips (an entity
 * reference's or an escape's extra keys), which the reader still reads — lone surrogates included.
 */
export function checkNesting(v: unknown, site: ValueSite, path: ValuePath, always = false): void {
  const room = site.nestingLimit - path.length;
  // Escapes (`{"__extn": {"fn", "args": [...]}}`) add a few levels the path does not count.
  if ((always || room < 8) && jsonNesting(v, room + 1) > room) {
    throw site.refuse(formatPath(path), 'not JSON the policy engine reads: nested too deeply, or a string holds a lone UTF-16 surrogate');
  }
}

type Call = { fn: string; args: unknown[] };

/** `FnAndArgs`: `{ fn, arg }` (tried first) or `{ fn, args: [...] }`, extra keys ignored. */
function fnAndArgs(v: unknown): Call | undefined {
  if (!isObject(v) || typeof v.fn !== 'string' || !isWellFormedString(v.fn)) return undefined;
  if (present(v.arg) && isRawJson(v.arg)) return { fn: v.fn, args: [v.arg] };
  if (Array.isArray(v.args) && isRawJson(v.args)) return { fn: v.fn, args: v.args.map(element) };
  return undefined;
}

/** `TypeAndId`: `{ type, id }` with extra keys ignored, or a two-element array `[type, id]`. */
function typeAndId(v: unknown): EntityUid | undefined {
  if (Array.isArray(v)) {
    return v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string' ? new EntityUid(v[0], v[1]) : undefined;
  }
  if (isObject(v) && typeof v.type === 'string' && typeof v.id === 'string') return new EntityUid(v.type, v.id);
  return undefined;
}

/**
 * Reads an entity reference where one is expected (an entity's `uid`, its `parents`, an entity-typed
 * attribute): `{ "__entity": { "type", "id" } }`, `{ "type", "id" }` or `["type", "id"]`. `undefined` when
 * the value is none of them.
 */
export function readEntityUid(v: unknown): EntityUid | 'expr-escape' | undefined {
  if (isObject(v) && typeof v.__expr === 'string') return 'expr-escape';
  const uid = (isObject(v) ? typeAndId(v.__entity) : undefined) ?? typeAndId(v);
  if (uid && isWellFormedString(uid.type) && isWellFormedString(uid.id)) return uid;
  return undefined;
}

/** Whether `v` is Cedar's `unknown("…")` placeholder, which cedar-wasm accepts in any typed position. */
function isUnknownPlaceholder(v: unknown): boolean {
  if (!isObject(v) || !isObject(v.__extn)) return false;
  const { fn, arg } = v.__extn;
  return fn === 'unknown' && typeof arg === 'string';
}

function describeType(t: SchemaType): string {
  switch (t.kind) {
    case 'Bool':
      return 'bool';
    case 'Long':
      return 'long';
    case 'String':
      return 'string';
    case 'Set':
      return `set of ${describeType(t.element)}`;
    case 'Record':
      return 'record';
    case 'Entity':
      return `entity of type \`${t.name}\``;
    case 'Extension':
      return t.name;
  }
}

function describeJson(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'set';
  if (typeof v === 'object') return 'record';
  if (typeof v === 'number') return 'long';
  if (typeof v === 'boolean') return 'bool';
  return typeof v;
}

/**
 * Converts a value where the schema expects type `t` (an entity attribute, a tag, a context attribute).
 * Throws `site.refuse(...)` when cedar-wasm would refuse the value.
 *
 * Not matched: cedar-wasm accepts `{"__extn": {"fn": "unknown", "arg": "x"}}` in entity data (a policy that
 * reads it then fails with "the expression contains unknown(s)"); it is refused here, because the compiled
 * evaluator has no residual values. In context cedar-wasm refuses it too.
 */
export function convertTypedValue(v: unknown, t: SchemaType, site: ValueSite, path: ValuePath): CedarValue {
  checkNesting(v, site, path);
  if (isUnknownPlaceholder(v)) {
    throw site.refuse(formatPath(path), 'unknown() is a partial-evaluation placeholder and is not accepted as a value');
  }
  switch (t.kind) {
    case 'Entity': {
      checkNesting(v, site, path, true);
      const uid = readEntityUid(v);
      if (uid === 'expr-escape') throw site.refuse(formatPath(path), 'the `__expr` escape is no longer supported');
      if (!uid) throw site.refuse(formatPath(path), `expected a literal entity reference ({ "type": "${t.name}", "id": "..." })`);
      if (uid.type !== t.name) throw site.refuse(formatPath(path), `expected ${describeType(t)}, got ${uid.key}`);
      checkEnumId(uid, site, path);
      return uid;
    }
    case 'Extension':
      checkNesting(v, site, path, true);
      return convertExtension(v, t.name, site, path);
    case 'Set': {
      if (!Array.isArray(v)) {
        if (present(v)) convertUntypedValue(v, site, path); // a malformed value is refused for that first, as Cedar does
        throw site.refuse(formatPath(path), `expected ${describeType(t)}, got ${describeJson(v)}`);
      }
      const items: CedarValue[] = [];
      for (let i = 0; i < v.length; i++) {
        path.push(i);
        items.push(convertTypedValue(element(v[i]), t.element, site, path));
        path.pop();
      }
      return new CedarSet(items);
    }
    case 'Record': {
      if (!isObject(v)) {
        if (present(v)) convertUntypedValue(v, site, path);
        throw site.refuse(formatPath(path), `expected a record, got ${describeJson(v)}`);
      }
      return new CedarRecord(convertRecordAttributes(v, t, site, path, 'record attribute'));
    }
    case 'Bool':
    case 'Long':
    case 'String': {
      const value = convertUntypedValue(v, site, path);
      const actual = typeof value === 'boolean' ? 'Bool' : typeof value === 'bigint' ? 'Long' : typeof value === 'string' ? 'String' : undefined;
      if (actual !== t.kind) throw site.refuse(formatPath(path), `expected ${describeType(t)}, got ${typeOfValue(value)}`);
      return value;
    }
  }
}

/**
 * Converts the attributes of a closed record type: every required attribute present, none undeclared.
 * `noun` names them in refusals (`attribute` for an entity's, `record attribute` for a nested record's).
 */
export function convertRecordAttributes(
  v: Record<string, unknown>,
  t: RecordType,
  site: ValueSite,
  path: ValuePath,
  noun: string,
): Map<string, CedarValue> {
  const out = new Map<string, CedarValue>();
  for (const k of Object.keys(v)) {
    const raw = v[k];
    if (!present(raw)) continue;
    const at = t.attrs.get(k);
    // A declared name is well-formed text; any other name is refused, lone surrogate or not.
    if (!at) throw site.refuse(formatPath([...path, k]), `${noun} \`${k}\` is not declared by the schema`);
    path.push(k);
    out.set(k, convertTypedValue(raw, at.type, site, path));
    path.pop();
  }
  if (out.size < t.attrs.size) {
    for (const [k, at] of t.attrs) {
      if (at.required && !out.has(k)) {
        path.push(k);
        throw site.refuse(formatPath(path), `required ${noun} \`${k}\` is missing`);
      }
    }
  }
  return out;
}

/** Refuses a reference to an enumerated entity type whose id the schema does not list. */
export function checkEnumId(uid: EntityUid, site: ValueSite, path: ValuePath): void {
  const et = site.model.entityTypes.get(uid.type);
  if (et?.enumIds && !et.enumIds.has(uid.id)) {
    throw site.refuse(formatPath(path), `${uid.key} is of an enumerated entity type, but ${JSON.stringify(uid.id)} is not one of its ids (${[...et.enumIds].map((x) => JSON.stringify(x)).join(', ')})`);
  }
}

/** An extension value where the schema expects extension type `name`. */
function convertExtension(v: unknown, name: ExtensionTypeName, site: ValueSite, path: ValuePath): CedarValue {
  if (isObject(v) && typeof v.__expr === 'string') throw site.refuse(formatPath(path), 'the `__expr` escape is no longer supported');
  const call = (isObject(v) ? fnAndArgs(v.__extn) : undefined) ?? fnAndArgs(v);
  let result: CedarValue;
  if (call) {
    result = applyTyped(call, site, path);
  } else {
    // A plain value is the argument of the type's constructor, read without a type.
    const arg = convertUntypedValue(v, site, path);
    result = apply(CONSTRUCTORS[name], [arg], site, path);
  }
  if (typeof result !== 'object' || !('extension' in result) || result.extension !== name) {
    throw site.refuse(formatPath(path), `expected ${name}, got ${typeOfValue(result)}`);
  }
  return result;
}

/** Calls an extension function whose arguments are read by their declared types. */
function applyTyped(call: Call, site: ValueSite, path: ValuePath): CedarValue {
  const types = ARGUMENT_TYPES.get(call.fn);
  if (!types) throw site.refuse(formatPath(path), `extension function \`${call.fn}\` does not exist`);
  if (types.length !== call.args.length) {
    throw site.refuse(formatPath(path), `expected ${types.length} arguments for function ${call.fn} but ${call.args.length} arguments are provided`);
  }
  const args = call.args.map((a, i) => {
    const t = types[i] as SchemaType;
    return t.kind === 'Extension' ? convertTypedValue(a, t, site, path) : convertUntypedValue(a, site, path);
  });
  return apply(call.fn, args, site, path);
}

// Constructor results by `fn` and text. Extension values are immutable, and requests repeat the same texts
// (Mandate's `context.time.now` within a millisecond, addresses, amounts), so parsing each once is enough.
const constructed = new Map<string, CedarValue>();
const MAX_CONSTRUCTED = 1024;

function apply(fn: string, args: readonly CedarValue[], site: ValueSite, path: ValuePath): CedarValue {
  const text = args.length === 1 && typeof args[0] === 'string' ? args[0] : undefined;
  const cacheKey = text === undefined ? undefined : `${fn}\u0000${text}`;
  if (cacheKey !== undefined) {
    const hit = constructed.get(cacheKey);
    if (hit !== undefined) return hit;
  }
  const result = callExtensionFunction(fn, args);
  if (result === undefined) throw site.refuse(formatPath(path), `extension function \`${fn}\` does not exist`);
  if (result instanceof ExtensionError) throw site.refuse(formatPath(path), result.message);
  if (cacheKey !== undefined) {
    if (constructed.size >= MAX_CONSTRUCTED) constructed.clear();
    constructed.set(cacheKey, result);
  }
  return result;
}

/**
 * Converts a value read without a type (Cedar's `CedarValueJson`): JSON as it is, with the `__entity` and
 * `__extn` escapes recognised only as a record's single key.
 */
export function convertUntypedValue(v: unknown, site: ValueSite, path: ValuePath): CedarValue {
  checkNesting(v, site, path);
  switch (typeof v) {
    case 'boolean':
      return v;
    case 'string':
      if (!isWellFormedString(v)) throw site.refuse(formatPath(path), 'the string holds a lone UTF-16 surrogate, which is not valid JSON text');
      return v;
    case 'number': {
      if (!Number.isFinite(v)) throw site.refuse(formatPath(path), 'found a `null` (a non-finite number); JSON `null`s are not allowed in Cedar');
      const n = longFromNumber(v);
      if (n === undefined) throw site.refuse(formatPath(path), `${v} is not an integer within Cedar's 64-bit Long range`);
      return n;
    }
    case 'bigint':
      // Not JSON: cedar-wasm's JSON.stringify would throw. Only a programming mistake gets here.
      throw new TypeError('a bigint is not a JSON value');
    case 'object':
      break;
    default:
      throw site.refuse(formatPath(path), 'found a `null`; JSON `null`s are not allowed in Cedar');
  }
  if (v === null) throw site.refuse(formatPath(path), 'found a `null`; JSON `null`s are not allowed in Cedar');
  if (Array.isArray(v)) {
    const items: CedarValue[] = [];
    for (let i = 0; i < v.length; i++) {
      path.push(i);
      items.push(convertUntypedValue(element(v[i]), site, path));
      path.pop();
    }
    return new CedarSet(items);
  }
  const o = v as Record<string, unknown>;
  const keys = presentKeys(o);
  if (keys.length === 1) {
    const [only] = keys as [string];
    const inner = o[only];
    if (only === '__extn' && isObject(inner) && presentKeys(inner).length >= 2) {
      const call = fnAndArgs(inner);
      if (call) return apply(call.fn, call.args.map((a) => convertUntypedValue(a, site, path)), site, path);
    } else if (only === '__expr' && typeof inner === 'string') {
      throw site.refuse(formatPath(path), 'the `__expr` escape is no longer supported');
    } else if (only === '__entity' && isObject(inner) && presentKeys(inner).length >= 2 && typeof inner.type === 'string' && typeof inner.id === 'string') {
      if (!isWellFormedString(inner.type) || !isWellFormedString(inner.id)) throw site.refuse(formatPath(path), 'the entity reference holds a lone UTF-16 surrogate');
      return new EntityUid(inner.type, inner.id);
    }
  }
  const attrs = new Map<string, CedarValue>();
  for (const k of keys) {
    if (!isWellFormedString(k)) throw site.refuse(formatPath(path), `record key ${JSON.stringify(k)} holds a lone UTF-16 surrogate`);
    path.push(k);
    attrs.set(k, convertUntypedValue(o[k], site, path));
    path.pop();
  }
  return new CedarRecord(attrs);
}

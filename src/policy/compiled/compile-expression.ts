/**
 * Compiles a Cedar policy, in Cedar's JSON policy format (`policyToJson`), into JavaScript closures over the
 * values of `value.ts`, with Cedar's evaluation semantics: strict operands except `&&`, `||` and
 * `if-then-else`; type errors, missing attributes or tags, missing entities and 64-bit overflow are evaluation
 * errors (thrown as {@link EvaluationError}, caught once per policy by the authorizer, as Cedar skips an erroring
 * policy). Every semantic choice here is checked against cedar-wasm in `compile-expression.test.ts`.
 *
 * Whatever the compiler does not support is reported at compile time, never approximated: policy templates
 * (slots), `unknown(…)` (partial evaluation), integer literals the JSON form cannot carry exactly (beyond
 * ±(2^53−1)), and any node it does not recognise.
 *
 * @see https://docs.cedarpolicy.com/policies/json-format.html
 * @see https://docs.cedarpolicy.com/policies/syntax-operators.html
 */
import {
  CedarRecord,
  CedarSet,
  EntityUid,
  LONG_MAX,
  LONG_MIN,
  typeOfValue,
  valueEquals,
  valueKey,
  type CedarValue,
  type EntityLookup,
} from './value.ts';
import { EXTENSION_FUNCTIONS, ExtensionError, arityError, compareOrdered } from './extensions.ts';

/**
 * A Cedar evaluation error inside a policy (Cedar reports it and skips the policy). `message` is Cedar's text.
 *
 * Deliberately not an `Error`: it is an expected outcome, thrown only to unwind to the policy's catch, and
 * capturing a stack trace made an erroring policy cost ~12 µs instead of ~2.5 µs.
 */
export class EvaluationError {
  readonly name = 'EvaluationError';
  readonly message: string;

  constructor(message: string) {
    this.message = message;
  }
}

/** What an expression is evaluated against: one request and the entities it can see. */
export interface EvaluationEnv {
  readonly principal: EntityUid;
  readonly action: EntityUid;
  readonly resource: EntityUid;
  readonly context: CedarRecord;
  readonly entities: EntityLookup;
}

/** A compiled expression. Throws {@link EvaluationError} for a Cedar evaluation error, nothing else. */
export type CompiledExpression = (env: EvaluationEnv) => CedarValue;

/** A compiled policy: its condition (scope and clauses) and what its scope says, for indexing. */
export interface CompiledCondition {
  /** Whether the policy is satisfied. Throws {@link EvaluationError} when Cedar's evaluation errors. */
  readonly evaluate: (env: EvaluationEnv) => boolean;
  /** The only principal entity type the scope admits (`==` or `is`), if it names one. */
  readonly principalType: string | undefined;
  /** The only resource entity type the scope admits (`==` or `is`), if it names one. */
  readonly resourceType: string | undefined;
  /** The action scope: `undefined` for `action`, else the uid keys it names and whether it is `==` or `in`. */
  readonly action: { readonly op: '==' | 'in'; readonly keys: readonly string[] } | undefined;
}

type Node = { readonly fn: CompiledExpression; readonly constant: boolean; readonly value?: CedarValue };

const ANY_ENTITY = '(entity of type `any_entity_type`)';
const RECORD_OR_ENTITY = `one of [record, ${ANY_ENTITY}]`;

function fail(message: string): never {
  throw new EvaluationError(message);
}

function typeError(expected: string, got: CedarValue): never {
  fail(`type error: expected ${expected}, got ${typeOfValue(got)}`);
}

function asBool(v: CedarValue): boolean {
  return typeof v === 'boolean' ? v : typeError('bool', v);
}

function asLong(v: CedarValue): bigint {
  return typeof v === 'bigint' ? v : typeError('long', v);
}

function asSet(v: CedarValue): CedarSet {
  return v instanceof CedarSet ? v : typeError('set', v);
}

function asEntity(v: CedarValue): EntityUid {
  return v instanceof EntityUid ? v : typeError(ANY_ENTITY, v);
}

function asString(v: CedarValue): string {
  return typeof v === 'string' ? v : typeError('string', v);
}

function unwrap<T>(v: T | ExtensionError): T {
  if (v instanceof ExtensionError) fail(v.message);
  return v;
}

const entityDoesNotExist = (uid: EntityUid): never => fail(`entity \`${uid.key}\` does not exist`);

/**
 * Cedar's `in`: true when `left` equals `right` (or a member of the set `right`) or has it as an ancestor.
 * An entity that does not exist has no ancestors, so it is only `in` itself.
 *
 * @see https://docs.cedarpolicy.com/policies/syntax-operators.html#operator-in
 */
export function entityIn(left: EntityUid, right: CedarValue, entities: EntityLookup): boolean {
  if (right instanceof EntityUid) {
    return left.key === right.key || (entities.get(left.key)?.ancestors.has(right.key) ?? false);
  }
  if (right instanceof CedarSet) {
    // Cedar checks that every member is an entity before looking for a match.
    for (const x of right.items) asEntity(x);
    if (right.items.length === 0) return false;
    const ancestors = entities.get(left.key)?.ancestors;
    for (const x of right.items) {
      const key = (x as EntityUid).key;
      if (key === left.key || (ancestors?.has(key) ?? false)) return true;
    }
    return false;
  }
  return typeError(`one of [set, ${ANY_ENTITY}]`, right);
}

function getAttr(v: CedarValue, attr: string, entities: EntityLookup): CedarValue {
  if (v instanceof CedarRecord) {
    const x = v.attrs.get(attr);
    return x !== undefined ? x : fail(`record does not have the attribute \`${attr}\``);
  }
  if (v instanceof EntityUid) {
    const data = entities.get(v.key);
    if (!data) return entityDoesNotExist(v);
    const x = data.attrs.get(attr);
    return x !== undefined ? x : fail(`\`${v.key}\` does not have the attribute \`${attr}\``);
  }
  return typeError(RECORD_OR_ENTITY, v);
}

function hasAttr(v: CedarValue, attr: string, entities: EntityLookup): boolean {
  if (v instanceof CedarRecord) return v.attrs.has(attr);
  // `has` on an entity that does not exist is false, not an error (checked with cedar-wasm).
  if (v instanceof EntityUid) return entities.get(v.key)?.attrs.has(attr) ?? false;
  return typeError(RECORD_OR_ENTITY, v);
}

function checkedLong(r: bigint, what: () => string): bigint {
  return r >= LONG_MIN && r <= LONG_MAX ? r : fail(`integer overflow while attempting to ${what()}`);
}

/**
 * A `like` matcher for a pattern of literal runs and wildcards (`*` matches any sequence, escapes already
 * resolved by the JSON form). Linear-time per literal run, never backtracking exponentially.
 */
function likeMatcher(pattern: readonly string[], wildcards: number): (s: string) => boolean {
  if (wildcards === 0) {
    const exact = pattern.join('');
    return (s) => s === exact;
  }
  const first = pattern[0] as string;
  const last = pattern[pattern.length - 1] as string;
  const middle = pattern.slice(1, -1).filter((m) => m !== '');
  return (s) => {
    if (s.length < first.length + last.length || !s.startsWith(first) || !s.endsWith(last)) return false;
    const end = s.length - last.length;
    let pos = first.length;
    for (const m of middle) {
      const i = s.indexOf(m, pos);
      if (i < 0 || i + m.length > end) return false;
      pos = i + m.length;
    }
    return true;
  };
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Reads an entity uid in either JSON form: `{ "type", "id" }` or `{ "__entity": { "type", "id" } }`. */
function entityUidFromJson(x: unknown): EntityUid | undefined {
  const inner = isPlainObject(x) && '__entity' in x ? x.__entity : x;
  if (!isPlainObject(inner) || typeof inner.type !== 'string' || typeof inner.id !== 'string') return undefined;
  return new EntityUid(inner.type, inner.id);
}

/**
 * Converts a value in Cedar's JSON value form (as policy `Value` literals carry it) to a {@link CedarValue}.
 * Returns an {@link ExtensionError} when an `__extn` call fails (an evaluation error in Cedar) and
 * {@link UnsupportedValue} for what cannot be represented exactly (a non-integer or inexact number, `null`).
 *
 * @example valueFromJson({ __entity: { type: 'User', id: 'alice' } })
 * @see https://docs.cedarpolicy.com/auth/entities-syntax.html
 */
export function valueFromJson(x: unknown): CedarValue | ExtensionError | UnsupportedValue {
  switch (typeof x) {
    case 'boolean':
    case 'string':
      return x;
    case 'bigint':
      return x >= LONG_MIN && x <= LONG_MAX ? x : new UnsupportedValue(`integer literal ${x} outside Cedar's Long range`);
    case 'number':
      // A JSON number is exact only up to 2^53 - 1: beyond, the policy's literal cannot be known exactly.
      return Number.isSafeInteger(x) ? BigInt(x) : new UnsupportedValue(`number literal ${x} (not an integer the JSON form carries exactly)`);
  }
  if (Array.isArray(x)) {
    const items: CedarValue[] = [];
    for (const item of x) {
      const v = valueFromJson(item);
      if (v instanceof ExtensionError || isUnsupported(v)) return v;
      items.push(v);
    }
    return new CedarSet(items);
  }
  if (!isPlainObject(x)) return new UnsupportedValue(`value literal ${String(x)}`);
  const keys = Object.keys(x);
  if (keys.includes('__entity')) {
    const uid = keys.length === 1 ? entityUidFromJson(x) : undefined;
    return uid ?? new UnsupportedValue('malformed __entity value');
  }
  if (keys.includes('__extn')) {
    const e = x.__extn;
    if (keys.length !== 1 || !isPlainObject(e) || typeof e.fn !== 'string') return new UnsupportedValue('malformed __extn value');
    const rawArgs = 'args' in e ? e.args : [e.arg];
    if (!Array.isArray(rawArgs)) return new UnsupportedValue('malformed __extn value');
    const f = EXTENSION_FUNCTIONS.get(e.fn);
    if (!f) return new UnsupportedValue(`extension function ${e.fn}`);
    const args: CedarValue[] = [];
    for (const a of rawArgs) {
      const v = valueFromJson(a);
      if (v instanceof ExtensionError || isUnsupported(v)) return v;
      args.push(v);
    }
    return args.length === f.arity ? f.call(args) : arityError(f, args.length);
  }
  const attrs = new Map<string, CedarValue>();
  for (const k of keys) {
    const v = valueFromJson(x[k]);
    if (v instanceof ExtensionError || isUnsupported(v)) return v;
    attrs.set(k, v);
  }
  return new CedarRecord(attrs);
}

function isUnsupported(v: unknown): v is UnsupportedValue {
  return v instanceof UnsupportedValue;
}

/** A JSON value the compiled path cannot represent exactly; `feature` says what it is. */
export class UnsupportedValue {
  readonly unsupported: string;

  constructor(feature: string) {
    this.unsupported = feature;
  }
}

const BINARY_OPS = new Set(['==', '!=', 'in', '<', '<=', '>', '>=', '&&', '||', '+', '-', '*', 'contains', 'containsAll', 'containsAny', 'getTag', 'hasTag']);

/** Compiles expressions, collecting what it cannot support instead of approximating it. */
class Compiler {
  readonly unsupported: string[] = [];

  private unsupportedNode(feature: string): Node {
    this.unsupported.push(feature);
    return { fn: () => fail(`unsupported: ${feature}`), constant: false };
  }

  /**
   * Builds a node; when every child is a constant and the operation reads nothing from the request or the
   * entities, it is evaluated once now (an error stays a runtime error, raised only if the branch is reached).
   */
  private node(fn: CompiledExpression, children: readonly Node[], pure = true): Node {
    if (pure && children.every((c) => c.constant)) {
      try {
        const value = fn(NO_ENV);
        return { fn: () => value, constant: true, value };
      } catch (err) {
        if (!(err instanceof EvaluationError)) throw err;
      }
    }
    return { fn, constant: false };
  }

  compile(expr: unknown): Node {
    if (!isPlainObject(expr)) return this.unsupportedNode('malformed expression');
    const keys = Object.keys(expr);
    if (keys.length !== 1) return this.unsupportedNode('malformed expression');
    const op = keys[0] as string;
    const body = expr[op];
    if (BINARY_OPS.has(op)) {
      if (!isPlainObject(body)) return this.unsupportedNode(`malformed ${op}`);
      return this.binary(op, this.compile(body.left), this.compile(body.right));
    }
    switch (op) {
      case 'Value': {
        const v = valueFromJson(body);
        if (isUnsupported(v)) return this.unsupportedNode(v.unsupported);
        if (v instanceof ExtensionError) return { fn: () => fail(v.message), constant: false };
        return { fn: () => v, constant: true, value: v };
      }
      case 'Var':
        switch (body) {
          case 'principal':
            return { fn: (env) => env.principal, constant: false };
          case 'action':
            return { fn: (env) => env.action, constant: false };
          case 'resource':
            return { fn: (env) => env.resource, constant: false };
          case 'context':
            return { fn: (env) => env.context, constant: false };
        }
        return this.unsupportedNode(`variable ${String(body)}`);
      case 'Slot':
        return this.unsupportedNode('template slot');
      case '!':
      case 'neg':
      case 'isEmpty': {
        if (!isPlainObject(body)) return this.unsupportedNode(`malformed ${op}`);
        return this.unary(op, this.compile(body.arg));
      }
      case '.': {
        if (!isPlainObject(body) || typeof body.attr !== 'string') return this.unsupportedNode('malformed .');
        const left = this.compile(body.left);
        const attr = body.attr;
        const l = left.fn;
        // Reading a constant record is pure; reading an entity depends on the entities.
        return this.node((env) => getAttr(l(env), attr, env.entities), [left], left.value instanceof CedarRecord);
      }
      case 'has':
        return this.has(body);
      case 'like':
        return this.like(body);
      case 'is':
        return this.is(body);
      case 'if-then-else': {
        if (!isPlainObject(body)) return this.unsupportedNode('malformed if-then-else');
        const c = this.compile(body.if).fn;
        const t = this.compile(body.then).fn;
        const e = this.compile(body.else).fn;
        // Only the chosen branch is evaluated.
        return { fn: (env) => (asBool(c(env)) ? t(env) : e(env)), constant: false };
      }
      case 'Set': {
        if (!Array.isArray(body)) return this.unsupportedNode('malformed Set');
        const items = body.map((x) => this.compile(x));
        const fns = items.map((i) => i.fn);
        return this.node((env) => new CedarSet(fns.map((f) => f(env))), items);
      }
      case 'Record': {
        if (!isPlainObject(body)) return this.unsupportedNode('malformed Record');
        // Cedar holds record literals in a sorted map and evaluates them in key order (which error is reported).
        const entries = Object.keys(body)
          .sort()
          .map((k) => [k, this.compile(body[k])] as const);
        return this.node(
          (env) => {
            const attrs = new Map<string, CedarValue>();
            for (const [k, n] of entries) attrs.set(k, n.fn(env));
            return new CedarRecord(attrs);
          },
          entries.map(([, n]) => n),
        );
      }
    }
    return this.extensionCall(op, body);
  }

  private unary(op: string, arg: Node): Node {
    const a = arg.fn;
    switch (op) {
      case '!':
        return this.node((env) => !asBool(a(env)), [arg]);
      case 'neg':
        return this.node((env) => {
          const v = asLong(a(env));
          return checkedLong(-v, () => `negate the value \`${v}\``);
        }, [arg]);
      default:
        return this.node((env) => asSet(a(env)).items.length === 0, [arg]);
    }
  }

  private binary(op: string, left: Node, right: Node): Node {
    const l = left.fn;
    const r = right.fn;
    const arith = (verb: string, f: (a: bigint, b: bigint) => bigint): Node =>
      this.node((env) => {
        const a = l(env);
        const b = r(env);
        const x = asLong(a);
        const y = asLong(b);
        return checkedLong(f(x, y), () => `${verb} the values \`${x}\` and \`${y}\``);
      }, [left, right]);
    const compare = (test: (sign: number) => boolean): Node =>
      this.node((env) => {
        const a = l(env);
        const b = r(env);
        if (typeof a === 'bigint' && typeof b === 'bigint') return test(a < b ? -1 : a > b ? 1 : 0);
        return test(unwrap(compareOrdered(a, b)));
      }, [left, right]);
    switch (op) {
      case '==':
      case '!=': {
        const negate = op === '!=';
        const k = right.constant ? right.value : left.constant ? left.value : undefined;
        const other = right.constant ? l : r;
        if (k !== undefined && !(left.constant && right.constant)) {
          // Different types are unequal, never an error; a primitive constant compares with ===.
          if (typeof k !== 'object') return { fn: (env) => (other(env) === k) !== negate, constant: false };
          if (k instanceof EntityUid) {
            const key = k.key;
            return {
              fn: (env) => {
                const v = other(env);
                return (v instanceof EntityUid && v.key === key) !== negate;
              },
              constant: false,
            };
          }
        }
        return this.node((env) => {
          const a = l(env);
          return valueEquals(a, r(env)) !== negate;
        }, [left, right]);
      }
      case 'in':
        return this.node((env) => {
          const a = l(env);
          const b = r(env);
          return entityIn(asEntity(a), b, env.entities);
        }, [left, right], false);
      case '<':
        return compare((s) => s < 0);
      case '<=':
        return compare((s) => s <= 0);
      case '>':
        return compare((s) => s > 0);
      case '>=':
        return compare((s) => s >= 0);
      case '&&':
        return { fn: (env) => asBool(l(env)) && asBool(r(env)), constant: false };
      case '||':
        return { fn: (env) => asBool(l(env)) || asBool(r(env)), constant: false };
      case '+':
        return arith('add', (a, b) => a + b);
      case '-':
        return arith('subtract', (a, b) => a - b);
      case '*':
        return arith('multiply', (a, b) => a * b);
      case 'contains': {
        if (!right.constant && left.value instanceof CedarSet && left.value.items.every((x) => typeof x !== 'object')) {
          // A literal set of primitives (`["a", "b"].contains(x)`): a JS Set compares them as Cedar does
          // (SameValueZero: strings, booleans and bigints by value), and nothing else can be a member.
          const members: ReadonlySet<unknown> = new Set<unknown>(left.value.items);
          return { fn: (env) => members.has(r(env)), constant: false };
        }
        if (right.constant && !left.constant) {
          // A literal member (`principal.roles.contains("admin")`): its key is computed once.
          const key = valueKey(right.value as CedarValue);
          return { fn: (env) => asSet(l(env)).keys().has(key), constant: false };
        }
        return this.node((env) => {
          const a = l(env);
          const b = r(env);
          return asSet(a).has(b);
        }, [left, right]);
      }
      case 'containsAll':
        return this.node((env) => {
          const a = l(env);
          const b = r(env);
          const big = asSet(a).keys();
          for (const k of asSet(b).keys()) if (!big.has(k)) return false;
          return true;
        }, [left, right]);
      case 'containsAny':
        return this.node((env) => {
          const a = l(env);
          const b = r(env);
          const first = asSet(a).keys();
          const second = asSet(b).keys();
          for (const k of first) if (second.has(k)) return true;
          return false;
        }, [left, right]);
      case 'getTag':
        return this.node((env) => {
          const a = l(env);
          const b = r(env);
          const uid = asEntity(a);
          const tag = asString(b);
          const data = env.entities.get(uid.key);
          if (!data) return entityDoesNotExist(uid);
          const v = data.tags.get(tag);
          return v !== undefined ? v : fail(`\`${uid.key}\` does not have the tag \`${tag}\``);
        }, [left, right], false);
      default: // hasTag
        return this.node((env) => {
          const a = l(env);
          const b = r(env);
          const uid = asEntity(a);
          const tag = asString(b);
          return env.entities.get(uid.key)?.tags.has(tag) ?? false;
        }, [left, right], false);
    }
  }

  private has(body: unknown): Node {
    if (!isPlainObject(body)) return this.unsupportedNode('malformed has');
    const attrs = typeof body.attr === 'string' ? [body.attr] : body.attr;
    if (!Array.isArray(attrs) || attrs.length === 0 || !attrs.every((a): a is string => typeof a === 'string')) {
      return this.unsupportedNode('malformed has');
    }
    const left = this.compile(body.left);
    const l = left.fn;
    // `e has a.b.c` is `e has a && e.a has b && e.a.b has c` (Cedar 4 desugaring).
    const last = attrs.length - 1;
    return this.node((env) => {
      let v = l(env);
      for (let i = 0; ; i++) {
        const a = attrs[i] as string;
        if (!hasAttr(v, a, env.entities)) return false;
        if (i === last) return true;
        v = getAttr(v, a, env.entities);
      }
    }, [left], false);
  }

  private like(body: unknown): Node {
    if (!isPlainObject(body) || !Array.isArray(body.pattern)) return this.unsupportedNode('malformed like');
    const runs: string[] = [''];
    let wildcards = 0;
    for (const el of body.pattern) {
      if (el === 'Wildcard') {
        wildcards++;
        runs.push('');
      } else if (isPlainObject(el) && typeof el.Literal === 'string') {
        runs[runs.length - 1] += el.Literal;
      } else {
        return this.unsupportedNode('malformed like pattern');
      }
    }
    const match = likeMatcher(runs, wildcards);
    const left = this.compile(body.left);
    const l = left.fn;
    return this.node((env) => match(asString(l(env))), [left]);
  }

  private is(body: unknown): Node {
    if (!isPlainObject(body) || typeof body.entity_type !== 'string') return this.unsupportedNode('malformed is');
    const type = body.entity_type;
    const left = this.compile(body.left);
    const l = left.fn;
    if (body.in === undefined) return this.node((env) => asEntity(l(env)).type === type, [left]);
    // `e is T in x` is `e is T && e in x`: `x` is evaluated only when the type matches.
    const r = this.compile(body.in).fn;
    return {
      fn: (env) => {
        const uid = asEntity(l(env));
        return uid.type === type && entityIn(uid, r(env), env.entities);
      },
      constant: false,
    };
  }

  private extensionCall(name: string, body: unknown): Node {
    const f = EXTENSION_FUNCTIONS.get(name);
    if (name === 'unknown') return this.unsupportedNode('unknown() (partial evaluation)');
    if (!f) return this.unsupportedNode(`extension function ${name}`);
    if (!Array.isArray(body)) return this.unsupportedNode(`malformed call to ${name}`);
    const args = body.map((a) => this.compile(a));
    const fns = args.map((a) => a.fn);
    if (args.length !== f.arity) {
      // Cedar evaluates the arguments, then refuses the call.
      const error = arityError(f, args.length).message;
      return {
        fn: (env) => {
          for (const a of fns) a(env);
          return fail(error);
        },
        constant: false,
      };
    }
    if (f.arity === 1) {
      const a = fns[0] as CompiledExpression;
      return this.node((env) => unwrap(f.call([a(env)])), args);
    }
    const a = fns[0] as CompiledExpression;
    const b = fns[1] as CompiledExpression;
    return this.node((env) => {
      const x = a(env);
      return unwrap(f.call([x, b(env)]));
    }, args);
  }

  /** The scope constraint on `principal` or `resource`. */
  scope(c: unknown, variable: 'principal' | 'resource'): { check: ((env: EvaluationEnv) => boolean) | undefined; type: string | undefined } {
    const get = variable === 'principal' ? (env: EvaluationEnv) => env.principal : (env: EvaluationEnv) => env.resource;
    if (!isPlainObject(c)) return this.badScope(variable);
    if ('slot' in c || (isPlainObject(c.in) && 'slot' in c.in)) {
      this.unsupported.push('template slot');
      return { check: undefined, type: undefined };
    }
    switch (c.op) {
      case 'All':
        return { check: undefined, type: undefined };
      case '==': {
        const uid = entityUidFromJson(c.entity);
        if (!uid) return this.badScope(variable);
        const key = uid.key;
        return { check: (env) => get(env).key === key, type: uid.type };
      }
      case 'in': {
        const uid = entityUidFromJson(c.entity);
        if (!uid) return this.badScope(variable);
        return { check: (env) => entityIn(get(env), uid, env.entities), type: undefined };
      }
      case 'is': {
        if (typeof c.entity_type !== 'string') return this.badScope(variable);
        const type = c.entity_type;
        if (c.in === undefined) return { check: (env) => get(env).type === type, type };
        const uid = isPlainObject(c.in) ? entityUidFromJson(c.in.entity) : undefined;
        if (!uid) return this.badScope(variable);
        return { check: (env) => get(env).type === type && entityIn(get(env), uid, env.entities), type };
      }
    }
    return this.badScope(variable);
  }

  private badScope(variable: string): { check: undefined; type: undefined } {
    this.unsupported.push(`malformed ${variable} scope`);
    return { check: undefined, type: undefined };
  }

  /** The scope constraint on `action`. */
  actionScope(c: unknown): { check: ((env: EvaluationEnv) => boolean) | undefined; action: CompiledCondition['action'] } {
    const bad = () => {
      this.unsupported.push('malformed action scope');
      return { check: undefined, action: undefined };
    };
    if (!isPlainObject(c)) return bad();
    if ('slot' in c) {
      this.unsupported.push('template slot');
      return { check: undefined, action: undefined };
    }
    switch (c.op) {
      case 'All':
        return { check: undefined, action: undefined };
      case '==': {
        const uid = entityUidFromJson(c.entity);
        if (!uid) return bad();
        const key = uid.key;
        return { check: (env) => env.action.key === key, action: { op: '==', keys: [key] } };
      }
      case 'in': {
        const list = Array.isArray(c.entities) ? c.entities.map(entityUidFromJson) : [entityUidFromJson(c.entity)];
        if (list.some((u) => u === undefined)) return bad();
        const uids = list as EntityUid[];
        const target: CedarValue = Array.isArray(c.entities) ? new CedarSet(uids) : (uids[0] as EntityUid);
        return { check: (env) => entityIn(env.action, target, env.entities), action: { op: 'in', keys: uids.map((u) => u.key) } };
      }
    }
    return bad();
  }
}

const NO_ENTITIES: EntityLookup = { get: () => undefined };
// Constant folding evaluates only pure operations on constants, which never read the environment.
const NO_ENV: EvaluationEnv = {
  get principal(): EntityUid {
    throw new TypeError('constant folding read the request');
  },
  get action(): EntityUid {
    throw new TypeError('constant folding read the request');
  },
  get resource(): EntityUid {
    throw new TypeError('constant folding read the request');
  },
  get context(): CedarRecord {
    throw new TypeError('constant folding read the request');
  },
  entities: NO_ENTITIES,
};

/**
 * Compiles one Cedar expression (JSON `Expr`). Features the compiler does not support are appended to
 * `unsupported`; the returned closure must not be used when any was.
 *
 * @example compileExpression({ '==': { left: { Var: 'principal' }, right: { Value: { __entity: { type: 'User', id: 'a' } } } } }, [])
 */
export function compileExpression(expr: unknown, unsupported: string[]): CompiledExpression {
  const c = new Compiler();
  const fn = c.compile(expr).fn;
  unsupported.push(...c.unsupported);
  return fn;
}

/**
 * Compiles a whole policy (JSON `PolicyJson`): the scope constraints, then each `when` (must be true) and
 * `unless` (must be false) clause in order, joined by Cedar's short-circuit `&&`. Features the compiler does
 * not support are appended to `unsupported`.
 *
 * @see https://docs.cedarpolicy.com/policies/syntax-policy.html
 */
export function compileCondition(policy: unknown, unsupported: string[]): CompiledCondition {
  const c = new Compiler();
  const p = isPlainObject(policy) ? policy : {};
  if (p.effect !== 'permit' && p.effect !== 'forbid') c.unsupported.push('malformed policy effect');
  const principal = c.scope(p.principal, 'principal');
  const action = c.actionScope(p.action);
  const resource = c.scope(p.resource, 'resource');
  const clauses: Array<(env: EvaluationEnv) => boolean> = [];
  for (const s of [principal.check, action.check, resource.check]) if (s) clauses.push(s);
  const conditions = Array.isArray(p.conditions) ? p.conditions : (c.unsupported.push('malformed conditions'), []);
  for (const cond of conditions) {
    if (!isPlainObject(cond) || (cond.kind !== 'when' && cond.kind !== 'unless')) {
      c.unsupported.push('malformed condition');
      continue;
    }
    const body = c.compile(cond.body).fn;
    // A clause that is not a bool is a type error, as `&&` (and `!` for `unless`) make it in Cedar.
    clauses.push(cond.kind === 'when' ? (env) => asBool(body(env)) : (env) => !asBool(body(env)));
  }
  unsupported.push(...c.unsupported);
  return {
    evaluate: chain(clauses),
    principalType: principal.type,
    resourceType: resource.type,
    action: action.action,
  };
}

/** Joins checks with `&&`, unrolled for the usual short lists so the hot path is a few direct calls. */
function chain(checks: ReadonlyArray<(env: EvaluationEnv) => boolean>): (env: EvaluationEnv) => boolean {
  type Check = (env: EvaluationEnv) => boolean;
  const [a, b, c, d] = checks as [Check, Check, Check, Check];
  switch (checks.length) {
    case 0:
      return () => true;
    case 1:
      return a;
    case 2:
      return (env) => a(env) && b(env);
    case 3:
      return (env) => a(env) && b(env) && c(env);
    case 4:
      return (env) => a(env) && b(env) && c(env) && d(env);
  }
  return (env) => {
    for (const f of checks) if (!f(env)) return false;
    return true;
  };
}

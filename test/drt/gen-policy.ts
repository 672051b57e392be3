/**
 * Type-directed policy generation over the whole Cedar expression language.
 *
 * `gen(ty)` builds an expression of type `ty` from what the scope makes available: `principal`/`resource`
 * when the scope (or the actions it names) pins their type, `context` when every action in scope shares one
 * context type, entity literals, and attribute/tag paths reachable from those. An optional attribute (or a
 * tag) is used only under a guard (`e has a && …`, `e has a.b && …`, `e.hasTag(k) && …`,
 * `if e has a then … else …`), so that strict validation accepts most generated policies.
 *
 * In dynamic mode (policies evaluated without validation) the generator is deliberately sloppy: operands of
 * the wrong type, unguarded optional attributes, undeclared attributes, unguarded tags, empty set literals,
 * extension constructors over bad or non-literal strings: the expressions that raise evaluation errors.
 */
import { BOOL, LONG, STRING, type ActionDef, type ActionScope, type Expr, type ExtName, type MethodName, type PatternElem, type PolicyModel, type SchemaModel, type ScopeConstraint, type Ty } from './model.ts';
import type { Rand } from './random.ts';
import { ATTR_NAMES, entityType, genType } from './gen-schema.ts';
import { BAD_EXT_LITERALS, BIG_POLICY_LONGS, EXT_FN, EXT_LITERALS, POLICY_LONGS, TRICKY_EXT_LITERALS, STRINGS, pickId, type UidPool } from './gen-values.ts';
import { printExpr } from './print-cedar.ts';

const TAG_KEYS = ['k', 'a', 'x y', '__proto__'];
const SMALL_LONGS: readonly bigint[] = [0n, 1n, -1n, 2n, 7n, 24n, 60n, 100n];
const LIKE_PIECES = ['a', 'b', '*', 'é', '🦀', ' ', 'ab'];

/** A typed expression the generator may use: a variable, an entity literal or a path from one. */
interface Source {
  expr: Expr;
  ty: Ty;
  key: string;
  /** Optional attribute or tag: usable only under `guard`. */
  optional: boolean;
  guard?: Expr;
  parent?: Source;
  /** The attribute step that leads here from `parent` (absent for tags and roots). */
  attr?: string;
}

interface Env {
  schema: SchemaModel;
  pool: UidPool;
  strict: boolean;
  principal?: string;
  resource?: string;
  context?: Ty & { k: 'Record' };
  guarded: ReadonlySet<string>;
  /** Computed from the above. */
  available: Source[];
  guardable: Source[];
}

const MAX_SOURCES = 80;

function computeSources(env: Omit<Env, 'available' | 'guardable'>, r: Rand): { available: Source[]; guardable: Source[] } {
  const { schema } = env;
  const roots: Source[] = [];
  if (env.principal) roots.push({ expr: { k: 'var', v: 'principal' }, ty: { k: 'Entity', name: env.principal }, key: 'principal', optional: false });
  if (env.resource) roots.push({ expr: { k: 'var', v: 'resource' }, ty: { k: 'Entity', name: env.resource }, key: 'resource', optional: false });
  if (env.context) roots.push({ expr: { k: 'var', v: 'context' }, ty: env.context, key: 'context', optional: false });
  for (const t of schema.entityTypes) {
    if (t.enumIds || (t.attrs.length === 0 && !t.tags)) continue;
    const expr: Expr = { k: 'uid', type: t.name, id: pickId(r, schema, env.pool, t.name, 0.05) };
    roots.push({ expr, ty: { k: 'Entity', name: t.name }, key: printExpr(expr), optional: false });
  }
  const all: Source[] = [];
  const queue = roots.map((s) => ({ s, depth: 0 }));
  while (queue.length > 0 && all.length < MAX_SOURCES) {
    const { s, depth } = queue.shift() as { s: Source; depth: number };
    all.push(s);
    if (depth >= 3) continue;
    for (const c of children(schema, s)) queue.push({ s: c, depth: depth + 1 });
  }
  const isAvailable = (s: Source): boolean => {
    if (s.optional && !env.guarded.has(s.key)) return false;
    return s.parent ? isAvailable(s.parent) : true;
  };
  const available = all.filter(isAvailable);
  // Guardable: optional, not yet guarded, and either the parent is available or the parent is itself an
  // optional attribute whose parent is available (guarded together with `e has a.b`).
  const guardable = all.filter((s) => {
    if (!s.optional || env.guarded.has(s.key) || !s.parent) return false;
    if (isAvailable(s.parent)) return true;
    const p = s.parent;
    return s.attr !== undefined && p.attr !== undefined && p.optional && p.parent !== undefined && isAvailable(p.parent);
  });
  return { available, guardable };
}

function children(schema: SchemaModel, s: Source): Source[] {
  const out: Source[] = [];
  const add = (attr: string, ty: Ty, required: boolean) => {
    const expr: Expr = { k: 'attr', e: s.expr, attr };
    out.push({ expr, ty, key: printExpr(expr), optional: !required, guard: { k: 'has', e: s.expr, path: [attr] }, parent: s, attr });
  };
  if (s.ty.k === 'Record') for (const a of s.ty.attrs) add(a.name, a.ty, a.required);
  if (s.ty.k === 'Entity') {
    const def = entityType(schema, s.ty.name);
    for (const a of def?.attrs ?? []) add(a.name, a.ty, a.required);
    if (def?.tags) {
      for (const k of TAG_KEYS.slice(0, 2)) {
        const key: Expr = { k: 'lit', v: k };
        const expr: Expr = { k: 'method', name: 'getTag', recv: s.expr, args: [key] };
        out.push({ expr, ty: def.tags, key: printExpr(expr), optional: true, guard: { k: 'method', name: 'hasTag', recv: s.expr, args: [key] }, parent: s });
      }
    }
  }
  return out;
}

function withGuard(env: Env, s: Source, r: Rand): { env: Env; guard: Expr } {
  const guarded = new Set(env.guarded);
  guarded.add(s.key);
  let guard = s.guard as Expr;
  const p = s.parent;
  if (p && p.optional && !env.guarded.has(p.key) && s.attr !== undefined && p.attr !== undefined && p.parent) {
    // `e has a.b` guards both `e.a` and `e.a.b`.
    guarded.add(p.key);
    guard = { k: 'has', e: p.parent.expr, path: [p.attr, s.attr] };
  }
  const base = { ...env, guarded };
  return { env: { ...base, ...computeSources(base, r) }, guard };
}

function sameTy(a: Ty, b: Ty): boolean {
  if (a.k !== b.k) return false;
  if (a.k === 'Set') return sameTy(a.el, (b as typeof a).el);
  if (a.k === 'Entity' || a.k === 'Ext') return a.name === (b as typeof a).name;
  if (a.k === 'Record') {
    const bb = b as typeof a;
    return a.attrs.length === bb.attrs.length && a.attrs.every((x) => bb.attrs.some((y) => y.name === x.name && y.required === x.required && sameTy(x.ty, y.ty)));
  }
  return true;
}

function entityNames(env: Env): string[] {
  return env.schema.entityTypes.map((t) => t.name);
}

/** Types worth comparing with `==`: whatever sources offer, plus the primitives. */
function comparableType(r: Rand, env: Env): Ty {
  const fromSources = env.available.filter((s) => s.ty.k !== 'Record' || !env.strict).map((s) => s.ty);
  if (fromSources.length > 0 && r.chance(0.6)) return r.pick(fromSources);
  return genType(r, entityNames(env), 1);
}

/** A literal of type `ty`. */
function literal(r: Rand, env: Env, ty: Ty, depth: number): Expr {
  switch (ty.k) {
    case 'Bool':
      return { k: 'lit', v: r.chance(0.5) };
    case 'Long':
      // Mostly small values, so that comparisons are sensitive to what they compare; edges for overflow.
      return { k: 'lit', v: r.pick(r.weighted<readonly bigint[]>([[60, SMALL_LONGS], [37, POLICY_LONGS], [3, BIG_POLICY_LONGS]])) };
    case 'String':
      return { k: 'lit', v: r.pick(STRINGS) };
    case 'Entity': {
      const def = entityType(env.schema, ty.name);
      const id = def?.enumIds ? (!env.strict && r.chance(0.2) ? 'purple' : r.pick(def.enumIds)) : pickId(r, env.schema, env.pool, ty.name);
      return { k: 'uid', type: ty.name, id };
    }
    case 'Ext': {
      const pool = r.weighted([
        [80, EXT_LITERALS[ty.name]],
        [10, TRICKY_EXT_LITERALS[ty.name]],
        [env.strict ? 0 : 10, BAD_EXT_LITERALS[ty.name]],
      ]);
      const arg: Expr = !env.strict && r.chance(0.1) ? gen(r, env, STRING, 1) : { k: 'lit', v: r.pick(pool) };
      return { k: 'call', fn: EXT_FN[ty.name], arg };
    }
    case 'Set': {
      const n = env.strict ? r.int(1, 3) : r.int(0, 3);
      return { k: 'set', items: Array.from({ length: n }, () => (depth > 0 ? gen(r, env, ty.el, depth - 1) : literal(r, env, ty.el, 0))) };
    }
    case 'Record': {
      const fields = ty.attrs.filter((a) => a.required || r.chance(0.5)).map((a) => [a.name, depth > 0 ? gen(r, env, a.ty, depth - 1) : literal(r, env, a.ty, 0)] as [string, Expr]);
      // Record equality ignores the order of attributes.
      return { k: 'record', fields: r.chance(0.3) ? fields.reverse() : fields };
    }
  }
}

function leaf(r: Rand, env: Env, ty: Ty, depth: number): Expr {
  const sources = env.available.filter((s) => sameTy(s.ty, ty));
  if (!env.strict && r.chance(0.15)) {
    // Sloppy: an optional attribute or tag without its guard, or an attribute nobody declared.
    const unguarded = env.guardable.filter((s) => sameTy(s.ty, ty));
    if (unguarded.length > 0) return r.pick(unguarded).expr;
    const bases = env.available.filter((s) => s.ty.k === 'Entity' || s.ty.k === 'Record');
    if (bases.length > 0) return { k: 'attr', e: r.pick(bases).expr, attr: r.pick(ATTR_NAMES) };
  }
  if (sources.length > 0 && r.chance(0.6)) return r.pick(sources).expr;
  return literal(r, env, ty, depth);
}

/** An expression of type `ty`. */
export function gen(r: Rand, env: Env, ty: Ty, depth: number): Expr {
  if (!env.strict && depth > 0 && r.chance(0.08)) ty = genType(r, entityNames(env), 1);
  if (depth <= 0) return leaf(r, env, ty, 0);
  const d = depth - 1;
  const options: [number, () => Expr][] = [[depth > 2 ? 1 : 3, () => leaf(r, env, ty, d)]];
  options.push([1, () => ({ k: 'if', c: gen(r, env, BOOL, d), t: gen(r, env, ty, d), e: gen(r, env, ty, d) })]);
  if (env.guardable.length > 0) {
    options.push([1, () => {
      const s = r.pick(env.guardable);
      const g = withGuard(env, s, r);
      return { k: 'if', c: g.guard, t: gen(r, g.env, ty, d), e: gen(r, env, ty, d) };
    }]);
  }
  switch (ty.k) {
    case 'Bool':
      options.push(...boolOptions(r, env, d));
      break;
    case 'Long':
      options.push([3, () => ({ k: 'bin', op: r.pick(['+', '-', '*'] as const), l: gen(r, env, LONG, d), r: gen(r, env, LONG, d) })]);
      options.push([1, () => ({ k: 'neg', arg: gen(r, env, LONG, d) })]);
      options.push([2, () => ({ k: 'method', name: r.pick(['toDays', 'toHours', 'toMinutes', 'toSeconds', 'toMilliseconds'] as const), recv: gen(r, env, ext('duration'), d), args: [] })]);
      break;
    case 'Set':
      options.push([2, () => literal(r, env, ty, d)]);
      break;
    case 'Record':
      options.push([2, () => literal(r, env, ty, d)]);
      break;
    case 'Ext':
      if (ty.name === 'datetime') {
        options.push([2, () => ({ k: 'method', name: 'offset', recv: gen(r, env, ty, d), args: [gen(r, env, ext('duration'), d)] })]);
        options.push([1, () => ({ k: 'method', name: 'toDate', recv: gen(r, env, ty, d), args: [] })]);
      }
      if (ty.name === 'duration') {
        options.push([2, () => ({ k: 'method', name: 'durationSince', recv: gen(r, env, ext('datetime'), d), args: [gen(r, env, ext('datetime'), d)] })]);
        options.push([1, () => ({ k: 'method', name: 'toTime', recv: gen(r, env, ext('datetime'), d), args: [] })]);
      }
      break;
    default:
      break;
  }
  return r.weighted(options)();
}

function ext(name: ExtName): Ty {
  return { k: 'Ext', name };
}

function anyEntity(r: Rand, env: Env, d: number): Expr {
  const names = entityNames(env);
  const opts: [number, () => Expr][] = [[2, () => gen(r, env, { k: 'Entity', name: r.pick(names) }, d)]];
  opts.push([2, () => ({ k: 'var', v: 'principal' })]);
  opts.push([2, () => ({ k: 'var', v: 'resource' })]);
  return r.weighted(opts)();
}

function ancestorTypes(schema: SchemaModel, type: string | undefined): string[] {
  if (!type) return schema.entityTypes.map((t) => t.name);
  const seen = new Set<string>();
  const walk = (t: string) => {
    for (const p of entityType(schema, t)?.memberOf ?? []) {
      if (!seen.has(p)) {
        seen.add(p);
        walk(p);
      }
    }
  };
  walk(type);
  seen.add(type);
  return [...seen];
}

function likePattern(r: Rand): PatternElem[] {
  const n = r.int(0, 4);
  const out: PatternElem[] = [];
  for (let i = 0; i < n; i++) {
    if (r.chance(0.4)) out.push({ wild: true });
    else out.push({ lit: r.pick(LIKE_PIECES) });
  }
  return out;
}

function boolOptions(r: Rand, env: Env, d: number): [number, () => Expr][] {
  const { schema } = env;
  const names = entityNames(env);
  const o: [number, () => Expr][] = [];
  o.push([2, () => ({ k: 'bin', op: r.pick(['&&', '||'] as const), l: gen(r, env, BOOL, d), r: gen(r, env, BOOL, d) })]);
  o.push([1, () => ({ k: 'not', arg: gen(r, env, BOOL, d) })]);
  o.push([3, () => {
    const t = comparableType(r, env);
    return { k: 'bin', op: r.pick(['==', '!='] as const), l: gen(r, env, t, d), r: gen(r, env, t, d) };
  }]);
  o.push([3, () => ({ k: 'bin', op: r.pick(['<', '<=', '>', '>='] as const), l: gen(r, env, LONG, d), r: r.chance(0.4) ? { k: 'lit', v: r.pick(SMALL_LONGS) } : gen(r, env, LONG, d) })]);
  o.push([3, () => {
    const t = ext(r.pick(['datetime', 'duration'] as const));
    return { k: 'bin', op: r.pick(['<', '<=', '>', '>='] as const), l: gen(r, env, t, d), r: gen(r, env, t, d) };
  }]);
  // `in`: entity in entity (of a type it can be in), or in a set of entities.
  o.push([3, () => {
    const lhsType = r.pick(names);
    const lhs: Expr = r.weighted([
      [2, (): Expr => gen(r, env, { k: 'Entity', name: lhsType }, d)],
      [env.principal ? 2 : 1, (): Expr => ({ k: 'var', v: 'principal' })],
      [env.resource ? 2 : 1, (): Expr => ({ k: 'var', v: 'resource' })],
    ])();
    const baseType = lhs.k === 'var' ? (lhs.v === 'principal' ? env.principal : env.resource) : lhsType;
    const targets = ancestorTypes(schema, baseType);
    const rhsType = r.pick(targets);
    const rhs: Expr = r.chance(0.3)
      ? { k: 'set', items: Array.from({ length: r.int(1, 2) }, () => gen(r, env, { k: 'Entity', name: r.pick(targets) }, d)) }
      : gen(r, env, { k: 'Entity', name: rhsType }, d);
    return { k: 'bin', op: 'in', l: lhs, r: rhs };
  }]);
  // `has` on a declared or undeclared attribute.
  o.push([2, () => {
    const bases = env.available.filter((s) => s.ty.k === 'Entity' || s.ty.k === 'Record');
    const base = bases.length > 0 ? r.pick(bases) : undefined;
    if (!base) return { k: 'has', e: { k: 'var', v: 'context' }, path: [r.pick(ATTR_NAMES)] };
    const declared = base.ty.k === 'Record' ? base.ty.attrs : (entityType(schema, (base.ty as { name: string }).name)?.attrs ?? []);
    const name = declared.length > 0 && r.chance(0.8) ? (r.pick(declared) as { name: string }).name : r.pick(ATTR_NAMES);
    return { k: 'has', e: base.expr, path: [name] };
  }]);
  if (env.guardable.length > 0) {
    o.push([5, () => {
      const s = r.pick(env.guardable);
      const g = withGuard(env, s, r);
      return { k: 'bin', op: r.chance(0.8) ? '&&' : '||', l: g.guard, r: gen(r, g.env, BOOL, d) };
    }]);
  }
  o.push([2, () => ({ k: 'like', e: gen(r, env, STRING, d), pattern: likePattern(r) })]);
  o.push([2, () => {
    const e = anyEntity(r, env, d);
    const type = r.pick(names);
    return r.chance(0.3) ? { k: 'is', e, type, in: gen(r, env, { k: 'Entity', name: r.pick(ancestorTypes(schema, type)) }, d) } : { k: 'is', e, type };
  }]);
  o.push([3, () => {
    const el = comparableType(r, env);
    const set: Ty = { k: 'Set', el };
    const which = r.int(0, 3);
    const recv = gen(r, env, set, d);
    if (which === 0) return { k: 'method', name: 'contains', recv, args: [gen(r, env, el, d)] };
    if (which === 1) return { k: 'method', name: 'containsAll', recv, args: [gen(r, env, set, d)] };
    if (which === 2) return { k: 'method', name: 'containsAny', recv, args: [gen(r, env, set, d)] };
    return { k: 'method', name: 'isEmpty', recv, args: [] };
  }]);
  o.push([1, () => {
    const withTags = env.available.filter((s) => s.ty.k === 'Entity' && entityType(schema, (s.ty as { name: string }).name)?.tags);
    const recv = withTags.length > 0 ? r.pick(withTags).expr : anyEntity(r, env, d);
    const key: Expr = r.chance(0.8) ? { k: 'lit', v: r.pick(TAG_KEYS) } : gen(r, env, STRING, d);
    return { k: 'method', name: 'hasTag', recv, args: [key] };
  }]);
  o.push([2, () => {
    const m = r.pick(['lessThan', 'lessThanOrEqual', 'greaterThan', 'greaterThanOrEqual'] as const);
    return { k: 'method', name: m, recv: gen(r, env, ext('decimal'), d), args: [gen(r, env, ext('decimal'), d)] };
  }]);
  o.push([2, () => {
    const m: MethodName = r.pick(['isIpv4', 'isIpv6', 'isLoopback', 'isMulticast', 'isInRange'] as const);
    const recv = gen(r, env, ext('ipaddr'), d);
    return { k: 'method', name: m, recv, args: m === 'isInRange' ? [gen(r, env, ext('ipaddr'), d)] : [] };
  }]);
  o.push([1, () => {
    const ids = schema.actions.map((a) => a.id);
    const uid = (id: string): Expr => ({ k: 'uid', type: schema.actionType, id });
    return r.weighted([
      [1, (): Expr => ({ k: 'bin', op: '==', l: { k: 'var', v: 'action' }, r: uid(r.pick(ids)) })],
      [1, (): Expr => ({ k: 'bin', op: 'in', l: { k: 'var', v: 'action' }, r: uid(r.pick(ids)) })],
      [1, (): Expr => ({ k: 'bin', op: 'in', l: { k: 'var', v: 'action' }, r: { k: 'set', items: r.subset(ids, 0.5).concat(r.pick(ids)).map(uid) } })],
    ])();
  }]);
  return o;
}

// ---- scope -----------------------------------------------------------------------------------------

/** The actions an action scope matches, through the action hierarchy. */
export function actionsInScope(schema: SchemaModel, scope: ActionScope): ActionDef[] {
  if (scope.op === 'All') return schema.actions;
  const roots = scope.op === '==' ? [scope.id] : scope.ids;
  const inGroup = (a: ActionDef, g: string, seen = new Set<string>()): boolean => {
    if (a.id === g) return true;
    for (const m of a.memberOf) {
      if (seen.has(m)) continue;
      seen.add(m);
      const parent = schema.actions.find((x) => x.id === m);
      if (parent && inGroup(parent, g, seen)) return true;
    }
    return false;
  };
  if (scope.op === '==') return schema.actions.filter((a) => a.id === scope.id);
  return schema.actions.filter((a) => roots.some((g) => inGroup(a, g)));
}

function genActionScope(r: Rand, schema: SchemaModel): ActionScope {
  const ids = schema.actions.map((a) => a.id);
  const concrete = schema.actions.filter((a) => a.appliesTo).map((a) => a.id);
  return r.weighted<() => ActionScope>([
    [1, () => ({ op: 'All' })],
    [4, () => ({ op: '==', id: r.pick(concrete.length > 0 ? concrete : ids) })],
    [2, () => ({ op: 'in', ids: [r.pick(ids)], list: false })],
    [2, () => {
      const chosen = r.subset(ids, 0.5);
      return { op: 'in', ids: chosen.length > 0 ? chosen : [r.pick(ids)], list: true };
    }],
  ])();
}

function genScope(r: Rand, schema: SchemaModel, pool: UidPool, types: string[], strict: boolean): { scope: ScopeConstraint; pinned?: string } {
  const all = schema.entityTypes.map((t) => t.name);
  const candidates = types.length > 0 && (strict || r.chance(0.8)) ? types : all;
  const single = types.length === 1 ? types[0] : undefined;
  return r.weighted<() => { scope: ScopeConstraint; pinned?: string }>([
    [2, () => ({ scope: { op: 'All' }, ...(single ? { pinned: single } : {}) })],
    [3, () => {
      const type = r.pick(candidates);
      return { scope: { op: 'is', type }, pinned: type };
    }],
    [2, () => {
      const type = r.pick(candidates);
      return { scope: { op: '==', type, id: pickId(r, schema, pool, type) }, pinned: type };
    }],
    [1, () => {
      const type = r.pick(ancestorTypes(schema, r.pick(candidates)));
      return { scope: { op: 'in', type, id: pickId(r, schema, pool, type) }, ...(single ? { pinned: single } : {}) };
    }],
    [1, () => {
      const type = r.pick(candidates);
      const inType = r.pick(ancestorTypes(schema, type));
      return { scope: { op: 'is', type, in: { type: inType, id: pickId(r, schema, pool, inType) } }, pinned: type };
    }],
  ])();
}

/** Generates one policy for the schema; `strict` aims at policies that pass strict validation. */
export function genPolicy(r: Rand, schema: SchemaModel, pool: UidPool, strict: boolean): PolicyModel {
  const action = genActionScope(r, schema);
  const acts = actionsInScope(schema, action).filter((a) => a.appliesTo);
  const pTypes = [...new Set(acts.flatMap((a) => a.appliesTo?.principals ?? []))];
  const rTypes = [...new Set(acts.flatMap((a) => a.appliesTo?.resources ?? []))];
  const p = genScope(r, schema, pool, pTypes, strict);
  const res = genScope(r, schema, pool, rTypes, strict);
  const contexts = acts.map((a) => a.appliesTo?.context as Ty & { k: 'Record' });
  const first = contexts[0];
  const context = first && contexts.every((c) => sameTy(c, first)) ? first : undefined;
  const names = schema.entityTypes.map((t) => t.name);
  const base = {
    schema,
    pool,
    strict,
    ...(p.pinned ? { principal: p.pinned } : !strict && r.chance(0.5) ? { principal: r.pick(names) } : {}),
    ...(res.pinned ? { resource: res.pinned } : !strict && r.chance(0.5) ? { resource: r.pick(names) } : {}),
    ...(context ? { context } : !strict && r.chance(0.5) ? { context: { k: 'Record' as const, attrs: [] } } : {}),
    guarded: new Set<string>(),
  };
  const env: Env = { ...base, ...computeSources(base, r) };
  const conditions: PolicyModel['conditions'] = [];
  const count = r.weighted([
    [1, 0],
    [6, 1],
    [2, 2],
  ]);
  for (let i = 0; i < count; i++) conditions.push({ kind: r.chance(0.25) ? 'unless' : 'when', body: gen(r, env, BOOL, r.int(1, 4)) });
  return { effect: r.chance(0.25) ? 'forbid' : 'permit', principal: p.scope, action, resource: res.scope, conditions };
}

/** Counts the expression constructs of a policy (for coverage statistics). */
export function countConstructs(p: PolicyModel, into: Map<string, number>): void {
  const bump = (k: string) => into.set(k, (into.get(k) ?? 0) + 1);
  bump(`scope:principal ${p.principal.op}${p.principal.op === 'is' && p.principal.in ? '-in' : ''}`);
  bump(`scope:action ${p.action.op}${p.action.op === 'in' && p.action.list ? ' [..]' : ''}`);
  bump(`scope:resource ${p.resource.op}${p.resource.op === 'is' && p.resource.in ? '-in' : ''}`);
  bump(`effect:${p.effect}`);
  const walk = (e: Expr): void => {
    switch (e.k) {
      case 'lit':
        bump(typeof e.v === 'bigint' ? (e.v > 9007199254740991n || e.v < -9007199254740991n ? 'literal Long beyond 2^53' : 'literal Long') : `literal ${typeof e.v}`);
        return;
      case 'var':
        bump(`var ${e.v}`);
        return;
      case 'uid':
        bump('entity literal');
        return;
      case 'not':
      case 'neg':
        bump(e.k === 'not' ? '!' : 'neg');
        walk(e.arg);
        return;
      case 'bin':
        bump(e.op === 'in' && e.r.k === 'set' ? 'in [set]' : e.op);
        walk(e.l);
        walk(e.r);
        return;
      case 'method':
        bump(`.${e.name}()`);
        walk(e.recv);
        e.args.forEach(walk);
        return;
      case 'call':
        bump(`${e.fn}()`);
        walk(e.arg);
        return;
      case 'attr':
        bump('.attr');
        walk(e.e);
        return;
      case 'has':
        bump(e.path.length > 1 ? 'has a.b' : 'has');
        walk(e.e);
        return;
      case 'like':
        bump(e.pattern.some((x) => 'lit' in x && x.lit.includes('*')) ? 'like with \\*' : 'like');
        walk(e.e);
        return;
      case 'is':
        bump(e.in ? 'is-in' : 'is');
        walk(e.e);
        if (e.in) walk(e.in);
        return;
      case 'if':
        bump('if-then-else');
        walk(e.c);
        walk(e.t);
        walk(e.e);
        return;
      case 'set':
        bump(e.items.length === 0 ? 'set literal []' : 'set literal');
        e.items.forEach(walk);
        return;
      case 'record':
        bump('record literal');
        e.fields.forEach(([, v]) => walk(v));
        return;
    }
  };
  for (const c of p.conditions) {
    bump(c.kind);
    walk(c.body);
  }
}


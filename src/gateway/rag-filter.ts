/**
 * The data boundary for retrieval (RAG): which records or documents a task may read.
 *
 * Two ways, which must agree:
 * - `filterCandidates`: after retrieval, each candidate is decided as its own `read` request (the whole
 *   delegation chain, the task's context). Entity data comes from the candidate list, but an entity the
 *   policy directory defines keeps the directory's data (the engine ignores caller data for it).
 * - `retrievalFilter`: before retrieval, Cedar's partial evaluation with the resource unknown leaves a residual
 *   per policy; the residuals are translated into a small filter AST and from it into a parameterised SQL
 *   `WHERE` clause, so that the store returns only what the task may read.
 *
 * The translation covers a documented subset (docs/GATEWAY-HTTP.md): comparisons of a mapped resource
 * attribute with a literal, `has`, `&&`, `||`, `!`, `if then else`, `[...].contains(resource.attr)`, and the
 * scope tests `resource == E`, `resource is T`, `resource in E` (one level of parent, through a mapped column
 * or the directory's hierarchy). It keeps Mandate's semantics exactly: a policy whose condition would fail on
 * a row (an absent optional attribute) denies that row, as any evaluation error denies a decision; a
 * permit that needs approval does not make a row readable. Anything else yields `per_record` (decide each
 * row with `filterCandidates`) or `deny` — never a filter that could let more through.
 *
 * @see https://docs.cedarpolicy.com/auth/partial-evaluation.html
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { PolicyJson } from '@cedar-policy/cedar-wasm/nodejs';
import type { Decision, EntityRef } from '../core/decision.ts';
import type { Clock } from '../core/ports.ts';
import { APPROVAL_ANNOTATION } from '../policy/authorize.ts';
import type { CompiledPolicySet } from '../policy/compile-policy-set.ts';
import { asEntityRef, entityKey, entitySlice, normalizeEntity } from '../policy/entities.ts';
import type { AuthorizationRequest, EntityJson } from '../policy/types.ts';

// ---- Who is asking -------------------------------------------------------------------------------

/** The subject of a retrieval: the user, the actors acting for them, and the task's context and entities. */
export interface RetrievalSubject {
  principal: EntityRef;
  actors?: EntityRef[];
  /** Cedar context without `delegation` and `time` (Mandate sets those), e.g. `{ task, workflow, step }`. */
  context?: Record<string, unknown>;
  /** Entities the context needs that the directory may not define (a live task's Task and Workflow). */
  entities?: EntityJson[];
}

/** Decides one request (the policy engine's `decide`, or the step gate in front of it). */
export type DecideFn = (request: AuthorizationRequest) => Decision | Promise<Decision>;

// ---- (a) Filtering candidates --------------------------------------------------------------------

/** A retrieved record or dataset, with the attributes policies read. */
export interface RetrievalCandidate {
  id: string;
  type: 'Record' | 'Dataset';
  sensitivity: string;
  tenant?: string;
  /** The owning user's id. */
  owner?: string;
  /** For a record: the dataset it belongs to. */
  dataset?: string;
}

/** What `filterCandidates` kept and why the others were dropped. */
export interface CandidateFilterResult<C extends RetrievalCandidate> {
  allowed: C[];
  denied: Array<{ id: string; type: string; reason: string; decisionId?: string }>;
}

/** The Cedar entity a candidate describes. */
export function candidateEntity(c: RetrievalCandidate): EntityJson {
  return {
    uid: { type: c.type, id: c.id },
    attrs: {
      sensitivity: c.sensitivity,
      ...(c.tenant === undefined ? {} : { tenant: c.tenant }),
      ...(c.owner === undefined ? {} : { owner: { type: 'User', id: c.owner } }),
    },
    parents: c.type === 'Record' && c.dataset !== undefined ? [{ type: 'Dataset', id: c.dataset }] : [],
  };
}

/**
 * Returns the candidates the subject may read: one `read` decision per candidate (the decisions of a
 * batch are independent, as AuthZEN `execute_all`). A candidate is kept only on `allow`; a malformed
 * candidate, an engine error, `approval_required` or two candidates claiming one id with different data
 * drop it.
 * @param candidates - what the retriever returned
 * @param who - the user, actors and task context
 * @param decide - the decision point
 */
export async function filterCandidates<C extends RetrievalCandidate>(candidates: readonly C[], who: RetrievalSubject, decide: DecideFn, action = 'read'): Promise<CandidateFilterResult<C>> {
  const result: CandidateFilterResult<C> = { allowed: [], denied: [] };
  const seen = new Map<string, string>();
  const conflicting = new Set<string>();
  for (const c of candidates) {
    const key = `${c.type}::${c.id}`;
    const data = JSON.stringify(candidateEntity(c));
    if (seen.has(key) && seen.get(key) !== data) conflicting.add(key);
    seen.set(key, data);
  }
  for (const c of candidates) {
    if (c.type !== 'Record' && c.type !== 'Dataset') {
      result.denied.push({ id: String(c.id), type: String(c.type), reason: 'only Record and Dataset candidates are decided' });
      continue;
    }
    if (conflicting.has(`${c.type}::${c.id}`)) {
      result.denied.push({ id: c.id, type: c.type, reason: 'two candidates claim this id with different data' });
      continue;
    }
    try {
      const d = await decide({
        principal: who.principal,
        action,
        resource: { type: c.type, id: c.id },
        context: who.context ?? {},
        ...(who.actors && who.actors.length > 0 ? { delegation: { actors: who.actors } } : {}),
        entities: [...(who.entities ?? []), candidateEntity(c)],
      });
      if (d.decision === 'allow') result.allowed.push(c);
      else result.denied.push({ id: c.id, type: c.type, reason: d.decision === 'approval_required' ? 'approval required' : (d.reasons.at(-1) ?? 'denied'), decisionId: d.decisionId });
    } catch (err) {
      result.denied.push({ id: c.id, type: c.type, reason: `not decided: ${err instanceof Error ? err.message : 'error'}` });
    }
  }
  return result;
}

// ---- (b) The filter AST --------------------------------------------------------------------------

/** A field of a row: its id, its parent's id, or a resource attribute by name. */
export type FilterField = { kind: 'id' } | { kind: 'parent' } | { kind: 'attr'; name: string };
/** A literal of a filter: Long, String or Bool. */
export type FilterValue = number | string | boolean;

/** A store-neutral filter: what a row must satisfy. Two-valued; `notNull` tests presence. */
export type FilterNode =
  | { op: 'const'; value: boolean }
  | { op: 'and' | 'or'; args: FilterNode[] }
  | { op: 'not'; arg: FilterNode }
  | { op: 'cmp'; field: FilterField; cmp: '=' | '<>' | '<' | '<=' | '>' | '>='; value: FilterValue }
  | { op: 'in'; field: FilterField; values: FilterValue[] }
  | { op: 'notNull'; field: FilterField };

const TRUE: FilterNode = { op: 'const', value: true };
const FALSE: FilterNode = { op: 'const', value: false };
const isConst = (n: FilterNode, v: boolean) => n.op === 'const' && n.value === v;

function and(...args: FilterNode[]): FilterNode {
  const out: FilterNode[] = [];
  for (const a of args) {
    if (isConst(a, false)) return FALSE;
    if (isConst(a, true)) continue;
    if (a.op === 'and') out.push(...a.args);
    else out.push(a);
  }
  const args2 = dedupe(out);
  if (args2 === 'complementary') return FALSE;
  return args2.length === 0 ? TRUE : args2.length === 1 ? (args2[0] as FilterNode) : { op: 'and', args: args2 };
}
function or(...args: FilterNode[]): FilterNode {
  const out: FilterNode[] = [];
  for (const a of args) {
    if (isConst(a, true)) return TRUE;
    if (isConst(a, false)) continue;
    if (a.op === 'or') out.push(...a.args);
    else out.push(a);
  }
  const args2 = dedupe(out);
  if (args2 === 'complementary') return TRUE;
  return args2.length === 0 ? FALSE : args2.length === 1 ? (args2[0] as FilterNode) : { op: 'or', args: args2 };
}
/** Drops repeated operands; reports `x` next to `not x` (false under `and`, true under `or`). */
function dedupe(args: FilterNode[]): FilterNode[] | 'complementary' {
  const keys = new Set<string>();
  const out: FilterNode[] = [];
  for (const a of args) {
    const k = JSON.stringify(a);
    if (keys.has(k)) continue;
    keys.add(k);
    out.push(a);
  }
  for (const a of out) if (a.op === 'not' && keys.has(JSON.stringify(a.arg))) return 'complementary';
  return out;
}
function not(a: FilterNode): FilterNode {
  if (a.op === 'const') return { op: 'const', value: !a.value };
  if (a.op === 'not') return a.arg;
  return { op: 'not', arg: a };
}

/** Evaluates a filter on a row in memory (for stores that filter in code, and for tests). */
export function matchesFilter(node: FilterNode, row: { id: string; parent?: string | null; attrs: Record<string, FilterValue | null | undefined> }): boolean {
  const get = (f: FilterField) => (f.kind === 'id' ? row.id : f.kind === 'parent' ? (row.parent ?? null) : (row.attrs[f.name] ?? null));
  switch (node.op) {
    case 'const':
      return node.value;
    case 'and':
      return node.args.every((a) => matchesFilter(a, row));
    case 'or':
      return node.args.some((a) => matchesFilter(a, row));
    case 'not':
      return !matchesFilter(node.arg, row);
    case 'notNull':
      return get(node.field) !== null;
    case 'in': {
      const v = get(node.field);
      return v !== null && node.values.includes(v);
    }
    case 'cmp': {
      const v = get(node.field);
      if (v === null) return false;
      switch (node.cmp) {
        case '=':
          return v === node.value;
        case '<>':
          return v !== node.value;
        case '<':
          return v < node.value;
        case '<=':
          return v <= node.value;
        case '>':
          return v > node.value;
        default:
          return v >= node.value;
      }
    }
  }
}

// ---- (b) Table mapping and SQL -------------------------------------------------------------------

/** How a resource attribute is stored: its column and Cedar type. */
export interface ColumnMapping {
  column: string;
  type: 'long' | 'string' | 'bool' | 'entity';
  /** For `entity`: the type of the referenced entity (the column holds its id). */
  entityType?: string;
}

/** How a table stores resources of one type. */
export interface RetrievalTable {
  /** The Cedar type of every row (`Record` or `Dataset`). */
  resourceType: string;
  idColumn: string;
  /** Resource attribute name → column. Attributes not listed cannot be translated. */
  columns: Readonly<Record<string, ColumnMapping>>;
  /** The column holding the id of the row's one parent entity, and the parent's type. */
  parent?: { column: string; type: string };
}

/** A parameterised SQL condition. */
export interface SqlFilter {
  sql: string;
  params: Array<string | number>;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const quoteIdent = (name: string) => {
  if (!IDENT.test(name)) throw new TypeError(`${JSON.stringify(name)} is not a plain SQL identifier`);
  return `"${name}"`;
};

/**
 * Renders a filter as a parameterised SQL condition (SQLite and PostgreSQL syntax; booleans as 1/0).
 * Column names come from the mapping only and are quoted; every value is a parameter.
 */
export function toSql(node: FilterNode, table: RetrievalTable): SqlFilter {
  const params: Array<string | number> = [];
  const col = (f: FilterField): string => {
    if (f.kind === 'id') return quoteIdent(table.idColumn);
    if (f.kind === 'parent') {
      if (!table.parent) throw new TypeError('the table has no parent column');
      return quoteIdent(table.parent.column);
    }
    const m = table.columns[f.name];
    if (!m) throw new TypeError(`attribute ${f.name} has no column`);
    return quoteIdent(m.column);
  };
  const param = (v: FilterValue) => {
    params.push(typeof v === 'boolean' ? (v ? 1 : 0) : v);
    return '?';
  };
  const render = (n: FilterNode, parent: 'and' | 'or' | 'not' | 'top'): string => {
    switch (n.op) {
      case 'const':
        return n.value ? '1 = 1' : '1 = 0';
      case 'and':
      case 'or': {
        const text = n.args.map((a) => render(a, n.op as 'and' | 'or')).join(n.op === 'and' ? ' AND ' : ' OR ');
        return parent === 'top' || parent === n.op ? text : `(${text})`;
      }
      case 'not':
        return `NOT (${render(n.arg, 'top')})`;
      case 'notNull':
        return `${col(n.field)} IS NOT NULL`;
      case 'in':
        return n.values.length === 0 ? '1 = 0' : `${col(n.field)} IN (${n.values.map(param).join(', ')})`;
      case 'cmp':
        return `${col(n.field)} ${n.cmp} ${param(n.value)}`;
    }
  };
  return { sql: render(node, 'top'), params };
}

// ---- (b) Residual → filter -----------------------------------------------------------------------

/** What `retrievalFilter` concluded. */
export type RetrievalFilterResult =
  | { kind: 'filter'; filter: FilterNode; where: SqlFilter; policySetVersion: string }
  | { kind: 'deny'; deny: true; reason: string; policySetVersion?: string }
  | { kind: 'per_record'; reason: string; policySetVersion: string };

/** Dependencies of `retrievalFilter`. */
export interface RetrievalFilterDeps {
  /** The active policy set (the engine's `activeSet()`). */
  policySet(): CompiledPolicySet | undefined;
  clock: Clock;
  table: RetrievalTable;
  /** Decides directory-defined rows of the table's type one by one (their data is the directory's). */
  decide: DecideFn;
  /** The action (default `read`). */
  action?: string;
  /** Most parameters the SQL may carry before the filter falls back to per-record decisions (default 500). */
  maxParams?: number;
}

class Unsupported extends Error {}

type Expr = Record<string, unknown>;
const isObj = (v: unknown): v is Expr => typeof v === 'object' && v !== null && !Array.isArray(v);

type Operand =
  | { kind: 'resource' }
  | { kind: 'attr'; name: string; mapping: ColumnMapping; required: boolean }
  | { kind: 'literal'; value: unknown };

interface Translated {
  /** Holds, without error. */
  t: FilterNode;
  /** Evaluates without error. */
  ok: FilterNode;
}

interface TranslateEnv {
  table: RetrievalTable;
  required: ReadonlySet<string>;
  /** Attributes the schema declares for the row's type. */
  declared: ReadonlySet<string>;
  /** Directory entities of the parent type, with their ancestors (keys). */
  parentAncestors: ReadonlyMap<string, ReadonlySet<string>>;
  entityTypes: ReadonlySet<string>;
}

const FLIP: Readonly<Record<string, string>> = { '<': '>', '<=': '>=', '>': '<', '>=': '<=', '==': '==', '!=': '!=' };

function entityLiteral(v: unknown, types: ReadonlySet<string>): EntityRef | undefined {
  return asEntityRef(v, types);
}

function literalValue(e: Expr): unknown {
  if ('Value' in e) return e.Value;
  if (Array.isArray(e.Set)) {
    return e.Set.map((x) => {
      if (!isObj(x) || !('Value' in x)) throw new Unsupported('a set holds a non-literal');
      return x.Value;
    });
  }
  throw new Unsupported('not a literal');
}

function operand(e: unknown, env: TranslateEnv): Operand {
  if (!isObj(e)) throw new Unsupported('malformed expression');
  const u = e.unknown;
  if (Array.isArray(u) && u.length === 1 && isObj(u[0]) && u[0].Value === 'resource') return { kind: 'resource' };
  const dot = e['.'];
  if (isObj(dot)) {
    const left = operand(dot.left, env);
    if (left.kind !== 'resource' || typeof dot.attr !== 'string') throw new Unsupported('only attributes of the resource itself are translated');
    const mapping = env.table.columns[dot.attr];
    if (!mapping) throw new Unsupported(`resource.${dot.attr} has no column`);
    return { kind: 'attr', name: dot.attr, mapping, required: env.required.has(dot.attr) };
  }
  if ('Value' in e || 'Set' in e) return { kind: 'literal', value: literalValue(e) };
  throw new Unsupported(`expression ${Object.keys(e)[0] ?? '?'} is not translated`);
}

const attrOk = (a: Extract<Operand, { kind: 'attr' }>): FilterNode => (a.required ? TRUE : { op: 'notNull', field: { kind: 'attr', name: a.name } });

/** `resource in E` for a row of the table. */
function inEntity(target: EntityRef, env: TranslateEnv): FilterNode {
  const parts: FilterNode[] = [];
  if (target.type === env.table.resourceType) parts.push({ op: 'cmp', field: { kind: 'id' }, cmp: '=', value: target.id });
  const parent = env.table.parent;
  if (parent) {
    // A row without a parent is in nothing but itself; the presence test keeps the result two-valued in SQL.
    const present: FilterNode = { op: 'notNull', field: { kind: 'parent' } };
    if (target.type === parent.type) parts.push(and(present, { op: 'cmp', field: { kind: 'parent' }, cmp: '=', value: target.id }));
    const key = entityKey(target);
    const via = [...env.parentAncestors].filter(([, anc]) => anc.has(key)).map(([k]) => /::"(.*)"$/.exec(k)?.[1]).filter((x): x is string => x !== undefined);
    if (via.length > 0) parts.push(and(present, { op: 'in', field: { kind: 'parent' }, values: via.map((s) => JSON.parse(`"${s}"`) as string) }));
  }
  return or(...parts);
}

function compare(op: string, a: Operand, b: Operand, env: TranslateEnv): Translated {
  if (a.kind === 'literal' && b.kind !== 'literal') return compare(FLIP[op] as string, b, a, env);
  if (a.kind === 'literal' || b.kind !== 'literal') throw new Unsupported('a comparison of two unknowns or two literals');
  const lit = b.value;
  if (a.kind === 'resource') {
    const ref = entityLiteral(lit, env.entityTypes);
    if (!ref || (op !== '==' && op !== '!=')) throw new Unsupported('resource compared with a non-entity');
    const eq: FilterNode = ref.type === env.table.resourceType ? { op: 'cmp', field: { kind: 'id' }, cmp: '=', value: ref.id } : FALSE;
    return { t: op === '==' ? eq : not(eq), ok: TRUE };
  }
  const ok = attrOk(a);
  const field: FilterField = { kind: 'attr', name: a.name };
  let value: FilterValue | undefined;
  let sameType = false;
  switch (a.mapping.type) {
    case 'long':
      sameType = typeof lit === 'number' && Number.isSafeInteger(lit);
      value = sameType ? (lit as number) : undefined;
      break;
    case 'string':
      sameType = typeof lit === 'string';
      value = sameType ? (lit as string) : undefined;
      break;
    case 'bool':
      sameType = typeof lit === 'boolean';
      value = sameType ? (lit as boolean) : undefined;
      break;
    case 'entity': {
      const ref = entityLiteral(lit, env.entityTypes);
      if (ref) {
        // An entity of another type is never equal; the column holds ids of `entityType` only.
        sameType = true;
        value = ref.type === a.mapping.entityType ? ref.id : undefined;
      }
      break;
    }
  }
  if (op === '==' || op === '!=') {
    // Cedar's == across types is false, not an error.
    const eq: FilterNode = sameType && value !== undefined ? { op: 'cmp', field, cmp: '=', value } : FALSE;
    return { t: and(ok, op === '==' ? eq : not(eq)), ok };
  }
  if (a.mapping.type !== 'long' || typeof value !== 'number') throw new Unsupported(`${op} on a non-Long`);
  return { t: and(ok, { op: 'cmp', field, cmp: op as '<' | '<=' | '>' | '>=', value }), ok };
}

function translate(e: unknown, env: TranslateEnv, depth = 0): Translated {
  if (depth > 64) throw new Unsupported('expression too deep');
  if (!isObj(e)) throw new Unsupported('malformed expression');
  const [op] = Object.keys(e);
  const node = op === undefined ? undefined : e[op];
  if (op === 'Value') {
    if (typeof node !== 'boolean') throw new Unsupported('a non-boolean literal in a condition');
    return { t: node ? TRUE : FALSE, ok: TRUE };
  }
  if (!isObj(node)) throw new Unsupported(`expression ${op ?? '?'} is not translated`);
  switch (op) {
    case '&&': {
      const l = translate(node.left, env, depth + 1);
      // `false && x` never evaluates x, so x need not be translatable.
      if (isConst(l.t, false)) return l;
      const r = translate(node.right, env, depth + 1);
      // Left to right with short-circuit: the right side only runs (and can only fail) when the left holds.
      return { t: and(l.t, r.t), ok: and(l.ok, or(not(l.t), r.ok)) };
    }
    case '||': {
      const l = translate(node.left, env, depth + 1);
      if (isConst(l.t, true)) return l;
      const r = translate(node.right, env, depth + 1);
      return { t: or(l.t, r.t), ok: and(l.ok, or(l.t, r.ok)) };
    }
    case '!': {
      const a = translate(node.arg, env, depth + 1);
      return { t: and(a.ok, not(a.t)), ok: a.ok };
    }
    case 'if-then-else': {
      const c = translate(node.if, env, depth + 1);
      const a = translate(node.then, env, depth + 1);
      const b = translate(node.else, env, depth + 1);
      return { t: or(and(c.t, a.t), and(c.ok, not(c.t), b.t)), ok: and(c.ok, or(and(c.t, a.ok), and(not(c.t), b.ok))) };
    }
    case '==':
    case '!=':
    case '<':
    case '<=':
    case '>':
    case '>=':
      return compare(op, operand(node.left, env), operand(node.right, env), env);
    case 'has': {
      const left = operand(node.left, env);
      if (left.kind !== 'resource' || typeof node.attr !== 'string') throw new Unsupported('has on something other than the resource');
      // An attribute the schema does not declare for the row's type is never present (strict validation).
      if (!env.declared.has(node.attr)) return { t: FALSE, ok: TRUE };
      const mapping = env.table.columns[node.attr];
      if (!mapping) throw new Unsupported(`resource has ${node.attr}: no column`);
      return { t: env.required.has(node.attr) ? TRUE : { op: 'notNull', field: { kind: 'attr', name: node.attr } }, ok: TRUE };
    }
    case 'in': {
      const left = operand(node.left, env);
      const right = operand(node.right, env);
      if (left.kind !== 'resource' || right.kind !== 'literal') throw new Unsupported('in on something other than the resource');
      const targets = Array.isArray(right.value) ? right.value : [right.value];
      const refs = targets.map((v) => entityLiteral(v, env.entityTypes));
      if (refs.some((r) => r === undefined)) throw new Unsupported('in with a non-entity');
      return { t: or(...(refs as EntityRef[]).map((r) => inEntity(r, env))), ok: TRUE };
    }
    case 'is': {
      const left = operand(node.left, env);
      if (left.kind !== 'resource' || typeof node.entity_type !== 'string') throw new Unsupported('is on something other than the resource');
      const same = node.entity_type === env.table.resourceType ? TRUE : FALSE;
      if (node.in === undefined) return { t: same, ok: TRUE };
      const ins = translate({ in: { left: node.left, right: node.in } }, env, depth + 1);
      return { t: and(same, ins.t), ok: TRUE };
    }
    case 'contains': {
      const set = operand(node.left, env);
      const item = operand(node.right, env);
      if (set.kind !== 'literal' || !Array.isArray(set.value) || item.kind !== 'attr') throw new Unsupported('contains other than [literals].contains(resource.attr)');
      const values: FilterValue[] = [];
      for (const v of set.value) {
        if (item.mapping.type === 'entity') {
          const ref = entityLiteral(v, env.entityTypes);
          if (ref && ref.type === item.mapping.entityType) values.push(ref.id);
        } else if ((item.mapping.type === 'long' && typeof v === 'number') || (item.mapping.type === 'string' && typeof v === 'string') || (item.mapping.type === 'bool' && typeof v === 'boolean')) {
          values.push(v);
        }
      }
      const ok = attrOk(item);
      return { t: and(ok, { op: 'in', field: { kind: 'attr', name: item.name }, values }), ok };
    }
    default:
      throw new Unsupported(`expression ${op ?? '?'} is not translated`);
  }
}

function countParams(n: FilterNode): number {
  switch (n.op) {
    case 'and':
    case 'or':
      return n.args.reduce((s, a) => s + countParams(a), 0);
    case 'not':
      return countParams(n.arg);
    case 'cmp':
      return 1;
    case 'in':
      return n.values.length;
    default:
      return 0;
  }
}

/** Entity data with every entity reference written explicitly, so that the engine reads it the same with or without a schema. */
function explicit(v: unknown, types: ReadonlySet<string>, depth = 0): unknown {
  if (depth > 64) return v;
  const ref = asEntityRef(v, types);
  if (ref) return { __entity: ref };
  if (Array.isArray(v)) return v.map((x) => explicit(x, types, depth + 1));
  if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, explicit(x, types, depth + 1)]));
  return v;
}

/** Declared and required attributes of an entity type, from the schema. */
function attributesOf(set: CompiledPolicySet, type: string): { declared: Set<string>; required: Set<string> } {
  const declared = new Set<string>();
  const required = new Set<string>();
  const json = cedar.schemaToJson(set.schemaText);
  if (json.type === 'failure') return { declared, required };
  for (const ns of Object.values(json.json)) {
    const def = (ns.entityTypes as Record<string, { shape?: { attributes?: Record<string, { required?: boolean }> } }>)[type];
    for (const [name, a] of Object.entries(def?.shape?.attributes ?? {})) {
      declared.add(name);
      if (a.required !== false) required.add(name);
    }
  }
  return { declared, required };
}

function ancestorsOf(set: CompiledPolicySet, key: string): Set<string> {
  const out = new Set<string>();
  const queue = [...(set.entities.get(key)?.parents ?? [])];
  while (queue.length > 0) {
    const k = entityKey(queue.pop() as EntityRef);
    if (out.has(k)) continue;
    out.add(k);
    queue.push(...(set.entities.get(k)?.parents ?? []));
  }
  return out;
}

/**
 * Computes, from Cedar's partial evaluation with the resource unknown, a filter that selects exactly the rows
 * of `deps.table` the subject may read, and its SQL form. Returns `deny` when nothing is readable (or the
 * request cannot be evaluated), and `per_record` when a residual falls outside the translated subset.
 * @example
 * const r = await retrievalFilter({ principal: { type: 'User', id: 'alice' } }, deps);
 * if (r.kind === 'filter') db.prepare(`SELECT * FROM documents WHERE ${r.where.sql}`).all(...r.where.params);
 */
export async function retrievalFilter(who: RetrievalSubject, deps: RetrievalFilterDeps): Promise<RetrievalFilterResult> {
  const set = deps.policySet();
  if (!set) return { kind: 'deny', deny: true, reason: 'no policy set is loaded' };
  const version = set.version;
  const action = deps.action ?? 'read';
  const table = deps.table;
  const types = set.schemaInfo.entityTypes;
  const def = set.schemaInfo.actions.get(action);
  if (!def || !def.resourceTypes.includes(table.resourceType)) return { kind: 'deny', deny: true, reason: `action ${action} does not apply to ${table.resourceType}`, policySetVersion: version };
  const chain = [who.principal, ...(who.actors ?? [])];
  const callerContext = who.context ?? {};
  if ('delegation' in callerContext || 'time' in callerContext) return { kind: 'deny', deny: true, reason: 'context.delegation and context.time are set by Mandate', policySetVersion: version };

  // Entities: the directory's are authoritative; the caller's describe only what the directory lacks.
  const callerEntities = new Map<string, EntityJson>();
  try {
    for (const raw of who.entities ?? []) {
      const e = normalizeEntity(raw, set.schemaInfo);
      if (!set.entities.has(entityKey(e.uid))) callerEntities.set(entityKey(e.uid), e);
    }
  } catch (err) {
    return { kind: 'deny', deny: true, reason: `invalid entity: ${err instanceof Error ? err.message : 'error'}`, policySetVersion: version };
  }
  const lookup = (k: string) => set.entities.get(k) ?? callerEntities.get(k);
  const seeds: EntityRef[] = [...chain, ...set.literalEntities];
  const collect = (v: unknown, depth = 0): void => {
    if (depth > 64) return;
    const ref = asEntityRef(v, types);
    if (ref) seeds.push(ref);
    else if (Array.isArray(v)) v.forEach((x) => collect(x, depth + 1));
    else if (isObj(v)) Object.values(v).forEach((x) => collect(x, depth + 1));
  };
  collect(callerContext);
  const entities = entitySlice(seeds, lookup, types).map((e) => ({ ...e, uid: { __entity: e.uid }, attrs: explicit(e.attrs, types), parents: e.parents.map((p) => ({ __entity: p })) }));
  const user = who.principal.type === 'User' && chain.length > 1 ? who.principal : undefined;
  const context = {
    ...(explicit(callerContext, types) as Record<string, unknown>),
    delegation: { depth: chain.length - 1, ...(user ? { user: { __entity: user } } : {}), agents: chain.slice(1).filter((a) => a.type === 'Agent').map((a) => ({ __entity: a })) },
    time: { now: { __extn: { fn: 'datetime', arg: new Date(deps.clock.now()).toISOString() } } },
  };
  const actionUid = { type: set.schemaInfo.actionType, id: action };
  const checked = cedar.checkParseContext({ context: context as never, schema: set.schemaText, action: actionUid });
  if (checked.type === 'failure') return { kind: 'deny', deny: true, reason: `context does not match the schema: ${checked.errors.map((e) => e.message).join('; ')}`, policySetVersion: version };

  const parentAncestors = new Map<string, ReadonlySet<string>>();
  if (table.parent) {
    for (const [k, e] of set.entities) if (e.uid.type === table.parent.type) parentAncestors.set(k, ancestorsOf(set, k));
  }
  const env: TranslateEnv = { table, ...attributesOf(set, table.resourceType), parentAncestors, entityTypes: types };
  const staticPolicies = Object.fromEntries(set.policies.map((p) => [p.id, p.json]));
  const perPrincipal: FilterNode[] = [];
  for (const principal of chain) {
    const answer = cedar.isAuthorizedPartial({
      principal,
      action: actionUid,
      resource: null,
      context: context as never,
      schema: set.schemaText,
      validateRequest: false,
      policies: { staticPolicies: staticPolicies as never },
      entities: entities as never,
    });
    if (answer.type === 'failure') return { kind: 'deny', deny: true, reason: `the engine refused the request: ${answer.errors.map((e) => e.message).join('; ')}`, policySetVersion: version };
    const r = answer.response;
    if (r.errored.length > 0) return { kind: 'deny', deny: true, reason: `evaluation failed in ${r.errored.join(', ')}`, policySetVersion: version };
    if (r.decision === 'deny') return { kind: 'deny', deny: true, reason: `${principal.type}::"${principal.id}" may read nothing of ${table.resourceType}`, policySetVersion: version };
    const permits: FilterNode[] = [];
    const blockers: FilterNode[] = [];
    const oks: FilterNode[] = [];
    const ids = new Set([...r.satisfied, ...r.nontrivialResiduals]);
    for (const id of ids) {
      const pol = set.policyById.get(id);
      if (!pol) return { kind: 'deny', deny: true, reason: `unknown policy ${id} in a residual`, policySetVersion: version };
      let tr: Translated;
      if (r.satisfied.includes(id)) {
        tr = { t: TRUE, ok: TRUE };
      } else {
        const residual = r.residuals[id] as PolicyJson | undefined;
        if (!residual) return { kind: 'deny', deny: true, reason: `no residual for ${id}`, policySetVersion: version };
        try {
          let acc: Translated = { t: TRUE, ok: TRUE };
          for (const c of residual.conditions) {
            const part = translate(c.kind === 'when' ? c.body : { '!': { arg: c.body } }, env);
            acc = { t: and(acc.t, part.t), ok: and(acc.ok, or(not(acc.t), part.ok)) };
          }
          tr = acc;
        } catch (err) {
          if (err instanceof Unsupported) return { kind: 'per_record', reason: `policy ${id}: ${err.message}`, policySetVersion: version };
          throw err;
        }
      }
      oks.push(tr.ok);
      if (pol.effect === 'forbid' || pol.annotations[APPROVAL_ANNOTATION] === 'required') blockers.push(tr.t);
      else permits.push(tr.t);
    }
    perPrincipal.push(and(...oks, or(...permits), not(or(...blockers))));
  }
  // Rows that must be present for a valid entity, as a per-record decision requires.
  const valid = and(...[...env.required].filter((a) => table.columns[a]).map((a): FilterNode => ({ op: 'notNull', field: { kind: 'attr', name: a } })));
  let filter = and(valid, ...perPrincipal);

  // The directory's own entities of this type keep the directory's data: decided one by one, not by the row.
  const defined = [...set.entities.values()].filter((e) => e.uid.type === table.resourceType);
  if (defined.length > 0) {
    const allowed: string[] = [];
    for (const e of defined) {
      try {
        const d = await deps.decide({
          principal: who.principal,
          action,
          resource: e.uid,
          context: callerContext,
          ...(who.actors && who.actors.length > 0 ? { delegation: { actors: who.actors } } : {}),
          ...(who.entities ? { entities: who.entities } : {}),
        });
        if (d.decision === 'allow') allowed.push(e.uid.id);
      } catch {
        // Not decided: not readable.
      }
    }
    filter = or(and(not({ op: 'in', field: { kind: 'id' }, values: defined.map((e) => e.uid.id) }), filter), { op: 'in', field: { kind: 'id' }, values: allowed });
  }
  if (isConst(filter, false)) return { kind: 'deny', deny: true, reason: 'no row can be readable', policySetVersion: version };
  if (countParams(filter) > (deps.maxParams ?? 500)) return { kind: 'per_record', reason: 'the filter would carry too many parameters', policySetVersion: version };
  return { kind: 'filter', filter, where: toSql(filter, table), policySetVersion: version };
}

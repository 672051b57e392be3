/**
 * The access matrix of a policy set: for every principal the directory defines (users, agents, services),
 * every action and every resource entity the action applies to, what the set decides — allow, deny,
 * approval required, or "conditional" with the residual condition on the request context.
 *
 * Each cell is decided with Cedar's partial evaluation: the principal, action and resource are concrete,
 * the context is unknown except `context.delegation`, which Mandate itself sets (depth 0 for a principal
 * acting directly; the owner as user and the agent as actor for an agent acting for its owner). Agents get
 * two rows: acting directly, and acting for their owner (the intersection of both principals' decisions,
 * as `authorize` computes it for a delegated request).
 *
 * Pure: takes a compiled set, returns values.
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { PolicyJson, SchemaJson } from '@cedar-policy/cedar-wasm/nodejs';
import { formatEntityRef, type EntityRef } from '../core/decision.ts';
import { APPROVAL_ANNOTATION } from './authorize.ts';
import type { CompiledPolicySet } from './compile-policy-set.ts';
import { asEntityRef, entityKey, entitySlice } from './entities.ts';
import { residualConditionText, rewriteContextHas, unknownContextValue } from './analyze-residual.ts';
import type { EntityJson, LoadedPolicy } from './types.ts';

/** The principal types that get rows. */
export const MATRIX_PRINCIPAL_TYPES = ['User', 'Agent', 'Service'] as const;

/** What a cell says. */
export type CellOutcome = 'allow' | 'deny' | 'approval_required' | 'conditional';

/** A policy whose residual is neither `true` nor `false`: the cell depends on its condition. */
export interface ResidualTerm {
  /** The principal of the chain this residual belongs to. */
  principal: EntityRef;
  policyId: string;
  effect: 'permit' | 'forbid';
  /** `file.cedar:line`. */
  source: string;
  /** The permit carries `@approval("required")`. */
  approval: boolean;
  /** The residual condition as Cedar text, in terms of `context`. */
  condition: string;
}

/** One cell: a principal (or an agent acting for its owner), an action, a resource. */
export interface MatrixCell {
  action: string;
  resource: EntityRef;
  outcome: CellOutcome;
  /** Policies that decide the cell whatever the context: satisfied permits (allow) or forbids (deny). */
  determining: string[];
  /** For `conditional`: the residual permits and forbids. Allowed iff, for every principal of the chain, some permit holds and no forbid does. */
  residuals: ResidualTerm[];
  /**
   * For a `conditional` cell whose residuals are all forbids (every principal already has a permit that
   * holds): the outcome unless one of those forbids holds.
   */
  allowedUnless?: 'allow' | 'approval_required';
  /** Policies whose evaluation failed; any error denies. */
  errors: string[];
}

/** One row: a principal acting directly, or an agent acting for its owner. */
export interface MatrixRow {
  principal: EntityRef;
  /** For an agent's delegated row: the user it acts for (its owner). */
  actingFor?: EntityRef;
  cells: MatrixCell[];
}

/** The whole matrix. */
export interface AccessMatrix {
  policySetVersion: string;
  /** Context attributes treated as unknown. */
  unknownContext: string[];
  rows: MatrixRow[];
  /** Agents without a delegated row, and why. */
  notes: string[];
}

interface Prepared {
  set: CompiledPolicySet;
  /** Policies rewritten for partial evaluation, by id. */
  rewritten: Map<string, PolicyJson>;
  /** Ancestors (transitive parents) by entity key, including action groups. */
  ancestors: Map<string, Set<string>>;
  /** Context attributes per action: name → required. */
  contextOf: Map<string, Map<string, boolean>>;
  schema?: string;
  actionEntities: EntityJson[];
  approvals: Set<string>;
}

/** Per-principal outcome of one partial evaluation. */
interface PrincipalPartial {
  principal: EntityRef;
  decision: 'allow' | 'deny' | 'approval_required' | 'conditional';
  /** For `conditional` with only forbid residuals: the outcome unless one holds. */
  allowedUnless?: 'allow' | 'approval_required';
  determining: string[];
  residuals: ResidualTerm[];
  errors: string[];
}

/**
 * Computes the access matrix of `set`. Throws only if the engine itself fails.
 */
export function computeAccessMatrix(set: CompiledPolicySet): AccessMatrix {
  const p = prepare(set);
  const entities = [...set.entities.values()];
  const principals = entities.filter((e) => (MATRIX_PRINCIPAL_TYPES as readonly string[]).includes(e.uid.type)).map((e) => e.uid);
  const order = (t: string) => (MATRIX_PRINCIPAL_TYPES as readonly string[]).indexOf(t);
  principals.sort((a, b) => order(a.type) - order(b.type));
  const rows: MatrixRow[] = [];
  const notes: string[] = [];
  const unknownContext = new Set<string>();
  for (const ctx of p.contextOf.values()) for (const name of ctx.keys()) if (name !== 'delegation') unknownContext.add(name);

  for (const principal of principals) {
    rows.push({ principal, cells: cellsFor(p, entities, [principal], undefined) });
    if (principal.type !== 'Agent') continue;
    const owner = asEntityRef(set.entities.get(entityKey(principal))?.attrs.owner, set.schemaInfo.entityTypes);
    if (!owner) {
      notes.push(`${formatEntityRef(principal)} has no owner attribute: no delegated row`);
    } else if (!set.entities.has(entityKey(owner))) {
      notes.push(`${formatEntityRef(principal)}'s owner ${formatEntityRef(owner)} is not defined by the directory: no delegated row`);
    } else {
      rows.push({ principal, actingFor: owner, cells: cellsFor(p, entities, [owner, principal], owner) });
    }
  }
  return { policySetVersion: set.version, unknownContext: [...unknownContext].sort(), rows, notes };
}

/** The cells of one row; `chain` is `[principal]` or `[user, agent]`. */
function cellsFor(p: Prepared, entities: EntityJson[], chain: EntityRef[], user: EntityRef | undefined): MatrixCell[] {
  const cells: MatrixCell[] = [];
  for (const [action, def] of p.set.schemaInfo.actions) {
    if (!chain.every((c) => def.principalTypes.includes(c.type))) continue;
    for (const resource of entities) {
      if (!def.resourceTypes.includes(resource.uid.type)) continue;
      const delegation = user
        ? { depth: chain.length - 1, user: { __entity: user }, agents: chain.slice(1).filter((a) => a.type === 'Agent').map((a) => ({ __entity: a })) }
        : { depth: 0, agents: [] };
      const parts = chain.map((principal) => evaluate(p, principal, action, resource.uid, delegation));
      cells.push(combine(action, resource.uid, parts));
    }
  }
  return cells;
}

/** Combines the chain's per-principal outcomes as `authorize` does: allow only if every principal allows. */
function combine(action: string, resource: EntityRef, parts: PrincipalPartial[]): MatrixCell {
  const errors = parts.flatMap((x) => x.errors);
  const denied = parts.filter((x) => x.decision === 'deny');
  if (denied.length > 0) {
    return { action, resource, outcome: 'deny', determining: unique(denied.flatMap((x) => x.determining)), residuals: [], errors };
  }
  if (parts.every((x) => x.decision === 'allow' || x.decision === 'approval_required')) {
    const outcome = parts.some((x) => x.decision === 'approval_required') ? 'approval_required' : 'allow';
    return { action, resource, outcome, determining: unique(parts.flatMap((x) => x.determining)), residuals: [], errors };
  }
  const settled = parts.every((x) => x.decision !== 'conditional' || x.allowedUnless !== undefined);
  const approval = parts.some((x) => x.decision === 'approval_required' || x.allowedUnless === 'approval_required');
  return {
    action,
    resource,
    outcome: 'conditional',
    determining: unique(parts.flatMap((x) => x.determining)),
    residuals: parts.flatMap((x) => x.residuals),
    errors,
    ...(settled ? { allowedUnless: approval ? 'approval_required' : 'allow' } : {}),
  };
}

function evaluate(p: Prepared, principal: EntityRef, action: string, resource: EntityRef, delegation: Record<string, unknown>): PrincipalPartial {
  const { set } = p;
  const actionUid = { type: set.schemaInfo.actionType, id: action };
  const applicable = set.policies.filter((pol) => headMatches(p, pol, principal, actionUid, resource));
  if (!applicable.some((pol) => pol.effect === 'permit')) {
    return { principal, decision: 'deny', determining: [], residuals: [], errors: [] };
  }
  const context: Record<string, unknown> = {};
  for (const [name] of p.contextOf.get(action) ?? new Map<string, boolean>()) {
    context[name] = name === 'delegation' ? delegation : unknownContextValue(name);
  }
  const seeds: EntityRef[] = [principal, resource];
  // Every entity of the chain can be reached through context.delegation, so its data goes along.
  const user = (delegation.user as { __entity?: EntityRef } | undefined)?.__entity;
  if (user) seeds.push(user);
  for (const a of (delegation.agents as Array<{ __entity: EntityRef }> | undefined) ?? []) seeds.push(a.__entity);
  const slice = entitySlice(seeds, (k) => set.entities.get(k), set.schemaInfo.entityTypes).map((e) => explicitRefs(e, set.schemaInfo.entityTypes));
  const staticPolicies: Record<string, PolicyJson> = {};
  for (const pol of applicable) staticPolicies[pol.id] = p.rewritten.get(pol.id) as PolicyJson;

  const answer = cedar.isAuthorizedPartial({
    principal,
    action: actionUid,
    resource,
    context: context as never,
    ...(p.schema ? { schema: p.schema } : {}),
    // Unknown values cannot be validated against the schema; the set itself was validated strictly.
    validateRequest: false,
    policies: { staticPolicies },
    entities: [...slice, ...(p.schema ? [] : p.actionEntities)] as never,
  });
  if (answer.type === 'failure') {
    return { principal, decision: 'deny', determining: [], residuals: [], errors: answer.errors.map((e) => e.message) };
  }
  const r = answer.response;
  const byId = (id: string) => set.policyById.get(id);
  if (r.errored.length > 0) {
    // Any evaluation error denies (authorize.ts), even where Cedar would skip the erroring policy.
    return { principal, decision: 'deny', determining: [], residuals: [], errors: r.errored };
  }
  const satisfiedPermits = r.satisfied.filter((id) => byId(id)?.effect === 'permit');
  const satisfiedForbids = r.satisfied.filter((id) => byId(id)?.effect === 'forbid');
  const satisfiedApproval = r.satisfied.some((id) => p.approvals.has(id) && byId(id)?.effect === 'permit');
  // Once a permit holds, another permit's condition no longer decides anything, except that an approval
  // permit that may also hold can still turn the allow into approval_required.
  const relevant = r.nontrivialResiduals.filter((id) => {
    const pol = byId(id);
    if (pol?.effect !== 'permit' || r.satisfied.every((s) => byId(s)?.effect !== 'permit')) return true;
    return p.approvals.has(id) && !satisfiedApproval;
  });
  const residuals: ResidualTerm[] = relevant.map((id) => {
    const pol = byId(id) as LoadedPolicy;
    return {
      principal,
      policyId: id,
      effect: pol.effect,
      source: `${pol.file}:${pol.line}`,
      approval: p.approvals.has(id),
      condition: residualConditionText(r.residuals[id] as PolicyJson),
    };
  });
  if (r.decision === 'deny') return { principal, decision: 'deny', determining: satisfiedForbids, residuals: [], errors: [] };
  if (r.decision === 'allow') {
    const approval = satisfiedPermits.some((id) => p.approvals.has(id));
    // An allow is settled, but whether it needs approval can still depend on an approval permit's condition.
    const openApproval = !approval && residuals.some((t) => t.effect === 'permit' && t.approval);
    if (openApproval) return { principal, decision: 'conditional', determining: satisfiedPermits, residuals: residuals.filter((t) => t.effect === 'permit'), errors: [] };
    return { principal, decision: approval ? 'approval_required' : 'allow', determining: satisfiedPermits, residuals: [], errors: [] };
  }
  const onlyForbids = satisfiedPermits.length > 0 && residuals.every((t) => t.effect === 'forbid');
  return {
    principal,
    decision: 'conditional',
    ...(onlyForbids ? { allowedUnless: satisfiedPermits.some((id) => p.approvals.has(id)) ? 'approval_required' : 'allow' } : {}),
    determining: satisfiedPermits,
    residuals,
    errors: [],
  } as PrincipalPartial;
}

/** Whether a policy's scope (principal, action, resource constraints) matches, using the directory's hierarchy. */
function headMatches(p: Prepared, pol: LoadedPolicy, principal: EntityRef, action: EntityRef, resource: EntityRef): boolean {
  const json = pol.json as PolicyJson;
  return scopeMatches(p, json.principal as unknown as Constraint, principal) && scopeMatches(p, json.action as unknown as Constraint, action) && scopeMatches(p, json.resource as unknown as Constraint, resource);
}

interface Constraint {
  op: 'All' | '==' | 'in' | 'is';
  entity?: unknown;
  entities?: unknown[];
  entity_type?: string;
  in?: { entity?: unknown };
}

/** Reads `{ type, id }` or `{ __entity: { type, id } }`. */
export function refOf(value: unknown): EntityRef | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = ((value as { __entity?: unknown }).__entity ?? value) as { type?: unknown; id?: unknown };
  return typeof v.type === 'string' && typeof v.id === 'string' ? { type: v.type, id: v.id } : undefined;
}

function scopeMatches(p: Prepared, c: Constraint, e: EntityRef): boolean {
  const isIn = (target: unknown) => {
    const t = refOf(target);
    if (!t) return true; // a template slot: cannot be decided here, let the engine see it
    const k = entityKey(t);
    return k === entityKey(e) || (p.ancestors.get(entityKey(e))?.has(k) ?? false);
  };
  switch (c.op) {
    case 'All':
      return true;
    case '==': {
      const t = refOf(c.entity);
      return !t || entityKey(t) === entityKey(e);
    }
    case 'in':
      return c.entities ? c.entities.some(isIn) : isIn(c.entity);
    case 'is':
      return c.entity_type === e.type && (c.in === undefined || isIn(c.in.entity));
    default:
      return true;
  }
}

function prepare(set: CompiledPolicySet): Prepared {
  const schemaJson = cedar.schemaToJson(set.schemaText);
  if (schemaJson.type === 'failure') throw new Error('a schema that compiled no longer parses');
  const contextOf = contextAttributes(schemaJson.json);
  const optional = new Set<string>();
  for (const attrs of contextOf.values()) for (const [name, required] of attrs) if (!required) optional.add(name);
  const rewritten = new Map<string, PolicyJson>();
  const approvals = new Set<string>();
  for (const pol of set.policies) {
    rewritten.set(pol.id, rewriteContextHas(pol.json as PolicyJson, optional));
    if (pol.annotations[APPROVAL_ANNOTATION] === 'required') approvals.add(pol.id);
  }
  const ancestors = new Map<string, Set<string>>();
  const parentsOf = (key: string): EntityRef[] => set.entities.get(key)?.parents ?? [];
  for (const key of set.entities.keys()) ancestors.set(key, closure(key, parentsOf));
  const actionType = set.schemaInfo.actionType;
  const actionParents = (key: string): EntityRef[] => {
    const id = /::"((?:[^"\\]|\\.)*)"$/.exec(key)?.[1];
    const def = id === undefined ? undefined : set.schemaInfo.actions.get(JSON.parse(`"${id}"`) as string);
    return (def?.memberOf ?? []).map((m) => ({ type: actionType, id: m }));
  };
  const actionEntities: EntityJson[] = [];
  for (const [id, def] of set.schemaInfo.actions) {
    const uid = { type: actionType, id };
    ancestors.set(entityKey(uid), closure(entityKey(uid), actionParents));
    actionEntities.push({ uid: { __entity: uid } as unknown as EntityRef, attrs: {}, parents: def.memberOf.map((m) => ({ __entity: { type: actionType, id: m } }) as unknown as EntityRef) });
  }
  const prepared: Prepared = { set, rewritten, ancestors, contextOf, actionEntities, approvals };
  // Without a schema the engine reads entity data as plain JSON, which is exact unless an attribute has an
  // extension type (ipaddr, decimal, datetime, duration): only then is the schema worth parsing per call.
  if (usesExtensionAttributes(schemaJson.json)) prepared.schema = set.schemaText;
  return prepared;
}

function closure(key: string, parentsOf: (key: string) => EntityRef[]): Set<string> {
  const out = new Set<string>();
  const queue = [...parentsOf(key)];
  while (queue.length > 0) {
    const next = entityKey(queue.pop() as EntityRef);
    if (out.has(next)) continue;
    out.add(next);
    queue.push(...parentsOf(next));
  }
  return out;
}

/** Entity data with every entity reference in attributes written explicitly (`__entity`), so that no schema is needed to read it. */
function explicitRefs(e: EntityJson, entityTypes: ReadonlySet<string>): EntityJson {
  const walk = (v: unknown, depth: number): unknown => {
    if (depth > 64) return v;
    const ref = asEntityRef(v, entityTypes);
    if (ref) return { __entity: ref };
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, depth + 1)]));
    return v;
  };
  return { ...e, attrs: walk(e.attrs, 0) as Record<string, unknown> };
}

type TypeJson = Record<string, unknown>;

/** Context attributes of every action (name → required), with common types resolved. */
export function contextAttributes(schema: SchemaJson<string>): Map<string, Map<string, boolean>> {
  const out = new Map<string, Map<string, boolean>>();
  for (const [, ns] of Object.entries(schema)) {
    const common = (ns.commonTypes ?? {}) as Record<string, TypeJson>;
    const resolve = (t: TypeJson | undefined, depth = 0): TypeJson | undefined => {
      if (!t || depth > 16) return t;
      const name = t.type === 'EntityOrCommon' ? (t.name as string) : (t.type as string);
      const target = common[name];
      return target ? resolve(target, depth + 1) : t;
    };
    for (const [action, def] of Object.entries(ns.actions ?? {})) {
      const ctx = resolve(def.appliesTo?.context as TypeJson | undefined);
      const attrs = new Map<string, boolean>();
      if (ctx && ctx.type === 'Record') {
        for (const [name, a] of Object.entries((ctx.attributes ?? {}) as Record<string, TypeJson>)) attrs.set(name, a.required !== false);
      }
      out.set(action, attrs);
    }
  }
  return out;
}

function usesExtensionAttributes(schema: SchemaJson<string>): boolean {
  const ext = new Set(['ipaddr', 'decimal', 'datetime', 'duration']);
  const seen = (v: unknown): boolean => {
    if (Array.isArray(v)) return v.some(seen);
    if (typeof v !== 'object' || v === null) return false;
    const o = v as TypeJson;
    if (o.type === 'Extension' || (typeof o.name === 'string' && ext.has(o.name)) || (typeof o.type === 'string' && ext.has(o.type))) return true;
    return Object.values(o).some(seen);
  };
  // Common types may be used by entities; checking them too only costs speed, never correctness.
  return Object.values(schema).some((ns) => seen(ns.entityTypes) || seen(ns.commonTypes ? Object.fromEntries(Object.entries(ns.commonTypes).filter(([name]) => entityUsesCommon(ns.entityTypes, name))) : {}));
}

function entityUsesCommon(entityTypes: unknown, name: string): boolean {
  return JSON.stringify(entityTypes).includes(`"${name}"`);
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

/**
 * Cedar's authorization algorithm over compiled policies: default deny, a satisfied `forbid` overrides any
 * `permit`, the determining policies are the satisfied forbids (if any) else the satisfied permits, and a
 * policy whose evaluation errors is skipped and reported — exactly as cedar-wasm's `isAuthorized` answers.
 *
 * Policies are indexed by their scope so that a request evaluates only the policies that can apply to it:
 * by action (`action == A`, `action in A`, `action in [A, B]`), then by principal and resource entity type
 * (`==` or `is`). A policy left out by the index has a scope that is false for the request, so Cedar would
 * not have evaluated its conditions either: no decision, determining policy or error can differ.
 *
 * The action hierarchy is read from the request's entities (`entities.get(action.key).ancestors`), which is
 * where Cedar reads it: the caller must put the action entities there with their ancestors (cedar-wasm adds
 * them from the schema's `memberOf`). An action absent from `entities` is only `in` itself, as in Cedar.
 *
 * @see https://docs.cedarpolicy.com/auth/authorization.html
 */
import { compileCondition, EvaluationError, type EvaluationEnv } from './compile-expression.ts';
import type { CedarRecord, EntityLookup, EntityUid } from './value.ts';

/** One policy to compile: its id, effect and Cedar JSON form (`policyToJson`). */
export interface CompilablePolicy {
  readonly id: string;
  readonly effect: 'permit' | 'forbid';
  /** Cedar's JSON policy format (`PolicyJson`). */
  readonly json: unknown;
}

/** A request in compiled-path values. It is used as the evaluation environment as it is, without copying. */
export interface CompiledAuthorizationRequest {
  readonly principal: EntityUid;
  readonly action: EntityUid;
  readonly resource: EntityUid;
  readonly context: CedarRecord;
  /** Every entity the request may reach, the action entities (with their ancestors) included. */
  readonly entities: EntityLookup;
}

/** Cedar's answer: the decision, the determining policy ids, and the policies whose evaluation errored. */
export interface CompiledAuthorizationResponse {
  decision: 'allow' | 'deny';
  /** Satisfied forbids if any forbid is satisfied, else satisfied permits; in policy-set order. */
  reason: string[];
  /** One entry per erroring policy, with Cedar's message; in policy-set order. */
  errors: Array<{ policyId: string; message: string }>;
}

/** Decides requests against a compiled policy set. */
export interface CompiledAuthorizer {
  /** Cedar's `isAuthorized` for one request. Never throws for a policy's evaluation error. */
  isAuthorized(request: CompiledAuthorizationRequest): CompiledAuthorizationResponse;
  /**
   * The ids of the policies the scope index selects for the request (a superset of those whose scope holds),
   * in policy-set order: the only ones `isAuthorized` evaluates. For diagnostics and tests.
   */
  applicablePolicyIds(request: CompiledAuthorizationRequest): string[];
  /** Number of policies in the set. */
  readonly size: number;
}

/** A policy feature the compiler does not support, which sends the whole set to the reference engine. */
export interface UnsupportedFeature {
  policyId: string;
  feature: string;
}

interface Entry {
  readonly id: string;
  readonly forbid: boolean;
  /** Position in the set; candidate lists keep this order. */
  readonly index: number;
  readonly evaluate: (env: EvaluationEnv) => boolean;
  readonly principalType: string | undefined;
  readonly resourceType: string | undefined;
}

interface ActionCache {
  ancestors: ReadonlySet<string> | undefined;
  /** principal type → resource type → candidates. */
  byType: Map<string, Map<string, readonly Entry[]>>;
}

/** Bound on cached candidate lists; past it the cache starts afresh (types come from requests). */
const MAX_CACHED_LISTS = 4096;

class IndexedAuthorizer implements CompiledAuthorizer {
  readonly size: number;
  /** Policies whose action scope is unconstrained. */
  readonly #always: readonly Entry[];
  /** Action key → policies whose scope is `action == key` or `action in [… key …]`. */
  readonly #byAction: ReadonlyMap<string, readonly Entry[]>;
  /** Action key → policies whose scope is `action in [… key …]`, which also match the key's descendants. */
  readonly #byAncestor: ReadonlyMap<string, readonly Entry[]>;
  #cache = new Map<string, ActionCache>();
  #cachedLists = 0;

  constructor(entries: Entry[], actions: ReadonlyMap<Entry, { op: '==' | 'in'; keys: readonly string[] } | undefined>) {
    this.size = entries.length;
    const always: Entry[] = [];
    const byAction = new Map<string, Entry[]>();
    const byAncestor = new Map<string, Entry[]>();
    const add = (m: Map<string, Entry[]>, k: string, e: Entry) => {
      const list = m.get(k);
      if (list) {
        if (list[list.length - 1] !== e) list.push(e);
      } else m.set(k, [e]);
    };
    for (const e of entries) {
      const a = actions.get(e);
      if (!a) {
        always.push(e);
        continue;
      }
      for (const k of a.keys) {
        add(byAction, k, e);
        if (a.op === 'in') add(byAncestor, k, e);
      }
    }
    this.#always = always;
    this.#byAction = byAction;
    this.#byAncestor = byAncestor;
  }

  isAuthorized(request: CompiledAuthorizationRequest): CompiledAuthorizationResponse {
    const candidates = this.#candidates(request);
    let forbids: string[] | undefined;
    let permits: string[] | undefined;
    const errors: Array<{ policyId: string; message: string }> = [];
    for (let i = 0; i < candidates.length; i++) {
      const p = candidates[i] as Entry;
      let satisfied: boolean;
      try {
        satisfied = p.evaluate(request);
      } catch (err) {
        // Cedar skips an erroring policy and reports it; anything else is a bug and must not be hidden.
        if (!(err instanceof EvaluationError)) throw err;
        errors.push({ policyId: p.id, message: err.message });
        continue;
      }
      if (!satisfied) continue;
      if (p.forbid) (forbids ??= []).push(p.id);
      else (permits ??= []).push(p.id);
    }
    if (forbids) return { decision: 'deny', reason: forbids, errors };
    if (permits) return { decision: 'allow', reason: permits, errors };
    return { decision: 'deny', reason: [], errors };
  }

  applicablePolicyIds(request: CompiledAuthorizationRequest): string[] {
    return this.#candidates(request).map((e) => e.id);
  }

  /** The policies that can apply to the request, from the cache when the action's ancestors are unchanged. */
  #candidates(request: CompiledAuthorizationRequest): readonly Entry[] {
    const actionKey = request.action.key;
    const ancestors = request.entities.get(actionKey)?.ancestors;
    let cache = this.#cache.get(actionKey);
    if (!cache || !sameSet(cache.ancestors, ancestors)) {
      cache = { ancestors, byType: new Map() };
      this.#cache.set(actionKey, cache);
    }
    const pType = request.principal.type;
    const rType = request.resource.type;
    let byResource = cache.byType.get(pType);
    const hit = byResource?.get(rType);
    if (hit) return hit;
    const list = this.#select(actionKey, ancestors, pType, rType);
    if (this.#cachedLists >= MAX_CACHED_LISTS) {
      this.#cache = new Map([[actionKey, cache]]);
      cache.byType.clear();
      byResource = undefined;
      this.#cachedLists = 0;
    }
    if (!byResource) {
      byResource = new Map();
      cache.byType.set(pType, byResource);
    }
    byResource.set(rType, list);
    this.#cachedLists++;
    return list;
  }

  #select(actionKey: string, ancestors: ReadonlySet<string> | undefined, pType: string, rType: string): readonly Entry[] {
    const picked = new Set<Entry>(this.#always);
    for (const e of this.#byAction.get(actionKey) ?? []) picked.add(e);
    for (const a of ancestors ?? []) for (const e of this.#byAncestor.get(a) ?? []) picked.add(e);
    return [...picked]
      .filter((e) => (e.principalType === undefined || e.principalType === pType) && (e.resourceType === undefined || e.resourceType === rType))
      .sort((x, y) => x.index - y.index);
  }
}

function sameSet(a: ReadonlySet<string> | undefined, b: ReadonlySet<string> | undefined): boolean {
  if (a === b) return true;
  if (!a || !b || a.size !== b.size) return (a?.size ?? 0) === 0 && (b?.size ?? 0) === 0;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

/**
 * Compiles a policy set for the compiled decision path. Refuses the whole set, listing every unsupported
 * feature by policy, when any policy uses something the compiler does not support: such a set is evaluated
 * by the reference engine instead.
 *
 * @example
 * const r = compileAuthorizer(set.policies);
 * if (r.ok) r.authorizer.isAuthorized({ principal, action, resource, context, entities });
 * @see https://docs.cedarpolicy.com/auth/authorization.html
 */
export function compileAuthorizer(
  policies: ReadonlyArray<CompilablePolicy>,
): { ok: true; authorizer: CompiledAuthorizer } | { ok: false; unsupported: UnsupportedFeature[] } {
  const unsupported: UnsupportedFeature[] = [];
  const entries: Entry[] = [];
  const actions = new Map<Entry, { op: '==' | 'in'; keys: readonly string[] } | undefined>();
  const seen = new Set<string>();
  // A plain loop: a V8 (Node 20) TurboFan bug aborted the process when compiling thousands of policies inside
  // an inlined Array.prototype.forEach callback (a deoptimisation through its builtin continuation).
  for (let index = 0; index < policies.length; index++) {
    const p = policies[index] as CompilablePolicy;
    const features: string[] = [];
    const c = compileCondition(p.json, features);
    const jsonEffect = (p.json as { effect?: unknown } | null)?.effect;
    if (jsonEffect !== p.effect) features.push(`effect ${String(p.effect)} does not match the policy's JSON (${String(jsonEffect)})`);
    if (seen.has(p.id)) features.push('duplicate policy id');
    seen.add(p.id);
    for (const feature of new Set(features)) unsupported.push({ policyId: p.id, feature });
    const entry: Entry = { id: p.id, forbid: p.effect === 'forbid', index, evaluate: c.evaluate, principalType: c.principalType, resourceType: c.resourceType };
    entries.push(entry);
    actions.set(entry, c.action);
  }
  if (unsupported.length > 0) return { ok: false, unsupported };
  return { ok: true, authorizer: new IndexedAuthorizer(entries, actions) };
}

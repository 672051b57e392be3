/**
 * Test support: runs the same policies and request through cedar-wasm (the reference) and through the compiled
 * path, so that unit tests can assert every semantic claim against the reference engine. Entities and context
 * are written in Cedar's schema-less JSON forms (`__entity`, `__extn`), converted here with `valueFromJson`
 * (the production path uses the schema-directed converter instead).
 */
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { compileAuthorizer, type CompilablePolicy, type CompiledAuthorizationRequest } from './compiled-authorizer.ts';
import { UnsupportedValue, valueFromJson } from './compile-expression.ts';
import { ExtensionError } from './extensions.ts';
import { CedarRecord, EntityUid, type CedarValue, type EntityData, type EntityLookup } from './value.ts';

/** An entity uid in Cedar's JSON form. */
export interface UidJson {
  type: string;
  id: string;
}

/** An entity in Cedar's JSON entity format (schema-less: entity references as `__entity`). */
export interface EntityJsonInput {
  uid: UidJson;
  attrs?: Record<string, unknown>;
  parents?: UidJson[];
  tags?: Record<string, unknown>;
}

/** A request for {@link decideBoth}; defaults: `User::"alice"`, `Action::"view"`, `Doc::"d"`, `{}`, no entities. */
export interface ReferenceRequest {
  principal?: UidJson;
  action?: UidJson;
  resource?: UidJson;
  context?: Record<string, unknown>;
  entities?: EntityJsonInput[];
}

/** A response with reasons and errors sorted, for comparing the engines. */
export interface NormalizedResponse {
  decision: 'allow' | 'deny';
  reason: string[];
  errors: Array<{ policyId: string; message: string }>;
}

// Node 20's V8 aborts the process (SIGTRAP, "unreachable code" in Deoptimizer::DoComputeBuiltinContinuation)
// when an optimised caller of a cedar-wasm export is lazily deoptimised during the call — seen calling
// policyToJson in a loop over thousands of policies. Not inlining JS→Wasm calls avoids that frame kind.
setFlagsFromString('--no-turbo-inline-js-wasm-calls');

function convert(x: unknown): CedarValue {
  const v = valueFromJson(x);
  if (v instanceof ExtensionError) throw new TypeError(`test data: ${v.message}`);
  if (v instanceof UnsupportedValue) throw new TypeError(`test data: ${v.unsupported}`);
  return v;
}

/** Builds an entity lookup from Cedar JSON entities, computing the transitive ancestors as Cedar does. */
export function lookupFromJson(entities: readonly EntityJsonInput[]): EntityLookup {
  const parents = new Map<string, string[]>();
  for (const e of entities) parents.set(new EntityUid(e.uid.type, e.uid.id).key, (e.parents ?? []).map((p) => new EntityUid(p.type, p.id).key));
  const closure = (key: string): Set<string> => {
    const out = new Set<string>();
    const stack = [...(parents.get(key) ?? [])];
    while (stack.length > 0) {
      const k = stack.pop() as string;
      if (out.has(k)) continue;
      out.add(k);
      stack.push(...(parents.get(k) ?? []));
    }
    return out;
  };
  const map = new Map<string, EntityData>();
  for (const e of entities) {
    const uid = new EntityUid(e.uid.type, e.uid.id);
    map.set(uid.key, {
      uid,
      attrs: new Map(Object.entries(e.attrs ?? {}).map(([k, v]) => [k, convert(v)])),
      ancestors: closure(uid.key),
      tags: new Map(Object.entries(e.tags ?? {}).map(([k, v]) => [k, convert(v)])),
    });
  }
  return map;
}

/** Sorts reasons and errors, for comparing the engines. */
export function normalizeResponse(r: { decision: 'allow' | 'deny'; reason: string[]; errors: Array<{ policyId: string; message: string }> }): NormalizedResponse {
  return {
    decision: r.decision,
    reason: [...r.reason].sort(),
    errors: [...r.errors].sort((a, b) => (a.policyId < b.policyId ? -1 : a.policyId > b.policyId ? 1 : 0)),
  };
}

/**
 * Decides with cedar-wasm, no schema (so evaluation errors surface as Cedar reports them). Throws when the
 * engine refuses the policies or the request.
 */
export function decideReference(policies: Record<string, string>, req: ReferenceRequest = {}): NormalizedResponse {
  const answer = cedar.isAuthorized({
    principal: req.principal ?? { type: 'User', id: 'alice' },
    action: req.action ?? { type: 'Action', id: 'view' },
    resource: req.resource ?? { type: 'Doc', id: 'd' },
    context: (req.context ?? {}) as never,
    policies: { staticPolicies: policies },
    entities: (req.entities ?? []).map((e) => ({ uid: e.uid, attrs: e.attrs ?? {}, parents: e.parents ?? [], ...(e.tags ? { tags: e.tags } : {}) })) as never,
  });
  if (answer.type === 'failure') throw new TypeError(`cedar-wasm refused the call: ${answer.errors.map((e) => e.message).join('; ')}`);
  return normalizeResponse({
    decision: answer.response.decision,
    reason: answer.response.diagnostics.reason,
    errors: answer.response.diagnostics.errors.map((e) => ({ policyId: e.policyId, message: e.error.message })),
  });
}

/** Compiles Cedar policy texts (through `policyToJson`), or returns the unsupported features. */
export function compileTexts(policies: Record<string, string>): ReturnType<typeof compileAuthorizer> {
  // A plain loop: calling into cedar-wasm from an optimised Array.prototype.map callback aborted Node 20's V8
  // (a lazy deoptimisation through the builtin's continuation frame) on large sets.
  const list: CompilablePolicy[] = [];
  for (const [id, text] of Object.entries(policies)) {
    const json = cedar.policyToJson(text);
    if (json.type === 'failure') throw new TypeError(`policyToJson refused ${id}: ${json.errors.map((e) => e.message).join('; ')}`);
    list.push({ id, effect: json.json.effect, json: json.json });
  }
  return compileAuthorizer(list);
}

/** Converts a test request to compiled-path values (defaults as {@link ReferenceRequest} says). */
export function toCompiledRequest(req: ReferenceRequest = {}): CompiledAuthorizationRequest {
  const uid = (u: UidJson | undefined, type: string, id: string) => new EntityUid(u?.type ?? type, u?.id ?? id);
  const context = convert(req.context ?? {});
  if (!(context instanceof CedarRecord)) throw new TypeError('test data: context must be a record');
  return {
    principal: uid(req.principal, 'User', 'alice'),
    action: uid(req.action, 'Action', 'view'),
    resource: uid(req.resource, 'Doc', 'd'),
    context,
    entities: lookupFromJson(req.entities ?? []),
  };
}

/** Decides with the compiled path. Throws when the set is not supported. */
export function decideCompiled(policies: Record<string, string>, req: ReferenceRequest = {}): NormalizedResponse {
  const compiled = compileTexts(policies);
  if (!compiled.ok) throw new TypeError(`unsupported: ${JSON.stringify(compiled.unsupported)}`);
  return normalizeResponse(compiled.authorizer.isAuthorized(toCompiledRequest(req)));
}

/** Decides with both engines. */
export function decideBoth(policies: Record<string, string>, req: ReferenceRequest = {}): { reference: NormalizedResponse; compiled: NormalizedResponse } {
  return { reference: decideReference(policies, req), compiled: decideCompiled(policies, req) };
}

/** What a one-policy condition yields: `true` (allow), `false` (deny), or Cedar's error message. */
export type Outcome = boolean | { error: string };

function outcome(r: NormalizedResponse): Outcome {
  const e = r.errors[0];
  return e ? { error: e.message } : r.decision === 'allow';
}

/**
 * Evaluates `permit(principal, action, resource) when { <condition> };` with both engines.
 *
 * @example evaluateBoth('1 + 1 == 2') // { reference: true, compiled: true }
 */
export function evaluateBoth(condition: string, req: ReferenceRequest = {}): { reference: Outcome; compiled: Outcome } {
  const policies = { p: `permit(principal, action, resource) when { ${condition} };` };
  const { reference, compiled } = decideBoth(policies, req);
  return { reference: outcome(reference), compiled: outcome(compiled) };
}

/** One table row: a condition and what both engines must make of it (`true`, `false`, or an error matching). */
export type Case = readonly [condition: string, expected: boolean | RegExp];

/**
 * Asserts, for each case, that the compiled path gives exactly the reference engine's outcome (error
 * messages included) and that this outcome is the expected one.
 */
export function assertBoth(cases: readonly Case[], req: ReferenceRequest = {}): void {
  for (const [condition, expected] of cases) {
    const { reference, compiled } = evaluateBoth(condition, req);
    assert.deepEqual(compiled, reference, `compiled path differs from cedar-wasm on: ${condition}`);
    if (expected instanceof RegExp) {
      assert.ok(typeof reference === 'object' && expected.test(reference.error), `${condition}: expected an error matching ${expected}, cedar-wasm said ${JSON.stringify(reference)}`);
    } else {
      assert.equal(reference, expected, `${condition}: cedar-wasm said ${JSON.stringify(reference)}`);
    }
  }
}

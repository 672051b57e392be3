/**
 * The harness's own port onto a decision engine, so that it does not depend on how the compiled evaluator
 * or the policy engine happen to be wired today, and the reference adapters over cedar-wasm.
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { AuthorizationAnswer } from '@cedar-policy/cedar-wasm/nodejs';

/** An entity reference in Cedar JSON. */
export interface Uid {
  type: string;
  id: string;
}

/** One request, entities included, in Cedar's JSON formats. */
export interface DrtRequest {
  principal: Uid;
  action: Uid;
  resource: Uid;
  context: Record<string, unknown>;
  /** Cedar JSON entities (with a schema, short forms for entity references and extension values occur). */
  entities: unknown[];
}

/** What an engine answered: a decision, or a refusal of the request, its entities or its context. */
export type DrtAnswer =
  | { kind: 'decision'; decision: 'allow' | 'deny'; determining: string[]; erroring: string[] }
  | { kind: 'refused'; message: string };

/** A policy set the engine could not take, as a whole (the compiled path then falls back to the reference). */
export interface Unsupported {
  unsupported: string;
}

/**
 * A decision engine as the differential harness sees it. `schemaText` undefined means the dynamic mode:
 * no schema, no validation, entities and context in explicit JSON (`__entity`, `__extn`).
 */
export interface DecisionEngine<P = unknown> {
  name: string;
  prepare(schemaText: string | undefined, policies: Record<string, string>): P | Unsupported;
  decide(prepared: P, request: DrtRequest): DrtAnswer;
}

/** True when `prepare` declined the set. */
export function isUnsupported(p: unknown): p is Unsupported {
  return typeof p === 'object' && p !== null && typeof (p as Unsupported).unsupported === 'string';
}

function toAnswer(answer: AuthorizationAnswer): DrtAnswer {
  if (answer.type === 'failure') return { kind: 'refused', message: answer.errors.map((e) => e.message).join('; ') };
  const { decision, diagnostics } = answer.response;
  return {
    kind: 'decision',
    decision,
    determining: [...new Set(diagnostics.reason)].sort(),
    erroring: [...new Set(diagnostics.errors.map((e) => e.policyId))].sort(),
  };
}

function guarded(run: () => AuthorizationAnswer): DrtAnswer {
  try {
    return toAnswer(run());
  } catch (err) {
    return { kind: 'refused', message: `engine threw: ${err instanceof Error ? err.message : String(err)}` };
  }
}

interface TextSet {
  schemaText: string | undefined;
  policies: Record<string, string>;
}

/** cedar-wasm `isAuthorized`: schema and policies parsed on every call; `validateRequest` with a schema. */
export const referenceEngine: DecisionEngine<TextSet> = {
  name: 'reference',
  prepare: (schemaText, policies) => ({ schemaText, policies }),
  decide: (p, req) =>
    guarded(() =>
      cedar.isAuthorized({
        principal: req.principal,
        action: req.action,
        resource: req.resource,
        context: req.context as never,
        ...(p.schemaText !== undefined ? { schema: p.schemaText, validateRequest: true } : {}),
        policies: { staticPolicies: p.policies },
        entities: req.entities as never,
      }),
    ),
};

let statefulCounter = 0;
const STATEFUL_SLOTS = 4;

/**
 * cedar-wasm `preparseSchema` + `preparsePolicySet` + `statefulIsAuthorized`: the call path `PolicyEngine`
 * uses. Slots rotate among a few names so that a long run does not grow the engine's cache; a prepared set
 * stays valid until `STATEFUL_SLOTS` later sets have been prepared.
 */
export const statefulReferenceEngine: DecisionEngine<{ slot: string; schema: boolean }> = {
  name: 'reference-stateful',
  prepare: (schemaText, policies) => {
    const slot = `mandate-drt-${statefulCounter++ % STATEFUL_SLOTS}`;
    if (schemaText !== undefined) {
      const s = cedar.preparseSchema(slot, schemaText);
      if (s.type === 'failure') return { unsupported: `schema: ${s.errors.map((e) => e.message).join('; ')}` };
    }
    const p = cedar.preparsePolicySet(slot, { staticPolicies: policies });
    if (p.type === 'failure') return { unsupported: `policies: ${p.errors.map((e) => e.message).join('; ')}` };
    return { slot, schema: schemaText !== undefined };
  },
  decide: (p, req) =>
    guarded(() =>
      cedar.statefulIsAuthorized({
        principal: req.principal,
        action: req.action,
        resource: req.resource,
        context: req.context as never,
        ...(p.schema ? { preparsedSchemaName: p.slot, validateRequest: true } : {}),
        preparsedPolicySetId: p.slot,
        entities: req.entities as never,
      }),
    ),
};

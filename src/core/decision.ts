/**
 * The decision value: what the policy decision point returns. A decision is a value, never an exception
 * (STYLE.md #9); any evaluation error means deny.
 */
import { z } from 'zod';

/** A reference to a Cedar entity: its type (e.g. `User`, `Agent`, `Tool`) and id. */
export const EntityRefV1 = z.object({ type: z.string().min(1), id: z.string() }).strict();
export type EntityRef = z.infer<typeof EntityRefV1>;

/** Renders an entity reference as Cedar writes it: `Agent::"triage-bot"`. */
export function formatEntityRef(ref: EntityRef): string {
  return `${ref.type}::${JSON.stringify(ref.id)}`;
}

/** The outcome. `approval_required` means a permit matched that needs a human's approval (`@approval("required")`). */
export const DecisionOutcomeV1 = z.enum(['allow', 'deny', 'approval_required']);
export type DecisionOutcome = z.infer<typeof DecisionOutcomeV1>;

/** A policy that determined (or errored in) the decision for one principal of the chain. */
export const PolicyRefV1 = z.object({
  id: z.string(),
  effect: z.enum(['permit', 'forbid']),
  /** Where the policy lives: `file.cedar:line`. */
  source: z.string().optional(),
});
export type PolicyRef = z.infer<typeof PolicyRefV1>;

/** The decision for one principal of the delegation chain. */
export const PrincipalDecisionV1 = z.object({
  principal: EntityRefV1,
  decision: z.enum(['allow', 'deny']),
  /** Whether a determining permit requires approval. */
  approvalRequired: z.boolean(),
  determining: z.array(PolicyRefV1),
  errors: z.array(z.object({ policyId: z.string(), message: z.string() })),
});
export type PrincipalDecision = z.infer<typeof PrincipalDecisionV1>;

/** The decision value. */
export const DecisionV1 = z.object({
  decision: DecisionOutcomeV1,
  decisionId: z.string(),
  /** Content hash of the policy set that decided. */
  policySetVersion: z.string(),
  /** One entry per principal evaluated: the user, then each actor, in chain order. */
  principals: z.array(PrincipalDecisionV1),
  /** Client-safe reasons, in order. */
  reasons: z.array(z.string()),
  /** Evaluation errors (any error denies). */
  errors: z.array(z.object({ principal: z.string(), policyId: z.string(), message: z.string() })),
  /** Evaluation time in microseconds. */
  durationMicros: z.number(),
});
export type Decision = z.infer<typeof DecisionV1>;

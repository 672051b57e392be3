/**
 * Zod schemas for authorization requests written by people: in test files and in `mandate policy eval
 * --request`. Entity references may be written `{ type, id }` or as Cedar writes them, `User::"alice"`.
 * The engine checks the rest (types, actions, context) against the policy schema.
 */
import { z } from 'zod';
import type { EntityRef } from '../core/decision.ts';
import { parseEntityRef } from './parse-entity-ref.ts';

/** An entity reference: `{ type, id }` or `Type::"id"`. */
export const EntityRefInput = z.union([
  z.object({ type: z.string().min(1), id: z.string() }).strict(),
  z.string().transform((s, ctx): EntityRef => {
    try {
      return parseEntityRef(s);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) });
      return z.NEVER;
    }
  }),
]);

/** An entity in Cedar's JSON entity format; `attrs` and `parents` default to empty. */
export const EntityJsonInput = z
  .object({
    uid: EntityRefInput,
    attrs: z.record(z.string(), z.unknown()).optional(),
    parents: z.array(EntityRefInput).optional(),
    tags: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

/** An `AuthorizationRequest` as written by a person; unknown keys are refused so that typos surface. */
export const AuthorizationRequestInput = z
  .object({
    principal: EntityRefInput,
    action: z.string().min(1),
    resource: EntityRefInput,
    context: z.record(z.string(), z.unknown()).optional(),
    delegation: z.object({ actors: z.array(EntityRefInput) }).strict().optional(),
    entities: z.array(EntityJsonInput).optional(),
  })
  .strict();

/**
 * Zod schemas for authorization requests written by people: in test files and in `mandate policy eval
 * --request`. Entity references may be written `{ type, id }` or as Cedar writes them, `User::"alice"`.
 * The engine checks the rest (types, actions, context) against the policy schema.
 */
import { z } from 'zod';
import type { EntityRef } from '../core/decision.ts';
import { parseEntityRef } from './parse-entity-ref.ts';

/** An entity reference: `{ type, id }` or `Type::"id"`. One schema (not a union) so that errors say what is wrong. */
export const EntityRefInput = z.unknown().transform((value, ctx): EntityRef => {
  if (typeof value === 'string') {
    try {
      return parseEntityRef(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) });
      return z.NEVER;
    }
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const { type, id, ...rest } = value as Record<string, unknown>;
    if (typeof type === 'string' && type.length > 0 && typeof id === 'string' && Object.keys(rest).length === 0) return { type, id };
  }
  ctx.addIssue({ code: 'custom', message: 'expected an entity reference: { type: User, id: alice } or User::"alice"' });
  return z.NEVER;
});

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

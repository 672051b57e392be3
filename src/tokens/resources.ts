/**
 * Protected resources (RFC 8707 resource indicators) that mandates are issued for, and what their scopes mean
 * in Cedar terms. A scope is granted only if policy allows EVERY (action, resource) pair it stands for, for the
 * user AND for each actor (one Cedar request per principal of the chain: DESIGN.md "Delegation is evaluated per
 * principal") — scopes are computed, never taken from the request.
 *
 * ```yaml
 * resources:
 *   - uri: https://crm.example/mcp
 *     name: CRM MCP server
 *     scopes:
 *       crm.read:
 *         - { action: call, resource: { type: Tool, id: crm.search } }
 *         - { action: read, resource: { type: Dataset, id: crm-accounts } }
 * ```
 */
import { z } from 'zod';
import type { Decision, EntityRef } from '../core/decision.ts';
import { isMandateError, PolicyNotLoadedError } from '../core/errors.ts';
import type { AuthorizationRequest, DecisionPoint, EntityJson } from '../policy/types.ts';

const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/;

const EntityRefSchema = z.strictObject({ type: z.string().min(1).max(256), id: z.string().min(1).max(1024) });

/** One configured resource. */
export const ResourceSchema = z.strictObject({
  uri: z.url({ error: 'an absolute URL (the RFC 8707 resource indicator)' }).max(2048),
  name: z.string().min(1).max(200).optional(),
  scopes: z
    .record(
      z.string().regex(SCOPE_TOKEN, { error: 'a scope token (printable ASCII without space, " or \\)' }),
      z.array(z.strictObject({ action: z.string().min(1).max(256), resource: EntityRefSchema }), { error: 'a list of { action, resource }' }).min(1).max(64),
    )
    .refine((s) => Object.keys(s).length > 0, { error: 'at least one scope' }),
});

/** A validated resource. */
export type ResourceConfig = z.output<typeof ResourceSchema>;

/** The `resources` configuration section: no URI twice. */
export const ResourcesSchema = z
  .array(ResourceSchema, { error: 'a list of resources' })
  .max(1000)
  .refine((list) => new Set(list.map((r) => r.uri)).size === list.length, { error: 'each resource uri may appear only once' })
  .default([]);

/** What one requested scope came to. */
export interface ScopeVerdict {
  scope: string;
  granted: boolean;
  /** Why not, client-safe (e.g. `not defined for this resource`, `denied for Agent::"x"`). */
  reason?: string;
  /** The decisions taken (one per action/resource pair), for the audit event. */
  decisionIds: string[];
}

/** The principals and data a scope computation decides for. */
export interface ScopeSubject {
  /** The principal on whose authority the mandate acts (the user; the client itself for client_credentials). */
  principal: EntityRef;
  /** Actors, first delegate first (the order AuthorizationRequest expects). */
  actors: EntityRef[];
  /** Entity data for principals the policy directory does not define (users from the IdP, registered agents). */
  entities: EntityJson[];
  context?: Record<string, unknown>;
}

function denial(d: Decision): string {
  const who = d.principals.find((p) => p.decision !== 'allow');
  return who === undefined ? 'denied by policy' : `denied for ${who.principal.type}::"${who.principal.id}"`;
}

/**
 * Decides, for each requested scope, whether policy allows every pair it stands for, for every principal of the
 * chain. `approval_required` counts as allowed here (the approval is asked at the call, which the gateway
 * checks again); an input error on one scope refuses that scope only. Throws `PolicyNotLoadedError` (and other
 * server-side failures) so that the exchange fails closed as a whole.
 */
export function decideScopes(engine: DecisionPoint, resource: ResourceConfig, requested: readonly string[], who: ScopeSubject): ScopeVerdict[] {
  return requested.map((scope) => {
    const pairs = Object.hasOwn(resource.scopes, scope) ? resource.scopes[scope] : undefined;
    if (pairs === undefined) return { scope, granted: false, reason: 'not defined for this resource', decisionIds: [] };
    const decisionIds: string[] = [];
    for (const pair of pairs) {
      const request: AuthorizationRequest = {
        principal: who.principal,
        action: pair.action,
        resource: pair.resource,
        ...(who.context === undefined ? {} : { context: who.context }),
        ...(who.actors.length > 0 ? { delegation: { actors: who.actors } } : {}),
        entities: who.entities,
      };
      let decision: Decision;
      try {
        decision = engine.decide(request);
      } catch (err) {
        if (err instanceof PolicyNotLoadedError || !isMandateError(err) || err.status >= 500) throw err;
        return { scope, granted: false, reason: `policy input error: ${err.description}`, decisionIds };
      }
      decisionIds.push(decision.decisionId);
      if (decision.decision === 'deny') return { scope, granted: false, reason: denial(decision), decisionIds };
    }
    return { scope, granted: true, decisionIds };
  });
}

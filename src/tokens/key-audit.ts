/**
 * The audit event of a signing key change (created, retiring, retired), one format whoever made the change: a
 * node at start or on its schedule, or `mandate keys rotate`. Public facts only, never key material.
 */
import { createAuditEvent, type NewAuditEventV1 } from '../audit/audit-event.ts';
import type { Clock } from '../core/ports.ts';
import type { SigningKeyChange } from './signing-keys.ts';

/**
 * Builds the `admin` event of a key change: `data.operation` is `keys.<action>`, the resource `signing-key:<kid>`.
 * @param origin who caused it (`actor`, e.g. `cli:alice`; default the change's `by`, else `mandate`) and from where (`source`, e.g. `cli`)
 */
export function signingKeyEvent(change: SigningKeyChange, clock: Clock, origin: { actor?: string; source?: string } = {}): NewAuditEventV1 {
  return createAuditEvent(
    {
      type: 'admin',
      outcome: 'success',
      actor: origin.actor ?? change.by ?? 'mandate',
      resource: `signing-key:${change.kid}`,
      data: {
        operation: `keys.${change.action}`,
        kid: change.kid,
        alg: change.alg,
        reason: change.reason,
        ...(change.retireAt === undefined ? {} : { retireAt: new Date(change.retireAt).toISOString() }),
        ...(origin.source === undefined ? {} : { source: origin.source }),
      },
    },
    { clock },
  );
}

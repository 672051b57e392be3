/**
 * The key manager as the `mandate keys` and `mandate token inspect` commands use it: over the configured store's
 * signing keys, with the node's overlap rules, and every change audited (an `admin` event committed with the
 * key's row).
 *
 * Reading the public keys needs no key-encryption key: the key manager only decrypts to sign, so the read-only
 * commands give it a stand-in KEK that cannot encrypt or decrypt anything (any attempt is a programming mistake
 * and fails, it never signs).
 */
import { createAuditEvent, type NewAuditEventV1 } from '../audit/audit-event.ts';
import type { MandateConfig } from '../config/index.ts';
import { systemClock } from '../core/ports.ts';
import type { Store } from '../store/store.ts';
import type { Kek } from '../tokens/key-encryption.ts';
import { createKeyManager, overlapForTokenLifetime, type KeyManager, type SigningKeyChange } from '../tokens/signing-keys.ts';

/** Clock tolerance of verifiers added to the overlap, in seconds (the token service's default). */
export const VERIFIER_CLOCK_TOLERANCE_SECONDS = 5;

/** Not a loaded KEK: encryptPrivateJwk/decryptPrivateJwk refuse it (TypeError), so nothing can be signed with it. */
const PUBLIC_ONLY_KEK: Kek = Object.freeze({ fingerprint: 'kek-not-loaded', source: 'none (public keys only)' });

/**
 * The audit event of one signing key change, shaped as the token node writes its own (src/tokens/token-node.ts):
 * type `admin`, resource `signing-key:<kid>`, `data.operation` = `keys.<action>`; public facts only, never key
 * material, and `source: cli` so that a change made from the command line is told from a node's.
 * @param actor who caused it, e.g. `cli:alice`
 */
export function keyChangeEvent(change: SigningKeyChange, actor: string): NewAuditEventV1 {
  return createAuditEvent(
    {
      type: 'admin',
      outcome: 'success',
      actor,
      resource: `signing-key:${change.kid}`,
      data: {
        operation: `keys.${change.action}`,
        kid: change.kid,
        alg: change.alg,
        reason: change.reason,
        ...(change.retireAt === undefined ? {} : { retireAt: new Date(change.retireAt).toISOString() }),
        source: 'cli',
      },
    },
    { clock: systemClock },
  );
}

/**
 * A key manager over `store.signingKeys` with the configuration's algorithm and overlap. Without `kek` it can
 * list keys and publish the JWKS, never sign or rotate.
 */
export function cliKeyManager(config: MandateConfig, store: Store, actor: string, kek?: Kek): KeyManager {
  return createKeyManager<NewAuditEventV1>({
    store: store.signingKeys,
    kek: kek ?? PUBLIC_ONLY_KEK,
    clock: systemClock,
    alg: config.tokens.signingAlgorithm,
    overlapMs: overlapForTokenLifetime(config.tokens.maxLifetimeSeconds, VERIFIER_CLOCK_TOLERANCE_SECONDS),
    auditEvent: (change) => keyChangeEvent(change, actor),
  });
}

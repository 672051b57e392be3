/**
 * The key manager as the `mandate keys` and `mandate token inspect` commands use it: over the configured store's
 * signing keys, with the node's overlap rules, and every change audited (an `admin` event committed with the
 * key's row).
 *
 * Reading the public keys needs no key-encryption key: the key manager only decrypts to sign, so the read-only
 * commands give it a stand-in KEK that cannot encrypt or decrypt anything (any attempt is a programming mistake
 * and fails, it never signs).
 */
import type { NewAuditEventV1 } from '../audit/audit-event.ts';
import { signingKeyEvent } from '../tokens/key-audit.ts';
import { MANDATE_CLOCK_TOLERANCE_SECONDS } from '../tokens/mandate-claims.ts';
import type { MandateConfig } from '../config/index.ts';
import { systemClock } from '../core/ports.ts';
import type { Store } from '../store/store.ts';
import type { Kek } from '../tokens/key-encryption.ts';
import { createKeyManager, overlapForTokenLifetime, type KeyManager, type SigningKeyChange } from '../tokens/signing-keys.ts';

/** Clock tolerance of verifiers added to the overlap, in seconds (the token service's). */
export const VERIFIER_CLOCK_TOLERANCE_SECONDS = MANDATE_CLOCK_TOLERANCE_SECONDS;

/** Not a loaded KEK: encryptPrivateJwk/decryptPrivateJwk refuse it (TypeError), so nothing can be signed with it. */
const PUBLIC_ONLY_KEK: Kek = Object.freeze({ fingerprint: 'kek-not-loaded', source: 'none (public keys only)' });

/**
 * The audit event of one signing key change made from the command line (`source: cli`).
 * @param actor who caused it, e.g. `cli:alice`
 */
export function keyChangeEvent(change: SigningKeyChange, actor: string): NewAuditEventV1 {
  return signingKeyEvent(change, systemClock, { actor, source: 'cli' });
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

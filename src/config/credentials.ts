/**
 * Hashed pre-shared API credentials for AuthZEN callers: the configuration holds only `sha256:<hex>` of each
 * secret, never the secret.
 *
 * Why plain SHA-256 and not a password hash (scrypt, Argon2): these secrets are generated API keys with at
 * least 256 bits of randomness ({@link generateCredentialSecret}), not human-chosen passwords. Guessing one is
 * infeasible however fast the hash is, so a slow KDF would add nothing but per-request CPU cost on a hot path.
 * That argument fails for low-entropy secrets: never use this for passwords.
 *
 * This is interim: pre-shared credentials give way to authenticated service principals (`private_key_jwt`,
 * SPIFFE) in a later issue.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const HASH_PATTERN = /^sha256:([0-9a-fA-F]{64})$/;

/** Prefix of generated secrets, so that secret scanners and people recognise a leaked one. */
export const CREDENTIAL_SECRET_PREFIX = 'mandate_';

/**
 * Returns `sha256:<hex>` of a secret, the form `authzen.credentials[].hash` takes.
 * @example hashCredential('mandate_…') // 'sha256:9f86d0…'
 */
export function hashCredential(secret: string): string {
  if (typeof secret !== 'string' || secret === '') throw new TypeError('hashCredential: secret must be a non-empty string');
  return `sha256:${createHash('sha256').update(secret, 'utf8').digest('hex')}`;
}

/**
 * Tells whether `secret` matches `hash` (`sha256:<hex>`), comparing digests in constant time. A malformed hash
 * never matches (fail closed).
 */
export function verifyCredential(secret: string, hash: string): boolean {
  if (typeof secret !== 'string' || secret === '' || typeof hash !== 'string') return false;
  const m = HASH_PATTERN.exec(hash);
  if (m === null || m[1] === undefined) return false;
  const expected = Buffer.from(m[1], 'hex');
  const actual = createHash('sha256').update(secret, 'utf8').digest();
  return timingSafeEqual(actual, expected);
}

/**
 * Returns the id of the credential whose hash `secret` matches, or undefined. It checks every entry, so the time
 * taken does not reveal which entry (if any) matched.
 */
export function matchCredential(
  secret: string,
  credentials: readonly { readonly id: string; readonly hash: string }[],
): string | undefined {
  let found: string | undefined;
  for (const c of credentials) {
    if (verifyCredential(secret, c.hash) && found === undefined) found = c.id;
  }
  return found;
}

/** Generates a new random API secret (256 bits, base64url, prefixed); show it once, store only its hash. */
export function generateCredentialSecret(): string {
  return `${CREDENTIAL_SECRET_PREFIX}${randomBytes(32).toString('base64url')}`;
}

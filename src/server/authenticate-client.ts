/**
 * Authenticates callers of the decision and admin APIs by a pre-shared bearer credential, checked against the
 * hashes in `authzen.credentials` (src/config/credentials.ts).
 *
 * INTERIM: pre-shared credentials give way to authenticated service principals (`private_key_jwt`, SPIFFE
 * JWT-SVIDs, mTLS) in the next issue; this module is the one place to replace. Until then a credential is a
 * long-lived bearer secret: give each caller its own, with the fewest scopes it needs.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1 (Authorization Request Header Field)
 */
import { ForbiddenError, UnauthenticatedError } from '../core/errors.ts';
import { verifyCredential } from '../config/credentials.ts';
import { CREDENTIAL_SCOPES } from '../config/config-schema.ts';

/** Scopes a credential may hold. `evaluate`: the AuthZEN API; `policy:read` / `policy:reload`: the policy admin API. */
export const CLIENT_SCOPES = CREDENTIAL_SCOPES;
/** One of the client scopes. */
export type ClientScope = (typeof CLIENT_SCOPES)[number];

/** Scopes a credential entry holds when its configuration lists none. */
export const DEFAULT_SCOPES: readonly string[] = ['evaluate'];

/** A configured credential: id, hash of the secret, and optionally its scopes. */
export interface CredentialEntry {
  readonly id: string;
  readonly hash: string;
  readonly scopes?: readonly string[];
}

/** An authenticated caller. */
export interface AuthenticatedClient {
  readonly id: string;
  readonly scopes: readonly string[];
}

// RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * Checks an `Authorization` header against the configured credentials. Every entry is checked, so the time
 * taken does not tell which entry matched.
 * Throws `UnauthenticatedError` (401, with a `Bearer realm="mandate"` challenge) when the header is missing,
 * malformed or matches no credential.
 * @param header - the `Authorization` header value, if any
 * @param credentials - the configured entries
 */
export function authenticateBearer(header: string | undefined, credentials: readonly CredentialEntry[]): AuthenticatedClient {
  if (header === undefined || header === '') {
    throw new UnauthenticatedError('authentication is required: send Authorization: Bearer <credential>', { credentialMissing: true });
  }
  const secret = BEARER.exec(header)?.[1];
  if (secret === undefined) {
    throw new UnauthenticatedError('the Authorization header must be "Bearer <credential>"', { detail: 'malformed Authorization header' });
  }
  let found: CredentialEntry | undefined;
  for (const c of credentials) {
    if (verifyCredential(secret, c.hash) && found === undefined) found = c;
  }
  if (found === undefined) {
    // The detail never includes the presented secret, not even a prefix.
    throw new UnauthenticatedError('the credential is not valid', { detail: `no configured credential matches (${credentials.length} configured)` });
  }
  return { id: found.id, scopes: found.scopes ?? DEFAULT_SCOPES };
}

/**
 * Requires one of `scopes` on an authenticated client; throws `ForbiddenError` (403) naming what is missing.
 * @param client - the authenticated caller
 * @param scopes - any one of these suffices
 */
export function requireScope(client: AuthenticatedClient, scopes: readonly string[]): void {
  if (scopes.some((s) => client.scopes.includes(s))) return;
  throw new ForbiddenError(`this credential may not call this endpoint; it needs the scope ${scopes.map((s) => `"${s}"`).join(' or ')}`);
}

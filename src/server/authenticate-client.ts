/**
 * Authenticates callers of the decision and admin APIs. Two ways:
 * - a mandate issued to a registered service (`client_credentials` with `private_key_jwt` or a JWT-SVID, audience
 *   = Mandate's issuer identifier, scopes granted by the service's registration), verified by the token service
 *   (src/tokens/token-node.ts `authenticateApiCaller`) — the way to use;
 * - DEPRECATED: a pre-shared bearer credential, checked against the hashes in `authzen.credentials`
 *   (src/config/credentials.ts). A long-lived bearer secret: a warning is logged at every start while any is
 *   configured. Kept so that existing deployments and the demo's curl lines keep working.
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

const BEARER_OR_DPOP = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * Whether an `Authorization` header carries a JWT (a mandate issued to a registered service, `Bearer` or `DPoP`)
 * rather than a pre-shared credential (which is never three dot-separated segments).
 */
export function isMandateAuthorization(header: string | undefined): boolean {
  if (header === undefined) return false;
  const m = BEARER_OR_DPOP.exec(header);
  if (m === null) return false;
  return m[1]?.toLowerCase() === 'dpop' || (m[2]?.split('.').length ?? 0) === 3;
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

/**
 * The identity capability's shared types and ports: what an authenticator returns, what it needs from the rest
 * of Mandate (keys, outbound fetches, a replay cache, the principal registry), and the shape of a registered
 * principal. Authenticators depend on these ports, never on the store or the server (DESIGN.md layout).
 */
import type { CryptoKey, JSONWebKeySet, JWSHeaderParameters, FlattenedJWSInput, JWTPayload, KeyObject } from 'jose';

/** A verification key as jose accepts it. */
export type VerificationKey = CryptoKey | KeyObject | Uint8Array;

/** Health of a key source, for `/readyz` and logs. */
export interface KeySourceStatus {
  /** Where the keys come from (a URL or a file path); never a key. */
  readonly source: string;
  /** `ok`: fresh keys; `stale`: the last refresh failed but cached keys are within their maximum age; `failed`: no usable keys. */
  readonly state: 'ok' | 'stale' | 'failed';
  /** Why, when not `ok` (client-safe: no key material). */
  readonly reason?: string;
  /** When the keys in use were fetched (epoch ms), if ever. */
  readonly fetchedAt?: number;
}

/**
 * Verification keys for JWS (a JWKS behind a cache, a static file, a SPIFFE bundle). `getKey` has the shape of
 * jose's `JWTVerifyGetKey`, so a source can be passed straight to `jwtVerify`. It rejects (fail closed) when no
 * key matches or when the keys are too old to trust.
 */
export interface KeySource {
  getKey(protectedHeader: JWSHeaderParameters, token: FlattenedJWSInput): Promise<VerificationKey>;
  status(): KeySourceStatus;
}

/** Limits for every outbound HTTP fetch Mandate makes (DESIGN.md "Outbound is guarded"). */
export interface OutboundPolicy {
  /** Whole-request timeout in milliseconds. */
  readonly timeoutMs: number;
  /** Largest response body accepted, in bytes. */
  readonly maxBytes: number;
  /** Allow targets that resolve to private, loopback or link-local addresses (off by default; tests turn it on). */
  readonly allowPrivateNetworks: boolean;
  /** Host names allowed even if they resolve to private addresses (e.g. an internal IdP). */
  readonly allowHosts: readonly string[];
  /** Allow plain `http:` URLs (off by default; loopback tests turn it on). */
  readonly allowHttp: boolean;
}

/** A guarded fetch of a JSON document; rejects with `OutboundFetchError` (see outbound.ts) on any violation. */
export type FetchJson = (url: string, options?: { accept?: string }) => Promise<{ json: unknown; headers: Headers }>;

/**
 * Remembers one-time identifiers (JWT `jti` of client assertions and DPoP proofs) until they expire, across
 * nodes when the store is shared. `use` resolves `true` the first time an id is seen within its namespace and
 * `false` for a replay; it rejects with `StoreUnavailableError` when it cannot tell, and callers fail closed.
 */
export interface ReplayCache {
  use(namespace: string, id: string, expiresAtMs: number): Promise<boolean>;
}

/** Kinds of principal. */
export type PrincipalKind = 'user' | 'agent' | 'service';

/** A registered agent's or service's status; only `active` principals authenticate. */
export type PrincipalStatus = 'active' | 'suspended' | 'quarantined' | 'retired';

/** How a registered principal proves itself. */
export type PrincipalCredential =
  /** A SPIFFE ID; the principal authenticates with a JWT-SVID (as client assertion) or an X.509-SVID over mTLS. */
  | { readonly type: 'spiffe'; readonly spiffeId: string }
  /** `private_key_jwt` (RFC 7523) with these public keys. */
  | { readonly type: 'jwks'; readonly jwks: JSONWebKeySet }
  /** `private_key_jwt` (RFC 7523) with keys fetched (guarded, cached) from this URL. */
  | { readonly type: 'jwks_uri'; readonly uri: string }
  /**
   * DISCOURAGED: a shared secret, stored as `sha256:<hex>` of a generated high-entropy secret. Accepted only when
   * `clientAuth.allowSharedSecrets` is on (`client_secret_basic` / `client_secret_post`), with a warning at every start.
   */
  | { readonly type: 'client_secret'; readonly hash: string };

/** A registered agent or service (the principal registry's record). */
export interface RegisteredPrincipal {
  /** Stable id; also the OAuth `client_id` of the principal. */
  readonly id: string;
  readonly kind: 'agent' | 'service';
  readonly name: string;
  /** The accountable person: a user id as the IdP names it (e.g. `alice@example.com`). */
  readonly owner: string;
  /** `chat`: a read-only assistant; `autonomous`: acts on its own within a workflow. Services have no mode. */
  readonly mode?: 'chat' | 'autonomous';
  readonly workflows: readonly string[];
  /** Resources (RFC 8707 resource indicators) it may ask mandates for. */
  readonly audiences: readonly string[];
  /**
   * Scopes of Mandate's own API (`evaluate`, `policy:read`, `policy:reload`, `principals:read`,
   * `principals:write`) granted to a service; it obtains them as a `client_credentials` mandate whose audience
   * is Mandate's issuer identifier. Always empty for agents.
   */
  readonly apiScopes: readonly string[];
  readonly credentials: readonly PrincipalCredential[];
  readonly status: PrincipalStatus;
  /** `required`: every mandate it gets is DPoP-bound; `optional`: plain bearer mandates allowed (stock MCP clients). */
  readonly dpop: 'required' | 'optional';
  /** Epoch ms. */
  readonly createdAt: number;
  readonly lastUsedAt?: number;
}

/** Looks up registered principals (the registry, read side). */
export interface PrincipalLookup {
  /** By id (= client_id); undefined if unknown. Rejects with `StoreUnavailableError` when it cannot tell. */
  byId(id: string): Promise<RegisteredPrincipal | undefined>;
  /** By SPIFFE ID; undefined if no principal holds it. */
  bySpiffeId(spiffeId: string): Promise<RegisteredPrincipal | undefined>;
}

/** A user authenticated by a token from a trusted OIDC issuer. */
export interface AuthenticatedUser {
  readonly kind: 'user';
  /** The issuer (exact `iss`). */
  readonly issuer: string;
  /** `sub` from that issuer; (issuer, subject) is the user's key. */
  readonly subject: string;
  /** Mandate roles (`admin`, `approver`, `auditor`) from the issuer's configured roles claim. */
  readonly roles: readonly string[];
  /** Token expiry (epoch seconds); a mandate never outlives it. */
  readonly expiresAt: number;
  /** Verified claims, for policy context; never logged or audited whole. */
  readonly claims: JWTPayload;
}

/** How a workload proved itself. */
export type ClientAuthMethod = 'private_key_jwt' | 'spiffe_jwt' | 'spiffe_x509' | 'client_secret';

/** A registered agent or service authenticated by one of its credentials. */
export interface AuthenticatedClient {
  readonly kind: 'agent' | 'service';
  readonly principal: RegisteredPrincipal;
  readonly method: ClientAuthMethod;
  /** Expiry of the credential presented (epoch seconds), when it has one (assertions, SVIDs). */
  readonly expiresAt?: number;
}

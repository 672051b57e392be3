/**
 * OAuth client authentication of registered agents and services at the token, introspection and revocation
 * endpoints: `private_key_jwt` (RFC 7523 §3 with the audience rules of draft-ietf-oauth-rfc7523bis), a SPIFFE
 * JWT-SVID as client assertion (draft-ietf-oauth-spiffe-client-auth, `jwt-spiffe`), and an X.509-SVID presented
 * over mTLS. Shared secrets are off unless a verifier for them is wired in.
 *
 * Every refusal is an `InvalidClientError` whose description says what to fix without echoing the assertion;
 * `detail` carries ids and reasons for logs. A replay cache or key source that cannot answer fails closed with
 * its own (5xx) error.
 *
 * @see RFC 6749 §2.3 and §5.2, RFC 7521 §4.2, RFC 7523 §3, draft-ietf-oauth-rfc7523bis, draft-ietf-oauth-spiffe-client-auth
 */
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import type { JWSHeaderParameters, JWTPayload } from 'jose';
import { InvalidClientError, isMandateError } from '../core/errors.ts';
import type { Clock } from '../core/ports.ts';
import { JWT_SVID_ALGORITHMS, SvidVerificationError, describeJoseFailure, isCompactJws, verifyJwtSvid, verifyX509Svid } from './spiffe.ts';
import type { PeerCertificateChain, SpiffeBundleSet } from './spiffe.ts';
import type {
  AuthenticatedClient,
  KeySource,
  PrincipalCredential,
  PrincipalLookup,
  RegisteredPrincipal,
  ReplayCache,
  VerificationKey,
} from './types.ts';
import { USER_TOKEN_ALGORITHMS } from './identity-config.ts';

/** `client_assertion_type` of `private_key_jwt`. @see RFC 7523 §2.2 */
export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** `client_assertion_type` of a JWT-SVID client assertion. @see draft-ietf-oauth-spiffe-client-auth */
export const JWT_SPIFFE_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-spiffe';

/** Asymmetric algorithms a client assertion may be signed with (never `none`, never HMAC). */
export const CLIENT_ASSERTION_ALGORITHMS = USER_TOKEN_ALGORITHMS;

/** A credential that carries `private_key_jwt` keys. */
export type KeyCredential = Extract<PrincipalCredential, { type: 'jwks' | 'jwks_uri' }>;

/** Options of {@link createClientAuthenticator}. */
export interface ClientAuthenticatorOptions {
  /** Mandate's issuer identifier: the audience a client assertion must name. */
  readonly issuer: string;
  /** The token endpoint URL: also accepted as audience (and nothing else). */
  readonly tokenEndpoint: string;
  readonly principals: PrincipalLookup;
  /** `jti`s of assertions (namespace `client_assertion`) until they expire. */
  readonly replay: ReplayCache;
  /** The key source of a principal's `jwks` / `jwks_uri` credential (cached by the caller; static or guarded remote). */
  readonly keySourceFor: (credential: KeyCredential, principal: RegisteredPrincipal) => KeySource;
  /** SPIFFE trust bundles; absent: the SPIFFE methods are refused. */
  readonly spiffe?: { readonly bundles: SpiffeBundleSet };
  readonly clock: Clock;
  /** Longest accepted assertion lifetime, `exp` minus `iat` (or now), in seconds (default 300). */
  readonly maxAssertionLifetimeSeconds?: number;
  /** Tolerated clock difference for `exp`/`nbf`/`iat`, in seconds (default 5). */
  readonly clockToleranceSeconds?: number;
  /** Allowed assertion algorithms, a subset of {@link CLIENT_ASSERTION_ALGORITHMS} (default: all of them). */
  readonly algorithms?: readonly string[];
  /**
   * Shared-secret authentication (`client_secret_basic` / `client_secret_post`). Off when absent: such requests
   * are refused with a message saying so. An operator who turns it on supplies the (constant-time) check.
   */
  readonly sharedSecrets?: { verify(principal: RegisteredPrincipal, secret: string): Promise<boolean> };
}

/** The client authentication parameters of a request body. */
export interface ClientAuthForm {
  readonly client_id?: string;
  readonly client_assertion_type?: string;
  readonly client_assertion?: string;
  readonly client_secret?: string;
}

/** What the transport knows about the client. */
export interface ClientAuthTransport {
  /** The raw `Authorization` header, if any (only `Basic` counts as client authentication). */
  readonly authorizationHeader?: string;
  /** The TLS peer's certificate chain, leaf first, when Mandate terminates TLS and the client sent one. */
  readonly peerCertificate?: PeerCertificateChain;
}

/** Authenticates the OAuth client of a request. */
export interface ClientAuthenticator {
  /** Resolves the authenticated principal, or rejects with `InvalidClientError` (or a 5xx error when a dependency cannot answer). */
  authenticate(form: ClientAuthForm, transport?: ClientAuthTransport): Promise<AuthenticatedClient>;
  /** The methods this authenticator accepts, for `token_endpoint_auth_methods_supported`. */
  readonly methods: readonly ('private_key_jwt' | 'client_secret_basic' | 'client_secret_post' | 'tls_client_auth')[];
}

const MAX_PARAM_LENGTH = 256;
const MAX_JTI_LENGTH = 256;
const KEY_CARRYING_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'] as const;
/** Explicit types that mark a JWT as a client assertion, or leave it untyped (rfc7523bis §4). */
const ACCEPTED_ASSERTION_TYPS = new Set(['jwt', 'client-authentication+jwt', 'application/client-authentication+jwt']);

function refuse(description: string, detail?: string, cause?: unknown): InvalidClientError {
  return new InvalidClientError(description, {
    ...(detail === undefined ? {} : { detail }),
    ...(cause === undefined ? {} : { cause }),
  });
}

/** A 5xx MandateError (store, key source unavailable) is not the client's fault: let it through to fail closed. */
function isServerSide(err: unknown): boolean {
  return isMandateError(err) && err.status >= 500;
}

function checkActive(principal: RegisteredPrincipal): void {
  if (principal.status !== 'active') {
    throw refuse(`this client is ${principal.status} and may not authenticate`, `principal ${principal.id} status ${principal.status}`);
  }
}

/** A form value must be absent or one string (RFC 6749 §3.2: parameters are not repeated). */
function param(form: ClientAuthForm, name: keyof ClientAuthForm): string | undefined {
  const v: unknown = form[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw refuse(`the "${name}" parameter must be sent once, as a string`);
  return v;
}

function describeMethods(list: readonly string[]): string {
  return list.join(' and ');
}

/**
 * Creates the client authenticator.
 * @example
 * const clients = createClientAuthenticator({ issuer, tokenEndpoint, principals, replay, keySourceFor, spiffe: { bundles }, clock });
 * const client = await clients.authenticate(body, { authorizationHeader: req.headers.authorization });
 */
export function createClientAuthenticator(options: ClientAuthenticatorOptions): ClientAuthenticator {
  const { issuer, tokenEndpoint, principals, replay, clock } = options;
  if (typeof issuer !== 'string' || issuer.length === 0) throw new TypeError('issuer is required');
  if (typeof tokenEndpoint !== 'string' || tokenEndpoint.length === 0) throw new TypeError('tokenEndpoint is required');
  const maxLifetime = options.maxAssertionLifetimeSeconds ?? 300;
  const tolerance = options.clockToleranceSeconds ?? 5;
  if (!(maxLifetime > 0 && maxLifetime <= 3600)) throw new TypeError('maxAssertionLifetimeSeconds must be in (0, 3600]');
  if (!(tolerance >= 0 && tolerance <= 300)) throw new TypeError('clockToleranceSeconds must be in [0, 300]');
  const algorithms = [...(options.algorithms ?? CLIENT_ASSERTION_ALGORITHMS)];
  for (const a of algorithms) {
    if (!(CLIENT_ASSERTION_ALGORITHMS as readonly string[]).includes(a)) throw new TypeError(`"${a}" is not an allowed client assertion algorithm`);
  }
  if (algorithms.length === 0) throw new TypeError('at least one client assertion algorithm is required');
  const svidAlgorithms = algorithms.filter((a) => (JWT_SVID_ALGORITHMS as readonly string[]).includes(a));
  const audiences = new Set([issuer, tokenEndpoint]);

  /** rfc7523bis: the audience is the issuer identifier (the token endpoint is tolerated), as the only value. */
  function checkAudience(aud: unknown, what: string): void {
    const list = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (list.length !== 1 || typeof list[0] !== 'string' || !audiences.has(list[0])) {
      throw refuse(`the ${what} "aud" must be this server's issuer identifier (${issuer}), as its only value`, `aud count ${list.length}`);
    }
  }

  /** `exp` not too far ahead and, with `iat`, a lifetime within the limit; `iat` not in the future. */
  function checkLifetime(payload: JWTPayload, what: string): number {
    const nowS = clock.now() / 1000;
    const exp = payload.exp;
    if (typeof exp !== 'number') throw refuse(`the ${what} has no "exp"`);
    if (exp - nowS > maxLifetime + tolerance) {
      throw refuse(`the ${what} lives too long: "exp" may be at most ${maxLifetime} seconds ahead`, `exp-now ${Math.round(exp - nowS)}s`);
    }
    if (payload.iat !== undefined) {
      if (typeof payload.iat !== 'number') throw refuse(`the ${what} "iat" must be a number`);
      if (payload.iat > nowS + tolerance) throw refuse(`the ${what} "iat" is in the future`);
      if (exp - payload.iat > maxLifetime) {
        throw refuse(`the ${what} lives too long: "exp" minus "iat" may be at most ${maxLifetime} seconds`, `exp-iat ${exp - payload.iat}s`);
      }
    }
    return exp;
  }

  async function useJti(id: string, jti: unknown, exp: number, what: string): Promise<void> {
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) {
      throw refuse(`the ${what} "jti" must be a string of 1..${MAX_JTI_LENGTH} characters`);
    }
    // Principal ids have no spaces, so "id jti" cannot collide across principals.
    const first = await replay.use('client_assertion', `${id} ${jti}`, Math.ceil((exp + tolerance) * 1000));
    if (!first) throw refuse(`the ${what} was already used: send a new one with a fresh "jti"`, `replayed jti of ${id}`);
  }

  async function lookupById(id: string): Promise<RegisteredPrincipal> {
    const principal = await principals.byId(id);
    if (!principal) throw refuse('unknown client: no agent or service is registered with this client_id', `client_id ${id.slice(0, MAX_PARAM_LENGTH)}`);
    return principal;
  }

  function wrongCredential(principal: RegisteredPrincipal, used: string): InvalidClientError {
    const hasSpiffe = principal.credentials.some((c) => c.type === 'spiffe');
    const hasKeys = principal.credentials.some((c) => c.type === 'jwks' || c.type === 'jwks_uri');
    const how = [
      hasKeys ? 'private_key_jwt' : undefined,
      hasSpiffe ? 'a JWT-SVID assertion or an X.509-SVID over mTLS' : undefined,
    ].filter(Boolean);
    return refuse(
      `this client has no credential for ${used}${how.length ? `; authenticate with ${how.join(' or ')}` : ''}`,
      `principal ${principal.id} used ${used}`,
    );
  }

  async function privateKeyJwt(assertion: string, clientId: string | undefined): Promise<AuthenticatedClient> {
    const what = 'client assertion';
    if (!isCompactJws(assertion)) throw refuse('the client assertion is not a signed JWT in compact form');
    let header: JWSHeaderParameters;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(assertion) as JWSHeaderParameters;
      unverified = decodeJwt(assertion);
    } catch (cause) {
      throw refuse('the client assertion is malformed', undefined, cause);
    }
    if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) {
      throw refuse(`the client assertion algorithm is not allowed (allowed: ${algorithms.join(', ')})`);
    }
    if (header.typ !== undefined && !(typeof header.typ === 'string' && ACCEPTED_ASSERTION_TYPS.has(header.typ.toLowerCase()))) {
      throw refuse('the client assertion "typ" must be absent, "JWT" or "client-authentication+jwt"');
    }
    for (const name of KEY_CARRYING_HEADERS) {
      if (name in header) throw refuse(`the client assertion carries a "${name}" header; keys come only from the client's registration`);
    }
    if ('crit' in header) throw refuse('the client assertion has a "crit" header, which is not supported');
    const { iss, sub } = unverified;
    if (typeof iss !== 'string' || typeof sub !== 'string' || iss.length === 0) throw refuse('the client assertion needs "iss" and "sub"');
    if (iss !== sub) throw refuse('the client assertion "iss" and "sub" must both be the client_id');
    if (clientId !== undefined && clientId !== iss) throw refuse('the client assertion "iss"/"sub" is not the client_id of the request');
    if (iss.length > MAX_PARAM_LENGTH) throw refuse('unknown client: no agent or service is registered with this client_id');

    const principal = await lookupById(iss);
    const credentials = principal.credentials.filter((c): c is KeyCredential => c.type === 'jwks' || c.type === 'jwks_uri');
    if (credentials.length === 0) throw wrongCredential(principal, 'private_key_jwt');
    const sources = credentials.map((c) => options.keySourceFor(c, principal));

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(
        assertion,
        async (h, t): Promise<VerificationKey> => {
          // The first registered source that has a key for (kid, alg) answers; only no-match falls through.
          // The error is built only when thrown: its stack trace is a measurable cost per request.
          let last: unknown;
          for (const source of sources) {
            try {
              return await source.getKey(h, t);
            } catch (err) {
              if (isServerSide(err)) throw err;
              last = err;
            }
          }
          throw last ?? new joseErrors.JWKSNoMatchingKey();
        },
        {
          algorithms,
          currentDate: new Date(clock.now()),
          clockTolerance: tolerance,
          requiredClaims: ['iss', 'sub', 'aud', 'exp', 'jti'],
        },
      ));
    } catch (cause) {
      if (isServerSide(cause)) throw cause;
      const description = isMandateError(cause)
        ? 'no registered key of this client matches the client assertion "kid"/"alg"'
        : describeJoseFailure(cause, what);
      throw refuse(description, `principal ${principal.id}: ${cause instanceof Error ? `${cause.name}: ${cause.message}` : 'verification failed'}`, cause);
    }
    if (payload.iss !== principal.id || payload.sub !== principal.id) throw refuse('the client assertion "iss" and "sub" must both be the client_id');
    // The status is told only to a caller that proved possession of the principal's key.
    checkActive(principal);
    checkAudience(payload.aud, what);
    const exp = checkLifetime(payload, what);
    await useJti(principal.id, payload.jti, exp, what);
    return Object.freeze({ kind: principal.kind, principal, method: 'private_key_jwt' as const, expiresAt: exp });
  }

  /** The principal an SVID's SPIFFE ID authenticates: the one named by client_id, or the one holding the ID. */
  async function principalForSpiffeId(spiffeId: string, clientId: string | undefined, used: string): Promise<RegisteredPrincipal> {
    let principal: RegisteredPrincipal | undefined;
    if (clientId !== undefined) {
      principal = await lookupById(clientId);
      const ids = principal.credentials.filter((c) => c.type === 'spiffe').map((c) => c.spiffeId);
      if (ids.length === 0) throw wrongCredential(principal, used);
      if (!ids.includes(spiffeId)) {
        throw refuse("the SVID's SPIFFE ID is not the one registered for this client_id", `principal ${principal.id} presented ${spiffeId}`);
      }
    } else {
      principal = await principals.bySpiffeId(spiffeId);
      if (!principal) throw refuse('unknown client: no agent or service is registered with this SPIFFE ID', `spiffe id ${spiffeId}`);
    }
    checkActive(principal);
    return principal;
  }

  function svidRefusal(err: unknown): never {
    if (err instanceof SvidVerificationError) throw refuse(err.message, err.detail, err);
    if (isServerSide(err)) throw err;
    throw refuse('the SVID could not be verified', err instanceof Error ? err.message : undefined, err);
  }

  async function spiffeJwt(assertion: string, clientId: string | undefined): Promise<AuthenticatedClient> {
    const what = 'JWT-SVID client assertion';
    if (!options.spiffe) throw refuse('SPIFFE client authentication is not enabled on this server');
    if (svidAlgorithms.length === 0) throw refuse('no JWT-SVID algorithm is allowed on this server');
    let svid;
    try {
      svid = await verifyJwtSvid(assertion, { audiences: [...audiences], bundles: options.spiffe.bundles, clock, algorithms: svidAlgorithms, clockToleranceSeconds: tolerance });
    } catch (err) {
      svidRefusal(err);
    }
    checkAudience(svid.claims.aud, what);
    const exp = checkLifetime(svid.claims, what);
    const principal = await principalForSpiffeId(svid.spiffeId.id, clientId, 'a JWT-SVID');
    // JWT-SVIDs need no jti; when one is present it is single-use like any client assertion's.
    if (svid.claims.jti !== undefined) await useJti(principal.id, svid.claims.jti, exp, what);
    return Object.freeze({ kind: principal.kind, principal, method: 'spiffe_jwt' as const, expiresAt: exp });
  }

  async function mtls(chain: PeerCertificateChain, clientId: string | undefined): Promise<AuthenticatedClient> {
    if (!options.spiffe) throw refuse('mTLS client authentication with X.509-SVIDs is not enabled on this server');
    let svid;
    try {
      svid = await verifyX509Svid(chain, { bundles: options.spiffe.bundles, clock });
    } catch (err) {
      svidRefusal(err);
    }
    const principal = await principalForSpiffeId(svid.spiffeId.id, clientId, 'an X.509-SVID');
    return Object.freeze({ kind: principal.kind, principal, method: 'spiffe_x509' as const, expiresAt: svid.expiresAt });
  }

  async function sharedSecret(clientId: string | undefined, secret: string): Promise<AuthenticatedClient> {
    if (!options.sharedSecrets) {
      throw refuse(
        'shared-secret client authentication (client_secret_basic, client_secret_post) is disabled on this server; authenticate with private_key_jwt or a SPIFFE SVID',
      );
    }
    if (clientId === undefined) throw refuse('client_id is required with client_secret');
    const principal = await lookupById(clientId);
    checkActive(principal);
    if (!(await options.sharedSecrets.verify(principal, secret))) throw refuse('the client secret is wrong', `principal ${principal.id}`);
    return Object.freeze({ kind: principal.kind, principal, method: 'client_secret' as const });
  }

  /** `Authorization: Basic` credentials, decoded per RFC 6749 §2.3.1 (form-urlencoded id and secret). */
  function parseBasic(header: string): { id: string; secret: string } {
    const m = /^Basic[ ]+([A-Za-z0-9+/]+={0,2})[ ]*$/i.exec(header);
    if (!m) throw refuse('the Authorization header is not valid Basic credentials');
    const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw refuse('the Authorization header is not valid Basic credentials');
    try {
      return {
        id: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' ')),
        secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' ')),
      };
    } catch {
      throw refuse('the Authorization header is not valid Basic credentials');
    }
  }

  const methods: ClientAuthenticator['methods'] = Object.freeze([
    'private_key_jwt' as const,
    ...(options.spiffe ? (['tls_client_auth'] as const) : []),
    ...(options.sharedSecrets ? (['client_secret_basic', 'client_secret_post'] as const) : []),
  ]);

  return {
    methods,
    async authenticate(form, transport = {}) {
      const clientId = param(form, 'client_id');
      const assertionType = param(form, 'client_assertion_type');
      const assertion = param(form, 'client_assertion');
      const secret = param(form, 'client_secret');
      if (clientId !== undefined && (clientId.length === 0 || clientId.length > MAX_PARAM_LENGTH)) {
        throw refuse('unknown client: no agent or service is registered with this client_id');
      }
      const basic = typeof transport.authorizationHeader === 'string' && /^basic(\s|$)/i.test(transport.authorizationHeader);
      const peer = transport.peerCertificate !== undefined && transport.peerCertificate.length > 0;

      const used: string[] = [];
      if (assertion !== undefined || assertionType !== undefined) used.push('a client assertion');
      if (secret !== undefined) used.push('client_secret_post');
      if (basic) used.push('client_secret_basic');
      // A TLS client certificate is transport: a workload in a service mesh may present one on every connection.
      // It authenticates the client (tls_client_auth) only when the request carries no other method.
      if (peer && used.length === 0) used.push('a TLS client certificate');
      // RFC 6749 §2.3: exactly one method per request.
      if (used.length === 0) {
        throw refuse('client authentication is required: send a client assertion (private_key_jwt or a JWT-SVID) or use mTLS with an X.509-SVID');
      }
      if (used.length > 1) throw refuse(`use exactly one client authentication method; this request uses ${describeMethods(used)}`);

      if (assertion !== undefined || assertionType !== undefined) {
        if (assertionType === undefined) throw refuse('client_assertion_type is required with client_assertion');
        if (assertion === undefined || assertion.length === 0) throw refuse('client_assertion is required with client_assertion_type');
        if (assertionType === JWT_BEARER_ASSERTION_TYPE) return privateKeyJwt(assertion, clientId);
        if (assertionType === JWT_SPIFFE_ASSERTION_TYPE) return spiffeJwt(assertion, clientId);
        throw refuse(`unsupported client_assertion_type; use ${JWT_BEARER_ASSERTION_TYPE} or ${JWT_SPIFFE_ASSERTION_TYPE}`);
      }
      if (secret !== undefined) return sharedSecret(clientId, secret);
      if (basic) {
        if (!options.sharedSecrets) return sharedSecret(clientId, '');
        const creds = parseBasic(transport.authorizationHeader as string);
        if (clientId !== undefined && clientId !== creds.id) throw refuse('client_id differs from the Basic credentials');
        return sharedSecret(creds.id, creds.secret);
      }
      return mtls(transport.peerCertificate as PeerCertificateChain, clientId);
    },
  };
}

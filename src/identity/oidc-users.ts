/**
 * Authenticates users by the access tokens of trusted OIDC issuers (issue 4 §1 "Users").
 *
 * A token names its issuer in `iss`; that claim is read unverified only to choose the issuer's configuration, and
 * the token is then verified with that issuer's keys and algorithm allowlist alone — never with a key or key
 * reference from the token's header (`jwk`, `jku`, `x5u`, `x5c`), which are refused outright, as is `crit`.
 * Then: exact `iss`, `aud` containing a configured audience, `exp` required, `nbf`/`iat` within the configured
 * skew, `sub` required, and token-type checks so that an ID token, a DPoP proof, a client assertion, a logout token,
 * a SET or a JWE is never taken for an access token.
 *
 * @see RFC 9068 (JWT access tokens), RFC 8725 (JWT best current practices), RFC 9700 §2.2, §4.
 */
import { readFile as fsReadFile } from 'node:fs/promises';
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, type JWSHeaderParameters, type ProtectedHeaderParameters } from 'jose';
import { ConfigInvalidError, InvalidTokenError, isMandateError, type MandateErrorOptions } from '../core/errors.ts';
import type { Clock } from '../core/ports.ts';
import { OidcIssuerSchema, type OidcIssuerConfig, type OidcIssuerInput } from './identity-config.ts';
import { createRemoteKeySource, createStaticKeySource, KeysUnavailableError, UnknownKeyError, type RemoteKeySource } from './key-sources.ts';
import type { AuthenticatedUser, FetchJson, KeySource, KeySourceStatus, VerificationKey } from './types.ts';

/** Why a user token was refused; stable values for logs, metrics and audit events. */
export type UserTokenRefusal =
  | 'malformed'
  | 'too_large'
  | 'encrypted'
  | 'forbidden_header'
  | 'algorithm'
  | 'token_type'
  | 'untrusted_issuer'
  | 'unknown_key'
  | 'signature'
  | 'expired'
  | 'not_yet_valid'
  | 'issued_in_future'
  | 'too_old'
  | 'audience'
  | 'issuer'
  | 'missing_claim'
  | 'id_token'
  | 'not_access_token';

/**
 * A user's token was refused. `description` is client-safe and never echoes the token; `reason` says which check
 * failed; `detail` (logs only) may name the unverified issuer or header values, truncated.
 */
export class InvalidUserTokenError extends InvalidTokenError {
  /** Which check refused the token. */
  readonly reason: UserTokenRefusal;

  constructor(reason: UserTokenRefusal, description: string, options: MandateErrorOptions = {}) {
    super(description, options);
    this.reason = reason;
  }
}

/** Roles a user token can carry into Mandate (DESIGN.md "Roles"). */
export const USER_ROLES = ['admin', 'approver', 'auditor'] as const;

/** Largest token accepted, in characters (a JWS is ASCII). */
export const DEFAULT_MAX_USER_TOKEN_LENGTH = 16 * 1024;

/** Header parameters that carry a key or a key reference, or extensions a verifier must understand (RFC 8725 §3.10). */
const FORBIDDEN_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'crit', 'b64'] as const;

/** `typ` values that are never access tokens, whatever an issuer's allowlist says; values normalized (see normalizeTyp). */
const NEVER_ACCESS_TOKEN_TYPES: ReadonlyMap<string, string> = new Map([
  ['dpop+jwt', 'a DPoP proof is not an access token'],
  ['secevent+jwt', 'a security event token is not an access token'],
  ['logout+jwt', 'a logout token is not an access token'],
  ['client-authentication+jwt', 'a client assertion is not an access token'],
  ['token-introspection+jwt', 'an introspection response is not an access token'],
  ['oauth-authz-req+jwt', 'a request object is not an access token'],
  ['jwk-set+jwt', 'a signed key set is not an access token'],
]);

/** Compares `typ` values as RFC 7515 §4.1.9 says: case-insensitively, with `application/` optional. */
function normalizeTyp(value: string): string {
  const lower = value.toLowerCase();
  return lower.startsWith('application/') ? lower.slice('application/'.length) : lower;
}

/** A value from a token, made safe for a log line: JSON-quoted and truncated. */
function forLog(value: unknown): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  return JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text);
}

const refuse = (reason: UserTokenRefusal, description: string, options: MandateErrorOptions = {}) => new InvalidUserTokenError(reason, description, options);

/** The authenticator of users (see {@link createUserAuthenticator}). */
export interface UserAuthenticator {
  /**
   * Verifies a user's access token.
   * @throws InvalidUserTokenError (an `InvalidTokenError`) when the token is refused.
   * @throws KeysUnavailableError (503) when the issuer's keys cannot be had: fail closed.
   */
  authenticate(token: string): Promise<AuthenticatedUser>;
  /** One status per trusted issuer's keys, for `/readyz`. */
  status(): KeySourceStatus[];
  /**
   * Reads static JWKS files (rejects with `ConfigInvalidError` when one is unusable) and fetches discovery documents
   * and key sets ahead of the first token (an unreachable issuer does not reject; `status()` says so).
   */
  start(): Promise<void>;
}

/** Tuning of the remote key caches (see createRemoteKeySource). */
export interface KeyCacheOptions {
  readonly cooldownMs?: number;
  readonly refreshMs?: number;
  readonly maxAgeMs?: number;
  readonly maxKeys?: number;
}

/** Options of {@link createUserAuthenticator}. */
export interface UserAuthenticatorOptions {
  /** The trusted issuers (the config's list; defaults are applied here). */
  readonly issuers: readonly OidcIssuerInput[];
  /** The guarded fetch (outbound.ts). */
  readonly fetchJson: FetchJson;
  readonly clock: Clock;
  /** Key cache tuning shared by every remote issuer. */
  readonly keyCache?: KeyCacheOptions;
  /** Largest token accepted, in characters (default 16 KiB). */
  readonly maxTokenLength?: number;
  /** Reads a `jwksFile`; defaults to node:fs. */
  readonly readFile?: (path: string) => Promise<string>;
}

/** A key source whose construction needs I/O first (discovery, a file), retried at most once per cooldown. */
function deferredKeySource(
  source: string,
  clock: Clock,
  cooldownMs: number,
  load: () => Promise<KeySource>,
): KeySource & { load(): Promise<KeySource> } {
  let inner: KeySource | undefined;
  let failure: unknown;
  let lastAttemptAt: number | undefined;
  let inflight: Promise<KeySource> | undefined;

  const describe = (error: unknown) => (isMandateError(error) ? error.description : 'the issuer keys could not be set up');

  function attempt(): Promise<KeySource> {
    inflight ??= (async () => {
      lastAttemptAt = clock.now();
      try {
        inner = await load();
        failure = undefined;
        return inner;
      } catch (error) {
        failure = error;
        throw error;
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  }

  return {
    load: () => (inner === undefined ? attempt() : Promise.resolve(inner)),
    async getKey(header, token): Promise<VerificationKey> {
      if (inner === undefined) {
        const now = clock.now();
        if (inflight === undefined && lastAttemptAt !== undefined && now - lastAttemptAt < cooldownMs) {
          throw new KeysUnavailableError(`the issuer's keys are unavailable: ${describe(failure)}`, { detail: `source ${source}` });
        }
        try {
          await attempt();
        } catch (error) {
          throw new KeysUnavailableError(`the issuer's keys are unavailable: ${describe(error)}`, { detail: `source ${source}`, cause: error });
        }
      }
      return (inner as KeySource).getKey(header, token);
    },
    status(): KeySourceStatus {
      if (inner !== undefined) return inner.status();
      return { source, state: 'failed', reason: failure === undefined ? 'the issuer keys have not been loaded yet' : describe(failure) };
    },
  };
}

interface TrustedIssuer {
  readonly config: OidcIssuerConfig;
  readonly keys: KeySource & { load(): Promise<KeySource> };
  /** Static files must load at start; remote sources may be down. */
  readonly mustLoad: boolean;
  readonly tokenTypes: ReadonlySet<string>;
}

/** Looks up the roles claim: the exact claim name first, then a dotted path (e.g. `realm_access.roles`). */
function readRoles(claims: JWTPayload, claim: string): string[] {
  let value: unknown = claims[claim];
  if (value === undefined && claim.includes('.')) {
    value = claim.split('.').reduce<unknown>((node, part) => (typeof node === 'object' && node !== null && !Array.isArray(node) ? (node as Record<string, unknown>)[part] : undefined), claims);
  }
  const names = typeof value === 'string' ? value.split(' ') : Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  return USER_ROLES.filter((role) => names.includes(role));
}

/**
 * Creates the user authenticator over the configured trusted issuers.
 *
 * @example
 * const users = createUserAuthenticator({ issuers: config.identity.issuers, fetchJson, clock: systemClock });
 * await users.start();
 * const user = await users.authenticate(bearerToken);
 * @see RFC 9068 §4 (validating JWT access tokens)
 */
export function createUserAuthenticator(options: UserAuthenticatorOptions): UserAuthenticator {
  const { fetchJson, clock } = options;
  const maxTokenLength = options.maxTokenLength ?? DEFAULT_MAX_USER_TOKEN_LENGTH;
  const readFile = options.readFile ?? ((path: string) => fsReadFile(path, 'utf8'));
  const cooldownMs = options.keyCache?.cooldownMs ?? 30_000;
  const issuers = new Map<string, TrustedIssuer>();

  options.issuers.forEach((input, index) => {
    const parsed = OidcIssuerSchema.safeParse(input);
    if (!parsed.success) {
      throw new ConfigInvalidError(`trusted issuer #${index + 1} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(issuer)'}: ${i.message}`).join('; ')}`);
    }
    const config = parsed.data;
    if (issuers.has(config.issuer)) throw new ConfigInvalidError(`trusted issuer ${config.issuer} is configured twice`);
    const remote = (url: string): RemoteKeySource => createRemoteKeySource({ url, fetchJson, clock, ...options.keyCache });
    let keys: TrustedIssuer['keys'];
    if (config.jwksFile !== undefined) {
      const path = config.jwksFile;
      keys = deferredKeySource(path, clock, cooldownMs, async () => {
        let jwks: unknown;
        try {
          jwks = JSON.parse(await readFile(path));
        } catch (cause) {
          throw new ConfigInvalidError(`the JWKS file of issuer ${config.issuer} could not be read as JSON`, { detail: `path ${path}`, cause });
        }
        return createStaticKeySource(jwks, { source: path, ...(options.keyCache?.maxKeys === undefined ? {} : { maxKeys: options.keyCache.maxKeys }) });
      });
    } else if (config.jwksUri !== undefined) {
      const uri = config.jwksUri;
      keys = deferredKeySource(uri, clock, cooldownMs, async () => {
        const source = remote(uri);
        await source.refresh();
        return source;
      });
    } else {
      const metadataUrl = `${config.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
      keys = deferredKeySource(metadataUrl, clock, cooldownMs, async () => {
        const { json } = await fetchJson(metadataUrl);
        const metadata = (typeof json === 'object' && json !== null ? json : {}) as { issuer?: unknown; jwks_uri?: unknown };
        // OpenID Connect Discovery 1.0 §4.3: the issuer in the metadata must be identical to the one configured.
        if (metadata.issuer !== config.issuer) {
          throw new ConfigInvalidError(`the discovery document of ${config.issuer} names another issuer`, { detail: `metadata issuer ${forLog(metadata.issuer)}` });
        }
        if (typeof metadata.jwks_uri !== 'string' || !URL.canParse(metadata.jwks_uri)) {
          throw new ConfigInvalidError(`the discovery document of ${config.issuer} has no valid jwks_uri`);
        }
        const source = remote(metadata.jwks_uri);
        await source.refresh();
        return source;
      });
    }
    issuers.set(config.issuer, {
      config,
      keys,
      mustLoad: config.jwksFile !== undefined,
      tokenTypes: new Set(config.tokenTypes.map(normalizeTyp)),
    });
  });

  /** Checks that need no issuer: size, shape, header. Returns the decoded protected header. */
  function precheck(token: string): ProtectedHeaderParameters {
    if (typeof token !== 'string' || token.length === 0) throw refuse('malformed', 'the token is missing or not a string');
    if (token.length > maxTokenLength) throw refuse('too_large', `the token is larger than ${maxTokenLength} characters`);
    const segments = token.split('.');
    if (segments.length === 5) throw refuse('encrypted', 'encrypted tokens (JWE) are not accepted; send the signed access token');
    if (segments.length !== 3 || !segments.every((s) => /^[A-Za-z0-9_-]*$/.test(s)) || segments[0] === '' || segments[1] === '') {
      throw refuse('malformed', 'the token is not a signed JWT in compact form (three base64url segments)');
    }
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch (cause) {
      throw refuse('malformed', 'the token header is not valid base64url-encoded JSON', { cause });
    }
    if (typeof header.alg !== 'string' || header.alg === '') throw refuse('malformed', 'the token header has no algorithm (alg)');
    if (header.alg.toLowerCase() === 'none') throw refuse('algorithm', 'unsigned tokens (alg none) are not accepted');
    if (/^HS/i.test(header.alg)) {
      throw refuse('algorithm', 'symmetric (HMAC) token algorithms are not accepted', { detail: `alg ${forLog(header.alg)}` });
    }
    if (segments[2] === '') throw refuse('malformed', 'the token has no signature');
    const typ = typeof header.typ === 'string' ? normalizeTyp(header.typ) : undefined;
    const never = typ === undefined ? undefined : NEVER_ACCESS_TOKEN_TYPES.get(typ);
    if (never !== undefined) throw refuse('token_type', never, { detail: `typ ${forLog(header.typ)}` });
    const forbidden = FORBIDDEN_HEADERS.filter((name) => name in header);
    if (forbidden.length > 0) {
      throw refuse(
        'forbidden_header',
        `the token header carries ${forbidden.join(', ')}, which is not accepted: keys come only from the issuer's configured key set, and no critical extensions are supported`,
      );
    }
    if (header.kid !== undefined && (typeof header.kid !== 'string' || header.kid.length > 256)) {
      throw refuse('malformed', 'the token header has an invalid key id (kid)');
    }
    return header;
  }

  function mapVerifyError(error: unknown, issuer: string): never {
    const detail = `issuer ${issuer}`;
    if (error instanceof InvalidUserTokenError || error instanceof KeysUnavailableError) throw error;
    if (error instanceof UnknownKeyError) throw refuse('unknown_key', error.description, { detail: `${detail}; ${error.detail ?? ''}`, cause: error });
    if (error instanceof joseErrors.JWSSignatureVerificationFailed) throw refuse('signature', 'the token signature is invalid', { detail, cause: error });
    if (error instanceof joseErrors.JOSEAlgNotAllowed) throw refuse('algorithm', 'the token algorithm is not allowed for its issuer', { detail, cause: error });
    if (error instanceof joseErrors.JWTExpired) {
      if (error.claim === 'iat') throw refuse('too_old', "the token is older than its issuer's maximum token age", { detail, cause: error });
      throw refuse('expired', 'the token has expired', { detail, cause: error });
    }
    if (error instanceof joseErrors.JWTClaimValidationFailed) {
      if (error.reason === 'missing') throw refuse('missing_claim', `the token lacks the required "${error.claim}" claim`, { detail, cause: error });
      if (error.reason === 'invalid') throw refuse('malformed', `the token's "${error.claim}" claim has the wrong type`, { detail, cause: error });
      switch (error.claim) {
        case 'nbf':
          throw refuse('not_yet_valid', 'the token is not valid yet (nbf)', { detail, cause: error });
        case 'iat':
          throw refuse('issued_in_future', 'the token was issued in the future (iat)', { detail, cause: error });
        case 'aud':
          throw refuse('audience', 'the token is not meant for this audience (aud)', { detail, cause: error });
        case 'iss':
          throw refuse('issuer', 'the token issuer does not match', { detail, cause: error });
        default:
          throw refuse('malformed', 'the token claims are invalid', { detail: `${detail}; claim ${forLog(error.claim)}`, cause: error });
      }
    }
    if (error instanceof joseErrors.JOSEError) throw refuse('malformed', 'the token is malformed', { detail: `${detail}; ${error.code}`, cause: error });
    if (isMandateError(error)) throw error;
    throw refuse('malformed', 'the token could not be verified', { detail, cause: error });
  }

  async function authenticate(token: string): Promise<AuthenticatedUser> {
    const header = precheck(token);

    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(token);
    } catch (cause) {
      throw refuse('malformed', 'the token payload is not a JSON object', { cause });
    }
    // The unverified `iss` only chooses which issuer's keys and rules apply; nothing else is read before verifying.
    const trusted = typeof unverified.iss === 'string' ? issuers.get(unverified.iss) : undefined;
    if (trusted === undefined) throw refuse('untrusted_issuer', 'the token issuer is not trusted', { detail: `iss ${forLog(unverified.iss)}` });
    const { config } = trusted;

    if (typeof header.typ !== 'string') {
      throw refuse('token_type', 'the token has no type (typ); access tokens are typed at+jwt (RFC 9068)', { detail: `issuer ${config.issuer}` });
    }
    if (!trusted.tokenTypes.has(normalizeTyp(header.typ))) {
      throw refuse('token_type', `the token type is not accepted as an access token (accepted: ${config.tokenTypes.join(', ')})`, {
        detail: `issuer ${config.issuer}; typ ${forLog(header.typ)}`,
      });
    }
    if (!(config.algorithms as readonly string[]).includes(header.alg as string)) {
      throw refuse('algorithm', 'the token algorithm is not allowed for its issuer', { detail: `issuer ${config.issuer}; alg ${forLog(header.alg)}` });
    }

    const now = clock.now();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, (h: JWSHeaderParameters, t) => trusted.keys.getKey(h, t), {
        issuer: config.issuer,
        audience: config.audiences,
        algorithms: config.algorithms,
        clockTolerance: config.clockSkewSeconds,
        currentDate: new Date(now),
        requiredClaims: ['exp', 'sub'],
        ...(config.maxTokenAgeSeconds === undefined ? {} : { maxTokenAge: config.maxTokenAgeSeconds }),
      }));
    } catch (error) {
      mapVerifyError(error, config.issuer);
    }

    const detail = `issuer ${config.issuer}`;
    if (typeof payload.sub !== 'string' || payload.sub === '') throw refuse('missing_claim', 'the token lacks a subject (sub)', { detail });
    if (typeof payload.exp !== 'number') throw refuse('missing_claim', 'the token lacks an expiry (exp)', { detail });
    // jose checks iat against the clock only with maxTokenAge; a token from the future is refused either way.
    if (payload.iat !== undefined && payload.iat > Math.floor(now / 1000) + config.clockSkewSeconds) {
      throw refuse('issued_in_future', 'the token was issued in the future (iat)', { detail });
    }
    // An ID token is about an authentication, for a client; it is never an access token (RFC 9068 §4, RFC 9700 §2.2).
    for (const claim of ['nonce', 'at_hash', 'c_hash', 's_hash']) {
      if (claim in payload) throw refuse('id_token', 'an ID token is not an access token', { detail: `${detail}; has ${claim}` });
    }
    if ('events' in payload) throw refuse('not_access_token', 'a security event or logout token is not an access token', { detail });
    if ('htm' in payload || 'htu' in payload) throw refuse('not_access_token', 'a DPoP proof is not an access token', { detail });
    if (payload.iss === payload.sub) throw refuse('not_access_token', 'a client assertion is not an access token', { detail });

    return {
      kind: 'user',
      issuer: config.issuer,
      subject: payload.sub,
      roles: readRoles(payload, config.rolesClaim),
      expiresAt: payload.exp,
      claims: payload,
    };
  }

  return {
    authenticate,
    status: () => [...issuers.values()].map((i) => i.keys.status()),
    async start() {
      await Promise.all(
        [...issuers.values()].map(async (i) => {
          try {
            await i.keys.load();
          } catch (error) {
            if (i.mustLoad) throw error;
          }
        }),
      );
    },
  };
}

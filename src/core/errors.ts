/**
 * Mandate's error taxonomy. Every error a client can see is a `MandateError` with a stable `code`.
 * Codes are public API: add, never rename. A caller's programming mistake is a `TypeError`, not one of these.
 *
 * Each class knows its HTTP status, its OAuth `error` value (RFC 6749 §5.2) and, where a spec calls for it,
 * its `WWW-Authenticate` challenge; one error handler (src/server/error-handler.ts) renders them.
 *
 * `description` is client-safe text that says what to fix. `detail` is for logs only and must never hold a
 * token, a secret or a whole claim set.
 */
export interface MandateErrorOptions {
  /** Private detail for logs; never sent to the client. */
  detail?: string;
  /** Underlying error, for logs only. */
  cause?: unknown;
  /** Extra client-safe fields rendered with the error (e.g. `diagnostics`, `path`). */
  extra?: Record<string, unknown>;
}

export class MandateError extends Error {
  /** Stable, public error code. */
  static readonly code: string = 'ERR_MANDATE';
  readonly code: string = 'ERR_MANDATE';
  /** HTTP status this error renders with. */
  readonly status: number = 500;
  /** OAuth 2.0 `error` value (RFC 6749 §5.2) used on OAuth endpoints. */
  readonly oauthError: string = 'server_error';
  /** Client-safe description of what went wrong and what to fix. */
  readonly description: string;
  /** Private detail for logs only. */
  readonly detail: string | undefined;
  /** Extra client-safe fields. */
  readonly extra: Record<string, unknown> | undefined;

  constructor(description: string, options: MandateErrorOptions = {}) {
    super(description, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.description = description;
    this.detail = options.detail;
    this.extra = options.extra;
  }

  /** `WWW-Authenticate` challenge for this error, if any. */
  wwwAuthenticate(): string | undefined {
    return undefined;
  }
}

/** The request is malformed: wrong types, missing fields, unknown members. */
export class InvalidRequestError extends MandateError {
  static override readonly code: string = 'ERR_INVALID_REQUEST';
  override readonly code: string = 'ERR_INVALID_REQUEST';
  override readonly status: number = 400;
  override readonly oauthError: string = 'invalid_request';
}

/** The body is not valid JSON. */
export class MalformedJsonError extends InvalidRequestError {
  static override readonly code: string = 'ERR_MALFORMED_JSON';
  override readonly code: string = 'ERR_MALFORMED_JSON';
}

/** JSON nested deeper than the configured limit. */
export class NestingTooDeepError extends InvalidRequestError {
  static override readonly code: string = 'ERR_NESTING_TOO_DEEP';
  override readonly code: string = 'ERR_NESTING_TOO_DEEP';
}

/** The request body exceeds the configured size limit. */
export class PayloadTooLargeError extends InvalidRequestError {
  static override readonly code: string = 'ERR_BODY_TOO_LARGE';
  override readonly code: string = 'ERR_BODY_TOO_LARGE';
  override readonly status: number = 413;
}

/** The request's header section exceeds the configured size limit. @see RFC 6585 §5 */
export class HeadersTooLargeError extends InvalidRequestError {
  static override readonly code: string = 'ERR_HEADERS_TOO_LARGE';
  override readonly code: string = 'ERR_HEADERS_TOO_LARGE';
  override readonly status: number = 431;
}

/** The client did not send a complete request in time. @see RFC 9110 §15.5.9 */
export class RequestTimeoutError extends InvalidRequestError {
  static override readonly code: string = 'ERR_REQUEST_TIMEOUT';
  override readonly code: string = 'ERR_REQUEST_TIMEOUT';
  override readonly status: number = 408;
}

/** The request uses a media type the endpoint does not accept. */
export class UnsupportedMediaTypeError extends InvalidRequestError {
  static override readonly code: string = 'ERR_UNSUPPORTED_MEDIA_TYPE';
  override readonly code: string = 'ERR_UNSUPPORTED_MEDIA_TYPE';
  override readonly status: number = 415;
}

/** An entity type (subject or resource) that the policy schema does not define. */
export class UnknownEntityTypeError extends InvalidRequestError {
  static override readonly code: string = 'ERR_UNKNOWN_ENTITY_TYPE';
  override readonly code: string = 'ERR_UNKNOWN_ENTITY_TYPE';
}

/** An action that the policy schema does not define, or that does not apply to the given types. */
export class UnknownActionError extends InvalidRequestError {
  static override readonly code: string = 'ERR_UNKNOWN_ACTION';
  override readonly code: string = 'ERR_UNKNOWN_ACTION';
}

/** An entity (its attributes or parents) does not conform to the policy schema. */
export class InvalidEntityError extends InvalidRequestError {
  static override readonly code: string = 'ERR_INVALID_ENTITY';
  override readonly code: string = 'ERR_INVALID_ENTITY';
}

/** The request context does not conform to the policy schema. */
export class InvalidContextError extends InvalidRequestError {
  static override readonly code: string = 'ERR_INVALID_CONTEXT';
  override readonly code: string = 'ERR_INVALID_CONTEXT';
}

/** An integer outside the range that decisions can represent exactly. */
export class IntegerOutOfRangeError extends InvalidRequestError {
  static override readonly code: string = 'ERR_INTEGER_OUT_OF_RANGE';
  override readonly code: string = 'ERR_INTEGER_OUT_OF_RANGE';
}

/** The caller did not authenticate, or its credential is not valid. */
export class UnauthenticatedError extends MandateError {
  static override readonly code: string = 'ERR_UNAUTHENTICATED';
  override readonly code: string = 'ERR_UNAUTHENTICATED';
  override readonly status: number = 401;
  override readonly oauthError: string = 'invalid_client';
  /** Auth scheme named in the challenge. */
  readonly scheme: string;
  /** True when the request carried no credential at all. */
  readonly credentialMissing: boolean;

  constructor(description: string, options: MandateErrorOptions & { scheme?: string; credentialMissing?: boolean } = {}) {
    super(description, options);
    this.scheme = options.scheme ?? 'Bearer';
    this.credentialMissing = options.credentialMissing ?? false;
  }

  /**
   * The challenge. A request without any credential gets no error code.
   * @see RFC 6750 §3.1 ("If the request lacks any authentication information ... SHOULD NOT include an error code")
   */
  override wwwAuthenticate(): string {
    if (this.credentialMissing) return `${this.scheme} realm="mandate"`;
    return `${this.scheme} realm="mandate", error="invalid_token", error_description="${this.description.replace(/["\\]/g, '')}"`;
  }
}

/** The caller is authenticated but not allowed to call this endpoint. */
export class ForbiddenError extends MandateError {
  static override readonly code: string = 'ERR_FORBIDDEN';
  override readonly code: string = 'ERR_FORBIDDEN';
  override readonly status: number = 403;
  override readonly oauthError: string = 'access_denied';
}

/** No such route or object. */
export class NotFoundError extends MandateError {
  static override readonly code: string = 'ERR_NOT_FOUND';
  override readonly code: string = 'ERR_NOT_FOUND';
  override readonly status: number = 404;
  override readonly oauthError: string = 'invalid_request';
}

/** The HTTP method is not allowed on this route. */
export class MethodNotAllowedError extends MandateError {
  static override readonly code: string = 'ERR_METHOD_NOT_ALLOWED';
  override readonly code: string = 'ERR_METHOD_NOT_ALLOWED';
  override readonly status: number = 405;
  override readonly oauthError: string = 'invalid_request';
}

/** The request conflicts with what exists (a duplicate id, a credential already registered to someone else). */
export class ConflictError extends MandateError {
  static override readonly code: string = 'ERR_CONFLICT';
  override readonly code: string = 'ERR_CONFLICT';
  override readonly status: number = 409;
  override readonly oauthError: string = 'invalid_request';
}

/** Too many requests from this client. */
export class RateLimitedError extends MandateError {
  static override readonly code: string = 'ERR_RATE_LIMITED';
  override readonly code: string = 'ERR_RATE_LIMITED';
  override readonly status: number = 429;
  // RFC 6749 registers no rate-limit error; `slow_down` is device-flow only (RFC 8628). 429 says the rest.
  override readonly oauthError: string = 'temporarily_unavailable';
}

/** A policy set failed to parse or validate; it was refused whole. */
export class PolicySetInvalidError extends MandateError {
  static override readonly code: string = 'ERR_POLICY_INVALID';
  override readonly code: string = 'ERR_POLICY_INVALID';
  override readonly status: number = 400;
  override readonly oauthError: string = 'invalid_request';
}

/** No valid policy set is loaded: every decision fails closed. */
export class PolicyNotLoadedError extends MandateError {
  static override readonly code: string = 'ERR_POLICY_NOT_LOADED';
  override readonly code: string = 'ERR_POLICY_NOT_LOADED';
  override readonly status: number = 503;
  override readonly oauthError: string = 'temporarily_unavailable';
}

/** The policy engine failed (not a policy's own evaluation error): fail closed. */
export class PolicyEngineError extends MandateError {
  static override readonly code: string = 'ERR_POLICY_ENGINE';
  override readonly code: string = 'ERR_POLICY_ENGINE';
  override readonly status: number = 500;
  override readonly oauthError: string = 'server_error';
}

/** The store cannot be reached or failed: fail closed. */
export class StoreUnavailableError extends MandateError {
  static override readonly code: string = 'ERR_STORE_UNAVAILABLE';
  override readonly code: string = 'ERR_STORE_UNAVAILABLE';
  override readonly status: number = 503;
  override readonly oauthError: string = 'temporarily_unavailable';
}

/** The node is starting or stopping and cannot answer this yet: retry. */
export class NotReadyError extends MandateError {
  static override readonly code: string = 'ERR_NOT_READY';
  override readonly code: string = 'ERR_NOT_READY';
  override readonly status: number = 503;
  override readonly oauthError: string = 'temporarily_unavailable';
}

/** The configuration file is invalid; `extra.issues` lists each key path, what was found and what is expected. */
export class ConfigInvalidError extends MandateError {
  static override readonly code: string = 'ERR_CONFIG_INVALID';
  override readonly code: string = 'ERR_CONFIG_INVALID';
  override readonly status: number = 500;
}

/** Unexpected failure; rendered as a bare 500 `server_error`, details in logs only. */
export class InternalError extends MandateError {
  static override readonly code: string = 'ERR_INTERNAL';
  override readonly code: string = 'ERR_INTERNAL';
  override readonly status: number = 500;
  override readonly oauthError: string = 'server_error';
}

// ---------------------------------------------------------------------------------------------------------
// OAuth errors (RFC 6749 §5.2, RFC 8693 §2.2.2, RFC 8707 §2, RFC 9449 §5 and §7.1, RFC 7009 §2.2.1).
// The token, introspection and revocation endpoints render these in the `oauth` format.

/** Client authentication failed: unknown client, bad assertion, wrong method (RFC 6749 §5.2 `invalid_client`). */
export class InvalidClientError extends MandateError {
  static override readonly code: string = 'ERR_INVALID_CLIENT';
  override readonly code: string = 'ERR_INVALID_CLIENT';
  override readonly status: number = 401;
  override readonly oauthError: string = 'invalid_client';
  /** The challenge, when the client tried HTTP authentication (`Basic`): RFC 6749 §5.2 requires one then. */
  readonly challenge: string | undefined;

  constructor(description: string, options: MandateErrorOptions & { challenge?: string } = {}) {
    super(description, options);
    this.challenge = options.challenge;
  }

  override wwwAuthenticate(): string | undefined {
    return this.challenge;
  }
}

/**
 * The grant or a token it presents (`subject_token`, `actor_token`) is invalid, expired, revoked, or was
 * issued to someone else (RFC 6749 §5.2 `invalid_grant`).
 */
export class InvalidGrantError extends MandateError {
  static override readonly code: string = 'ERR_INVALID_GRANT';
  override readonly code: string = 'ERR_INVALID_GRANT';
  override readonly status: number = 400;
  override readonly oauthError: string = 'invalid_grant';
}

/** The requested scope is invalid, unknown, or none of it may be granted (RFC 6749 §5.2 `invalid_scope`). */
export class InvalidScopeError extends MandateError {
  static override readonly code: string = 'ERR_INVALID_SCOPE';
  override readonly code: string = 'ERR_INVALID_SCOPE';
  override readonly status: number = 400;
  override readonly oauthError: string = 'invalid_scope';
}

/** The `resource` / `audience` is unknown, not allowed, or more than one (RFC 8707 §2, RFC 8693 `invalid_target`). */
export class InvalidTargetError extends MandateError {
  static override readonly code: string = 'ERR_INVALID_TARGET';
  override readonly code: string = 'ERR_INVALID_TARGET';
  override readonly status: number = 400;
  override readonly oauthError: string = 'invalid_target';
}

/** The authenticated client may not use this grant type or this request (RFC 6749 §5.2 `unauthorized_client`). */
export class UnauthorizedClientError extends MandateError {
  static override readonly code: string = 'ERR_UNAUTHORIZED_CLIENT';
  override readonly code: string = 'ERR_UNAUTHORIZED_CLIENT';
  override readonly status: number = 400;
  override readonly oauthError: string = 'unauthorized_client';
}

/** The grant type is not supported here (RFC 6749 §5.2 `unsupported_grant_type`). */
export class UnsupportedGrantTypeError extends MandateError {
  static override readonly code: string = 'ERR_UNSUPPORTED_GRANT_TYPE';
  override readonly code: string = 'ERR_UNSUPPORTED_GRANT_TYPE';
  override readonly status: number = 400;
  override readonly oauthError: string = 'unsupported_grant_type';
}

/** Revocation of this token type is not supported (RFC 7009 §2.2.1 `unsupported_token_type`). */
export class UnsupportedTokenTypeError extends MandateError {
  static override readonly code: string = 'ERR_UNSUPPORTED_TOKEN_TYPE';
  override readonly code: string = 'ERR_UNSUPPORTED_TOKEN_TYPE';
  override readonly status: number = 400;
  override readonly oauthError: string = 'unsupported_token_type';
}

/** Where a DPoP error happened: at the token endpoint (400, RFC 9449 §5) or at a protected resource (401, §7.1). */
export type DpopErrorSite = 'token' | 'resource';

/** The `algs` of a DPoP challenge when the raiser does not say (Mandate's default DPoP algorithms). */
const DEFAULT_DPOP_CHALLENGE_ALGS: readonly string[] = ['ES256', 'EdDSA', 'PS256', 'RS256'];

function dpopChallenge(error: string, description: string, algs: readonly string[] | undefined): string {
  return `DPoP error="${error}", error_description="${description.replace(/["\\]/g, '')}", algs="${(algs ?? DEFAULT_DPOP_CHALLENGE_ALGS).join(' ')}"`;
}

/** The DPoP proof is missing, malformed, or does not match the request or the token (RFC 9449 `invalid_dpop_proof`). */
export class InvalidDpopProofError extends MandateError {
  static override readonly code: string = 'ERR_INVALID_DPOP_PROOF';
  override readonly code: string = 'ERR_INVALID_DPOP_PROOF';
  override readonly status: number;
  override readonly oauthError: string = 'invalid_dpop_proof';
  /** Where it happened. */
  readonly site: DpopErrorSite;
  /** The proof algorithms accepted, for the challenge's `algs`. */
  readonly algs: readonly string[] | undefined;

  constructor(description: string, options: MandateErrorOptions & { site?: DpopErrorSite; algs?: readonly string[] } = {}) {
    super(description, options);
    this.site = options.site ?? 'token';
    this.algs = options.algs;
    this.status = this.site === 'resource' ? 401 : 400;
  }

  /** At a protected resource, the `DPoP` challenge (RFC 9449 §7.1); none at the token endpoint. */
  override wwwAuthenticate(): string | undefined {
    return this.site === 'resource' ? dpopChallenge('invalid_dpop_proof', this.description, this.algs) : undefined;
  }
}

/**
 * The server requires a DPoP nonce and the proof did not carry the current one (RFC 9449 §8 `use_dpop_nonce`).
 * The fresh nonce goes back in the `DPoP-Nonce` header (rendered from `extra.dpopNonce`).
 */
export class UseDpopNonceError extends MandateError {
  static override readonly code: string = 'ERR_USE_DPOP_NONCE';
  override readonly code: string = 'ERR_USE_DPOP_NONCE';
  override readonly status: number;
  override readonly oauthError: string = 'use_dpop_nonce';
  /** Where it happened. */
  readonly site: DpopErrorSite;
  /** The proof algorithms accepted, for the challenge's `algs`. */
  readonly algs: readonly string[] | undefined;

  constructor(description: string, options: MandateErrorOptions & { site?: DpopErrorSite; nonce: string; algs?: readonly string[] }) {
    super(description, { ...options, extra: { ...options.extra, dpopNonce: options.nonce } });
    this.site = options.site ?? 'token';
    this.algs = options.algs;
    this.status = this.site === 'resource' ? 401 : 400;
  }

  /** At a protected resource, the `DPoP` challenge (RFC 9449 §9); none at the token endpoint. */
  override wwwAuthenticate(): string | undefined {
    return this.site === 'resource' ? dpopChallenge('use_dpop_nonce', this.description, this.algs) : undefined;
  }
}

/**
 * An access token (a mandate or a user's token) presented to a protected resource is missing, invalid, expired
 * or revoked (RFC 6750 §3.1 `invalid_token`), with the `Bearer` or `DPoP` challenge.
 */
export class InvalidTokenError extends UnauthenticatedError {
  static override readonly code: string = 'ERR_INVALID_TOKEN';
  override readonly code: string = 'ERR_INVALID_TOKEN';
  override readonly oauthError: string = 'invalid_token';
}

/** Type guard usable across module instances. */
export function isMandateError(value: unknown): value is MandateError {
  return value instanceof MandateError;
}

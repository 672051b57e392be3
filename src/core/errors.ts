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

/** Too many requests from this client. */
export class RateLimitedError extends MandateError {
  static override readonly code: string = 'ERR_RATE_LIMITED';
  override readonly code: string = 'ERR_RATE_LIMITED';
  override readonly status: number = 429;
  override readonly oauthError: string = 'slow_down';
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

/** Type guard usable across module instances. */
export function isMandateError(value: unknown): value is MandateError {
  return value instanceof MandateError;
}

/**
 * The one place where errors reach the wire (STYLE.md #7). Every error — a `MandateError` thrown by a
 * capability, a framework error (body too large, wrong media type), an unknown bug — is turned into a
 * `MandateError` here and rendered in the format the route asks for:
 *
 * - `problem` (default): `application/problem+json` per RFC 9457 — `type`, `title`, `status`, `detail` (the
 *   error's client-safe `description`), `code`, plus the error's client-safe `extra` fields (e.g. `diagnostics`).
 * - `oauth`: RFC 6749 §5.2 JSON — `{ error, error_description }` — for the OAuth endpoints a later issue adds.
 *
 * `WWW-Authenticate` is set whenever the error carries a challenge (RFC 9110 §11.6.1, RFC 6750 §3). Anything
 * that is not a `MandateError` becomes a 500 `ERR_INTERNAL` / `server_error` with a generic message; its
 * detail, stack and cause go to the log only, never to the client.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9457 (Problem Details for HTTP APIs)
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.2 (OAuth error response)
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import {
  HeadersTooLargeError,
  InternalError,
  InvalidRequestError,
  RequestTimeoutError,
  isMandateError,
  MalformedJsonError,
  type MandateError,
  PayloadTooLargeError,
  StoreUnavailableError,
  UnsupportedMediaTypeError,
} from '../core/errors.ts';

/** How a route renders its errors. */
export type ErrorFormat = 'problem' | 'oauth';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** How errors on this route are rendered; default `problem`. */
    errorFormat?: ErrorFormat;
    /** Whether a refusal on this route must be written to the audit log before the response goes out. */
    auditRefusals?: boolean;
  }
}

/** Short, stable titles per code (RFC 9457 §3.1.3: the title does not change from occurrence to occurrence). */
const TITLES: Readonly<Record<string, string>> = {
  ERR_INVALID_REQUEST: 'Invalid request',
  ERR_MALFORMED_JSON: 'Malformed JSON',
  ERR_NESTING_TOO_DEEP: 'JSON nested too deeply',
  ERR_BODY_TOO_LARGE: 'Request body too large',
  ERR_HEADERS_TOO_LARGE: 'Request headers too large',
  ERR_REQUEST_TIMEOUT: 'Request timeout',
  ERR_UNSUPPORTED_MEDIA_TYPE: 'Unsupported media type',
  ERR_UNKNOWN_ENTITY_TYPE: 'Unknown entity type',
  ERR_UNKNOWN_ACTION: 'Unknown action',
  ERR_INVALID_ENTITY: 'Invalid entity',
  ERR_INVALID_CONTEXT: 'Invalid context',
  ERR_INTEGER_OUT_OF_RANGE: 'Integer out of range',
  ERR_UNAUTHENTICATED: 'Unauthenticated',
  ERR_FORBIDDEN: 'Forbidden',
  ERR_NOT_FOUND: 'Not found',
  ERR_METHOD_NOT_ALLOWED: 'Method not allowed',
  ERR_RATE_LIMITED: 'Rate limited',
  ERR_POLICY_INVALID: 'Policy set invalid',
  ERR_POLICY_NOT_LOADED: 'No policy set loaded',
  ERR_POLICY_ENGINE: 'Policy engine failure',
  ERR_STORE_UNAVAILABLE: 'Store unavailable',
  ERR_NOT_READY: 'Not ready',
  ERR_INTERNAL: 'Internal server error',
  ERR_CONFLICT: 'Conflict',
  ERR_INVALID_CLIENT: 'Invalid client',
  ERR_INVALID_GRANT: 'Invalid grant',
  ERR_INVALID_SCOPE: 'Invalid scope',
  ERR_INVALID_TARGET: 'Invalid target',
  ERR_UNAUTHORIZED_CLIENT: 'Unauthorized client',
  ERR_UNSUPPORTED_GRANT_TYPE: 'Unsupported grant type',
  ERR_UNSUPPORTED_TOKEN_TYPE: 'Unsupported token type',
  ERR_INVALID_DPOP_PROOF: 'Invalid DPoP proof',
  ERR_USE_DPOP_NONCE: 'DPoP nonce required',
  ERR_INVALID_TOKEN: 'Invalid token',
};

// Members of a problem document that `extra` may not overwrite.
const RESERVED = new Set(['type', 'title', 'status', 'detail', 'code', 'instance']);

/** The media type of RFC 9457 problem documents. */
export const PROBLEM_JSON = 'application/problem+json; charset=utf-8';

/** What goes on the wire for one error. */
export interface RenderedError {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

/** The `type` URI of a problem: a stable, non-dereferenceable URN per code (RFC 9457 §3.1.1 allows any URI). */
export function problemType(code: string): string {
  return `urn:mandate:error:${code}`;
}

/**
 * Maps anything thrown to a `MandateError`: a `MandateError` stays as it is, framework errors with a known
 * meaning map to their class, everything else becomes `InternalError` with the original kept as `cause`
 * (for logs only).
 * @param error - what was thrown
 */
export function toMandateError(error: unknown): MandateError {
  if (isMandateError(error)) return error;
  const code = (error as { code?: unknown } | null)?.code;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PayloadTooLargeError('the request body is larger than this server accepts', { cause: error });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaTypeError('this endpoint accepts only application/json request bodies', { cause: error });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new MalformedJsonError('the request body is empty; send a JSON object', { cause: error });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new MalformedJsonError('the request body is not valid JSON', { cause: error });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new InvalidRequestError('the request body does not match its Content-Length', { cause: error });
    case 'FST_ERR_VALIDATION':
      return new InvalidRequestError('the request does not match the endpoint schema', { cause: error, detail: (error as Error).message });
    default:
      break;
  }
  // Node's own parser errors that reach a route (e.g. aborted bodies) carry a 4xx statusCode; keep the class
  // of failure but never their message, which may quote the request.
  const statusCode = (error as FastifyError | null)?.statusCode;
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    return new InvalidRequestError('the request could not be read', { cause: error });
  }
  return new InternalError('the server failed to process the request; it has been logged', { cause: error });
}

/**
 * Renders a `MandateError` as a response: status, headers and body in the given format.
 * @param error - the error to render
 * @param format - `problem` (RFC 9457) or `oauth` (RFC 6749 §5.2)
 */
export function renderError(error: MandateError, format: ErrorFormat = 'problem'): RenderedError {
  const headers: Record<string, string> = { 'cache-control': 'no-store' };
  const challenge = error.wwwAuthenticate();
  if (challenge !== undefined) headers['www-authenticate'] = challenge;
  // Two extra fields double as headers, so that the error classes need no header API of their own:
  // `retryAfterSeconds` → Retry-After (RFC 9110 §10.2.3, with 429 and 503) and `allow` → Allow (§10.2.1, with 405).
  const retryAfter = error.extra?.retryAfterSeconds;
  if (typeof retryAfter === 'number' && Number.isSafeInteger(retryAfter) && retryAfter >= 0) headers['retry-after'] = String(retryAfter);
  const allow = error.extra?.allow;
  if (Array.isArray(allow) && allow.every((m) => typeof m === 'string')) headers.allow = allow.join(', ');
  // `dpopNonce` → DPoP-Nonce (RFC 9449 §8), with use_dpop_nonce; it is a header, not a body member.
  const dpopNonce = error.extra?.dpopNonce;
  if (typeof dpopNonce === 'string') headers['dpop-nonce'] = dpopNonce;
  if (format === 'oauth') {
    headers['content-type'] = 'application/json; charset=utf-8';
    return { status: error.status, headers, body: { error: error.oauthError, error_description: error.description } };
  }
  headers['content-type'] = PROBLEM_JSON;
  const body: Record<string, unknown> = {
    type: problemType(error.code),
    title: TITLES[error.code] ?? STATUS_CODES[error.status] ?? 'Error',
    status: error.status,
    detail: error.description,
    code: error.code,
  };
  for (const [k, v] of Object.entries(error.extra ?? {})) if (!RESERVED.has(k) && k !== 'dpopNonce') body[k] = v;
  return { status: error.status, headers, body };
}

/** Fields that describe an error in a log line: code and private detail, plus the cause for server faults. */
export function logFields(error: MandateError): Record<string, unknown> {
  const fields: Record<string, unknown> = { code: error.code, status: error.status };
  if (error.detail !== undefined) fields.detail = error.detail;
  if (error.status >= 500) fields.err = error.cause instanceof Error ? error.cause : error;
  return fields;
}

/** Writes a rendered error to a fastify reply. */
export function sendError(reply: FastifyReply, rendered: RenderedError): FastifyReply {
  return reply.code(rendered.status).headers(rendered.headers).send(JSON.stringify(rendered.body));
}

/** Dependencies of {@link createErrorHandler}. */
export interface ErrorHandlerDeps {
  /**
   * Records a refusal in the audit log, for routes with `config.auditRefusals`. The response waits for it;
   * when it rejects, the request is refused with 503 instead (requests are refused rather than unlogged).
   */
  auditRefusal?: (request: FastifyRequest, error: MandateError) => Promise<void>;
  /** Counts responses whose audit event could not be written. */
  onAuditRefused?: () => void;
}

/**
 * Builds the server's error handler (`app.setErrorHandler`).
 * @param deps - audit hook for refusals
 */
export function createErrorHandler(deps: ErrorHandlerDeps = {}) {
  return async function mandateErrorHandler(this: unknown, raw: unknown, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    let error = toMandateError(raw);
    const config = request.routeOptions.config;
    if (deps.auditRefusal && config.auditRefusals === true) {
      try {
        await deps.auditRefusal(request, error);
      } catch (auditError) {
        deps.onAuditRefused?.();
        request.log.error({ code: error.code, audit: logFields(toMandateError(auditError)) }, 'audit log refused a refusal event; answering 503');
        error = isMandateError(auditError) && auditError.status === 503
          ? auditError
          : new StoreUnavailableError('the audit log cannot record this request, so it was refused; retry shortly', { cause: auditError });
      }
    }
    if (error.status >= 500) request.log.error(logFields(error), 'request failed');
    else request.log.info(logFields(error), 'request refused');
    return sendError(reply, renderError(error, config.errorFormat ?? 'problem'));
  };
}

/**
 * Builds the handler for errors the HTTP parser raises before a request exists (`clientErrorHandler`): header
 * fields too large → 431 `ERR_HEADERS_TOO_LARGE`, timeouts → 408, anything else → 400, rendered as problem
 * documents like every other error.
 * @param log - where to note the event (at debug: these are usually network noise)
 */
export function createClientErrorHandler(log: Logger) {
  return function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const error =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? new HeadersTooLargeError('the request header fields are larger than this server accepts')
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new RequestTimeoutError('the request was not received in time')
          : new InvalidRequestError('the request is not valid HTTP');
    log.debug({ code: error.code, parserError: err.code }, 'client error');
    const { status, headers, body } = renderError(error);
    const payload = JSON.stringify(body);
    if (socket.writable) {
      const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), `content-length: ${Buffer.byteLength(payload)}`, 'connection: close'];
      // end() flushes the response before closing; destroy() alone could discard it.
      socket.end(`${lines.join('\r\n')}\r\n\r\n${payload}`);
      return;
    }
    socket.destroy();
  };
}

/**
 * Errors of the Shared Signals capability. A refused SET carries its RFC 8935 §2.4 error code (`err`), which the
 * push endpoint renders as `{"err": "...", "description": "..."}`; everything else is a regular `MandateError`.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8935#section-2.4 (Security Event Token Error Codes)
 */
import { MandateError, type MandateErrorOptions } from '../core/errors.ts';

/** RFC 8935 §2.4 error codes, plus SSF 1.0's `invalid_state` (verification events). */
export type SetErrorCode = 'invalid_request' | 'invalid_key' | 'invalid_issuer' | 'invalid_audience' | 'authentication_failed' | 'access_denied' | 'invalid_state';

/** Why a SET was refused, for logs, audit and tests; finer than the wire code. */
export type SetRefusalReason =
  | 'unknown_transmitter'
  | 'media_type'
  | 'too_large'
  | 'push_authentication'
  | 'malformed'
  | 'encrypted'
  | 'typ'
  | 'algorithm'
  | 'unknown_key'
  | 'signature'
  | 'issuer'
  | 'audience'
  | 'iat'
  | 'expired'
  | 'jti'
  | 'replay'
  | 'sub_claim'
  | 'events'
  | 'subject'
  | 'event_payload'
  | 'stream_id';

/**
 * A pushed SET was refused. Renders as HTTP 400 (413 when too large) with the RFC 8935 error body on the push
 * endpoint; `description` is client-safe and never quotes the SET.
 */
export class SetRefusedError extends MandateError {
  static override readonly code: string = 'ERR_SET_REFUSED';
  override readonly code: string = 'ERR_SET_REFUSED';
  override readonly status: number;
  override readonly oauthError: string = 'invalid_request';
  /** The RFC 8935 error code. */
  readonly err: SetErrorCode;
  /** The finer reason. */
  readonly reason: SetRefusalReason;

  constructor(err: SetErrorCode, reason: SetRefusalReason, description: string, options: MandateErrorOptions & { status?: number } = {}) {
    super(description, options);
    this.err = err;
    this.reason = reason;
    this.status = options.status ?? 400;
  }
}

/** A SET delivery to a receiver failed for good (refused, or retries exhausted). */
export class SetDeliveryError extends MandateError {
  static override readonly code: string = 'ERR_SET_DELIVERY_FAILED';
  override readonly code: string = 'ERR_SET_DELIVERY_FAILED';
  override readonly status: number = 502;
  override readonly oauthError: string = 'temporarily_unavailable';
}

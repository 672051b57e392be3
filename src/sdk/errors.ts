/**
 * The SDK's errors, in Mandate's one taxonomy (src/core/errors.ts): each has a stable `code`. A caller's
 * programming mistake (a missing scope, a URL no resource is mapped to) is a `TypeError` instead.
 * Messages never hold a token, an assertion or a proof.
 */
import { MandateError, type MandateErrorOptions } from '../core/errors.ts';

/**
 * Mandate answered an OAuth request with an error (RFC 6749 §5.2): `error`, `error_description` and the HTTP
 * status as Mandate sent them.
 * @see RFC 6749 §5.2
 */
export class MandateOAuthError extends MandateError {
  static override readonly code: string = 'ERR_OAUTH_RESPONSE';
  override readonly code: string = 'ERR_OAUTH_RESPONSE';
  override readonly status: number;
  override readonly oauthError: string;
  /** The OAuth `error` value, e.g. `invalid_grant`. */
  readonly error: string;
  /** Mandate's client-safe explanation, when it gave one. */
  readonly error_description: string | undefined;

  constructor(response: { error: string; error_description?: string; status: number }, options: MandateErrorOptions = {}) {
    super(`${response.error}${response.error_description === undefined ? '' : `: ${response.error_description}`}`, options);
    this.status = response.status;
    this.oauthError = response.error;
    this.error = response.error;
    this.error_description = response.error_description;
  }
}

/** Mandate (or a server claiming to be it) answered with something that is not a valid response: no retry helps. */
export class MandateResponseError extends MandateError {
  static override readonly code: string = 'ERR_INVALID_RESPONSE';
  override readonly code: string = 'ERR_INVALID_RESPONSE';
  override readonly status: number;

  constructor(description: string, status: number, options: MandateErrorOptions = {}) {
    super(description, options);
    this.status = status;
  }
}

/**
 * The task has ended: `end()` ran, or Mandate refused its grant (`invalid_grant`: ended, revoked, expired, a
 * reused refresh token, a disabled user, a policy that no longer allows it). No mandate of it is handed out
 * again; open a new task to go on.
 */
export class TaskEndedError extends MandateError {
  static override readonly code: string = 'ERR_TASK_ENDED';
  override readonly code: string = 'ERR_TASK_ENDED';
  override readonly status: number = 401;
  override readonly oauthError: string = 'invalid_grant';
  /** The task's id. */
  readonly taskId: string;
  /** `client`: this program ended it (`end()`); `server`: Mandate said it has ended. */
  readonly endedBy: 'client' | 'server';

  constructor(taskId: string, endedBy: 'client' | 'server', options: MandateErrorOptions = {}) {
    const why =
      endedBy === 'client'
        ? 'it was ended by this client (end())'
        : `Mandate refused its grant${options.cause instanceof MandateOAuthError && options.cause.error_description !== undefined ? ` (${options.cause.error_description})` : ''}`;
    super(`task ${taskId} has ended: ${why}; open a new task to continue`, options);
    this.taskId = taskId;
    this.endedBy = endedBy;
  }
}

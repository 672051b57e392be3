/**
 * The audit event, version 1: defined once here as a zod schema, with the TypeScript types derived from it
 * (STYLE.md #11). Stores persist exactly these fields; readers can rely on them staying compatible.
 *
 * Audit events never hold a token, a secret or a whole claim set (DESIGN.md "Rules that never bend"). The
 * schema enforces what it can: `data` is small, may not use key names that usually carry secrets, and may not
 * hold JWT-shaped strings. `redacted` lists what the producer removed, so an auditor knows the record is partial
 * on purpose (STYLE.md #12).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Clock, IdGenerator } from '../core/ports.ts';

/** Largest `data` object accepted, as UTF-8 JSON; audit rows stay small so that group commit stays fast. */
export const MAX_AUDIT_DATA_BYTES = 8192;

/**
 * What happened. Additive: new types may be added, existing ones never renamed.
 * `decision` — a policy decision; `policy.load` / `policy.reject` — a policy set was loaded or refused;
 * `auth.failure` — a caller failed to authenticate; `admin` — an administrative change;
 * `token.issue` — a token was issued (written in the same transaction as the token's record);
 * `token.refuse` — a token request was refused; `token.revoke` — a token was revoked (same transaction);
 * `token.introspect` — a token was introspected; `signal.receive` — a Security Event Token (SSF/CAEP) was accepted;
 * `signal.refuse` — a pushed SET was refused; `signal.emit` — a SET Mandate sent was delivered or given up on;
 * `task.close` — a task ended or was revoked (same transaction as its revocations); `approval.request` /
 * `approval.decide` — a person's approval was asked for / given or refused; `lockdown` — lockdown engaged or lifted.
 */
export const AuditEventTypeV1 = z.enum(['decision', 'policy.load', 'policy.reject', 'auth.failure', 'admin', 'token.issue', 'token.refuse', 'token.revoke', 'token.introspect', 'signal.receive', 'signal.refuse', 'signal.emit', 'task.close', 'approval.request', 'approval.decide', 'lockdown']);
/** One of the audit event types. */
export type AuditEventType = z.infer<typeof AuditEventTypeV1>;

/**
 * How it ended. Decisions use the decision outcome (`allow`, `deny`, `approval_required`); other events use
 * `success` or `failure`.
 */
export const AuditOutcomeV1 = z.enum(['allow', 'deny', 'approval_required', 'success', 'failure']);
/** One of the audit outcomes. */
export type AuditOutcome = z.infer<typeof AuditOutcomeV1>;

// Normalised key names (lower case, letters and digits only) that usually carry a credential.
const SECRET_KEY_NAMES = new Set([
  'authorization',
  'proxyauthorization',
  'cookie',
  'setcookie',
  'bearer',
  'dpop',
  'assertion',
  'clientassertion',
  'credential',
  'credentials',
  'passwd',
  'privatekey',
]);
const SECRET_KEY_SUFFIXES = ['token', 'secret', 'password', 'apikey', 'privatekey'];
// A compact JWS/JWE: base64url JSON header (always starts with `eyJ`) and two or more dot-separated parts.
const JWT_SHAPE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)?$/;

/** Tells whether an object key name usually carries a credential (e.g. `access_token`, `clientSecret`, `Authorization`). */
export function isSecretKeyName(key: string): boolean {
  const k = key.toLowerCase().replace(/[^a-z0-9]/g, '');
  return SECRET_KEY_NAMES.has(k) || SECRET_KEY_SUFFIXES.some((s) => k.endsWith(s));
}

/** Tells whether a string looks like a compact JWT, which must never be written to the audit log. */
export function looksLikeJwt(value: string): boolean {
  return value.length > 20 && JWT_SHAPE.test(value);
}

/** Finds the first secret-bearing key or JWT-shaped string in a JSON value; returns its path or undefined. */
function findSecret(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return looksLikeJwt(value) ? path : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hit = findSecret(value[i], `${path}[${i}]`);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const p = path === '' ? k : `${path}.${k}`;
      if (isSecretKeyName(k)) return p;
      const hit = findSecret(v, p);
      if (hit !== undefined) return hit;
    }
  }
  return undefined;
}

/**
 * Removes secret-bearing keys and JWT-shaped strings from a JSON object before it goes into `data`, and
 * returns the removed paths for the event's `redacted` list.
 * @example redactAuditData({ tool: 'x', access_token: 'abc' }) // → { data: { tool: 'x' }, redacted: ['data.access_token'] }
 */
export function redactAuditData(data: Record<string, unknown>): { data: Record<string, unknown>; redacted: string[] } {
  const redacted: string[] = [];
  const walk = (value: unknown, path: string): unknown => {
    if (typeof value === 'string') {
      if (looksLikeJwt(value)) {
        redacted.push(path);
        return '[redacted]';
      }
      return value;
    }
    if (Array.isArray(value)) return value.map((v, i) => walk(v, `${path}[${i}]`));
    if (value !== null && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        const p = `${path}.${k}`;
        if (isSecretKeyName(k)) {
          redacted.push(p);
          continue;
        }
        out[k] = walk(v, p);
      }
      return out;
    }
    return value;
  };
  return { data: walk(data, 'data') as Record<string, unknown>, redacted };
}

const text = (max: number) => z.string().min(1).max(max);

/** Finds the first value that JSON cannot carry faithfully (functions, NaN, Dates, class instances, …); returns its path. */
function findNonJson(value: unknown, path: string, depth = 0): string | undefined {
  if (depth > 32) return path;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : path;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hit = findNonJson(value[i], `${path}[${i}]`, depth + 1);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) return path;
    for (const [k, v] of Object.entries(value)) {
      // An undefined member is simply left out, as JSON.stringify does; it is how optional fields spread.
      if (v === undefined) continue;
      const hit = findNonJson(v, `${path}.${k}`, depth + 1);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }
  return path;
}

/**
 * A small JSON object of event-specific detail; never a token, a secret or a whole claim set. Typed loosely
 * (`Record<string, unknown>`) so that producers can pass what {@link redactAuditData} returns; the schema checks
 * at run time that it is plain JSON.
 */
export const AuditDataV1 = z
  .record(z.string(), z.unknown())
  .superRefine((data, ctx) => {
    const bad = findNonJson(data, 'data');
    if (bad !== undefined) {
      ctx.addIssue({ code: 'custom', message: `${bad} is not a plain JSON value (or nests deeper than 32)` });
      return;
    }
    const bytes = Buffer.byteLength(JSON.stringify(data), 'utf8');
    if (bytes > MAX_AUDIT_DATA_BYTES) {
      ctx.addIssue({ code: 'custom', message: `data is ${bytes} bytes as JSON; at most ${MAX_AUDIT_DATA_BYTES} allowed` });
    }
    const secret = findSecret(data, '');
    if (secret !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `data.${secret} looks like a credential; remove it (see redactAuditData) and list it in redacted`,
      });
    }
  });

/** The fields a producer supplies; the store assigns `seq`. */
export const NewAuditEventV1 = z
  .object({
    /** Unique event id (e.g. a UUID); a second event with the same id is refused by the store. */
    id: text(128),
    /** When it happened: ISO 8601 date-time with offset (`2025-01-01T00:00:00.000Z`). */
    time: z.iso.datetime({ offset: true }),
    type: AuditEventTypeV1,
    outcome: AuditOutcomeV1,
    /** The decision id, for `decision` events and for anything that refers to one. */
    decisionId: text(128).optional(),
    /** W3C trace id of the request, to join the audit log with traces and logs. */
    traceId: text(128).optional(),
    /** Who called: the authenticated caller's id (e.g. an AuthZEN credential id), never its credential. */
    actor: text(512).optional(),
    /** The subject of the request, as Cedar writes it: `User::"alice"`. */
    subject: text(1024).optional(),
    /** The action, as Cedar writes it: `Action::"read"`. */
    action: text(1024).optional(),
    /** The resource, as Cedar writes it: `Document::"q3-report"`. */
    resource: text(1024).optional(),
    /** Content hash of the policy set in force. */
    policySetVersion: text(256).optional(),
    /** Client-safe reasons, in order. */
    reasons: z.array(z.string().max(2048)).max(64).optional(),
    /** Paths of what the producer removed before recording (e.g. `data.access_token`, `subject.properties`). */
    redacted: z.array(z.string().max(512)).max(256),
    data: AuditDataV1.optional(),
  })
  .strict();
/** An audit event before the store has given it a `seq`. */
export type NewAuditEvent = z.infer<typeof NewAuditEventV1>;
/** Same as {@link NewAuditEvent}, under the schema's versioned name. */
export type NewAuditEventV1 = NewAuditEvent;

/** A stored audit event: what a producer supplied plus the `seq` the store assigned. */
export const AuditEventV1 = NewAuditEventV1.extend({
  /** Position in the log, assigned by the store at commit: strictly increasing, never reused. */
  seq: z.int().positive(),
});
/** A stored audit event. */
export type AuditEvent = z.infer<typeof AuditEventV1>;
/** Same as {@link AuditEvent}, under the schema's versioned name. */
export type AuditEventV1 = AuditEvent;

// Events this module has validated, deeply frozen so that they cannot change afterwards. The decision log and
// the store both check every event at their boundary; an event already checked is not parsed twice.
const validated = new WeakSet<object>();

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Checks a producer's event against the schema and returns the parsed copy, deeply frozen; an invalid event
 * is the producer's programming mistake, so it throws a `TypeError` naming every problem. Passing an event
 * this function returned gives it back as it is (it was checked and cannot have changed).
 */
export function parseNewAuditEvent(event: unknown): NewAuditEvent {
  if (typeof event === 'object' && event !== null && validated.has(event)) return event as NewAuditEvent;
  const r = NewAuditEventV1.safeParse(event);
  if (r.success) {
    const frozen = deepFreeze(r.data);
    validated.add(frozen);
    return frozen;
  }
  const problems = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(event)'}: ${i.message}`);
  throw new TypeError(`invalid audit event: ${problems.join('; ')}`);
}

/** Fields for {@link createAuditEvent}: everything but `id` and `time`, with `redacted` optional. */
export type AuditEventFields = Omit<NewAuditEvent, 'id' | 'time' | 'redacted'> & { redacted?: string[] };

/**
 * Builds a new audit event with a fresh id and the current time from the given clock.
 * @example createAuditEvent({ type: 'policy.load', outcome: 'success', policySetVersion: v }, { clock })
 */
export function createAuditEvent(
  fields: AuditEventFields,
  deps: { clock: Clock; ids?: IdGenerator },
): NewAuditEvent {
  return {
    ...fields,
    id: deps.ids ? deps.ids.next() : randomUUID(),
    time: new Date(deps.clock.now()).toISOString(),
    redacted: fields.redacted ?? [],
  };
}

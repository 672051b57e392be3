/**
 * Builders of the audit events the server writes: one per decision, one per refusal, one per admin call.
 * Events record who asked (the authenticated client id, never its credential), what was asked (subject,
 * action, resource as Cedar writes them) and what was decided, and list in `redacted` what they leave out on
 * purpose: caller-supplied properties and context may hold personal data or secrets (STYLE.md #12).
 */
import { createAuditEvent, MAX_AUDIT_DATA_BYTES, redactAuditData, type AuditEventFields, type NewAuditEvent } from '../audit/audit-event.ts';
import { formatEntityRef, type Decision, type EntityRef } from '../core/decision.ts';
import type { MandateError } from '../core/errors.ts';
import type { Clock, IdGenerator } from '../core/ports.ts';

/** What the server knows about a request when it records it; filled in as the request is processed. */
export interface RequestAuditContext {
  /** Which endpoint: `authzen.evaluation`, `authzen.evaluations`, `admin.policies.reload`, ... */
  endpoint: string;
  /** The request id (`X-Request-ID` or generated). */
  requestId: string;
  /** W3C trace id from `traceparent`, when the caller sent one. */
  traceId?: string;
  /** Authenticated client id, once authentication succeeded. */
  clientId?: string;
  /** What the request named, once parsed. */
  subject?: EntityRef;
  action?: string;
  resource?: EntityRef;
  actors?: EntityRef[];
  /** Paths left out of the event (e.g. `subject.properties`, `context`). */
  redacted?: string[];
}

/** Ports for building events. */
export interface AuditDeps {
  clock: Clock;
  ids?: IdGenerator;
}

/** Cuts a string to at most `max` characters (audit fields have limits; an over-long field must not fail the event). */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

const MAX_DATA_BUDGET = MAX_AUDIT_DATA_BYTES - 256;

type AuditData = NonNullable<NewAuditEvent['data']>;

/** Redacts and bounds `data` (JSON values only); falls back to a minimal object when it is too large. */
function boundedData(data: Record<string, unknown>, fallback: Record<string, unknown>): { data: AuditData; redacted: string[] } {
  const r = redactAuditData(data);
  if (Buffer.byteLength(JSON.stringify(r.data), 'utf8') <= MAX_DATA_BUDGET) return { data: r.data as AuditData, redacted: r.redacted };
  return { data: { ...fallback, truncated: true } as AuditData, redacted: [...r.redacted, 'data (too large; summary kept)'] };
}

function who(ctx: RequestAuditContext): Pick<AuditEventFields, 'actor' | 'traceId' | 'subject' | 'action' | 'resource'> {
  return {
    ...(ctx.clientId === undefined ? {} : { actor: clip(ctx.clientId, 512) }),
    ...(ctx.traceId === undefined ? {} : { traceId: ctx.traceId }),
    ...(ctx.subject === undefined ? {} : { subject: clip(formatEntityRef(ctx.subject), 1024) }),
    ...(ctx.action === undefined ? {} : { action: clip(formatEntityRef({ type: 'Action', id: ctx.action }), 1024) }),
    ...(ctx.resource === undefined ? {} : { resource: clip(formatEntityRef(ctx.resource), 1024) }),
  };
}

/**
 * The audit event of one decision.
 * @param decision - the decision value
 * @param ctx - the request's audit context (client, trace, what was asked)
 */
export function decisionEvent(decision: Decision, ctx: RequestAuditContext, deps: AuditDeps): NewAuditEvent {
  const summary = { endpoint: ctx.endpoint, requestId: clip(ctx.requestId, 128), durationMicros: decision.durationMicros };
  const { data, redacted } = boundedData(
    {
      ...summary,
      actors: (ctx.actors ?? []).map((a) => clip(formatEntityRef(a), 512)),
      principals: decision.principals.map((p) => ({
        principal: clip(formatEntityRef(p.principal), 512),
        decision: p.decision,
        approvalRequired: p.approvalRequired,
        determining: p.determining.map((d) => d.id),
        errors: p.errors.map((e) => e.policyId),
      })),
    },
    summary,
  );
  return createAuditEvent(
    {
      type: 'decision',
      outcome: decision.decision,
      decisionId: decision.decisionId,
      ...who(ctx),
      policySetVersion: decision.policySetVersion,
      reasons: decision.reasons.slice(0, 64).map((r) => clip(r, 2048)),
      redacted: [...(ctx.redacted ?? []), ...redacted],
      data,
    },
    deps,
  );
}

/**
 * The audit event of a refused request: an authentication failure (`auth.failure`), a refused decision request
 * (`decision`, outcome `deny`) or a refused admin call (`admin`, outcome `failure`).
 * @param error - why it was refused
 * @param ctx - the request's audit context
 */
export function refusalEvent(error: MandateError, ctx: RequestAuditContext, deps: AuditDeps & { policySetVersion?: string }): NewAuditEvent {
  const summary = { endpoint: ctx.endpoint, requestId: clip(ctx.requestId, 128), code: error.code, status: error.status };
  const actors = (ctx.actors ?? []).map((a) => clip(formatEntityRef(a), 512));
  const { data, redacted } = boundedData({ ...summary, ...(actors.length > 0 ? { actors } : {}) }, summary);
  const type = error.status === 401 ? 'auth.failure' : ctx.endpoint.startsWith('admin.') ? 'admin' : ctx.endpoint.startsWith('oauth.') ? 'token.refuse' : 'decision';
  return createAuditEvent(
    {
      type,
      outcome: type === 'decision' ? 'deny' : 'failure',
      ...who(ctx),
      ...(deps.policySetVersion === undefined ? {} : { policySetVersion: deps.policySetVersion }),
      reasons: [clip(`${error.code}: ${error.description}`, 2048)],
      redacted: [...(ctx.redacted ?? []), ...redacted],
      data,
    },
    deps,
  );
}

/**
 * The audit event of a successful admin call.
 * @param operation - e.g. `policies.read`
 * @param data - small, client-safe detail
 */
export function adminEvent(operation: string, ctx: RequestAuditContext, deps: AuditDeps & { policySetVersion?: string }, data: Record<string, unknown> = {}): NewAuditEvent {
  const summary = { endpoint: ctx.endpoint, requestId: clip(ctx.requestId, 128), operation };
  const bounded = boundedData({ ...summary, ...data }, summary);
  return createAuditEvent(
    {
      type: 'admin',
      outcome: 'success',
      ...who(ctx),
      ...(deps.policySetVersion === undefined ? {} : { policySetVersion: deps.policySetVersion }),
      redacted: bounded.redacted,
      data: bounded.data,
    },
    deps,
  );
}

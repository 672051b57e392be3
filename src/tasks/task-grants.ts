/**
 * Task grants: what the token service needs to open a task (RFC 9396 `authorization_details` of type
 * `mandate_task` in a token exchange), to renew its mandates (a rotated refresh token is the grant's handle),
 * and to hold every decision inside the task to its workflow (the Task and Workflow entities, the step).
 *
 * Pure helpers and the `TaskAuthority` port the token service calls; the store does the durable part.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { EntityRef } from '../core/decision.ts';
import { InvalidRequestError, MandateError } from '../core/errors.ts';
import type { EntityJson } from '../policy/types.ts';
import type { TaskRecord } from '../store/store.ts';
import { checkTaskState, scopeWithinWorkflow, type ResourceLookup, type ScopePair } from './step-check.ts';
import { workflowEntity, type Workflow } from './workflows.ts';

/** The RFC 9396 authorization details type that opens a task. */
export const TASK_DETAIL_TYPE = 'mandate_task';

/** `invalid_authorization_details` (RFC 9396 §5): the details are malformed, unknown or not allowed. */
export class InvalidAuthorizationDetailsError extends MandateError {
  static override readonly code: string = 'ERR_INVALID_AUTHORIZATION_DETAILS';
  override readonly code: string = 'ERR_INVALID_AUTHORIZATION_DETAILS';
  override readonly status: number = 400;
  override readonly oauthError: string = 'invalid_authorization_details';
}

/** A request to open a task. */
export interface TaskRequest {
  readonly workflow: string;
  readonly purpose: string;
}

const MAX_DETAILS_LENGTH = 8 * 1024;
const ID = /^[a-z0-9][a-z0-9._-]{0,127}$/;

/**
 * Parses the `authorization_details` form parameter (a JSON array, RFC 9396 §2). Only `mandate_task` is known;
 * exactly one may be sent. Undefined when the parameter is absent.
 */
export function parseTaskDetails(raw: string | undefined): TaskRequest | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (raw.length > MAX_DETAILS_LENGTH) throw new InvalidAuthorizationDetailsError(`authorization_details is longer than ${MAX_DETAILS_LENGTH} characters`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new InvalidAuthorizationDetailsError('authorization_details must be a JSON array of objects (RFC 9396 §2)');
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw new InvalidAuthorizationDetailsError('authorization_details must be a non-empty JSON array');
  if (parsed.length > 1) throw new InvalidAuthorizationDetailsError(`send exactly one authorization detail of type ${TASK_DETAIL_TYPE}`);
  const d = parsed[0] as Record<string, unknown>;
  if (typeof d !== 'object' || d === null || Array.isArray(d)) throw new InvalidAuthorizationDetailsError('each authorization detail must be a JSON object');
  if (d.type !== TASK_DETAIL_TYPE) throw new InvalidAuthorizationDetailsError(`unknown authorization detail type; this server knows ${TASK_DETAIL_TYPE}`);
  const unknown = Object.keys(d).filter((k) => !['type', 'workflow', 'purpose'].includes(k));
  if (unknown.length > 0) throw new InvalidAuthorizationDetailsError(`unknown members in the ${TASK_DETAIL_TYPE} detail: ${unknown.slice(0, 5).join(', ')}`);
  if (typeof d.workflow !== 'string' || !ID.test(d.workflow)) throw new InvalidAuthorizationDetailsError('the detail needs "workflow": the id of an approved workflow');
  if (typeof d.purpose !== 'string' || d.purpose.trim() === '' || d.purpose.length > 500) {
    throw new InvalidAuthorizationDetailsError('the detail needs "purpose": what the task is for, in 1..500 characters');
  }
  return { workflow: d.workflow, purpose: d.purpose.trim() };
}

/** A new refresh token (the task grant's handle) and the hash that is stored. */
export function newRefreshToken(): { token: string; hash: string } {
  const token = `mrt_${randomBytes(32).toString('base64url')}`;
  return { token, hash: hashRefreshToken(token) };
}

/** The stored form of a refresh token: base64url SHA-256. */
export function hashRefreshToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64url');
}

/** Whether a string has the shape of one of our refresh tokens (never a JWT). */
export function looksLikeRefreshToken(token: string): boolean {
  return /^mrt_[A-Za-z0-9_-]{43}$/.test(token);
}

/** The Cedar `Task` entity of a live task (authoritative over anything a caller says). */
export function taskEntity(task: TaskRecord): EntityJson {
  return {
    uid: { type: 'Task', id: task.id },
    attrs: {
      user: { type: 'User', id: task.userSub },
      agent: { type: 'Agent', id: task.agentId },
      workflow: { type: 'Workflow', id: task.workflowId },
      status: task.status,
    },
    parents: [],
  };
}

/** The entities and context every decision inside a task is made with. */
export function taskDecisionInput(task: TaskRecord, workflow: Workflow): { entities: EntityJson[]; context: Record<string, unknown> } {
  return {
    entities: [taskEntity(task), workflowEntity(workflow)],
    context: { task: { type: 'Task', id: task.id } satisfies EntityRef, workflow: { type: 'Workflow', id: workflow.id } satisfies EntityRef, step: task.stepsTaken + 1, intent: task.purpose },
  };
}

/** The task as the step check sees it. */
export function stepState(task: TaskRecord) {
  return { status: task.status, openedAt: task.openedAt, lastActivityAt: task.lastActivityAt, stepsTaken: task.stepsTaken, recentStepTimes: task.recentSteps };
}

/**
 * Why an open task may not get another mandate or step now, as a stable reason code and a message — the
 * workflow retired or changed since the task started (a task is bound to its version), its maximum duration or
 * idle time reached — or undefined.
 */
export function taskEndReason(task: TaskRecord, workflow: Workflow | undefined, nowMs: number): { code: string; message: string } | undefined {
  if (workflow === undefined) return { code: 'workflow_removed', message: `the workflow ${task.workflowId} no longer exists` };
  if (workflow.version !== task.workflowVersion) return { code: 'workflow_changed', message: `the workflow ${task.workflowId} changed since the task started` };
  const refused = checkTaskState(workflow, stepState(task), nowMs);
  if (refused === undefined || refused.code === 'step_limit' || refused.code === 'rate_limit') return undefined;
  return { code: refused.code, message: refused.message };
}

/** Whether each (action, resource) pair of a scope is within the workflow; the reason when not. */
export function scopeInWorkflow(workflow: Workflow, pairs: readonly ScopePair[], lookup?: ResourceLookup): { ok: true } | { ok: false; reason: string } {
  const r = scopeWithinWorkflow(workflow, pairs, lookup);
  return r.ok ? { ok: true } : { ok: false, reason: `${r.code}: ${r.message}` };
}

/** A purpose or workflow id quoted for messages, bounded. */
export function quoted(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}

/** Refuses a request that combines a task request with something a task cannot carry. */
export function refuseTaskCombination(what: string): never {
  throw new InvalidRequestError(`a task is opened from a user's token, not ${what}`);
}

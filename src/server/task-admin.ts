/**
 * The administrative revocations, shared by the admin API (task-routes.ts, principal-routes.ts) and the CLI
 * (`mandate tasks|users|lockdown`): ending a task, closing an agent's tasks when its status changes, disabling and
 * enabling a user, engaging and lifting lockdown. Each one is ONE store transaction that revokes everything it
 * touches (tasks, their mandates and refresh tokens, the revocation feed) together with its audit events, so a
 * revocation is durable before it is acknowledged and the very next request is denied (DESIGN.md).
 *
 * Also the wire views of tasks, disabled users, lockdown and revocation feed entries (times as ISO 8601), so that
 * the API and `--json` print the same documents.
 */
import { createAuditEvent, type NewAuditEvent } from '../audit/audit-event.ts';
import { ConflictError, NotFoundError } from '../core/errors.ts';
import type { Clock, IdGenerator } from '../core/ports.ts';
import type { LockdownState, RevocationEntry, Store, TaskRecord } from '../store/store.ts';
import { clip } from './audit-events.ts';

/** The stable reason code of a task ended by an administrator. */
export const ENDED_BY_ADMIN = 'ended_by_admin';

/** Principal statuses that stop an agent, and the reason code its open tasks are revoked with. */
export const AGENT_STATUS_REASONS = {
  suspended: 'agent_suspended',
  quarantined: 'agent_quarantined',
  retired: 'agent_retired',
} as const;

/** A status that stops an agent. */
export type StoppedAgentStatus = keyof typeof AGENT_STATUS_REASONS;

/** Task ids as Mandate issues them (UUIDs), with room for other generators; nothing that could rewrite a log line. */
export const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Bounds of a user reference: an IdP issuer and the subject it assigned. */
export const MAX_USER_ISS_LENGTH = 2048;
export const MAX_USER_SUB_LENGTH = 1024;
/** Longest free-text reason an administrator may give (kept in the audit event and the revocation feed). */
export const MAX_ADMIN_REASON_LENGTH = 500;

/** A user as Mandate knows them: the issuer and subject of their IdP token. */
export interface UserRef {
  readonly iss: string;
  readonly sub: string;
}

// C0/C1 controls and bidi overrides have no place in an issuer, a subject or a reason.
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/** Problems with a user reference (empty when it is fine), each naming the field. */
export function userRefProblems(user: { iss: unknown; sub: unknown }): string[] {
  const problems: string[] = [];
  const check = (name: string, value: unknown, max: number, url: boolean) => {
    if (typeof value !== 'string' || value === '') problems.push(`${name}: required, a non-empty string`);
    else if (value.length > max) problems.push(`${name}: at most ${max} characters`);
    else if (UNPRINTABLE.test(value)) problems.push(`${name}: control characters are not allowed`);
    else if (url && !/^https?:\/\/[^\s/]+/.test(value)) problems.push(`${name}: the issuer identifier of the user's IdP, an https URL (e.g. https://login.example.com)`);
  };
  check('iss', user.iss, MAX_USER_ISS_LENGTH, true);
  check('sub', user.sub, MAX_USER_SUB_LENGTH, false);
  return problems;
}

/** Problems with an administrator's reason (empty when it is fine). */
export function reasonProblems(reason: unknown, name = 'reason'): string[] {
  if (typeof reason !== 'string' || reason.trim() === '') return [`${name}: required, a non-empty string`];
  if (reason.length > MAX_ADMIN_REASON_LENGTH) return [`${name}: at most ${MAX_ADMIN_REASON_LENGTH} characters`];
  if (UNPRINTABLE.test(reason)) return [`${name}: control characters are not allowed`];
  return [];
}

/** Who made a change, for its audit events: the API caller's id or `cli:<os user>`, and the request. */
export interface AdminActor {
  readonly actor: string;
  readonly endpoint?: string;
  readonly requestId?: string;
  readonly traceId?: string;
}

/** What {@link createTaskAdmin} needs. */
export interface TaskAdminDeps {
  store: Pick<Store, 'tasks' | 'users' | 'lockdown'>;
  clock: Clock;
  ids?: IdGenerator | undefined;
  /**
   * The audience of Mandate's own API tokens (the issuer identifier): lockdown revokes every active mandate but
   * those, so that administrators keep the API that lifts it.
   */
  apiAudience(): string;
  /** Told of every task closed here (Shared Signals transmitter, metrics); never throws into the caller. */
  onClosed?: ((tasks: readonly TaskRecord[]) => void) | undefined;
}

/** The administrative revocations; see {@link createTaskAdmin}. */
export interface TaskAdmin {
  /**
   * Ends an open task (status `ended`, reason `ended_by_admin`), revoking everything it holds.
   * @throws NotFoundError when there is no such task; ConflictError when it is no longer open
   */
  endTask(taskId: string, by: AdminActor, comment?: string): Promise<TaskRecord>;
  /** Revokes an agent's open tasks after its status changed to `status`; resolves the tasks closed. */
  closeAgentTasks(agentId: string, status: StoppedAgentStatus, by: AdminActor, comment?: string): Promise<TaskRecord[]>;
  /** Disables a user and revokes their open tasks (reason `user_disabled`) in one transaction; resolves the tasks closed. */
  disableUser(user: UserRef, reason: string, by: AdminActor): Promise<TaskRecord[]>;
  /** Enables a disabled user again; resolves `false` (nothing written) when the user was not disabled. */
  enableUser(user: UserRef, by: AdminActor, comment?: string): Promise<boolean>;
  /** Engages lockdown: every open task revoked, every active mandate but the API's, new mandates refused. */
  engageLockdown(reason: string, by: AdminActor): Promise<{ state: LockdownState; tasks: TaskRecord[] }>;
  /** Lifts lockdown; resolves `false` (nothing written) when it was not engaged. */
  liftLockdown(by: AdminActor): Promise<boolean>;
}

/**
 * Builds the administrative revocations over the store.
 * @example
 * const admin = createTaskAdmin({ store, clock: systemClock, apiAudience: () => issuer });
 * await admin.endTask(taskId, { actor: 'cli:alice' });
 */
export function createTaskAdmin(deps: TaskAdminDeps): TaskAdmin {
  const auditDeps = { clock: deps.clock, ...(deps.ids === undefined ? {} : { ids: deps.ids }) };

  const request = (by: AdminActor): Record<string, unknown> => ({
    ...(by.endpoint === undefined ? {} : { endpoint: by.endpoint }),
    ...(by.requestId === undefined ? {} : { requestId: clip(by.requestId, 128) }),
  });
  const traced = (by: AdminActor) => (by.traceId === undefined ? {} : { traceId: by.traceId });

  /** The `task.close` event of one task, shaped as the token service writes it, plus who and why. */
  const closeEvent = (by: AdminActor, comment: string | undefined) => (task: TaskRecord): NewAuditEvent =>
    createAuditEvent(
      {
        type: 'task.close',
        outcome: 'success',
        actor: clip(by.actor, 512),
        ...traced(by),
        subject: clip(`User::${JSON.stringify(task.userSub)}`, 1024),
        resource: clip(`task:${task.id}`, 1024),
        data: {
          ...request(by),
          taskId: task.id,
          status: task.status,
          reason: task.endReason ?? null,
          workflow: task.workflowId,
          agent: task.agentId,
          ...(comment === undefined ? {} : { comment }),
        },
      },
      auditDeps,
    );

  const told = (tasks: TaskRecord[]): TaskRecord[] => {
    if (tasks.length > 0 && deps.onClosed !== undefined) {
      try {
        deps.onClosed(tasks);
      } catch {
        // A listener's failure must not undo or fail a revocation that is already durable.
      }
    }
    return tasks;
  };

  const userSubject = (user: UserRef) => clip(`User::${JSON.stringify(user.sub)}`, 1024);

  return {
    async endTask(taskId, by, comment) {
      const task = await deps.store.tasks.get(taskId);
      if (task === undefined) throw new NotFoundError(`no task ${taskId} is known to this server`);
      if (task.status !== 'open') throw new ConflictError(`task ${taskId} is already ${task.status} (${task.endReason ?? 'no reason recorded'}); nothing was changed`);
      const closed = await deps.store.tasks.close({ taskId }, 'ended', deps.clock.now(), ENDED_BY_ADMIN, closeEvent(by, comment));
      const first = told(closed)[0];
      if (first !== undefined) return first;
      // Closed by someone else between the read and the transaction.
      const now = await deps.store.tasks.get(taskId);
      throw new ConflictError(`task ${taskId} is already ${now?.status ?? 'closed'} (${now?.endReason ?? 'no reason recorded'}); nothing was changed`);
    },

    async closeAgentTasks(agentId, status, by, comment) {
      const reason = AGENT_STATUS_REASONS[status];
      return told(await deps.store.tasks.close({ agentId }, 'revoked', deps.clock.now(), reason, closeEvent(by, comment)));
    },

    async disableUser(user, reason, by) {
      const event = createAuditEvent(
        { type: 'admin', outcome: 'success', actor: clip(by.actor, 512), ...traced(by), subject: userSubject(user), data: { ...request(by), operation: 'users.disable', iss: user.iss, sub: user.sub, reason } },
        auditDeps,
      );
      return told(await deps.store.users.disable(user, deps.clock.now(), reason, event, closeEvent(by, undefined)));
    },

    async enableUser(user, by, comment) {
      const event = createAuditEvent(
        {
          type: 'admin',
          outcome: 'success',
          actor: clip(by.actor, 512),
          ...traced(by),
          subject: userSubject(user),
          data: { ...request(by), operation: 'users.enable', iss: user.iss, sub: user.sub, ...(comment === undefined ? {} : { comment }) },
        },
        auditDeps,
      );
      return deps.store.users.enable(user, event);
    },

    async engageLockdown(reason, by) {
      const at = deps.clock.now();
      const event = createAuditEvent({ type: 'lockdown', outcome: 'success', actor: clip(by.actor, 512), ...traced(by), data: { ...request(by), operation: 'lockdown.engage', reason } }, auditDeps);
      const tasks = told(await deps.store.lockdown.engage(at, by.actor, reason, deps.apiAudience(), event, closeEvent(by, undefined)));
      return { state: { active: true, since: at, by: by.actor, reason }, tasks };
    },

    async liftLockdown(by) {
      const event = createAuditEvent({ type: 'lockdown', outcome: 'success', actor: clip(by.actor, 512), ...traced(by), data: { ...request(by), operation: 'lockdown.lift' } }, auditDeps);
      return deps.store.lockdown.lift(deps.clock.now(), by.actor, event);
    },
  };
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** A task as the API and `--json` show it (times as ISO 8601; the step times are left out). */
export function taskView(t: TaskRecord): Record<string, unknown> {
  return {
    id: t.id,
    status: t.status,
    user: { iss: t.userIss, sub: t.userSub },
    agent: t.agentId,
    workflow: { id: t.workflowId, version: t.workflowVersion },
    purpose: t.purpose,
    openedAt: iso(t.openedAt),
    expiresAt: iso(t.expiresAt),
    idleTimeoutSeconds: Math.round(t.idleTimeoutMs / 1000),
    lastActivityAt: iso(t.lastActivityAt),
    stepsTaken: t.stepsTaken,
    endedAt: iso(t.endedAt),
    endReason: t.endReason ?? null,
  };
}

/** Lockdown as the API and `--json` show it. */
export function lockdownView(s: LockdownState): Record<string, unknown> {
  return { active: s.active, since: iso(s.since), by: s.by ?? null, reason: s.reason ?? null };
}

/** A disabled user as the API and `--json` show it. */
export function disabledUserView(u: { iss: string; sub: string; disabledAt: number; reason: string }): Record<string, unknown> {
  return { iss: u.iss, sub: u.sub, disabledAt: iso(u.disabledAt), reason: u.reason };
}

/** A revocation feed entry as the API shows it. */
export function revocationView(e: RevocationEntry): Record<string, unknown> {
  return { seq: e.seq, kind: e.kind, target: e.target, at: iso(e.atMs), reason: e.reason };
}

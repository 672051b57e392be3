/**
 * The SQLite implementation of tasks, task grants (refresh tokens), approvals, disabled users, the revocation
 * feed and lockdown. Every write commits with its audit event in one transaction on the main connection; a
 * revocation (a task closed, a user disabled, lockdown) is durable before the call resolves, so the very next
 * request sees it. The revocation feed is what a later issue carries to other nodes.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { parseNewAuditEvent, type NewAuditEventV1 } from '../audit/audit-event.ts';
import { ConflictError } from '../core/errors.ts';
import type { AuditInsertFn, SqliteRun } from './sqlite-identity.ts';
import type {
  ApprovalRecord,
  ApprovalStore,
  IssuedTokenRecord,
  LockdownState,
  LockdownStore,
  RefreshRotation,
  RefreshTokenRecord,
  RevocationEntry,
  RevocationFeedStore,
  TaskRecord,
  TaskSelector,
  TaskStatus,
  TaskStore,
  UserStatusStore,
} from './store.ts';

/** The task stores over one connection. */
export interface SqliteTaskStores {
  tasks: TaskStore;
  approvals: ApprovalStore;
  users: UserStatusStore;
  revocations: RevocationFeedStore;
  lockdown: LockdownStore;
}

interface TaskRow {
  id: string;
  user_iss: string;
  user_sub: string;
  agent_id: string;
  workflow_id: string;
  workflow_version: string;
  purpose: string;
  status: TaskStatus;
  opened_at: number;
  expires_at: number;
  idle_timeout_ms: number;
  last_activity_at: number;
  steps_taken: number;
  recent_steps: string;
  ended_at: number | null;
  end_reason: string | null;
  user_attrs: string;
}

interface RefreshRow {
  hash: string;
  task_id: string;
  client_id: string;
  jkt: string | null;
  issued_at: number;
  expires_at: number;
  used_at: number | null;
}

interface ApprovalRow {
  id: string;
  task_id: string | null;
  user_iss: string | null;
  user_sub: string;
  actors: string;
  action: string;
  resource: string;
  args_hash: string;
  summary: string;
  status: ApprovalRecord['status'];
  created_at: number;
  expires_at: number;
  decided_at: number | null;
  decided_by: string | null;
  reason: string | null;
  used_at: number | null;
}

function taskFrom(r: TaskRow): TaskRecord {
  return {
    id: r.id,
    userIss: r.user_iss,
    userSub: r.user_sub,
    agentId: r.agent_id,
    workflowId: r.workflow_id,
    workflowVersion: r.workflow_version,
    purpose: r.purpose,
    status: r.status,
    openedAt: r.opened_at,
    expiresAt: r.expires_at,
    idleTimeoutMs: r.idle_timeout_ms,
    lastActivityAt: r.last_activity_at,
    stepsTaken: r.steps_taken,
    recentSteps: JSON.parse(r.recent_steps) as number[],
    ...(r.ended_at === null ? {} : { endedAt: r.ended_at }),
    ...(r.end_reason === null ? {} : { endReason: r.end_reason }),
    ...(r.user_attrs === '{}' ? {} : { userAttrs: JSON.parse(r.user_attrs) as Record<string, unknown> }),
  };
}

function refreshFrom(r: RefreshRow): RefreshTokenRecord {
  return {
    hash: r.hash,
    taskId: r.task_id,
    clientId: r.client_id,
    ...(r.jkt === null ? {} : { jkt: r.jkt }),
    issuedAt: r.issued_at,
    expiresAt: r.expires_at,
    ...(r.used_at === null ? {} : { usedAt: r.used_at }),
  };
}

function approvalFrom(r: ApprovalRow): ApprovalRecord {
  return {
    id: r.id,
    ...(r.task_id === null ? {} : { taskId: r.task_id }),
    ...(r.user_iss === null ? {} : { userIss: r.user_iss }),
    userSub: r.user_sub,
    actors: JSON.parse(r.actors) as string[],
    action: r.action,
    resource: JSON.parse(r.resource) as { type: string; id: string },
    argsHash: r.args_hash,
    summary: r.summary,
    status: r.status,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    ...(r.decided_at === null ? {} : { decidedAt: r.decided_at }),
    ...(r.decided_by === null ? {} : { decidedBy: r.decided_by }),
    ...(r.reason === null ? {} : { reason: r.reason }),
    ...(r.used_at === null ? {} : { usedAt: r.used_at }),
  };
}

const MAX_RECENT_STEPS = 1000;

/** Builds the task stores. `insertToken` writes an issued token's row (the identity store's statement). */
export function createSqliteTaskStores(
  db: BetterSqlite3.Database,
  run: SqliteRun,
  insertAudit: AuditInsertFn,
  insertToken: (token: IssuedTokenRecord) => void,
): SqliteTaskStores {
  const stmt = {
    taskInsert: db.prepare(
      `INSERT INTO tasks (id, user_iss, user_sub, agent_id, workflow_id, workflow_version, purpose, status, opened_at, expires_at,
         idle_timeout_ms, last_activity_at, steps_taken, recent_steps, ended_at, end_reason, user_attrs)
       VALUES (@id, @user_iss, @user_sub, @agent_id, @workflow_id, @workflow_version, @purpose, @status, @opened_at, @expires_at,
         @idle_timeout_ms, @last_activity_at, @steps_taken, @recent_steps, NULL, NULL, @user_attrs)`,
    ),
    taskGet: db.prepare<[string], TaskRow>('SELECT * FROM tasks WHERE id = ?'),
    taskList: db.prepare<{ status: string | null; agent: string | null; limit: number }, TaskRow>(
      'SELECT * FROM tasks WHERE (@status IS NULL OR status = @status) AND (@agent IS NULL OR agent_id = @agent) ORDER BY opened_at DESC, id LIMIT @limit',
    ),
    taskStep: db.prepare<[number, string, number, string, number]>(
      "UPDATE tasks SET steps_taken = ?, recent_steps = ?, last_activity_at = ? WHERE id = ? AND status = 'open' AND steps_taken = ?",
    ),
    openById: db.prepare<[string], TaskRow>("SELECT * FROM tasks WHERE id = ? AND status = 'open'"),
    openByAgent: db.prepare<[string], TaskRow>("SELECT * FROM tasks WHERE agent_id = ? AND status = 'open'"),
    openByUser: db.prepare<[string, string], TaskRow>("SELECT * FROM tasks WHERE user_iss = ? AND user_sub = ? AND status = 'open'"),
    openByWorkflow: db.prepare<[string], TaskRow>("SELECT * FROM tasks WHERE workflow_id = ? AND status = 'open'"),
    openAll: db.prepare<[], TaskRow>("SELECT * FROM tasks WHERE status = 'open'"),
    taskClose: db.prepare<[string, number, string, string]>("UPDATE tasks SET status = ?, ended_at = ?, end_reason = ? WHERE id = ? AND status = 'open'"),
    revokeTaskTokens: db.prepare<[number, string, string]>('UPDATE issued_tokens SET revoked_at = ?, revoked_reason = ? WHERE task_id = ? AND revoked_at IS NULL'),
    burnTaskRefresh: db.prepare<[number, string]>('UPDATE refresh_tokens SET used_at = ? WHERE task_id = ? AND used_at IS NULL'),
    revokeActiveTokens: db.prepare<[number, string, number, string]>(
      'UPDATE issued_tokens SET revoked_at = ?, revoked_reason = ? WHERE revoked_at IS NULL AND expires_at > ? AND audience <> ?',
    ),
    feedInsert: db.prepare<[string, string, number, string]>('INSERT INTO revocations (kind, target, at, reason) VALUES (?, ?, ?, ?)'),
    feedSince: db.prepare<[number, number], { seq: number; kind: RevocationEntry['kind']; target: string; at: number; reason: string }>(
      'SELECT * FROM revocations WHERE seq > ? ORDER BY seq LIMIT ?',
    ),
    refreshInsert: db.prepare(
      'INSERT INTO refresh_tokens (hash, task_id, client_id, jkt, issued_at, expires_at, used_at) VALUES (@hash, @task_id, @client_id, @jkt, @issued_at, @expires_at, NULL)',
    ),
    refreshGet: db.prepare<[string], RefreshRow>('SELECT * FROM refresh_tokens WHERE hash = ?'),
    refreshUse: db.prepare<[number, string]>('UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL'),
    approvalInsert: db.prepare(
      `INSERT INTO approvals (id, task_id, user_iss, user_sub, actors, action, resource, args_hash, summary, status, created_at, expires_at)
       VALUES (@id, @task_id, @user_iss, @user_sub, @actors, @action, @resource, @args_hash, @summary, @status, @created_at, @expires_at)`,
    ),
    approvalGet: db.prepare<[string], ApprovalRow>('SELECT * FROM approvals WHERE id = ?'),
    approvalList: db.prepare<{ status: string | null; task: string | null; limit: number }, ApprovalRow>(
      'SELECT * FROM approvals WHERE (@status IS NULL OR status = @status) AND (@task IS NULL OR task_id = @task) ORDER BY created_at DESC, id LIMIT @limit',
    ),
    approvalDecide: db.prepare<[string, number, string, string | null, string, number]>(
      "UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?, reason = ? WHERE id = ? AND status = 'pending' AND expires_at > ?",
    ),
    approvalConsume: db.prepare<[number, string, string, number]>(
      "UPDATE approvals SET status = 'used', used_at = ? WHERE id = ? AND args_hash = ? AND status = 'approved' AND expires_at > ?",
    ),
    userDisable: db.prepare<[string, string, number, string]>(
      'INSERT INTO disabled_users (iss, sub, disabled_at, reason) VALUES (?, ?, ?, ?) ON CONFLICT (iss, sub) DO UPDATE SET disabled_at = excluded.disabled_at, reason = excluded.reason',
    ),
    userEnable: db.prepare<[string, string]>('DELETE FROM disabled_users WHERE iss = ? AND sub = ?'),
    userGet: db.prepare<[string, string], { iss: string }>('SELECT iss FROM disabled_users WHERE iss = ? AND sub = ?'),
    userList: db.prepare<[], { iss: string; sub: string; disabled_at: number; reason: string }>('SELECT * FROM disabled_users ORDER BY disabled_at, iss, sub'),
    lockGet: db.prepare<[], { active: number; since: number | null; by: string | null; reason: string | null }>('SELECT * FROM lockdown WHERE id = 1'),
    lockSet: db.prepare<[number, number | null, string | null, string | null]>(
      'INSERT INTO lockdown (id, active, since, by, reason) VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET active = excluded.active, since = excluded.since, by = excluded.by, reason = excluded.reason',
    ),
  };

  const openFor = (selector: TaskSelector): TaskRow[] => {
    if ('taskId' in selector) {
      const r = stmt.openById.get(selector.taskId);
      return r === undefined ? [] : [r];
    }
    if ('agentId' in selector) return stmt.openByAgent.all(selector.agentId);
    if ('user' in selector) return stmt.openByUser.all(selector.user.iss, selector.user.sub);
    if ('workflowId' in selector) return stmt.openByWorkflow.all(selector.workflowId);
    return stmt.openAll.all();
  };

  /** Closes tasks inside the caller's transaction. */
  const closeTasks = (
    selector: TaskSelector,
    status: Exclude<TaskStatus, 'open'>,
    atMs: number,
    reason: string,
    eventFor: (task: TaskRecord) => NewAuditEventV1,
  ): TaskRecord[] => {
    const closed: TaskRecord[] = [];
    for (const row of openFor(selector)) {
      if (stmt.taskClose.run(status, atMs, reason, row.id).changes !== 1) continue;
      stmt.revokeTaskTokens.run(atMs, `task ${status}: ${reason}`, row.id);
      stmt.burnTaskRefresh.run(atMs, row.id);
      stmt.feedInsert.run('task', row.id, atMs, reason);
      const task = taskFrom({ ...row, status, ended_at: atMs, end_reason: reason });
      insertAudit(parseNewAuditEvent(eventFor(task)));
      closed.push(task);
    }
    return closed;
  };

  const openTx = db.transaction((t: TaskRecord, refresh: RefreshTokenRecord, token: IssuedTokenRecord, event: NewAuditEventV1) => {
    stmt.taskInsert.run({
      id: t.id,
      user_iss: t.userIss,
      user_sub: t.userSub,
      agent_id: t.agentId,
      workflow_id: t.workflowId,
      workflow_version: t.workflowVersion,
      purpose: t.purpose,
      status: t.status,
      opened_at: t.openedAt,
      expires_at: t.expiresAt,
      idle_timeout_ms: t.idleTimeoutMs,
      last_activity_at: t.lastActivityAt,
      steps_taken: t.stepsTaken,
      recent_steps: JSON.stringify(t.recentSteps),
      user_attrs: JSON.stringify(t.userAttrs ?? {}),
    });
    stmt.refreshInsert.run({ hash: refresh.hash, task_id: refresh.taskId, client_id: refresh.clientId, jkt: refresh.jkt ?? null, issued_at: refresh.issuedAt, expires_at: refresh.expiresAt });
    insertToken(token);
    insertAudit(event);
  });

  const closeTx = db.transaction(closeTasks);

  const rotateTx = db.transaction((oldHash: string, atMs: number, next: RefreshTokenRecord, token: IssuedTokenRecord, event: NewAuditEventV1): RefreshRotation => {
    const old = stmt.refreshGet.get(oldHash);
    if (old === undefined) return 'unknown';
    if (stmt.refreshUse.run(atMs, oldHash).changes !== 1) return 'reused';
    stmt.refreshInsert.run({ hash: next.hash, task_id: next.taskId, client_id: next.clientId, jkt: next.jkt ?? null, issued_at: next.issuedAt, expires_at: next.expiresAt });
    insertToken(token);
    insertAudit(event);
    return 'rotated';
  });

  const tasks: TaskStore = {
    open: async (t, refresh, token, event) => {
      const parsed = parseNewAuditEvent(event);
      run('tasks.open', () => {
        try {
          openTx.immediate(t, refresh, token, parsed);
        } catch (err) {
          const code = (err as { code?: unknown } | null)?.code;
          if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE') throw new ConflictError(`a task with id ${t.id} already exists`, { cause: err });
          throw err;
        }
      });
    },
    get: async (id) =>
      run('tasks.get', () => {
        const r = stmt.taskGet.get(id);
        return r === undefined ? undefined : taskFrom(r);
      }),
    list: async (filter = {}) => run('tasks.list', () => stmt.taskList.all({ status: filter.status ?? null, agent: filter.agentId ?? null, limit: filter.limit ?? 1000 }).map(taskFrom)),
    recordStep: async (id, expectedSteps, update) => {
      const recent = update.recentSteps.slice(-MAX_RECENT_STEPS);
      return run('tasks.recordStep', () => stmt.taskStep.run(update.stepsTaken, JSON.stringify(recent), update.lastActivityAt, id, expectedSteps).changes === 1);
    },
    close: async (selector, status, atMs, reason, eventFor) => run('tasks.close', () => closeTx.immediate(selector, status, atMs, reason, eventFor)),
    refreshToken: async (hash) =>
      run('tasks.refreshToken', () => {
        const r = stmt.refreshGet.get(hash);
        return r === undefined ? undefined : refreshFrom(r);
      }),
    rotate: async (oldHash, atMs, next, token, event) => {
      const parsed = parseNewAuditEvent(event);
      return run('tasks.rotate', () => rotateTx.immediate(oldHash, atMs, next, token, parsed));
    },
  };

  const approvalTx = db.transaction((fn: () => boolean, event: NewAuditEventV1): boolean => {
    if (!fn()) return false;
    insertAudit(event);
    return true;
  });

  const approvals: ApprovalStore = {
    create: async (a, event) => {
      const parsed = parseNewAuditEvent(event);
      run('approvals.create', () =>
        approvalTx.immediate(() => {
          stmt.approvalInsert.run({
            id: a.id,
            task_id: a.taskId ?? null,
            user_iss: a.userIss ?? null,
            user_sub: a.userSub,
            actors: JSON.stringify(a.actors),
            action: a.action,
            resource: JSON.stringify(a.resource),
            args_hash: a.argsHash,
            summary: a.summary,
            status: a.status,
            created_at: a.createdAt,
            expires_at: a.expiresAt,
          });
          return true;
        }, parsed),
      );
    },
    get: async (id) =>
      run('approvals.get', () => {
        const r = stmt.approvalGet.get(id);
        return r === undefined ? undefined : approvalFrom(r);
      }),
    list: async (filter = {}) => run('approvals.list', () => stmt.approvalList.all({ status: filter.status ?? null, task: filter.taskId ?? null, limit: filter.limit ?? 1000 }).map(approvalFrom)),
    decide: async (id, decision, event) => {
      const parsed = parseNewAuditEvent(event);
      return run('approvals.decide', () => {
        const changed = approvalTx.immediate(
          () => stmt.approvalDecide.run(decision.status, decision.atMs, decision.by, decision.reason ?? null, id, decision.atMs).changes === 1,
          parsed,
        );
        if (!changed) return undefined;
        const r = stmt.approvalGet.get(id);
        return r === undefined ? undefined : approvalFrom(r);
      });
    },
    consume: async (id, argsHash, atMs, event) => {
      const parsed = parseNewAuditEvent(event);
      return run('approvals.consume', () => approvalTx.immediate(() => stmt.approvalConsume.run(atMs, id, argsHash, atMs).changes === 1, parsed));
    },
  };

  const disableTx = db.transaction(
    (user: { iss: string; sub: string }, atMs: number, reason: string, event: NewAuditEventV1, taskEvent: (task: TaskRecord) => NewAuditEventV1): TaskRecord[] => {
      stmt.userDisable.run(user.iss, user.sub, atMs, reason);
      stmt.feedInsert.run('user', JSON.stringify([user.iss, user.sub]), atMs, reason);
      insertAudit(event);
      return closeTasks({ user }, 'revoked', atMs, 'user_disabled', taskEvent);
    },
  );
  const enableTx = db.transaction((user: { iss: string; sub: string }, event: NewAuditEventV1): boolean => {
    if (stmt.userEnable.run(user.iss, user.sub).changes !== 1) return false;
    insertAudit(event);
    return true;
  });

  const users: UserStatusStore = {
    disable: async (user, atMs, reason, event, taskEvent) => {
      const parsed = parseNewAuditEvent(event);
      return run('users.disable', () => disableTx.immediate(user, atMs, reason, parsed, taskEvent));
    },
    enable: async (user, event) => {
      const parsed = parseNewAuditEvent(event);
      return run('users.enable', () => enableTx.immediate(user, parsed));
    },
    isDisabled: async (user) => run('users.isDisabled', () => stmt.userGet.get(user.iss, user.sub) !== undefined),
    list: async () => run('users.list', () => stmt.userList.all().map((r) => ({ iss: r.iss, sub: r.sub, disabledAt: r.disabled_at, reason: r.reason }))),
  };

  const engageTx = db.transaction(
    (atMs: number, by: string, reason: string, apiAudience: string, event: NewAuditEventV1, taskEvent: (task: TaskRecord) => NewAuditEventV1): TaskRecord[] => {
      stmt.lockSet.run(1, atMs, by, reason);
      const closed = closeTasks({ all: true }, 'revoked', atMs, 'lockdown', taskEvent);
      stmt.revokeActiveTokens.run(atMs, 'lockdown', atMs, apiAudience);
      stmt.feedInsert.run('lockdown', 'all', atMs, reason);
      insertAudit(event);
      return closed;
    },
  );
  const liftTx = db.transaction((atMs: number, by: string, event: NewAuditEventV1): boolean => {
    const cur = stmt.lockGet.get();
    if (cur === undefined || cur.active !== 1) return false;
    stmt.lockSet.run(0, atMs, by, null);
    insertAudit(event);
    return true;
  });

  const lockdown: LockdownStore = {
    get: async () =>
      run('lockdown.get', (): LockdownState => {
        const r = stmt.lockGet.get();
        if (r === undefined || r.active !== 1) return { active: false };
        return { active: true, ...(r.since === null ? {} : { since: r.since }), ...(r.by === null ? {} : { by: r.by }), ...(r.reason === null ? {} : { reason: r.reason }) };
      }),
    engage: async (atMs, by, reason, apiAudience, event, taskEvent) => {
      const parsed = parseNewAuditEvent(event);
      return run('lockdown.engage', () => engageTx.immediate(atMs, by, reason, apiAudience, parsed, taskEvent));
    },
    lift: async (atMs, by, event) => {
      const parsed = parseNewAuditEvent(event);
      return run('lockdown.lift', () => liftTx.immediate(atMs, by, parsed));
    },
  };

  const revocations: RevocationFeedStore = {
    since: async (afterSeq, limit) =>
      run('revocations.since', () => stmt.feedSince.all(afterSeq, limit).map((r) => ({ seq: r.seq, kind: r.kind, target: r.target, atMs: r.at, reason: r.reason }))),
  };

  return { tasks, approvals, users, revocations, lockdown };
}

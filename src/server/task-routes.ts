/**
 * The task admin API (issue 5): tasks, disabled users, lockdown and the revocation feed.
 * - `GET /admin/v1/tasks` (`?status=&agent=&limit=`) and `GET /admin/v1/tasks/:id` — scope `tasks:read` or `tasks:write`
 * - `POST /admin/v1/tasks/:id/end` `{ reason? }` — scope `tasks:write`: ends the task (`ended`, `ended_by_admin`)
 * - `POST /admin/v1/users/disable` `{ iss, sub, reason }`, `POST /admin/v1/users/enable` `{ iss, sub, reason? }` — scope
 *   `users:write`; `GET /admin/v1/users/disabled` — scope `users:read` or `users:write`
 * - `GET`, `POST` `{ reason }` (engage) and `DELETE` (lift) `/admin/v1/lockdown` — scope `lockdown`
 * - `GET /admin/v1/revocations?after=<seq>&limit=` — the revocation feed, scope `tasks:read` or `tasks:write`
 *
 * Every call is authenticated and audited. A change is one store transaction with its audit events (see
 * task-admin.ts), durable before the response; reads are audited through the group-committed decision log.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { InvalidRequestError, NotFoundError, ConflictError, StoreUnavailableError } from '../core/errors.ts';
import { PRINCIPAL_ID } from '../identity/registry.ts';
import type { TaskStatus } from '../store/store.ts';
import { adminEvent } from './audit-events.ts';
import { stateOf, type ServerContext } from './server-context.ts';
import {
  disabledUserView,
  lockdownView,
  reasonProblems,
  revocationView,
  TASK_ID,
  taskView,
  userRefProblems,
  type AdminActor,
  type UserRef,
} from './task-admin.ts';

/** Paths of the task admin endpoints. */
export const TASK_PATHS = {
  tasks: '/admin/v1/tasks',
  task: '/admin/v1/tasks/:id',
  end: '/admin/v1/tasks/:id/end',
  disable: '/admin/v1/users/disable',
  enable: '/admin/v1/users/enable',
  disabled: '/admin/v1/users/disabled',
  lockdown: '/admin/v1/lockdown',
  revocations: '/admin/v1/revocations',
} as const;

/** Default and largest page of `GET /admin/v1/tasks` and `GET /admin/v1/revocations`. */
export const DEFAULT_PAGE = 100;
export const MAX_PAGE = 1000;

const TASK_STATUSES = ['open', 'ended', 'revoked'] as const satisfies readonly TaskStatus[];

const bounded = (name: string) =>
  z
    .string()
    .regex(/^\d{1,15}$/, { error: `${name}: a whole number` })
    .transform(Number);

const TaskQuery = z.strictObject({
  status: z.enum(TASK_STATUSES, { error: `status: one of ${TASK_STATUSES.join(', ')}` }).optional(),
  agent: z.string().regex(PRINCIPAL_ID, { error: 'agent: a principal id' }).optional(),
  limit: bounded('limit').pipe(z.number().min(1, { error: `limit: 1..${MAX_PAGE}` }).max(MAX_PAGE, { error: `limit: 1..${MAX_PAGE}` })).optional(),
});

const FeedQuery = z.strictObject({
  after: bounded('after').optional(),
  limit: bounded('limit').pipe(z.number().min(1, { error: `limit: 1..${MAX_PAGE}` }).max(MAX_PAGE, { error: `limit: 1..${MAX_PAGE}` })).optional(),
});

function problemsOf(error: z.ZodError): string[] {
  return error.issues.map((i) => {
    if (i.code === 'unrecognized_keys') return `${i.keys.join(', ')}: not a known parameter`;
    const where = i.path.join('.');
    return where === '' || i.message.startsWith(`${where}:`) ? i.message : `${where}: ${i.message}`;
  });
}

function invalid(what: string, problems: string[]): InvalidRequestError {
  return new InvalidRequestError(`${what}: ${problems.join('; ')}`, { extra: { problems } });
}

/** Reads a query string with one value per parameter (a repeated parameter is refused, not silently merged). */
function query<T>(request: FastifyRequest, schema: z.ZodType<T>): T {
  const raw = (request.query ?? {}) as Record<string, unknown>;
  const repeated = Object.entries(raw).filter(([, v]) => Array.isArray(v)).map(([k]) => `${k}: given more than once`);
  if (repeated.length > 0) throw invalid('the query is invalid', repeated);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw invalid('the query is invalid', problemsOf(parsed.error));
  return parsed.data;
}

/** A JSON object body (or none, when `optional`), with only the given keys. */
function body(request: FastifyRequest, keys: readonly string[], optional = false): Record<string, unknown> {
  const b = request.body;
  if (b === undefined || b === null) {
    if (optional) return {};
    throw new InvalidRequestError(`send a JSON object with ${keys.join(', ')}`);
  }
  if (typeof b !== 'object' || Array.isArray(b)) throw new InvalidRequestError(`the body must be a JSON object with ${keys.join(', ')}`);
  const unknown = Object.keys(b).filter((k) => !keys.includes(k));
  if (unknown.length > 0) {
    const problems = unknown.map((k) => `${k.slice(0, 64)}: not a known field (expected ${keys.join(', ')})`);
    throw invalid('the body is invalid', problems);
  }
  return b as Record<string, unknown>;
}

function taskIdParam(params: unknown): string {
  const id = (params as { id?: unknown }).id;
  if (typeof id !== 'string' || !TASK_ID.test(id)) throw new InvalidRequestError('the task id in the path is not a valid task id');
  return id;
}

function userOf(b: Record<string, unknown>): UserRef {
  const problems = userRefProblems({ iss: b.iss, sub: b.sub });
  if (problems.length > 0) throw invalid('the user is invalid', problems);
  return { iss: b.iss as string, sub: b.sub as string };
}

/** The audit actor of an API call: the authenticated client and the request. */
function actorOf(request: FastifyRequest): AdminActor {
  const state = stateOf(request);
  return {
    actor: state.clientId ?? 'unknown',
    endpoint: state.endpoint,
    requestId: state.requestId,
    ...(state.traceId === undefined ? {} : { traceId: state.traceId }),
  };
}

/** Registers the task admin routes. */
export function registerTaskRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const admin = ctx.taskAdmin;

  // Reads are audited too (who looked), group-committed like decisions; a read the log cannot record is refused.
  const auditRead = async (operation: string, request: FastifyRequest, data: Record<string, unknown> = {}) => {
    const state = stateOf(request);
    state.auditHandled = true;
    try {
      await ctx.auditLog.record(adminEvent(operation, state, { clock: ctx.clock, ids: ctx.ids }, data));
    } catch (err) {
      ctx.metrics.countAuditRefused();
      throw new StoreUnavailableError('the audit log cannot record this request, so it was refused; retry shortly', { cause: err });
    }
  };
  // A change writes its own events in its transaction: no refusal event follows a store failure after it.
  const changed = (request: FastifyRequest) => {
    stateOf(request).auditHandled = true;
  };
  const noStore = { 'cache-control': 'no-store' };
  const route = (endpoint: string, scopes: readonly string[], extra: { allowEmptyBody?: boolean } = {}) => ({ config: { endpoint, scopes, auditRefusals: true, ...extra } });

  app.get(TASK_PATHS.tasks, route('admin.tasks.list', ['tasks:read', 'tasks:write']), async (request, reply) => {
    const q = query(request, TaskQuery);
    const limit = q.limit ?? DEFAULT_PAGE;
    // One more than asked tells whether there is more to see.
    const list = await ctx.store.tasks.list({ ...(q.status === undefined ? {} : { status: q.status }), ...(q.agent === undefined ? {} : { agentId: q.agent }), limit: limit + 1 });
    const page = list.slice(0, limit);
    await auditRead('tasks.list', request, { count: page.length, ...(q.status === undefined ? {} : { status: q.status }), ...(q.agent === undefined ? {} : { agent: q.agent }) });
    return reply.headers(noStore).send({ tasks: page.map(taskView), truncated: list.length > limit });
  });

  app.get(TASK_PATHS.task, route('admin.tasks.read', ['tasks:read', 'tasks:write']), async (request, reply) => {
    const id = taskIdParam(request.params);
    const task = await ctx.store.tasks.get(id);
    if (task === undefined) throw new NotFoundError(`no task ${id} is known to this server`);
    await auditRead('tasks.read', request, { taskId: id });
    return reply.headers(noStore).send(taskView(task));
  });

  app.post(TASK_PATHS.end, route('admin.tasks.end', ['tasks:write'], { allowEmptyBody: true }), async (request, reply) => {
    const id = taskIdParam(request.params);
    const b = body(request, ['reason'], true);
    if (b.reason !== undefined) {
      const problems = reasonProblems(b.reason);
      if (problems.length > 0) throw invalid('the body is invalid', problems);
    }
    const task = await admin.endTask(id, actorOf(request), b.reason as string | undefined);
    changed(request);
    return reply.headers(noStore).send(taskView(task));
  });

  app.post(TASK_PATHS.disable, route('admin.users.disable', ['users:write']), async (request, reply) => {
    const b = body(request, ['iss', 'sub', 'reason']);
    const problems = [...userRefProblems({ iss: b.iss, sub: b.sub }), ...reasonProblems(b.reason)];
    if (problems.length > 0) throw invalid('the request is invalid', problems);
    const user = userOf(b);
    const tasks = await admin.disableUser(user, b.reason as string, actorOf(request));
    changed(request);
    return reply.headers(noStore).send({ iss: user.iss, sub: user.sub, disabled: true, reason: b.reason, tasksRevoked: tasks.map((t) => t.id) });
  });

  app.post(TASK_PATHS.enable, route('admin.users.enable', ['users:write']), async (request, reply) => {
    const b = body(request, ['iss', 'sub', 'reason']);
    const problems = [...userRefProblems({ iss: b.iss, sub: b.sub }), ...(b.reason === undefined ? [] : reasonProblems(b.reason))];
    if (problems.length > 0) throw invalid('the request is invalid', problems);
    const user = userOf(b);
    const enabled = await admin.enableUser(user, actorOf(request), b.reason as string | undefined);
    if (!enabled) throw new NotFoundError('this user is not disabled; nothing was changed');
    changed(request);
    return reply.headers(noStore).send({ iss: user.iss, sub: user.sub, disabled: false });
  });

  app.get(TASK_PATHS.disabled, route('admin.users.list', ['users:read', 'users:write']), async (request, reply) => {
    const list = await ctx.store.users.list();
    await auditRead('users.list', request, { count: list.length });
    return reply.headers(noStore).send({ users: list.map(disabledUserView) });
  });

  app.get(TASK_PATHS.lockdown, route('admin.lockdown.read', ['lockdown']), async (request, reply) => {
    const state = await ctx.store.lockdown.get();
    await auditRead('lockdown.read', request, { active: state.active });
    return reply.headers(noStore).send(lockdownView(state));
  });

  app.post(TASK_PATHS.lockdown, route('admin.lockdown.engage', ['lockdown']), async (request, reply) => {
    const b = body(request, ['reason']);
    const problems = reasonProblems(b.reason);
    if (problems.length > 0) throw invalid('the request is invalid', problems);
    const { state, tasks } = await admin.engageLockdown(b.reason as string, actorOf(request));
    changed(request);
    ctx.logger.warn({ by: state.by, tasks: tasks.length }, 'lockdown engaged: every open task and active mandate revoked, no mandate is issued until it is lifted');
    return reply.headers(noStore).send({ ...lockdownView(state), tasksRevoked: tasks.map((t) => t.id) });
  });

  app.delete(TASK_PATHS.lockdown, route('admin.lockdown.lift', ['lockdown'], { allowEmptyBody: true }), async (request, reply) => {
    if (request.body !== undefined && request.body !== null && (typeof request.body !== 'object' || Array.isArray(request.body) || Object.keys(request.body).length > 0)) {
      throw new InvalidRequestError('lifting lockdown takes no body');
    }
    const by = actorOf(request);
    const lifted = await admin.liftLockdown(by);
    if (!lifted) throw new ConflictError('Mandate is not in lockdown; nothing was changed');
    changed(request);
    ctx.logger.warn({ by: by.actor }, 'lockdown lifted');
    return reply.headers(noStore).send(lockdownView(await ctx.store.lockdown.get()));
  });

  app.get(TASK_PATHS.revocations, route('admin.revocations.read', ['tasks:read', 'tasks:write']), async (request, reply) => {
    const q = query(request, FeedQuery);
    const after = q.after ?? 0;
    const entries = await ctx.store.revocations.since(after, q.limit ?? DEFAULT_PAGE);
    await auditRead('revocations.read', request, { after, count: entries.length });
    const last = entries.at(-1);
    return reply.headers(noStore).send({ revocations: entries.map(revocationView), next: last === undefined ? after : last.seq });
  });
}

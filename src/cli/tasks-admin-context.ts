/**
 * What `mandate tasks`, `mandate users` and `mandate lockdown` share: the administrative revocations
 * (src/server/task-admin.ts, the same path the admin API takes) over the configured store, audited as
 * `cli:<os user>`, the audience of Mandate's own API tokens that lockdown spares, and the task table.
 */
import type { MandateConfig } from '../config/index.ts';
import { systemClock } from '../core/ports.ts';
import { createTaskAdmin, reasonProblems, TASK_ID, type AdminActor, type TaskAdmin } from '../server/task-admin.ts';
import type { Store, TaskRecord } from '../store/store.ts';
import { CliUsageError, type CliArgs } from './command.ts';
import { cliActor, renderTable, terminalSafe } from './store-context.ts';

/**
 * The audience of Mandate's own API tokens, as a node of this configuration issues them: `tokens.issuer`, else
 * the URL the node listens on (what a node on a loopback address uses as its issuer).
 */
export function apiAudienceOf(config: MandateConfig): string {
  const configured = config.tokens.issuer?.replace(/\/+$/, '');
  if (configured !== undefined && configured !== '') return configured;
  const host = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host;
  return `${config.server.tls === undefined ? 'http' : 'https'}://${host}:${config.server.port}`;
}

/** The revocations over an open store, audited as `cli:<os user>`. */
export function cliTaskAdmin(store: Store, config: MandateConfig, env: Readonly<Record<string, string | undefined>>): { admin: TaskAdmin; by: AdminActor } {
  return {
    admin: createTaskAdmin({ store, clock: systemClock, apiAudience: () => apiAudienceOf(config) }),
    by: { actor: cliActor(env), endpoint: 'cli' },
  };
}

/** The `<id>` positional of a task, checked. */
export function taskIdArgument(args: CliArgs): string {
  const id = args.positionals[0];
  if (id === undefined) throw new CliUsageError('missing the task id (see mandate tasks list)');
  if (!TASK_ID.test(id)) throw new CliUsageError(`${JSON.stringify(terminalSafe(id.slice(0, 140)))} is not a task id (e.g. task_2b6f…, see mandate tasks list)`);
  return id;
}

/** The `--reason` flag, checked; undefined when absent and not required. */
export function reasonFlag(args: CliArgs, required: boolean): string | undefined {
  const reason = args.values.reason as string | undefined;
  if (reason === undefined) {
    if (required) throw new CliUsageError('--reason is required: say why, it is recorded in the audit event');
    return undefined;
  }
  const problems = reasonProblems(reason, '--reason');
  if (problems.length > 0) throw new CliUsageError(problems.join('; '));
  return reason;
}

const iso = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString());

/** Renders tasks as a table, newest first as the store lists them. */
export function renderTaskTable(list: readonly TaskRecord[]): string {
  if (list.length === 0) return 'no tasks\n';
  return renderTable(
    ['ID', 'STATUS', 'AGENT', 'USER', 'WORKFLOW', 'OPENED', 'STEPS', 'ENDED', 'REASON'],
    list.map((t) => [t.id, t.status, t.agentId, t.userSub, t.workflowId, iso(t.openedAt), String(t.stepsTaken), iso(t.endedAt), t.endReason ?? '-']),
  );
}

/** Renders one task, a field a line. */
export function renderTask(t: TaskRecord): string {
  const rows: Array<[string, string]> = [
    ['id', t.id],
    ['status', t.status],
    ['user', `${t.userSub} (issuer ${t.userIss})`],
    ['agent', t.agentId],
    ['workflow', `${t.workflowId} (version ${t.workflowVersion})`],
    ['purpose', t.purpose],
    ['opened', iso(t.openedAt)],
    ['expires', iso(t.expiresAt)],
    ['idle limit', `${Math.round(t.idleTimeoutMs / 1000)} s`],
    ['last active', iso(t.lastActivityAt)],
    ['steps', String(t.stepsTaken)],
    ['ended', iso(t.endedAt)],
    ['end reason', t.endReason ?? '-'],
  ];
  return rows.map(([k, v]) => `${`${k}:`.padEnd(13)}${terminalSafe(v)}\n`).join('');
}

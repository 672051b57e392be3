/**
 * `mandate tasks list` and `mandate tasks show <id>`: tasks from the store the configuration names, as
 * `GET /admin/v1/tasks` and `GET /admin/v1/tasks/:id` show them.
 */
import { NotFoundError } from '../core/errors.ts';
import { PRINCIPAL_ID } from '../identity/registry.ts';
import { taskView } from '../server/task-admin.ts';
import type { TaskStatus } from '../store/store.ts';
import { checkEnumFlag } from './agents-registration.ts';
import { CliUsageError, EXIT_OK, type CliCommand } from './command.ts';
import { CONFIG_OPTION, loadCliConfig, withStore } from './store-context.ts';
import { renderTask, renderTaskTable, taskIdArgument } from './tasks-admin-context.ts';

const STATUSES: readonly TaskStatus[] = ['open', 'ended', 'revoked'];
const MAX_LIMIT = 10_000;

/** The `tasks list` command. */
export const tasksListCommand: CliCommand = {
  summary: 'List tasks (newest first)',
  usage: '[--status STATUS] [--agent ID] [--limit N] [--json] [--config FILE]',
  description: `Lists tasks, newest first: id, status, agent, user, workflow, when it opened, steps taken, when and
why it closed. --json prints { tasks: [...] } as GET /admin/v1/tasks does.`,
  positionals: [],
  options: {
    config: CONFIG_OPTION,
    status: { type: 'string', placeholder: 'STATUS', description: `Only tasks with this status: ${STATUSES.join(', ')}` },
    agent: { type: 'string', placeholder: 'ID', description: 'Only tasks run by this agent' },
    limit: { type: 'string', placeholder: 'N', description: `At most N tasks (1..${MAX_LIMIT}, default 100)` },
    json: { type: 'boolean', description: 'Print JSON' },
  },
  exitCodes: ['0  listed (also when there is none)', '1  the store is unavailable or the configuration invalid', '2  usage error'],
  examples: ['mandate tasks list --status open', 'mandate tasks list --agent sales-outreach --limit 20 --json | jq .'],
  async run(args, io) {
    const status = checkEnumFlag(args, 'status', STATUSES) as TaskStatus | undefined;
    const agent = args.values.agent as string | undefined;
    if (agent !== undefined && !PRINCIPAL_ID.test(agent)) throw new CliUsageError('--agent: not a principal id (see mandate agents list)');
    const rawLimit = args.values.limit as string | undefined;
    const limit = rawLimit === undefined ? 100 : Number(rawLimit);
    if (!/^\d{1,5}$/.test(rawLimit ?? '100') || limit < 1 || limit > MAX_LIMIT) throw new CliUsageError(`--limit: a whole number 1..${MAX_LIMIT}`);
    const config = await loadCliConfig(args, io);
    const list = await withStore(config, { mustExist: true }, (store) =>
      store.tasks.list({ ...(status === undefined ? {} : { status }), ...(agent === undefined ? {} : { agentId: agent }), limit }),
    );
    io.stdout(args.values.json ? `${JSON.stringify({ tasks: list.map(taskView) }, null, 2)}\n` : renderTaskTable(list));
    return EXIT_OK;
  },
};

/** The `tasks show` command. */
export const tasksShowCommand: CliCommand = {
  summary: 'Show one task',
  usage: '<id> [--json] [--config FILE]',
  description: `Prints one task: user, agent, workflow and version, purpose, times, steps, and how it closed.
--json prints it as GET /admin/v1/tasks/<id> does.`,
  positionals: [{ name: 'id', description: 'the task id' }],
  options: { config: CONFIG_OPTION, json: { type: 'boolean', description: 'Print JSON' } },
  exitCodes: ['0  shown', '1  no such task, or the store is unavailable', '2  usage error'],
  examples: ['mandate tasks show task_2b6f0c…', 'mandate tasks show task_2b6f0c… --json'],
  async run(args, io) {
    const id = taskIdArgument(args);
    const config = await loadCliConfig(args, io);
    const task = await withStore(config, { mustExist: true }, (store) => store.tasks.get(id));
    if (task === undefined) throw new NotFoundError(`no task ${id} is known; see mandate tasks list`);
    io.stdout(args.values.json ? `${JSON.stringify(taskView(task), null, 2)}\n` : renderTask(task));
    return EXIT_OK;
  },
};

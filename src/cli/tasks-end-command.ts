/**
 * `mandate tasks end <id>`: ends an open task (status `ended`, reason `ended_by_admin`) and revokes everything it
 * holds — its mandates, the ones re-delegated from them, its refresh tokens — in one transaction with its
 * `task.close` audit event, as `POST /admin/v1/tasks/:id/end` does. The next call of the task is denied.
 */
import { ConflictError } from '../core/errors.ts';
import { taskView } from '../server/task-admin.ts';
import { EXIT_OK, type CliCommand } from './command.ts';
import { CONFIG_OPTION, loadCliConfig, terminalSafe, withStore } from './store-context.ts';
import { cliTaskAdmin, reasonFlag, taskIdArgument } from './tasks-admin-context.ts';

/** The `tasks end` command. */
export const tasksEndCommand: CliCommand = {
  summary: 'End a task now, revoking every mandate it holds',
  usage: '<id> [--reason TEXT] [--json] [--config FILE]',
  description: `Ends an open task: its status becomes ended (reason ended_by_admin), and its mandates, the ones
re-delegated from them and its refresh tokens are revoked in the same transaction as the task.close audit
event. A running node denies the task's next call at once (it reads the same store). A task already closed
is left as it is.`,
  positionals: [{ name: 'id', description: 'the task id' }],
  options: {
    config: CONFIG_OPTION,
    reason: { type: 'string', placeholder: 'TEXT', description: 'Why, recorded in the audit event (at most 500 characters)' },
    json: { type: 'boolean', description: 'Print the ended task as JSON' },
  },
  exitCodes: ['0  ended (or already closed: nothing written)', '1  no such task, or the store is unavailable', '2  usage error'],
  examples: ['mandate tasks end task_2b6f0c… --reason "customer asked us to stop"'],
  async run(args, io) {
    const id = taskIdArgument(args);
    const reason = reasonFlag(args, false);
    const config = await loadCliConfig(args, io);
    const outcome = await withStore(config, { mustExist: true }, async (store) => {
      const { admin, by } = cliTaskAdmin(store, config, io.env);
      try {
        return { task: await admin.endTask(id, by, reason), changed: true, actor: by.actor };
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        const task = await store.tasks.get(id);
        if (task === undefined) throw err;
        return { task, changed: false, actor: by.actor };
      }
    });
    const t = outcome.task;
    if (args.values.json) io.stdout(`${JSON.stringify(taskView(t), null, 2)}\n`);
    else if (!outcome.changed) io.stdout(`task ${id} is already ${t.status} (${terminalSafe(t.endReason ?? 'no reason recorded')}); nothing changed\n`);
    else io.stdout(`ended task ${id} (agent ${t.agentId}, user ${terminalSafe(t.userSub)}, workflow ${t.workflowId}): its mandates and refresh tokens are revoked. Audited as ${outcome.actor}.\n`);
    return EXIT_OK;
  },
};

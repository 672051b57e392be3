/**
 * `mandate lockdown on --reason …|off|status`: the break-glass switch. Engaging it revokes every open task and
 * every active mandate (Mandate's own API tokens excepted, so that administrators keep the API that lifts it)
 * and refuses every new mandate until it is lifted; both are audited (`lockdown` events) and durable before the
 * command returns — as `POST` / `DELETE /admin/v1/lockdown` do.
 */
import { lockdownView } from '../server/task-admin.ts';
import { EXIT_OK, type CliCommand } from './command.ts';
import { CONFIG_OPTION, loadCliConfig, terminalSafe, withStore } from './store-context.ts';
import { apiAudienceOf, cliTaskAdmin, reasonFlag } from './tasks-admin-context.ts';

/** The `lockdown on` command. */
export const lockdownOnCommand: CliCommand = {
  summary: 'Engage lockdown: revoke every open task and mandate, refuse new ones',
  usage: '--reason TEXT [--json] [--config FILE]',
  description: `Engages lockdown, in one transaction with its audit event: every open task is revoked (reason lockdown)
with its mandates and refresh tokens, every other active mandate is revoked too — except the tokens of
Mandate's own API (audience tokens.issuer, else the URL of server.host:port), so that administrators can
still lift it — and no node issues a mandate until lockdown is lifted (token requests get 503
temporarily_unavailable). Running nodes see it at once: they read the same store.`,
  positionals: [],
  options: {
    config: CONFIG_OPTION,
    reason: { type: 'string', placeholder: 'TEXT', description: 'Why (required), recorded in the audit event and the revocation feed' },
    json: { type: 'boolean', description: 'Print the outcome as JSON' },
  },
  exitCodes: ['0  engaged', '1  the store is unavailable or the configuration invalid', '2  usage error (e.g. no --reason)'],
  examples: ['mandate lockdown on --reason "signing key exposure, incident 4711"'],
  async run(args, io) {
    const reason = reasonFlag(args, true) as string;
    const config = await loadCliConfig(args, io);
    const outcome = await withStore(config, { mustExist: true }, async (store) => {
      const { admin, by } = cliTaskAdmin(store, config, io.env);
      return { ...(await admin.engageLockdown(reason, by)), actor: by.actor };
    });
    if (args.values.json) {
      io.stdout(`${JSON.stringify({ ...lockdownView(outcome.state), tasksRevoked: outcome.tasks.map((t) => t.id) }, null, 2)}\n`);
      return EXIT_OK;
    }
    io.stdout(
      `lockdown engaged: ${outcome.tasks.length} open task${outcome.tasks.length === 1 ? '' : 's'} and every active mandate revoked (tokens for ${terminalSafe(apiAudienceOf(config))} spared); no mandate is issued until mandate lockdown off. Audited as ${outcome.actor}.\n`,
    );
    if (config.tokens.issuer === undefined) io.stdout('note: tokens.issuer is not set; the API tokens spared are those for the server.host:port URL above.\n');
    return EXIT_OK;
  },
};

/** The `lockdown off` command. */
export const lockdownOffCommand: CliCommand = {
  summary: 'Lift lockdown: mandates are issued again',
  usage: '[--config FILE]',
  description: `Lifts lockdown, audited: nodes issue mandates again. What lockdown revoked stays revoked; agents open
new tasks. When Mandate is not in lockdown nothing is written.`,
  positionals: [],
  options: { config: CONFIG_OPTION },
  exitCodes: ['0  lifted (or was not engaged: nothing written)', '1  the store is unavailable or the configuration invalid', '2  usage error'],
  examples: ['mandate lockdown off'],
  async run(args, io) {
    const config = await loadCliConfig(args, io);
    const { lifted, actor } = await withStore(config, { mustExist: true }, async (store) => {
      const { admin, by } = cliTaskAdmin(store, config, io.env);
      return { lifted: await admin.liftLockdown(by), actor: by.actor };
    });
    io.stdout(lifted ? `lockdown lifted: mandates are issued again. Audited as ${actor}.\n` : 'Mandate is not in lockdown; nothing changed\n');
    return EXIT_OK;
  },
};

/** The `lockdown status` command. */
export const lockdownStatusCommand: CliCommand = {
  summary: 'Say whether Mandate is in lockdown, since when, by whom and why',
  usage: '[--json] [--config FILE]',
  description: 'Prints whether lockdown is engaged and, if so, since when, by whom and why. --json prints it as GET /admin/v1/lockdown does.',
  positionals: [],
  options: { config: CONFIG_OPTION, json: { type: 'boolean', description: 'Print JSON' } },
  exitCodes: ['0  printed (engaged or not)', '1  the store is unavailable or the configuration invalid', '2  usage error'],
  examples: ['mandate lockdown status'],
  async run(args, io) {
    const config = await loadCliConfig(args, io);
    const state = await withStore(config, { mustExist: true }, (store) => store.lockdown.get());
    if (args.values.json) io.stdout(`${JSON.stringify(lockdownView(state), null, 2)}\n`);
    else if (!state.active) io.stdout('lockdown: off\n');
    else {
      io.stdout(
        `lockdown: ON since ${state.since === undefined ? 'unknown' : new Date(state.since).toISOString()} by ${terminalSafe(state.by ?? 'unknown')}: ${terminalSafe(state.reason ?? '')}\n`,
      );
    }
    return EXIT_OK;
  },
};

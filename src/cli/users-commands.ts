/**
 * `mandate users disable|enable <iss> <sub>` and `mandate users list`: the users Mandate was told to stop acting
 * for. Users themselves live at their IdP; Mandate keeps only (issuer, subject), when and why. Disabling revokes
 * the user's open tasks (reason `user_disabled`) in the same transaction, and no agent obtains a mandate for the
 * user until they are enabled again — as `POST /admin/v1/users/disable|enable` do.
 */
import { disabledUserView, userRefProblems, type UserRef } from '../server/task-admin.ts';
import { CliUsageError, EXIT_OK, type CliArgs, type CliCommand } from './command.ts';
import { CONFIG_OPTION, loadCliConfig, renderTable, terminalSafe, withStore } from './store-context.ts';
import { cliTaskAdmin, reasonFlag } from './tasks-admin-context.ts';

const USER_POSITIONALS = [
  { name: 'iss', description: "the issuer identifier of the user's IdP (the iss of their tokens)" },
  { name: 'sub', description: 'the subject the IdP gave the user (the sub of their tokens)' },
];

function userArguments(args: CliArgs): UserRef {
  const [iss, sub] = args.positionals;
  if (iss === undefined || sub === undefined) throw new CliUsageError('give the user as <iss> <sub>: the issuer and subject of their IdP tokens');
  const problems = userRefProblems({ iss, sub });
  if (problems.length > 0) throw new CliUsageError(problems.map(terminalSafe).join('; '));
  return { iss, sub };
}

const REASON_OPTION = { type: 'string' as const, placeholder: 'TEXT', description: 'Why, recorded in the audit event (at most 500 characters)' };

/** The `users disable` command. */
export const usersDisableCommand: CliCommand = {
  summary: "Disable a user: revoke their open tasks, refuse mandates for them",
  usage: '<iss> <sub> [--reason TEXT] [--json] [--config FILE]',
  description: `Disables a user in Mandate: their open tasks are revoked (reason user_disabled) with every mandate and
refresh token they hold, in the same transaction as the audit events, and no agent obtains a mandate for them
until they are enabled again. A running node denies the next call at once (it reads the same store).
Disabling a user who already is updates the reason and revokes anything opened since.`,
  positionals: USER_POSITIONALS,
  options: { config: CONFIG_OPTION, reason: REASON_OPTION, json: { type: 'boolean', description: 'Print the outcome as JSON' } },
  exitCodes: ['0  disabled', '1  the store is unavailable or the configuration invalid', '2  usage error'],
  examples: ['mandate users disable https://login.example.com 00u1abcd --reason "left the company"'],
  async run(args, io) {
    const user = userArguments(args);
    const reason = reasonFlag(args, false) ?? 'disabled from the command line';
    const config = await loadCliConfig(args, io);
    const { tasks, actor } = await withStore(config, { mustExist: true }, async (store) => {
      const { admin, by } = cliTaskAdmin(store, config, io.env);
      return { tasks: await admin.disableUser(user, reason, by), actor: by.actor };
    });
    if (args.values.json) {
      io.stdout(`${JSON.stringify({ iss: user.iss, sub: user.sub, disabled: true, reason, tasksRevoked: tasks.map((t) => t.id) }, null, 2)}\n`);
    } else {
      io.stdout(`disabled ${terminalSafe(user.sub)} (issuer ${terminalSafe(user.iss)}): ${tasks.length} open task${tasks.length === 1 ? '' : 's'} revoked${tasks.length > 0 ? ` (${tasks.map((t) => t.id).join(', ')})` : ''}; no mandate is issued for them until mandate users enable. Audited as ${actor}.\n`);
    }
    return EXIT_OK;
  },
};

/** The `users enable` command. */
export const usersEnableCommand: CliCommand = {
  summary: 'Enable a disabled user again',
  usage: '<iss> <sub> [--reason TEXT] [--config FILE]',
  description: `Enables a user disabled in Mandate: agents may obtain mandates for them again (their revoked tasks stay
revoked; new tasks are opened as usual). A user who is not disabled is left as it is.`,
  positionals: USER_POSITIONALS,
  options: { config: CONFIG_OPTION, reason: REASON_OPTION },
  exitCodes: ['0  enabled (or was not disabled: nothing written)', '1  the store is unavailable or the configuration invalid', '2  usage error'],
  examples: ['mandate users enable https://login.example.com 00u1abcd --reason "rehired"'],
  async run(args, io) {
    const user = userArguments(args);
    const reason = reasonFlag(args, false);
    const config = await loadCliConfig(args, io);
    const { enabled, actor } = await withStore(config, { mustExist: true }, async (store) => {
      const { admin, by } = cliTaskAdmin(store, config, io.env);
      return { enabled: await admin.enableUser(user, by, reason), actor: by.actor };
    });
    io.stdout(
      enabled
        ? `enabled ${terminalSafe(user.sub)} (issuer ${terminalSafe(user.iss)}): agents may obtain mandates for them again. Audited as ${actor}.\n`
        : `${terminalSafe(user.sub)} (issuer ${terminalSafe(user.iss)}) is not disabled; nothing changed\n`,
    );
    return EXIT_OK;
  },
};

/** The `users list` command. */
export const usersListCommand: CliCommand = {
  summary: 'List disabled users',
  usage: '[--json] [--config FILE]',
  description: `Lists the users disabled in Mandate: issuer, subject, since when and why. --json prints
{ users: [...] } as GET /admin/v1/users/disabled does.`,
  positionals: [],
  options: { config: CONFIG_OPTION, json: { type: 'boolean', description: 'Print JSON' } },
  exitCodes: ['0  listed (also when there is none)', '1  the store is unavailable or the configuration invalid', '2  usage error'],
  examples: ['mandate users list', 'mandate users list --json | jq .'],
  async run(args, io) {
    const config = await loadCliConfig(args, io);
    const list = await withStore(config, { mustExist: true }, (store) => store.users.list());
    if (args.values.json) io.stdout(`${JSON.stringify({ users: list.map(disabledUserView) }, null, 2)}\n`);
    else if (list.length === 0) io.stdout('no disabled users\n');
    else io.stdout(renderTable(['ISSUER', 'SUBJECT', 'DISABLED', 'REASON'], list.map((u) => [u.iss, u.sub, new Date(u.disabledAt).toISOString(), u.reason])));
    return EXIT_OK;
  },
};

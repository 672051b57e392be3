/**
 * `mandate agents suspend <id>` and `mandate agents retire <id>`: stop a principal from authenticating, with an
 * audit event committed in the same transaction as the change.
 *
 * - suspend: `active` → `suspended`. Reversible through the admin API (`POST /admin/v1/principals/:id/status`).
 *   A quarantined or retired principal is left as it is (suspending it would only lose that status).
 * - retire: any status → `retired`, for good: the record stays for audit and inventory, never deleted.
 *
 * For a principal declared in mandate.yaml both changes hold: the file is authoritative for the fields it
 * declares, but a restart never re-activates a principal (syncConfiguredPrincipals only restricts a status).
 * The command says so, and that the file should follow (remove a retired principal from it).
 */
import { cliTaskAdmin } from './tasks-admin-context.ts';
import { ConflictError, NotFoundError } from '../core/errors.ts';
import { systemClock } from '../core/ports.ts';
import { PRINCIPAL_ID } from '../identity/registry.ts';
import { principalView } from '../server/principal-routes.ts';
import { cliPrincipalEvent } from './agents-registration.ts';
import { CliUsageError, EXIT_OK, type CliArgs, type CliCommand } from './command.ts';
import { CONFIG_OPTION, cliActor, loadCliConfig, terminalSafe, withStore } from './store-context.ts';

/** The `<id>` positional, checked: a malformed id is a usage error. */
export function principalIdArgument(args: CliArgs): string {
  const id = args.positionals[0];
  if (id === undefined) throw new CliUsageError('missing the principal id');
  if (!PRINCIPAL_ID.test(id)) {
    throw new CliUsageError(`${JSON.stringify(terminalSafe(id.slice(0, 140)))} is not a principal id (1..128 lower-case letters, digits or . _ : - starting with a letter or digit)`);
  }
  return id;
}

type Target = 'suspended' | 'retired';

function statusCommand(target: Target): CliCommand {
  const verb = target === 'suspended' ? 'suspend' : 'retire';
  return {
    summary: target === 'suspended' ? 'Suspend an agent or service (it can no longer authenticate)' : 'Retire an agent or service for good (kept for the record)',
    usage: `<id> [--reason TEXT] [--json] [--config FILE]`,
    description:
      target === 'suspended'
        ? `Sets an active principal's status to suspended: it can no longer authenticate, so it obtains no new
mandate. Mandates already issued to it stay valid until they expire (at most tokens.maxLifetimeSeconds).
Reversible through the admin API. A quarantined or retired principal is left as it is (exit 1).
For a principal declared in mandate.yaml the suspension holds: a restart never re-activates it.`
        : `Sets a principal's status to retired: it can no longer authenticate, for good; the record stays for
audit and inventory. Mandates already issued to it stay valid until they expire (at most
tokens.maxLifetimeSeconds). For a principal declared in mandate.yaml the retirement holds across restarts;
remove it from the file too (a principal removed from the file is retired anyway).`,
    positionals: [{ name: 'id', description: 'the principal id (its client_id)' }],
    options: {
      config: CONFIG_OPTION,
      reason: { type: 'string', placeholder: 'TEXT', description: 'Why, recorded in the audit event (at most 500 characters)' },
      json: { type: 'boolean', description: 'Print the updated principal as JSON' },
    },
    exitCodes: [`0  ${target} (or already ${target}: nothing written)`, '1  no such principal, a status this command does not change, or the store is unavailable', '2  usage error'],
    examples: [`mandate agents ${verb} triage-bot --reason "${target === 'suspended' ? 'key exposure under investigation' : 'replaced by triage-bot-2'}"`],
    async run(args, io) {
      const id = principalIdArgument(args);
      const reason = args.values.reason as string | undefined;
      if (reason !== undefined && (reason.trim() === '' || reason.length > 500)) throw new CliUsageError('--reason: 1..500 characters');
      const config = await loadCliConfig(args, io);
      const actor = cliActor(io.env);
      const outcome = await withStore(config, { mustExist: true }, async (store) => {
        const current = await store.principals.get(id);
        if (current === undefined) throw new NotFoundError(`no principal ${id} is registered; see mandate agents list`);
        if (current.status === target) return { principal: current, changed: false };
        if (target === 'suspended' && current.status !== 'active') {
          throw new ConflictError(`${id} is ${current.status}, not active; it already cannot authenticate, and suspend would only lose that status (nothing was written)`);
        }
        const updated = await store.principals.update(
          id,
          { status: target },
          systemClock.now(),
          cliPrincipalEvent(`principals.status.${target}`, actor, { principal: id, status: target, previous: current.status, ...(reason === undefined ? {} : { reason }) }),
        );
        if (updated === undefined) throw new NotFoundError(`no principal ${id} is registered; see mandate agents list`);
        // A stopped agent holds nothing: its open tasks (and every mandate they hold) are revoked now.
        const { admin, by } = cliTaskAdmin(store, config, io.env);
        const closed = await admin.closeAgentTasks(id, target, by, reason);
        return { principal: updated, changed: true, tasksRevoked: closed.length };
      });
      const p = outcome.principal;
      if (args.values.json) {
        io.stdout(`${JSON.stringify(principalView(p), null, 2)}\n`);
        return EXIT_OK;
      }
      if (!outcome.changed) {
        io.stdout(`${p.kind} ${id} is already ${target}; nothing changed\n`);
        return EXIT_OK;
      }
      const revoked = 'tasksRevoked' in outcome ? outcome.tasksRevoked : 0;
      io.stdout(`${target} ${p.kind} ${id}: it can no longer authenticate; ${revoked} open task${revoked === 1 ? '' : 's'} revoked with every mandate they held; other mandates already issued to it stay valid until they expire (at most ${config.tokens.maxLifetimeSeconds} s). Audited as ${actor}.\n`);
      if (p.source === 'config') {
        io.stdout(
          target === 'suspended'
            ? `note: ${id} is declared in mandate.yaml. The suspension holds across restarts (the file never re-activates a principal); only the admin API re-activates it.\n`
            : `note: ${id} is declared in mandate.yaml. The retirement holds across restarts (the file never re-activates a principal); remove it from the file so that the two agree.\n`,
        );
      }
      return EXIT_OK;
    },
  };
}

/** The `agents suspend` command. */
export const agentsSuspendCommand: CliCommand = statusCommand('suspended');
/** The `agents retire` command. */
export const agentsRetireCommand: CliCommand = statusCommand('retired');

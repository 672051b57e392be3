/**
 * `mandate approvals approve <id>` and `mandate approvals deny <id>`: a person decides a pending approval
 * request from the command line, as `POST /approvals/v1/:id/decision` does through the API. The decision is
 * written with its `approval.decide` audit event (actor `cli:<os user>`) in one transaction. Only a pending
 * request before its deadline can be decided: anything else is refused and nothing is written.
 *
 * Whoever can run this command can write the store, so the operator stands in for the API's approver role.
 */
import { createAuditEvent } from '../audit/audit-event.ts';
import { ConflictError, NotFoundError } from '../core/errors.ts';
import { systemClock } from '../core/ports.ts';
import type { ApprovalRecord } from '../store/store.ts';
import { approvalIdArgument, approvalStatus, approvalView } from './approvals-context.ts';
import { EXIT_OK, type CliCommand } from './command.ts';
import { CONFIG_OPTION, cliActor, loadCliConfig, terminalSafe, withStore } from './store-context.ts';
import { reasonFlag } from './tasks-admin-context.ts';

type Decision = 'approved' | 'denied';

const iso = (ms: number): string => new Date(ms).toISOString();

/** Why an approval cannot be decided at `nowMs`, or undefined when it can. */
function undecidable(a: ApprovalRecord, nowMs: number): string | undefined {
  const status = approvalStatus(a, nowMs);
  if (status === 'pending') return undefined;
  if (status === 'expired') return `approval ${a.id} expired at ${iso(a.expiresAt)} and can no longer be decided (the agent must ask again); nothing was written`;
  const by = a.decidedBy === undefined ? '' : ` by ${terminalSafe(a.decidedBy)}`;
  const at = a.decidedAt === undefined ? '' : ` at ${iso(a.decidedAt)}`;
  return `approval ${a.id} is already ${status}${by}${at}; only a pending approval can be decided, nothing was written`;
}

/** Builds `approvals approve` or `approvals deny`: one decision over the configured store, audited. */
function decideCommand(decision: Decision): CliCommand {
  const verb = decision === 'approved' ? 'approve' : 'deny';
  return {
    summary: decision === 'approved' ? 'Approve a pending request: the agent may make exactly that call, once' : 'Deny a pending request: the call stays refused',
    usage: '<id> [--reason TEXT] [--json] [--config FILE]',
    description: `${decision === 'approved' ? 'Approves' : 'Denies'} a pending approval request (see mandate approvals show <id> for what it asks).
The decision is written with an approval.decide audit event (actor cli:<os user>, data approvalId, decision,
taskId) in the same transaction. ${decision === 'approved'
      ? 'The agent may then repeat exactly the call it was for (same action, resource and arguments) once, before the request expires.'
      : 'The agent is refused if it repeats the call with this approval.'}
A request that is already decided, used or past its deadline is refused (exit 1) and nothing is written.`,
    positionals: [{ name: 'id', description: 'the approval id (apr_…)' }],
    options: {
      config: CONFIG_OPTION,
      reason: { type: 'string', placeholder: 'TEXT', description: 'Why, recorded with the decision and in the audit event (at most 500 characters)' },
      json: { type: 'boolean', description: 'Print the decided approval as JSON' },
    },
    exitCodes: [`0  ${decision}`, '1  no such approval, it is not pending or has expired, or the store is unavailable', '2  usage error'],
    examples: [`mandate approvals ${verb} apr_2b6f0c… --reason "${decision === 'approved' ? 'checked with the customer' : 'not in this quarter\'s plan'}"`],
    async run(args, io) {
      const id = approvalIdArgument(args);
      const reason = reasonFlag(args, false);
      const config = await loadCliConfig(args, io);
      const actor = cliActor(io.env);
      const decided = await withStore(config, { mustExist: true }, async (store) => {
        const existing = await store.approvals.get(id);
        if (existing === undefined) throw new NotFoundError(`no approval ${id} is known; see mandate approvals list`);
        const now = systemClock.now();
        const refusal = undecidable(existing, now);
        if (refusal !== undefined) throw new ConflictError(refusal);
        const event = createAuditEvent(
          {
            type: 'approval.decide',
            outcome: 'success',
            actor,
            subject: `User::${JSON.stringify(existing.userSub)}`,
            resource: `approval:${id}`,
            ...(reason === undefined ? {} : { reasons: [reason] }),
            data: { approvalId: id, decision, ...(existing.taskId === undefined ? {} : { taskId: existing.taskId }), source: 'cli' },
          },
          { clock: systemClock },
        );
        const result = await store.approvals.decide(id, { status: decision, by: actor, atMs: now, ...(reason === undefined ? {} : { reason }) }, event);
        if (result !== undefined) return result;
        // Decided by someone else, or expired, between the read and the transaction: say what it is now.
        const current = (await store.approvals.get(id)) ?? existing;
        throw new ConflictError(undecidable(current, systemClock.now()) ?? `approval ${id} could not be decided; nothing was written`);
      });
      const now = systemClock.now();
      if (args.values.json) {
        io.stdout(`${JSON.stringify(approvalView(decided, now), null, 2)}\n`);
      } else {
        const what = terminalSafe(decided.summary);
        io.stdout(
          decision === 'approved'
            ? `approved ${id} (${what}): the agent may repeat exactly this call once, until ${iso(decided.expiresAt)}. Audited as ${actor}.\n`
            : `denied ${id} (${what}): the call stays refused. Audited as ${actor}.\n`,
        );
      }
      return EXIT_OK;
    },
  };
}

/** The `approvals approve` command. */
export const approvalsApproveCommand: CliCommand = decideCommand('approved');

/** The `approvals deny` command. */
export const approvalsDenyCommand: CliCommand = decideCommand('denied');

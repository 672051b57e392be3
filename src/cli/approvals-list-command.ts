/**
 * `mandate approvals list` and `mandate approvals show <id>`: the approval requests of the store the
 * configuration names, as the approval API shows them (`GET /approvals/v1`, `GET /approvals/v1/:id`). Reads
 * are not audited: whoever can run them can read the database file.
 */
import { NotFoundError } from '../core/errors.ts';
import { systemClock } from '../core/ports.ts';
import type { ApprovalRecord, Store } from '../store/store.ts';
import { checkEnumFlag } from './agents-registration.ts';
import { APPROVAL_STATUSES, approvalIdArgument, approvalStatus, approvalView, renderApproval, renderApprovalTable, type ApprovalStatus } from './approvals-context.ts';
import { CliUsageError, EXIT_OK, type CliCommand } from './command.ts';
import { CONFIG_OPTION, loadCliConfig, withStore } from './store-context.ts';

const MAX_LIMIT = 10_000;
/** Most undecided requests read to tell pending from expired ones (each expires within minutes of being made). */
const PENDING_SCAN = 10_000;

/**
 * The approvals with `status` as a person sees it at `nowMs`, newest first. The store keeps an undecided request
 * `pending` after its deadline, so `pending` and `expired` are told apart here by the deadline.
 */
async function listApprovals(store: Store, status: ApprovalStatus | undefined, limit: number, nowMs: number): Promise<ApprovalRecord[]> {
  if (status !== 'pending' && status !== 'expired') return store.approvals.list({ ...(status === undefined ? {} : { status }), limit });
  const pending = await store.approvals.list({ status: 'pending', limit: PENDING_SCAN });
  const wanted = pending.filter((a) => approvalStatus(a, nowMs) === status);
  const stored = status === 'expired' ? await store.approvals.list({ status: 'expired', limit }) : [];
  return [...wanted, ...stored].sort((a, b) => b.createdAt - a.createdAt || a.id.localeCompare(b.id)).slice(0, limit);
}

/** The `approvals list` command. */
export const approvalsListCommand: CliCommand = {
  summary: 'List approval requests (newest first)',
  usage: '[--status STATUS] [--limit N] [--json] [--config FILE]',
  description: `Lists the requests for a person's approval of one exact call, newest first: id, status, task, user,
action, resource, when it was made, when it expires, who decided. A pending request past its deadline is
listed as expired: it can no longer be decided. --json prints { approvals: [...] } as GET /approvals/v1 does.`,
  positionals: [],
  options: {
    config: CONFIG_OPTION,
    status: { type: 'string', placeholder: 'STATUS', description: `Only approvals with this status: ${APPROVAL_STATUSES.join(', ')}` },
    limit: { type: 'string', placeholder: 'N', description: `At most N approvals (1..${MAX_LIMIT}, default 100)` },
    json: { type: 'boolean', description: 'Print JSON' },
  },
  exitCodes: ['0  listed (also when there is none)', '1  the store is unavailable or the configuration invalid', '2  usage error'],
  examples: ['mandate approvals list --status pending', 'mandate approvals list --json | jq .'],
  async run(args, io) {
    const status = checkEnumFlag(args, 'status', APPROVAL_STATUSES) as ApprovalStatus | undefined;
    const rawLimit = args.values.limit as string | undefined;
    const limit = rawLimit === undefined ? 100 : Number(rawLimit);
    if (!/^\d{1,5}$/.test(rawLimit ?? '100') || limit < 1 || limit > MAX_LIMIT) throw new CliUsageError(`--limit: a whole number 1..${MAX_LIMIT}`);
    const config = await loadCliConfig(args, io);
    const now = systemClock.now();
    const list = await withStore(config, { mustExist: true }, (store) => listApprovals(store, status, limit, now));
    io.stdout(args.values.json ? `${JSON.stringify({ approvals: list.map((a) => approvalView(a, now)) }, null, 2)}\n` : renderApprovalTable(list, now));
    return EXIT_OK;
  },
};

/** The `approvals show` command. */
export const approvalsShowCommand: CliCommand = {
  summary: 'Show one approval request',
  usage: '<id> [--json] [--config FILE]',
  description: `Prints one approval request: what the approver is asked (the summary, the action, the resource and
the hash of the exact arguments), for whom and through which agents, in which task, its deadline and how it
was decided and used. --json prints it as GET /approvals/v1/<id> does.`,
  positionals: [{ name: 'id', description: 'the approval id (apr_…)' }],
  options: { config: CONFIG_OPTION, json: { type: 'boolean', description: 'Print JSON' } },
  exitCodes: ['0  shown', '1  no such approval, or the store is unavailable', '2  usage error'],
  examples: ['mandate approvals show apr_2b6f0c…', 'mandate approvals show apr_2b6f0c… --json'],
  async run(args, io) {
    const id = approvalIdArgument(args);
    const config = await loadCliConfig(args, io);
    const approval = await withStore(config, { mustExist: true }, (store) => store.approvals.get(id));
    if (approval === undefined) throw new NotFoundError(`no approval ${id} is known; see mandate approvals list`);
    const now = systemClock.now();
    io.stdout(args.values.json ? `${JSON.stringify(approvalView(approval, now), null, 2)}\n` : renderApproval(approval, now));
    return EXIT_OK;
  },
};

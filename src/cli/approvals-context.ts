/**
 * What `mandate approvals list|show|approve|deny` share: the approval id argument, an approval's status as a
 * person sees it (a pending request past its deadline is `expired`, as the approval API says), its JSON view
 * (the shape `GET /approvals/v1/:id` returns) and its text renderings.
 */
import type { ApprovalRecord } from '../store/store.ts';
import { CliUsageError, type CliArgs } from './command.ts';
import { renderTable, terminalSafe } from './store-context.ts';

/** An approval's status as shown: the stored one, except that a pending request past its deadline is `expired`. */
export type ApprovalStatus = ApprovalRecord['status'];

/** Every status `--status` accepts. */
export const APPROVAL_STATUSES: readonly ApprovalStatus[] = ['pending', 'approved', 'denied', 'expired', 'used'];

// The approval API's id syntax (src/server/approval-routes.ts): the step gate makes `apr_<uuid>`.
const APPROVAL_ID = /^apr_[A-Za-z0-9-]{1,80}$/;

import { approvalStatus, approvalView } from '../server/approval-routes.ts';

export { approvalStatus, approvalView };

/** The `<id>` positional of an approval, checked. */
export function approvalIdArgument(args: CliArgs): string {
  const id = args.positionals[0];
  if (id === undefined) throw new CliUsageError('missing the approval id (see mandate approvals list)');
  if (!APPROVAL_ID.test(id)) throw new CliUsageError(`${JSON.stringify(terminalSafe(id.slice(0, 140)))} is not an approval id (e.g. apr_2b6f…, see mandate approvals list)`);
  return id;
}

const iso = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString());

/** Renders approvals as a table, newest first as listed. */
export function renderApprovalTable(list: readonly ApprovalRecord[], nowMs: number): string {
  if (list.length === 0) return 'no approvals\n';
  return renderTable(
    ['ID', 'STATUS', 'TASK', 'USER', 'ACTION', 'RESOURCE', 'CREATED', 'EXPIRES', 'DECIDED BY'],
    list.map((a) => [
      a.id,
      approvalStatus(a, nowMs),
      a.taskId ?? '-',
      a.userSub,
      a.action,
      `${a.resource.type}::${JSON.stringify(a.resource.id)}`,
      iso(a.createdAt),
      iso(a.expiresAt),
      a.decidedBy ?? '-',
    ]),
  );
}

/** Renders one approval, a field a line: what an approver reads before deciding. */
export function renderApproval(a: ApprovalRecord, nowMs: number): string {
  const rows: Array<[string, string]> = [
    ['id', a.id],
    ['status', approvalStatus(a, nowMs)],
    ['summary', a.summary],
    ['user', a.userIss === undefined ? a.userSub : `${a.userSub} (issuer ${a.userIss})`],
    ['agents', a.actors.length === 0 ? '-' : `${a.actors.join(', ')} (outermost first)`],
    ['action', a.action],
    ['resource', `${a.resource.type}::${JSON.stringify(a.resource.id)}`],
    ['arguments', `sha256 ${a.argsHash} (the approval is for exactly these)`],
    ['task', a.taskId ?? '-'],
    ['created', iso(a.createdAt)],
    ['expires', iso(a.expiresAt)],
    ['decided', a.decidedAt === undefined ? '-' : `${iso(a.decidedAt)} by ${a.decidedBy ?? 'unknown'}`],
    ['reason', a.reason ?? '-'],
    ['used', iso(a.usedAt)],
  ];
  return rows.map(([k, v]) => `${`${k}:`.padEnd(11)}${terminalSafe(v)}\n`).join('');
}

/**
 * What changes between two policy sets, as the access matrices show it: which principal newly may do
 * what, which may no longer, and which cells became conditional or changed their condition. Meant for
 * review of a policy change: `mandate policy analyze policies --against proposed-policies`.
 */
import { formatEntityRef, type EntityRef } from '../core/decision.ts';
import type { AccessMatrix, MatrixCell, MatrixRow, ResidualTerm } from './analyze-matrix.ts';

/**
 * A cell's outcome for comparison: a conditional cell that only forbids can take away counts as what it
 * allows (`allow` unless a forbid holds), so that adding a permit reads as "newly allows", not as
 * "now conditional" because a context-wide forbid (a risk score, an API key) still stands behind it.
 */
export type EffectiveOutcome = 'allow' | 'approval_required' | 'conditional' | 'deny';

/** The effective outcome of a cell (deny for a cell that does not exist). */
export function effectiveOutcome(cell: MatrixCell | undefined): EffectiveOutcome {
  if (!cell) return 'deny';
  return cell.outcome === 'conditional' ? (cell.allowedUnless ?? 'conditional') : cell.outcome;
}

/** The kinds of change, named by what they mean for access. */
export type MatrixChangeKind =
  | 'newly-allows'
  | 'newly-allows-with-approval'
  | 'newly-allows-conditionally'
  | 'no-longer-allows'
  | 'now-conditional'
  | 'condition-changed'
  | 'now-unconditional'
  | 'now-requires-approval'
  | 'no-longer-requires-approval';

/** One changed cell. */
export interface MatrixChange {
  kind: MatrixChangeKind;
  principal: EntityRef;
  actingFor?: EntityRef;
  action: string;
  resource: EntityRef;
  before: EffectiveOutcome;
  after: EffectiveOutcome;
  /** Residual conditions after the change: the permits it needs and the forbids that can still deny it. */
  conditions: ResidualTerm[];
  /** Policies that decide the cell after the change (or before it, for `no-longer-allows`). */
  determining: string[];
}

/**
 * Compares two matrices cell by cell. A cell present in only one (an entity or action added or removed)
 * counts as deny on the other side.
 */
export function diffAccessMatrices(before: AccessMatrix, after: AccessMatrix): MatrixChange[] {
  const index = new Map<string, { row: MatrixRow; cell: MatrixCell }>();
  for (const row of before.rows) for (const cell of row.cells) index.set(cellKey(row, cell), { row, cell });
  const changes: MatrixChange[] = [];
  const seen = new Set<string>();
  for (const row of after.rows) {
    for (const cell of row.cells) {
      const key = cellKey(row, cell);
      seen.add(key);
      const change = compare(row, index.get(key)?.cell, cell);
      if (change) changes.push(change);
    }
  }
  for (const [key, { row, cell }] of index) {
    if (seen.has(key)) continue;
    const change = compare(row, cell, undefined);
    if (change) changes.push(change);
  }
  return changes;
}

function compare(row: MatrixRow, before: MatrixCell | undefined, after: MatrixCell | undefined): MatrixChange | undefined {
  const b = effectiveOutcome(before);
  const a = effectiveOutcome(after);
  const cell = (after ?? before) as MatrixCell;
  let kind: MatrixChangeKind | undefined;
  if (b === a) {
    if (a !== 'deny' && conditionSignature(before) !== conditionSignature(after)) kind = 'condition-changed';
  } else if (a === 'deny') {
    kind = 'no-longer-allows';
  } else if (b === 'deny') {
    kind = a === 'allow' ? 'newly-allows' : a === 'approval_required' ? 'newly-allows-with-approval' : 'newly-allows-conditionally';
  } else if (a === 'conditional') {
    kind = 'now-conditional';
  } else if (b === 'conditional') {
    kind = 'now-unconditional';
  } else {
    kind = a === 'approval_required' ? 'now-requires-approval' : 'no-longer-requires-approval';
  }
  if (!kind) return undefined;
  return {
    kind,
    principal: row.principal,
    ...(row.actingFor ? { actingFor: row.actingFor } : {}),
    action: cell.action,
    resource: cell.resource,
    before: b,
    after: a,
    conditions: after?.outcome === 'conditional' ? after.residuals : [],
    determining: (a === 'deny' ? before?.determining : after?.determining) ?? [],
  };
}

/** A stable text of a cell's residual conditions, for comparing and grouping. */
export function conditionSignature(cell: Pick<MatrixCell, 'residuals'> | undefined): string {
  if (!cell) return '';
  return [...new Set(cell.residuals.map((r) => `${r.effect} ${r.policyId}: ${r.condition}`))].sort().join('\n');
}

function cellKey(row: MatrixRow, cell: MatrixCell): string {
  return `${formatEntityRef(row.principal)}|${row.actingFor ? formatEntityRef(row.actingFor) : ''}|${cell.action}|${formatEntityRef(cell.resource)}`;
}

const VERBS: Readonly<Record<MatrixChangeKind, string>> = {
  'newly-allows': 'newly allows',
  'newly-allows-with-approval': 'newly allows, with approval,',
  'newly-allows-conditionally': 'newly allows, under conditions,',
  'no-longer-allows': 'no longer allows',
  'now-conditional': 'now conditional:',
  'condition-changed': 'condition changed:',
  'now-unconditional': 'no longer needs a condition:',
  'now-requires-approval': 'now requires approval for',
  'no-longer-requires-approval': 'no longer requires approval for',
};

/** Changes of one kind, for one row and action, whose conditions involve the same policies. */
export interface ChangeGroup {
  kind: MatrixChangeKind;
  principal: EntityRef;
  actingFor?: EntityRef;
  action: string;
  resources: EntityRef[];
  /** Per resource (same order): its residual conditions after the change. */
  conditions: ResidualTerm[][];
  determining: string[];
}

/** Groups changes that differ only in the resource, so that one sentence names all of them. */
export function groupChanges(changes: readonly MatrixChange[]): ChangeGroup[] {
  const groups = new Map<string, ChangeGroup>();
  for (const c of changes) {
    const policies = [...new Set(c.conditions.map((t) => `${t.effect} ${t.policyId}`))].sort().join(',');
    const key = [c.kind, formatEntityRef(c.principal), c.actingFor ? formatEntityRef(c.actingFor) : '', c.action, policies].join('|');
    const g = groups.get(key);
    if (g) {
      g.resources.push(c.resource);
      g.conditions.push(c.conditions);
      for (const d of c.determining) if (!g.determining.includes(d)) g.determining.push(d);
    } else {
      groups.set(key, {
        kind: c.kind,
        principal: c.principal,
        ...(c.actingFor ? { actingFor: c.actingFor } : {}),
        action: c.action,
        resources: [c.resource],
        conditions: [c.conditions],
        determining: [...c.determining],
      });
    }
  }
  return [...groups.values()];
}

/**
 * The sentence for a group, e.g.
 * `newly allows Agent::"triage-bot" → send Tool::"email.send" (acting for User::"bob")`.
 */
export function describeChangeGroup(g: ChangeGroup): string {
  const who = formatEntityRef(g.principal);
  const what = `${g.action} ${g.resources.map(formatEntityRef).join(', ')}`;
  const acting = g.actingFor ? ` (acting for ${formatEntityRef(g.actingFor)})` : '';
  const by = g.determining.length > 0 && g.kind !== 'no-longer-allows' ? ` [${g.determining.join(', ')}]` : '';
  return `${VERBS[g.kind]} ${who} → ${what}${acting}${by}`;
}

/**
 * `mandate policy analyze [dir] [--against OTHER]`: the access matrix of a policy set (with residual
 * conditions where the decision depends on the request context), the changes between two sets, and the
 * lint for over-broad permits.
 */
import { formatEntityRef, type EntityRef } from '../core/decision.ts';
import { computeAccessMatrix, type AccessMatrix, type MatrixCell, type MatrixRow, type ResidualTerm } from '../policy/analyze-matrix.ts';
import { describeChangeGroup, diffAccessMatrices, groupChanges } from '../policy/analyze-diff.ts';
import { LINT_SEVERITIES, lintPolicySet, reachesSeverity, type LintFinding, type LintSeverity } from '../policy/analyze-lint.ts';
import type { CompiledPolicySet } from '../policy/compile-policy-set.ts';
import { parseEntityRef } from '../policy/parse-entity-ref.ts';
import { join } from 'node:path';
import { CliUsageError, EXIT_FAILURE, EXIT_OK, type CliCommand, type CliIo } from './command.ts';
import { loadPolicyDirectory, printRefusal } from './policy-directory-io.ts';

/** The `policy analyze` command. */
export const policyAnalyzeCommand: CliCommand = {
  summary: 'Access matrix, diff against another set, lint for over-broad permits',
  usage: '[dir] [other] [--against OTHER] [--principal REF]... [--fail-on warning|error] [--json]',
  description: `Without --against: prints the access matrix of the directory — for every user, agent and service it
defines (agents also acting for their owner), every action and every resource the action applies to —
then lints the permits. With --against OTHER (or a second directory): prints what OTHER allows that
dir does not, and the reverse, then the lint findings OTHER adds.

A cell is allow, approval (approval required), or conditional when the decision depends on the request
context; a conditional cell shows the residual policies (Cedar partial evaluation, with the context
unknown except context.delegation, which Mandate sets). Forbids whose residual condition is the same
everywhere are listed once as guards; a cell marked * is allowed unless a guard holds. Cells not listed
are deny.

Lint rules: unconditioned-effect-permit (a permit with no condition on write, delete, export, call on any
tool, or an effect action), permit-any-principal, permit-any-action; severities error, warning, info.`,
  positionals: [
    { name: 'dir', description: 'policy directory', default: 'policies' },
    { name: 'other', description: 'a second directory to compare with (same as --against)' },
  ],
  options: {
    against: { type: 'string', placeholder: 'OTHER', description: 'Compare with this policy directory: what changes from dir to OTHER' },
    principal: { type: 'string', multiple: true, placeholder: 'REF', description: 'Only rows of this principal, e.g. Agent::"triage-bot"' },
    'fail-on': { type: 'string', placeholder: 'LEVEL', description: 'Exit 1 when a lint finding is at LEVEL (warning or error) or above' },
    json: { type: 'boolean', description: 'Print matrix, changes and findings as JSON' },
  },
  exitCodes: ['0  analyzed (findings below --fail-on, or no --fail-on)', '1  a finding reaches --fail-on, or a set does not load', '2  usage error'],
  examples: [
    'mandate policy analyze examples/policies',
    'mandate policy analyze examples/overbroad --fail-on error',
    'mandate policy analyze examples/policies --against examples/overbroad',
    `mandate policy analyze examples/policies --principal 'Agent::"triage-bot"' --json`,
  ],
  async run(args, io) {
    const dir = args.positionals[0] as string;
    const againstPositional = args.positionals[1];
    const againstFlag = typeof args.values.against === 'string' ? args.values.against : undefined;
    if (againstPositional !== undefined && againstFlag !== undefined) throw new CliUsageError('give the second directory either as an argument or with --against, not both');
    const against = againstFlag ?? againstPositional;
    const failOn = parseFailOn(args.values['fail-on']);
    const only = (Array.isArray(args.values.principal) ? args.values.principal : []).map((r) => {
      try {
        return formatEntityRef(parseEntityRef(r));
      } catch (err) {
        throw new CliUsageError(`--principal: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
    const keep = (row: { principal: EntityRef }) => only.length === 0 || only.includes(formatEntityRef(row.principal));

    const base = await load(io, dir);
    if (!base) return EXIT_FAILURE;
    if (against === undefined) {
      const matrix = computeAccessMatrix(base);
      matrix.rows = matrix.rows.filter(keep);
      const findings = lintPolicySet(base);
      if (args.values.json) {
        io.stdout(`${JSON.stringify({ dir, policySetVersion: base.version, matrix, findings }, null, 2)}\n`);
      } else {
        io.stdout(renderMatrix(dir, base, matrix));
        io.stdout(renderFindings(dir, findings, 'Lint'));
      }
      return failOn && reachesSeverity(findings, failOn) ? EXIT_FAILURE : EXIT_OK;
    }

    const other = await load(io, against);
    if (!other) return EXIT_FAILURE;
    const before = computeAccessMatrix(base);
    const after = computeAccessMatrix(other);
    const changes = diffAccessMatrices(before, after).filter(keep);
    const known = new Set(lintPolicySet(base).map(findingKey));
    const added = lintPolicySet(other).filter((f) => !known.has(findingKey(f)));
    if (args.values.json) {
      io.stdout(`${JSON.stringify({ before: { dir, policySetVersion: base.version }, after: { dir: against, policySetVersion: other.version }, changes, findings: added }, null, 2)}\n`);
    } else {
      io.stdout(renderChanges(dir, against, base, other, after, changes));
      io.stdout(renderFindings(against, added, `Lint findings ${against} adds`));
    }
    return failOn && reachesSeverity(added, failOn) ? EXIT_FAILURE : EXIT_OK;
  },
};

async function load(io: CliIo, dir: string): Promise<CompiledPolicySet | undefined> {
  const loaded = await loadPolicyDirectory(io, dir);
  if (loaded.ok) return loaded.compiled;
  printRefusal(io, dir, loaded.diagnostics);
  return undefined;
}

function parseFailOn(value: unknown): LintSeverity | undefined {
  if (value === undefined) return undefined;
  if (value === 'warning' || value === 'error') return value;
  throw new CliUsageError(`--fail-on must be warning or error, not ${JSON.stringify(value)}`);
}

function findingKey(f: LintFinding): string {
  return `${f.rule}|${f.policyId}|${f.severity}`;
}

const termKey = (t: ResidualTerm) => `${t.effect} ${t.policyId}: ${t.condition}`;
/**
 * `permit id (approval) (file:line)`. In a delegated row each principal needs a permit of its own, so a
 * permit says whose half it is; a forbid denies whichever principal it holds for.
 */
const termLabel = (t: ResidualTerm, row?: MatrixRow) =>
  `${t.effect} ${t.policyId}${t.approval ? ' (approval)' : ''} (${t.source})${row?.actingFor && t.effect === 'permit' ? ` for ${formatEntityRef(t.principal)}` : ''}`;

/** Residual terms of a cell without duplicates (the same forbid can hold for the user and the agent). */
function distinctTerms(cell: MatrixCell): ResidualTerm[] {
  const seen = new Map<string, ResidualTerm>();
  for (const t of cell.residuals) if (!seen.has(termKey(t))) seen.set(termKey(t), t);
  return [...seen.values()];
}

/**
 * Forbids whose residual condition is the same text in every cell where they appear, across more than one
 * row: context-wide guards (high risk score, API keys), printed once instead of in every cell.
 */
function globalGuards(matrix: AccessMatrix): Map<string, ResidualTerm> {
  const conditions = new Map<string, Set<string>>();
  const rows = new Map<string, Set<MatrixRow>>();
  const sample = new Map<string, ResidualTerm>();
  for (const row of matrix.rows) {
    for (const cell of row.cells) {
      for (const t of cell.residuals) {
        if (t.effect !== 'forbid') continue;
        (conditions.get(t.policyId) ?? conditions.set(t.policyId, new Set()).get(t.policyId))?.add(t.condition);
        (rows.get(t.policyId) ?? rows.set(t.policyId, new Set()).get(t.policyId))?.add(row);
        sample.set(t.policyId, t);
      }
    }
  }
  const out = new Map<string, ResidualTerm>();
  for (const [id, conds] of conditions) {
    const t = sample.get(id);
    if (t && conds.size === 1 && (rows.get(id)?.size ?? 0) > 1) out.set(termKey(t), t);
  }
  return out;
}

/** Forbid terms present in every conditional cell of a row (with two or more such cells). */
function rowGuards(row: MatrixRow, global: Map<string, ResidualTerm>): Map<string, ResidualTerm> {
  const conditional = row.cells.filter((c) => c.outcome === 'conditional');
  const out = new Map<string, ResidualTerm>();
  if (conditional.length < 2) return out;
  const [first, ...rest] = conditional.map((c) => new Map(distinctTerms(c).filter((t) => t.effect === 'forbid' && !global.has(termKey(t))).map((t) => [termKey(t), t])));
  for (const [k, t] of first ?? new Map<string, ResidualTerm>()) if (rest.every((m) => m.has(k))) out.set(k, t);
  return out;
}

function rowTitle(row: { principal: EntityRef; actingFor?: EntityRef }): string {
  return `${formatEntityRef(row.principal)}${row.actingFor ? ` acting for ${formatEntityRef(row.actingFor)}` : ''}`;
}

/** Renders the matrix grouped by principal: one line per action and outcome, conditions beneath. */
export function renderMatrix(dir: string, set: CompiledPolicySet, matrix: AccessMatrix): string {
  const out: string[] = [];
  const cells = matrix.rows.reduce((n, r) => n + r.cells.length, 0);
  out.push(`Access matrix of ${dir} (${set.version.slice(0, 19)}…): ${matrix.rows.length} rows, ${cells} cells; unknown context: ${matrix.unknownContext.join(', ')}`);
  out.push('Cells not listed are deny. allow* / approval*: allowed unless a guard, or a forbid listed beneath, holds.');
  const global = globalGuards(matrix);
  if (global.size > 0) {
    out.push('', 'Guards (forbids with the same condition wherever they apply):');
    for (const t of global.values()) out.push(`  ${termLabel(t)}: ${t.condition}`);
  }
  for (const note of matrix.notes) out.push(`note: ${note}`);
  const actionWidth = Math.max(6, ...[...set.schemaInfo.actions.keys()].map((a) => a.length));

  for (const row of matrix.rows) {
    out.push('', rowTitle(row));
    const guards = rowGuards(row, global);
    for (const t of guards.values()) out.push(`  guard: ${termLabel(t)}: ${t.condition}`);
    // Group cells of one action with the same label and the same residual policies.
    const groups = new Map<string, { label: string; action: string; cells: Array<{ cell: MatrixCell; terms: ResidualTerm[] }> }>();
    for (const cell of row.cells) {
      if (cell.outcome === 'deny') continue;
      let label: string = cell.outcome === 'approval_required' ? 'approval' : cell.outcome;
      let terms: ResidualTerm[] = [];
      if (cell.outcome === 'conditional') {
        terms = distinctTerms(cell).filter((t) => !global.has(termKey(t)) && !guards.has(termKey(t)));
        if (cell.allowedUnless) label = cell.allowedUnless === 'approval_required' ? 'approval*' : 'allow*';
      }
      const key = `${cell.action}|${label}|${[...new Set(terms.map((t) => `${t.effect} ${t.policyId}`))].sort().join(',')}`;
      const g = groups.get(key) ?? groups.set(key, { label, action: cell.action, cells: [] }).get(key);
      g?.cells.push({ cell, terms });
    }
    if (groups.size === 0) out.push('  (deny everything)');
    for (const g of groups.values()) {
      out.push(`  ${g.label.padEnd(11)}  ${g.action.padEnd(actionWidth)}  ${g.cells.map((c) => formatEntityRef(c.cell.resource)).join(', ')}`);
      if (g.cells.every((c) => c.terms.length === 0)) continue;
      out.push(...renderTerms(set, row, g.cells.map((c) => ({ resource: c.cell.resource, terms: c.terms })), ' '.repeat(15)));
    }
  }
  return `${out.join('\n')}\n`;
}

/**
 * Lines for the residual terms of some cells of one row: one line per policy, its condition written once
 * when it is the same for every cell (or can be, with the resource's attribute in place of its value),
 * otherwise per resource. Permits first (what allows), then forbids (what takes it away).
 */
function renderTerms(set: CompiledPolicySet, row: MatrixRow, cells: Array<{ resource: EntityRef; terms: ResidualTerm[] }>, indent: string): string[] {
  const out: string[] = [];
  const byPolicy = new Map<string, Array<{ resource: EntityRef; term: ResidualTerm }>>();
  for (const { resource, terms } of cells) {
    for (const t of terms) {
      const k = `${t.effect} ${t.policyId}`;
      const list = byPolicy.get(k) ?? byPolicy.set(k, []).get(k);
      if (!list?.some((e) => formatEntityRef(e.resource) === formatEntityRef(resource) && e.term.condition === t.condition)) list?.push({ resource, term: t });
    }
  }
  const ordered = [...byPolicy.entries()].sort(([a], [b]) => (a.startsWith('permit') === b.startsWith('permit') ? (a < b ? -1 : 1) : a.startsWith('permit') ? -1 : 1));
  for (const [, entries] of ordered) {
    const first = entries[0]?.term as ResidualTerm;
    const distinct = new Set(entries.map((e) => e.term.condition));
    const general = distinct.size === 1 ? first.condition : generalize(set, entries);
    if (general !== undefined) {
      out.push(`${indent}${termLabel(first, row)}: ${general}`);
    } else {
      out.push(`${indent}${termLabel(first, row)}, by resource:`);
      for (const e of entries) out.push(`${indent}  ${formatEntityRef(e.resource)}: ${e.term.condition}`);
    }
  }
  return out;
}

/**
 * One condition for residuals that differ only by a value of the resource: partial evaluation substitutes
 * `resource.qualifiedName` with "crm.search" in one cell and "crm.update" in the next. If writing the
 * resource's attribute back in place of its value makes every condition the same text, that text holds
 * for each listed resource; otherwise the conditions are listed per resource.
 */
function generalize(set: CompiledPolicySet, entries: Array<{ resource: EntityRef; term: ResidualTerm }>): string | undefined {
  const attrsOf = (r: EntityRef) => set.entities.get(formatEntityRef(r))?.attrs ?? {};
  const [head] = entries;
  if (!head) return undefined;
  for (const [attr, sample] of Object.entries(attrsOf(head.resource))) {
    if (typeof sample !== 'string' && !Number.isSafeInteger(sample)) continue;
    const texts = entries.map((e) => {
      const value = attrsOf(e.resource)[attr];
      if (typeof value === 'string') return e.term.condition.split(JSON.stringify(value)).join(`resource.${attr}`);
      // An integer literal only where it stands alone (not part of a longer number or a name).
      if (Number.isSafeInteger(value)) return e.term.condition.replace(new RegExp(`(?<![\\w.])${String(value)}(?![\\w.])`, 'g'), `resource.${attr}`);
      return undefined;
    });
    if (texts[0] !== undefined && texts.every((t) => t === texts[0]) && texts[0] !== head.term.condition) return texts[0];
  }
  return undefined;
}

/** Renders lint findings compiler-style: `dir/file:line: severity: policy [rule]: message`. */
export function renderFindings(dir: string, findings: readonly LintFinding[], title: string): string {
  const counts = LINT_SEVERITIES.map((s) => [s, findings.filter((f) => f.severity === s).length] as const).filter(([, n]) => n > 0);
  const summary = counts.length === 0 ? 'no findings' : counts.map(([s, n]) => `${n} ${s}${n === 1 ? '' : 's'}`).join(', ');
  const lines = ['', `${title}: ${summary}`];
  for (const f of findings) lines.push(`${join(dir, f.file)}:${f.line}: ${f.severity}: ${f.policyId} [${f.rule}]: ${f.message}`);
  return `${lines.join('\n')}\n`;
}

function renderChanges(dir: string, against: string, base: CompiledPolicySet, other: CompiledPolicySet, after: AccessMatrix, changes: ReturnType<typeof diffAccessMatrices>): string {
  const lines = [`Changes from ${dir} (${base.version.slice(0, 19)}…) to ${against} (${other.version.slice(0, 19)}…): ${changes.length} cell${changes.length === 1 ? '' : 's'}`];
  if (changes.length === 0) lines.push('  the two sets decide every cell of the matrix alike');
  const global = globalGuards(after);
  if (changes.length > 0 && global.size > 0) {
    lines.push('Guards of the new set, not repeated below (any of them still denies where it holds):');
    for (const t of global.values()) lines.push(`  ${termLabel(t)}: ${t.condition}`);
    lines.push('');
  }
  const rows = new Map(after.rows.map((r) => [rowTitle(r), r]));
  for (const g of groupChanges(changes)) {
    lines.push(`  ${describeChangeGroup(g)}`);
    const row = rows.get(rowTitle(g)) ?? { principal: g.principal, ...(g.actingFor ? { actingFor: g.actingFor } : {}), cells: [] };
    const cells = g.resources.map((resource, i) => ({ resource, terms: (g.conditions[i] ?? []).filter((t) => !global.has(termKey(t))) }));
    lines.push(...renderTerms(other, row, cells, '      '));
  }
  return `${lines.join('\n')}\n`;
}

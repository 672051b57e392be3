/**
 * Lint for over-broad permits, on the policies' Cedar JSON form. Strict validation proves a policy is
 * well-typed, not that it is sensible: `permit (principal, action == Action::"send", resource);` validates
 * and lets every principal send through every tool. These rules find such permits:
 *
 * - `unconditioned-effect-permit`: a permit without any condition on an action that changes something —
 *   the `effect` action group (send, trigger, ...), `write`, `delete`, `export`, or `call` on any tool
 *   (the resource unconstrained, so tools that write, send or trigger included).
 * - `permit-any-principal`: a permit whose principal is unconstrained (`principal`, no `==`/`in`/`is`).
 * - `permit-any-action`: a permit whose action is unconstrained.
 *
 * Severity says how much stands between the permit and everyone: an unconditioned permit for anyone is
 * an error; a scope that only a condition narrows is a warning if the condition never mentions the
 * unconstrained variable, and info if it does. `@approval("required")` lowers an unconditioned effect
 * permit by one level, since a person still decides.
 */
import type { PolicyJson } from '@cedar-policy/cedar-wasm/nodejs';
import { formatEntityRef, type EntityRef } from '../core/decision.ts';
import { APPROVAL_ANNOTATION } from './authorize.ts';
import type { CompiledPolicySet } from './compile-policy-set.ts';
import { entityKey } from './entities.ts';
import { refOf } from './analyze-matrix.ts';

/** How serious a finding is; `--fail-on` compares against it. */
export type LintSeverity = 'error' | 'warning' | 'info';

/** Severities from most to least serious. */
export const LINT_SEVERITIES: readonly LintSeverity[] = ['error', 'warning', 'info'];

/** The rules. */
export type LintRule = 'unconditioned-effect-permit' | 'permit-any-principal' | 'permit-any-action';

/** One finding. */
export interface LintFinding {
  rule: LintRule;
  severity: LintSeverity;
  policyId: string;
  file: string;
  line: number;
  /** Why this permit is over-broad and what to do, in one or two sentences. */
  message: string;
}

/** Actions that change something, besides the members of the `effect` group. */
const CHANGING_DATA_ACTIONS = ['write', 'delete', 'export'];
/** The action group of side effects in Mandate's schema. */
const EFFECT_GROUP = 'effect';
/** Tool risks that change something. */
const RISKY_TOOL_RISKS = ['write', 'send', 'trigger'];

interface Scope {
  op: 'All' | '==' | 'in' | 'is';
  entity?: unknown;
  entities?: unknown[];
  entity_type?: string;
  in?: { entity?: unknown };
}

/** Lints every permit of `set`; findings sorted by severity, then file and line. */
export function lintPolicySet(set: CompiledPolicySet): LintFinding[] {
  const { actions, actionType } = set.schemaInfo;
  const actionAncestors = new Map<string, Set<string>>();
  for (const id of actions.keys()) {
    const seen = new Set<string>();
    const queue = [...(actions.get(id)?.memberOf ?? [])];
    while (queue.length > 0) {
      const g = queue.pop() as string;
      if (seen.has(g)) continue;
      seen.add(g);
      queue.push(...(actions.get(g)?.memberOf ?? []));
    }
    actionAncestors.set(id, seen);
  }
  // Actions a request can name: those that apply to some principal and resource (groups apply to nothing).
  const concrete = [...actions.entries()].filter(([, d]) => d.principalTypes.length > 0 && d.resourceTypes.length > 0).map(([id]) => id);
  const risky = [...set.entities.values()].filter((e) => e.uid.type === 'Tool' && RISKY_TOOL_RISKS.includes(String(e.attrs.risk))).map((e) => formatEntityRef(e.uid));

  const findings: LintFinding[] = [];
  for (const policy of set.policies) {
    if (policy.effect !== 'permit') continue;
    const json = policy.json as PolicyJson;
    const principal = json.principal as unknown as Scope;
    const action = json.action as unknown as Scope;
    const resource = json.resource as unknown as Scope;
    const unconditioned = isUnconditioned(json);
    const approval = policy.annotations[APPROVAL_ANNOTATION] === 'required';
    const covered = coveredActions(action, concrete, actionAncestors, actionType);
    const resourceOpen = resource.op === 'All' || (resource.op === 'is' && resource.in === undefined);
    const changing = covered.filter((a) => CHANGING_DATA_ACTIONS.includes(a) || actionAncestors.get(a)?.has(EFFECT_GROUP) || (a === 'call' && resourceOpen && coversTools(resource)));
    const add = (rule: LintRule, severity: LintSeverity, message: string) => findings.push({ rule, severity, policyId: policy.id, file: policy.file, line: policy.line, message });

    if (unconditioned && changing.length > 0) {
      const wide = principal.op === 'All' || (principal.op === 'is' && principal.in === undefined) || action.op === 'All';
      const severity = lower(wide ? 'error' : 'warning', approval);
      const callNote = changing.includes('call') ? ` (call on any tool${risky.length > 0 ? `, including ${risky.slice(0, 3).join(', ')}${risky.length > 3 ? ', ...' : ''}` : ''})` : '';
      add(
        'unconditioned-effect-permit',
        severity,
        `permits ${listActions(changing)}${callNote} to ${describeScope(principal, 'principal')} on ${describeScope(resource, 'resource')} with no condition: no task, argument, authentication or ${approval ? 'other' : 'approval'} check applies. Add a when { ... } condition${approval ? '' : ' or @approval("required")'}, or narrow the scope.`,
      );
    }
    if (principal.op === 'All') {
      const severity: LintSeverity = unconditioned ? 'error' : mentions(json, 'principal') ? 'info' : 'warning';
      const why = unconditioned
        ? 'every user, agent and service, active or not, is permitted'
        : mentions(json, 'principal')
          ? 'only the condition narrows who is permitted; state it in the scope (principal in Group::"...") so that it is visible and analyzable'
          : 'the condition never mentions the principal, so every user, agent and service it holds for is permitted';
      add('permit-any-principal', severity, `principal is unconstrained: ${why}.`);
    }
    if (action.op === 'All') {
      const severity: LintSeverity = unconditioned ? 'error' : mentions(json, 'action') ? 'info' : 'warning';
      const why = unconditioned
        ? 'every action — read, write, delete, export, call and every effect — is permitted'
        : mentions(json, 'action')
          ? 'only the condition narrows the actions; name them in the scope (action in [...])'
          : 'the condition never mentions the action, so every action, effects included, is permitted where it holds';
      add('permit-any-action', severity, `action is unconstrained: ${why}.`);
    }
  }
  const rank = (s: LintSeverity) => LINT_SEVERITIES.indexOf(s);
  return findings.sort((a, b) => rank(a.severity) - rank(b.severity) || (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line));
}

/** True when `findings` hold one at `level` or more serious. */
export function reachesSeverity(findings: readonly LintFinding[], level: LintSeverity): boolean {
  const limit = LINT_SEVERITIES.indexOf(level);
  return findings.some((f) => LINT_SEVERITIES.indexOf(f.severity) <= limit);
}

function lower(s: LintSeverity, approval: boolean): LintSeverity {
  if (!approval) return s;
  return s === 'error' ? 'warning' : 'info';
}

/** A policy with no condition, or only `when { true }` / `unless { false }`. */
function isUnconditioned(json: PolicyJson): boolean {
  return json.conditions.every((c) => {
    const v = (c.body as { Value?: unknown }).Value;
    return (c.kind === 'when' && v === true) || (c.kind === 'unless' && v === false);
  });
}

function mentions(json: PolicyJson, variable: string): boolean {
  return JSON.stringify(json.conditions).includes(`{"Var":"${variable}"}`);
}

function coveredActions(scope: Scope, concrete: string[], ancestors: Map<string, Set<string>>, actionType: string): string[] {
  if (scope.op === 'All') return concrete;
  const ids = (scope.entities ?? (scope.entity === undefined ? [] : [scope.entity])).map(refOf).filter((r): r is EntityRef => r !== undefined && r.type === actionType).map((r) => r.id);
  if (scope.op === '==') return concrete.filter((a) => ids.includes(a));
  return concrete.filter((a) => ids.includes(a) || ids.some((g) => ancestors.get(a)?.has(g)));
}

function coversTools(scope: Scope): boolean {
  return scope.op === 'All' || scope.entity_type === 'Tool';
}

function listActions(actions: string[]): string {
  return actions.length <= 4 ? actions.join(', ') : `${actions.slice(0, 4).join(', ')} and ${actions.length - 4} more`;
}

function describeScope(scope: Scope, what: 'principal' | 'resource'): string {
  const any = what === 'principal' ? 'every principal' : 'every resource';
  const ref = refOf(scope.entity);
  switch (scope.op) {
    case 'All':
      return any;
    case '==':
      return ref ? entityKey(ref) : any;
    case 'in':
      return ref ? (what === 'principal' ? `every member of ${entityKey(ref)}` : `everything in ${entityKey(ref)}`) : any;
    case 'is': {
      const inRef = refOf(scope.in?.entity);
      return `every ${scope.entity_type ?? 'entity'}${inRef ? ` in ${entityKey(inRef)}` : ''}`;
    }
    default:
      return any;
  }
}

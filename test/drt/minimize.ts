/**
 * Reduces a failing case after fast-check has shrunk it. Shrinking through `gen()` changes early random
 * choices and with them the meaning of all later ones, so it rarely removes one policy or one entity on its
 * own; this pass does (delta debugging over the case itself): it keeps only the failing request, then drops
 * policies, conditions, sub-expressions, entities, attributes, parents and context attributes one at a time
 * while the engines still disagree, and the reference still answers the same kind (decision or refusal).
 */
import type { Expr, PolicyModel } from './model.ts';
import { printPolicy } from './print-cedar.ts';
import { isUnsupported, type DecisionEngine, type DrtAnswer, type DrtRequest } from './engines.ts';
import { sameAnswer, type DrtCase } from './harness.ts';

/** The answers of every engine on one request of a case (undefined when an engine declines the set). */
export function answersFor(c: DrtCase, request: DrtRequest, engines: readonly DecisionEngine[]): { engine: string; answer: DrtAnswer }[] | undefined {
  const schema = c.mode === 'strict' ? c.schemaText : undefined;
  const out: { engine: string; answer: DrtAnswer }[] = [];
  for (const engine of engines) {
    const set = engine.prepare(schema, c.policies);
    if (isUnsupported(set)) return undefined;
    out.push({ engine: engine.name, answer: engine.decide(set, request) });
  }
  return out;
}

function stillFails(c: DrtCase, request: DrtRequest, engines: readonly DecisionEngine[], refKind: DrtAnswer['kind']): boolean {
  const answers = answersFor(c, request, engines);
  if (!answers || answers[0]?.answer.kind !== refKind) return false;
  const ref = answers[0].answer;
  return answers.slice(1).some((a) => !sameAnswer(ref, a.answer));
}

function withPolicies(c: DrtCase, models: Record<string, PolicyModel>): DrtCase {
  return { ...c, models, policies: Object.fromEntries(Object.entries(models).map(([id, m]) => [id, printPolicy(m, c.actionType)])) };
}

/** Simpler expressions that could stand for `e`: its Boolean operands, branches, or a constant. */
function simpler(e: Expr): Expr[] {
  const out: Expr[] = [];
  if (e.k === 'bin' && (e.op === '&&' || e.op === '||')) out.push(e.l, e.r);
  if (e.k === 'not') out.push(e.arg);
  if (e.k === 'if') out.push(e.t, e.e);
  return out;
}

/** Every way of replacing one node of `e` by a simpler one, outermost first. */
function rewrites(e: Expr): Expr[] {
  const out: Expr[] = [...simpler(e)];
  const sub = (make: (x: Expr) => Expr, child: Expr) => {
    for (const r of rewrites(child)) out.push(make(r));
  };
  switch (e.k) {
    case 'not':
    case 'neg':
      sub((x) => ({ ...e, arg: x }), e.arg);
      break;
    case 'bin':
      sub((x) => ({ ...e, l: x }), e.l);
      sub((x) => ({ ...e, r: x }), e.r);
      break;
    case 'if':
      sub((x) => ({ ...e, c: x }), e.c);
      sub((x) => ({ ...e, t: x }), e.t);
      sub((x) => ({ ...e, e: x }), e.e);
      break;
    case 'method':
      sub((x) => ({ ...e, recv: x }), e.recv);
      e.args.forEach((a, i) => sub((x) => ({ ...e, args: e.args.map((y, j) => (j === i ? x : y)) }), a));
      break;
    case 'set':
      e.items.forEach((a, i) => {
        if (e.items.length > 1) out.push({ ...e, items: e.items.filter((_, j) => j !== i) });
        sub((x) => ({ ...e, items: e.items.map((y, j) => (j === i ? x : y)) }), a);
      });
      break;
    case 'record':
      e.fields.forEach(([k, v], i) => sub((x) => ({ ...e, fields: e.fields.map((f, j) => (j === i ? ([k, x] as [string, Expr]) : f)) }), v));
      break;
    case 'attr':
    case 'has':
    case 'like':
      sub((x) => ({ ...e, e: x }), e.e);
      break;
    case 'is':
      sub((x) => ({ ...e, e: x }), e.e);
      if (e.in) {
        const { in: _in, ...rest } = e;
        out.push(rest);
      }
      break;
    default:
      break;
  }
  return out;
}

type Entity = { uid: unknown; attrs: Record<string, unknown>; parents: unknown[]; tags?: Record<string, unknown> };

/** Reduces `c` (and `request`) while the difference persists; bounded by `budget` engine rounds. */
export function minimizeCase(c0: DrtCase, request0: DrtRequest, engines: readonly DecisionEngine[], budget = 3000): { c: DrtCase; request: DrtRequest } {
  const first = answersFor(c0, request0, engines);
  const refKind = first?.[0]?.answer.kind;
  if (!refKind) return { c: c0, request: request0 };
  let c: DrtCase = { ...c0, requests: c0.requests.filter((r) => r.request === request0) };
  let request = request0;
  let rounds = 0;
  const attempt = (next: DrtCase, nextRequest: DrtRequest): boolean => {
    if (rounds++ >= budget) return false;
    if (!stillFails(next, nextRequest, engines, refKind)) return false;
    c = next;
    request = nextRequest;
    return true;
  };
  const setEntities = (entities: unknown[]) => {
    const r = { ...request, entities };
    return { next: { ...c, entities, requests: c.requests.map((x) => ({ ...x, request: r })) }, r };
  };

  let progress = true;
  while (progress && rounds < budget) {
    progress = false;
    // Policies, whole.
    for (const id of Object.keys(c.models)) {
      const { [id]: _gone, ...rest } = c.models;
      if (attempt(withPolicies(c, rest), request)) progress = true;
    }
    // Conditions, then sub-expressions.
    for (const id of Object.keys(c.models)) {
      const m = c.models[id] as PolicyModel;
      for (let i = 0; i < m.conditions.length; i++) {
        const models = { ...c.models, [id]: { ...m, conditions: m.conditions.filter((_, j) => j !== i) } };
        if (attempt(withPolicies(c, models), request)) {
          progress = true;
          break;
        }
      }
      let changed = true;
      while (changed && rounds < budget) {
        changed = false;
        const cur = c.models[id] as PolicyModel;
        for (let i = 0; i < cur.conditions.length && !changed; i++) {
          const cond = cur.conditions[i] as PolicyModel['conditions'][number];
          for (const body of rewrites(cond.body)) {
            const conditions = cur.conditions.map((x, j) => (j === i ? { ...x, body } : x));
            if (attempt(withPolicies(c, { ...c.models, [id]: { ...cur, conditions } }), request)) {
              changed = progress = true;
              break;
            }
          }
        }
      }
    }
    // Entities, whole; then their attributes, tags and parents.
    for (let i = c.entities.length - 1; i >= 0; i--) {
      const { next, r } = setEntities(c.entities.filter((_, j) => j !== i));
      if (attempt(next, r)) progress = true;
    }
    for (let i = 0; i < c.entities.length; i++) {
      const e = c.entities[i] as Entity;
      const variants: Entity[] = [
        ...Object.keys(e.attrs).map((k) => ({ ...e, attrs: Object.fromEntries(Object.entries(e.attrs).filter(([x]) => x !== k)) })),
        ...Object.keys(e.tags ?? {}).map((k) => ({ ...e, tags: Object.fromEntries(Object.entries(e.tags ?? {}).filter(([x]) => x !== k)) })),
        ...e.parents.map((_, pi) => ({ ...e, parents: e.parents.filter((__, j) => j !== pi) })),
      ];
      for (const v of variants) {
        const { next, r } = setEntities(c.entities.map((x, j) => (j === i ? v : x)));
        if (attempt(next, r)) {
          progress = true;
          break;
        }
      }
    }
    // Context attributes.
    for (const k of Object.keys(request.context)) {
      const r = { ...request, context: Object.fromEntries(Object.entries(request.context).filter(([x]) => x !== k)) };
      if (attempt({ ...c, requests: c.requests.map((x) => ({ ...x, request: r })) }, r)) progress = true;
    }
  }
  return { c, request };
}

/**
 * The differential harness: builds a random case (schema, policies, entities, requests), runs it through
 * every engine and compares the answers with the first engine's (the reference). A difference throws, so
 * fast-check shrinks the case and the report shows the smallest one found, with the seed and path to replay.
 */
import fc from 'fast-check';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { PolicyModel } from './model.ts';
import { randFromGen, type Rand } from './random.ts';
import { genSchema } from './gen-schema.ts';
import { actionEntities, contextToJson, entitiesToJson, genEntities, genRequest, type Perturbation } from './gen-data.ts';
import { countConstructs, genPolicy } from './gen-policy.ts';
import { printPolicy, printSchema } from './print-cedar.ts';
import { isUnsupported, type DecisionEngine, type DrtAnswer, type DrtRequest } from './engines.ts';
import { answersFor, minimizeCase } from './minimize.ts';

/** `strict`: policies pass strict validation and engines get the schema (Mandate's mode). `dynamic`: no schema, no validation. */
export type DrtMode = 'strict' | 'dynamic';

/** One generated case. */
export interface DrtCase {
  mode: DrtMode;
  schemaText: string;
  /** `Action` or `Ns::Action`, for printing policies. */
  actionType: string;
  policies: Record<string, string>;
  models: Record<string, PolicyModel>;
  entities: unknown[];
  entityPerturbation: Perturbation;
  requests: { request: DrtRequest; perturbation: Perturbation }[];
  /** Policies generated before validation dropped some. */
  generated: number;
}

/** Counters over a run. */
export interface DrtStats {
  cases: number;
  requests: number;
  policiesGenerated: number;
  policiesKept: number;
  /** Generated policies the parser refused (a printer bug if ever non-zero). */
  policiesUnparsed: number;
  schemasRefused: number;
  allow: number;
  deny: number;
  withErrors: number;
  refused: number;
  /** Cases an engine declined as a whole (`unsupported`), by engine. */
  unsupported: Record<string, number>;
  /** Answers that were an engine throwing rather than answering, by engine. */
  threw: Record<string, number>;
  /** Why sets were declined (ids and numbers blanked), with counts. */
  unsupportedReasons: Map<string, number>;
  constructs: Map<string, number>;
}

/** Fresh counters. */
export function newStats(): DrtStats {
  return { cases: 0, requests: 0, policiesGenerated: 0, policiesKept: 0, policiesUnparsed: 0, schemasRefused: 0, allow: 0, deny: 0, withErrors: 0, refused: 0, unsupported: {}, threw: {}, unsupportedReasons: new Map(), constructs: new Map() };
}

/** Builds a case from random choices; undefined when the generated schema is refused (counted). */
export function buildCase(r: Rand, mode: DrtMode, stats: DrtStats): DrtCase | undefined {
  const strict = mode === 'strict';
  const schema = genSchema(r);
  const schemaText = printSchema(schema);
  if (cedar.checkParseSchema(schemaText).type === 'failure') {
    stats.schemasRefused++;
    return undefined;
  }
  const { entities, pool, perturbation } = genEntities(r, schema, strict);
  const candidates: Record<string, PolicyModel> = {};
  const texts: Record<string, string> = {};
  const n = r.int(1, 6);
  for (let i = 0; i < n; i++) {
    const id = `p${i}`;
    candidates[id] = genPolicy(r, schema, pool, strict);
    texts[id] = printPolicy(candidates[id], schema.actionType);
  }
  stats.policiesGenerated += n;
  const keep = keepPolicies(schemaText, texts, strict, stats);
  const policies: Record<string, string> = {};
  const models: Record<string, PolicyModel> = {};
  for (const id of keep) {
    policies[id] = texts[id] as string;
    models[id] = candidates[id] as PolicyModel;
    countConstructs(models[id], stats.constructs);
  }
  stats.policiesKept += keep.length;

  const style = strict ? 'mixed' : 'explicit';
  // Without a schema the action hierarchy comes from the entities: usually given, sometimes not.
  const allEntities = strict || r.chance(0.1) ? entities : [...entities, ...actionEntities(schema)];
  const entityJson = entitiesToJson(allEntities, style);
  const requests: DrtCase['requests'] = [];
  // Now and then many requests against one prepared set (the compiled path caches candidates per request type).
  const count = r.chance(0.1) ? 10 : r.int(1, 3);
  for (let i = 0; i < count; i++) {
    const kept = Object.values(models);
    const aim = kept.length > 0 && r.chance(0.6) ? r.pick(kept) : undefined;
    const { request, perturbation: p } = genRequest(r, schema, pool, strict, aim);
    requests.push({
      request: {
        principal: request.principal,
        action: { type: schema.actionType, id: request.action },
        resource: request.resource,
        context: contextToJson(request.context, style),
        entities: entityJson,
      },
      perturbation: p,
    });
  }
  return { mode, schemaText, actionType: schema.actionType, policies, models, entities: entityJson, entityPerturbation: perturbation, requests, generated: n };
}

/** Ids of the policies to keep: those that parse, and in strict mode pass strict validation. */
function keepPolicies(schemaText: string, texts: Record<string, string>, strict: boolean, stats: DrtStats): string[] {
  const ids = Object.keys(texts);
  const parses = (id: string) => cedar.checkParsePolicySet({ staticPolicies: { [id]: texts[id] as string } }).type === 'success';
  let candidates = ids;
  if (cedar.checkParsePolicySet({ staticPolicies: texts }).type === 'failure') {
    candidates = ids.filter(parses);
    stats.policiesUnparsed += ids.length - candidates.length;
  }
  if (!strict || candidates.length === 0) return candidates;
  const answer = cedar.validate({
    schema: schemaText,
    policies: { staticPolicies: Object.fromEntries(candidates.map((id) => [id, texts[id] as string])) },
    validationSettings: { mode: 'strict' },
  });
  if (answer.type === 'failure') return [];
  const bad = new Set(answer.validationErrors.map((e) => e.policyId));
  return candidates.filter((id) => !bad.has(id));
}

/** Two answers agree when both refuse, or both decide alike with the same determining and erroring sets. */
export function sameAnswer(a: DrtAnswer, b: DrtAnswer): boolean {
  if (a.kind === 'refused' || b.kind === 'refused') return a.kind === b.kind;
  return a.decision === b.decision && a.determining.join('\n') === b.determining.join('\n') && a.erroring.join('\n') === b.erroring.join('\n');
}

/** A difference between engines; its message is the full case. */
export class DrtDifference extends Error {
  override name = 'DrtDifference';
  readonly case: DrtCase;
  readonly request: DrtRequest;
  readonly perturbation: Perturbation;

  constructor(message: string, c: DrtCase, request: DrtRequest, perturbation: Perturbation) {
    super(message);
    this.case = c;
    this.request = request;
    this.perturbation = perturbation;
  }
}

/** Runs one case through the engines; throws {@link DrtDifference} at the first disagreement. */
export function runCase(c: DrtCase, engines: readonly DecisionEngine[], stats: DrtStats): void {
  stats.cases++;
  const schema = c.mode === 'strict' ? c.schemaText : undefined;
  const prepared: { engine: DecisionEngine; set: unknown }[] = [];
  for (const engine of engines) {
    const set = engine.prepare(schema, c.policies);
    if (isUnsupported(set)) {
      stats.unsupported[engine.name] = (stats.unsupported[engine.name] ?? 0) + 1;
      for (const reason of new Set(set.unsupported.split('; ').map((x) => `${engine.name}: ${x.replace(/^p\d+: /, '').replace(/-?\d{6,}/g, 'N')}`))) {
        stats.unsupportedReasons.set(reason, (stats.unsupportedReasons.get(reason) ?? 0) + 1);
      }
      if (prepared.length === 0) return;
      continue;
    }
    prepared.push({ engine, set });
  }
  for (const { request, perturbation } of c.requests) {
    stats.requests++;
    const answers = prepared.map(({ engine, set }) => ({ engine: engine.name, answer: engine.decide(set, request) }));
    for (const a of answers) {
      if (a.answer.kind === 'refused' && /^(engine threw|THREW)/.test(a.answer.message)) stats.threw[a.engine] = (stats.threw[a.engine] ?? 0) + 1;
    }
    const ref = answers[0];
    if (!ref) return;
    if (ref.answer.kind === 'refused') stats.refused++;
    else {
      if (ref.answer.decision === 'allow') stats.allow++;
      else stats.deny++;
      if (ref.answer.erroring.length > 0) stats.withErrors++;
    }
    for (const other of answers.slice(1)) {
      if (!sameAnswer(ref.answer, other.answer)) {
        throw new DrtDifference(formatCase(c, request, perturbation, [ref, other]), c, request, perturbation);
      }
    }
  }
}

/** The whole case as text: what to paste into a bug report. */
export function formatCase(c: DrtCase, request: DrtRequest, perturbation: Perturbation, answers: { engine: string; answer: DrtAnswer }[]): string {
  const lines: string[] = [];
  lines.push(`mode: ${c.mode}${c.mode === 'dynamic' ? ' (no schema given to the engines; policies not validated)' : ''}`);
  lines.push('--- schema.cedarschema');
  lines.push(c.schemaText.trimEnd());
  lines.push('--- policies');
  for (const [id, text] of Object.entries(c.policies)) lines.push(`// id: ${id}\n${text}`);
  if (Object.keys(c.policies).length === 0) lines.push('(none)');
  lines.push(`--- entities${c.entityPerturbation ? ` (deliberately non-conforming: ${c.entityPerturbation})` : ''}`);
  lines.push(c.entities.length === 0 ? '[]' : `[\n${c.entities.map((e) => ` ${JSON.stringify(e)}`).join(',\n')}\n]`);
  lines.push(`--- request${perturbation ? ` (deliberately non-conforming: ${perturbation})` : ''}`);
  lines.push(JSON.stringify({ principal: request.principal, action: request.action, resource: request.resource, context: request.context }, null, 1).replace(/\n {2,}/g, ' ').replace(/\n\s*}/g, ' }'));
  lines.push('--- answers');
  for (const a of answers) lines.push(`${a.engine}: ${JSON.stringify(a.answer)}`);
  return lines.join('\n');
}

/** Options of {@link runDrt}. */
export interface DrtRunOptions {
  mode: DrtMode;
  engines: readonly DecisionEngine[];
  numRuns: number;
  seed: number;
  /** Replays one counterexample (from a previous report): the generated case's index, `--path` of the report. */
  path?: string;
  stats?: DrtStats;
  /** Stops generating new cases after this long (the cases run so far count; not a failure). */
  timeLimitMs?: number;
  /** Case runs spent shrinking a failure (default 400; the reduction pass does the rest). */
  maxShrinkRuns?: number;
  /** Called after every case. */
  onCase?: (stats: DrtStats) => void;
}

/** What a run found. */
export interface DrtRunResult {
  ok: boolean;
  stats: DrtStats;
  /** For a failure: the shrunk case, the answers and how to replay it. */
  report?: string;
  seed: number;
  path?: string;
}

/** Runs `numRuns` random cases through the engines with fast-check, shrinking any difference. */
export function runDrt(options: DrtRunOptions): DrtRunResult {
  const stats = options.stats ?? newStats();
  const maxShrinkRuns = options.maxShrinkRuns ?? 400;
  let failing = false;
  let shrinkRuns = 0;
  const property = fc.property(fc.gen(), (g) => {
    // Shrinking through `gen()` re-runs whole cases; past the budget every run passes, which ends shrinking
    // at the smallest failure found so far (deterministically, so --path still replays it); the reduction
    // pass does the rest, faster.
    if (failing && ++shrinkRuns > maxShrinkRuns) return;
    const c = buildCase(randFromGen(g), options.mode, stats);
    try {
      if (c) runCase(c, options.engines, stats);
    } catch (err) {
      failing = true;
      throw err;
    }
    options.onCase?.(stats);
  });
  // Replay: fast-check replays a path by shrinking without running the property, but `gen()` values learn
  // their shrinks only from running it, so a path deeper than its first segment cannot be walked. The first
  // segment (which generated case failed) is enough: shrinking and reduction from there are deterministic,
  // and lead to the same report.
  const replayRun = options.path?.split(':')[0];
  const details = fc.check(property, {
    numRuns: replayRun !== undefined ? 1 : options.numRuns,
    seed: options.seed,
    ...(replayRun !== undefined ? { path: replayRun } : {}),
    ...(options.timeLimitMs !== undefined ? { interruptAfterTimeLimit: options.timeLimitMs } : {}),
  });
  if (!details.failed) return { ok: true, stats, seed: options.seed };
  const path = details.counterexamplePath?.split(':')[0];
  const err = details.errorInstance;
  let body: string;
  if (err instanceof DrtDifference) {
    const { c, request } = minimizeCase(err.case, err.request, options.engines);
    const answers = answersFor(c, request, options.engines) ?? [];
    body = `${formatCase(c, request, err.perturbation, answers)}\n--- (reduced from ${Object.keys(err.case.policies).length} policies, ${err.case.entities.length} entities, ${err.case.requests.length} requests)`;
  } else {
    body = `the harness itself failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
  }
  const replay = `npm run drt -- --mode ${options.mode} --seed ${details.seed}${path ? ` --path ${path}` : ''}${options.engines[1] ? ` --engine ${options.engines[1].name === 'compiled' ? 'compiled' : 'stateful'}` : ''}`;
  const report = `DIFFERENCE (shrunk ${details.numShrinks} times, then reduced)\nreplay: ${replay}\n${body}`;
  return { ok: false, stats, report, seed: details.seed, ...(path ? { path } : {}) };
}

/** One summary line of a run. */
export function summaryLine(stats: DrtStats, differences: number, seconds: number): string {
  return `${stats.cases} cases, ${differences} differences, ${seconds.toFixed(1)} s`;
}

/** The run's counters as readable lines. */
export function describeStats(stats: DrtStats): string {
  const kept = stats.policiesGenerated === 0 ? 0 : (100 * stats.policiesKept) / stats.policiesGenerated;
  const unsupported = Object.entries(stats.unsupported).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  return [
    `requests ${stats.requests}: allow ${stats.allow}, deny ${stats.deny} (with evaluation errors ${stats.withErrors}), refused ${stats.refused}`,
    `policies generated ${stats.policiesGenerated}, kept ${stats.policiesKept} (${kept.toFixed(1)}%), unparsable ${stats.policiesUnparsed}; schemas refused ${stats.schemasRefused}`,
    `sets declined as unsupported: ${unsupported}; engines that threw instead of answering: ${Object.entries(stats.threw).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
    ...[...stats.unsupportedReasons.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, v]) => `  declined because ${k} (${v})`),
  ].join('\n');
}

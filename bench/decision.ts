/**
 * In-process decision latency: Mandate's decision point against raw cedar-wasm `statefulIsAuthorized`
 * on the same request, policies and entities, measured in the same run.
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { PolicyEngine } from '../src/policy/policy-engine.ts';
import { readPolicyDirectory } from '../src/policy/read-policy-directory.ts';
import { compilePolicySet } from '../src/policy/compile-policy-set.ts';
import { generatedPolicyDir } from './fixtures.ts';
import { measureInterleaved, ratio, type LatencyResult } from './stats.ts';

/** One row of the in-process comparison. */
export interface DecisionBenchRow {
  policies: number;
  entities: number;
  /** Mandate with the reference engine (cedar-wasm behind Mandate's checks). */
  mandate: LatencyResult;
  /** Mandate with the compiled engine (the default). */
  compiled: LatencyResult;
  raw: LatencyResult;
  /** Mandate (reference) p50 / raw p50. */
  p50Ratio: string;
  /** raw cedar-wasm p50 / compiled p50: how many times faster the compiled path is. */
  speedup: string;
}

/** Runs the in-process decision benchmark for each (policies, entities) shape. */
export async function benchDecisions(shapes: Array<[number, number]>, iterations: number): Promise<DecisionBenchRow[]> {
  const rows: DecisionBenchRow[] = [];
  for (const [policies, entities] of shapes) {
    const { dir, request, entityCount } = await generatedPolicyDir(policies, entities);
    const engine = new PolicyEngine({ engine: 'reference' });
    await engine.loadDirectory(dir);
    if (engine.decide(request).decision !== 'allow') throw new Error('bench request must be allowed');
    const compiledEngine = new PolicyEngine({ engine: 'compiled' });
    const info = await compiledEngine.loadDirectory(dir);
    if (info.engine !== 'compiled') throw new Error(`the compiled engine refused the bench set: ${JSON.stringify(info.unsupported)}`);
    if (compiledEngine.decide(request).decision !== 'allow') throw new Error('bench request must be allowed (compiled)');

    // The raw baseline: the same set pre-parsed by hand, the same entities and context, one engine call.
    const set = compilePolicySet(await readPolicyDirectory(dir));
    const slot = `bench-raw-${policies}-${entities}`;
    cedar.preparseSchema(slot, set.schemaText);
    cedar.preparsePolicySet(slot, { staticPolicies: set.staticPolicies });
    const rawCall = {
      principal: request.principal,
      action: { type: 'Action', id: request.action },
      resource: request.resource,
      context: { ...request.context, delegation: { depth: 0, agents: [] }, time: { now: new Date().toISOString() } },
      preparsedSchemaName: slot,
      preparsedPolicySetId: slot,
      validateRequest: true,
      entities: [...set.entities.values()],
    };
    const check = cedar.statefulIsAuthorized(rawCall as never);
    if (check.type !== 'success' || check.response.decision !== 'allow') throw new Error(`raw baseline must allow: ${JSON.stringify(check)}`);

    const r = measureInterleaved({ raw: () => cedar.statefulIsAuthorized(rawCall as never), mandate: () => engine.decide(request), compiled: () => compiledEngine.decide(request) }, iterations);
    const raw = { ...(r.raw as LatencyResult), name: `raw cedar-wasm (${policies} policies, ${entityCount} entities)` };
    const mandate = { ...(r.mandate as LatencyResult), name: `mandate decide (${policies} policies, ${entityCount} entities)` };
    const compiled = { ...(r.compiled as LatencyResult), name: `mandate compiled (${policies} policies, ${entityCount} entities)` };
    rows.push({ policies, entities: entityCount, mandate, compiled, raw, p50Ratio: ratio(mandate.p50Micros, raw.p50Micros), speedup: ratio(raw.p50Micros, compiled.p50Micros) });
  }
  return rows;
}

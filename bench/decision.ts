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
  mandate: LatencyResult;
  raw: LatencyResult;
  /** Mandate p50 / raw p50. */
  p50Ratio: string;
}

/** Runs the in-process decision benchmark for each (policies, entities) shape. */
export async function benchDecisions(shapes: Array<[number, number]>, iterations: number): Promise<DecisionBenchRow[]> {
  const rows: DecisionBenchRow[] = [];
  for (const [policies, entities] of shapes) {
    const { dir, request, entityCount } = await generatedPolicyDir(policies, entities);
    const engine = new PolicyEngine();
    await engine.loadDirectory(dir);
    if (engine.decide(request).decision !== 'allow') throw new Error('bench request must be allowed');

    // The raw baseline: the same set pre-parsed by hand, the same entities and context, one engine call.
    const compiled = compilePolicySet(await readPolicyDirectory(dir));
    const slot = `bench-raw-${policies}-${entities}`;
    cedar.preparseSchema(slot, compiled.schemaText);
    cedar.preparsePolicySet(slot, { staticPolicies: compiled.staticPolicies });
    const rawCall = {
      principal: request.principal,
      action: { type: 'Action', id: request.action },
      resource: request.resource,
      context: { ...request.context, delegation: { depth: 0, agents: [] }, time: { now: new Date().toISOString() } },
      preparsedSchemaName: slot,
      preparsedPolicySetId: slot,
      validateRequest: true,
      entities: [...compiled.entities.values()],
    };
    const check = cedar.statefulIsAuthorized(rawCall as never);
    if (check.type !== 'success' || check.response.decision !== 'allow') throw new Error(`raw baseline must allow: ${JSON.stringify(check)}`);

    const r = measureInterleaved({ raw: () => cedar.statefulIsAuthorized(rawCall as never), mandate: () => engine.decide(request) }, iterations);
    const raw = { ...(r.raw as LatencyResult), name: `raw cedar-wasm (${policies} policies, ${entityCount} entities)` };
    const mandate = { ...(r.mandate as LatencyResult), name: `mandate decide (${policies} policies, ${entityCount} entities)` };
    rows.push({ policies, entities: entityCount, mandate, raw, p50Ratio: ratio(mandate.p50Micros, raw.p50Micros) });
  }
  return rows;
}

/**
 * Every policy directory of the project through both engines, twice: the engines alone (Cedar requests, one per
 * principal, through the harness's adapters), and Mandate's decision point (`PolicyEngine` with `engine:
 * 'compiled'` and `engine: 'reference'`: request checks, entity slices, delegation, approval). Directories:
 * examples/policies, examples/overbroad and the policy sets the engine, server and CLI tests use
 * (test/fixtures/policy-dir.ts, test/cli/policy-fixtures.ts, over test/fixtures' schema and entities). Requests:
 * every case of their *.test.yaml files, and the principal × action × resource triples of their entities
 * under two contexts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { readPolicyDirectory, type PolicyDirectory } from '../../src/policy/read-policy-directory.ts';
import { baseEntities, EXAMPLE_SCHEMA_PATH, SAMPLE_POLICIES } from '../fixtures/policy-dir.ts';
import { CLEAN_POLICIES, OVERBROAD_POLICIES } from '../cli/policy-fixtures.ts';
import { statefulReferenceEngine, referenceEngine, isUnsupported, type DecisionEngine } from './engines.ts';
import { compiledAvailable, loadSecondEngine } from './select-engine.ts';
import { sameAnswer } from './harness.ts';
import { directoryCases, type MandateRequest } from './policy-directories.ts';
import { PolicyEngine } from '../../src/policy/policy-engine.ts';
import { DEFAULT_TEST_TIME } from '../../src/policy/run-policy-tests.ts';
import { fixedClock } from '../../src/core/ports.ts';
import { isMandateError } from '../../src/core/errors.ts';

/**
 * Triples per directory and context (spread evenly over all of them). `isAuthorized` re-parses the schema
 * and the policies on every call (about 10 ms here), so without the compiled evaluator fewer are run.
 */
const TRIPLE_LIMIT = compiledAvailable() ? 1200 : 150;

async function fixtureDirectory(policies: Record<string, string>): Promise<PolicyDirectory> {
  const entitiesText = stringify(baseEntities());
  return {
    dir: '(fixture)',
    schema: { path: 'schema.cedarschema', text: await readFile(EXAMPLE_SCHEMA_PATH, 'utf8') },
    policies: Object.entries(policies).map(([path, text]) => ({ path, text })),
    entities: baseEntities(),
    entitiesFile: { path: 'entities.yaml', text: entitiesText },
    tests: [],
  };
}

const DIRECTORIES: { name: string; load: () => Promise<PolicyDirectory> }[] = [
  { name: 'examples/policies', load: () => readPolicyDirectory(new URL('../../examples/policies', import.meta.url).pathname) },
  { name: 'examples/overbroad', load: () => readPolicyDirectory(new URL('../../examples/overbroad', import.meta.url).pathname) },
  { name: 'test/fixtures SAMPLE_POLICIES (engine and server tests)', load: () => fixtureDirectory(SAMPLE_POLICIES) },
  { name: 'test/cli/policy-fixtures.ts CLEAN_POLICIES', load: () => fixtureDirectory(CLEAN_POLICIES) },
  { name: 'test/cli/policy-fixtures.ts OVERBROAD_POLICIES', load: () => fixtureDirectory(OVERBROAD_POLICIES) },
];

// The reference here is the preparsed call path (the directory's requests are many and large); the other
// engine is the compiled evaluator when present, otherwise `isAuthorized`.
const second: DecisionEngine = compiledAvailable() ? await loadSecondEngine('compiled') : (referenceEngine as DecisionEngine);
const reference = statefulReferenceEngine as DecisionEngine;

for (const d of DIRECTORIES) {
  test(`policy directory ${d.name}: ${reference.name} and ${second.name} agree on every request`, async (t) => {
    const { set, requests } = directoryCases(await d.load(), TRIPLE_LIMIT);
    const refSet = reference.prepare(set.schemaText, set.staticPolicies);
    const otherSet = second.prepare(set.schemaText, set.staticPolicies);
    assert.ok(!isUnsupported(refSet), 'the reference engine takes the set');
    if (isUnsupported(otherSet)) {
      // Declined sets are decided by the reference engine in production: nothing to compare.
      t.skip(`${second.name} declines the set: ${otherSet.unsupported}`);
      return;
    }
    const differences: string[] = [];
    const seen = { allow: 0, deny: 0, refused: 0 };
    for (const { label, request } of requests) {
      const a = reference.decide(refSet, request);
      const b = second.decide(otherSet, request);
      if (a.kind === 'refused') seen.refused++;
      else seen[a.decision]++;
      if (!sameAnswer(a, b) && differences.length < 5) {
        const { entities: _entities, ...shown } = request;
        differences.push(`${label}\nrequest (entities: the directory's ${set.entities.size}): ${JSON.stringify(shown)}\n${reference.name}: ${JSON.stringify(a)}\n${second.name}: ${JSON.stringify(b)}`);
      }
    }
    assert.deepEqual(differences, [], `${d.name}: the engines disagree:\n${differences.join('\n\n')}`);
    assert.ok(seen.allow > 0 && seen.deny > 0, `${d.name}: expected both decisions among ${requests.length} requests, saw ${JSON.stringify(seen)}`);
  });
}

/** What Mandate answered, reduced to what both engines must agree on (ids as sets; no messages, no timings). */
function outcome(engine: PolicyEngine, clock: { set(ms: number): void }, r: MandateRequest): unknown {
  clock.set(Date.parse(r.now));
  try {
    const d = engine.decide(r.request);
    return {
      decision: d.decision,
      principals: d.principals.map((p) => ({
        principal: p.principal,
        decision: p.decision,
        approvalRequired: p.approvalRequired,
        determining: p.determining.map((x) => x.id).sort(),
        errors: p.errors.map((x) => x.policyId).sort(),
      })),
    };
  } catch (err) {
    return { refused: isMandateError(err) ? err.code : `not a MandateError: ${String(err)}` };
  }
}

for (const d of DIRECTORIES) {
  test(`policy directory ${d.name}: PolicyEngine decides alike with engine compiled and engine reference`, async () => {
    const contents = await d.load();
    const { mandateRequests } = directoryCases(contents, TRIPLE_LIMIT);
    const clock = fixedClock(Date.parse(DEFAULT_TEST_TIME));
    const ids = { next: () => 'drt' };
    const reference = new PolicyEngine({ engine: 'reference', clock, ids });
    const compiled = new PolicyEngine({ engine: 'compiled', clock, ids });
    reference.activate(contents);
    const info = compiled.activate(contents);
    assert.equal(info.engine, 'compiled', `the compiled engine declined the set: ${JSON.stringify(info.unsupported)}`);
    const differences: string[] = [];
    for (const r of mandateRequests) {
      const a = outcome(reference, clock, r);
      const b = outcome(compiled, clock, r);
      if (JSON.stringify(a) !== JSON.stringify(b) && differences.length < 5) {
        differences.push(`${r.label} at ${r.now}\nrequest: ${JSON.stringify(r.request)}\nreference: ${JSON.stringify(a)}\ncompiled: ${JSON.stringify(b)}`);
      }
    }
    assert.deepEqual(differences, [], `${d.name}: PolicyEngine answers differ between engines:\n${differences.join('\n\n')}`);
  });
}

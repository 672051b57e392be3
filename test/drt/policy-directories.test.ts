/**
 * Every policy directory of the project through both engines: examples/policies, examples/overbroad and
 * the policy sets the server and CLI tests use (test/server/harness.ts, test/cli/policy-fixtures.ts, over
 * test/fixtures' schema and entities). Requests: every case of their *.test.yaml files, and the
 * principal × action × resource triples of their entities under two contexts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { readPolicyDirectory, type PolicyDirectory } from '../../src/policy/read-policy-directory.ts';
import { baseEntities, EXAMPLE_SCHEMA_PATH } from '../fixtures/policy-dir.ts';
import { CLEAN_POLICIES, OVERBROAD_POLICIES } from '../cli/policy-fixtures.ts';
import { POLICIES as SERVER_POLICIES } from '../server/harness.ts';
import { statefulReferenceEngine, referenceEngine, isUnsupported, type DecisionEngine } from './engines.ts';
import { compiledAvailable, loadSecondEngine } from './select-engine.ts';
import { sameAnswer } from './harness.ts';
import { directoryCases } from './policy-directories.ts';

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
  { name: 'test/server/harness.ts POLICIES', load: () => fixtureDirectory(SERVER_POLICIES) },
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

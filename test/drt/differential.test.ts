/**
 * Bounded differential run (part of `npm test`): random schemas, entity stores, policies and requests
 * through the reference engine and the engine under test (the compiled evaluator when it is present,
 * otherwise cedar-wasm's preparsed call path). Seeded; MANDATE_DRT_SEED picks another seed. A difference
 * fails with the shrunk case and the command that replays it. See docs/DIFFERENTIAL-TESTING.md.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeStats, newStats, runDrt, type DrtMode } from './harness.ts';
import { referenceEngine } from './engines.ts';
import { loadSecondEngine } from './select-engine.ts';

/** The default seed; any other integer can be given in MANDATE_DRT_SEED. */
export const DEFAULT_DRT_SEED = 20260302;
const SEED = process.env.MANDATE_DRT_SEED !== undefined ? Number(process.env.MANDATE_DRT_SEED) : DEFAULT_DRT_SEED;

/** Cases per mode: about 60 s for both on a 2-core machine while the rest of `npm test` runs. */
const RUNS: Record<DrtMode, number> = { strict: 1000, dynamic: 1000 };

/** Constructs every strict run of this size must have produced in policies that passed validation. */
const EXPECTED_CONSTRUCTS = [
  '==', '!=', '<', '<=', '>', '>=', '&&', '||', '!', '+', '-', '*', 'neg', 'in', 'in [set]', 'has', 'has a.b', 'like', 'is', 'is-in',
  'if-then-else', '.attr', '.contains()', '.containsAll()', '.containsAny()', '.isEmpty()', '.getTag()', '.hasTag()',
  '.lessThan()', '.lessThanOrEqual()', '.greaterThan()', '.greaterThanOrEqual()', '.isIpv4()', '.isIpv6()', '.isLoopback()',
  '.isMulticast()', '.isInRange()', '.offset()', '.durationSince()', '.toDate()', '.toTime()', '.toDays()', '.toMilliseconds()',
  'decimal()', 'ip()', 'datetime()', 'duration()', 'set literal', 'record literal', 'literal Long beyond 2^53', 'entity literal',
  'var principal', 'var action', 'var resource', 'var context', 'when', 'unless', 'effect:forbid', 'effect:permit',
  'scope:principal ==', 'scope:principal in', 'scope:principal is', 'scope:principal is-in', 'scope:action ==', 'scope:action in',
  'scope:action in [..]', 'scope:action All', 'scope:resource ==', 'scope:resource in', 'scope:resource is', 'scope:resource is-in',
];

const second = await loadSecondEngine(undefined);

for (const mode of ['strict', 'dynamic'] as const) {
  test(`differential (${mode}): ${referenceEngine.name} vs ${second.name}, ${RUNS[mode]} cases, seed ${SEED}`, () => {
    const stats = newStats();
    const result = runDrt({ mode, engines: [referenceEngine, second], numRuns: RUNS[mode], seed: SEED, stats });
    if (!result.ok) assert.fail(result.report);
    console.log(`# drt ${mode}: ${describeStats(stats).split('\n').join('; ')}`);
    assert.equal(stats.policiesUnparsed, 0, 'every generated policy parses (the printer is right)');
    assert.equal(stats.schemasRefused, 0, 'every generated schema parses');
    assert.ok(stats.allow > 0 && stats.deny > 0 && stats.withErrors > 0, 'both decisions and evaluation errors occur');
    assert.deepEqual(stats.threw, {}, 'no engine throws instead of answering');
    const declined = stats.unsupported[second.name] ?? 0;
    assert.ok(declined < 0.1 * stats.cases, `${second.name} declined ${declined} of ${stats.cases} cases: too few were compared`);
    if (mode === 'strict') {
      assert.ok(stats.policiesKept > 0.8 * stats.policiesGenerated, 'most generated policies pass strict validation');
      assert.ok(stats.refused > 0, 'some requests are refused (non-conforming data)');
      const missing = EXPECTED_CONSTRUCTS.filter((c) => !stats.constructs.has(c));
      assert.deepEqual(missing, [], 'the generator reaches the whole expression language');
    }
  });
}

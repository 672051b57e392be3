/**
 * The harness itself: the printer means what the generator meant, a deliberate bug is caught, reduced and
 * reported with everything needed, and the report's replay command reproduces it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { printExpr, printPolicy } from './print-cedar.ts';
import { STRINGS } from './gen-values.ts';
import { referenceEngine } from './engines.ts';
import { runDrt } from './harness.ts';
import { MUTANTS, mutantEngine } from './mutants.ts';
import type { Expr } from './model.ts';

function conditionJson(body: Expr): unknown {
  const text = printPolicy({ effect: 'permit', principal: { op: 'All' }, action: { op: 'All' }, resource: { op: 'All' }, conditions: [{ kind: 'when', body }] }, 'Action');
  const json = cedar.policyToJson(text);
  assert.equal(json.type, 'success', text);
  return json.type === 'success' ? (json.json.conditions[0] as { body: unknown }).body : undefined;
}

test('printer: every generated string reads back as itself, in literals and in like patterns', () => {
  for (const s of [...STRINGS, 'a*b\\*', '\u0000', '\u{10ffff}']) {
    assert.deepEqual(conditionJson({ k: 'bin', op: '==', l: { k: 'lit', v: s }, r: { k: 'lit', v: s } }), { '==': { left: { Value: s }, right: { Value: s } } }, JSON.stringify(s));
    const like = conditionJson({ k: 'like', e: { k: 'lit', v: '' }, pattern: [{ lit: s }, { wild: true }] }) as { like: { pattern: unknown[] } };
    const literal = like.like.pattern.filter((p) => p !== 'Wildcard').map((p) => (p as { Literal: string }).Literal).join('');
    assert.equal(literal, s, `like pattern for ${JSON.stringify(s)}`);
  }
});

test('printer: i64::MIN and negation print as Cedar reads them', () => {
  assert.equal(printExpr({ k: 'lit', v: -9223372036854775808n }), '-9223372036854775808');
  assert.ok(cedar.checkParsePolicySet({ staticPolicies: 'permit(principal, action, resource) when { (-9223372036854775808) < 0 && -(context.a) == 1 };' }).type === 'success');
  assert.equal(printExpr({ k: 'neg', arg: { k: 'lit', v: 5n } }), '-(5)');
});

test('a deliberate bug is caught, reduced, reported in full, and replayed identically', () => {
  const unlessAsWhen = MUTANTS.find(([name]) => name.includes('unless'));
  assert.ok(unlessAsWhen);
  const engines = [referenceEngine, mutantEngine(unlessAsWhen[1])];
  const first = runDrt({ mode: 'dynamic', engines, numRuns: 200, seed: 1, maxShrinkRuns: 40 });
  assert.equal(first.ok, false, 'the mutant is caught');
  const report = first.report ?? '';
  for (const part of ['replay: npm run drt -- --mode dynamic --seed 1 --path ', '--- schema.cedarschema', '--- policies', 'unless', '--- entities', '--- request', '--- answers', 'reference: ', 'compiled-mutant: ']) {
    assert.ok(report.includes(part), `the report holds ${JSON.stringify(part)}:\n${report}`);
  }
  const policies = report.split('--- policies')[1]?.split('--- entities')[0] ?? '';
  assert.equal((policies.match(/\/\/ id: /g) ?? []).length, 1, `reduced to the one policy that matters:\n${policies}`);
  const again = runDrt({ mode: 'dynamic', engines, numRuns: 1, seed: first.seed, path: first.path as string, maxShrinkRuns: 40 });
  assert.equal(again.report, first.report);
});

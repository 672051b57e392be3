/**
 * A check of the harness's power: the compiled engine with one deliberate bug (a rewrite of each policy's
 * text before it is compiled), which a run must catch. `npm run drt -- --mutants` prints, per mode and
 * mutant, after how many cases the first difference appeared.
 */
import { compiledEngine } from './compiled-engine.ts';
import type { DecisionEngine } from './engines.ts';

/** Name and rewrite of each mutant: small semantic slips an evaluator could make. */
export const MUTANTS: readonly (readonly [string, (text: string) => string])[] = [
  ['`>` evaluated as `>=`', (t) => t.replace(/ > /g, ' >= ')],
  ['escaped `\\*` in `like` taken as a wildcard', (t) => t.replace(/\\\*/g, '*')],
  ['`containsAny` evaluated as `containsAll`', (t) => t.replace(/containsAny/g, 'containsAll')],
  ['`unless` evaluated as `when`', (t) => t.replace(/\nunless/g, '\nwhen')],
  ['`toDays` evaluated as `toHours`', (t) => t.replace(/toDays/g, 'toHours')],
  ['`isLoopback` evaluated as `isMulticast`', (t) => t.replace(/isLoopback/g, 'isMulticast')],
  ['`||` evaluated as `&&`', (t) => t.replace(/ \|\| /g, ' && ')],
  ['`is … in` loses its `in`', (t) => t.replace(/ is ([\w:]+) in [\w:]+::"[^"]*"/g, ' is $1')],
];

/** The compiled engine with `rewrite` applied to every policy text. */
export function mutantEngine(rewrite: (text: string) => string): DecisionEngine {
  return {
    name: 'compiled-mutant',
    prepare: (schema, policies) => compiledEngine.prepare(schema, Object.fromEntries(Object.entries(policies).map(([id, text]) => [id, rewrite(text)]))),
    decide: (set, request) => compiledEngine.decide(set as never, request),
  };
}

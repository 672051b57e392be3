/**
 * Chooses the engine compared with the reference: the compiled evaluator when its modules exist (or when
 * asked for by name), otherwise cedar-wasm's other call path (`statefulIsAuthorized`), which must agree
 * with `isAuthorized` as well and keeps the generators honest while the compiled evaluator is being built.
 */
import { existsSync } from 'node:fs';
import { statefulReferenceEngine, type DecisionEngine } from './engines.ts';

const COMPILED_AUTHORIZER = new URL('../../src/policy/compiled/compiled-authorizer.ts', import.meta.url);
const COMPILED_ADAPTER = new URL('./compiled-engine.ts', import.meta.url);

/** True when the compiled evaluator and its adapter are present. */
export function compiledAvailable(): boolean {
  return existsSync(COMPILED_AUTHORIZER) && existsSync(COMPILED_ADAPTER);
}

/** The second engine: `compiled`, `stateful`, or (undefined) the compiled one when available. */
export async function loadSecondEngine(name: string | undefined): Promise<DecisionEngine> {
  if (name === 'stateful' || (name === undefined && !compiledAvailable())) return statefulReferenceEngine as DecisionEngine;
  if (name !== undefined && name !== 'compiled') throw new TypeError(`unknown engine ${JSON.stringify(name)}; expected compiled or stateful`);
  if (!compiledAvailable()) throw new TypeError('the compiled evaluator (src/policy/compiled/compiled-authorizer.ts) is not there yet');
  const mod = (await import(COMPILED_ADAPTER.href)) as { compiledEngine: DecisionEngine };
  return mod.compiledEngine;
}

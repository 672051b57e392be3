/**
 * Strict mode for the compiled adapter: the schema-directed conversion of a request (entities, context,
 * `appliesTo`), through the compiled path's converters. Until those converters exist, strict mode is
 * declined as a whole, and the harness compares the reference with its other call path instead.
 */
import type { CompiledAuthorizationRequest } from '../../src/policy/compiled/compiled-authorizer.ts';
import type { DrtRequest, Unsupported } from './engines.ts';

/** Converts requests against one schema: a compiled-path request, or cedar-wasm's refusal. */
export interface StrictConversion {
  convert(req: DrtRequest): { request: CompiledAuthorizationRequest } | { refused: string };
}

/** The conversion for `schemaText`, or why strict mode is not available. */
export function strictConversion(_schemaText: string): StrictConversion | Unsupported {
  return { unsupported: 'the schema-directed converters (convert-entities.ts, convert-context.ts) are not there yet' };
}

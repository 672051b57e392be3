/**
 * Parsing of JSON request bodies, defensively: the nesting depth is measured on the raw text BEFORE
 * `JSON.parse` runs (a deeply nested document never reaches the parser or any recursive code after it),
 * malformed JSON gets a stable code, and keys that could pollute prototypes (`__proto__`, and
 * `constructor.prototype`) are refused rather than silently dropped.
 *
 * @see AuthZEN Authorization API 1.0, Security Considerations ("invalid JSON, nested JSON attacks")
 * @see https://github.com/fastify/secure-json-parse (the same prototype-poisoning rule, applied here with our own errors)
 */
import { InvalidRequestError, MalformedJsonError, NestingTooDeepError } from '../core/errors.ts';

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Measures the deepest nesting of objects and arrays in JSON text without parsing it, and throws
 * `NestingTooDeepError` as soon as it exceeds `maxDepth`. Brackets inside strings are not counted.
 * @param text - raw JSON text (validity is not checked here)
 * @param maxDepth - deepest allowed nesting; `{}` and `[]` are depth 1
 * @returns the deepest nesting seen
 */
export function assertJsonDepth(text: string, maxDepth: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
      continue;
    }
    if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
      if (depth > maxDepth) {
        throw new NestingTooDeepError(`the JSON body is nested deeper than ${maxDepth} levels; flatten it`);
      }
      if (depth > deepest) deepest = depth;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return deepest;
}

/** Finds a key that would pollute a prototype if the value were later merged with `Object.assign` or similar. */
function findPoisonedKey(root: unknown): string | undefined {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
      continue;
    }
    if (Object.prototype.hasOwnProperty.call(v, '__proto__')) return '__proto__';
    const ctor = Object.prototype.hasOwnProperty.call(v, 'constructor') ? (v as Record<string, unknown>).constructor : undefined;
    if (typeof ctor === 'object' && ctor !== null && Object.prototype.hasOwnProperty.call(ctor, 'prototype')) {
      return 'constructor.prototype';
    }
    for (const x of Object.values(v)) stack.push(x);
  }
  return undefined;
}

// Only a document that mentions these can hold a poisoned key (escapes included), so most bodies skip the walk.
const SUSPECT = /proto|constructor|\\u/;

/**
 * Parses a JSON request body: depth first, then `JSON.parse`, then the prototype-pollution check.
 * Throws `NestingTooDeepError`, `MalformedJsonError` or `InvalidRequestError` (poisoned key); never a
 * `SyntaxError` and never a message that echoes the body (which could hold a secret and reach a log).
 * @param text - the raw body
 * @param maxDepth - deepest allowed nesting of objects and arrays
 */
export function parseJsonBody(text: string, maxDepth: number): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === '') throw new MalformedJsonError('the request body is empty; send a JSON object');
  assertJsonDepth(body, maxDepth);
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    const at = /position (\d+)/.exec(err instanceof Error ? err.message : '')?.[1];
    throw new MalformedJsonError(`the request body is not valid JSON${at === undefined ? '' : ` (error at position ${at})`}`);
  }
  if (SUSPECT.test(body)) {
    const key = findPoisonedKey(value);
    if (key !== undefined) {
      throw new InvalidRequestError(`the JSON body uses the key "${key}", which is refused because it can pollute object prototypes`);
    }
  }
  return value;
}

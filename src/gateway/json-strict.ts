/**
 * Strict parsing of JSON-RPC bodies for the gateway: a duplicate object key anywhere is refused, and so is
 * nesting deeper than a limit, before `JSON.parse` runs.
 *
 * Duplicate keys matter at an enforcement point: `JSON.parse` keeps the last value, other parsers keep the first,
 * so `{"name":"crm.search","name":"payments.refund"}` could be authorized as one tool and run as another.
 * Keys are compared after unescaping (`"a"` and `"\u0061"` are the same key).
 *
 * @see RFC 8259 §4 ("The names within an object SHOULD be unique")
 */

/** Why a body was refused; `message` is client-safe and never quotes the body beyond the offending key (truncated). */
export class StrictJsonError extends Error {
  constructor(
    message: string,
    /** `duplicate_key`, `too_deep` or `malformed`. */
    readonly reason: 'duplicate_key' | 'too_deep' | 'malformed',
  ) {
    super(message);
    this.name = 'StrictJsonError';
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

interface Frame {
  /** Keys seen so far; undefined for an array. */
  keys: Set<string> | undefined;
  /** True when the next string in this object is a key. */
  expectKey: boolean;
}

/**
 * Scans JSON text without building values: tracks depth and each object's keys, and throws on a duplicate.
 * Grammar is not validated here (`JSON.parse` does that next); on malformed text the scan never throws
 * anything but {@link StrictJsonError}.
 */
function scan(text: string, maxDepth: number): void {
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i;
      let escaped = false;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === BACKSLASH) {
          escaped = true;
          i++;
        } else if (d === QUOTE) break;
      }
      if (i >= text.length) throw new StrictJsonError('the body is not valid JSON: an unterminated string', 'malformed');
      const top = stack[stack.length - 1];
      if (top?.keys !== undefined && top.expectKey) {
        const raw = text.slice(start + 1, i);
        let key = raw;
        if (escaped) {
          try {
            key = JSON.parse(text.slice(start, i + 1)) as string;
          } catch {
            throw new StrictJsonError('the body is not valid JSON: a key has an invalid escape', 'malformed');
          }
        }
        if (top.keys.has(key)) {
          throw new StrictJsonError(`the body repeats the key "${key.slice(0, 64)}" in one object; each key must appear once`, 'duplicate_key');
        }
        top.keys.add(key);
        top.expectKey = false;
      }
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (stack.length >= maxDepth) throw new StrictJsonError(`the body is nested deeper than ${maxDepth} levels`, 'too_deep');
      stack.push(c === OPEN_BRACE ? { keys: new Set(), expectKey: true } : { keys: undefined, expectKey: false });
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      stack.pop();
    } else if (c === COMMA) {
      const top = stack[stack.length - 1];
      if (top?.keys !== undefined) top.expectKey = true;
    }
  }
}

/**
 * Parses JSON text, refusing duplicate keys anywhere and nesting deeper than `maxDepth`.
 * @param text - the raw body
 * @param maxDepth - deepest allowed nesting of objects and arrays (`{}` is depth 1)
 * @throws StrictJsonError (`duplicate_key`, `too_deep`, `malformed`); never a `SyntaxError`
 * @example parseStrictJson('{"a":1,"a":2}', 64) // throws StrictJsonError('the body repeats the key "a" …')
 */
export function parseStrictJson(text: string, maxDepth: number): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === '') throw new StrictJsonError('the body is empty; send a JSON-RPC message', 'malformed');
  scan(body, maxDepth);
  try {
    return JSON.parse(body) as unknown;
  } catch (err) {
    const at = /position (\d+)/.exec(err instanceof Error ? err.message : '')?.[1];
    throw new StrictJsonError(`the body is not valid JSON${at === undefined ? '' : ` (error at position ${at})`}`, 'malformed');
  }
}

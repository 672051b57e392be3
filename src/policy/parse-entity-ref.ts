/**
 * Parses an entity reference written the way Cedar writes it, `Type::"id"` or `Ns::Type::"id"`, strictly:
 * the whole string must be one reference, the id one Cedar string literal. Command lines, test files and
 * policy text then all name entities the same way.
 *
 * @see https://docs.cedarpolicy.com/policies/syntax-entity.html
 */
import type { EntityRef } from '../core/decision.ts';

const IDENT = '[A-Za-z_][A-Za-z0-9_]*';
const REF = new RegExp(`^(${IDENT}(?:::${IDENT})*)::"((?:[^"\\\\]|\\\\.)*)"$`, 's');

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = { n: '\n', r: '\r', t: '\t', '\\': '\\', '0': '\0', "'": "'", '"': '"' };

/** Why a string is not an entity reference; the message says what the right form is. */
export class EntityRefSyntaxError extends Error {
  constructor(input: string, why: string) {
    super(`${JSON.stringify(input)} is not an entity reference (${why}); write Type::"id", e.g. User::"alice"`);
    this.name = 'EntityRefSyntaxError';
  }
}

/**
 * Parses `Type::"id"`. Throws `EntityRefSyntaxError` for anything else: a missing or unquoted id, stray
 * characters, an escape Cedar does not know.
 * @example parseEntityRef('Agent::"triage-bot"') // → { type: 'Agent', id: 'triage-bot' }
 */
export function parseEntityRef(input: string): EntityRef {
  const m = REF.exec(input);
  if (!m) {
    const why = !input.includes('::')
      ? 'no "::" between type and id'
      : !/"[^]*"$/.test(input)
        ? 'the id must be a double-quoted string'
        : 'the type must be identifiers joined by "::" and nothing may follow the id';
    throw new EntityRefSyntaxError(input, why);
  }
  return { type: m[1] as string, id: unescapeCedarString(m[2] as string, input) };
}

function unescapeCedarString(body: string, input: string): string {
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as string;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = body[++i] ?? '';
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      out += simple;
    } else if (e === 'u') {
      const m = /^\{([0-9a-fA-F]{1,6})\}/.exec(body.slice(i + 1));
      const cp = m ? parseInt(m[1] as string, 16) : NaN;
      if (!m || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new EntityRefSyntaxError(input, 'a \\u escape is written \\u{hex} and names a Unicode scalar value');
      out += String.fromCodePoint(cp);
      i += m[0].length;
    } else {
      throw new EntityRefSyntaxError(input, `unknown escape \\${e}`);
    }
  }
  return out;
}

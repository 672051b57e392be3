/**
 * Formats one `.cedar` file with Cedar's own formatter, guarded so that formatting never costs the
 * author anything: the result must keep every comment in order and parse to the same policies, or the
 * file is refused (left as it is) with the reason.
 *
 * Cedar's formatter (cedar-policy-formatter, as in cedar-wasm 4.x) also glues a file's header comment and
 * section comments to the next policy's comment by dropping the blank lines between them; those blank
 * lines are put back, because a section header that reads as part of one policy's documentation is a
 * moved comment.
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { byteOffsetToLineColumn } from './source-position.ts';
import type { PolicyDiagnostic } from './types.ts';

/** Formatter settings; Cedar's defaults are 80 columns and 2 spaces. */
export interface FormatOptions {
  lineWidth?: number;
  indentWidth?: number;
}

/** What formatting one file would do. */
export type FormatResult =
  | { path: string; status: 'unchanged' | 'changed'; formatted: string }
  /** The formatter's output would lose or move comments, or change a policy: the file must stay as it is. */
  | { path: string; status: 'refused'; reason: string; line?: number }
  /** The file does not parse. */
  | { path: string; status: 'invalid'; diagnostics: PolicyDiagnostic[] };

/** A `//` comment found in Cedar text. */
export interface CedarComment {
  text: string;
  /** 1-based line. */
  line: number;
}

/**
 * Formats `text` (the contents of `path`). Never throws for bad input: a parse error is `invalid`, an
 * unsafe result is `refused`.
 */
export function formatPolicyFile(path: string, text: string, options: FormatOptions = {}): FormatResult {
  const answer = cedar.formatPolicies({ policyText: text, lineWidth: options.lineWidth ?? 80, indentWidth: options.indentWidth ?? 2 });
  if (answer.type === 'failure') {
    return {
      path,
      status: 'invalid',
      diagnostics: answer.errors.map((e) => {
        const loc = e.sourceLocations?.[0];
        return {
          severity: 'error' as const,
          message: e.message,
          ...(e.help ? { help: e.help } : {}),
          position: { file: path, ...(loc ? byteOffsetToLineColumn(text, loc.start) : { line: 1, column: 1 }) },
        };
      }),
    };
  }
  return guardFormatted(path, text, answer.formatted_policy);
}

/**
 * Checks the formatter's output for `original` (after putting back blank lines before comments): every
 * comment kept, in order, and the same policies. Returns the result to act on; `refused` says why.
 */
export function guardFormatted(path: string, original: string, formatterOutput: string): FormatResult {
  const formatted = restoreBlankLinesBeforeComments(original, formatterOutput);
  const before = extractComments(original);
  const after = extractComments(formatted);
  for (let i = 0; i < Math.max(before.length, after.length); i++) {
    const b = before[i];
    const a = after[i];
    if (b?.text === a?.text) continue;
    if (b) {
      const lost = !after.some((c) => c.text === b.text);
      return { path, status: 'refused', line: b.line, reason: `the formatter would ${lost ? 'drop' : 'move'} the comment at line ${b.line} (${truncate(b.text)}); format this file by hand` };
    }
    return { path, status: 'refused', reason: `the formatter would add a comment (${truncate(a?.text ?? '')}); format this file by hand` };
  }
  const meaning = samePolicies(original, formatted);
  if (meaning !== true) return { path, status: 'refused', reason: meaning };
  return { path, status: formatted === original ? 'unchanged' : 'changed', formatted };
}

/** The `//` comments of Cedar text, in order, skipping `//` inside string literals. */
export function extractComments(text: string): CedarComment[] {
  const out: CedarComment[] = [];
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') {
      line++;
    } else if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) {
        if (text[i] === '\\') i++;
        else if (text[i] === '\n') line++;
      }
    } else if (c === '/' && text[i + 1] === '/') {
      const end = text.indexOf('\n', i);
      const stop = end === -1 ? text.length : end;
      out.push({ text: text.slice(i, stop).trimEnd(), line });
      i = stop - 1;
    }
  }
  return out;
}

/**
 * Puts back the blank line before each whole-line comment that had one in `original` and lost it in
 * `formatted`. Whole-line comments are matched in order by their text.
 */
export function restoreBlankLinesBeforeComments(original: string, formatted: string): string {
  const isComment = (l: string) => l.trimStart().startsWith('//');
  const wanted: Array<{ text: string; blankBefore: boolean }> = [];
  const orig = original.split('\n');
  orig.forEach((l, i) => {
    if (!isComment(l)) return;
    const prev = orig[i - 1];
    wanted.push({ text: l.trim(), blankBefore: i > 0 && prev !== undefined && prev.trim() === '' && orig.slice(0, i).some((x) => x.trim() !== '') });
  });
  const out: string[] = [];
  let cursor = 0;
  for (const l of formatted.split('\n')) {
    if (isComment(l)) {
      const idx = wanted.findIndex((w, j) => j >= cursor && w.text === l.trim());
      if (idx >= 0) {
        cursor = idx + 1;
        const prev = out[out.length - 1];
        if (wanted[idx]?.blankBefore && prev !== undefined && prev.trim() !== '') out.push('');
      }
    }
    out.push(l);
  }
  return out.join('\n');
}

/** True when both texts hold the same policies (compared in Cedar's JSON form), else why not. */
function samePolicies(a: string, b: string): true | string {
  const pa = cedar.policySetTextToParts(a);
  const pb = cedar.policySetTextToParts(b);
  if (pa.type === 'failure' || pb.type === 'failure') return 'the formatted text does not parse; the file is left as it is';
  if (pa.policies.length !== pb.policies.length || pa.policy_templates.length !== pb.policy_templates.length) {
    return 'the formatter would change the number of policies; the file is left as it is';
  }
  const json = (t: string) => {
    const r = cedar.policyToJson(t);
    return r.type === 'success' ? JSON.stringify(r.json) : `error:${t}`;
  };
  for (let i = 0; i < pa.policies.length; i++) {
    if (json(pa.policies[i] as string) !== json(pb.policies[i] as string)) return `the formatter would change policy #${i + 1}; the file is left as it is`;
  }
  return true;
}

function truncate(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * Maps the Cedar engine's source offsets to line and column. Cedar reports offsets in UTF-8 bytes;
 * editors count lines from 1 and columns in characters, so both are converted here.
 */

/** 1-based line and column of a UTF-8 byte offset in `text`. Offsets past the end clamp to the end. */
export function byteOffsetToLineColumn(text: string, byteOffset: number): { line: number; column: number } {
  const bytes = Buffer.from(text, 'utf8');
  const clamped = Math.max(0, Math.min(byteOffset, bytes.length));
  // Decoding the prefix gives the characters before the offset; a split multi-byte sequence decodes
  // to one replacement character, which still counts as the one character it belongs to.
  const prefix = bytes.subarray(0, clamped).toString('utf8');
  const lines = prefix.split('\n');
  const last = lines[lines.length - 1] ?? '';
  return { line: lines.length, column: Array.from(last).length + 1 };
}

/** 1-based line of a JavaScript string index. */
export function charIndexToLine(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

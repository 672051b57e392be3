/**
 * Tool pinning: an upstream's tool definition (name, description, input schema) is hashed when an administrator
 * approves it; a tool the upstream lists that is new, or whose definition no longer has the approved hash, is
 * refused until approved again. This defends against an upstream that changes a tool after review (a "rug
 * pull": same name, new description telling the model to do something else, or a wider input schema).
 *
 * Also the one canonical JSON form the gateway uses: for hashing definitions and for the tool-call arguments it
 * authorizes and forwards.
 */
import { createHash } from 'node:crypto';

/** Limits of {@link canonicalize}. */
export interface CanonicalLimits {
  /** Deepest nesting of objects and arrays; default 64. */
  readonly maxDepth?: number;
  /** Largest canonical text, in UTF-8 bytes; default 1 MiB. */
  readonly maxBytes?: number;
}

/** Why a value has no canonical JSON form within the limits. `path` is a JSON Pointer; never the value. */
export class CanonicalJsonError extends Error {
  constructor(readonly path: string, readonly reason: 'type' | 'depth' | 'size') {
    super(reason === 'size' ? 'the value is too large' : reason === 'depth' ? `the value is nested too deeply at ${path || '(root)'}` : `the value at ${path || '(root)'} is not JSON`);
    this.name = 'CanonicalJsonError';
  }
}

const pointer = (path: string, key: string | number): string => `${path}/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function write(value: unknown, path: string, depth: number, maxDepth: number): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      // JSON has no NaN or Infinity; -0 is written 0, as JSON.stringify does.
      if (!Number.isFinite(value)) throw new CanonicalJsonError(path, 'type');
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(path, 'type');
  }
  if (depth >= maxDepth) throw new CanonicalJsonError(path, 'depth');
  if (Array.isArray(value)) return `[${value.map((v, i) => write(v, pointer(path, i), depth + 1, maxDepth)).join(',')}]`;
  if (!isPlainObject(value)) throw new CanonicalJsonError(path, 'type');
  // Own enumerable keys only, sorted by UTF-16 code units (as RFC 8785 does); an own `__proto__` key is kept as data.
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${write(value[k], pointer(path, k), depth + 1, maxDepth)}`).join(',')}}`;
}

/**
 * The canonical JSON text of a parsed JSON value: object keys sorted at every level, no whitespace. The same
 * value always gives the same text whatever its key order. Refuses what JSON cannot carry (undefined,
 * functions, NaN, class instances) instead of dropping it, so nothing is silently lost between what is
 * authorized and what is forwarded.
 * @throws {CanonicalJsonError} when the value is not JSON, too deep or too large.
 */
export function canonicalJsonText(value: unknown, limits: CanonicalLimits = {}): string {
  const text = write(value, '', 0, limits.maxDepth ?? 64);
  if (Buffer.byteLength(text, 'utf8') > (limits.maxBytes ?? 1024 * 1024)) throw new CanonicalJsonError('', 'size');
  return text;
}

/**
 * A fresh copy of a JSON value in canonical form (keys in canonical order), sharing nothing with the input.
 * Built by parsing the canonical text, so an own `__proto__` key stays data and never becomes a prototype.
 */
export function canonicalize<T = unknown>(value: unknown, limits: CanonicalLimits = {}): T {
  return JSON.parse(canonicalJsonText(value, limits)) as T;
}

/** The pinned part of an MCP tool definition. @see MCP 2025-11-25, server/tools `Tool` */
export interface ToolDefinition {
  readonly name: string;
  readonly description?: string;
  readonly inputSchema?: unknown;
}

/**
 * The hash of a tool's definition: `sha256:<hex>` over the canonical JSON of `{ name, description, inputSchema }`.
 * Stable across key order and formatting; any change of the name, the description or the schema changes it.
 * Other members (title, annotations, outputSchema, icons, `_meta`) are not pinned.
 * @example toolDefinitionHash({ name: 'search', description: 'Search leads', inputSchema: { type: 'object' } })
 */
export function toolDefinitionHash(tool: ToolDefinition): string {
  const pinned: Record<string, unknown> = { name: tool.name };
  if (tool.description !== undefined) pinned.description = tool.description;
  if (tool.inputSchema !== undefined) pinned.inputSchema = tool.inputSchema;
  return `sha256:${createHash('sha256').update(canonicalJsonText(pinned, { maxBytes: 4 * 1024 * 1024 })).digest('hex')}`;
}

/** What {@link checkPinned} found, by the upstream's tool names. */
export interface PinCheck {
  /** Listed, configured, and matching its pinned hash. */
  readonly approved: readonly string[];
  /** Listed and configured, but with no pinned hash yet: refused until an administrator approves it. */
  readonly unpinned: ReadonlyArray<{ name: string; hash: string }>;
  /** Listed and configured with a pinned hash that the definition no longer has: refused until approved again. */
  readonly changed: ReadonlyArray<{ name: string; hash: string; pinnedHash: string }>;
  /** Listed but not configured at all: never callable until configured and approved. */
  readonly new: ReadonlyArray<{ name: string; hash: string }>;
  /** Listed more than once (with any definitions): refused, the listing is ambiguous. */
  readonly duplicated: readonly string[];
  /** Configured but not listed by the upstream now. */
  readonly missing: readonly string[];
  /** Listed entries that are not tool definitions (no string name): ignored. */
  readonly malformed: number;
}

/**
 * Compares an upstream's tool listing with the configured catalog. Pure. Names are compared exactly.
 * @param catalog the configured tools of the upstream, by the upstream's tool name, with their approved hashes.
 * @param listedTools the `tools` of the upstream's `tools/list` result(s).
 */
export function checkPinned(catalog: ReadonlyMap<string, { readonly pinnedHash?: string }>, listedTools: readonly unknown[]): PinCheck {
  const seen = new Map<string, number>();
  const defs: Array<{ name: string; tool: ToolDefinition }> = [];
  let malformed = 0;
  for (const t of listedTools) {
    if (typeof t !== 'object' || t === null || typeof (t as { name?: unknown }).name !== 'string') {
      malformed++;
      continue;
    }
    const name = (t as ToolDefinition).name;
    seen.set(name, (seen.get(name) ?? 0) + 1);
    defs.push({ name, tool: t as ToolDefinition });
  }
  const result = { approved: [] as string[], unpinned: [] as Array<{ name: string; hash: string }>, changed: [] as Array<{ name: string; hash: string; pinnedHash: string }>, new: [] as Array<{ name: string; hash: string }>, duplicated: [] as string[], missing: [] as string[], malformed };
  for (const { name, tool } of defs) {
    if ((seen.get(name) ?? 0) > 1) {
      if (!result.duplicated.includes(name)) result.duplicated.push(name);
      continue;
    }
    let hash: string;
    try {
      hash = toolDefinitionHash(tool);
    } catch {
      result.malformed++;
      continue;
    }
    const entry = catalog.get(name);
    if (entry === undefined) result.new.push({ name, hash });
    else if (entry.pinnedHash === undefined) result.unpinned.push({ name, hash });
    else if (entry.pinnedHash !== hash) result.changed.push({ name, hash, pinnedHash: entry.pinnedHash });
    else result.approved.push(name);
  }
  for (const name of catalog.keys()) if (!seen.has(name)) result.missing.push(name);
  return result;
}

/**
 * Turns configuration problems into one error that lists every problem as
 * `<key.path>: found <what was found>, expected <what is expected>`, so an operator fixes them all in one pass.
 * Values under `authzen.credentials`, principals' credentials and `tokens.kekFile` are never echoed: someone may
 * have pasted a secret where a hash or a path belongs.
 */
import { z } from 'zod';
import { ConfigInvalidError } from '../core/errors.ts';

/** One configuration problem. */
export interface ConfigIssue {
  /** Key path (`server.port`, `authzen.credentials[0].hash`), `env NAME` for an environment variable, or a file position. */
  readonly path: string;
  /** What was found, e.g. `string "abc"`. */
  readonly found: string;
  /** What is expected, e.g. `an integer 1..65535`. */
  readonly expected: string;
  /** The whole line: `<path>: found <found>, expected <expected>`. */
  readonly message: string;
  /** 1-based line in the file, when known. */
  readonly line?: number;
  /** 1-based column in the file, when known. */
  readonly column?: number;
}

/** Builds a {@link ConfigIssue}. */
export function configIssue(
  path: string,
  found: string,
  expected: string,
  position?: { line: number; column: number },
): ConfigIssue {
  return { path, found, expected, message: `${path}: found ${found}, expected ${expected}`, ...position };
}

/** Renders a key path: `server.port`, `authzen.credentials[0].hash`. */
export function formatKeyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out === '' ? '(top level)' : out;
}

/**
 * Whether values at this key path must not be echoed back: a credential's hash, or a whole entry given as a
 * scalar (`- mysecret`), either of which may be a secret pasted in the wrong place.
 */
export function isSensitivePath(path: readonly PropertyKey[]): boolean {
  if (path[0] === 'authzen' && path[1] === 'credentials') return path.length <= 3 || path[3] === 'hash';
  // A principal's credentials: a shared-secret hash, or a whole credential given as a scalar (maybe a secret or a private key).
  if (path[0] === 'principals' && path[2] === 'credentials') return path.length <= 4 || path[4] === 'hash';
  // The KEK never belongs in the file; if pasted as kekFile, do not echo it either.
  return path[0] === 'tokens' && path[1] === 'kekFile';
}

const MAX_ECHO = 60;

/** Describes a value found in the file, e.g. `string "abc"`, `number 70000`, `a list of 2 items`. */
export function describeFound(value: unknown, sensitive = false): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') {
    if (sensitive) return `a string of ${value.length} characters`;
    const shown = value.length > MAX_ECHO ? `${value.slice(0, MAX_ECHO)}…` : value;
    return `string ${JSON.stringify(shown)}`;
  }
  if (typeof value === 'number') return `number ${String(value)}`;
  if (typeof value === 'boolean') return `boolean ${String(value)}`;
  if (Array.isArray(value)) return `a list of ${value.length} item${value.length === 1 ? '' : 's'}`;
  if (typeof value === 'object') return 'a mapping';
  return typeof value;
}

/** Describes an environment variable's value, e.g. `"abc"`; sensitive values are described by length only. */
export function describeEnvValue(value: string, sensitive = false): string {
  if (sensitive) return `a value of ${value.length} characters`;
  const shown = value.length > MAX_ECHO ? `${value.slice(0, MAX_ECHO)}…` : value;
  return JSON.stringify(shown);
}

const normalize = (key: string) => key.toLowerCase().replace(/[^a-z0-9]/g, '');

/** Optimal-string-alignment distance: edits, counting a swap of two neighbours (`prot` → `port`) as one. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number) => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = v;
    }
  }
  return at(a.length, b.length);
}

/**
 * Suggests the key the operator probably meant: same letters in another case or separator style
 * (`body_limit_bytes` → `bodyLimitBytes`), or one or two typos (`prot` → `port`). Returns undefined when unsure.
 */
export function didYouMean(unknown: string, known: readonly string[]): string | undefined {
  const n = normalize(unknown);
  const exact = known.find((k) => normalize(k) === n);
  if (exact !== undefined) return exact;
  const limit = n.length <= 5 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = Infinity;
  let tie = false;
  for (const k of known) {
    const d = editDistance(n, normalize(k));
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
      tie = false;
    } else if (d === bestDistance) {
      tie = true;
    }
  }
  return bestDistance <= limit && !tie ? best : undefined;
}

/** Unwraps defaults, optionals and pipes to the schema that describes the value's shape. */
function unwrap(schema: z.ZodType): z.ZodType {
  let s: z.ZodType = schema;
  for (;;) {
    if (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional || s instanceof z.ZodNullable) {
      s = s.unwrap() as z.ZodType;
    } else if (s instanceof z.ZodPipe) {
      s = s.in as z.ZodType;
    } else {
      return s;
    }
  }
}

/** The schema at a key path, or undefined when the path leaves the schema. */
export function schemaAt(root: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  let s: z.ZodType | undefined = unwrap(root);
  for (const seg of path) {
    if (s instanceof z.ZodObject && typeof seg === 'string') {
      const next: z.ZodType | undefined = (s.shape as Record<string, z.ZodType | undefined>)[seg];
      s = next === undefined ? undefined : unwrap(next);
    } else if (s instanceof z.ZodArray && typeof seg === 'number') {
      s = unwrap(s.element as z.ZodType);
    } else {
      return undefined;
    }
  }
  return s;
}

/** Keys of the mapping at a key path. */
function knownKeysAt(root: z.ZodType, path: readonly PropertyKey[]): string[] {
  const s = schemaAt(root, path);
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

/** Every key path of every mapping in the schema, for suggesting a key that sits at the wrong level. */
function allKeyPaths(root: z.ZodType, prefix: string[] = []): string[][] {
  const s = schemaAt(root, prefix);
  if (!(s instanceof z.ZodObject)) return [];
  return Object.keys(s.shape).flatMap((k) => [[...prefix, k], ...allKeyPaths(root, [...prefix, k])]);
}

/** Locates a key path in the source file; returns undefined when it is not there (e.g. a missing key). */
export type Locate = (path: readonly PropertyKey[], keyOnly?: boolean) => { line: number; column: number } | undefined;

/**
 * Converts zod issues from validating the file into {@link ConfigIssue}s, one per problem (one per unknown key).
 * @param prefix prepended to each path, e.g. `env MANDATE_AUTHZEN_CREDENTIAL_HASHES` for values from the environment.
 */
export function fromZodIssues(
  root: z.ZodType,
  issues: readonly z.core.$ZodIssue[],
  options: { locate?: Locate; describe?: (value: unknown, path: readonly PropertyKey[]) => string; pathPrefix?: string } = {},
): ConfigIssue[] {
  const describe = options.describe ?? ((v, p) => describeFound(v, isSensitivePath(p)));
  const render = (path: readonly PropertyKey[]) => {
    const keyPath = formatKeyPath(path);
    if (options.pathPrefix === undefined) return keyPath;
    return path.length === 0 ? options.pathPrefix : `${options.pathPrefix}${typeof path[0] === 'number' ? '' : '.'}${keyPath}`;
  };
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    const path = issue.path;
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(root, path);
      for (const key of issue.keys) {
        let hint = didYouMean(key, known);
        if (hint === undefined) {
          // A key placed at the wrong level, e.g. `port:` at the top instead of under `server:`.
          const elsewhere = allKeyPaths(root).filter((p) => normalize(p[p.length - 1] ?? '') === normalize(key));
          if (elsewhere.length === 1 && elsewhere[0] !== undefined) hint = elsewhere[0].join('.');
        }
        const expected = `one of ${known.join(', ')}${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`;
        out.push(configIssue(render([...path, key]), 'an unknown key', expected, options.locate?.([...path, key], true)));
      }
      continue;
    }
    const found = describe((issue as { input?: unknown }).input, path);
    // Messages we did not customise (zod's defaults) start with "Invalid input"; say what the schema wants instead.
    const expected = issue.message.startsWith('Invalid') && path.length === 0 ? 'a mapping' : issue.message;
    out.push(configIssue(render(path), found, expected, options.locate?.(path)));
  }
  return out;
}

/** Builds the one error that lists every problem; the structured list goes in `extra.issues`. */
export function configInvalidError(source: string, issues: readonly ConfigIssue[], cause?: unknown): ConfigInvalidError {
  // Environment problems first (they have no position), then in file order, so the list reads top to bottom.
  const sorted = [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  const located = (i: ConfigIssue) => i.line !== undefined && !i.path.startsWith('line ');
  const lines = sorted.map((i) => `  - ${i.message}${located(i) ? ` (line ${i.line}, column ${i.column})` : ''}`);
  const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
  return new ConfigInvalidError(`Invalid configuration (${source}), ${count}:\n${lines.join('\n')}`, {
    extra: { source, issues: sorted.map((i) => ({ ...i })) },
    cause,
  });
}

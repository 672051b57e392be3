/**
 * Loads `mandate.yaml`: finds the file, parses the YAML, applies environment overrides, validates against the
 * schema, and resolves relative paths. Any problem, anywhere, throws one `ConfigInvalidError` listing them all.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, visit } from 'yaml';
import { yamlLocator } from './yaml-locate.ts';
import { ConfigInvalidError } from '../core/errors.ts';
import {
  configInvalidError,
  configIssue,
  describeEnvValue,
  describeFound,
  fromZodIssues,
  schemaAt,
  type ConfigIssue,
  type Locate,
} from './config-issues.ts';
import { CredentialHashSchema, MandateConfigSchema, type MandateConfig } from './config-schema.ts';

/** Environment variables, as `process.env` holds them. */
export type ConfigEnv = Readonly<Record<string, string | undefined>>;

/** The file name looked for in the working directory when neither `--config` nor `MANDATE_CONFIG` names one. */
export const DEFAULT_CONFIG_FILE = 'mandate.yaml';

/** Largest configuration file read; a config is a few kilobytes, anything far bigger is a mistake. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

type Override = { readonly name: string; readonly path: readonly string[]; readonly kind: 'string' | 'int' | 'credentials' };

/** Environment variables that override keys of the file (documented in config-schema.ts and docs/CONFIGURATION.md). */
export const ENV_OVERRIDES: readonly Override[] = [
  { name: 'MANDATE_HOST', path: ['server', 'host'], kind: 'string' },
  { name: 'MANDATE_PORT', path: ['server', 'port'], kind: 'int' },
  { name: 'MANDATE_DATA_DIR', path: ['store', 'dataDir'], kind: 'string' },
  { name: 'MANDATE_POLICY_DIR', path: ['policy', 'dir'], kind: 'string' },
  { name: 'MANDATE_POLICY_ENGINE', path: ['policy', 'engine'], kind: 'string' },
  { name: 'MANDATE_LOG_LEVEL', path: ['log', 'level'], kind: 'string' },
  { name: 'MANDATE_AUTHZEN_CREDENTIAL_HASHES', path: ['authzen', 'credentials'], kind: 'credentials' },
];

/** Where the configuration file came from. */
export interface ConfigFileLocation {
  /** Absolute path of the file. */
  readonly path: string;
  /** What named it: the `--config` flag, the `MANDATE_CONFIG` variable, or `mandate.yaml` found in the working directory. */
  readonly from: '--config' | 'MANDATE_CONFIG' | 'cwd';
}

/** Options for {@link loadConfig}. */
export interface LoadConfigOptions {
  /** The `--config` flag's value, if given; wins over `MANDATE_CONFIG`. */
  path?: string;
  /** Environment variables (pass `process.env`). */
  env: ConfigEnv;
  /** Working directory: relative `--config`/`MANDATE_CONFIG` paths and environment paths resolve against it. */
  cwd: string;
}

/** Options for {@link parseConfig}. */
export interface ParseConfigOptions {
  /** Names the text in error messages (usually the file's path). */
  source: string;
  /** Environment variables; default none. */
  env?: ConfigEnv;
  /** Directory that relative paths in the text resolve against (the file's directory). Default: `cwd`. */
  baseDir?: string;
  /** Directory that relative paths from the environment resolve against. Default: `process.cwd()`. */
  cwd?: string;
}

/**
 * Finds the configuration file: `--config` first, then `MANDATE_CONFIG`, then `mandate.yaml` in the working
 * directory if it exists; undefined when there is none (defaults and environment apply).
 */
export async function findConfigFile(options: LoadConfigOptions): Promise<ConfigFileLocation | undefined> {
  if (options.path !== undefined && options.path !== '') return { path: resolve(options.cwd, options.path), from: '--config' };
  const fromEnv = options.env.MANDATE_CONFIG;
  if (fromEnv !== undefined && fromEnv !== '') return { path: resolve(options.cwd, fromEnv), from: 'MANDATE_CONFIG' };
  const local = resolve(options.cwd, DEFAULT_CONFIG_FILE);
  try {
    if ((await stat(local)).isFile()) return { path: local, from: 'cwd' };
  } catch {
    // No mandate.yaml here: defaults and environment apply.
  }
  return undefined;
}

/**
 * Loads and validates the configuration; throws `ConfigInvalidError` listing every problem, with the structured
 * list in `extra.issues`.
 * @example const config = await loadConfig({ path: flags.config, env: process.env, cwd: process.cwd() });
 */
export async function loadConfig(options: LoadConfigOptions): Promise<MandateConfig> {
  const file = await findConfigFile(options);
  if (file === undefined) {
    return parseConfig('', { source: 'defaults and environment', env: options.env, baseDir: options.cwd, cwd: options.cwd });
  }
  const fail = (found: string, cause?: unknown): never => {
    throw configInvalidError(file.path, [configIssue(`${file.from} ${file.path}`, found, 'a readable YAML file')], cause);
  };
  let text: string;
  try {
    const info = await stat(file.path);
    if (!info.isFile()) fail(info.isDirectory() ? 'a directory' : 'not a regular file');
    if (info.size > MAX_CONFIG_BYTES) fail(`a file of ${info.size} bytes (at most ${MAX_CONFIG_BYTES} allowed)`);
    text = await readFile(file.path, 'utf8');
  } catch (err) {
    if (err instanceof ConfigInvalidError) throw err;
    const code = (err as { code?: unknown }).code;
    return fail(code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'a file it may not read' : `an unreadable file (${String(code)})`, err);
  }
  return parseConfig(text, { source: file.path, env: options.env, baseDir: dirname(file.path), cwd: options.cwd });
}

const CORE_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`));

/** Drops keys whose value is null (`port:` with nothing after it), so they take their defaults like absent keys. */
function dropNulls(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // defineProperty, not assignment: a `__proto__` key must stay a (rejected) key, not become the prototype.
    if (v !== null) Object.defineProperty(out, k, { value: dropNulls(v), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/** Sets `value` at `path` in `doc`, creating missing mappings; returns false when the file has a non-mapping in the way. */
function setAt(doc: Record<string, unknown>, path: readonly string[], value: unknown): boolean {
  let node = doc;
  for (const seg of path.slice(0, -1)) {
    const next = node[seg];
    if (next === undefined) node[seg] = {};
    else if (!isPlainObject(next)) return false;
    node = node[seg] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = value;
  return true;
}

/** Reads the environment overrides; returns the values to apply and the problems found. */
function readEnv(env: ConfigEnv): { values: { path: readonly string[]; value: unknown }[]; issues: ConfigIssue[] } {
  const values: { path: readonly string[]; value: unknown }[] = [];
  const issues: ConfigIssue[] = [];
  for (const o of ENV_OVERRIDES) {
    const raw = env[o.name];
    if (raw === undefined || raw === '') continue;
    const where = `env ${o.name}`;
    if (o.kind === 'credentials') {
      const list: unknown[] = [];
      raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '')
        .forEach((entry, i) => {
          const eq = entry.indexOf('=');
          if (eq <= 0) {
            // Never echo the entry: it may be a secret pasted by mistake.
            issues.push(configIssue(`${where}[${i}]`, describeEnvValue(entry, true), 'id=sha256:<64 hex digits>'));
            return;
          }
          const cred = { id: entry.slice(0, eq).trim(), hash: entry.slice(eq + 1).trim() };
          const r = CredentialHashSchema.safeParse(cred, { reportInput: true });
          if (r.success) list.push(cred);
          else {
            issues.push(
              ...fromZodIssues(CredentialHashSchema, r.error.issues, {
                pathPrefix: `${where}[${i}]`,
                describe: (v, p) => (typeof v === 'string' ? describeEnvValue(v, p[0] !== 'id') : describeFound(v)),
              }),
            );
          }
        });
      values.push({ path: o.path, value: list });
      continue;
    }
    const candidate = o.kind === 'int' && /^[0-9]{1,15}$/.test(raw.trim()) ? Number(raw.trim()) : raw;
    const leaf = schemaAt(MandateConfigSchema, o.path);
    const r = leaf?.safeParse(candidate);
    if (r !== undefined && !r.success) {
      issues.push(configIssue(where, describeEnvValue(raw), r.error.issues[0]?.message ?? 'a valid value'));
      continue;
    }
    values.push({ path: o.path, value: candidate });
  }
  return { values, issues };
}

/** Checks that involve more than one key. */
function crossCheck(config: MandateConfig, credentialsFromEnv: boolean, locate: Locate): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const s = config.server;
  // Node refuses to start a server whose headers timeout exceeds its request timeout.
  if (s.headersTimeoutMs > s.requestTimeoutMs) {
    issues.push(
      configIssue(
        'server.headersTimeoutMs',
        describeFound(s.headersTimeoutMs),
        `at most server.requestTimeoutMs (${s.requestTimeoutMs})`,
        locate(['server', 'headersTimeoutMs']),
      ),
    );
  }
  const credPath = (i: number, key: string) =>
    credentialsFromEnv ? `env MANDATE_AUTHZEN_CREDENTIAL_HASHES[${i}].${key}` : `authzen.credentials[${i}].${key}`;
  const credLocate = (i: number, key: string) => (credentialsFromEnv ? undefined : locate(['authzen', 'credentials', i, key]));
  const ids = new Map<string, number>();
  const hashes = new Map<string, number>();
  config.authzen.credentials.forEach((c, i) => {
    const sameId = ids.get(c.id);
    if (sameId !== undefined) {
      issues.push(configIssue(credPath(i, 'id'), describeFound(c.id), `an id not already used by ${credPath(sameId, 'id')}`, credLocate(i, 'id')));
    } else ids.set(c.id, i);
    // One secret for two ids would make the caller's identity ambiguous.
    const sameHash = hashes.get(c.hash);
    if (sameHash !== undefined) {
      issues.push(
        configIssue(credPath(i, 'hash'), `the same hash as ${credPath(sameHash, 'hash')}`, 'a hash used by one credential only', credLocate(i, 'hash')),
      );
    } else hashes.set(c.hash, i);
  });
  return issues;
}

/**
 * Parses and validates configuration text (YAML), applying environment overrides; throws `ConfigInvalidError`
 * listing every problem. Relative paths resolve against `baseDir` (from the text) or `cwd` (from the environment).
 */
export function parseConfig(text: string, options: ParseConfigOptions): MandateConfig {
  const cwd = options.cwd ?? process.cwd();
  const baseDir = options.baseDir ?? cwd;
  const issues: ConfigIssue[] = [];

  const lineCounter = new LineCounter();
  // prettyErrors off: the pretty form quotes the source line, which could hold a secret.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true, schema: 'core' });
  const pos = (offset: number) => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };
  for (const e of [...doc.errors, ...doc.warnings]) {
    const lp = e.linePos?.[0];
    const { line, column } = lp ? { line: lp.line, column: lp.col } : pos(e.pos[0]);
    issues.push(configIssue(`line ${line}, column ${column}`, `invalid YAML (${e.message})`, 'well-formed YAML', { line, column }));
  }
  // The `yaml` package resolves YAML 1.1 tags (!!binary, !!set, !!omap, !!timestamp) even in the core schema;
  // they produce Buffers, Sets and Maps that no key accepts, so refuse them by name.
  visit(doc, {
    Node(_key, node) {
      if (node.tag === undefined || node.tag === null || CORE_TAGS.has(node.tag)) return;
      const { line, column } = pos(node.range?.[0] ?? 0);
      issues.push(configIssue(`line ${line}, column ${column}`, `the YAML tag ${node.tag.replace('tag:yaml.org,2002:', '!!')}`, 'plain YAML values without tags', { line, column }));
    },
  });
  if (issues.length > 0) throw configInvalidError(options.source, issues);

  const locate: Locate = yamlLocator(doc, pos);

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw configInvalidError(options.source, [configIssue('(top level)', `YAML that cannot be read (${(err as Error).message})`, 'YAML whose aliases resolve, at most 100 of them')], err);
  }
  raw = dropNulls(raw ?? {});

  const fromEnv = readEnv(options.env ?? {});
  issues.push(...fromEnv.issues);
  const envSet = new Set<string>();
  if (isPlainObject(raw)) {
    for (const v of fromEnv.values) if (setAt(raw, v.path, v.value)) envSet.add(v.path.join('.'));
  }

  const parsed = MandateConfigSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    issues.push(...fromZodIssues(MandateConfigSchema, parsed.error.issues, { locate }));
    throw configInvalidError(options.source, issues);
  }
  issues.push(...crossCheck(parsed.data, envSet.has('authzen.credentials'), locate));
  if (issues.length > 0) throw configInvalidError(options.source, issues);

  const config = parsed.data;
  const abs = (key: string, p: string) => (isAbsolute(p) ? p : resolve(envSet.has(key) ? cwd : baseDir, p));
  config.store.dataDir = abs('store.dataDir', config.store.dataDir);
  config.policy.dir = abs('policy.dir', config.policy.dir);
  if (config.server.tls !== undefined) {
    config.server.tls = { ...config.server.tls, certFile: abs('server.tls', config.server.tls.certFile), keyFile: abs('server.tls', config.server.tls.keyFile) };
  }
  if (config.tokens.kekFile !== undefined) config.tokens.kekFile = abs('tokens.kekFile', config.tokens.kekFile);
  config.identity.issuers = config.identity.issuers.map((i) => (i.jwksFile === undefined ? i : { ...i, jwksFile: abs('identity.issuers', i.jwksFile) }));
  config.spiffe.trustDomains = config.spiffe.trustDomains.map((t) => (t.bundleFile === undefined ? t : { ...t, bundleFile: abs('spiffe.trustDomains', t.bundleFile) }));
  return config;
}

/** The configuration with every default (no file, no environment), paths resolved against `cwd`. */
export function defaultConfig(cwd: string = process.cwd()): MandateConfig {
  return parseConfig('', { source: 'defaults', baseDir: cwd, cwd });
}

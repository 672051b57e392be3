/**
 * Reads a policy directory from disk: the schema, the `*.cedar` files, `entities.yaml` and the
 * `*.test.yaml` files. Reading is separate from compiling so that the compiler stays free of I/O.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { PolicySetInvalidError } from '../core/errors.ts';
import type { EntityJson, PolicyDiagnostic, PolicySourceFile } from './types.ts';

/** The schema file every policy directory holds. */
export const SCHEMA_FILE = 'schema.cedarschema';
/** Optional file of entities the directory defines (Cedar JSON entity format, as YAML or JSON). */
export const ENTITY_FILES = ['entities.yaml', 'entities.yml', 'entities.json'];

/** The raw contents of a policy directory. */
export interface PolicyDirectory {
  dir: string;
  schema: PolicySourceFile;
  policies: PolicySourceFile[];
  /** Entities defined by the directory, with the file they came from. */
  entities: EntityJson[];
  entitiesFile?: PolicySourceFile;
  tests: PolicySourceFile[];
}

const MAX_FILES = 10_000;
const MAX_FILE_BYTES = 4 * 1024 * 1024;

/**
 * Reads `dir` recursively. Throws `PolicySetInvalidError` when the schema is missing, a file is too large
 * or `entities.yaml` is not a list.
 */
export async function readPolicyDirectory(dir: string): Promise<PolicyDirectory> {
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) {
    throw new PolicySetInvalidError(`policy directory ${dir} does not exist or is not a directory`);
  }
  const all: string[] = [];
  await walk(dir, dir, all);
  all.sort();
  const read = async (rel: string): Promise<PolicySourceFile> => {
    const abs = join(dir, rel);
    const s = await stat(abs);
    if (s.size > MAX_FILE_BYTES) {
      throw new PolicySetInvalidError(`${rel} is ${s.size} bytes; policy files are limited to ${MAX_FILE_BYTES} bytes`);
    }
    return { path: rel, text: await readFile(abs, 'utf8') };
  };
  if (!all.includes(SCHEMA_FILE)) {
    throw new PolicySetInvalidError(`${dir} has no ${SCHEMA_FILE}: a policy set is always validated against its schema`, {
      extra: { diagnostics: [{ severity: 'error', message: `missing ${SCHEMA_FILE}`, position: { file: SCHEMA_FILE, line: 1, column: 1 } }] },
    });
  }
  const schema = await read(SCHEMA_FILE);
  const policies = await Promise.all(all.filter((f) => f.endsWith('.cedar')).map(read));
  const tests = await Promise.all(all.filter((f) => f.endsWith('.test.yaml') || f.endsWith('.test.yml')).map(read));
  const entityPath = ENTITY_FILES.find((f) => all.includes(f));
  let entities: EntityJson[] = [];
  let entitiesFile: PolicySourceFile | undefined;
  if (entityPath) {
    entitiesFile = await read(entityPath);
    entities = parseEntityFile(entitiesFile);
  }
  return { dir, schema, policies, entities, ...(entitiesFile ? { entitiesFile } : {}), tests };
}

/** Parses an entity file: a YAML (or JSON) list of Cedar JSON entities. */
export function parseEntityFile(file: PolicySourceFile): EntityJson[] {
  let doc: unknown;
  try {
    doc = parseYaml(file.text, { maxAliasCount: 100 });
  } catch (err) {
    const diag: PolicyDiagnostic = { severity: 'error', message: err instanceof Error ? err.message.split('\n')[0] ?? 'invalid YAML' : 'invalid YAML' };
    if (err instanceof YAMLParseError && err.linePos?.[0]) {
      diag.position = { file: file.path, line: err.linePos[0].line, column: err.linePos[0].col };
    }
    throw new PolicySetInvalidError(`${file.path} is not valid YAML`, { extra: { diagnostics: [diag] } });
  }
  if (doc === null || doc === undefined) return [];
  if (!Array.isArray(doc)) {
    throw new PolicySetInvalidError(`${file.path} must be a list of entities ({ uid, attrs, parents })`, {
      extra: { diagnostics: [{ severity: 'error', message: 'expected a list of entities', position: { file: file.path, line: 1, column: 1 } }] },
    });
  }
  return doc.map((e, i) => {
    if (typeof e !== 'object' || e === null || typeof (e as { uid?: unknown }).uid !== 'object') {
      throw new PolicySetInvalidError(`${file.path}: entity #${i} must be an object with uid, attrs and parents`);
    }
    const o = e as { uid: EntityJson['uid']; attrs?: Record<string, unknown>; parents?: EntityJson['uid'][]; tags?: Record<string, unknown> };
    return { uid: o.uid, attrs: o.attrs ?? {}, parents: o.parents ?? [], ...(o.tags ? { tags: o.tags } : {}) };
  });
}

async function walk(root: string, dir: string, out: string[]): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const abs = join(dir, entry.name);
    if (entry.isDirectory()) await walk(root, abs, out);
    else if (entry.isFile()) out.push(relative(root, abs).split(sep).join('/'));
    if (out.length > MAX_FILES) throw new PolicySetInvalidError(`${root} holds more than ${MAX_FILES} files`);
  }
}

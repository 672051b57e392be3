/**
 * Turns the contents of a policy directory into a validated policy set: parses the schema and every
 * policy, validates strictly, assigns policy ids, checks the directory's entities against the schema and
 * computes the set's version. A set with any error is refused whole.
 */
import { createHash } from 'node:crypto';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { DetailedError, SchemaJson } from '@cedar-policy/cedar-wasm/nodejs';
import { PolicySetInvalidError } from '../core/errors.ts';
import { formatEntityRef, type EntityRef } from '../core/decision.ts';
import { byteOffsetToLineColumn, charIndexToLine } from './source-position.ts';
import { normalizeEntity, entityKey, entitySlice } from './entities.ts';
import type { PolicyDirectory } from './read-policy-directory.ts';
import type { EntityJson, LoadedPolicy, PolicyDiagnostic, PolicySourceFile } from './types.ts';

/** What a request may name: entity types and actions with the types they apply to. */
export interface SchemaInfo {
  entityTypes: ReadonlySet<string>;
  /** Entity type of actions (`Action`, or `Ns::Action`). */
  actionType: string;
  actions: ReadonlyMap<string, { principalTypes: readonly string[]; resourceTypes: readonly string[]; memberOf: readonly string[] }>;
}

/** A validated policy set, ready to be pre-parsed into the engine. */
export interface CompiledPolicySet {
  version: string;
  schemaText: string;
  schemaInfo: SchemaInfo;
  policies: LoadedPolicy[];
  policyById: ReadonlyMap<string, LoadedPolicy>;
  /** Policy id → Cedar text, the form the engine pre-parses. */
  staticPolicies: Record<string, string>;
  /** Directory entities by `Type::"id"`. */
  entities: ReadonlyMap<string, EntityJson>;
  /**
   * Entities the policies name as literals (`Group::"staff"`, outside the action type): every request's
   * entity slice includes them, so that a policy reading a literal's attributes or ancestors sees the
   * directory's data rather than a missing entity.
   */
  literalEntities: readonly EntityRef[];
  /** The directory entities reachable from the literals (computed once; part of every request's slice). */
  literalSlice: readonly EntityJson[];
  literalSliceKeys: ReadonlySet<string>;
  /** Keys reached from the literals that the directory does not define: a caller may describe them. */
  literalDangling: ReadonlySet<string>;
  warnings: PolicyDiagnostic[];
}

const ID_ANNOTATION = 'id';

/**
 * Compiles a policy directory. Throws `PolicySetInvalidError` with `extra.diagnostics` (file, line, column,
 * message) listing every problem found.
 */
export function compilePolicySet(dir: Pick<PolicyDirectory, 'schema' | 'policies' | 'entities' | 'entitiesFile'>): CompiledPolicySet {
  const errors: PolicyDiagnostic[] = [];
  const warnings: PolicyDiagnostic[] = [];

  const schemaText = dir.schema.text;
  const schemaJson = parseSchema(dir.schema, errors);
  if (!schemaJson) throw invalid(errors);
  const schemaInfo = describeSchema(schemaJson);

  const policies: LoadedPolicy[] = [];
  const staticPolicies: Record<string, string> = {};
  const policyById = new Map<string, LoadedPolicy>();

  for (const file of dir.policies) {
    const parts = cedar.policySetTextToParts(file.text);
    if (parts.type === 'failure') {
      errors.push(...parts.errors.map((e) => toDiagnostic(e, file, 'error')));
      continue;
    }
    if (parts.policy_templates.length > 0) {
      errors.push({ severity: 'error', message: 'policy templates are not supported yet; write static policies', position: { file: file.path, line: 1, column: 1 } });
    }
    const validation = cedar.validate({ schema: schemaText, policies: { staticPolicies: file.text }, validationSettings: { mode: 'strict' } });
    if (validation.type === 'failure') {
      errors.push(...validation.errors.map((e) => toDiagnostic(e, file, 'error')));
      continue;
    }
    // policySetTextToParts does not return policies in source order, so each is located from the start of
    // the file (skipping offsets already taken by an identical policy text) and the list is put back in source
    // order. The parser names policies `policy<N>` by that order, and so do default ids (`file:N`).
    const taken = new Set<number>();
    const ordered = parts.policies
      .map((text) => {
        let found = file.text.indexOf(text);
        while (found >= 0 && taken.has(found)) found = file.text.indexOf(text, found + 1);
        if (found >= 0) taken.add(found);
        return { text, at: found < 0 ? Number.MAX_SAFE_INTEGER : found };
      })
      .sort((a, b) => a.at - b.at);

    // The validator names policies `policy<N>`; report Mandate's ids instead.
    const idOf = (engineId: string) => {
      const n = /^policy(\d+)$/.exec(engineId)?.[1];
      const text = n === undefined ? undefined : ordered[Number(n)]?.text;
      const annotated = text === undefined ? undefined : /@id\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)/.exec(text)?.[1];
      return annotated ?? (n === undefined ? engineId : `${file.path}:${n}`);
    };
    const rename = (d: PolicyDiagnostic, engineId: string): PolicyDiagnostic => {
      const id = idOf(engineId);
      const swap = (text: string) => text.split(`\`${engineId}\``).join(`\`${id}\``);
      return { ...d, message: swap(d.message), ...(d.help ? { help: swap(d.help) } : {}), policyId: id };
    };
    for (const v of validation.validationErrors) errors.push(rename(toDiagnostic(v.error, file, 'error'), v.policyId));
    for (const v of validation.validationWarnings) warnings.push(rename(toDiagnostic(v.error, file, 'warning'), v.policyId));
    for (const w of validation.otherWarnings) warnings.push(toDiagnostic(w, file, 'warning'));

    ordered.forEach(({ text, at: offset }, index) => {
      const json = cedar.policyToJson(text);
      if (json.type === 'failure') {
        errors.push(...json.errors.map((e) => toDiagnostic(e, file, 'error')));
        return;
      }
      const line = offset === Number.MAX_SAFE_INTEGER ? 1 : charIndexToLine(file.text, offset);
      const annotations = json.json.annotations ?? {};
      const id = annotations[ID_ANNOTATION] ?? `${file.path}:${index}`;
      if (!/^[\w.:/@-]{1,200}$/.test(id)) {
        errors.push({ severity: 'error', message: `policy id ${JSON.stringify(id)} may only hold letters, digits and . : / @ - _ (at most 200)`, position: { file: file.path, line, column: 1 } });
        return;
      }
      const existing = policyById.get(id);
      if (existing) {
        errors.push({ severity: 'error', message: `duplicate policy id ${JSON.stringify(id)} (also at ${existing.file}:${existing.line})`, policyId: id, position: { file: file.path, line, column: 1 } });
        return;
      }
      const policy: LoadedPolicy = { id, effect: json.json.effect, text, file: file.path, line, annotations, json: json.json };
      policies.push(policy);
      policyById.set(id, policy);
      staticPolicies[id] = text;
    });
  }

  if (policies.length === 0 && errors.length === 0) {
    errors.push({ severity: 'error', message: 'the policy set holds no policy: a node never serves with an empty set' });
  }

  const entities = compileEntities(dir.entities, dir.entitiesFile, schemaText, schemaInfo, errors);

  if (errors.length > 0) throw invalid(errors);

  const hash = createHash('sha256');
  for (const f of [dir.schema, ...dir.policies, ...(dir.entitiesFile ? [dir.entitiesFile] : [])].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    hash.update(f.path).update('\0').update(f.text).update('\0');
  }
  const literals = new Map<string, EntityRef>();
  for (const p of policies) collectLiteralEntities(p.json, schemaInfo, literals);
  const literalSliceKeys = new Set<string>();
  const literalDangling = new Set<string>();
  const literalSlice = entitySlice([...literals.values()], (k) => entities.get(k), schemaInfo.entityTypes, Number.MAX_SAFE_INTEGER, { seen: literalSliceKeys, missing: literalDangling });
  for (const k of literalDangling) literalSliceKeys.delete(k);
  return {
    literalEntities: [...literals.values()],
    literalSlice,
    literalSliceKeys,
    literalDangling,
    version: `sha256:${hash.digest('hex')}`,
    schemaText,
    schemaInfo,
    policies,
    policyById,
    staticPolicies,
    entities,
    warnings,
  };
}

/** Collects entity literals of a policy's JSON form (scope constraints and `__entity` values), actions excluded. */
function collectLiteralEntities(json: unknown, schemaInfo: SchemaInfo, out: Map<string, EntityRef>, depth = 0): void {
  if (depth > 200 || typeof json !== 'object' || json === null) return;
  if (Array.isArray(json)) {
    for (const v of json) collectLiteralEntities(v, schemaInfo, out, depth + 1);
    return;
  }
  const o = json as Record<string, unknown>;
  const ref = (o.__entity ?? o) as { type?: unknown; id?: unknown };
  if (typeof ref.type === 'string' && typeof ref.id === 'string' && ref.type !== schemaInfo.actionType && schemaInfo.entityTypes.has(ref.type)) {
    const r = { type: ref.type, id: ref.id };
    out.set(formatEntityRef(r), r);
  }
  for (const v of Object.values(o)) collectLiteralEntities(v, schemaInfo, out, depth + 1);
}

function parseSchema(file: PolicySourceFile, errors: PolicyDiagnostic[]): SchemaJson<string> | undefined {
  const parsed = cedar.checkParseSchema(file.text);
  if (parsed.type === 'failure') {
    errors.push(...parsed.errors.map((e) => toDiagnostic(e, file, 'error')));
    return undefined;
  }
  const json = cedar.schemaToJson(file.text);
  if (json.type === 'failure') {
    errors.push(...json.errors.map((e) => toDiagnostic(e, file, 'error')));
    return undefined;
  }
  return json.json;
}

/** Extracts entity types and actions (with what they apply to) from a schema's JSON form. */
export function describeSchema(schema: SchemaJson<string>): SchemaInfo {
  const entityTypes = new Set<string>();
  const actions = new Map<string, { principalTypes: string[]; resourceTypes: string[]; memberOf: string[] }>();
  let actionType = 'Action';
  for (const [ns, def] of Object.entries(schema)) {
    const q = (name: string) => (ns && !name.includes('::') ? `${ns}::${name}` : name);
    for (const name of Object.keys(def.entityTypes ?? {})) entityTypes.add(q(name));
    if (Object.keys(def.actions ?? {}).length > 0) actionType = ns ? `${ns}::Action` : 'Action';
    for (const [name, action] of Object.entries(def.actions ?? {})) {
      actions.set(name, {
        principalTypes: (action.appliesTo?.principalTypes ?? []).map(q),
        resourceTypes: (action.appliesTo?.resourceTypes ?? []).map(q),
        memberOf: (action.memberOf ?? []).map((m) => m.id),
      });
    }
  }
  return { entityTypes, actionType, actions };
}

function compileEntities(
  list: EntityJson[],
  file: PolicySourceFile | undefined,
  schemaText: string,
  schemaInfo: SchemaInfo,
  errors: PolicyDiagnostic[],
): Map<string, EntityJson> {
  const map = new Map<string, EntityJson>();
  const path = file?.path ?? 'entities.yaml';
  const where = (ref: EntityRef | undefined) => {
    if (!file || !ref) return { file: path, line: 1, column: 1 };
    const idx = file.text.indexOf(ref.id);
    return { file: path, line: idx >= 0 ? charIndexToLine(file.text, idx) : 1, column: 1 };
  };
  const normalized: EntityJson[] = [];
  for (const raw of list) {
    try {
      const e = normalizeEntity(raw, schemaInfo);
      const key = entityKey(e.uid);
      if (map.has(key)) {
        errors.push({ severity: 'error', message: `entity ${formatEntityRef(e.uid)} is defined twice`, position: where(e.uid) });
        continue;
      }
      map.set(key, e);
      normalized.push(e);
    } catch (err) {
      errors.push({ severity: 'error', message: err instanceof Error ? err.message : String(err), position: where(raw?.uid) });
    }
  }
  if (normalized.length > 0) {
    const check = cedar.checkParseEntities({ entities: normalized as never, schema: schemaText });
    if (check.type === 'failure') {
      for (const e of check.errors) errors.push({ severity: 'error', message: e.message, position: { file: path, line: 1, column: 1 } });
    }
  }
  return map;
}

function toDiagnostic(e: DetailedError, file: PolicySourceFile, severity: 'error' | 'warning'): PolicyDiagnostic {
  const loc = e.sourceLocations?.[0];
  const d: PolicyDiagnostic = { severity, message: e.message };
  if (e.help) d.help = e.help;
  d.position = loc ? { file: file.path, ...byteOffsetToLineColumn(file.text, loc.start) } : { file: file.path, line: 1, column: 1 };
  return d;
}

function invalid(diagnostics: PolicyDiagnostic[]): PolicySetInvalidError {
  const first = diagnostics[0];
  const where = first?.position ? `${first.position.file}:${first.position.line}:${first.position.column}: ` : '';
  return new PolicySetInvalidError(
    `policy set refused (${diagnostics.length} error${diagnostics.length === 1 ? '' : 's'}): ${where}${first?.message ?? 'unknown error'}`,
    { extra: { diagnostics } },
  );
}

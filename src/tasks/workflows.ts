/**
 * Workflows: approved intents, one YAML file each in the `workflows/` folder of the policy directory
 * (`workflows/<id>.yaml`). A workflow says which tools (with JSON Schema limits on their arguments), which
 * actions and which data a task may use, how many steps at what rate, for how long, what needs a person's
 * approval, and what a violation does. docs/workflows.md documents the format.
 *
 * Files are validated strictly (an unknown key is an error, never ignored), every problem is reported with its
 * file, key path and line:column, and a directory loads all or nothing: one bad file refuses every workflow,
 * so a node never runs with half of its intents. Each workflow is versioned by its content (`sha256:` over the
 * canonical JSON of the validated file), so formatting, comments and key order do not change its version and
 * a task can be bound to the exact version it started with.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { LineCounter, parseDocument, visit } from 'yaml';
import { yamlLocator } from '../config/yaml-locate.ts';
import { z } from 'zod';
import { fromZodIssues, formatKeyPath, describeFound } from '../config/config-issues.ts';
import { PolicySetInvalidError } from '../core/errors.ts';
import type { EntityRef } from '../core/decision.ts';
import type { EntityJson, PolicyDiagnostic, PolicySourceFile } from '../policy/types.ts';

/** The folder of the policy directory that holds workflow files. */
export const WORKFLOWS_FOLDER = 'workflows';
/** File extensions read as workflow files. `*.test.yaml` files are policy tests, never workflows. */
export const WORKFLOW_FILE_EXTENSIONS = ['.yaml', '.yml'] as const;
/** Largest workflow file read (a workflow is a few kilobytes). */
export const MAX_WORKFLOW_FILE_BYTES = 256 * 1024;
/** Most workflow files one directory may hold. */
export const MAX_WORKFLOW_FILES = 1000;
/**
 * Highest `steps.rate.count`. A task keeps the times of its last `count` steps to decide its rate, so this
 * bounds what each open task holds.
 */
export const MAX_RATE_COUNT = 1000;

/** Data sensitivity levels, as Dataset.sensitivityLevel holds them. */
export const SENSITIVITY_LEVELS = { public: 0, internal: 1, confidential: 2, restricted: 3 } as const;

/** Actions of the data boundary (schema.cedarschema: `read, write, delete, export in [data]`). */
export const DATA_ACTIONS: ReadonlySet<string> = new Set(['read', 'write', 'delete', 'export']);
/** Resource types that hold data: their sensitivity is checked against the workflow's ceiling. */
export const DATA_RESOURCE_TYPES: ReadonlySet<string> = new Set(['Dataset', 'Record']);

const int = (min: number, max: number) => {
  const expected = `an integer ${min}..${max}`;
  return z.int({ error: expected }).min(min, { error: expected }).max(max, { error: expected });
};
const text = (max: number) => {
  const expected = `a non-empty string of at most ${max} characters`;
  return z.string({ error: expected }).trim().min(1, { error: expected }).max(max, { error: expected });
};
const list = <T extends z.ZodType>(item: T, what: string, max: number) =>
  z.array(item, { error: `a list of ${what}` }).max(max, { error: `at most ${max} ${what}` });

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ID_EXPECTED = 'an id of 1..128 letters, digits or . _ - starting with a letter or digit';
// A Cedar Tool's qualified name, `server.name` (MCP tool names: letters, digits, _ - .).
const TOOL_PATTERN = /^[A-Za-z0-9_-]{1,128}\.[A-Za-z0-9_.-]{1,128}$/;
const TOOL_EXPECTED = 'a tool\'s qualified name "server.name" (letters, digits, _ - .)';
// A Cedar action id, as schema.cedarschema declares it.
const ACTION_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const ACTION_EXPECTED = 'a Cedar action id (read, write, call, send, ...)';
const APPROVAL_EXPECTED = 'required or none';

const approval = () => z.enum(['required', 'none'], { error: APPROVAL_EXPECTED }).default('none');

/** One tool a workflow may use. */
const WorkflowToolSchema = z.strictObject(
  {
    name: z.string({ error: TOOL_EXPECTED }).regex(TOOL_PATTERN, { error: TOOL_EXPECTED }),
    /** JSON Schema (draft 2020-12) the call's arguments must satisfy; absent: the workflow does not limit them. */
    args: z.record(z.string(), z.unknown(), { error: 'a JSON Schema (draft 2020-12) as a mapping' }).optional(),
    approval: approval(),
  },
  { error: 'a mapping with name and optionally args, approval' },
);

/** One action a workflow may take. */
const WorkflowActionSchema = z.strictObject(
  {
    name: z.string({ error: ACTION_EXPECTED }).regex(ACTION_PATTERN, { error: ACTION_EXPECTED }),
    approval: approval(),
  },
  { error: 'a mapping with name and optionally approval' },
);

const names = (items: readonly { name: string }[]) => items.map((i) => i.name);
const noDuplicates = (what: string) => (items: readonly { name: string }[], ctx: z.RefinementCtx) => {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const first = seen.get(item.name);
    if (first !== undefined) {
      ctx.addIssue({ code: 'custom', path: [i, 'name'], input: item.name, message: `${what} not already listed at [${first}]` });
    } else seen.set(item.name, i);
  });
};

/**
 * The content of a workflow file. Defaults: `status: active`, `approval: none`, `tools: []`,
 * `onViolation: { action: deny, quarantineAgent: false }`.
 */
export const WorkflowDefinitionSchema = z
  .strictObject(
    {
      id: z.string({ error: ID_EXPECTED }).regex(ID_PATTERN, { error: ID_EXPECTED }),
      name: text(200),
      description: text(4000).optional(),
      status: z.enum(['active', 'retired'], { error: 'active or retired' }).default('active'),
      tools: list(WorkflowToolSchema, 'tools', 256).superRefine(noDuplicates('a tool')).default([]),
      data: z.strictObject(
        {
          maxSensitivityLevel: int(0, 3),
          /** Datasets (ids) the workflow may touch; absent: any dataset within the ceiling. */
          datasets: list(z.string({ error: ID_EXPECTED }).regex(ID_PATTERN, { error: ID_EXPECTED }), 'dataset ids', 256)
            .refine((d) => new Set(d).size === d.length, { error: 'a list of dataset ids without duplicates' })
            .optional(),
        },
        { error: 'a mapping with maxSensitivityLevel (0..3) and optionally datasets' },
      ),
      actions: list(WorkflowActionSchema, 'actions', 64)
        .min(1, { error: 'at least one action' })
        .superRefine(noDuplicates('an action')),
      steps: z.strictObject(
        {
          max: int(1, 1_000_000),
          rate: z
            .strictObject(
              { count: int(1, MAX_RATE_COUNT), perSeconds: int(1, 86_400) },
              { error: 'a mapping with count and perSeconds' },
            )
            .optional(),
        },
        { error: 'a mapping with max and optionally rate' },
      ),
      duration: z
        .strictObject(
          {
            maxSeconds: int(1, 30 * 86_400),
            idleSeconds: int(1, 30 * 86_400).optional(),
          },
          { error: 'a mapping with maxSeconds and optionally idleSeconds' },
        )
        .superRefine((d, ctx) => {
          if (d.idleSeconds !== undefined && d.idleSeconds > d.maxSeconds) {
            ctx.addIssue({ code: 'custom', path: ['idleSeconds'], input: d.idleSeconds, message: 'idleSeconds at most maxSeconds' });
          }
        }),
      onViolation: z
        .strictObject(
          {
            action: z.enum(['deny', 'revoke'], { error: 'deny or revoke' }).default('deny'),
            quarantineAgent: z.boolean({ error: 'true or false' }).default(false),
          },
          { error: 'a mapping with action (deny | revoke) and quarantineAgent' },
        )
        .prefault({}),
    },
    { error: 'a mapping' },
  )
  .superRefine((w, ctx) => {
    // A tool is used through an action (call, or an effect such as send): a workflow with tools but no action
    // that reaches a tool could never use them.
    if (w.tools.length > 0 && w.actions.length > 0 && w.actions.every((a) => DATA_ACTIONS.has(a.name))) {
      ctx.addIssue({ code: 'custom', path: ['actions'], input: names(w.actions), message: 'an action that uses tools (call, send, trigger, ...) when tools are listed' });
    }
  });

/** The validated content of a workflow file. */
export type WorkflowDefinition = z.output<typeof WorkflowDefinitionSchema>;
/** One tool of a workflow. */
export type WorkflowTool = WorkflowDefinition['tools'][number];

/** Where a JSON Schema refused a tool call's arguments: paths and keywords only, never the values. */
export interface ArgsError {
  /** JSON Pointer into the arguments (`/recipient`), `` for the arguments as a whole. */
  instancePath: string;
  /** JSON Pointer into the tool's schema (`#/properties/amount/maximum`). */
  schemaPath: string;
  /** The JSON Schema keyword that failed (`maximum`, `required`, `additionalProperties`). */
  keyword: string;
}

/** Checks one tool call's arguments against the tool's schema. */
export type ArgsValidator = (args: unknown) => { ok: true } | { ok: false; errors: ArgsError[] };

/** A loaded workflow: its definition, its version, where it came from, and its compiled argument validators. */
export type Workflow = Readonly<WorkflowDefinition> & {
  /** `sha256:<hex>` over the canonical JSON of the definition. */
  readonly version: string;
  /** Path relative to the policy directory, e.g. `workflows/lead-followup.yaml`. */
  readonly file: string;
  /** Compiled argument validators, by tool name, for the tools that have an `args` schema. */
  readonly argsValidators: ReadonlyMap<string, ArgsValidator>;
};

/** The result of loading a directory's workflows: all of them, or none and the reasons. */
export interface WorkflowLoadResult {
  /** False when any file has an error; `workflows` is then empty (all or nothing). */
  ok: boolean;
  workflows: Map<string, Workflow>;
  /** Errors and warnings, each with its file and, where known, line and column. */
  diagnostics: PolicyDiagnostic[];
}

// ---- Canonical form and version ---------------------------------------------------------------

/**
 * JSON with object keys sorted at every level and no whitespace: the same value always gives the same text,
 * whatever the key order or formatting of the YAML it came from.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    // undefined, functions and symbols have no JSON form; callers only pass parsed YAML.
    if (s === undefined) throw new TypeError('canonicalJson: value has no JSON form');
    return s;
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** The version of a workflow definition: `sha256:` over its canonical JSON (defaults applied). */
export function workflowVersion(definition: WorkflowDefinition): string {
  return `sha256:${createHash('sha256').update(canonicalJson(definition)).digest('hex')}`;
}

// ---- JSON Schema compilation ------------------------------------------------------------------

/**
 * A fresh Ajv for draft 2020-12. `strict` refuses unknown keywords and formats (a typo in a limit would
 * otherwise silently allow everything); `addUsedSchema: false` keeps each tool's schema on its own, so one
 * schema's `$id` can never be referenced from another; no `loadSchema`, so nothing is ever fetched.
 */
export function createArgsAjv(): Ajv2020 {
  return new Ajv2020({ strict: true, allErrors: false, addUsedSchema: false, validateSchema: true, $data: false });
}

/** `$ref`/`$dynamicRef` values in a schema that do not point inside it (`#...`), with their key paths. */
function externalRefs(schema: unknown, path: (string | number)[] = []): { path: (string | number)[]; ref: string }[] {
  if (schema === null || typeof schema !== 'object') return [];
  if (Array.isArray(schema)) return schema.flatMap((v, i) => externalRefs(v, [...path, i]));
  const out: { path: (string | number)[]; ref: string }[] = [];
  for (const [k, v] of Object.entries(schema)) {
    if ((k === '$ref' || k === '$dynamicRef') && typeof v === 'string' && !v.startsWith('#')) out.push({ path: [...path, k], ref: v });
    else out.push(...externalRefs(v, [...path, k]));
  }
  return out;
}

/** Compiles one tool's argument schema, or says why it cannot be used. */
export function compileArgsSchema(ajv: Ajv2020, schema: Record<string, unknown>): { ok: true; validate: ArgsValidator } | { ok: false; message: string; path?: (string | number)[] } {
  const remote = externalRefs(schema)[0];
  if (remote !== undefined) {
    return {
      ok: false,
      message: `a $ref that points outside this schema (${JSON.stringify(remote.ref.slice(0, 200))}): only local references ("#/$defs/...") are allowed, nothing is fetched`,
      path: remote.path,
    };
  }
  let fn: ValidateFunction;
  try {
    fn = ajv.compile(schema);
  } catch (err) {
    return { ok: false, message: `not a usable JSON Schema (draft 2020-12): ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` };
  }
  const validate: ArgsValidator = (args) => {
    if (fn(args)) return { ok: true };
    const errors = (fn.errors ?? []).map((e: ErrorObject) => ({ instancePath: e.instancePath, schemaPath: e.schemaPath, keyword: e.keyword }));
    return { ok: false, errors: errors.length > 0 ? errors : [{ instancePath: '', schemaPath: '#', keyword: 'false' }] };
  };
  return { ok: true, validate };
}

// ---- Parsing one file -------------------------------------------------------------------------

const CORE_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`));

/** The id a workflow file must declare: its name without the extension. */
export function idFromFileName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const ext = WORKFLOW_FILE_EXTENSIONS.find((e) => base.endsWith(e));
  return ext === undefined ? base : base.slice(0, -ext.length);
}

/**
 * Parses and validates one workflow file. Pure: the caller reads the file. Returns the workflow, or the
 * diagnostics that refuse it (every problem of the file, each with line and column).
 * @param ajv shared across a load; see {@link createArgsAjv}.
 */
export function parseWorkflowFile(file: PolicySourceFile, ajv: Ajv2020 = createArgsAjv()): { workflow?: Workflow; diagnostics: PolicyDiagnostic[] } {
  const diagnostics: PolicyDiagnostic[] = [];
  const error = (message: string, at?: { line: number; column: number }) =>
    diagnostics.push({ severity: 'error', message, position: { file: file.path, line: at?.line ?? 1, column: at?.column ?? 1 } });

  const lineCounter = new LineCounter();
  // prettyErrors off: the pretty form quotes source lines.
  const doc = parseDocument(file.text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true, schema: 'core' });
  const pos = (offset: number) => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };
  for (const e of [...doc.errors, ...doc.warnings]) {
    const lp = e.linePos?.[0];
    error(`invalid YAML: ${e.message.split('\n')[0] ?? ''}`, lp ? { line: lp.line, column: lp.col } : pos(e.pos[0]));
  }
  // YAML 1.1 tags (!!binary, !!set, !!timestamp) produce values no key accepts; refuse them by name.
  visit(doc, {
    Node(_key, node) {
      if (node.tag === undefined || node.tag === null || CORE_TAGS.has(node.tag)) return;
      error(`the YAML tag ${node.tag.replace('tag:yaml.org,2002:', '!!')} is not allowed: write plain values`, pos(node.range?.[0] ?? 0));
    },
  });
  if (diagnostics.length > 0) return { diagnostics };

  /** Line and column of the value (or, with keyOnly, the key) at a key path; the nearest existing parent otherwise. */
  const locate = yamlLocator(doc, pos);

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    error(`YAML that cannot be read: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    return { diagnostics };
  }
  if (raw === null || raw === undefined) {
    error('an empty file: a workflow needs at least id, name, data, actions, steps and duration');
    return { diagnostics };
  }

  const parsed = WorkflowDefinitionSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    for (const issue of fromZodIssues(WorkflowDefinitionSchema, parsed.error.issues, { locate, describe: (v) => describeFound(v) })) {
      error(issue.message, issue.line === undefined ? undefined : { line: issue.line, column: issue.column ?? 1 });
    }
    return { diagnostics };
  }
  const definition = parsed.data;
  const expectedId = idFromFileName(file.path);
  if (definition.id !== expectedId) {
    error(`id: found ${describeFound(definition.id)}, expected "${expectedId}" (the file's name: one workflow per file, named by its id)`, locate(['id']));
  }

  const argsValidators = new Map<string, ArgsValidator>();
  definition.tools.forEach((tool, i) => {
    if (tool.args === undefined) return;
    const compiled = compileArgsSchema(ajv, tool.args);
    if (compiled.ok) argsValidators.set(tool.name, compiled.validate);
    else {
      const at = ['tools', i, 'args', ...(compiled.path ?? [])];
      error(`${formatKeyPath(at)}: ${compiled.message}`, locate(at, compiled.path !== undefined));
    }
  });
  if (diagnostics.length > 0) return { diagnostics };

  const workflow: Workflow = Object.freeze({ ...definition, version: workflowVersion(definition), file: file.path, argsValidators });
  return { workflow, diagnostics };
}

// ---- Loading a directory ----------------------------------------------------------------------

/** Whether a file name in `workflows/` is a workflow file (YAML, not a policy test). */
export function isWorkflowFileName(name: string): boolean {
  if (name.endsWith('.test.yaml') || name.endsWith('.test.yml')) return false;
  return WORKFLOW_FILE_EXTENSIONS.some((e) => name.endsWith(e));
}

/**
 * Reads and validates every workflow file of `policyDir/workflows/`. All or nothing: when any file has an
 * error, `ok` is false and no workflow is returned. A directory without a `workflows/` folder has no
 * workflows (ok). Never throws for bad content; unreadable files are diagnostics too.
 * @example const { ok, workflows, diagnostics } = await loadWorkflowDirectory('examples/policies');
 */
export async function loadWorkflowDirectory(policyDir: string): Promise<WorkflowLoadResult> {
  const dir = join(policyDir, WORKFLOWS_FOLDER);
  const diagnostics: PolicyDiagnostic[] = [];
  const st = await stat(dir).catch(() => undefined);
  if (st === undefined) return { ok: true, workflows: new Map(), diagnostics };
  if (!st.isDirectory()) {
    diagnostics.push({ severity: 'error', message: `${WORKFLOWS_FOLDER} is not a directory`, position: { file: WORKFLOWS_FOLDER, line: 1, column: 1 } });
    return { ok: false, workflows: new Map(), diagnostics };
  }
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.')).sort((a, b) => (a.name < b.name ? -1 : 1));
  const files: PolicySourceFile[] = [];
  for (const e of entries) {
    const rel = `${WORKFLOWS_FOLDER}/${e.name}`;
    if (!e.isFile() || !isWorkflowFileName(e.name)) {
      // .cedar files and policy tests here are read by the policy loader; say so for anything else.
      if (!e.name.endsWith('.cedar') && !e.name.endsWith('.test.yaml') && !e.name.endsWith('.test.yml')) {
        diagnostics.push({ severity: 'warning', message: `${rel} is not a workflow file (*.yaml) and is ignored`, position: { file: rel, line: 1, column: 1 } });
      }
      continue;
    }
    if (files.length >= MAX_WORKFLOW_FILES) {
      diagnostics.push({ severity: 'error', message: `more than ${MAX_WORKFLOW_FILES} workflow files`, position: { file: rel, line: 1, column: 1 } });
      break;
    }
    try {
      const s = await stat(join(dir, e.name));
      if (s.size > MAX_WORKFLOW_FILE_BYTES) {
        diagnostics.push({ severity: 'error', message: `a file of ${s.size} bytes; workflow files are limited to ${MAX_WORKFLOW_FILE_BYTES} bytes`, position: { file: rel, line: 1, column: 1 } });
        continue;
      }
      files.push({ path: rel, text: await readFile(join(dir, e.name), 'utf8') });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      diagnostics.push({ severity: 'error', message: `cannot be read (${String(code ?? err)})`, position: { file: rel, line: 1, column: 1 } });
    }
  }
  const result = parseWorkflowFiles(files);
  const ok = result.ok && !diagnostics.some((d) => d.severity === 'error');
  return { ok, workflows: ok ? result.workflows : new Map(), diagnostics: [...diagnostics, ...result.diagnostics] };
}

/** Validates already-read workflow files together (all or nothing); pure. */
export function parseWorkflowFiles(files: readonly PolicySourceFile[]): WorkflowLoadResult {
  const ajv = createArgsAjv();
  const diagnostics: PolicyDiagnostic[] = [];
  const workflows = new Map<string, Workflow>();
  for (const file of files) {
    const r = parseWorkflowFile(file, ajv);
    diagnostics.push(...r.diagnostics);
    if (r.workflow === undefined) continue;
    const other = workflows.get(r.workflow.id);
    if (other !== undefined) {
      diagnostics.push({ severity: 'error', message: `workflow "${r.workflow.id}" is also defined by ${other.file}`, position: { file: file.path, line: 1, column: 1 } });
      continue;
    }
    workflows.set(r.workflow.id, r.workflow);
  }
  const ok = !diagnostics.some((d) => d.severity === 'error');
  return { ok, workflows: ok ? workflows : new Map(), diagnostics };
}

/**
 * Like {@link loadWorkflowDirectory}, but throws `PolicySetInvalidError` (with `extra.diagnostics`) when the
 * workflows are refused, so that a reload can refuse them the way it refuses a policy set.
 */
export async function loadWorkflowDirectoryOrThrow(policyDir: string): Promise<Map<string, Workflow>> {
  const r = await loadWorkflowDirectory(policyDir);
  if (!r.ok) {
    const errors = r.diagnostics.filter((d) => d.severity === 'error').length;
    throw new PolicySetInvalidError(`the workflows in ${policyDir}/${WORKFLOWS_FOLDER} are invalid (${errors} error${errors === 1 ? '' : 's'}); none were loaded`, {
      extra: { diagnostics: r.diagnostics },
    });
  }
  return r.workflows;
}

/** `sha256:` over the ids and versions of a set of workflows: changes when any workflow changes. */
export function workflowSetVersion(workflows: ReadonlyMap<string, Workflow>): string {
  const pairs = [...workflows.values()].map((w) => [w.id, w.version]).sort(([a], [b]) => ((a as string) < (b as string) ? -1 : 1));
  return `sha256:${createHash('sha256').update(canonicalJson(pairs)).digest('hex')}`;
}

// ---- Cedar ------------------------------------------------------------------------------------

/** The Cedar entity reference of a workflow. */
export function workflowRef(id: string): EntityRef {
  return { type: 'Workflow', id };
}

/**
 * The Cedar `Workflow` entity of a workflow (schema.cedarschema): the tools it lists, its sensitivity ceiling,
 * its step budget, its id as a String (Cedar cannot turn an entity id into one, and `Agent.workflows` lists
 * ids) and its status.
 */
export function workflowEntity(workflow: WorkflowDefinition): EntityJson {
  return {
    uid: workflowRef(workflow.id),
    attrs: {
      tools: workflow.tools.map((t) => t.name),
      maxSensitivityLevel: workflow.data.maxSensitivityLevel,
      maxSteps: workflow.steps.max,
      workflowId: workflow.id,
      status: workflow.status,
    },
    parents: [],
  };
}

/**
 * Compares the `Workflow` entities a policy directory defines (entities.yaml) with its workflow files. The
 * directory's entity is authoritative in decisions, so an entity that says something else than its file is an
 * error; an entity without a file is a warning (no task can be opened for it).
 */
export function checkWorkflowEntities(
  workflows: ReadonlyMap<string, Workflow>,
  entities: readonly EntityJson[],
  entitiesFile: PolicySourceFile = { path: 'entities.yaml', text: '' },
): PolicyDiagnostic[] {
  const out: PolicyDiagnostic[] = [];
  const lines = entitiesFile.text.split('\n');
  // The line of `uid: { type: Workflow, id: <id> }` (either key order, quoted or not); 1 when not found.
  const lineOf = (id: string) => {
    const i = lines.findIndex((l) => /\bWorkflow\b/.test(l) && new RegExp(`\\bid"?\\s*:\\s*["']?${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}["']?\\s*[,}]`).test(l));
    return i < 0 ? 1 : i + 1;
  };
  for (const e of entities) {
    if (e.uid.type !== 'Workflow') continue;
    const position = { file: entitiesFile.path, line: lineOf(e.uid.id), column: 1 };
    const w = workflows.get(e.uid.id);
    if (w === undefined) {
      out.push({ severity: 'warning', message: `Workflow::"${e.uid.id}" is defined in ${entitiesFile.path} but there is no ${WORKFLOWS_FOLDER}/${e.uid.id}.yaml: no task can be opened for it`, position });
      continue;
    }
    const expected = workflowEntity(w).attrs;
    const differing = Object.keys(expected).filter((k) => e.attrs[k] === undefined || canonicalJson(normalizeAttr(e.attrs[k])) !== canonicalJson(normalizeAttr(expected[k])));
    const extra = Object.keys(e.attrs).filter((k) => !(k in expected));
    if (differing.length > 0 || extra.length > 0) {
      const what = [...differing.map((k) => `${k} (file: ${canonicalJson(expected[k])}, entity: ${e.attrs[k] === undefined ? 'missing' : canonicalJson(e.attrs[k])})`), ...extra.map((k) => `${k} (not from the file)`)];
      out.push({
        severity: 'error',
        message: `Workflow::"${e.uid.id}" in ${entitiesFile.path} differs from ${w.file}: ${what.join('; ')}. The directory's entity decides, so it must say what the file says`,
        position,
      });
    }
  }
  return out;
}

/** Sets compare as sets: sort lists of strings. */
function normalizeAttr(v: unknown): unknown {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? [...(v as string[])].sort() : v;
}

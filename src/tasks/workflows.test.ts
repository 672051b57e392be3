import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  canonicalJson,
  checkWorkflowEntities,
  loadWorkflowDirectory,
  loadWorkflowDirectoryOrThrow,
  parseWorkflowFile,
  parseWorkflowFiles,
  workflowEntity,
  workflowSetVersion,
  type Workflow,
} from './workflows.ts';
import { PolicySetInvalidError } from '../core/errors.ts';
import type { EntityJson, PolicyDiagnostic } from '../policy/types.ts';

const EXAMPLES = new URL('../../examples/policies', import.meta.url).pathname;

const VALID = `id: demo
name: Demo
status: active
tools:
  - name: crm.search
    args:
      type: object
      properties:
        query: { type: string, maxLength: 20 }
        limit: { type: integer, minimum: 1, maximum: 10 }
      required: [query]
      additionalProperties: false
  - name: email.send
    approval: required
data:
  maxSensitivityLevel: 2
actions:
  - name: read
  - name: call
  - name: send
steps:
  max: 5
  rate: { count: 2, perSeconds: 60 }
duration:
  maxSeconds: 600
  idleSeconds: 60
onViolation:
  action: revoke
  quarantineAgent: true
`;

/** `line:col` of the first occurrence of `needle` in `text` (plus `shift` characters). */
function at(text: string, needle: string, shift = 0): string {
  const i = text.indexOf(needle);
  assert.ok(i >= 0, `${needle} is in the text`);
  const before = text.slice(0, i + shift).split('\n');
  return `${before.length}:${(before[before.length - 1] ?? '').length + 1}`;
}

function parse(text: string, path = 'workflows/demo.yaml') {
  return parseWorkflowFile({ path, text });
}

function ok(text: string, path?: string): Workflow {
  const r = parse(text, path);
  assert.deepEqual(r.diagnostics, []);
  assert.ok(r.workflow);
  return r.workflow;
}

/** The errors of a file, as `line:col message`. */
function errors(text: string, path?: string): string[] {
  const r = parse(text, path);
  assert.equal(r.workflow, undefined, 'a file with errors yields no workflow');
  return r.diagnostics.map((d) => {
    assert.equal(d.severity, 'error');
    assert.equal(d.position?.file, path ?? 'workflows/demo.yaml');
    return `${d.position?.line}:${d.position?.column} ${d.message}`;
  });
}

test('a valid file: its definition with defaults, a sha256 version and compiled argument validators', () => {
  const w = ok(VALID);
  assert.equal(w.id, 'demo');
  assert.equal(w.file, 'workflows/demo.yaml');
  assert.match(w.version, /^sha256:[0-9a-f]{64}$/);
  assert.deepEqual(w.tools.map((t) => [t.name, t.approval]), [['crm.search', 'none'], ['email.send', 'required']]);
  assert.deepEqual(w.actions, [{ name: 'read', approval: 'none' }, { name: 'call', approval: 'none' }, { name: 'send', approval: 'none' }]);
  assert.deepEqual(w.onViolation, { action: 'revoke', quarantineAgent: true });
  assert.deepEqual([...w.argsValidators.keys()], ['crm.search']);
  const minimal = ok('id: demo\nname: Demo\ndata: { maxSensitivityLevel: 0 }\nactions: [{ name: read }]\nsteps: { max: 1 }\nduration: { maxSeconds: 1 }\n');
  assert.equal(minimal.status, 'active');
  assert.deepEqual(minimal.tools, []);
  assert.deepEqual(minimal.onViolation, { action: 'deny', quarantineAgent: false });
  assert.equal(minimal.steps.rate, undefined);
  assert.equal(minimal.duration.idleSeconds, undefined);
});

test('every file error is reported with its key path and line:column, all of them at once', () => {
  // Unknown keys, with a suggestion, at the key's position.
  const typo = VALID.replace('  max: 5', '  maxx: 5\n  max: 5');
  assert.deepEqual(errors(typo), [`${at(typo, 'maxx')} steps.maxx: found an unknown key, expected one of max, rate (did you mean "max"?)`]);
  const misplaced = `${VALID}maxSeconds: 5\n`;
  assert.deepEqual(errors(misplaced), [
    `${at(misplaced, '\nmaxSeconds', 1)} maxSeconds: found an unknown key, expected one of id, name, description, status, tools, data, actions, steps, duration, onViolation (did you mean "duration.maxSeconds"?)`,
  ]);
  // Wrong types and out-of-range values, each at its value; every problem of the file at once.
  const ranges = VALID.replace('maxSensitivityLevel: 2', 'maxSensitivityLevel: 4').replace('approval: required', 'approval: maybe');
  assert.deepEqual(errors(ranges), [
    `${at(ranges, 'maybe')} tools[1].approval: found string "maybe", expected required or none`,
    `${at(ranges, '4')} data.maxSensitivityLevel: found number 4, expected an integer 0..3`,
  ]);
  // A missing key points at the mapping that lacks it.
  const missing = VALID.replace('  maxSeconds: 600\n', '');
  assert.deepEqual(errors(missing), [`${at(missing, 'idleSeconds')} duration.maxSeconds: found nothing, expected an integer 1..2592000`]);
  assert.deepEqual(errors(VALID.replace('name: Demo\n', '')), ['1:1 name: found nothing, expected a non-empty string of at most 200 characters']);
  // Cross-field: idle longer than the maximum duration.
  const idle = VALID.replace('idleSeconds: 60', 'idleSeconds: 601');
  assert.deepEqual(errors(idle), [`${at(idle, '601')} duration.idleSeconds: found number 601, expected idleSeconds at most maxSeconds`]);
  // Duplicate tools and actions.
  const dup = VALID.replace('  - name: email.send', '  - name: crm.search').replace('  - name: send', '  - name: read');
  assert.deepEqual(errors(dup), [
    `${at(dup, 'crm.search\n    approval')} tools[1].name: found string "crm.search", expected a tool not already listed at [0]`,
    `${at(dup, 'read\n  - name: call\n  - name: read', 30)} actions[2].name: found string "read", expected an action not already listed at [0]`,
  ]);
  // A tool name that is not a qualified name, an action that is not an id.
  const names = VALID.replace('name: email.send', 'name: send').replace('name: call', 'name: "call it"');
  assert.deepEqual(errors(names), [
    `${at(names, 'send\n')} tools[1].name: found string "send", expected a tool's qualified name "server.name" (letters, digits, _ - .)`,
    `${at(names, '"call it"')} actions[1].name: found string "call it", expected a Cedar action id (read, write, call, send, ...)`,
  ]);
  // Enumerations.
  const enums = VALID.replace('status: active', 'status: paused').replace('action: revoke', 'action: quarantine');
  assert.deepEqual(errors(enums), [
    `${at(enums, 'paused')} status: found string "paused", expected active or retired`,
    `${at(enums, 'quarantine\n')} onViolation.action: found string "quarantine", expected deny or revoke`,
  ]);
  // Tools listed, but only data actions: the tools could never be used.
  const dataOnly = VALID.replace('  - name: call\n  - name: send\n', '');
  assert.deepEqual(errors(dataOnly), [`${at(dataOnly, '- name: read')} actions: found a list of 1 item, expected an action that uses tools (call, send, trigger, ...) when tools are listed`]);
  // No actions at all.
  const none = VALID.replace(/actions:\n( {2}- name: \w+\n)+/, 'actions: []\n');
  assert.deepEqual(errors(none), [`${at(none, '[]')} actions: found a list of 0 items, expected at least one action`]);
  // Not a mapping at all.
  assert.deepEqual(errors('- a\n- b\n'), ['1:1 (top level): found a list of 2 items, expected a mapping']);
});

test('the id must be the file name', () => {
  assert.deepEqual(errors(VALID, 'workflows/other.yaml'), ['1:5 id: found string "demo", expected "other" (the file\'s name: one workflow per file, named by its id)']);
  ok(VALID.replace('id: demo', 'id: x.y_z-1'), 'workflows/x.y_z-1.yml');
  assert.match(errors(VALID.replace('id: demo', 'id: "../etc"'), 'workflows/../etc.yaml')[0] ?? '', /^1:5 id: found string "\.\.\/etc", expected an id of 1\.\.128/);
});

test('YAML problems: syntax, duplicate keys, tags, empty file', () => {
  assert.match(errors('id: demo\nname: [unclosed\n')[0] ?? '', /^\d+:\d+ invalid YAML: /);
  const twice = `${VALID}name: Again\n`;
  assert.equal(errors(twice)[0], `${at(twice, 'name: Again')} invalid YAML: Map keys must be unique`);
  const tagged = VALID.replace('maxSeconds: 600', 'maxSeconds: !!binary aGVsbG8=');
  assert.deepEqual(errors(tagged), [`${at(tagged, 'aGVsbG8=')} the YAML tag !!binary is not allowed: write plain values`]);
  assert.deepEqual(errors(''), ['1:1 an empty file: a workflow needs at least id, name, data, actions, steps and duration']);
  assert.deepEqual(errors('# only a comment\n'), ['1:1 an empty file: a workflow needs at least id, name, data, actions, steps and duration']);
});

test('argument schemas: compiled once, JSON Schema 2020-12, accepted and refused calls, never the values in errors', () => {
  const w = ok(VALID);
  const validate = w.argsValidators.get('crm.search');
  assert.ok(validate);
  assert.deepEqual(validate({ query: 'acme' }), { ok: true });
  assert.deepEqual(validate({ query: 'acme', limit: 10 }), { ok: true });
  const tooMany = validate({ query: 'acme', limit: 11 });
  assert.deepEqual(tooMany, { ok: false, errors: [{ instancePath: '/limit', schemaPath: '#/properties/limit/maximum', keyword: 'maximum' }] });
  const extra = validate({ query: 'secret-value', other: 'x' });
  assert.equal(extra.ok, false);
  assert.ok(!JSON.stringify(extra).includes('secret-value'));
  assert.deepEqual(validate({}), { ok: false, errors: [{ instancePath: '', schemaPath: '#/required', keyword: 'required' }] });
  assert.equal(validate('not an object').ok, false);
  // 2020-12 keywords work: prefixItems, $defs with a local $ref, dependentRequired.
  const modern = ok(
    VALID.replace(
      / {4}args:\n( {6}.*\n)+/,
      `    args:
      $defs:
        pos: { type: integer, minimum: 0 }
      type: object
      properties:
        pair: { type: array, prefixItems: [{ $ref: "#/$defs/pos" }, { type: string }], minItems: 2, items: false }
        a: { type: string }
        b: { type: string }
      dependentRequired: { a: [b] }
`,
    ),
  );
  const v = modern.argsValidators.get('crm.search');
  assert.ok(v);
  assert.deepEqual(v({ pair: [1, 'x'] }), { ok: true });
  assert.equal(v({ pair: [-1, 'x'] }).ok, false);
  assert.equal(v({ pair: [1, 'x', 'extra'] }).ok, false);
  assert.equal(v({ a: 'x' }).ok, false);
  assert.deepEqual(v({ a: 'x', b: 'y' }), { ok: true });
});

test('argument schemas that cannot be used are refused with their position: remote $ref, unknown keywords and formats, bad local $ref', () => {
  const withArgs = (args: string) => VALID.replace(/ {4}args:\n( {6}.*\n)+/, `    args:\n${args}`);
  assert.deepEqual(errors(withArgs('      type: object\n      properties:\n        q: { $ref: "https://schemas.example/evil.json" }\n')), [
    '9:14 tools[0].args.properties.q.$ref: a $ref that points outside this schema ("https://schemas.example/evil.json"): only local references ("#/$defs/...") are allowed, nothing is fetched',
  ]);
  assert.deepEqual(errors(withArgs('      $ref: "other.json#/x"\n')), [
    '7:7 tools[0].args.$ref: a $ref that points outside this schema ("other.json#/x"): only local references ("#/$defs/...") are allowed, nothing is fetched',
  ]);
  assert.deepEqual(errors(withArgs('      $id: "https://schemas.example/x"\n      $dynamicRef: "https://schemas.example/y#meta"\n')), [
    '8:7 tools[0].args.$dynamicRef: a $ref that points outside this schema ("https://schemas.example/y#meta"): only local references ("#/$defs/...") are allowed, nothing is fetched',
  ]);
  const [typo] = errors(withArgs('      type: object\n      properties:\n        q: { type: string, maxLenght: 5 }\n'));
  assert.match(typo ?? '', /^7:7 tools\[0\]\.args: not a usable JSON Schema \(draft 2020-12\): strict mode: unknown keyword: "maxLenght"/);
  const [format] = errors(withArgs('      type: string\n      format: email\n'));
  assert.match(format ?? '', /^7:7 tools\[0\]\.args: not a usable JSON Schema .*unknown format "email"/);
  const [local] = errors(withArgs('      $ref: "#/$defs/missing"\n'));
  assert.match(local ?? '', /^7:7 tools\[0\]\.args: not a usable JSON Schema .*can't resolve reference #\/\$defs\/missing/);
  const [badType] = errors(withArgs('      type: objekt\n'));
  assert.match(badType ?? '', /^7:7 tools\[0\]\.args: not a usable JSON Schema /);
  assert.deepEqual(errors(VALID.replace(/ {4}args:\n( {6}.*\n)+/, '    args: [1, 2]\n')), ['6:11 tools[0].args: found a list of 2 items, expected a JSON Schema (draft 2020-12) as a mapping']);
});

test('one schema\'s $id cannot be referenced from another tool or workflow (each is compiled on its own)', () => {
  const a = VALID.replace(/ {4}args:\n( {6}.*\n)+/, '    args:\n      $id: "https://schemas.example/shared"\n      type: object\n');
  const b = VALID.replace('id: demo', 'id: other').replace(/ {4}args:\n( {6}.*\n)+/, '    args:\n      $ref: "https://schemas.example/shared"\n');
  const r = parseWorkflowFiles([{ path: 'workflows/demo.yaml', text: a }, { path: 'workflows/other.yaml', text: b }]);
  assert.equal(r.ok, false);
  assert.deepEqual(r.diagnostics.map((d) => `${d.position?.file}:${d.position?.line}`), ['workflows/other.yaml:7']);
  // Two tools may use the same $id without a clash.
  ok(VALID.replace(/ {4}args:\n( {6}.*\n)+/, '    args:\n      $id: "https://schemas.example/x"\n      type: object\n').replace('    approval: required', '    approval: required\n    args:\n      $id: "https://schemas.example/x"\n      type: object'));
});

test('versions: stable across formatting, comments, key order and explicit defaults; changed by any content change', () => {
  const base = ok(VALID).version;
  const reformatted = `# a comment
onViolation: { quarantineAgent: true, action: revoke }
duration: { idleSeconds: 60, maxSeconds: 600 }
steps: { rate: { perSeconds: 60, count: 2 }, max: 5 }
actions: [{ name: read, approval: none }, { name: call }, { name: send }]
data: { maxSensitivityLevel: 2 }
tools:
  - { name: crm.search, approval: none, args: { additionalProperties: false, required: [query], properties: { limit: { maximum: 10, minimum: 1, type: integer }, query: { maxLength: 20, type: string } }, type: object } }
  - name: email.send   # needs a person
    approval: required
name: "Demo"
id: 'demo'
`;
  assert.equal(ok(reformatted).version, base);
  assert.equal(ok(VALID.replace('status: active\n', '')).version, base, 'status: active is the default');
  assert.notEqual(ok(VALID.replace('max: 5', 'max: 6')).version, base);
  assert.notEqual(ok(VALID.replace('maxLength: 20', 'maxLength: 21')).version, base);
  assert.notEqual(ok(VALID.replace('status: active', 'status: retired')).version, base);
  assert.notEqual(ok(VALID.replace('name: Demo', 'name: Demo 2')).version, base);
  assert.equal(canonicalJson({ b: [2, { d: 1, c: null }], a: 'x' }), '{"a":"x","b":[2,{"c":null,"d":1}]}');
});

async function withDir(files: Record<string, string>, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-workflows-'));
  try {
    for (const [path, text] of Object.entries(files)) {
      await mkdir(join(dir, path, '..'), { recursive: true });
      await writeFile(join(dir, path), text);
    }
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a directory loads all or nothing; a directory without workflows/ has none', async () => {
  await withDir({ 'workflows/demo.yaml': VALID, 'workflows/other.yaml': VALID.replace('id: demo', 'id: other'), 'workflows/README.md': '# notes', 'workflows/x.cedar': '' }, async (dir) => {
    const r = await loadWorkflowDirectory(dir);
    assert.equal(r.ok, true);
    assert.deepEqual([...r.workflows.keys()], ['demo', 'other']);
    assert.deepEqual(r.diagnostics.map((d) => [d.severity, d.message]), [['warning', 'workflows/README.md is not a workflow file (*.yaml) and is ignored']]);
    assert.match(workflowSetVersion(r.workflows), /^sha256:/);
  });
  await withDir({ 'workflows/demo.yaml': VALID, 'workflows/other.yaml': VALID.replace('id: demo', 'id: other').replace('max: 5', 'max: 0') }, async (dir) => {
    const r = await loadWorkflowDirectory(dir);
    assert.equal(r.ok, false);
    assert.equal(r.workflows.size, 0, 'one bad file refuses every workflow');
    assert.deepEqual(r.diagnostics.map((d) => `${d.position?.file}:${d.position?.line}:${d.position?.column}: ${d.message}`), [
      'workflows/other.yaml:22:8: steps.max: found number 0, expected an integer 1..1000000',
    ]);
    await assert.rejects(loadWorkflowDirectoryOrThrow(dir), (err: unknown) => {
      assert.ok(err instanceof PolicySetInvalidError);
      assert.equal((err.extra?.diagnostics as PolicyDiagnostic[]).length, 1);
      return true;
    });
  });
  await withDir({ 'workflows/demo.yaml': VALID, 'workflows/demo.yml': VALID }, async (dir) => {
    const r = await loadWorkflowDirectory(dir);
    assert.equal(r.ok, false);
    assert.deepEqual(r.diagnostics.map((d) => d.message), ['workflow "demo" is also defined by workflows/demo.yaml']);
  });
  await withDir({ 'workflows/big.yaml': `# ${'x'.repeat(300 * 1024)}\n` }, async (dir) => {
    const r = await loadWorkflowDirectory(dir);
    assert.equal(r.ok, false);
    assert.match(r.diagnostics[0]?.message ?? '', /workflow files are limited to 262144 bytes/);
  });
  await withDir({ 'workflows': 'not a folder' }, async (dir) => {
    const r = await loadWorkflowDirectory(dir);
    assert.equal(r.ok, false);
    assert.equal(r.diagnostics[0]?.message, 'workflows is not a directory');
  });
  await withDir({ 'schema.cedarschema': '' }, async (dir) => {
    assert.deepEqual(await loadWorkflowDirectory(dir), { ok: true, workflows: new Map(), diagnostics: [] });
    assert.equal((await loadWorkflowDirectoryOrThrow(dir)).size, 0);
  });
});

test('the example workflows load, and entities.yaml says what their files say', async () => {
  const r = await loadWorkflowDirectory(EXAMPLES);
  assert.deepEqual(r.diagnostics, []);
  assert.deepEqual([...r.workflows.keys()], ['lead-followup', 'spring-campaign', 'ticket-triage']);
  assert.equal(r.workflows.get('spring-campaign')?.status, 'retired');
  const entities = parseYaml(await readFile(join(EXAMPLES, 'entities.yaml'), 'utf8')) as EntityJson[];
  assert.deepEqual(checkWorkflowEntities(r.workflows, entities), []);
  for (const w of r.workflows.values()) {
    const e = entities.find((x) => x.uid.type === 'Workflow' && x.uid.id === w.id);
    assert.ok(e, `entities.yaml defines Workflow::"${w.id}"`);
    assert.deepEqual({ ...e, parents: e.parents ?? [] }, workflowEntity(w));
  }
});

test('workflowEntity is the Cedar Workflow entity; checkWorkflowEntities finds entities that disagree with their files', () => {
  const w = ok(VALID);
  assert.deepEqual(workflowEntity(w), {
    uid: { type: 'Workflow', id: 'demo' },
    attrs: { tools: ['crm.search', 'email.send'], maxSensitivityLevel: 2, maxSteps: 5, workflowId: 'demo', status: 'active' },
    parents: [],
  });
  const workflows = new Map([['demo', w]]);
  const same: EntityJson = { uid: { type: 'Workflow', id: 'demo' }, attrs: { tools: ['email.send', 'crm.search'], maxSensitivityLevel: 2, maxSteps: 5, workflowId: 'demo', status: 'active' }, parents: [] };
  assert.deepEqual(checkWorkflowEntities(workflows, [same]), [], 'tools compare as a set');
  const differs: EntityJson = { ...same, attrs: { ...same.attrs, maxSteps: 50, extra: true } };
  const [d] = checkWorkflowEntities(workflows, [differs]);
  assert.equal(d?.severity, 'error');
  assert.match(d?.message ?? '', /differs from workflows\/demo\.yaml: maxSteps \(file: 5, entity: 50\); extra \(not from the file\)/);
  const orphan: EntityJson = { uid: { type: 'Workflow', id: 'gone' }, attrs: {}, parents: [] };
  assert.equal(checkWorkflowEntities(workflows, [orphan])[0]?.severity, 'warning');
});

async function validate(dir: string, ...flags: string[]): Promise<{ code: number; out: string }> {
  const { runCli } = await import('../cli/run-cli.ts');
  let out = '';
  const io = { stdout: (t: string) => void (out += t), stderr: (t: string) => void (out += t), readStdin: async () => '', cwd: '/', env: {} };
  const code = await runCli(['policy', 'validate', dir, ...flags], io);
  return { code, out };
}

test('mandate policy validate checks the workflows too: how many loaded, each problem as file:line:col, exit 1', async () => {
  const good = await validate(EXAMPLES);
  assert.equal(good.code, 0, good.out);
  assert.match(good.out, /^\d+ policies, \d+ entities: valid \(version sha256:[0-9a-f]{64}\)\nengine: compiled .*\n3 workflows \(1 retired\): valid \(version sha256:[0-9a-f]{64}\)\n$/);
  const schema = await readFile(join(EXAMPLES, 'schema.cedarschema'), 'utf8');
  const policy = '@id("p") permit (principal is User, action == Action::"read", resource);\n';
  await withDir({ 'schema.cedarschema': schema, 'p.cedar': policy }, async (dir) => {
    const r = await validate(dir);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /\n0 workflows \(no workflow files in workflows\/\)\n$/);
  });
  await withDir({ 'schema.cedarschema': schema, 'p.cedar': policy, 'workflows/demo.yaml': VALID.replace('max: 5', 'max: -1') }, async (dir) => {
    const r = await validate(dir);
    assert.equal(r.code, 1);
    assert.ok(r.out.includes(`${dir}/workflows/demo.yaml:22:8: error: steps.max: found number -1, expected an integer 1..1000000\n${dir}/workflows: invalid (1 error); no workflow would be loaded\n`), r.out);
    const json = await validate(dir, '--json');
    assert.equal(json.code, 1);
    assert.deepEqual((JSON.parse(json.out) as PolicyDiagnostic[]).map((d) => d.position), [{ file: 'workflows/demo.yaml', line: 22, column: 8 }]);
  });
  // An entity in entities.yaml that says something else than the workflow's file.
  const entities = (await readFile(join(EXAMPLES, 'entities.yaml'), 'utf8')).replace('maxSteps: 20', 'maxSteps: 200');
  await withDir({ 'schema.cedarschema': schema, 'p.cedar': policy, 'entities.yaml': entities, 'workflows/lead-followup.yaml': await readFile(join(EXAMPLES, 'workflows/lead-followup.yaml'), 'utf8') }, async (dir) => {
    const r = await validate(dir);
    assert.equal(r.code, 1);
    const line = entities.split('\n').findIndex((l) => l.includes('{ type: Workflow, id: lead-followup }')) + 1;
    assert.match(r.out, new RegExp(`^${dir}/entities\\.yaml:${line}:1: error: Workflow::"lead-followup" in entities\\.yaml differs from workflows/lead-followup\\.yaml: maxSteps \\(file: 20, entity: 200\\)`, 'm'));
    // Entities without a file: a warning each, for ticket-triage and spring-campaign.
    assert.equal(r.out.split('\n').filter((l) => l.includes(': warning: ') && l.includes('no task can be opened for it')).length, 2);
  });
  // A refused policy set lists the workflow problems too.
  await withDir({ 'schema.cedarschema': schema, 'bad.cedar': 'permit (principal, action, resource) when { nope };', 'workflows/demo.yaml': VALID.replace('max: 5', 'max: -1') }, async (dir) => {
    const r = await validate(dir);
    assert.equal(r.code, 1);
    assert.match(r.out, /workflows\/demo\.yaml:22:8: error: steps\.max/);
    assert.match(r.out, /: invalid \(\d+ errors\); the set would be refused whole\n$/);
  });
});

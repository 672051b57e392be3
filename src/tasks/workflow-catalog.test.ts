import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PolicyEngine } from '../policy/policy-engine.ts';
import { WorkflowCatalog, withWorkflows } from './workflow-catalog.ts';

const EXAMPLES = new URL('../../examples/policies', import.meta.url).pathname;

async function copy(t: { after(fn: () => unknown): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-catalog-'));
  await cp(EXAMPLES, dir, { recursive: true });
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('workflows load with the policy set, all or nothing; a change is announced once the set is active', async (t) => {
  const dir = await copy(t);
  const catalog = new WorkflowCatalog();
  let changes = 0;
  const engine = withWorkflows(new PolicyEngine(), catalog, async () => {
    changes++;
  });
  const first = await engine.reload(dir);
  assert.equal(first.ok, true);
  assert.deepEqual([...catalog.current().keys()].sort(), ['lead-followup', 'spring-campaign', 'ticket-triage']);
  assert.equal(changes, 1);
  const version = engine.current()?.version;
  const before = catalog.version();

  // A broken workflow file: the whole reload is refused; the previous set and workflows stay.
  const file = join(dir, 'workflows', 'ticket-triage.yaml');
  const good = await readFile(file, 'utf8');
  await writeFile(file, good.replace('maxSeconds: 1800', 'maxSeconds: -5'));
  const bad = await engine.reload(dir);
  assert.equal(bad.ok, false);
  assert.match(String((bad as { error: Error }).error.message), /workflows/);
  assert.equal(engine.current()?.version, version);
  assert.equal(catalog.version(), before);

  // A Workflow entity that says something else than its file is refused too (Cedar would see other limits).
  await writeFile(file, good);
  const entities = join(dir, 'entities.yaml');
  const text = await readFile(entities, 'utf8');
  await writeFile(entities, text.replace('    maxSteps: 10\n    workflowId: ticket-triage', '    maxSteps: 99\n    workflowId: ticket-triage'));
  const mismatch = await engine.reload(dir);
  assert.equal(mismatch.ok, false);
  assert.match(String((mismatch as { error: Error }).error.message), /differ from their workflow files/);
  assert.equal(changes, 1, 'nothing changed, nothing announced');

  await writeFile(entities, text);
  await writeFile(file, good.replace('maxSeconds: 1800', 'maxSeconds: 1200'));
  const changed = await engine.reload(dir);
  assert.equal(changed.ok, true);
  assert.equal(changed.ok && changed.changed, true, 'a workflow-only change counts as a change');
  assert.notEqual(catalog.version(), before);
  assert.equal(changes, 2);
});

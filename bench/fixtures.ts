/**
 * Generated policy sets for the benchmarks: `policies` permits over `groups` groups, so that the measured
 * request reaches a known number of entities and policies.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { AuthorizationRequest, EntityJson } from '../src/policy/types.ts';

const SCHEMA = new URL('../examples/policies/schema.cedarschema', import.meta.url).pathname;

/** Writes a generated policy directory; returns it with a request that one of its policies allows. */
export async function generatedPolicyDir(policies: number, entities: number): Promise<{ dir: string; request: AuthorizationRequest; entityCount: number }> {
  const dir = await mkdtemp(join(tmpdir(), `mandate-bench-${policies}-${entities}-`));
  await writeFile(join(dir, 'schema.cedarschema'), await readFile(SCHEMA, 'utf8'));
  // The request slice: the user, the dataset and (entities - 2) groups the user belongs to.
  const groups = Math.max(0, entities - 2);
  const list: EntityJson[] = [];
  for (let g = 0; g < groups; g++) list.push({ uid: { type: 'Group', id: `g${g}` }, attrs: {}, parents: [] });
  list.push({ uid: { type: 'User', id: 'alice' }, attrs: { department: 'sales', roles: [] }, parents: list.map((e) => e.uid) });
  list.push({ uid: { type: 'Dataset', id: 'wiki' }, attrs: { sensitivity: 'internal', tenant: 'acme' }, parents: [] });
  await writeFile(join(dir, 'entities.yaml'), stringify(list));
  const lines: string[] = [];
  for (let i = 0; i < policies - 1; i++) {
    // Policies over other actions and groups: they exist in the set but do not apply to the request.
    lines.push(`@id("p${i}")\npermit(principal in Group::"other${i}", action == Action::"${i % 2 ? 'write' : 'export'}", resource is Dataset) when { resource.sensitivityLevel <= ${i % 4} };`);
  }
  lines.push(`@id("allow-internal-read")\npermit(principal is User, action == Action::"read", resource is Dataset) when { resource.sensitivityLevel <= 1 && context has step && context.step <= 10 };`);
  await writeFile(join(dir, 'policies.cedar'), lines.join('\n\n'));
  return {
    dir,
    entityCount: list.length,
    request: { principal: { type: 'User', id: 'alice' }, action: 'read', resource: { type: 'Dataset', id: 'wiki' }, context: { step: 3 } },
  };
}

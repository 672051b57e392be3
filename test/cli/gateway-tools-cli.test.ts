/**
 * `mandate gateway tools <upstream>` in-process against a real local (stdio) MCP server: the admin's workflow —
 * list, paste the printed YAML, list again (all approved) — and a changed definition, a missing tool, an upstream
 * the command must not contact (token_exchange), an unknown upstream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createCliFixture, ISSUER } from './store-cli-fixtures.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../fixtures/stdio-mcp-server.ts', import.meta.url));
const q = (s: string) => JSON.stringify(s);

const gatewayYaml = (tools: string) => `gateway:
  upstreams:
    - id: local
      stdio: { command: ${q(process.execPath)}, args: ["--import", "tsx", ${q(FIXTURE)}], cwd: ${q(ROOT)} }
      resource: ${ISSUER}/mcp/local
      pinning: enforce
${tools
  .split('\n')
  .filter((l) => l !== '')
  .map((l) => `      ${l}`)
  .join('\n')}
    - id: remote
      url: http://127.0.0.1:9/mcp
      resource: ${ISSUER}/mcp/remote
      credential: { type: token_exchange, audience: https://crm.internal }
`;

interface Report {
  upstream: string;
  tools: Array<{ name: string; status: string; hash?: string; pinnedHash?: string }>;
  yaml: string;
}

test('list, paste the YAML, list again: every tool approved; a changed hash and a missing tool are reported', async (t) => {
  const fx = await createCliFixture(gatewayYaml('tools:\n  echo: { action: call, resource: { type: Tool, id: local.echo } }\n  ghost: { action: call, resource: { type: Tool, id: local.ghost } }'));
  t.after(() => fx.cleanup());

  const first = await fx.run(['gateway', 'tools', 'local', '--json']);
  assert.equal(first.code, 1, first.stderr);
  const report = JSON.parse(first.stdout) as Report;
  assert.deepEqual(
    report.tools.map((r) => [r.name, r.status]),
    [['echo', 'unpinned'], ['pid', 'new'], ['env', 'new'], ['ghost', 'missing']],
  );
  for (const r of report.tools.filter((x) => x.status !== 'missing')) assert.match(r.hash ?? '', /^sha256:[0-9a-f]{64}$/);
  assert.match(report.yaml, /"pid": \{ action: "call", resource: \{ type: "Tool", id: "local.pid" \}, pinnedHash: "sha256:[0-9a-f]{64}" \} {2}# new/);

  // The admin pastes what was printed: everything listed is approved.
  const fresh = await createCliFixture(gatewayYaml(report.yaml));
  t.after(() => fresh.cleanup());
  const second = await fresh.run(['gateway', 'tools', 'local']);
  assert.equal(second.code, 0, second.stderr + second.stdout);
  assert.match(second.stdout, /^TOOL +STATUS +HASH$/m);
  assert.match(second.stdout, /^echo +approved +sha256:/m);
  assert.doesNotMatch(second.stdout, /To review/);

  // The upstream's definition no longer has the approved hash (simulated by pinning another one).
  const echoHash = report.tools.find((r) => r.name === 'echo')?.hash as string;
  const tampered = await createCliFixture(gatewayYaml(report.yaml.replace(echoHash, `sha256:${'0'.repeat(64)}`)));
  t.after(() => tampered.cleanup());
  const third = await tampered.run(['gateway', 'tools', 'local', '--json']);
  assert.equal(third.code, 1);
  const changed = (JSON.parse(third.stdout) as Report).tools.find((r) => r.name === 'echo');
  assert.deepEqual(changed, { name: 'echo', status: 'changed', hash: echoHash, pinnedHash: `sha256:${'0'.repeat(64)}`, description: 'Echo the text back' });
  assert.match((JSON.parse(third.stdout) as Report).yaml, /# changed: was sha256:0{64}/);
});

test('an upstream reached with a minted token is not contacted; an unknown upstream is not found', async (t) => {
  const fx = await createCliFixture(gatewayYaml(''));
  t.after(() => fx.cleanup());
  const remote = await fx.run(['gateway', 'tools', 'remote']);
  assert.equal(remote.code, 1);
  assert.equal(remote.stdout, '');
  assert.match(remote.stderr, /per-caller credential \(a token Mandate mints for each caller\)/);
  const unknown = await fx.run(['gateway', 'tools', 'nope']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /ERR_NOT_FOUND: no upstream "nope" in gateway.upstreams; configured: local, remote/);
  const usage = await fx.run(['gateway', 'tools']);
  assert.equal(usage.code, 2);
});

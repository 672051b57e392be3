/**
 * The demo's agent story, end to end on loopback: `mandate demo` in process (port 0, a temp data directory) with
 * its IdP, agents, gateway and demo MCP server; then `npm run demo:agent`'s steps as a function. Each step's
 * decision is checked, and so is what reached the demo MCP server (only allowed calls, only with Mandate's token).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDemo } from '../../src/cli/demo-command.ts';
import { DEMO_MCP_AUDIENCE } from '../../src/demo/demo-mcp-server.ts';
import { readDemoInfo } from '../../src/demo/demo-info.ts';
import { runDemoAgent } from '../../scripts/demo-agent.ts';

const ROOT = new URL('../../', import.meta.url).pathname;

test('demo: the agent story — allowed read, restricted record withheld, out-of-plan tool denied, e-mail approved by carol, task ended, next call refused', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-demo-agent-'));
  const demo = await startDemo({ env: { MANDATE_DATA_DIR: dataDir, MANDATE_LOG_LEVEL: 'silent' }, cwd: ROOT, port: 0 });
  t.after(async () => {
    await demo.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const info = await readDemoInfo(dataDir);
  assert.equal(info.gateway?.url, `${demo.node.url}/mcp/crm`);
  assert.equal(info.gateway?.resource, info.gateway?.url, 'mandates for the gateway name where it listens');
  assert.deepEqual(info.gateway?.approvers, ['carol']);
  assert.match(demo.banner, /npm run demo:agent\n/);

  // The demo MCP server refuses the caller's kind of token: only one Mandate minted for its audience passes.
  const anonymous = await fetch(demo.mcp.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
  assert.equal(anonymous.status, 401);

  const lines: string[] = [];
  const report = await runDemoAgent(info, { say: (l) => lines.push(l) });
  const decisions = Object.fromEntries(report.steps.map((s) => [s.id, s.decision]));
  assert.deepEqual(decisions, {
    list: 'allow',
    search: 'allow',
    'restricted-record': 'deny',
    'out-of-plan': 'deny',
    'after-violation': 'deny',
    email: 'approval_required',
    approve: 'approved',
    'email-approved': 'allow',
    end: 'ended',
    'after-end': 'deny',
    'after-end-gateway': 'deny',
  });
  const step = (id: string) => report.steps.find((s) => s.id === id);
  assert.deepEqual(step('list')?.detail.visible, ['crm.get_record', 'crm.search']);
  assert.ok((step('list')?.detail.hidden as string[]).includes('payments.refund') && (step('list')?.detail.hidden as string[]).includes('tickets.create'));
  assert.deepEqual(step('search')?.detail.records, ['crm-lead-4711', 'crm-account-17'], 'the restricted note is removed from the answer');
  assert.equal(step('restricted-record')?.detail.reasonCode, 'result_sensitivity');
  assert.match(String(step('out-of-plan')?.detail.reasonCode), /_not_in_workflow$/);
  assert.match(String(step('email')?.detail.approvalId), /^apr_/);
  assert.match(String(step('after-end')?.reason), /ERR_TASK_ENDED/);
  assert.equal(step('after-end-gateway')?.detail.status, 401);
  assert.match(lines.join('\n'), /in real life/);

  // What reached the MCP server: the allowed calls only, each with a token Mandate minted for it (sub = alice,
  // act = the gateway for the agent), never the agent's own mandate.
  const runs = demo.mcp.runs;
  assert.deepEqual(runs.map((r) => r.tool), ['crm.search', 'crm.get_record', 'email.send']);
  for (const run of runs) {
    assert.equal(run.token.aud, DEMO_MCP_AUDIENCE);
    assert.equal(run.token.sub, 'alice');
    assert.deepEqual(run.token.act, { sub: 'mandate-gateway', act: { sub: 'sales-outreach' } });
  }
  assert.equal(runs.filter((r) => r.tool === 'email.send').length, 1, 'the held e-mail did not go out; the approved one did, once');
  const [first, second] = await Promise.all(report.taskIds.map((id) => demo.node.store.tasks.get(id)));
  assert.equal(first?.status, 'revoked', 'the out-of-plan call revoked the first task (lead-followup: onViolation revoke)');
  assert.match(String(first?.endReason), /^violation:/);
  assert.equal(second?.status, 'ended');
});

/**
 * The policy admin API: reload (good and bad, the previous set staying active), the policy listing, scopes,
 * and the audit events of both. Also `server.reloadPolicies()`, the path SIGHUP takes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluation, expectProblem, metricValue, startServer } from './harness.ts';

interface Diagnostic {
  severity: string;
  message: string;
  position?: { file: string; line: number; column: number };
}

test('a valid reload answers the new version; the new policy decides at once; it is audited as policy.load', async () => {
  const h = await startServer();
  try {
    const before = h.engine.current()?.version;
    const denied = await h.post('/access/v1/evaluation', evaluation('bob', 'read', ['dataset', 'wiki']));
    assert.equal(((await denied.json()) as { decision: boolean }).decision, false);

    await h.policyDir.write('support.cedar', '@id("bob-reads-wiki")\npermit(principal == User::"bob", action == Action::"read", resource == Dataset::"wiki");\n');
    const res = await h.post('/admin/v1/policies/reload', undefined, { secret: h.secrets.admin });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { version: string; changed: boolean; loadedAt: string; policies: number; warnings: string[] };
    assert.notEqual(body.version, before);
    assert.match(body.version, /^sha256:[0-9a-f]{64}$/);
    assert.equal(body.changed, true);
    assert.equal(body.policies, 6);
    assert.ok(!Number.isNaN(Date.parse(body.loadedAt)));
    assert.equal(h.engine.current()?.version, body.version);

    const allowed = await h.post('/access/v1/evaluation', evaluation('bob', 'read', ['dataset', 'wiki']));
    assert.equal(((await allowed.json()) as { decision: boolean }).decision, true);

    // Reloading an unchanged directory is ok and says so.
    const again = (await (await h.post('/admin/v1/policies/reload', undefined, { secret: h.secrets.admin })).json()) as { changed: boolean; version: string };
    assert.deepEqual([again.changed, again.version], [false, body.version]);

    const loads = (await h.events()).filter((e) => e.type === 'policy.load');
    assert.deepEqual(loads.map((e) => [e.outcome, e.actor, e.policySetVersion, (e.data as { source: string }).source]), [
      ['success', 'ops-admin', body.version, 'admin-api'],
      ['success', 'ops-admin', body.version, 'admin-api'],
    ]);
  } finally {
    await h.close();
  }
});

test('an invalid reload → 400 ERR_POLICY_INVALID with file:line:col diagnostics; the previous set stays active', async () => {
  const h = await startServer();
  try {
    const before = h.engine.current()?.version;
    await h.policyDir.write('bad.cedar', '// a typo on line 2\npermit(principal, action, resource) when { principal.nope == 1 };\n');
    const res = await h.post('/admin/v1/policies/reload', undefined, { secret: h.secrets.admin });
    const body = await expectProblem(res, 400, 'ERR_POLICY_INVALID');
    const diagnostics = body.diagnostics as Diagnostic[];
    assert.equal(diagnostics[0]?.position?.file, 'bad.cedar');
    assert.equal(diagnostics[0]?.position?.line, 2);
    assert.ok((diagnostics[0]?.position?.column ?? 0) > 1);
    assert.equal(body.activeVersion, before);

    // Still serving the previous set.
    assert.equal(h.engine.current()?.version, before);
    const ok = await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki']));
    const decided = (await ok.json()) as { decision: boolean; context: { policy_set_version: string } };
    assert.deepEqual([decided.decision, decided.context.policy_set_version], [true, before]);
    const ready = (await (await h.get('/readyz', { secret: null })).json()) as { checks: { policy: { version: string } } };
    assert.equal(ready.checks.policy.version, before);

    const rejects = (await h.events()).filter((e) => e.type === 'policy.reject');
    assert.equal(rejects.length, 1);
    assert.equal(rejects[0]?.outcome, 'failure');
    assert.equal(rejects[0]?.policySetVersion, before);
    assert.match(rejects[0]?.reasons?.[1] ?? '', /^bad\.cedar:2:\d+: /);
    const metrics = await (await h.get('/metrics', { secret: null })).text();
    assert.equal(metricValue(metrics, 'mandate_policy_reloads_total', { result: 'refused' }), 1);
    assert.equal(metricValue(metrics, 'mandate_policy_set_info', { version: before ?? '' }), 1);
  } finally {
    await h.close();
  }
});

test('GET /admin/v1/policies lists the active set with file:line, and is audited', async () => {
  const h = await startServer();
  try {
    const res = await h.get('/admin/v1/policies', { secret: h.secrets.reader });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { version: string; loadedAt: string; entityCount: number; policies: Array<{ id: string; effect: string; source: string }> };
    assert.equal(body.version, h.engine.current()?.version);
    assert.equal(body.entityCount, 9);
    assert.deepEqual(
      body.policies.map((p) => `${p.effect} ${p.id} ${p.source}`).sort(),
      [
        'forbid restricted-never-to-agents guards.cedar:2',
        'permit agents-read-internal agents.cedar:2',
        'permit alice-update-crm users.cedar:6',
        'permit autonomous-call-with-approval agents.cedar:6',
        'permit sales-read-internal users.cedar:2',
      ],
    );
    // The reload credential may read too.
    assert.equal((await h.get('/admin/v1/policies', { secret: h.secrets.admin })).status, 200);
    const events = await h.events();
    assert.deepEqual(events.map((e) => [e.type, e.outcome, e.actor, (e.data as { operation: string }).operation]), [
      ['admin', 'success', 'ops-reader', 'policies.read'],
      ['admin', 'success', 'ops-admin', 'policies.read'],
    ]);
  } finally {
    await h.close();
  }
});

test('admin scopes: evaluate and read credentials may not reload; an evaluate credential may not read; refusals are audited', async () => {
  const h = await startServer();
  try {
    await expectProblem(await h.post('/admin/v1/policies/reload', undefined, { secret: h.secrets.evaluate }), 403, 'ERR_FORBIDDEN', /"policy:reload"/);
    await expectProblem(await h.post('/admin/v1/policies/reload', undefined, { secret: h.secrets.reader }), 403, 'ERR_FORBIDDEN');
    await expectProblem(await h.get('/admin/v1/policies', { secret: h.secrets.evaluate }), 403, 'ERR_FORBIDDEN', /"policy:read" or "policy:reload"/);
    await expectProblem(await h.get('/admin/v1/policies', { secret: null }), 401, 'ERR_UNAUTHENTICATED');
    // Admin credentials are not decision credentials.
    await expectProblem(await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki']), { secret: h.secrets.admin }), 403, 'ERR_FORBIDDEN');
    const events = await h.events();
    assert.deepEqual(events.map((e) => [e.type, e.outcome, e.actor ?? null]), [
      ['admin', 'failure', 'pep-1'],
      ['admin', 'failure', 'ops-reader'],
      ['admin', 'failure', 'pep-1'],
      ['auth.failure', 'failure', null],
      ['decision', 'deny', 'ops-admin'],
    ]);
    assert.equal(h.engine.current() !== undefined, true);
  } finally {
    await h.close();
  }
});

test('server.reloadPolicies() (the SIGHUP path) reloads, counts and audits like the admin API', async () => {
  const h = await startServer();
  try {
    await h.policyDir.write('extra.cedar', '@id("bob-reads-wiki")\npermit(principal == User::"bob", action == Action::"read", resource == Dataset::"wiki");\n');
    const ok = await h.server.reloadPolicies({ source: 'sighup' });
    assert.equal(ok.ok, true);
    assert.equal(ok.audited, true);
    await h.policyDir.write('extra.cedar', 'permit(principal, action, resource');
    const refused = await h.server.reloadPolicies({ source: 'sighup' });
    assert.equal(refused.ok, false);
    assert.equal(refused.ok ? undefined : refused.error.code, 'ERR_POLICY_INVALID');
    assert.equal(h.engine.current()?.version, ok.ok ? ok.info.version : undefined);
    const events = await h.events();
    assert.deepEqual(events.map((e) => [e.type, (e.data as { source: string }).source]), [
      ['policy.load', 'sighup'],
      ['policy.reject', 'sighup'],
    ]);
  } finally {
    await h.close();
  }
});

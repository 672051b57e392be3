/** Liveness, readiness and metrics. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluation, metricValue, startServer } from './harness.ts';

test('/healthz is 200 while the process serves, whatever the store and policy state', async () => {
  const h = await startServer({ noPolicy: true });
  try {
    await h.store.close();
    const res = await h.get('/healthz', { secret: null });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  } finally {
    await h.close();
  }
});

test('/readyz is 200 with each check when the store answers and a policy set is loaded', async () => {
  const h = await startServer();
  try {
    const res = await h.get('/readyz', { secret: null });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ready', checks: { store: { ok: true }, policy: { ok: true, version: h.engine.current()?.version } } });
  } finally {
    await h.close();
  }
});

test('/readyz is 503 naming the store when it is closed', async () => {
  const h = await startServer();
  try {
    await h.store.close();
    const res = await h.get('/readyz', { secret: null });
    assert.equal(res.status, 503);
    const body = (await res.json()) as { status: string; checks: { store: { ok: boolean; reason: string }; policy: { ok: boolean } } };
    assert.equal(body.status, 'not_ready');
    assert.equal(body.checks.store.ok, false);
    assert.match(body.checks.store.reason, /store is closed/);
    assert.equal(body.checks.policy.ok, true);
  } finally {
    await h.close();
  }
});

test('/readyz is 503 naming the policy check when no valid set is loaded; decisions are refused with 503', async () => {
  const h = await startServer({ noPolicy: true });
  try {
    const res = await h.get('/readyz', { secret: null });
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { status: 'not_ready', checks: { store: { ok: true }, policy: { ok: false, reason: 'no valid policy set is loaded' } } });
    const decision = await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki']));
    assert.equal(decision.status, 503);
    assert.equal(((await decision.json()) as { code: string }).code, 'ERR_POLICY_NOT_LOADED');
    assert.equal(h.decideCalls(), 0);
    const metrics = await (await h.get('/metrics', { secret: null })).text();
    assert.equal(metricValue(metrics, 'mandate_decisions_total', { outcome: 'error' }), 1);
    assert.equal(metrics.includes('mandate_policy_set_info{'), false);
  } finally {
    await h.close();
  }
});

test('/metrics counts decisions by outcome, requests by route and status, reloads, and exposes the policy version', async () => {
  const h = await startServer();
  try {
    await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki']));
    await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki']));
    await h.post('/access/v1/evaluation', evaluation('bob', 'read', ['dataset', 'wiki']));
    await h.post('/access/v1/evaluation', evaluation('alice', 'call', ['tool', 'crm.update'], ['writer']));
    await h.post('/access/v1/evaluation', { ...evaluation('alice', 'read', ['dataset', 'wiki']), action: { name: 'fly' } });
    await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki']), { secret: 'nope' });
    await h.post('/admin/v1/policies/reload', undefined, { secret: h.secrets.admin });
    const res = await h.get('/metrics', { secret: null });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.equal(metricValue(text, 'mandate_decisions_total', { outcome: 'allow' }), 2);
    assert.equal(metricValue(text, 'mandate_decisions_total', { outcome: 'deny' }), 1);
    assert.equal(metricValue(text, 'mandate_decisions_total', { outcome: 'approval_required' }), 1);
    assert.equal(metricValue(text, 'mandate_decisions_total', { outcome: 'error' }), 1);
    assert.equal(metricValue(text, 'mandate_decision_duration_seconds_count'), 4);
    assert.equal(metricValue(text, 'mandate_decision_duration_seconds_bucket', { le: '0.00001' }) !== undefined, true);
    assert.equal(metricValue(text, 'mandate_policy_set_info', { version: h.engine.current()?.version ?? '' }), 1);
    assert.equal(metricValue(text, 'mandate_policy_reloads_total', { result: 'ok' }), 1);
    assert.equal(metricValue(text, 'mandate_policy_reloads_total', { result: 'refused' }), 0);
    assert.equal(metricValue(text, 'mandate_audit_refused_total'), 0);
    assert.equal(metricValue(text, 'mandate_http_requests_total', { route: '/access/v1/evaluation', method: 'POST', status: '200' }), 4);
    assert.equal(metricValue(text, 'mandate_http_requests_total', { route: '/access/v1/evaluation', method: 'POST', status: '400' }), 1);
    assert.equal(metricValue(text, 'mandate_http_requests_total', { route: '/access/v1/evaluation', method: 'POST', status: '401' }), 1);
    // Default process metrics live in the server's own registry.
    assert.ok(metricValue(text, 'process_cpu_user_seconds_total') !== undefined);
  } finally {
    await h.close();
  }
});

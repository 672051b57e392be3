/**
 * Every decision and every refusal is in the audit log before the response goes out; when the log cannot
 * take the event, the request is refused (503) — never an allow without its audit event.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluation, expectProblem, metricValue, startServer } from './harness.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

test('a decision event records who asked, what was asked and what was decided', async () => {
  const h = await startServer();
  try {
    const res = await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki'], ['helper'], { context: { delegation: { actors: [{ type: 'agent', id: 'helper' }] }, step: 3 } }), {
      headers: { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01`, 'x-request-id': 'req-42' },
    });
    const body = (await res.json()) as { decision: boolean; context: { id: string } };
    const [event] = await h.events();
    assert.ok(event);
    assert.deepEqual(
      { type: event.type, outcome: event.outcome, decisionId: event.decisionId, traceId: event.traceId, actor: event.actor, subject: event.subject, action: event.action, resource: event.resource, policySetVersion: event.policySetVersion, redacted: event.redacted },
      { type: 'decision', outcome: 'allow', decisionId: body.context.id, traceId: TRACE_ID, actor: 'pep-1', subject: 'User::"alice"', action: 'Action::"read"', resource: 'Dataset::"wiki"', policySetVersion: h.engine.current()?.version, redacted: ['context'] },
    );
    assert.deepEqual(event.reasons, ['User::"alice": permitted by sales-read-internal', 'Agent::"helper": permitted by agents-read-internal']);
    assert.deepEqual(event.data, {
      endpoint: 'authzen.evaluation',
      requestId: 'req-42',
      durationMicros: (event.data as { durationMicros: number }).durationMicros,
      actors: ['Agent::"helper"'],
      principals: [
        { principal: 'User::"alice"', decision: 'allow', approvalRequired: false, determining: ['sales-read-internal'], errors: [] },
        { principal: 'Agent::"helper"', decision: 'allow', approvalRequired: false, determining: ['agents-read-internal'], errors: [] },
      ],
    });
  } finally {
    await h.close();
  }
});

test('when the store fails, a decision is refused with 503 rather than answered unlogged', async () => {
  const h = await startServer();
  try {
    await h.store.close();
    const res = await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki']));
    const body = await expectProblem(res, 503, 'ERR_STORE_UNAVAILABLE');
    assert.equal('decision' in body, false);
    const batch = await h.post('/access/v1/evaluations', { ...evaluation('alice', 'read', ['dataset', 'wiki']), evaluations: [{}, {}] });
    await expectProblem(batch, 503, 'ERR_STORE_UNAVAILABLE');
    const metrics = await (await h.get('/metrics', { secret: null })).text();
    assert.equal(metricValue(metrics, 'mandate_audit_refused_total'), 2);
  } finally {
    await h.close();
  }
});

test('when the decision log refuses (closed, or its queue full), the request is refused with 503', async () => {
  const h = await startServer();
  try {
    await h.decisionLog.close();
    const res = await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki']));
    await expectProblem(res, 503, 'ERR_STORE_UNAVAILABLE', /audit log/);
    // Refusals cannot be logged either: still a 503, not the original error.
    const bad = await h.post('/access/v1/evaluation', null, { raw: '{' });
    await expectProblem(bad, 503, 'ERR_STORE_UNAVAILABLE');
    assert.deepEqual(await h.events(), []);
  } finally {
    await h.close();
  }
});

test('an engine exception denies with 500 ERR_POLICY_ENGINE, hides the internals and is audited', async () => {
  const h = await startServer();
  try {
    h.engine.decide = () => {
      throw new Error('wasm trap: unreachable executed at slot mandate-123');
    };
    const res = await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki']));
    const body = await expectProblem(res, 500, 'ERR_POLICY_ENGINE', /the policy engine failed; the request is denied/);
    assert.equal(JSON.stringify(body).includes('wasm'), false);
    const events = await h.events();
    assert.deepEqual(events.map((e) => [e.type, e.outcome, (e.data as { code: string }).code, e.subject]), [['decision', 'deny', 'ERR_POLICY_ENGINE', 'User::"alice"']]);
    // The detail is in the log, for operators.
    assert.match(h.logs.join(''), /wasm trap/);
    // In a batch, the failing item is closed with its error and still audited.
    const batch = await h.post('/access/v1/evaluations', { ...evaluation('alice', 'read', ['dataset', 'wiki']), evaluations: [{}] });
    assert.equal(batch.status, 200);
    assert.deepEqual(await batch.json(), { evaluations: [{ decision: false, context: { error: { status: 500, code: 'ERR_POLICY_ENGINE', message: 'the policy engine failed; the request is denied' } } }] });
    assert.equal((await h.events()).length, 2);
  } finally {
    await h.close();
  }
});

test('without a valid policy set, decisions are refused with 503 ERR_POLICY_NOT_LOADED and audited', async () => {
  const h = await startServer({ noPolicy: true });
  try {
    await expectProblem(await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki'])), 503, 'ERR_POLICY_NOT_LOADED');
    await expectProblem(await h.post('/access/v1/evaluations', { ...evaluation('alice', 'read', ['dataset', 'wiki']), evaluations: [{}] }), 503, 'ERR_POLICY_NOT_LOADED');
    assert.equal(h.decideCalls(), 0);
    const events = await h.events();
    assert.deepEqual(events.map((e) => [e.type, e.outcome, (e.data as { code: string }).code, e.actor]), [
      ['decision', 'deny', 'ERR_POLICY_NOT_LOADED', 'pep-1'],
      ['decision', 'deny', 'ERR_POLICY_NOT_LOADED', 'pep-1'],
    ]);
  } finally {
    await h.close();
  }
});

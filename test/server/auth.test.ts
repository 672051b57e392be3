/**
 * Authentication, scopes and rate limiting of the decision API: the policy engine never runs for a caller that
 * failed, every failure is audited, and no credential reaches a log line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixedClock } from '../../src/core/ports.ts';
import { evaluation, expectProblem, startServer } from './harness.ts';

const CHALLENGE = /^Bearer realm="mandate", error="invalid_token", error_description="[^"]+"$/;

test('missing, malformed and wrong credentials → 401 with a Bearer challenge; the engine does not run', async () => {
  const h = await startServer();
  try {
    const body = evaluation('alice', 'read', ['dataset', 'wiki']);
    const cases: Array<[string, Record<string, string> | null, RegExp]> = [
      ['no header', null, /authentication is required/],
      ['basic scheme', { authorization: `Basic ${Buffer.from('pep-1:x').toString('base64')}` }, /must be "Bearer <credential>"/],
      ['empty bearer', { authorization: 'Bearer ' }, /must be "Bearer <credential>"/],
      ['wrong secret', { authorization: 'Bearer mandate_wrong' }, /the credential is not valid/],
      ['hash instead of secret', { authorization: `Bearer ${h.secrets.evaluate.slice(0, -1)}` }, /the credential is not valid/],
    ];
    for (const [name, headers, detail] of cases) {
      const res = await fetch(`${h.url}/access/v1/evaluation`, { method: 'POST', headers: { 'content-type': 'application/json', ...(headers ?? {}) }, body: JSON.stringify(body) });
      // RFC 6750 §3.1: a request with no authentication information gets a challenge without an error code.
      if (headers === null) assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="mandate"', name);
      else assert.match(res.headers.get('www-authenticate') ?? '', CHALLENGE, name);
      await expectProblem(res, 401, 'ERR_UNAUTHENTICATED', detail);
    }
    // The batch endpoint and the admin API refuse the same way.
    await expectProblem(await h.post('/access/v1/evaluations', { ...body, evaluations: [{}] }, { secret: null }), 401, 'ERR_UNAUTHENTICATED');
    await expectProblem(await h.post('/admin/v1/policies/reload', {}, { secret: null }), 401, 'ERR_UNAUTHENTICATED');
    assert.equal(h.decideCalls(), 0);
    // Every failure is an auth.failure audit event, without the credential.
    const events = await h.events();
    assert.equal(events.length, cases.length + 2);
    assert.ok(events.every((e) => e.type === 'auth.failure' && e.outcome === 'failure' && e.actor === undefined));
    assert.equal(JSON.stringify(events).includes('mandate_wrong'), false);
  } finally {
    await h.close();
  }
});

test('an unauthenticated request is refused before its body is read: a malformed body still gets 401', async () => {
  const h = await startServer();
  try {
    await expectProblem(await h.post('/access/v1/evaluation', null, { secret: null, raw: '{"broken":' }), 401, 'ERR_UNAUTHENTICATED');
    assert.equal(h.decideCalls(), 0);
  } finally {
    await h.close();
  }
});

test('a credential without the evaluate scope → 403 ERR_FORBIDDEN; the engine does not run', async () => {
  const h = await startServer();
  try {
    const res = await h.post('/access/v1/evaluation', evaluation('alice', 'read', ['dataset', 'wiki']), { secret: h.secrets.reader });
    await expectProblem(res, 403, 'ERR_FORBIDDEN', /needs the scope "evaluate"/);
    assert.equal(h.decideCalls(), 0);
    const events = await h.events();
    assert.deepEqual(events.map((e) => [e.type, e.outcome, e.actor]), [['decision', 'deny', 'ops-reader']]);
  } finally {
    await h.close();
  }
});

test('per-client rate limit: 429 ERR_RATE_LIMITED with Retry-After; other clients are unaffected; refills with time', async () => {
  const clock = fixedClock(Date.parse('2026-11-30T10:00:00Z'));
  const h = await startServer({ clock, config: { rateLimit: { decisionsPerSecondPerClient: 1, burst: 3 } } });
  try {
    const body = evaluation('alice', 'read', ['dataset', 'wiki']);
    for (let i = 0; i < 3; i++) assert.equal((await h.post('/access/v1/evaluation', body)).status, 200);
    const limited = await h.post('/access/v1/evaluation', body);
    assert.equal(limited.headers.get('retry-after'), '1');
    await expectProblem(limited, 429, 'ERR_RATE_LIMITED', /retry after 1 s/);
    assert.equal(h.decideCalls(), 3);
    // Malformed bodies are limited too: the first token is taken before the body is read.
    await expectProblem(await h.post('/access/v1/evaluation', null, { raw: '{' }), 429, 'ERR_RATE_LIMITED');
    // A batch costs one token per evaluation: two tokens do not buy three evaluations.
    clock.advance(2000);
    const big = await h.post('/access/v1/evaluations', { ...body, evaluations: [{}, {}, {}] });
    assert.equal(big.headers.get('retry-after'), '1');
    await expectProblem(big, 429, 'ERR_RATE_LIMITED');
    clock.advance(3000);
    assert.equal((await h.post('/access/v1/evaluations', { ...body, evaluations: [{}, {}, {}] })).status, 200);
    assert.equal(h.decideCalls(), 6);
    const events = await h.events();
    assert.deepEqual(events.filter((e) => (e.data as { code?: string }).code === 'ERR_RATE_LIMITED').length, 3);
  } finally {
    await h.close();
  }
});

test('no credential, valid or not, reaches a log line', async () => {
  const h = await startServer();
  try {
    const body = evaluation('alice', 'read', ['dataset', 'wiki']);
    await h.post('/access/v1/evaluation', body);
    await h.post('/access/v1/evaluation', body, { secret: 'mandate_a-guessed-secret' });
    await h.post('/admin/v1/policies/reload', {}, { secret: h.secrets.admin });
    await h.post('/access/v1/evaluation', null, { raw: `{"token":"${h.secrets.evaluate}"` });
    const text = h.logs.join('');
    assert.ok(h.logs.length > 5);
    for (const secret of [h.secrets.evaluate, h.secrets.admin, 'mandate_a-guessed-secret']) assert.equal(text.includes(secret), false);
  } finally {
    await h.close();
  }
});

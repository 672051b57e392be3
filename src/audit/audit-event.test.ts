import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixedClock } from '../core/ports.ts';
import {
  AuditEventV1,
  createAuditEvent,
  isSecretKeyName,
  looksLikeJwt,
  MAX_AUDIT_DATA_BYTES,
  NewAuditEventV1,
  parseNewAuditEvent,
  redactAuditData,
} from './audit-event.ts';

const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ';

test('createAuditEvent fills id, time and redacted; the result validates', () => {
  const clock = fixedClock(Date.parse('2025-06-01T12:00:00.000Z'));
  let i = 0;
  const e = createAuditEvent({ type: 'decision', outcome: 'deny', decisionId: 'd1' }, { clock, ids: { next: () => `id-${++i}` } });
  assert.deepEqual(e, {
    type: 'decision',
    outcome: 'deny',
    decisionId: 'd1',
    id: 'id-1',
    time: '2025-06-01T12:00:00.000Z',
    redacted: [],
  });
  assert.deepEqual(parseNewAuditEvent(e), e);
  assert.equal(AuditEventV1.safeParse({ ...e, seq: 1 }).success, true);
  assert.equal(AuditEventV1.safeParse({ ...e, seq: 0 }).success, false);
});

test('unknown fields, bad times and unknown types are refused', () => {
  const base = { id: 'a', time: '2025-06-01T12:00:00Z', type: 'decision', outcome: 'allow', redacted: [] };
  assert.equal(NewAuditEventV1.safeParse(base).success, true);
  assert.equal(NewAuditEventV1.safeParse({ ...base, token: 'x' }).success, false);
  assert.equal(NewAuditEventV1.safeParse({ ...base, time: '2025-06-01' }).success, false);
  assert.equal(NewAuditEventV1.safeParse({ ...base, type: 'whatever' }).success, false);
  assert.throws(() => parseNewAuditEvent({ ...base, redacted: undefined }), /redacted/);
});

test('data may not carry secret-named keys, JWTs, or more than the size limit', () => {
  const base = { id: 'a', time: '2025-06-01T12:00:00Z', type: 'auth.failure', outcome: 'failure', redacted: [] };
  for (const data of [
    { access_token: 'x' },
    { nested: { clientSecret: 'x' } },
    { list: [{ Authorization: 'Bearer x' }] },
    { note: JWT },
    { big: 'x'.repeat(MAX_AUDIT_DATA_BYTES) },
  ]) {
    assert.equal(NewAuditEventV1.safeParse({ ...base, data }).success, false, JSON.stringify(data).slice(0, 60));
  }
  assert.equal(NewAuditEventV1.safeParse({ ...base, data: { tokenType: 'at+jwt', maxTokens: 5 } }).success, true);
});

test('data must be plain JSON', () => {
  const base = { id: 'a', time: '2025-06-01T12:00:00Z', type: 'admin', outcome: 'success', redacted: [] };
  for (const data of [{ when: new Date(0) }, { n: Number.NaN }, { f: () => 1 }, { list: [undefined] }, { big: 1n }]) {
    assert.equal(NewAuditEventV1.safeParse({ ...base, data }).success, false, Object.keys(data)[0]);
  }
  // An undefined member is left out, as JSON.stringify does.
  assert.equal(NewAuditEventV1.safeParse({ ...base, data: { a: 1, b: undefined, c: [null, { d: 'x' }] } }).success, true);
});

test('redactAuditData removes secrets and lists what it removed', () => {
  const r = redactAuditData({ tool: 'search', access_token: 'abc', ctx: { cookie: 'c', note: JWT, ok: [1, JWT] } });
  assert.deepEqual(r.data, { tool: 'search', ctx: { note: '[redacted]', ok: [1, '[redacted]'] } });
  assert.deepEqual(r.redacted, ['data.access_token', 'data.ctx.cookie', 'data.ctx.note', 'data.ctx.ok[1]']);
});

test('secret key names and JWT shapes', () => {
  for (const k of ['access_token', 'refreshToken', 'client-secret', 'password', 'Authorization', 'apiKey', 'private_key', 'DPoP']) {
    assert.equal(isSecretKeyName(k), true, k);
  }
  for (const k of ['tokenType', 'user', 'tool', 'decisionId', 'maxTokens']) assert.equal(isSecretKeyName(k), false, k);
  assert.equal(looksLikeJwt(JWT), true);
  assert.equal(looksLikeJwt('eyJ.not'), false);
  assert.equal(looksLikeJwt('plain text'), false);
});

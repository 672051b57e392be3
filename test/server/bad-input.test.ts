/**
 * Bad input gets a clear error with a stable code: never a stack trace, never a crash, never a decision.
 * Each row asserts the exact status, the code, the message and (through expectProblem) that no stack or
 * source path reaches the client; the server keeps serving afterwards and every refusal is audited.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluation, expectProblem, startServer } from './harness.ts';

const ok = evaluation('alice', 'read', ['dataset', 'wiki']);
const json = (v: unknown) => JSON.stringify(v);

interface Row {
  name: string;
  raw?: string;
  body?: unknown;
  headers?: Record<string, string>;
  path?: string;
  status: number;
  code: string;
  detail: RegExp;
}

const ROWS: Row[] = [
  { name: 'malformed JSON', raw: '{"subject": {"type": "user", "id": "alice"', status: 400, code: 'ERR_MALFORMED_JSON', detail: /not valid JSON/ },
  { name: 'trailing garbage', raw: `${json(ok)}xyz`, status: 400, code: 'ERR_MALFORMED_JSON', detail: /not valid JSON/ },
  { name: 'empty body with a JSON content type', raw: '', status: 400, code: 'ERR_MALFORMED_JSON', detail: /body is empty/ },
  { name: 'body is an array', body: [ok], status: 400, code: 'ERR_INVALID_REQUEST', detail: /must be a JSON object/ },
  { name: 'subject.id is a number', body: { ...ok, subject: { type: 'user', id: 42 } }, status: 400, code: 'ERR_INVALID_REQUEST', detail: /subject\.id: Invalid input: expected string, received number/ },
  { name: 'action is a string', body: { ...ok, action: 'read' }, status: 400, code: 'ERR_INVALID_REQUEST', detail: /action: Invalid input: expected object/ },
  { name: 'resource missing', body: { subject: ok.subject, action: ok.action }, status: 400, code: 'ERR_INVALID_REQUEST', detail: /resource: Invalid input/ },
  { name: 'unknown member', body: { ...ok, principal: 'alice' }, status: 400, code: 'ERR_INVALID_REQUEST', detail: /Unrecognized key: "principal"/ },
  { name: 'context is an array', body: { ...ok, context: [1] }, status: 400, code: 'ERR_INVALID_REQUEST', detail: /context: Invalid input/ },
  { name: 'unknown subject type', body: { ...ok, subject: { type: 'robot', id: 'r2' } }, status: 400, code: 'ERR_UNKNOWN_ENTITY_TYPE', detail: /subject\.type "robot" is not an entity type.*known types:/ },
  { name: 'unknown resource type', body: { ...ok, resource: { type: 'planet', id: 'mars' } }, status: 400, code: 'ERR_UNKNOWN_ENTITY_TYPE', detail: /resource\.type "planet"/ },
  { name: 'unknown actor type', body: { ...ok, context: { delegation: { actors: [{ type: 'robot', id: 'r2' }] } } }, status: 400, code: 'ERR_UNKNOWN_ENTITY_TYPE', detail: /context\.delegation\.actors\[0\]\.type "robot"/ },
  { name: 'unknown action', body: { ...ok, action: { name: 'fly' } }, status: 400, code: 'ERR_UNKNOWN_ACTION', detail: /action\.name "fly" is not an action.*known actions:/ },
  { name: 'action does not apply to the resource type', body: { ...ok, resource: { type: 'tool', id: 'crm.update' } }, status: 400, code: 'ERR_UNKNOWN_ACTION', detail: /does not apply to resources of type Tool/ },
  { name: 'malformed delegation', body: { ...ok, context: { delegation: { agents: ['helper'] } } }, status: 400, code: 'ERR_INVALID_REQUEST', detail: /context\.delegation must be \{ actors/ },
  { name: 'context.time is Mandate\'s', body: { ...ok, context: { time: '1985-10-26T01:22-07:00' } }, status: 400, code: 'ERR_INVALID_CONTEXT', detail: /context\.time is set by Mandate/ },
  { name: 'context not in the schema', body: { ...ok, context: { weather: 'rainy' } }, status: 400, code: 'ERR_INVALID_CONTEXT', detail: /context does not match the policy schema/ },
  { name: 'fractional number', body: { ...ok, context: { step: 1.5 } }, status: 400, code: 'ERR_INTEGER_OUT_OF_RANGE', detail: /not an integer/ },
  { name: 'entity attribute of the wrong type', body: { ...ok, subject: { type: 'user', id: 'carol', properties: { roles: 'admin' } } }, status: 400, code: 'ERR_INVALID_ENTITY', detail: /User::"carol"/ },
  { name: '__proto__ key', raw: '{"subject":{"type":"user","id":"alice","properties":{"__proto__":{"isAdmin":true}}},"action":{"name":"read"},"resource":{"type":"dataset","id":"wiki"}}', status: 400, code: 'ERR_INVALID_REQUEST', detail: /"__proto__".*pollute/ },
  { name: 'constructor.prototype key', raw: '{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"dataset","id":"wiki"},"context":{"constructor":{"prototype":{"x":1}}}}', status: 400, code: 'ERR_INVALID_REQUEST', detail: /"constructor\.prototype"/ },
  { name: 'deeply nested JSON', raw: `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"dataset","id":"wiki"},"context":{"args":${'['.repeat(5000)}${']'.repeat(5000)}}}`, status: 400, code: 'ERR_NESTING_TOO_DEEP', detail: /nested deeper than 32 levels/ },
  { name: 'oversized body', body: { ...ok, context: { intent: 'x'.repeat(70_000) } }, status: 413, code: 'ERR_BODY_TOO_LARGE', detail: /larger than this server accepts/ },
  { name: 'wrong content type', raw: json(ok), headers: { 'content-type': 'text/plain' }, status: 415, code: 'ERR_UNSUPPORTED_MEDIA_TYPE', detail: /accepts only application\/json/ },
  { name: 'form content type', raw: 'subject=alice', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, code: 'ERR_UNSUPPORTED_MEDIA_TYPE', detail: /application\/json/ },
  { name: 'oversized batch', body: { ...ok, evaluations: Array.from({ length: 101 }, () => ({})) }, path: '/access/v1/evaluations', status: 400, code: 'ERR_INVALID_REQUEST', detail: /evaluations: Too big/ },
];

test('the bad input table: exact status, stable code, clear message, no stack; every refusal audited', async () => {
  const h = await startServer({ config: { rateLimit: { burst: 10_000 } } });
  try {
    for (const row of ROWS) {
      const res = await h.post(row.path ?? '/access/v1/evaluation', row.body, { ...(row.raw === undefined ? {} : { raw: row.raw }), ...(row.headers ? { headers: row.headers } : {}) });
      await expectProblem(res, row.status, row.code, row.detail).catch((err: Error) => {
        throw new Error(`${row.name}: ${err.message}`);
      });
    }
    // Nothing polluted the prototype, and the server still decides.
    assert.equal(({} as Record<string, unknown>).isAdmin, undefined);
    const after = await h.post('/access/v1/evaluation', ok);
    assert.equal(after.status, 200);
    const events = await h.events();
    assert.equal(events.length, ROWS.length + 1);
    assert.deepEqual(
      events.slice(0, -1).map((e) => (e.data as { code: string }).code),
      ROWS.map((r) => r.code),
    );
    assert.ok(events.slice(0, -1).every((e) => e.type === 'decision' && e.outcome === 'deny' && e.actor === 'pep-1'));
  } finally {
    await h.close();
  }
});

test('huge request headers → 431 ERR_HEADERS_TOO_LARGE, rendered as a problem document', async () => {
  const h = await startServer();
  try {
    const res = await h.post('/access/v1/evaluation', ok, { headers: { 'x-padding': 'p'.repeat(20_000) } });
    await expectProblem(res, 431, 'ERR_HEADERS_TOO_LARGE', /header fields are larger/);
    assert.equal(h.decideCalls(), 0);
    assert.equal((await h.post('/access/v1/evaluation', ok)).status, 200);
  } finally {
    await h.close();
  }
});

test('unknown routes → 404 ERR_NOT_FOUND; wrong methods → 405 ERR_METHOD_NOT_ALLOWED with Allow', async () => {
  const h = await startServer();
  try {
    await expectProblem(await h.get('/access/v2/evaluation'), 404, 'ERR_NOT_FOUND', /no endpoint at \/access\/v2\/evaluation/);
    const wrong = await h.get('/access/v1/evaluation');
    assert.equal(wrong.headers.get('allow'), 'POST');
    await expectProblem(wrong, 405, 'ERR_METHOD_NOT_ALLOWED', /GET is not allowed on \/access\/v1\/evaluation; use POST/);
    const del = await fetch(`${h.url}/readyz`, { method: 'DELETE' });
    assert.equal(del.headers.get('allow'), 'GET, HEAD');
    await expectProblem(del, 405, 'ERR_METHOD_NOT_ALLOWED');
  } finally {
    await h.close();
  }
});

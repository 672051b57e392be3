import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidRequestError, MalformedJsonError, NestingTooDeepError } from '../core/errors.ts';
import { assertJsonDepth, parseJsonBody } from './json-body.ts';

test('depth is measured on the raw text; brackets inside strings do not count', () => {
  assert.equal(assertJsonDepth('{"a":[1,{"b":2}]}', 32), 3);
  assert.equal(assertJsonDepth('{"a":"[[[[{{{{\\"]]]"}', 32), 1);
  assert.equal(assertJsonDepth('3', 32), 0);
  assert.throws(() => assertJsonDepth('['.repeat(5) + ']'.repeat(5), 4), NestingTooDeepError);
  assert.equal(assertJsonDepth('['.repeat(4) + ']'.repeat(4), 4), 4);
});

test('a document nested a million levels deep is refused before JSON.parse sees it', () => {
  const deep = '['.repeat(1_000_000) + ']'.repeat(1_000_000);
  assert.throws(() => parseJsonBody(deep, 32), (e: unknown) => e instanceof NestingTooDeepError && /deeper than 32 levels/.test(e.description));
});

test('malformed and empty bodies are ERR_MALFORMED_JSON and never echo the body', () => {
  const secretish = 'mandate_not-a-real-secret';
  for (const body of ['', '   ', `{"token": "${secretish}"`, '{a:1}', "{'a':1}", '[1,]']) {
    assert.throws(
      () => parseJsonBody(body, 32),
      (e: unknown) => e instanceof MalformedJsonError && e.code === 'ERR_MALFORMED_JSON' && !e.description.includes(secretish),
      JSON.stringify(body),
    );
  }
});

test('__proto__ and constructor.prototype keys are refused, escaped or not; a plain "constructor" key is fine', () => {
  for (const body of ['{"a":{"__proto__":{"x":1}}}', '{"\\u005f_proto__":{}}', '[{"constructor":{"prototype":{"x":1}}}]']) {
    assert.throws(() => parseJsonBody(body, 32), (e: unknown) => e instanceof InvalidRequestError && e.code === 'ERR_INVALID_REQUEST' && /pollute/.test(e.description), body);
  }
  assert.deepEqual(parseJsonBody('{"constructor":"x","proto":1}', 32), { constructor: 'x', proto: 1 });
  assert.equal(({} as Record<string, unknown>).x, undefined);
});

test('a byte-order mark is tolerated', () => {
  assert.deepEqual(parseJsonBody('\ufeff{"a":1}', 32), { a: 1 });
});

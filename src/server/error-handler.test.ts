import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InternalError, MethodNotAllowedError, PolicySetInvalidError, RateLimitedError, UnauthenticatedError, UnsupportedMediaTypeError, PayloadTooLargeError, MalformedJsonError } from '../core/errors.ts';
import { PROBLEM_JSON, renderError, toMandateError } from './error-handler.ts';

test('a MandateError renders as RFC 9457 problem+json with its code and client-safe extra fields', () => {
  const err = new PolicySetInvalidError('the policy set is invalid', { detail: 'private', extra: { diagnostics: [{ message: 'x' }], status: 999, code: 'HIJACK' } });
  assert.deepEqual(renderError(err), {
    status: 400,
    headers: { 'cache-control': 'no-store', 'content-type': PROBLEM_JSON },
    body: { type: 'urn:mandate:error:ERR_POLICY_INVALID', title: 'Policy set invalid', status: 400, detail: 'the policy set is invalid', code: 'ERR_POLICY_INVALID', diagnostics: [{ message: 'x' }] },
  });
});

test('the same error renders as RFC 6749 JSON on OAuth routes, with its challenge either way', () => {
  const err = new UnauthenticatedError('the credential is not valid');
  const oauth = renderError(err, 'oauth');
  assert.deepEqual(oauth.body, { error: 'invalid_client', error_description: 'the credential is not valid' });
  assert.equal(oauth.headers['www-authenticate'], 'Bearer realm="mandate", error="invalid_token", error_description="the credential is not valid"');
  assert.equal(renderError(err).headers['www-authenticate'], oauth.headers['www-authenticate']);
});

test('retryAfterSeconds and allow become headers', () => {
  assert.equal(renderError(new RateLimitedError('slow down', { extra: { retryAfterSeconds: 3 } })).headers['retry-after'], '3');
  assert.equal(renderError(new MethodNotAllowedError('use POST', { extra: { allow: ['GET', 'HEAD'] } })).headers.allow, 'GET, HEAD');
});

test('unknown errors become a generic 500 that keeps the original only as cause', () => {
  const boom = new Error('connection string postgres://user:hunter2@db');
  const err = toMandateError(boom);
  assert.ok(err instanceof InternalError);
  assert.equal(err.cause, boom);
  const { status, body } = renderError(err);
  assert.equal(status, 500);
  assert.equal(JSON.stringify(body).includes('hunter2'), false);
  assert.deepEqual(renderError(err, 'oauth').body, { error: 'server_error', error_description: err.description });
});

test('framework errors map to stable codes', () => {
  const fst = (code: string, statusCode: number) => Object.assign(new Error(code), { code, statusCode });
  assert.ok(toMandateError(fst('FST_ERR_CTP_BODY_TOO_LARGE', 413)) instanceof PayloadTooLargeError);
  assert.ok(toMandateError(fst('FST_ERR_CTP_INVALID_MEDIA_TYPE', 415)) instanceof UnsupportedMediaTypeError);
  assert.ok(toMandateError(fst('FST_ERR_CTP_INVALID_JSON_BODY', 400)) instanceof MalformedJsonError);
  assert.equal(toMandateError(fst('SOMETHING_ELSE', 400)).code, 'ERR_INVALID_REQUEST');
});

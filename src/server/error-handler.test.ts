import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InternalError, MethodNotAllowedError, PolicySetInvalidError, RateLimitedError, UnauthenticatedError, UnsupportedMediaTypeError, PayloadTooLargeError, MalformedJsonError } from '../core/errors.ts';
import type { FastifyBaseLogger } from 'fastify';
import { createErrorHandler, PROBLEM_JSON, renderError, toMandateError } from './error-handler.ts';
import { createLogger } from './logger.ts';

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

test('the handler renders per route: problem+json by default, OAuth JSON where the route asks; unknown errors are logged, not shown', async () => {
  const { fastify } = await import('fastify');
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(l) } });
  const app = fastify({ loggerInstance: logger as FastifyBaseLogger });
  app.setErrorHandler(createErrorHandler());
  app.get('/problem', async () => {
    throw new UnauthenticatedError('no credential');
  });
  app.post('/token', { config: { errorFormat: 'oauth' } }, async () => {
    throw new UnauthenticatedError('client authentication failed');
  });
  app.get('/bug', async () => {
    throw new TypeError("Cannot read properties of undefined (reading 'secretKey')");
  });
  try {
    const problem = await app.inject({ method: 'GET', url: '/problem' });
    assert.equal(problem.statusCode, 401);
    assert.equal(problem.headers['content-type'], PROBLEM_JSON);
    assert.equal(problem.json().code, 'ERR_UNAUTHENTICATED');
    assert.match(String(problem.headers['www-authenticate']), /^Bearer realm="mandate"/);

    const oauth = await app.inject({ method: 'POST', url: '/token' });
    assert.equal(oauth.statusCode, 401);
    assert.match(String(oauth.headers['content-type']), /^application\/json/);
    assert.deepEqual(oauth.json(), { error: 'invalid_client', error_description: 'client authentication failed' });
    assert.match(String(oauth.headers['www-authenticate']), /^Bearer realm="mandate"/);

    const bug = await app.inject({ method: 'GET', url: '/bug' });
    assert.equal(bug.statusCode, 500);
    assert.deepEqual(Object.keys(bug.json()).sort(), ['code', 'detail', 'status', 'title', 'type']);
    assert.equal(bug.json().code, 'ERR_INTERNAL');
    assert.equal(bug.body.includes('secretKey'), false);
    assert.equal(bug.body.includes('TypeError'), false);
    // Operators get the whole story in the log.
    assert.match(lines.join(''), /secretKey/);
  } finally {
    await app.close();
  }
});

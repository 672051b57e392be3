/**
 * HTTP wiring of Shared Signals (the logic is receiver.ts and transmitter.ts):
 * - `POST /ssf/events/:transmitter` — RFC 8935 push endpoint, one per configured transmitter; `application/secevent+jwt`
 *   in, 202 out, or 400 (413 when too large) with `{"err", "description"}` (RFC 8935 §2.3); 404 for an unknown
 *   transmitter; 503 (with `Retry-After` when known) when the SET cannot be judged or applied now.
 * - `GET /.well-known/ssf-configuration` — Transmitter Configuration Metadata (SSF 1.0 §7.1).
 * - `POST|GET|PATCH|PUT|DELETE /ssf/stream`, `GET|POST /ssf/status`, `POST /ssf/verify` — stream management
 *   (SSF 1.0 §8), for API callers holding {@link SIGNALS_MANAGE_SCOPE}; errors go to the server's error handler
 *   (problem+json).
 *
 * The push endpoint renders its own errors (the RFC 8935 body is neither OAuth JSON nor a problem document), in its
 * own fastify scope with its own body parser and size limit.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ForbiddenError, InternalError, InvalidRequestError, isMandateError, NotFoundError, UnauthenticatedError, type MandateError } from '../core/errors.ts';
import type { SetReceiver } from './receiver.ts';
import { SetRefusedError } from './set-errors.ts';
import { SIGNALS_MANAGE_SCOPE, SSF_PATHS, type StreamCaller, type Transmitter } from './transmitter.ts';

/** Path of the push endpoint; `:transmitter` is a configured transmitter's id. */
export const SSF_PUSH_PATH = '/ssf/events/:transmitter';

/** The SET media type (RFC 8417 §2.3). */
export const SECEVENT_JWT = 'application/secevent+jwt';

/** Authenticates a caller of Mandate's API (`OAuthServerPort.authenticateApiCaller` satisfies it). */
export type AuthenticateApiCaller = (request: {
  authorization: string;
  dpop?: string | readonly string[];
  method: string;
  path: string;
}) => Promise<{ id: string; scopes: readonly string[] }>;

/** What {@link registerSsfRoutes} mounts. Each part is optional: a receiver-only or transmitter-only node is fine. */
export interface SsfRoutesDeps {
  /** The SET receiver; mounts the push endpoint. */
  receiver?: SetReceiver;
  /** Largest SET accepted, in bytes (`signals.receiver.maxSetBytes`). */
  maxSetBytes?: number;
  /** The transmitter; mounts the metadata and the stream management API (then `authenticate` is required). */
  transmitter?: Transmitter;
  /** Authenticates stream management callers; they need {@link SIGNALS_MANAGE_SCOPE}. */
  authenticate?: AuthenticateApiCaller;
}

function rfc8935Body(error: MandateError): Record<string, unknown> {
  return error instanceof SetRefusedError ? { err: error.err, description: error.description } : { description: error.description };
}

function toPushError(raw: unknown): MandateError {
  if (isMandateError(raw)) return raw;
  const code = (raw as { code?: unknown } | null)?.code;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new SetRefusedError('invalid_request', 'too_large', 'the SET is larger than this receiver accepts', { status: 413 });
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new SetRefusedError('invalid_request', 'media_type', `send the SET as ${SECEVENT_JWT} (RFC 8935 §2)`);
  const statusCode = (raw as { statusCode?: unknown } | null)?.statusCode;
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) return new SetRefusedError('invalid_request', 'malformed', 'the request could not be read');
  return new InternalError('the SET could not be processed; it has been logged', { cause: raw });
}

function sendPushError(reply: FastifyReply, error: MandateError): FastifyReply {
  const retryAfter = error.extra?.retryAfterSeconds;
  if (typeof retryAfter === 'number' && Number.isSafeInteger(retryAfter) && retryAfter >= 0) reply.header('retry-after', String(retryAfter));
  return reply
    .code(error.status)
    .header('cache-control', 'no-store')
    .type('application/json; charset=utf-8')
    .send(JSON.stringify(rfc8935Body(error)));
}

function queryStreamId(request: FastifyRequest): string | undefined {
  const value = (request.query as Record<string, unknown> | undefined)?.stream_id;
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new InvalidRequestError('send stream_id at most once');
  return value;
}

function pushContext(request: FastifyRequest, transmitter: string) {
  const authorization = request.headers.authorization;
  const traceparent = request.headers.traceparent;
  const traceId = typeof traceparent === 'string' ? /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(traceparent.trim())?.[1] : undefined;
  return {
    transmitter: transmitter.slice(0, 64),
    requestId: request.id,
    ...(typeof authorization === 'string' ? { authorization } : {}),
    ...(traceId === undefined || /^0+$/.test(traceId) ? {} : { traceId }),
  };
}

/**
 * Registers the Shared Signals routes on `app` (each group in its own scope).
 *
 * @example
 * registerSsfRoutes(app, { receiver, maxSetBytes: config.signals.receiver.maxSetBytes, transmitter,
 *   authenticate: (r) => oauth.authenticateApiCaller(r) });
 */
export function registerSsfRoutes(app: FastifyInstance, deps: SsfRoutesDeps): void {
  const { receiver, transmitter } = deps;
  if (transmitter !== undefined && deps.authenticate === undefined) throw new TypeError('registerSsfRoutes: the transmitter needs authenticate');

  if (receiver !== undefined) {
    // Errors the receiver has audited already; the others (media type, size, no body) are audited by the handler.
    const audited = new WeakSet<object>();
    void app.register(async (scope) => {
      // Only SETs: a JSON or form body here is the transmitter's mistake, named as such.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser(SECEVENT_JWT, { parseAs: 'string', bodyLimit: deps.maxSetBytes ?? 64 * 1024 }, (_request, body, done) => done(null, body));
      scope.setErrorHandler(async (raw, request, reply) => {
        const error = toPushError(raw);
        const transmitter = (request.params as { transmitter?: unknown } | undefined)?.transmitter;
        // Refusals raised before the handler ran (media type, size) are audited here; the receiver audits the rest.
        if (error instanceof SetRefusedError && !audited.has(raw as object)) {
          try {
            await receiver.refused(pushContext(request, typeof transmitter === 'string' ? transmitter : '(none)'), error);
          } catch (auditError) {
            request.log.error({ code: error.code }, 'audit log refused a SET refusal event; answering 503');
            return sendPushError(reply, isMandateError(auditError) ? auditError : new InternalError('the audit log failed', { cause: auditError }));
          }
        }
        if (error.status >= 500) request.log.error({ code: error.code, detail: error.detail, err: error.cause }, 'SET push failed');
        else request.log.info({ code: error.code, detail: error.detail }, 'SET refused');
        return sendPushError(reply, error);
      });
      scope.post(SSF_PUSH_PATH, { bodyLimit: deps.maxSetBytes ?? 64 * 1024, config: { endpoint: 'ssf.push' } }, async (request, reply) => {
        const { transmitter: id } = request.params as { transmitter: string };
        if (typeof request.body !== 'string') {
          // No body at all (no Content-Type): the parser never ran.
          throw new SetRefusedError('invalid_request', 'media_type', `send the SET as ${SECEVENT_JWT} (RFC 8935 §2)`);
        }
        try {
          await receiver.receive({ ...pushContext(request, id), body: request.body });
        } catch (error) {
          if (typeof error === 'object' && error !== null) audited.add(error);
          throw error;
        }
        return reply.code(202).header('cache-control', 'no-store').send();
      });
    });
  }

  if (transmitter !== undefined) {
    const authenticate = deps.authenticate as AuthenticateApiCaller;
    void app.register(async (scope) => {
      scope.get(SSF_PATHS.metadata, { config: { endpoint: 'ssf.metadata' } }, async (_request, reply) =>
        reply.header('cache-control', 'public, max-age=300').type('application/json').send(transmitter.metadata()),
      );
      // An issuer with a path publishes its metadata at /.well-known/ssf-configuration/<path> (SSF 1.0 §7.2).
      scope.get(`${SSF_PATHS.metadata}/*`, { config: { endpoint: 'ssf.metadata' } }, async (request, reply) => {
        const metadata = transmitter.metadata();
        const issuerPath = new URL(String(metadata.issuer)).pathname.replace(/\/+$/, '');
        const asked = request.url.split('?')[0]?.slice(SSF_PATHS.metadata.length) ?? '';
        if (issuerPath === '' || asked !== issuerPath) throw new NotFoundError('no SSF transmitter at this path');
        return reply.header('cache-control', 'public, max-age=300').type('application/json').send(metadata);
      });
    });

    void app.register(async (scope) => {
      scope.decorateRequest('ssfCaller', null);
      scope.addHook('onRequest', async (request) => {
        const header = request.headers.authorization;
        if (typeof header !== 'string' || header === '') {
          throw new UnauthenticatedError('authentication is required: send Authorization with a mandate holding signals:manage', { credentialMissing: true });
        }
        const caller = await authenticate({
          authorization: header,
          ...(request.headers.dpop === undefined ? {} : { dpop: request.headers.dpop }),
          method: request.method,
          path: request.url.split('?')[0] ?? '/',
        });
        if (!caller.scopes.includes(SIGNALS_MANAGE_SCOPE)) throw new ForbiddenError(`this endpoint needs the ${SIGNALS_MANAGE_SCOPE} scope`);
        (request as FastifyRequest & { ssfCaller: StreamCaller }).ssfCaller = { id: caller.id };
      });
      const callerOf = (request: FastifyRequest): StreamCaller => (request as FastifyRequest & { ssfCaller: StreamCaller }).ssfCaller;
      const route = (endpoint: string) => ({ config: { endpoint, auditRefusals: true } });
      const noStore = (reply: FastifyReply) => reply.header('cache-control', 'no-store');

      scope.post(SSF_PATHS.stream, route('ssf.stream.create'), async (request, reply) => noStore(reply).code(201).send(await transmitter.createStream(callerOf(request), request.body)));
      scope.get(SSF_PATHS.stream, route('ssf.stream.read'), async (request, reply) => noStore(reply).send(await transmitter.readStreams(callerOf(request), queryStreamId(request))));
      scope.patch(SSF_PATHS.stream, route('ssf.stream.update'), async (request, reply) => noStore(reply).send(await transmitter.updateStream(callerOf(request), request.body)));
      scope.put(SSF_PATHS.stream, route('ssf.stream.replace'), async (request, reply) => noStore(reply).send(await transmitter.replaceStream(callerOf(request), request.body)));
      scope.delete(SSF_PATHS.stream, route('ssf.stream.delete'), async (request, reply) => {
        await transmitter.deleteStream(callerOf(request), queryStreamId(request));
        return noStore(reply).code(204).send();
      });
      scope.get(SSF_PATHS.status, route('ssf.status.read'), async (request, reply) => noStore(reply).send(await transmitter.readStatus(callerOf(request), queryStreamId(request))));
      scope.post(SSF_PATHS.status, route('ssf.status.update'), async (request, reply) => noStore(reply).send(await transmitter.updateStatus(callerOf(request), request.body)));
      scope.post(SSF_PATHS.verify, route('ssf.verify'), async (request, reply) => {
        await transmitter.requestVerification(callerOf(request), request.body);
        return noStore(reply).code(204).send();
      });
    });
  }
}

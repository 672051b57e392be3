/**
 * Envoy `ext_authz` HTTP check: Mandate as the external authorization service of Envoy, Istio or a Gateway
 * API implementation.
 *
 * Envoy's HTTP contract: for every downstream request, Envoy sends the authorization service a request with
 * the original method, the original path behind a configured `path_prefix`, the original `Host`, and the
 * headers its `allowed_headers` lets through (always `Authorization`), with an empty body. A `200` answer
 * allows the request, and the answer's headers that `allowed_upstream_headers` names are added to the
 * request Envoy forwards upstream (`x-envoy-auth-headers-to-remove` lists headers Envoy removes from it). Any
 * other status denies: Envoy returns that status, the body and the headers `allowed_client_headers` names to
 * the client.
 *
 * Here: the mandate is authenticated from the forwarded `Authorization` (and `DPoP`, bound to the original
 * method and URL), method and path are mapped to an action and resource by the route rules of
 * `http-routes.ts` (same normalisation, exact match), the decision is asked of the `GatewayDecider`, and the
 * answer is 200 with `x-mandate-*` headers, 401 with `WWW-Authenticate`, or 403 with a JSON reason code.
 *
 * @see https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/ext_authz_filter
 * @see https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/http/ext_authz/v3/ext_authz.proto (HttpService, AuthorizationRequest, AuthorizationResponse)
 */
import { parseStrictJson } from './json-strict.ts';
import type { FastifyInstance } from 'fastify';
import { isMandateError, UnauthenticatedError } from '../core/errors.ts';
import {
  describeMatchFailure,
  matchRoute,
  METHOD_OVERRIDE_HEADERS,
  type AuthenticatedCaller,
  type CallerAuthenticator,
  type GatewayDecider,
  type GatewayDecision,
  type HttpRouteRule,
} from './http-routes.ts';

/** The check request as Envoy sends it, with the path prefix already removed. */
export interface ExtAuthzInput {
  method: string;
  /** The original path and query (what followed `path_prefix`). */
  path: string;
  /** Lower-case header names, as forwarded by Envoy's `allowed_headers`. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /**
   * The original request's body, when Envoy sends it (`with_request_body`). A JSON body is the call's arguments:
   * held to a task's workflow limits; without it a task whose workflow limits the arguments refuses the call.
   */
  body?: Buffer;
}

/** The answer to Envoy: status, headers, and a JSON body on denial. */
export interface ExtAuthzResult {
  status: 200 | 400 | 401 | 403 | 503;
  headers: Record<string, string>;
  body?: { error: { code: string; reason_code: string; message: string; decision_id?: string; approval_id?: string } };
}

/** Dependencies of the check. */
export interface ExtAuthzDeps {
  rules: readonly HttpRouteRule[];
  authenticator: CallerAuthenticator;
  decider: GatewayDecider;
  /** The protected resource (expected mandate `aud`) of the service behind Envoy. */
  resource: string;
  /**
   * The original request's origin, for a DPoP proof's `htu` (default `https://<host header>`). Envoy forwards
   * `Host`; whether `x-forwarded-proto` can be trusted depends on the deployment, so it is not read here.
   */
  originOf?(headers: ExtAuthzInput['headers']): string;
  /** Headers Envoy should remove before forwarding upstream (default `authorization`, `dpop`: no passthrough). */
  headersToRemove?: readonly string[];
}

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v);

function denied(status: ExtAuthzResult['status'], code: string, reasonCode: string, message: string, extra: { decision_id?: string; approval_id?: string } = {}, headers: Record<string, string> = {}): ExtAuthzResult {
  return { status, headers: { 'content-type': 'application/json', ...headers }, body: { error: { code, reason_code: reasonCode, message, ...extra } } };
}

/**
 * Decides one Envoy check request. Never throws: a failure anywhere is a denial.
 * @example
 * await extAuthzCheck({ method: 'GET', path: '/tickets/42', headers: { host: 'api.acme.example', authorization: 'DPoP …', dpop: '…' } }, deps)
 * // → { status: 200, headers: { 'x-mandate-user': 'alice', 'x-mandate-decision-id': '…', … } }
 */
export async function extAuthzCheck(input: ExtAuthzInput, deps: ExtAuthzDeps): Promise<ExtAuthzResult> {
  for (const h of METHOD_OVERRIDE_HEADERS) {
    if (input.headers[h] !== undefined) return denied(400, 'ERR_INVALID_REQUEST', 'method_override', `the ${h} header is refused: the method is the request's own`);
  }
  const match = matchRoute(deps.rules, input.method, input.path);
  if (!('rule' in match)) {
    const d = describeMatchFailure(match);
    return denied(d.status === 400 ? 400 : 403, d.code, d.reasonCode, d.message);
  }
  const host = first(input.headers.host) ?? first(input.headers[':authority']);
  const origin = deps.originOf ? deps.originOf(input.headers) : host ? `https://${host}` : undefined;
  let caller: AuthenticatedCaller;
  try {
    if (origin === undefined) throw new UnauthenticatedError('the check request names no host, so a proof cannot be checked');
    const pathOnly = input.path.split('?')[0] ?? input.path;
    caller = await deps.authenticator.authenticate({
      authorization: first(input.headers.authorization),
      dpop: first(input.headers.dpop),
      method: input.method,
      url: `${origin}${pathOnly}`,
      resource: deps.resource,
    });
  } catch (err) {
    const e = err instanceof UnauthenticatedError ? err : new UnauthenticatedError('the mandate could not be verified', { cause: err });
    return denied(401, e.code, 'unauthenticated', e.description, {}, { 'www-authenticate': e.wwwAuthenticate() });
  }
  let decision: GatewayDecision;
  try {
    let args: unknown;
    const contentType = first(input.headers['content-type']) ?? '';
    if (input.body !== undefined && input.body.length > 0 && /^application\/json\b/i.test(contentType)) {
      try {
        args = parseStrictJson(input.body.toString('utf8'), 32);
      } catch {
        return denied(400, 'ERR_INVALID_REQUEST', 'invalid_json', 'the JSON body is malformed or has duplicate keys');
      }
    }
    decision = await deps.decider.decide({
      caller,
      action: match.action,
      resource: match.resource,
      context: { ...(match.rule.context ?? {}), ...(args === undefined ? {} : { arguments: args }) },
      http: { method: input.method, path: match.path },
    });
  } catch (err) {
    return denied(503, 'ERR_DECISION_UNAVAILABLE', isMandateError(err) ? err.code.toLowerCase() : 'decision_unavailable', 'no decision could be made; the request is denied');
  }
  if (decision.decision === 'approval_required') {
    return denied(403, 'ERR_APPROVAL_REQUIRED', 'approval_required', decision.reason ?? 'a person must approve this request first', {
      decision_id: decision.decisionId,
      ...(decision.approvalId ? { approval_id: decision.approvalId } : {}),
    });
  }
  if (decision.decision !== 'allow') {
    return denied(403, 'ERR_POLICY_DENIED', decision.reasonCode ?? 'policy_denied', decision.reason ?? 'denied by policy', { decision_id: decision.decisionId });
  }
  const actor = caller.actors.at(-1);
  const headers: Record<string, string> = {
    'x-mandate-user': caller.user.id,
    'x-mandate-decision-id': decision.decisionId,
    'x-envoy-auth-headers-to-remove': (deps.headersToRemove ?? ['authorization', 'dpop']).join(', '),
  };
  if (actor) headers['x-mandate-agent'] = actor.id;
  if (caller.taskId) headers['x-mandate-task'] = caller.taskId;
  return { status: 200, headers };
}

/**
 * Registers the check endpoint at `<prefix>/*` (default `/ext_authz`) for every method, as Envoy's
 * `http_service` with `path_prefix: /ext_authz` calls it. The body of the check request is ignored.
 */
export function registerExtAuthz(app: FastifyInstance, deps: ExtAuthzDeps & { prefix?: string }): void {
  const prefix = deps.prefix ?? '/ext_authz';
  void app.register(
    async (scope) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 64 * 1024 }, (_req, body, done) => done(null, body));
      scope.all('/*', async (request, reply) => {
        const raw = request.raw.url ?? request.url;
        const path = raw.slice(prefix.length) || '/';
        const body = Buffer.isBuffer(request.body) ? request.body : undefined;
        const result = await extAuthzCheck({ method: request.method, path, headers: request.headers, ...(body === undefined ? {} : { body }) }, deps);
        void reply.code(result.status).headers(result.headers);
        return result.body ? reply.send(result.body) : reply.send('');
      });
    },
    { prefix },
  );
}

/**
 * The OAuth authorization server's endpoints (HTTP wiring only; the logic is src/tokens/token-service.ts):
 * - `GET /.well-known/oauth-authorization-server` — RFC 8414 metadata
 * - `GET /oauth/jwks` — the public keys mandates are signed with (never a private part)
 * - `POST /oauth/token` — RFC 8693 token exchange and `client_credentials`
 * - `POST /oauth/introspect` — RFC 7662
 * - `POST /oauth/revoke` — RFC 7009
 *
 * Requests are `application/x-www-form-urlencoded` (RFC 6749 §3.2); a parameter sent twice is refused. Errors
 * are RFC 6749 §5.2 JSON; every refusal is audited before it is answered, and the endpoints are rate-limited
 * per client (and, before the client is known, per remote address).
 */
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { peerCertificateChain } from '../identity/spiffe.ts';
import { createAuditEvent } from '../audit/audit-event.ts';
import { InvalidRequestError, RateLimitedError, StoreUnavailableError, UnsupportedMediaTypeError } from '../core/errors.ts';
import type { TokenService, OAuthForm, OAuthRequestContext } from '../tokens/token-service.ts';
import { GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE } from '../tokens/token-service.ts';
import { stateOf, type ServerContext } from './server-context.ts';

/** Paths of the OAuth endpoints. */
export const OAUTH_PATHS = {
  metadata: '/.well-known/oauth-authorization-server',
  jwks: '/oauth/jwks',
  token: '/oauth/token',
  introspect: '/oauth/introspect',
  revoke: '/oauth/revoke',
} as const;

/** What the OAuth routes need besides the server context. */
export interface OAuthServerPort {
  /** The issuer identifier; the endpoints are published under it (a function: known once the server listens). */
  issuer: () => string;
  service: TokenService;
  /** The public JWKS. */
  jwks(): Promise<{ keys: unknown[] }>;
  /** DPoP algorithms accepted, for the metadata. */
  dpopAlgorithms: readonly string[];
  /** Client assertion algorithms accepted, for the metadata. */
  assertionAlgorithms: readonly string[];
  /** Client authentication methods accepted (`private_key_jwt`, and `tls_client_auth` with SPIFFE over mTLS). */
  authMethods: readonly string[];
  /** Resources mandates are issued for, for the metadata's scopes. */
  scopes: readonly string[];
  /**
   * Authenticates a caller of Mandate's own API (AuthZEN, admin) by a mandate issued to a registered service
   * (`Authorization: Bearer|DPoP <mandate>`); rejects with `InvalidTokenError` / DPoP errors.
   */
  authenticateApiCaller(request: { authorization: string; dpop?: string | readonly string[]; method: string; path: string }): Promise<{ id: string; scopes: readonly string[] }>;
  /** Whether tasks are on: refresh_token grant and RFC 9396 `mandate_task` details. */
  tasks?: boolean;
  /** Readiness of the identity sources (IdP keys, SPIFFE bundles), for `/readyz`. */
  readiness(): { ok: true; detail?: unknown } | { ok: false; reason: string; detail?: unknown };
}

const MAX_FORM_PARAMS = 64;

/**
 * Parses an `application/x-www-form-urlencoded` body strictly: each parameter at most once (RFC 6749 §3.2),
 * at most {@link MAX_FORM_PARAMS} of them, no empty names.
 */
export function parseOAuthForm(body: string): OAuthForm {
  const params = new URLSearchParams(body);
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  let n = 0;
  for (const [k, v] of params) {
    if (++n > MAX_FORM_PARAMS) throw new InvalidRequestError(`the request has more than ${MAX_FORM_PARAMS} parameters`);
    if (k === '') throw new InvalidRequestError('the request has a parameter without a name');
    if (Object.hasOwn(out, k)) throw new InvalidRequestError(`the ${k.slice(0, 64)} parameter is sent more than once (RFC 6749 §3.2)`);
    out[k] = v;
  }
  return out;
}

function formOf(request: FastifyRequest): OAuthForm {
  const body = request.body as OAuthForm | undefined;
  if (body === undefined || body === null) throw new InvalidRequestError('the request body is empty; send the parameters as application/x-www-form-urlencoded');
  return body;
}

/** The TLS client certificate chain of the request's connection, if Mandate serves TLS and the client sent one. */
function peerOf(request: FastifyRequest): { peerCertificate?: Buffer[] } {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function') return {};
  const peer = socket.getPeerCertificate(true);
  if (peer === null || peer === undefined || Object.keys(peer).length === 0 || peer.raw === undefined) return {};
  const chain = peerCertificateChain(peer);
  return chain.length === 0 ? {} : { peerCertificate: chain };
}

/** Registers the OAuth routes in their own scope (so that only they accept form bodies). */
export function registerOAuthRoutes(app: FastifyInstance, ctx: ServerContext, oauth: OAuthServerPort): void {
  const endpoint = (path: string) => `${oauth.issuer().replace(/\/+$/, '')}${path}`;

  const limit = (key: string) => {
    const verdict = ctx.limiter.take(key, 1);
    if (!verdict.allowed) {
      throw new RateLimitedError(`too many requests; retry after ${verdict.retryAfterSeconds} s`, { extra: { retryAfterSeconds: verdict.retryAfterSeconds } });
    }
  };

  const requestContext = (request: FastifyRequest, path: string): OAuthRequestContext => {
    const state = stateOf(request);
    const afterAuthentication = (client: { principal: { id: string } }) => {
      state.clientId = client.principal.id;
      limit(`client:${client.principal.id}`);
    };
    const dpop = request.headers.dpop;
    if (Array.isArray(dpop)) throw new InvalidRequestError('send exactly one DPoP header');
    const authorization = request.headers.authorization;
    return {
      ...peerOf(request),
      ...(typeof dpop === 'string' ? { dpop } : {}),
      ...(typeof authorization === 'string' ? { authorizationHeader: authorization } : {}),
      method: request.method,
      url: endpoint(path),
      requestId: state.requestId,
      ...(state.traceId === undefined ? {} : { traceId: state.traceId }),
      afterAuthentication,
    };
  };

  // Loaded with the other plugins when the server's ready() runs.
  void app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
      try {
        done(null, parseOAuthForm(body as string));
      } catch (err) {
        done(err as Error, undefined);
      }
    });
    // A JSON body on a form endpoint is a client mistake worth naming, not a generic 415.
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', (_request, _payload, done) => {
      done(new UnsupportedMediaTypeError('OAuth endpoints take application/x-www-form-urlencoded parameters (RFC 6749 §3.2), not JSON'), undefined);
    });

    scope.get(OAUTH_PATHS.metadata, { config: { endpoint: 'oauth.metadata' } }, async (_request, reply) => {
      return reply.header('cache-control', 'public, max-age=300').send({
        issuer: oauth.issuer(),
        token_endpoint: endpoint(OAUTH_PATHS.token),
        jwks_uri: endpoint(OAUTH_PATHS.jwks),
        introspection_endpoint: endpoint(OAUTH_PATHS.introspect),
        revocation_endpoint: endpoint(OAUTH_PATHS.revoke),
        grant_types_supported: [GRANT_TOKEN_EXCHANGE, GRANT_CLIENT_CREDENTIALS, ...(oauth.tasks === true ? ['refresh_token'] : [])],
        ...(oauth.tasks === true ? { authorization_details_types_supported: ['mandate_task'] } : {}),
        // No authorization endpoint: users sign in at their IdP; Mandate only exchanges tokens.
        response_types_supported: [],
        token_endpoint_auth_methods_supported: oauth.authMethods,
        token_endpoint_auth_signing_alg_values_supported: oauth.assertionAlgorithms,
        introspection_endpoint_auth_methods_supported: oauth.authMethods,
        introspection_endpoint_auth_signing_alg_values_supported: oauth.assertionAlgorithms,
        revocation_endpoint_auth_methods_supported: oauth.authMethods,
        revocation_endpoint_auth_signing_alg_values_supported: oauth.assertionAlgorithms,
        dpop_signing_alg_values_supported: oauth.dpopAlgorithms,
        scopes_supported: oauth.scopes,
        authorization_response_iss_parameter_supported: false,
      });
    });

    scope.get(OAUTH_PATHS.jwks, { config: { endpoint: 'oauth.jwks' } }, async (_request, reply) => {
      const jwks = await oauth.jwks();
      return reply.header('cache-control', 'public, max-age=60').type('application/jwk-set+json').send(jwks);
    });

    const formRoute = { config: { endpoint: '', errorFormat: 'oauth' as const, auditRefusals: true } };

    scope.post(OAUTH_PATHS.token, { ...formRoute, config: { ...formRoute.config, endpoint: 'oauth.token' } }, async (request, reply) => {
      limit(`ip:${request.ip}`);
      const form = formOf(request);
      const state = stateOf(request);
      const { response } = await oauth.service.token(form, requestContext(request, OAUTH_PATHS.token));
      // The issuance event was committed with the token's record.
      state.auditHandled = true;
      return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').send(response);
    });

    scope.post(OAUTH_PATHS.introspect, { ...formRoute, config: { ...formRoute.config, endpoint: 'oauth.introspect' } }, async (request, reply) => {
      limit(`ip:${request.ip}`);
      const state = stateOf(request);
      const { body, event } = await oauth.service.introspect(formOf(request), requestContext(request, OAUTH_PATHS.introspect));
      state.auditHandled = true;
      try {
        await ctx.auditLog.record(event);
      } catch (err) {
        ctx.metrics.countAuditRefused();
        throw new StoreUnavailableError('the audit log cannot record this request, so it was refused; retry shortly', { cause: err });
      }
      return reply.header('cache-control', 'no-store').send(body);
    });

    scope.post(OAUTH_PATHS.revoke, { ...formRoute, config: { ...formRoute.config, endpoint: 'oauth.revoke' } }, async (request, reply) => {
      limit(`ip:${request.ip}`);
      const state = stateOf(request);
      const { revoked } = await oauth.service.revoke(formOf(request), requestContext(request, OAUTH_PATHS.revoke));
      state.auditHandled = true;
      // A revocation wrote its event with the revocation; a request that revoked nothing is audited here.
      if (!revoked) {
        try {
          await ctx.auditLog.record(
            createAuditEvent(
              {
                type: 'token.revoke',
                outcome: 'failure',
                ...(state.clientId === undefined ? {} : { actor: state.clientId }),
                ...(state.traceId === undefined ? {} : { traceId: state.traceId }),
                reasons: ['the token is unknown, not one of ours, expired or already revoked; nothing was revoked'],
                data: { requestId: state.requestId },
              },
              { clock: ctx.clock, ids: ctx.ids },
            ),
          );
        } catch (err) {
          ctx.metrics.countAuditRefused();
          throw new StoreUnavailableError('the audit log cannot record this request, so it was refused; retry shortly', { cause: err });
        }
      }
      return reply.header('cache-control', 'no-store').send();
    });
  });
}

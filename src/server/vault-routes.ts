/**
 * The gateway vault's API: a person connects, lists and revokes the credentials the gateway uses to call
 * upstreams on their behalf (src/gateway/vault.ts).
 * - `PUT /vault/v1/credentials/:upstream` `{ "access_token": "…", "refresh_token"?: "…", "expires_in"?: 3600 }`
 * - `GET /vault/v1/credentials` — the caller's own connections (upstream, expires_at, connected_at; never a secret)
 * - `DELETE /vault/v1/credentials/:upstream` — revokes the caller's own
 * - `DELETE /vault/v1/admin/credentials/:upstream?iss=…&sub=…` — an admin service (scope `vault:admin`) revokes anyone's
 *
 * A person authenticates with an access token from a trusted IdP (`Authorization: Bearer`), as approvers do; the
 * key is (issuer, subject), so one person never reaches another's credentials. Writes are audited by the vault in
 * the same transaction; reads are audited here.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { createAuditEvent } from '../audit/audit-event.ts';
import { InvalidRequestError, NotFoundError, StoreUnavailableError, UnauthenticatedError } from '../core/errors.ts';
import type { AuthenticatedUser } from '../identity/types.ts';
import type { Vault } from '../gateway/vault.ts';
import { stateOf, type ServerContext } from './server-context.ts';

/** Paths of the vault endpoints. */
export const VAULT_PATHS = {
  list: '/vault/v1/credentials',
  one: '/vault/v1/credentials/:upstream',
  admin: '/vault/v1/admin/credentials/:upstream',
} as const;

/** The scope an admin service needs to revoke any user's credential. */
export const VAULT_ADMIN_SCOPE = 'vault:admin';

/** What the vault routes need besides the server context. */
export interface VaultRoutesDeps {
  vault: Vault;
  /** Verifies a user's access token from a trusted IdP (rejects with an `InvalidTokenError`). */
  authenticateUser(token: string): Promise<AuthenticatedUser>;
}

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
// RFC 6749 Appendix A.12/A.17: access and refresh tokens are VSCHAR (printable ASCII).
const TOKEN = z.string().min(1).max(16 * 1024).regex(/^[\x20-\x7e]+$/, { error: 'printable ASCII (RFC 6749 Appendix A)' });
const Connect = z.strictObject({
  access_token: TOKEN,
  refresh_token: TOKEN.optional(),
  expires_in: z.int().min(1).max(10 * 365 * 24 * 3600).optional(),
  token_type: z.string().max(64).optional(),
});
const AdminQuery = z.strictObject({ iss: z.string().min(1).max(2048), sub: z.string().min(1).max(1024) });

function upstreamParam(params: unknown, vault: Vault): string {
  const id = (params as { upstream?: unknown }).upstream;
  if (typeof id !== 'string' || !vault.upstreams.has(id)) throw new NotFoundError('no gateway upstream with vault credentials by that name');
  return id;
}

/** Registers the vault routes. */
export function registerVaultRoutes(app: FastifyInstance, ctx: ServerContext, deps: VaultRoutesDeps): void {
  const person = async (request: FastifyRequest): Promise<AuthenticatedUser> => {
    const header = request.headers.authorization;
    const token = typeof header === 'string' ? BEARER.exec(header)?.[1] : undefined;
    if (token === undefined) throw new UnauthenticatedError('a person authenticates with their access token: Authorization: Bearer <token>', { credentialMissing: header === undefined });
    const user = await deps.authenticateUser(token);
    stateOf(request).clientId = `user:${user.subject}`;
    return user;
  };
  const handled = (request: FastifyRequest) => {
    stateOf(request).auditHandled = true;
  };

  app.put(VAULT_PATHS.one, { config: { endpoint: 'vault.connect', auditRefusals: true } }, async (request, reply) => {
    const user = await person(request);
    const upstream = upstreamParam(request.params, deps.vault);
    const parsed = Connect.safeParse(request.body);
    // Issue paths only: a message never quotes a value, which could be a token.
    if (!parsed.success) throw new InvalidRequestError(`the credential is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`);
    if (parsed.data.token_type !== undefined && parsed.data.token_type.toLowerCase() !== 'bearer') throw new InvalidRequestError('token_type: only Bearer access tokens are connected');
    const connected = await deps.vault.connect(
      { iss: user.issuer, sub: user.subject },
      upstream,
      { accessToken: parsed.data.access_token, ...(parsed.data.refresh_token === undefined ? {} : { refreshToken: parsed.data.refresh_token }), ...(parsed.data.expires_in === undefined ? {} : { expiresInSeconds: parsed.data.expires_in }) },
      `user:${user.subject}`,
    );
    handled(request);
    return reply.code(200).header('cache-control', 'no-store').send(connected);
  });

  app.get(VAULT_PATHS.list, { config: { endpoint: 'vault.list', auditRefusals: true } }, async (request, reply) => {
    const user = await person(request);
    const list = await deps.vault.list({ iss: user.issuer, sub: user.subject });
    try {
      await ctx.auditLog.record(createAuditEvent({ type: 'admin', outcome: 'success', actor: `user:${user.subject}`, data: { operation: 'vault.list', count: list.length } }, { clock: ctx.clock, ids: ctx.ids }));
    } catch (err) {
      ctx.metrics.countAuditRefused();
      throw new StoreUnavailableError('the audit log cannot record this request, so it was refused; retry shortly', { cause: err });
    }
    handled(request);
    return reply.header('cache-control', 'no-store').send({ credentials: list });
  });

  app.delete(VAULT_PATHS.one, { config: { endpoint: 'vault.revoke', auditRefusals: true } }, async (request, reply) => {
    const user = await person(request);
    const upstream = upstreamParam(request.params, deps.vault);
    if (!(await deps.vault.revoke({ iss: user.issuer, sub: user.subject }, upstream, `user:${user.subject}`))) throw new NotFoundError(`no connected credential for ${upstream}`);
    handled(request);
    return reply.code(204).header('cache-control', 'no-store').send();
  });

  app.delete(VAULT_PATHS.admin, { config: { endpoint: 'vault.admin.revoke', scopes: [VAULT_ADMIN_SCOPE], auditRefusals: true } }, async (request, reply) => {
    const upstream = upstreamParam(request.params, deps.vault);
    const query = AdminQuery.safeParse(request.query);
    if (!query.success) throw new InvalidRequestError('name the user: ?iss=<issuer>&sub=<subject>');
    const actor = stateOf(request).clientId ?? 'unknown';
    if (!(await deps.vault.revoke(query.data, upstream, actor))) throw new NotFoundError(`no connected credential for ${upstream} and that user`);
    handled(request);
    return reply.code(204).header('cache-control', 'no-store').send();
  });
}

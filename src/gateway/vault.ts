/**
 * The gateway vault: per-user upstream credentials (issue 6 §2 option b). A user connects a credential for an
 * upstream (e.g. the OAuth access token of a SaaS API); the gateway calls that upstream with it, never with the
 * agent's mandate. Tokens are sealed under the KEK (bound to their row) before they reach the store, refreshed with
 * the OAuth `refresh_token` grant when they expire or are about to, and revocable by the user or an admin. Every
 * write is audited (`admin`, `vault.connect|refresh|revoke`); no token ever reaches an audit event, error or log.
 *
 * @see RFC 6749 §6 (refreshing an access token), §5.2 (error response)
 */
import { createAuditEvent } from '../audit/audit-event.ts';
import { ConfigInvalidError, MandateError, type MandateErrorOptions } from '../core/errors.ts';
import type { Clock, IdGenerator } from '../core/ports.ts';
import type { UserCredentialRecord, VaultStore, VaultUser } from '../store/store.ts';
import type { TokenRequest } from './vault-token-request.ts';

/** Why the gateway has no credential to call an upstream with; stable reason codes (public API). */
export type UpstreamCredentialReason = 'upstream_credential_missing' | 'upstream_credential_expired';

/**
 * The user has no usable credential for the upstream (none connected, revoked, or expired and not refreshable):
 * the call is refused before it reaches the upstream. The description starts with the reason code, so that it
 * reaches an MCP client's JSON-RPC error text too; `extra.reason_code` carries it for problem+json.
 */
export class UpstreamCredentialError extends MandateError {
  static override readonly code: string = 'ERR_UPSTREAM_CREDENTIAL';
  override readonly code: string = 'ERR_UPSTREAM_CREDENTIAL';
  override readonly status: number = 403;
  override readonly oauthError: string = 'access_denied';
  /** The stable reason code. */
  readonly reasonCode: UpstreamCredentialReason;

  constructor(reasonCode: UpstreamCredentialReason, description: string, options: MandateErrorOptions = {}) {
    super(`${reasonCode}: ${description}`, { ...options, extra: { ...options.extra, reason_code: reasonCode } });
    this.reasonCode = reasonCode;
  }
}

/** How the vault refreshes the credentials of one upstream (the parsed `credential` of a `vault` upstream). */
export interface VaultUpstreamConfig {
  readonly tokenEndpoint?: string;
  readonly clientId?: string;
  readonly clientSecretEnv?: string;
}

/** A connection as its owner sees it: never a secret. */
export interface VaultConnectionView {
  readonly upstream: string;
  /** ISO 8601, or absent when the access token was connected without `expires_in`. */
  readonly expires_at?: string;
  readonly connected_at: string;
  readonly refreshable: boolean;
}

/** What a user connects. */
export interface VaultConnectInput {
  readonly accessToken: string;
  readonly refreshToken?: string;
  readonly expiresInSeconds?: number;
}

/** The narrow port the gateway needs: the access token to call `upstreamId` with for this user. */
export interface UpstreamCredentialSource {
  /** @throws UpstreamCredentialError when the user has no usable credential (fail closed). */
  accessToken(upstreamId: string, user: { iss?: string; sub?: string }): Promise<string>;
}

/** The vault service. */
export interface Vault extends UpstreamCredentialSource {
  /** The upstreams whose credentials live in the vault. */
  readonly upstreams: ReadonlySet<string>;
  connect(user: VaultUser, upstreamId: string, input: VaultConnectInput, actor: string): Promise<VaultConnectionView>;
  list(user: VaultUser): Promise<VaultConnectionView[]>;
  /** Resolves false when the user had no live credential for the upstream. */
  revoke(user: VaultUser, upstreamId: string, actor: string): Promise<boolean>;
}

/** What {@link createVault} needs. */
export interface VaultDeps {
  store: VaultStore;
  /** Seals / opens a secret under the KEK (token-node `seal` / `open`). */
  seal(purpose: string, plaintext: string): Promise<string>;
  open(purpose: string, sealed: string): Promise<string>;
  /** The guarded token request (src/gateway/vault-token-request.ts). */
  tokenRequest: TokenRequest;
  /** The `vault` upstreams, by id. */
  upstreams: ReadonlyMap<string, VaultUpstreamConfig>;
  /** Where `clientSecretEnv` variables are read (once, at start). */
  env: Readonly<Record<string, string | undefined>>;
  clock: Clock;
  ids?: IdGenerator;
  /** Refresh an access token that expires within this many seconds; default 60. */
  refreshSkewSeconds?: number;
}

const ACTOR = 'mandate-gateway';
const MAX_TOKEN_CHARS = 16 * 1024;

/** The seal purpose binds a sealed token to its row: a ciphertext copied to another user's row does not open there. */
const purposeOf = (kind: 'access' | 'refresh', upstream: string, user: VaultUser) => JSON.stringify([`vault.${kind}_token`, upstream, user.iss, user.sub]);

const view = (r: UserCredentialRecord): VaultConnectionView => ({
  upstream: r.upstream,
  ...(r.expiresAt === undefined ? {} : { expires_at: new Date(r.expiresAt).toISOString() }),
  connected_at: new Date(r.createdAt).toISOString(),
  refreshable: r.sealedRefreshToken !== undefined,
});

/**
 * Creates the vault.
 * @throws ConfigInvalidError when a `clientSecretEnv` names an unset variable
 * @example
 * const vault = createVault({ store: store.vault, seal: node.seal, open: node.open, tokenRequest, upstreams, env, clock });
 * const token = await vault.accessToken('crm', { iss: caller.userIss, sub: caller.userSub });
 */
export function createVault(deps: VaultDeps): Vault {
  const skewMs = (deps.refreshSkewSeconds ?? 60) * 1000;
  const secrets = new Map<string, string>();
  for (const [id, u] of deps.upstreams) {
    if (u.clientSecretEnv === undefined) continue;
    const value = deps.env[u.clientSecretEnv];
    if (value === undefined || value === '') throw new ConfigInvalidError(`gateway.upstreams ${id}: credential.clientSecretEnv names ${u.clientSecretEnv}, which is not set`);
    secrets.set(id, value);
  }
  const event = (operation: 'vault.connect' | 'vault.refresh' | 'vault.revoke', actor: string, upstream: string, user: VaultUser, data: Record<string, unknown> = {}) =>
    createAuditEvent(
      { type: 'admin', outcome: 'success', actor, subject: `User::${JSON.stringify(user.sub)}`, resource: `vault:${upstream}`, data: { operation, upstream, userIss: user.iss, userSub: user.sub, ...data } },
      { clock: deps.clock, ...(deps.ids === undefined ? {} : { ids: deps.ids }) },
    );
  const known = (upstreamId: string): VaultUpstreamConfig => {
    const u = deps.upstreams.get(upstreamId);
    if (u === undefined) throw new TypeError(`vault: ${upstreamId} is not a vault upstream`);
    return u;
  };
  const missing = (upstreamId: string, why: string) => new UpstreamCredentialError('upstream_credential_missing', `${why} for upstream ${upstreamId}: the user connects one at PUT /vault/v1/credentials/${upstreamId}`);

  /** One refresh per row at a time: a second caller waits for the first instead of spending the refresh token twice. */
  const inflight = new Map<string, Promise<string>>();

  const refresh = async (upstreamId: string, user: VaultUser, row: UserCredentialRecord): Promise<string> => {
    const u = known(upstreamId);
    const expired = () => new UpstreamCredentialError('upstream_credential_expired', `the credential for upstream ${upstreamId} expired and cannot be refreshed: the user connects it again at PUT /vault/v1/credentials/${upstreamId}`);
    if (u.tokenEndpoint === undefined || row.sealedRefreshToken === undefined) throw expired();
    const refreshToken = await deps.open(purposeOf('refresh', upstreamId, user), row.sealedRefreshToken);
    const secret = secrets.get(upstreamId);
    const form: Record<string, string> = { grant_type: 'refresh_token', refresh_token: refreshToken };
    // RFC 6749 §2.3.1: client_id and secret form-urlencoded, then Basic; a public client names itself in the body.
    const authorization = u.clientId !== undefined && secret !== undefined ? `Basic ${Buffer.from(`${encodeURIComponent(u.clientId)}:${encodeURIComponent(secret)}`).toString('base64')}` : undefined;
    if (u.clientId !== undefined && authorization === undefined) form.client_id = u.clientId;
    const answer = await deps.tokenRequest(u.tokenEndpoint, form, authorization);
    const json = answer.json ?? {};
    if (answer.status !== 200 || typeof json.access_token !== 'string' || json.access_token === '' || json.access_token.length > MAX_TOKEN_CHARS) {
      // RFC 6749 §5.2: invalid_grant means the refresh token is no longer good; the user has to connect again.
      if (answer.status === 400 || answer.status === 401) throw expired();
      throw new UpstreamCredentialError('upstream_credential_expired', `the credential for upstream ${upstreamId} expired and its token endpoint did not refresh it (HTTP ${answer.status}); retry shortly`, {
        detail: `token endpoint answered ${answer.status}${typeof json.error === 'string' ? ` error=${json.error.slice(0, 64)}` : ''}`,
      });
    }
    const now = deps.clock.now();
    const expiresIn = typeof json.expires_in === 'number' && Number.isFinite(json.expires_in) && json.expires_in > 0 ? json.expires_in : undefined;
    const rotated = typeof json.refresh_token === 'string' && json.refresh_token !== '' && json.refresh_token.length <= MAX_TOKEN_CHARS ? json.refresh_token : undefined;
    const sealedAccessToken = await deps.seal(purposeOf('access', upstreamId, user), json.access_token);
    // RFC 6749 §6: without a new refresh token the old one stays valid.
    const sealedRefreshToken = rotated === undefined ? row.sealedRefreshToken : await deps.seal(purposeOf('refresh', upstreamId, user), rotated);
    const stored = await deps.store.refresh(
      upstreamId,
      user,
      row.updatedAt,
      { sealedAccessToken, sealedRefreshToken, ...(expiresIn === undefined ? {} : { expiresAt: now + expiresIn * 1000 }), atMs: now },
      event('vault.refresh', ACTOR, upstreamId, user, { rotated: rotated !== undefined, ...(expiresIn === undefined ? {} : { expiresIn }) }),
    );
    if (!stored) throw missing(upstreamId, 'the credential was revoked or replaced while it was refreshed');
    return json.access_token;
  };

  return {
    upstreams: new Set(deps.upstreams.keys()),

    async connect(user, upstreamId, input, actor) {
      known(upstreamId);
      const now = deps.clock.now();
      const existing = await deps.store.get(upstreamId, user);
      const record: UserCredentialRecord = {
        upstream: upstreamId,
        user,
        sealedAccessToken: await deps.seal(purposeOf('access', upstreamId, user), input.accessToken),
        ...(input.refreshToken === undefined ? {} : { sealedRefreshToken: await deps.seal(purposeOf('refresh', upstreamId, user), input.refreshToken) }),
        ...(input.expiresInSeconds === undefined ? {} : { expiresAt: now + input.expiresInSeconds * 1000 }),
        createdAt: existing === undefined || existing.revokedAt !== undefined ? now : existing.createdAt,
        updatedAt: now,
      };
      await deps.store.put(record, event('vault.connect', actor, upstreamId, user, { refreshable: input.refreshToken !== undefined, replaced: existing !== undefined && existing.revokedAt === undefined }));
      return view(record);
    },

    async list(user) {
      return (await deps.store.listByUser(user)).filter((r) => deps.upstreams.has(r.upstream)).map(view);
    },

    async revoke(user, upstreamId, actor) {
      return deps.store.revoke(upstreamId, user, deps.clock.now(), event('vault.revoke', actor, upstreamId, user));
    },

    async accessToken(upstreamId, caller) {
      known(upstreamId);
      if (caller.iss === undefined || caller.sub === undefined) throw missing(upstreamId, 'the mandate names no user (with their issuer) whose credential could be used');
      const user: VaultUser = { iss: caller.iss, sub: caller.sub };
      const row = await deps.store.get(upstreamId, user);
      if (row === undefined) throw missing(upstreamId, 'the user has not connected a credential');
      if (row.revokedAt !== undefined) throw missing(upstreamId, 'the user\'s credential was revoked');
      if (row.expiresAt === undefined || row.expiresAt - skewMs > deps.clock.now()) return deps.open(purposeOf('access', upstreamId, user), row.sealedAccessToken);
      const key = JSON.stringify([upstreamId, user.iss, user.sub]);
      const running = inflight.get(key);
      if (running !== undefined) return running;
      const next = refresh(upstreamId, user, row).finally(() => inflight.delete(key));
      inflight.set(key, next);
      return next;
    },
  };
}

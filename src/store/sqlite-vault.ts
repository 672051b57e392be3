/**
 * The SQLite implementation of the gateway vault (`VaultStore`, table `user_credentials`, migration 7). Tokens
 * arrive sealed under the KEK; every write commits with its audit event in one transaction on the main connection.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { parseNewAuditEvent, type NewAuditEventV1 } from '../audit/audit-event.ts';
import type { AuditInsertFn, SqliteRun } from './sqlite-identity.ts';
import type { UserCredentialRecord, VaultStore, VaultUser } from './store.ts';

interface CredentialRow {
  upstream: string;
  user_iss: string;
  user_sub: string;
  sealed_access_token: string;
  sealed_refresh_token: string | null;
  expires_at: number | null;
  created_at: number;
  updated_at: number;
  revoked_at: number | null;
}

function from(r: CredentialRow): UserCredentialRecord {
  return {
    upstream: r.upstream,
    user: { iss: r.user_iss, sub: r.user_sub },
    sealedAccessToken: r.sealed_access_token,
    ...(r.sealed_refresh_token === null ? {} : { sealedRefreshToken: r.sealed_refresh_token }),
    ...(r.expires_at === null ? {} : { expiresAt: r.expires_at }),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    ...(r.revoked_at === null ? {} : { revokedAt: r.revoked_at }),
  };
}

/** Builds the vault store over one connection; `insertAudit` writes inside the caller's transaction. */
export function createSqliteVaultStore(db: BetterSqlite3.Database, run: SqliteRun, insertAudit: AuditInsertFn): VaultStore {
  const stmt = {
    upsert: db.prepare(
      `INSERT INTO user_credentials (upstream, user_iss, user_sub, sealed_access_token, sealed_refresh_token, expires_at, created_at, updated_at, revoked_at)
       VALUES (@upstream, @user_iss, @user_sub, @access, @refresh, @expires_at, @created_at, @updated_at, NULL)
       ON CONFLICT (upstream, user_iss, user_sub) DO UPDATE SET
         sealed_access_token = excluded.sealed_access_token, sealed_refresh_token = excluded.sealed_refresh_token,
         expires_at = excluded.expires_at, updated_at = excluded.updated_at, revoked_at = NULL,
         created_at = CASE WHEN user_credentials.revoked_at IS NULL THEN user_credentials.created_at ELSE excluded.created_at END`,
    ),
    get: db.prepare<[string, string, string], CredentialRow>('SELECT * FROM user_credentials WHERE upstream = ? AND user_iss = ? AND user_sub = ?'),
    byUser: db.prepare<[string, string], CredentialRow>('SELECT * FROM user_credentials WHERE user_iss = ? AND user_sub = ? AND revoked_at IS NULL ORDER BY upstream'),
    refresh: db.prepare(
      `UPDATE user_credentials SET sealed_access_token = @access, sealed_refresh_token = @refresh, expires_at = @expires_at, updated_at = @at
       WHERE upstream = @upstream AND user_iss = @user_iss AND user_sub = @user_sub AND updated_at = @expected AND revoked_at IS NULL`,
    ),
    // A revoked row keeps no token, sealed or not.
    revoke: db.prepare(
      `UPDATE user_credentials SET sealed_access_token = '', sealed_refresh_token = NULL, revoked_at = @at, updated_at = @at
       WHERE upstream = @upstream AND user_iss = @user_iss AND user_sub = @user_sub AND revoked_at IS NULL`,
    ),
  };
  const withAudit = db.transaction((fn: () => boolean, event: NewAuditEventV1): boolean => {
    if (!fn()) return false;
    insertAudit(event);
    return true;
  });
  const key = (upstream: string, user: VaultUser) => ({ upstream, user_iss: user.iss, user_sub: user.sub });
  return {
    put: async (c, event) => {
      const parsed = parseNewAuditEvent(event);
      run('vault.put', () =>
        withAudit.immediate(() => {
          stmt.upsert.run({ ...key(c.upstream, c.user), access: c.sealedAccessToken, refresh: c.sealedRefreshToken ?? null, expires_at: c.expiresAt ?? null, created_at: c.createdAt, updated_at: c.updatedAt });
          return true;
        }, parsed),
      );
    },
    get: async (upstream, user) =>
      run('vault.get', () => {
        const r = stmt.get.get(upstream, user.iss, user.sub);
        return r === undefined ? undefined : from(r);
      }),
    listByUser: async (user) => run('vault.listByUser', () => stmt.byUser.all(user.iss, user.sub).map(from)),
    refresh: async (upstream, user, expected, next, event) => {
      const parsed = parseNewAuditEvent(event);
      return run('vault.refresh', () =>
        withAudit.immediate(
          () => stmt.refresh.run({ ...key(upstream, user), access: next.sealedAccessToken, refresh: next.sealedRefreshToken ?? null, expires_at: next.expiresAt ?? null, at: next.atMs, expected }).changes === 1,
          parsed,
        ),
      );
    },
    revoke: async (upstream, user, atMs, event) => {
      const parsed = parseNewAuditEvent(event);
      return run('vault.revoke', () => withAudit.immediate(() => stmt.revoke.run({ ...key(upstream, user), at: atMs }).changes === 1, parsed));
    },
  };
}

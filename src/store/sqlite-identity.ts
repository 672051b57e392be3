/**
 * The SQLite implementation of the identity and token tables: replay ids, the principal registry, signing keys
 * and issued tokens. Every write that has an audit event commits it in the same transaction, on the main
 * connection (DESIGN.md "Audit durability": issuance and revocation events commit with what they record).
 */
import type BetterSqlite3 from 'better-sqlite3';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { parseNewAuditEvent, type NewAuditEventV1 } from '../audit/audit-event.ts';
import { ConflictError } from '../core/errors.ts';
import type { Clock } from '../core/ports.ts';
import type { PrincipalCredential } from '../identity/types.ts';
import type {
  IssuedTokenRecord,
  PrincipalPatch,
  PrincipalRecord,
  PrincipalStore,
  ReplayStore,
  SigningKeyStore,
  StoredSigningKey,
  TokenStore,
} from './store.ts';

/** Runs one synchronous operation, mapping driver failures to `StoreUnavailableError` (the store's `#run`). */
export type SqliteRun = <T>(op: string, fn: () => T) => T;

/** Writes one audit event on the main connection (inside the caller's transaction). */
export type AuditInsertFn = (event: NewAuditEventV1) => void;

/** The identity and token stores over one connection. */
export interface SqliteIdentityStores {
  replay: ReplayStore;
  principals: PrincipalStore;
  signingKeys: SigningKeyStore;
  tokens: TokenStore;
  /** Writes an issued token's row inside the caller's transaction (tasks open and renew with it). */
  insertToken: (token: IssuedTokenRecord) => void;
}

interface PrincipalRow {
  id: string;
  kind: 'agent' | 'service';
  name: string;
  owner: string;
  mode: 'chat' | 'autonomous' | null;
  workflows: string;
  audiences: string;
  api_scopes: string;
  status: PrincipalRecord['status'];
  dpop: PrincipalRecord['dpop'];
  source: PrincipalRecord['source'];
  created_at: number;
  updated_at: number;
  last_used_at: number | null;
}

interface CredentialRow {
  principal_id: string;
  type: PrincipalCredential['type'];
  key: string;
  value: string;
}

interface SigningKeyRow {
  kid: string;
  alg: string;
  public_jwk: string;
  encrypted_private_jwk: string;
  state: StoredSigningKey['state'];
  created_at: number;
  activated_at: number;
  retire_at: number | null;
}

interface TokenRow {
  jti: string;
  client_id: string;
  subject: string;
  actors: string;
  audience: string;
  scope: string;
  jkt: string | null;
  task_id: string | null;
  parent_jti: string | null;
  issued_at: number;
  expires_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
}

/** A credential split into rows: a JWKS gives one row per key, keyed by its RFC 7638 thumbprint. */
async function credentialRows(principalId: string, credentials: readonly PrincipalCredential[]): Promise<CredentialRow[]> {
  const rows: CredentialRow[] = [];
  for (const c of credentials) {
    switch (c.type) {
      case 'spiffe':
        rows.push({ principal_id: principalId, type: 'spiffe', key: `spiffe:${c.spiffeId}`, value: JSON.stringify({ spiffeId: c.spiffeId }) });
        break;
      case 'jwks_uri':
        rows.push({ principal_id: principalId, type: 'jwks_uri', key: `jwks_uri:${c.uri}`, value: JSON.stringify({ uri: c.uri }) });
        break;
      case 'client_secret':
        rows.push({ principal_id: principalId, type: 'client_secret', key: `secret:${c.hash}`, value: JSON.stringify({ hash: c.hash }) });
        break;
      case 'jwks':
        for (const jwk of c.jwks.keys) {
          rows.push({ principal_id: principalId, type: 'jwks', key: `jwk:${await calculateJwkThumbprint(jwk as JWK)}`, value: JSON.stringify(jwk) });
        }
        break;
      default: {
        const never: never = c;
        throw new TypeError(`unknown credential type ${JSON.stringify(never)}`);
      }
    }
  }
  const seen = new Set<string>();
  for (const r of rows) {
    if (seen.has(r.key)) throw new ConflictError(`principal ${principalId} lists the same credential twice (${r.type})`);
    seen.add(r.key);
  }
  return rows;
}

/** Rows back to credentials; the keys of every `jwks` row form one JWKS credential. */
function credentialsFrom(rows: readonly CredentialRow[]): PrincipalCredential[] {
  const out: PrincipalCredential[] = [];
  const keys: JWK[] = [];
  for (const r of rows) {
    const v = JSON.parse(r.value) as Record<string, unknown>;
    if (r.type === 'spiffe') out.push({ type: 'spiffe', spiffeId: v.spiffeId as string });
    else if (r.type === 'jwks_uri') out.push({ type: 'jwks_uri', uri: v.uri as string });
    else if (r.type === 'client_secret') out.push({ type: 'client_secret', hash: v.hash as string });
    else keys.push(v as JWK);
  }
  if (keys.length > 0) out.push({ type: 'jwks', jwks: { keys } });
  return out;
}

function principalFrom(r: PrincipalRow, creds: readonly CredentialRow[]): PrincipalRecord {
  return {
    id: r.id,
    kind: r.kind,
    name: r.name,
    owner: r.owner,
    ...(r.mode === null ? {} : { mode: r.mode }),
    workflows: JSON.parse(r.workflows) as string[],
    audiences: JSON.parse(r.audiences) as string[],
    apiScopes: JSON.parse(r.api_scopes) as string[],
    credentials: credentialsFrom(creds),
    status: r.status,
    dpop: r.dpop,
    source: r.source,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    ...(r.last_used_at === null ? {} : { lastUsedAt: r.last_used_at }),
  };
}

function tokenFrom(r: TokenRow): IssuedTokenRecord {
  return {
    jti: r.jti,
    clientId: r.client_id,
    subject: r.subject,
    actors: JSON.parse(r.actors) as string[],
    audience: r.audience,
    scope: r.scope,
    ...(r.jkt === null ? {} : { jkt: r.jkt }),
    ...(r.task_id === null ? {} : { taskId: r.task_id }),
    ...(r.parent_jti === null ? {} : { parentJti: r.parent_jti }),
    issuedAt: r.issued_at,
    expiresAt: r.expires_at,
    ...(r.revoked_at === null ? {} : { revokedAt: r.revoked_at }),
    ...(r.revoked_reason === null ? {} : { revokedReason: r.revoked_reason }),
  };
}

function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

// Prune expired replay ids every this many inserts, at most this many rows at a time (bounded work per call).
const PRUNE_EVERY = 256;
const PRUNE_LIMIT = 1024;

/** Builds the identity and token stores on `db`; `run` maps driver failures, `insertAudit` writes an event. */
export function createSqliteIdentityStores(db: BetterSqlite3.Database, run: SqliteRun, insertAudit: AuditInsertFn, clock: Clock): SqliteIdentityStores {
  const stmt = {
    replayInsert: db.prepare<[string, string, number]>('INSERT INTO replay_ids (namespace, id, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
    replayGet: db.prepare<[string, string], { expires_at: number }>('SELECT expires_at FROM replay_ids WHERE namespace = ? AND id = ?'),
    replayRenew: db.prepare<[number, string, string]>('UPDATE replay_ids SET expires_at = ? WHERE namespace = ? AND id = ?'),
    replayPrune: db.prepare<[number, number]>('DELETE FROM replay_ids WHERE (namespace, id) IN (SELECT namespace, id FROM replay_ids WHERE expires_at < ? LIMIT ?)'),
    principalGet: db.prepare<[string], PrincipalRow>('SELECT * FROM principals WHERE id = ?'),
    principalList: db.prepare<[], PrincipalRow>('SELECT * FROM principals ORDER BY id'),
    principalInsert: db.prepare(
      `INSERT INTO principals (id, kind, name, owner, mode, workflows, audiences, api_scopes, status, dpop, source, created_at, updated_at, last_used_at)
       VALUES (@id, @kind, @name, @owner, @mode, @workflows, @audiences, @api_scopes, @status, @dpop, @source, @created_at, @updated_at, @last_used_at)`,
    ),
    principalUpdate: db.prepare(
      `UPDATE principals SET name = @name, owner = @owner, mode = @mode, workflows = @workflows, audiences = @audiences, api_scopes = @api_scopes,
         status = @status, dpop = @dpop, source = @source, updated_at = @updated_at WHERE id = @id`,
    ),
    principalTouch: db.prepare<[number, string, number]>('UPDATE principals SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)'),
    credsOf: db.prepare<[string], CredentialRow>('SELECT * FROM principal_credentials WHERE principal_id = ? ORDER BY rowid'),
    credsAll: db.prepare<[], CredentialRow>('SELECT * FROM principal_credentials ORDER BY rowid'),
    credByKey: db.prepare<[string], CredentialRow>('SELECT * FROM principal_credentials WHERE key = ?'),
    credInsert: db.prepare('INSERT INTO principal_credentials (principal_id, type, key, value) VALUES (@principal_id, @type, @key, @value)'),
    credDelete: db.prepare<[string]>('DELETE FROM principal_credentials WHERE principal_id = ?'),
    keyList: db.prepare<[], SigningKeyRow>('SELECT * FROM signing_keys ORDER BY activated_at, kid'),
    keyInsert: db.prepare(
      `INSERT INTO signing_keys (kid, alg, public_jwk, encrypted_private_jwk, state, created_at, activated_at, retire_at)
       VALUES (@kid, @alg, @public_jwk, @encrypted_private_jwk, @state, @created_at, @activated_at, @retire_at)`,
    ),
    keyGet: db.prepare<[string], SigningKeyRow>('SELECT * FROM signing_keys WHERE kid = ?'),
    keyUpdate: db.prepare<[string, number | null, string]>('UPDATE signing_keys SET state = ?, retire_at = ? WHERE kid = ?'),
    tokenInsert: db.prepare(
      `INSERT INTO issued_tokens (jti, client_id, subject, actors, audience, scope, jkt, task_id, parent_jti, issued_at, expires_at, revoked_at, revoked_reason)
       VALUES (@jti, @client_id, @subject, @actors, @audience, @scope, @jkt, @task_id, @parent_jti, @issued_at, @expires_at, NULL, NULL)`,
    ),
    tokenGet: db.prepare<[string], TokenRow>('SELECT * FROM issued_tokens WHERE jti = ?'),
    tokenRevoke: db.prepare<[number, string, string]>('UPDATE issued_tokens SET revoked_at = ?, revoked_reason = ? WHERE jti = ? AND revoked_at IS NULL'),
    // The revocation feed (migration 4) is what other nodes apply: a revoked token and a stopped principal go in it.
    feedInsert: db.prepare<[string, string, number, string]>('INSERT INTO revocations (kind, target, at, reason) VALUES (?, ?, ?, ?)'),
  };

  let replayInserts = 0;
  const replayUse = db.transaction((namespace: string, id: string, expiresAt: number, now: number): boolean => {
    if (stmt.replayInsert.run(namespace, id, expiresAt).changes === 1) return true;
    // An id whose earlier use has expired (not yet pruned) is the same id again: still a replay within the
    // window of its new use only if the old record is live. Expired records are renewed, not counted.
    const old = stmt.replayGet.get(namespace, id);
    if (old !== undefined && old.expires_at < now) {
      stmt.replayRenew.run(expiresAt, namespace, id);
      return true;
    }
    return false;
  });

  const loadPrincipal = (id: string): PrincipalRecord | undefined => {
    const row = stmt.principalGet.get(id);
    return row === undefined ? undefined : principalFrom(row, stmt.credsOf.all(id));
  };

  const conflictFor = (err: unknown, what: string): unknown => {
    if (!isUniqueViolation(err)) return err;
    return new ConflictError(what, { cause: err });
  };

  const writeCredentials = (id: string, rows: readonly CredentialRow[]) => {
    for (const r of rows) {
      const holder = stmt.credByKey.get(r.key);
      if (holder !== undefined && holder.principal_id !== id) {
        throw new ConflictError(`a ${r.type} credential of ${id} is already registered to another principal; one credential belongs to one principal`, {
          detail: `credential key held by ${holder.principal_id}`,
        });
      }
      stmt.credInsert.run(r);
    }
  };

  const createTx = db.transaction((p: PrincipalRecord, rows: readonly CredentialRow[], event: NewAuditEventV1) => {
    if (stmt.principalGet.get(p.id) !== undefined) throw new ConflictError(`a principal with id ${p.id} is already registered`);
    stmt.principalInsert.run({
      id: p.id,
      kind: p.kind,
      name: p.name,
      owner: p.owner,
      mode: p.mode ?? null,
      workflows: JSON.stringify(p.workflows),
      audiences: JSON.stringify(p.audiences),
      api_scopes: JSON.stringify(p.apiScopes),
      status: p.status,
      dpop: p.dpop,
      source: p.source,
      created_at: p.createdAt,
      updated_at: p.updatedAt,
      last_used_at: p.lastUsedAt ?? null,
    });
    writeCredentials(p.id, rows);
    insertAudit(event);
  });

  const updateTx = db.transaction((id: string, patch: PrincipalPatch, rows: readonly CredentialRow[] | undefined, atMs: number, event: NewAuditEventV1) => {
    const current = loadPrincipal(id);
    if (current === undefined) return undefined;
    const mode = patch.mode ?? current.mode;
    stmt.principalUpdate.run({
      id,
      name: patch.name ?? current.name,
      owner: patch.owner ?? current.owner,
      mode: mode ?? null,
      workflows: JSON.stringify(patch.workflows ?? current.workflows),
      audiences: JSON.stringify(patch.audiences ?? current.audiences),
      api_scopes: JSON.stringify(patch.apiScopes ?? current.apiScopes),
      status: patch.status ?? current.status,
      dpop: patch.dpop ?? current.dpop,
      source: patch.source ?? current.source,
      updated_at: atMs,
    });
    if (rows !== undefined) {
      stmt.credDelete.run(id);
      writeCredentials(id, rows);
    }
    if (patch.status !== undefined && patch.status !== current.status && patch.status !== 'active') stmt.feedInsert.run('principal', id, atMs, patch.status);
    insertAudit(event);
    return loadPrincipal(id);
  });

  const principals: PrincipalStore = {
    get: async (id) => run('principals.get', () => loadPrincipal(id)),
    bySpiffeId: async (spiffeId) =>
      run('principals.bySpiffeId', () => {
        const cred = stmt.credByKey.get(`spiffe:${spiffeId}`);
        return cred === undefined ? undefined : loadPrincipal(cred.principal_id);
      }),
    list: async (filter = {}) =>
      run('principals.list', () => {
        const creds = new Map<string, CredentialRow[]>();
        for (const c of stmt.credsAll.all()) {
          const list = creds.get(c.principal_id) ?? [];
          list.push(c);
          creds.set(c.principal_id, list);
        }
        return stmt.principalList
          .all()
          .filter((r) => (filter.kind === undefined || r.kind === filter.kind) && (filter.status === undefined || r.status === filter.status))
          .map((r) => principalFrom(r, creds.get(r.id) ?? []));
      }),
    create: async (p, event) => {
      const parsed = parseNewAuditEvent(event);
      const rows = await credentialRows(p.id, p.credentials);
      run('principals.create', () => {
        try {
          createTx.immediate(p, rows, parsed);
        } catch (err) {
          throw conflictFor(err, `a principal with id ${p.id} or one of its credentials is already registered`);
        }
      });
    },
    update: async (id, patch, atMs, event) => {
      const parsed = parseNewAuditEvent(event);
      const rows = patch.credentials === undefined ? undefined : await credentialRows(id, patch.credentials);
      return run('principals.update', () => {
        try {
          return updateTx.immediate(id, patch, rows, atMs, parsed);
        } catch (err) {
          throw conflictFor(err, `a credential of ${id} is already registered to another principal`);
        }
      });
    },
    touch: async (id, atMs) => {
      // Coarse (one write per principal per minute at most): last-used is for inventory, not for security.
      run('principals.touch', () => stmt.principalTouch.run(atMs, id, atMs - 60_000));
    },
  };

  const keyTx = db.transaction((fn: () => void, event: NewAuditEventV1 | undefined) => {
    fn();
    if (event !== undefined) insertAudit(event);
  });

  const signingKeys: SigningKeyStore = {
    list: async () =>
      run('signingKeys.list', () =>
        stmt.keyList.all().map(
          (r): StoredSigningKey => ({
            kid: r.kid,
            alg: r.alg as StoredSigningKey['alg'],
            publicJwk: JSON.parse(r.public_jwk) as JWK,
            encryptedPrivateJwk: r.encrypted_private_jwk,
            state: r.state,
            createdAt: r.created_at,
            activatedAt: r.activated_at,
            ...(r.retire_at === null ? {} : { retireAt: r.retire_at }),
          }),
        ),
      ),
    insert: async (k, event) => {
      if ('d' in k.publicJwk) throw new TypeError('signingKeys.insert: publicJwk holds a private part');
      const parsed = event === undefined ? undefined : parseNewAuditEvent(event);
      run('signingKeys.insert', () => {
        try {
          keyTx.immediate(() => {
            stmt.keyInsert.run({
              kid: k.kid,
              alg: k.alg,
              public_jwk: JSON.stringify(k.publicJwk),
              encrypted_private_jwk: k.encryptedPrivateJwk,
              state: k.state,
              created_at: k.createdAt,
              activated_at: k.activatedAt,
              retire_at: k.retireAt ?? null,
            });
          }, parsed);
        } catch (err) {
          throw conflictFor(err, `a signing key with kid ${k.kid} already exists`);
        }
      });
    },
    update: async (kid, patch, event) => {
      const parsed = event === undefined ? undefined : parseNewAuditEvent(event);
      run('signingKeys.update', () =>
        keyTx.immediate(() => {
          const cur = stmt.keyGet.get(kid);
          if (cur === undefined) throw new TypeError(`signingKeys.update: unknown kid ${kid}`);
          stmt.keyUpdate.run(patch.state ?? cur.state, patch.retireAt ?? cur.retire_at, kid);
        }, parsed),
      );
    },
  };

  const insertToken = (t: IssuedTokenRecord) =>
    stmt.tokenInsert.run({
      jti: t.jti,
      client_id: t.clientId,
      subject: t.subject,
      actors: JSON.stringify(t.actors),
      audience: t.audience,
      scope: t.scope,
      jkt: t.jkt ?? null,
      task_id: t.taskId ?? null,
      parent_jti: t.parentJti ?? null,
      issued_at: t.issuedAt,
      expires_at: t.expiresAt,
    });
  const recordTx = db.transaction((t: IssuedTokenRecord, event: NewAuditEventV1) => {
    insertToken(t);
    insertAudit(event);
  });
  const revokeTx = db.transaction((jti: string, atMs: number, reason: string, event: NewAuditEventV1): boolean => {
    if (stmt.tokenRevoke.run(atMs, reason, jti).changes !== 1) return false;
    stmt.feedInsert.run('token', jti, atMs, reason);
    insertAudit(event);
    return true;
  });

  const tokens: TokenStore = {
    record: async (t, event) => {
      const parsed = parseNewAuditEvent(event);
      run('tokens.record', () => {
        try {
          recordTx.immediate(t, parsed);
        } catch (err) {
          throw conflictFor(err, `a token with jti ${t.jti} was already issued`);
        }
      });
    },
    get: async (jti) =>
      run('tokens.get', () => {
        const r = stmt.tokenGet.get(jti);
        return r === undefined ? undefined : tokenFrom(r);
      }),
    revoke: async (jti, atMs, reason, event) => {
      const parsed = parseNewAuditEvent(event);
      return run('tokens.revoke', () => revokeTx.immediate(jti, atMs, reason, parsed));
    },
  };

  const replay: ReplayStore = {
    use: async (namespace, id, expiresAtMs) => {
      if (typeof namespace !== 'string' || namespace === '' || typeof id !== 'string' || id === '') {
        throw new TypeError('replay.use: namespace and id must be non-empty strings');
      }
      if (!Number.isSafeInteger(expiresAtMs)) throw new TypeError('replay.use: expiresAtMs must be an integer');
      const now = clock.now();
      return run('replay.use', () => {
        const first = replayUse.immediate(namespace, id, expiresAtMs, now);
        if (++replayInserts % PRUNE_EVERY === 0) stmt.replayPrune.run(now, PRUNE_LIMIT);
        return first;
      });
    },
  };

  return { replay, principals, signingKeys, tokens, insertToken };
}

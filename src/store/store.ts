/**
 * The one store interface. Everything is async and says nothing about SQL dialects, because the embedded
 * SQLite store (the default) and a PostgreSQL store (scale-out, later) both implement it (DESIGN.md layout).
 *
 * Failure contract, for every method: when the store cannot answer, the promise rejects with
 * `StoreUnavailableError` (the driver's own error kept as `cause`, for logs only), and callers fail closed.
 * Invalid arguments are the caller's programming mistake and throw `TypeError`.
 */
import type { AuditEventV1, NewAuditEventV1 } from '../audit/audit-event.ts';
import type { JWK } from 'jose';
import type { PrincipalCredential, RegisteredPrincipal } from '../identity/types.ts';

/** Which implementation backs a store. */
export type StoreDriver = 'sqlite';

/** Options for {@link AuditStore.list}. */
export interface AuditListOptions {
  /** Return only events with `seq` greater than this (a cursor: pass the last `seq` you saw). Default 0. */
  afterSeq?: number;
  /** Most events to return, 1..{@link MAX_AUDIT_LIST_LIMIT}. */
  limit: number;
}

/** Largest page {@link AuditStore.list} returns in one call. */
export const MAX_AUDIT_LIST_LIMIT = 10_000;

/** The append-only audit log table. */
export interface AuditStore {
  /**
   * Appends events in ONE transaction, all or nothing, assigning each a `seq` in array order. An event whose
   * `id` is already stored fails the whole call. Resolves only once the transaction is durably committed.
   */
  append(events: readonly NewAuditEventV1[]): Promise<void>;
  /** Reads events in `seq` order, starting after `afterSeq`. */
  list(options: AuditListOptions): Promise<AuditEventV1[]>;
  /** Number of stored events. */
  count(): Promise<number>;
}

/** A small key/value table for facts about the store itself (e.g. `created_at`). */
export interface MetaStore {
  /** The value stored under `key`, or undefined. */
  get(key: string): Promise<string | undefined>;
  /** Stores `value` under `key`, replacing any previous value. */
  set(key: string, value: string): Promise<void>;
}

/** Meta keys the store itself writes. */
export const META_CREATED_AT = 'created_at';

/**
 * One-time identifiers (JWT `jti`) until they expire; implements the identity capability's `ReplayCache`.
 * `use` resolves `true` the first time `(namespace, id)` is seen and `false` for a replay. Expired ids are
 * pruned as the table is written, so it stays bounded by the rate of unexpired ids.
 */
export interface ReplayStore {
  use(namespace: string, id: string, expiresAtMs: number): Promise<boolean>;
}

/** A registered principal as stored: the registry record plus where it came from. */
export interface PrincipalRecord extends RegisteredPrincipal {
  /** `config`: declared in mandate.yaml (the file is authoritative); `api`: registered through the admin API or CLI. */
  readonly source: 'config' | 'api';
  /** Epoch ms. */
  readonly updatedAt: number;
}

/** What may change on a registered principal. */
export interface PrincipalPatch {
  name?: string;
  owner?: string;
  mode?: 'chat' | 'autonomous';
  workflows?: readonly string[];
  audiences?: readonly string[];
  apiScopes?: readonly string[];
  credentials?: readonly PrincipalCredential[];
  status?: RegisteredPrincipal['status'];
  dpop?: RegisteredPrincipal['dpop'];
  source?: PrincipalRecord['source'];
}

/**
 * The principal registry. Every change commits together with its audit event (one transaction). A credential
 * belongs to at most one principal: registering a taken one rejects with `ConflictError`, as does a duplicate id.
 */
export interface PrincipalStore {
  get(id: string): Promise<PrincipalRecord | undefined>;
  bySpiffeId(spiffeId: string): Promise<PrincipalRecord | undefined>;
  list(filter?: { kind?: 'agent' | 'service'; status?: RegisteredPrincipal['status'] }): Promise<PrincipalRecord[]>;
  create(principal: PrincipalRecord, event: NewAuditEventV1): Promise<void>;
  /** Applies `patch`; resolves to the updated record, or undefined when `id` is unknown (nothing written). */
  update(id: string, patch: PrincipalPatch, atMs: number, event: NewAuditEventV1): Promise<PrincipalRecord | undefined>;
  /** Records a successful authentication (not audited here: the authentication itself is). */
  touch(id: string, atMs: number): Promise<void>;
}

/** A token signing key as stored; the private JWK only ever as a JWE under the key-encryption key. */
export interface StoredSigningKey {
  readonly kid: string;
  readonly alg: 'EdDSA' | 'ES256';
  readonly publicJwk: JWK;
  readonly encryptedPrivateJwk: string;
  readonly state: 'active' | 'retiring' | 'retired';
  readonly createdAt: number;
  readonly activatedAt: number;
  readonly retireAt?: number;
}

/** Signing keys. */
export interface SigningKeyStore {
  list(): Promise<StoredSigningKey[]>;
  insert(key: StoredSigningKey, event?: NewAuditEventV1): Promise<void>;
  update(kid: string, patch: { state?: StoredSigningKey['state']; retireAt?: number }, event?: NewAuditEventV1): Promise<void>;
}

/** A token Mandate issued (never the token itself). */
export interface IssuedTokenRecord {
  readonly jti: string;
  /** The OAuth client the token was issued to. */
  readonly clientId: string;
  /** `sub`: the user for a mandate, the client itself for client_credentials. */
  readonly subject: string;
  /** The actor chain, outermost (current) actor first; empty for client_credentials. */
  readonly actors: readonly string[];
  readonly audience: string;
  readonly scope: string;
  readonly jkt?: string;
  readonly taskId?: string;
  /** The mandate this one was exchanged from (re-delegation). */
  readonly parentJti?: string;
  /** Epoch ms. */
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly revokedAt?: number;
  readonly revokedReason?: string;
}

/** Issued tokens, for introspection and revocation. */
export interface TokenStore {
  /** Records an issued token and its issuance audit event in ONE transaction: no token without its event. */
  record(token: IssuedTokenRecord, event: NewAuditEventV1): Promise<void>;
  get(jti: string): Promise<IssuedTokenRecord | undefined>;
  /**
   * Revokes a token and writes its audit event in ONE transaction, durable before it resolves. Resolves `false`
   * (and writes nothing) when the token is unknown or already revoked.
   */
  revoke(jti: string, atMs: number, reason: string, event: NewAuditEventV1): Promise<boolean>;
}

/** Mandate's persistent state behind one async interface; implementations: `SqliteStore` (later: PostgreSQL). */
export interface Store {
  /** Which implementation this is. */
  readonly driver: StoreDriver;
  /** Resolves if the store can answer a query now; rejects with `StoreUnavailableError` otherwise (used by `/readyz`). */
  ping(): Promise<void>;
  /** Schema version of the opened database (the highest applied migration). */
  schemaVersion(): Promise<number>;
  /** The audit log. */
  readonly audit: AuditStore;
  /** Facts about the store. */
  readonly meta: MetaStore;
  /** One-time identifiers. */
  readonly replay: ReplayStore;
  /** Registered agents and services. */
  readonly principals: PrincipalStore;
  /** Token signing keys. */
  readonly signingKeys: SigningKeyStore;
  /** Issued tokens. */
  readonly tokens: TokenStore;
  /** Closes the store; idempotent. Calls after `close()` reject with `StoreUnavailableError`. */
  close(): Promise<void>;
}

/** The narrow port a writer of audit events needs (STYLE.md #3). */
export type AuditAppender = Pick<AuditStore, 'append'>;

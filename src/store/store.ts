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
import type { SsfStreamStore } from '../signals/stream-store.ts';

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

// ---------------------------------------------------------------------------------------------------------
// Tasks, task grants (refresh tokens), approvals, user status, revocations and lockdown (issue 5).

/** A task's state: `open`; `ended` (by the agent, a timeout or the user); `revoked` (by a context change). */
export type TaskStatus = 'open' | 'ended' | 'revoked';

/** One run of an approved workflow by an agent for a user: the task grant (consent) and its live state. */
export interface TaskRecord {
  readonly id: string;
  /** The user: (issuer, subject) from their IdP token. */
  readonly userIss: string;
  readonly userSub: string;
  /** The registered agent running the task (the OAuth client that opened it). */
  readonly agentId: string;
  readonly workflowId: string;
  /** The workflow version the task is bound to (content hash). */
  readonly workflowVersion: string;
  /** The purpose the agent stated when opening the task. */
  readonly purpose: string;
  readonly status: TaskStatus;
  /** Epoch ms. */
  readonly openedAt: number;
  /** The workflow's maximum duration, as a deadline (epoch ms). */
  readonly expiresAt: number;
  /** The workflow's idle timeout, ms. */
  readonly idleTimeoutMs: number;
  readonly lastActivityAt: number;
  readonly stepsTaken: number;
  /** Times (epoch ms) of the most recent steps, oldest first, for the rate limit (bounded). */
  readonly recentSteps: readonly number[];
  readonly endedAt?: number;
  /** A stable reason code (`ended_by_agent`, `max_duration`, `idle_timeout`, `agent_suspended`, …). */
  readonly endReason?: string;
  /** The user's Cedar attributes from their IdP token when the task opened (roles, email, department). */
  readonly userAttrs?: Readonly<Record<string, unknown>>;
}

/** A step's effect on the task's counters. */
export interface TaskStepUpdate {
  readonly stepsTaken: number;
  readonly recentSteps: readonly number[];
  readonly lastActivityAt: number;
}

/** Which open tasks a revocation closes. */
export type TaskSelector =
  | { readonly taskId: string }
  | { readonly agentId: string }
  | { readonly user: { readonly iss: string; readonly sub: string } }
  | { readonly workflowId: string }
  | { readonly all: true };

/**
 * A refresh token: the handle of a task grant. Only its SHA-256 is stored. It is rotated at every use; a second
 * use of a rotated one is a theft signal and revokes the task (RFC 9700 §4.14.2).
 */
export interface RefreshTokenRecord {
  /** base64url SHA-256 of the token. */
  readonly hash: string;
  readonly taskId: string;
  readonly clientId: string;
  /** The DPoP key the refresh token is bound to, when the client used DPoP (RFC 9449 §5). */
  readonly jkt?: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly usedAt?: number;
}

/** What rotating a refresh token came to. */
export type RefreshRotation = 'rotated' | 'reused' | 'unknown';

/** Tasks and their grants. Every change commits with its audit event; closing a task revokes all it holds. */
export interface TaskStore {
  /** Opens a task: the task, its refresh token and its first mandate's record, with the event, in ONE transaction. */
  open(task: TaskRecord, refresh: RefreshTokenRecord, token: IssuedTokenRecord, event: NewAuditEventV1): Promise<void>;
  get(id: string): Promise<TaskRecord | undefined>;
  list(filter?: { status?: TaskStatus; agentId?: string; limit?: number }): Promise<TaskRecord[]>;
  /**
   * Records a step if the task is still open and nobody recorded another step since it was read (`expectedSteps`);
   * resolves `false` otherwise (the caller re-reads and re-checks).
   */
  recordStep(id: string, expectedSteps: number, update: TaskStepUpdate): Promise<boolean>;
  /**
   * Closes the open tasks the selector names, in ONE transaction: each task's status, every unrevoked token
   * issued for it (mandates re-exchanged from them carry the task too), its refresh tokens, one revocation feed
   * entry per task and the event `eventFor` builds for it. Resolves the tasks it closed (none when none was open).
   */
  close(selector: TaskSelector, status: Exclude<TaskStatus, 'open'>, atMs: number, reason: string, eventFor: (task: TaskRecord) => NewAuditEventV1): Promise<TaskRecord[]>;
  /** A refresh token by its hash. */
  refreshToken(hash: string): Promise<RefreshTokenRecord | undefined>;
  /**
   * Rotates a refresh token in ONE transaction: marks `oldHash` used (only if unused), stores `next` and the new
   * mandate's record with its event. `reused` when `oldHash` was used before (nothing is written), `unknown` when
   * there is no such token.
   */
  rotate(oldHash: string, atMs: number, next: RefreshTokenRecord, token: IssuedTokenRecord, event: NewAuditEventV1): Promise<RefreshRotation>;
}

/** A person's approval of one exact call (step-up). */
export interface ApprovalRecord {
  readonly id: string;
  readonly taskId?: string;
  /** The user the call is made for, and the agents acting (outermost first). */
  readonly userIss?: string;
  readonly userSub: string;
  readonly actors: readonly string[];
  readonly action: string;
  readonly resource: { readonly type: string; readonly id: string };
  /** base64url SHA-256 of the canonical JSON of the call's arguments: the approval is for exactly these. */
  readonly argsHash: string;
  /** What the approver is shown: the action, the resource and a bounded summary of the arguments. */
  readonly summary: string;
  readonly status: 'pending' | 'approved' | 'denied' | 'expired' | 'used';
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly decidedAt?: number;
  readonly decidedBy?: string;
  readonly reason?: string;
  readonly usedAt?: number;
}

/** Approval requests. */
export interface ApprovalStore {
  create(approval: ApprovalRecord, event: NewAuditEventV1): Promise<void>;
  get(id: string): Promise<ApprovalRecord | undefined>;
  list(filter?: { status?: ApprovalRecord['status']; taskId?: string; limit?: number }): Promise<ApprovalRecord[]>;
  /** Approves or denies a pending, unexpired request; resolves the updated record, or undefined if it was not pending. */
  decide(id: string, decision: { status: 'approved' | 'denied'; by: string; reason?: string; atMs: number }, event: NewAuditEventV1): Promise<ApprovalRecord | undefined>;
  /** Uses an approved, unused, unexpired approval for exactly `argsHash` (single use); resolves whether it was used now. */
  consume(id: string, argsHash: string, atMs: number, event: NewAuditEventV1): Promise<boolean>;
}

/** Users Mandate was told to stop acting for (CAEP, the admin API). Users themselves live at the IdP. */
export interface UserStatusStore {
  /** Disables a user and closes their open tasks (revoked), in ONE transaction; resolves the tasks closed. */
  disable(user: { iss: string; sub: string }, atMs: number, reason: string, event: NewAuditEventV1, taskEvent: (task: TaskRecord) => NewAuditEventV1): Promise<TaskRecord[]>;
  enable(user: { iss: string; sub: string }, event: NewAuditEventV1): Promise<boolean>;
  isDisabled(user: { iss: string; sub: string }): Promise<boolean>;
  list(): Promise<Array<{ iss: string; sub: string; disabledAt: number; reason: string }>>;
}

/** One entry of the revocation feed: what other nodes (a later issue: through PostgreSQL) must apply. */
export interface RevocationEntry {
  readonly seq: number;
  readonly kind: 'task' | 'token' | 'principal' | 'user' | 'lockdown';
  readonly target: string;
  readonly atMs: number;
  readonly reason: string;
}

/** The break-glass switch. */
export interface LockdownState {
  readonly active: boolean;
  readonly since?: number;
  readonly by?: string;
  readonly reason?: string;
}

/** Lockdown: engaging it closes every open task and revokes every active mandate (not Mandate's own API tokens). */
export interface LockdownStore {
  get(): Promise<LockdownState>;
  /** Engages lockdown in ONE transaction with the revocations; resolves the tasks it closed. */
  engage(atMs: number, by: string, reason: string, apiAudience: string, event: NewAuditEventV1, taskEvent: (task: TaskRecord) => NewAuditEventV1): Promise<TaskRecord[]>;
  lift(atMs: number, by: string, event: NewAuditEventV1): Promise<boolean>;
}

/** The revocation feed (read side). */
export interface RevocationFeedStore {
  /** Entries after `afterSeq`, oldest first. */
  since(afterSeq: number, limit: number): Promise<RevocationEntry[]>;
}

/** The user whose credential a vault row holds: their IdP issuer and subject. */
export interface VaultUser {
  readonly iss: string;
  readonly sub: string;
}

/**
 * A credential a user connected for one gateway upstream (e.g. an OAuth access token for a SaaS API). The tokens
 * are compact JWEs sealed under the KEK by the caller; the store never sees a plaintext secret.
 */
export interface UserCredentialRecord {
  readonly upstream: string;
  readonly user: VaultUser;
  /** The access token, sealed (KEK); empty once revoked. */
  readonly sealedAccessToken: string;
  /** The refresh token, sealed (KEK), when the user connected one. */
  readonly sealedRefreshToken?: string;
  /** When the access token expires (epoch ms); absent when it was connected without `expires_in`. */
  readonly expiresAt?: number;
  /** Epoch ms. */
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly revokedAt?: number;
}

/** Per-user upstream credentials (the gateway vault). Every write commits with its audit event in one transaction. */
export interface VaultStore {
  /** Connects or replaces the user's credential for `record.upstream` (a revoked one is connected again). */
  put(record: UserCredentialRecord, event: NewAuditEventV1): Promise<void>;
  /** The row for this user and upstream, revoked or not. */
  get(upstream: string, user: VaultUser): Promise<UserCredentialRecord | undefined>;
  /** The user's rows that are not revoked, by upstream. */
  listByUser(user: VaultUser): Promise<UserCredentialRecord[]>;
  /**
   * Stores refreshed tokens if the row is still the one that was read (`expectedUpdatedAt`) and not revoked;
   * resolves whether it was stored (false: a revocation or another refresh came first).
   */
  refresh(upstream: string, user: VaultUser, expectedUpdatedAt: number, next: { sealedAccessToken: string; sealedRefreshToken?: string; expiresAt?: number; atMs: number }, event: NewAuditEventV1): Promise<boolean>;
  /** Revokes the credential and wipes its sealed tokens; resolves false when there was none to revoke. */
  revoke(upstream: string, user: VaultUser, atMs: number, event: NewAuditEventV1): Promise<boolean>;
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
  /** Tasks and task grants. */
  readonly tasks: TaskStore;
  /** Approval requests. */
  readonly approvals: ApprovalStore;
  /** Disabled users. */
  readonly users: UserStatusStore;
  /** The revocation feed. */
  readonly revocations: RevocationFeedStore;
  /** The break-glass switch. */
  readonly lockdown: LockdownStore;
  /** Shared Signals streams Mandate transmits on. */
  readonly ssfStreams: SsfStreamStore;
  /** Per-user upstream credentials (the gateway vault). */
  readonly vault: VaultStore;
  /** Closes the store; idempotent. Calls after `close()` reject with `StoreUnavailableError`. */
  close(): Promise<void>;
}

/** The narrow port a writer of audit events needs (STYLE.md #3). */
export type AuditAppender = Pick<AuditStore, 'append'>;

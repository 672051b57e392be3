/**
 * The one store interface. Everything is async and says nothing about SQL dialects, because the embedded
 * SQLite store (the default) and a PostgreSQL store (scale-out, later) both implement it (DESIGN.md layout).
 *
 * Failure contract, for every method: when the store cannot answer, the promise rejects with
 * `StoreUnavailableError` (the driver's own error kept as `cause`, for logs only), and callers fail closed.
 * Invalid arguments are the caller's programming mistake and throw `TypeError`.
 */
import type { AuditEventV1, NewAuditEventV1 } from '../audit/audit-event.ts';

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
  /** Closes the store; idempotent. Calls after `close()` reject with `StoreUnavailableError`. */
  close(): Promise<void>;
}

/** The narrow port a writer of audit events needs (STYLE.md #3). */
export type AuditAppender = Pick<AuditStore, 'append'>;

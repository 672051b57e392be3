/**
 * The embedded default store, on better-sqlite3: one file in the data directory, WAL mode, versioned
 * migrations, prepared statements prepared once.
 *
 * better-sqlite3 is synchronous; most calls here are short (a few statements on a local file), so they run on
 * the event loop. Audit appends are the exception: they come at request rate and each commit waits for an
 * fsync, so by default a worker thread with its own connection commits them (`auditWriter: 'thread'`) and the
 * event loop keeps serving while a batch is made durable. The interface stays async so that PostgreSQL can
 * implement it.
 * Every SQLite error becomes `StoreUnavailableError` (fail closed), the original kept as `cause` for logs only.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { parseNewAuditEvent, type AuditEventV1, type NewAuditEventV1 } from '../audit/audit-event.ts';
import { isMandateError, StoreUnavailableError } from '../core/errors.ts';
import { systemClock, type Clock } from '../core/ports.ts';
import { migrateSqlite } from './migrate-sqlite.ts';
import { SqliteAuditWriter } from './sqlite-audit-writer.ts';
import { createSqliteIdentityStores } from './sqlite-identity.ts';
import { createSqliteTaskStores } from './sqlite-tasks.ts';
import { createSqliteStreamStore } from './sqlite-streams.ts';
import { createSqliteVaultStore } from './sqlite-vault.ts';
import type { SsfStreamStore } from '../signals/stream-store.ts';
import type { Migration } from './migrations/migration.ts';
import { sqliteMigrations } from './migrations/sqlite-migrations.ts';
import {
  MAX_AUDIT_LIST_LIMIT,
  META_CREATED_AT,
  type AuditListOptions,
  type AuditStore,
  type MetaStore,
  type PrincipalStore,
  type ReplayStore,
  type SigningKeyStore,
  type Store,
  type TokenStore,
  type TaskStore,
  type ApprovalStore,
  type VaultStore,
  type UserStatusStore,
  type RevocationFeedStore,
  type LockdownStore,
} from './store.ts';

/** Options for {@link openSqliteStore}. */
export interface SqliteStoreOptions {
  /** Directory holding the database; created with mode 0700 if missing. Resolved against the process cwd if relative. */
  dataDir: string;
  /** Database file name inside `dataDir` (a plain name, no directories). Default `mandate.db`. */
  file?: string;
  /**
   * How long a write waits for another connection's lock before failing with `StoreUnavailableError`.
   * better-sqlite3 waits synchronously, blocking the event loop, so keep this short. Default 1000.
   */
  busyTimeoutMs?: number;
  /** Clock for timestamps the store writes itself (migrations, meta). Default: the system clock. */
  clock?: Clock;
  /** Migrations to apply; default: every migration this build knows. Tests pass shorter or longer lists. */
  migrations?: readonly Migration[];
  /**
   * Where audit appends are committed: `thread` (default) — a worker thread with its own connection, so the
   * fsync of each commit does not block the event loop; `inline` — on the main connection, synchronously.
   */
  auditWriter?: 'thread' | 'inline';
}

const DEFAULT_FILE = 'mandate.db';
const DEFAULT_BUSY_TIMEOUT_MS = 1000;

interface AuditRow {
  seq: number;
  id: string;
  time: string;
  type: AuditEventV1['type'];
  outcome: AuditEventV1['outcome'];
  decision_id: string | null;
  trace_id: string | null;
  actor: string | null;
  subject: string | null;
  action: string | null;
  resource: string | null;
  policy_set_version: string | null;
  reasons: string | null;
  redacted: string;
  data: string | null;
}

type AuditInsert = Omit<AuditRow, 'seq'> & Record<string, string | null>;

function toRow(e: NewAuditEventV1): AuditInsert {
  return {
    id: e.id,
    time: e.time,
    type: e.type,
    outcome: e.outcome,
    decision_id: e.decisionId ?? null,
    trace_id: e.traceId ?? null,
    actor: e.actor ?? null,
    subject: e.subject ?? null,
    action: e.action ?? null,
    resource: e.resource ?? null,
    policy_set_version: e.policySetVersion ?? null,
    reasons: e.reasons === undefined ? null : JSON.stringify(e.reasons),
    redacted: JSON.stringify(e.redacted),
    data: e.data === undefined ? null : JSON.stringify(e.data),
  };
}

function fromRow(r: AuditRow): AuditEventV1 {
  const e: AuditEventV1 = {
    seq: r.seq,
    id: r.id,
    time: r.time,
    type: r.type,
    outcome: r.outcome,
    redacted: JSON.parse(r.redacted) as string[],
  };
  if (r.decision_id !== null) e.decisionId = r.decision_id;
  if (r.trace_id !== null) e.traceId = r.trace_id;
  if (r.actor !== null) e.actor = r.actor;
  if (r.subject !== null) e.subject = r.subject;
  if (r.action !== null) e.action = r.action;
  if (r.resource !== null) e.resource = r.resource;
  if (r.policy_set_version !== null) e.policySetVersion = r.policy_set_version;
  if (r.reasons !== null) e.reasons = JSON.parse(r.reasons) as string[];
  if (r.data !== null) e.data = JSON.parse(r.data) as AuditEventV1['data'];
  return e;
}

function describeSqliteError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

function unavailable(op: string, err: unknown): StoreUnavailableError {
  // The client sees only that the store is unavailable; which operation failed and why is for logs.
  return new StoreUnavailableError('The store is unavailable; the request was refused.', {
    detail: `sqlite ${op} failed: ${describeSqliteError(err)}`,
    cause: err,
  });
}

/** A `Store` backed by one SQLite file; create it with {@link openSqliteStore}. */
export class SqliteStore implements Store {
  /** Always `sqlite`. */
  readonly driver = 'sqlite' as const;
  /** Absolute path of the database file. */
  readonly path: string;
  /** The audit log table. */
  readonly audit: AuditStore;
  /** The meta table. */
  readonly meta: MetaStore;
  /** One-time identifiers. */
  readonly replay: ReplayStore;
  /** The principal registry. */
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
  /** Shared Signals streams. */
  readonly ssfStreams: SsfStreamStore;
  /** Per-user upstream credentials. */
  readonly vault: VaultStore;

  #db: BetterSqlite3.Database | undefined;
  readonly #clock: Clock;
  readonly #stmt: {
    ping: BetterSqlite3.Statement<[], { v: number | null }>;
    insertAudit: BetterSqlite3.Statement<[AuditInsert]>;
    listAudit: BetterSqlite3.Statement<[number, number], AuditRow>;
    countAudit: BetterSqlite3.Statement<[], { n: number }>;
    getMeta: BetterSqlite3.Statement<[string], { value: string }>;
    setMeta: BetterSqlite3.Statement<[string, string, string]>;
  };
  readonly #appendTx: (rows: readonly AuditInsert[]) => void;
  readonly #writer: SqliteAuditWriter | undefined;

  /**
   * Use {@link openSqliteStore}; this constructor expects an opened, migrated database, and the started audit
   * writer thread when audit appends should not run on the main connection.
   */
  constructor(db: BetterSqlite3.Database, path: string, clock: Clock, writer?: SqliteAuditWriter) {
    this.#db = db;
    this.#writer = writer;
    this.path = path;
    this.#clock = clock;
    this.#stmt = {
      ping: db.prepare('SELECT max(version) AS v FROM schema_migrations'),
      insertAudit: db.prepare(
        `INSERT INTO audit_events (id, time, type, outcome, decision_id, trace_id, actor, subject, action, resource,
           policy_set_version, reasons, redacted, data)
         VALUES (@id, @time, @type, @outcome, @decision_id, @trace_id, @actor, @subject, @action, @resource,
           @policy_set_version, @reasons, @redacted, @data)`,
      ),
      listAudit: db.prepare('SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?'),
      countAudit: db.prepare('SELECT count(*) AS n FROM audit_events'),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare(
        'INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
      ),
    };
    const insert = this.#stmt.insertAudit;
    const tx = db.transaction((rows: readonly AuditInsert[]) => {
      for (const row of rows) insert.run(row);
    });
    // IMMEDIATE takes the write lock at BEGIN, so a busy database fails before any work instead of mid-way.
    this.#appendTx = (rows) => tx.immediate(rows);

    this.audit = {
      append: async (events) => {
        if (!Array.isArray(events)) throw new TypeError('audit.append expects an array of events');
        const rows = events.map((e) => toRow(parseNewAuditEvent(e)));
        if (rows.length === 0) return;
        const writer = this.#writer;
        if (writer === undefined) {
          this.#run('audit.append', () => this.#appendTx(rows));
          return;
        }
        this.#run('audit.append', () => writer.check());
        await writer.append(rows);
      },
      list: async (options: AuditListOptions) => {
        const afterSeq = options.afterSeq ?? 0;
        if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) {
          throw new TypeError('audit.list: afterSeq must be a non-negative integer');
        }
        if (!Number.isSafeInteger(options.limit) || options.limit < 1 || options.limit > MAX_AUDIT_LIST_LIMIT) {
          throw new TypeError(`audit.list: limit must be an integer 1..${MAX_AUDIT_LIST_LIMIT}`);
        }
        return this.#run('audit.list', () => this.#stmt.listAudit.all(afterSeq, options.limit).map(fromRow));
      },
      count: async () => this.#run('audit.count', () => this.#stmt.countAudit.get()?.n ?? 0),
    };
    const identity = createSqliteIdentityStores(db, (op, fn) => this.#run(op, fn), (event) => insert.run(toRow(event)), clock);
    this.replay = identity.replay;
    this.principals = identity.principals;
    this.signingKeys = identity.signingKeys;
    this.tokens = identity.tokens;
    const taskStores = createSqliteTaskStores(db, (op, fn) => this.#run(op, fn), (event) => insert.run(toRow(event)), identity.insertToken);
    this.tasks = taskStores.tasks;
    this.approvals = taskStores.approvals;
    this.users = taskStores.users;
    this.revocations = taskStores.revocations;
    this.lockdown = taskStores.lockdown;
    this.ssfStreams = createSqliteStreamStore(db, (op, fn) => this.#run(op, fn));
    this.vault = createSqliteVaultStore(db, (op, fn) => this.#run(op, fn), (event) => insert.run(toRow(event)));
    this.meta = {
      get: async (key) => {
        if (typeof key !== 'string' || key === '') throw new TypeError('meta.get: key must be a non-empty string');
        return this.#run('meta.get', () => this.#stmt.getMeta.get(key)?.value);
      },
      set: async (key, value) => {
        if (typeof key !== 'string' || key === '') throw new TypeError('meta.set: key must be a non-empty string');
        if (typeof value !== 'string') throw new TypeError('meta.set: value must be a string');
        this.#run('meta.set', () => {
          this.#stmt.setMeta.run(key, value, new Date(this.#clock.now()).toISOString());
        });
      },
    };
  }

  /** Runs one synchronous SQLite operation, turning every failure into `StoreUnavailableError`. */
  #run<T>(op: string, fn: () => T): T {
    if (this.#db === undefined || !this.#db.open) {
      throw new StoreUnavailableError('The store is closed; the request was refused.', { detail: `sqlite ${op} after close` });
    }
    try {
      return fn();
    } catch (err) {
      if (isMandateError(err)) throw err;
      throw unavailable(op, err);
    }
  }

  /** Resolves when the database answers a query that reads the file; rejects with `StoreUnavailableError` otherwise. */
  async ping(): Promise<void> {
    this.#run('ping', () => {
      this.#writer?.check();
      this.#stmt.ping.get();
    });
  }

  /** The highest applied migration version. */
  async schemaVersion(): Promise<number> {
    return this.#run('schemaVersion', () => this.#stmt.ping.get()?.v ?? 0);
  }

  /** Waits for pending audit appends, then closes the writer thread and the database (checkpointing the WAL); idempotent. */
  async close(): Promise<void> {
    const db = this.#db;
    this.#db = undefined;
    if (db === undefined || !db.open) return;
    await this.#writer?.close();
    try {
      db.close();
    } catch (err) {
      throw unavailable('close', err);
    }
  }
}

/**
 * Opens (creating on first start) the SQLite store: makes the data directory (mode 0700), opens the file
 * (mode 0600 when new), sets WAL mode and the pragmas below, applies pending migrations, and prepares statements.
 * Rejects with `StoreUnavailableError` if any step fails, or if the database is newer than this build.
 * @see https://www.sqlite.org/wal.html
 * @see https://www.sqlite.org/pragma.html#pragma_synchronous
 */
export async function openSqliteStore(options: SqliteStoreOptions): Promise<SqliteStore> {
  const file = options.file ?? DEFAULT_FILE;
  if (typeof options.dataDir !== 'string' || options.dataDir === '') {
    throw new TypeError('openSqliteStore: dataDir must be a non-empty string');
  }
  if (!/^[^/\\]+$/.test(file) || file === '.' || file === '..') {
    throw new TypeError('openSqliteStore: file must be a plain file name without directories');
  }
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new TypeError('openSqliteStore: busyTimeoutMs must be a non-negative integer');
  }
  const clock = options.clock ?? systemClock;
  if (options.auditWriter !== undefined && options.auditWriter !== 'thread' && options.auditWriter !== 'inline') {
    throw new TypeError("openSqliteStore: auditWriter must be 'thread' or 'inline'");
  }
  const dataDir = isAbsolute(options.dataDir) ? options.dataDir : resolve(options.dataDir);
  const path = join(dataDir, file);

  try {
    // mkdir's mode is filtered by the umask; chmod afterwards so a new data dir is 0700 whatever the umask.
    const created = mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    if (created !== undefined) chmodSync(dataDir, 0o700);
  } catch (err) {
    throw new StoreUnavailableError(`Cannot create the data directory ${dataDir}.`, {
      detail: describeSqliteError(err),
      cause: err,
    });
  }

  const isNew = !existsSync(path);
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new Database(path, { timeout: busyTimeoutMs });
    // SQLite gives the -wal and -shm files the main file's permissions, so this covers all three.
    if (isNew) chmodSync(path, 0o600);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, not wal (filesystem without shared memory?)`);
    // FULL, not NORMAL: in WAL mode NORMAL can lose the last committed transactions on power loss or an OS
    // crash, and a resolved DecisionLog.record() or a revocation promises durability ("a crash loses no
    // committed record"). FULL fsyncs the WAL on every commit; group commit spreads that fsync over a batch.
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    // Schema SQL (triggers, views) may not call application functions: defence against a tampered file.
    db.pragma('trusted_schema = OFF');
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    migrateSqlite(db, options.migrations ?? sqliteMigrations, clock, path);
    db.prepare('INSERT OR IGNORE INTO meta (key, value, updated_at) VALUES (?, ?, ?)').run(
      META_CREATED_AT,
      new Date(clock.now()).toISOString(),
      new Date(clock.now()).toISOString(),
    );
    const writer = (options.auditWriter ?? 'thread') === 'thread' ? await SqliteAuditWriter.start(path, busyTimeoutMs) : undefined;
    return new SqliteStore(db, path, clock, writer);
  } catch (err) {
    try {
      db?.close();
    } catch {
      // Already failing; the original error is the one worth reporting.
    }
    if (isMandateError(err)) throw err;
    throw new StoreUnavailableError(`Cannot open the store at ${path}.`, {
      detail: describeSqliteError(err),
      cause: err,
    });
  }
}

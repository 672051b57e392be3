/**
 * The main-thread side of the SQLite audit writer: a worker thread (`sqlite-audit-worker.mjs`) with its own
 * connection commits audit batches, so the fsync of each group commit does not stall the event loop while
 * requests keep arriving — the next batch fills while the previous one is being made durable.
 *
 * Fail closed: if the worker cannot open the database, exits, or crashes, every pending and later append
 * rejects with `StoreUnavailableError`, and {@link SqliteAuditWriter.check} (used by the store's `ping`, hence
 * `/readyz`) says so. A dead writer is never silently replaced by an in-process one.
 */
import { Worker } from 'node:worker_threads';
import { StoreUnavailableError } from '../core/errors.ts';

/** A row as the worker inserts it (column names as in the `audit_events` table). */
export type AuditRowInsert = Record<string, string | null>;

type WorkerMessage =
  | { op: 'ready' }
  | { op: 'done'; id: number }
  | { op: 'failed'; id: number; code: string; message: string }
  | { op: 'closed' };

interface Pending {
  resolve: () => void;
  reject: (err: unknown) => void;
}

function unavailable(detail: string, cause?: unknown): StoreUnavailableError {
  return new StoreUnavailableError('The store is unavailable; the request was refused.', { detail, cause });
}

/** Commits audit rows through a dedicated worker thread; create it with {@link SqliteAuditWriter.start}. */
export class SqliteAuditWriter {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  readonly #inflight = new Set<Promise<void>>();
  #nextId = 1;
  #dead: StoreUnavailableError | undefined;
  #closing: Promise<void> | undefined;

  private constructor(worker: Worker) {
    this.#worker = worker;
  }

  /**
   * Starts the worker on the database at `path` (already created and migrated) and resolves once its
   * connection is open; rejects with `StoreUnavailableError` if it cannot open it.
   */
  static async start(path: string, busyTimeoutMs: number): Promise<SqliteAuditWriter> {
    const worker = new Worker(new URL('./sqlite-audit-worker.mjs', import.meta.url), {
      workerData: { path, busyTimeoutMs },
      // The worker is plain JavaScript: no loader flags needed, and none of the parent's are inherited.
      execArgv: [],
    });
    const writer = new SqliteAuditWriter(worker);
    await new Promise<void>((resolve, reject) => {
      const onMessage = (msg: WorkerMessage) => {
        if (msg.op === 'ready') {
          cleanup();
          resolve();
        } else if (msg.op === 'failed') {
          cleanup();
          reject(unavailable(`sqlite audit writer could not open the database: ${msg.code}: ${msg.message}`));
        }
      };
      const onError = (err: Error) => {
        cleanup();
        reject(unavailable(`sqlite audit writer failed to start: ${err.message}`, err));
      };
      const onExit = (code: number) => {
        cleanup();
        reject(unavailable(`sqlite audit writer exited with code ${code} while starting`));
      };
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    writer.#listen();
    worker.unref();
    return writer;
  }

  #listen(): void {
    this.#worker.on('message', (msg: WorkerMessage) => {
      if (msg.op === 'done' || msg.op === 'failed') {
        const p = this.#pending.get(msg.id);
        if (p === undefined) return;
        this.#pending.delete(msg.id);
        if (msg.op === 'done') p.resolve();
        // The driver's error crosses the thread as code and message; rebuilt here as the `cause`, for logs.
        else p.reject(unavailable(`sqlite audit.append failed: ${msg.code}: ${msg.message}`, Object.assign(new Error(msg.message), { code: msg.code })));
      }
    });
    this.#worker.on('error', (err) => this.#fail(unavailable(`sqlite audit writer crashed: ${err.message}`, err)));
    this.#worker.on('exit', (code) => {
      if (this.#closing === undefined) this.#fail(unavailable(`sqlite audit writer exited with code ${code}`));
      else this.#fail(unavailable('sqlite audit writer is closed'));
    });
  }

  #fail(err: StoreUnavailableError): void {
    this.#dead ??= err;
    for (const p of this.#pending.values()) p.reject(this.#dead);
    this.#pending.clear();
  }

  /** Commits `rows` in one IMMEDIATE transaction; resolves once it is durable. */
  append(rows: readonly AuditRowInsert[]): Promise<void> {
    if (this.#dead !== undefined) return Promise.reject(this.#dead);
    if (this.#closing !== undefined) return Promise.reject(unavailable('sqlite audit.append after close'));
    const id = this.#nextId++;
    // Referenced only while a commit is pending: an idle writer never keeps the process alive, and a pending
    // one always does (an awaited append must not be cut short by the process exiting).
    if (this.#pending.size === 0) this.#worker.ref();
    const done = new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ op: 'append', id, rows });
    });
    const settled: Promise<void> = done.then(
      () => this.#settled(settled),
      () => this.#settled(settled),
    );
    this.#inflight.add(settled);
    return done;
  }

  #settled(p: Promise<void>): void {
    this.#inflight.delete(p);
    // While closing or after a failure the thread is kept referenced until it has exited (close/terminate await it).
    if (this.#pending.size === 0 && this.#dead === undefined && this.#closing === undefined) this.#worker.unref();
  }

  /** Throws `StoreUnavailableError` if the writer has died (for the store's health check). */
  check(): void {
    if (this.#dead !== undefined) throw this.#dead;
  }

  /**
   * Stops the thread at once: pending appends reject (nothing is acknowledged that was not committed) and the
   * writer stays dead. For emergency shutdown, and for tests of the failure path.
   */
  async terminate(): Promise<void> {
    this.#fail(unavailable('sqlite audit writer was terminated'));
    this.#worker.ref();
    await this.#worker.terminate();
  }

  /** Waits for pending appends, closes the worker's connection and stops the thread; idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([...this.#inflight]);
      if (this.#dead !== undefined) return;
      this.#worker.ref();
      const exited = new Promise<void>((r) => this.#worker.once('exit', () => r()));
      this.#worker.postMessage({ op: 'close' });
      await exited;
    })();
    return this.#closing;
  }
}

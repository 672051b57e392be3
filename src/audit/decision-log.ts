/**
 * The decision log: a group-committing writer of audit events. Decision events arrive at request rate; one
 * durable (fsynced) transaction per event would cap throughput at the disk's fsync rate, so `record()` queues
 * the event and a flush commits everything queued in ONE store transaction, at most `maxDelayMs` later.
 *
 * Never dropped, never silently: `record()` resolves only after the event is durably committed, and rejects
 * (with `StoreUnavailableError`) when the queue is full, the store fails, or the log is closed. The caller then
 * refuses the request — requests are refused rather than unlogged (DESIGN.md "Audit durability"). Every refusal
 * is counted, for metrics (STYLE.md #12).
 */
import { isMandateError, StoreUnavailableError } from '../core/errors.ts';
import type { AuditAppender } from '../store/store.ts';
import { parseNewAuditEvent, type NewAuditEventV1 } from './audit-event.ts';

/** Tuning for {@link DecisionLog}; the defaults match the `audit` section of the configuration. */
export interface DecisionLogOptions {
  /** Longest an event waits in the queue before a flush starts, in milliseconds (0..1000). Default 0: the flush starts once the current turn of the event loop ends, and events arriving while a commit runs form the next batch. */
  maxDelayMs?: number;
  /** Most events committed in one transaction; a full batch flushes at once. Default 256. */
  maxBatch?: number;
  /** Most events queued or being committed; beyond it `record()` rejects at once. Default 10000. */
  maxPending?: number;
}

/** Counters for metrics; all are totals since the log was created, except `pending`. */
export interface DecisionLogStats {
  /** Events durably committed (by `record()` and `appendNow()`). */
  readonly committed: number;
  /** Store transactions issued by group commit. */
  readonly batches: number;
  /** Events queued or being committed right now (a gauge). */
  readonly pending: number;
  /** Events refused, by reason. Each one made its caller refuse a request; none was written. */
  readonly refused: {
    /** The queue held `maxPending` events already. */
    readonly queueFull: number;
    /** The store failed the transaction that held the event. */
    readonly storeFailure: number;
    /** `record()` was called after `close()`. */
    readonly closed: number;
    /** The event failed schema validation (a producer bug). */
    readonly invalid: number;
  };
}

interface Waiter {
  readonly event: NewAuditEventV1;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

function intOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new TypeError(`DecisionLog: ${name} must be an integer ${min}..${max}`);
  }
  return v;
}

function storeFailure(err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError('The audit log could not record the event; the request was refused.', {
    detail: isMandateError(err) ? `${err.code}: ${err.detail ?? err.description}` : String(err),
    cause: err,
  });
}

/**
 * Group-commits audit events to a store.
 * @example
 * const log = new DecisionLog(store.audit, { maxDelayMs: 0, maxBatch: 256, maxPending: 10_000 });
 * await log.record(event); // durably committed; on rejection, refuse the request
 */
export class DecisionLog {
  readonly #store: AuditAppender;
  readonly #maxDelayMs: number;
  readonly #maxBatch: number;
  readonly #maxPending: number;

  #queue: Waiter[] = [];
  // Ids queued or in flight: a duplicate would fail the whole batch in the store, taking innocent events with it.
  readonly #pendingIds = new Set<string>();
  #inFlight = 0;
  #flushing: Promise<void> | undefined;
  #cancelTimer: (() => void) | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  #committed = 0;
  #batches = 0;
  #refusedQueueFull = 0;
  #refusedStoreFailure = 0;
  #refusedClosed = 0;
  #refusedInvalid = 0;

  /** Creates a log writing to `store` (only its `append` is used). */
  constructor(store: AuditAppender, options: DecisionLogOptions = {}) {
    this.#store = store;
    this.#maxDelayMs = intOption('maxDelayMs', options.maxDelayMs, 0, 0, 1000);
    this.#maxBatch = intOption('maxBatch', options.maxBatch, 256, 1, 100_000);
    this.#maxPending = intOption('maxPending', options.maxPending, 10_000, 1, 10_000_000);
  }

  /**
   * Queues an event for the next group commit; resolves once it is durably committed. Rejects with
   * `StoreUnavailableError` when the queue is full, the store fails or the log is closed (the caller must then
   * refuse its request), and with `TypeError` when the event is invalid.
   */
  record(event: NewAuditEventV1): Promise<void> {
    if (this.#closed) {
      this.#refusedClosed++;
      return Promise.reject(
        new StoreUnavailableError('The audit log is shutting down; the request was refused.', { detail: 'record after close' }),
      );
    }
    let parsed: NewAuditEventV1;
    try {
      parsed = parseNewAuditEvent(event);
      if (this.#pendingIds.has(parsed.id)) throw new TypeError(`audit event id ${parsed.id} is already queued`);
    } catch (err) {
      this.#refusedInvalid++;
      return Promise.reject(err);
    }
    if (this.pending >= this.#maxPending) {
      this.#refusedQueueFull++;
      return Promise.reject(
        new StoreUnavailableError('The audit log cannot keep up; the request was refused rather than left unlogged.', {
          detail: `decision log queue full (maxPending=${this.#maxPending})`,
        }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.#pendingIds.add(parsed.id);
      this.#queue.push({ event: parsed, resolve, reject });
      this.#schedule();
    });
  }

  /**
   * Appends one event in its own transaction at once, bypassing the queue (for rare events that must be
   * durable before the caller goes on, e.g. a policy load). Rejects like {@link DecisionLog.record}.
   */
  async appendNow(event: NewAuditEventV1): Promise<void> {
    if (this.#closed) {
      this.#refusedClosed++;
      throw new StoreUnavailableError('The audit log is shutting down; the request was refused.', { detail: 'appendNow after close' });
    }
    let parsed: NewAuditEventV1;
    try {
      parsed = parseNewAuditEvent(event);
    } catch (err) {
      this.#refusedInvalid++;
      throw err;
    }
    try {
      await this.#store.append([parsed]);
    } catch (err) {
      this.#refusedStoreFailure++;
      throw storeFailure(err);
    }
    this.#committed++;
  }

  /** Events queued or being committed right now. */
  get pending(): number {
    return this.#queue.length + this.#inFlight;
  }

  /** A snapshot of the counters, for metrics. */
  stats(): DecisionLogStats {
    return {
      committed: this.#committed,
      batches: this.#batches,
      pending: this.pending,
      refused: {
        queueFull: this.#refusedQueueFull,
        storeFailure: this.#refusedStoreFailure,
        closed: this.#refusedClosed,
        invalid: this.#refusedInvalid,
      },
    };
  }

  /** Stops accepting events and resolves once everything already queued is committed or rejected; idempotent. */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= (async () => {
      this.#clearTimer();
      while (this.#flushing !== undefined || this.#queue.length > 0) {
        if (this.#flushing === undefined) this.#startFlush();
        await this.#flushing;
      }
      this.#clearTimer();
    })();
    return this.#closing;
  }

  #clearTimer(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }

  #schedule(): void {
    // A running flush drains the queue when its transaction ends: the commit in progress is the batching window.
    if (this.#flushing !== undefined) return;
    if (this.#queue.length >= this.#maxBatch) {
      this.#clearTimer();
      this.#startFlush();
      return;
    }
    if (this.#cancelTimer !== undefined) return;
    const fire = () => {
      this.#cancelTimer = undefined;
      this.#startFlush();
    };
    if (this.#maxDelayMs === 0) {
      const h = setImmediate(fire);
      this.#cancelTimer = () => clearImmediate(h);
    } else {
      // Not unref'd: a pending record() must keep the process alive until its event is committed.
      const h = setTimeout(fire, this.#maxDelayMs);
      this.#cancelTimer = () => clearTimeout(h);
    }
  }

  #startFlush(): void {
    if (this.#flushing !== undefined) return;
    this.#flushing = this.#drain().finally(() => {
      this.#flushing = undefined;
      if (this.#queue.length > 0) this.#schedule();
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#inFlight = batch.length;
      try {
        await this.#store.append(batch.map((w) => w.event));
        this.#committed += batch.length;
        this.#batches++;
        for (const w of batch) w.resolve();
      } catch (err) {
        this.#refusedStoreFailure += batch.length;
        const failure = storeFailure(err);
        for (const w of batch) w.reject(failure);
      } finally {
        for (const w of batch) this.#pendingIds.delete(w.event.id);
        this.#inFlight = 0;
      }
    }
  }
}

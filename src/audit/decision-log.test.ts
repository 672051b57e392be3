import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreUnavailableError } from '../core/errors.ts';
import { openSqliteStore, type SqliteStore } from '../store/sqlite-store.ts';
import type { AuditAppender } from '../store/store.ts';
import type { NewAuditEventV1 } from './audit-event.ts';
import { DecisionLog } from './decision-log.ts';

let n = 0;
function decision(overrides: Partial<NewAuditEventV1> = {}): NewAuditEventV1 {
  n++;
  return {
    id: `dec-evt-${n}`,
    time: '2025-06-01T12:00:00.000Z',
    type: 'decision',
    outcome: 'allow',
    decisionId: `dec-${n}`,
    redacted: [],
    ...overrides,
  };
}

async function sqliteStore(t: { after(fn: () => unknown): void }): Promise<SqliteStore> {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-audit-'));
  const store = await openSqliteStore({ dataDir: dir });
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

/** Wraps an appender to count transactions and their sizes. */
function counting(inner: AuditAppender): AuditAppender & { sizes: number[] } {
  const sizes: number[] = [];
  return {
    sizes,
    append: async (events) => {
      sizes.push(events.length);
      await inner.append(events);
    },
  };
}

/** An appender whose transactions wait until released, to hold events "in flight". */
function gated(): AuditAppender & { calls: NewAuditEventV1[][]; release(): void } {
  const calls: NewAuditEventV1[][] = [];
  let open = false;
  const waiting: (() => void)[] = [];
  return {
    calls,
    append: (events) => {
      calls.push([...events]);
      if (open) return Promise.resolve();
      return new Promise<void>((resolve) => waiting.push(resolve));
    },
    release() {
      open = true;
      for (const w of waiting.splice(0)) w();
    },
  };
}

/** Lets queued callbacks and promise chains run (a few event-loop turns, no wall-clock waiting). */
async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

test('many concurrent record() calls all commit, in fewer transactions than events', async (t) => {
  const store = await sqliteStore(t);
  const appender = counting(store.audit);
  const log = new DecisionLog(appender, { maxDelayMs: 2, maxBatch: 64, maxPending: 10_000 });
  const events = Array.from({ length: 1000 }, () => decision());

  await Promise.all(events.map((e) => log.record(e)));

  assert.equal(await store.audit.count(), 1000);
  const stored = await store.audit.list({ limit: 1000 });
  assert.deepEqual(
    stored.map((e) => e.id),
    events.map((e) => e.id),
  );
  assert.ok(appender.sizes.length < events.length, `expected batching, got ${appender.sizes.length} transactions`);
  assert.ok(appender.sizes.every((s) => s <= 64));
  const stats = log.stats();
  assert.equal(stats.committed, 1000);
  assert.equal(stats.batches, appender.sizes.length);
  assert.equal(stats.pending, 0);
  assert.deepEqual(stats.refused, { queueFull: 0, storeFailure: 0, closed: 0, invalid: 0 });
  await log.close();
});

test('record() resolves only after the store has committed the event', async () => {
  const store = gated();
  const log = new DecisionLog(store, { maxDelayMs: 0 });
  let resolved = false;
  const p = log.record(decision()).then(() => {
    resolved = true;
  });
  await settle();
  assert.equal(store.calls.length, 1);
  assert.equal(resolved, false);
  store.release();
  await p;
  assert.equal(resolved, true);
});

test('backpressure: beyond maxPending, record() rejects at once and the refusal is counted', async () => {
  const store = gated();
  const log = new DecisionLog(store, { maxDelayMs: 1000, maxBatch: 2, maxPending: 5 });
  const accepted = Array.from({ length: 5 }, () => log.record(decision()));
  // The second record filled a batch, which is now in flight; three more wait behind it.
  assert.equal(log.pending, 5);

  await assert.rejects(log.record(decision()), (err: unknown) => {
    assert.ok(err instanceof StoreUnavailableError);
    assert.equal(err.code, 'ERR_STORE_UNAVAILABLE');
    assert.equal(err.status, 503);
    assert.match(err.description, /refused rather than left unlogged/);
    return true;
  });
  assert.equal(log.stats().refused.queueFull, 1);

  store.release();
  await Promise.all(accepted);
  assert.equal(log.stats().committed, 5);
  assert.equal(
    store.calls.reduce((sum, c) => sum + c.length, 0),
    5,
  );
  // Room again once the queue drained (close() flushes it without waiting for the timer).
  const again = log.record(decision());
  await log.close();
  await again;
  assert.equal(log.stats().committed, 6);
});

test('a store failure rejects every event of the batch with StoreUnavailableError, counts them, and the log recovers', async () => {
  let failing = true;
  const committed: string[] = [];
  const boom = Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
  const store: AuditAppender = {
    append: async (events) => {
      if (failing) throw boom;
      committed.push(...events.map((e) => e.id));
    },
  };
  const log = new DecisionLog(store, { maxDelayMs: 0, maxBatch: 10 });
  const results = await Promise.allSettled([log.record(decision()), log.record(decision()), log.record(decision())]);
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    const err = (r as PromiseRejectedResult).reason as unknown;
    assert.ok(err instanceof StoreUnavailableError);
    assert.equal(err.cause, boom);
    // The client-facing text says nothing about the disk.
    assert.doesNotMatch(err.description, /disk|SQLITE/);
  }
  assert.equal(log.stats().refused.storeFailure, 3);
  assert.equal(log.stats().committed, 0);

  failing = false;
  const ok = decision();
  await log.record(ok);
  assert.deepEqual(committed, [ok.id]);
  await log.close();
});

test('a real SQLite store closed underneath: record() rejects with StoreUnavailableError, no crash', async (t) => {
  const store = await sqliteStore(t);
  const log = new DecisionLog(store.audit, { maxDelayMs: 1 });
  await log.record(decision());
  await store.close();
  await assert.rejects(log.record(decision()), StoreUnavailableError);
  await assert.rejects(log.appendNow(decision({ type: 'admin', outcome: 'success' })), StoreUnavailableError);
  assert.equal(log.stats().refused.storeFailure, 2);
  await log.close();
});

test('close() flushes everything queued, then refuses new events', async (t) => {
  const store = await sqliteStore(t);
  const log = new DecisionLog(store.audit, { maxDelayMs: 1000, maxBatch: 1000 });
  const pending = Array.from({ length: 50 }, () => log.record(decision()));
  await log.close();
  await Promise.all(pending);
  assert.equal(await store.audit.count(), 50);

  await assert.rejects(log.record(decision()), StoreUnavailableError);
  assert.equal(log.stats().refused.closed, 1);
  await log.close();
});

test('appendNow() commits at once, without waiting for the batch timer', async (t) => {
  const store = await sqliteStore(t);
  const log = new DecisionLog(store.audit, { maxDelayMs: 1000, maxBatch: 1000 });
  const queued = log.record(decision());
  const now = decision({ type: 'policy.load', outcome: 'success', decisionId: undefined, policySetVersion: 'v1' });
  await log.appendNow(now);
  const rows = await store.audit.list({ limit: 10 });
  assert.deepEqual(
    rows.map((r) => r.id),
    [now.id],
  );
  assert.equal(log.pending, 1);
  await log.close();
  await queued;
  assert.equal(await store.audit.count(), 2);
});

test('invalid events are TypeErrors, counted, and never reach the store', async () => {
  const store = gated();
  store.release();
  const log = new DecisionLog(store, { maxDelayMs: 0 });
  await assert.rejects(log.record({ ...decision(), outcome: 'maybe' } as unknown as NewAuditEventV1), TypeError);
  await assert.rejects(log.record({ ...decision(), data: { headers: { authorization: 'Bearer x' } } }), TypeError);
  await assert.rejects(log.appendNow({ ...decision(), id: '' }), TypeError);
  // The same id twice in the queue would fail the whole batch, so the second is refused up front.
  const dup = decision();
  const first = log.record(dup);
  await assert.rejects(log.record({ ...dup }), /already queued/);
  await first;
  assert.equal(log.stats().refused.invalid, 4);
  assert.equal(store.calls.flat().length, 1);
  await log.close();
});

test('bad options are TypeErrors', () => {
  const store = gated();
  assert.throws(() => new DecisionLog(store, { maxDelayMs: -1 }), TypeError);
  assert.throws(() => new DecisionLog(store, { maxBatch: 0 }), TypeError);
  assert.throws(() => new DecisionLog(store, { maxPending: 1.5 }), TypeError);
});

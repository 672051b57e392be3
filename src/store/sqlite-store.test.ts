import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { StoreUnavailableError } from '../core/errors.ts';
import { fixedClock } from '../core/ports.ts';
import type { NewAuditEventV1 } from '../audit/audit-event.ts';
import { openSqliteStore } from './sqlite-store.ts';
import { openStore } from './open-store.ts';
import { sqliteMigrations } from './migrations/sqlite-migrations.ts';
import { assertMigrationList, type Migration } from './migrations/migration.ts';
import { META_CREATED_AT } from './store.ts';

const T0 = Date.parse('2025-06-01T12:00:00.000Z');

/** A fresh temp directory, removed when the test ends. */
function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let n = 0;
function event(overrides: Partial<NewAuditEventV1> = {}): NewAuditEventV1 {
  n++;
  return {
    id: `evt-${n}`,
    time: '2025-06-01T12:00:00.000Z',
    type: 'decision',
    outcome: 'allow',
    redacted: [],
    ...overrides,
  };
}

const NEXT = sqliteMigrations.length + 1;
const extraMigration: Migration = { version: NEXT, name: 'add_widgets', sql: 'CREATE TABLE widgets (id TEXT PRIMARY KEY) STRICT;' };

test('first open creates the data directory 0700 and the database 0600, in WAL mode', async (t) => {
  const root = tempDir(t);
  const dataDir = join(root, 'nested', 'data');
  const store = await openSqliteStore({ dataDir, clock: fixedClock(T0) });
  t.after(() => store.close());
  assert.equal(statSync(dataDir).mode & 0o777, 0o700);
  assert.equal(statSync(store.path).mode & 0o777, 0o600);
  assert.equal(store.path, join(dataDir, 'mandate.db'));
  await store.ping();
  assert.equal(await store.schemaVersion(), sqliteMigrations.length);
  assert.equal(await store.meta.get(META_CREATED_AT), new Date(T0).toISOString());

  // Check the pragmas from a second connection: journal_mode is persistent in the file.
  const raw = new Database(store.path, { readonly: true });
  t.after(() => raw.close());
  assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  assert.ok(existsSync(`${store.path}-wal`));
});

test('reopening applies nothing twice and keeps created_at (migrations are idempotent)', async (t) => {
  const dataDir = tempDir(t);
  const first = await openSqliteStore({ dataDir, clock: fixedClock(T0) });
  await first.audit.append([event()]);
  await first.close();

  const second = await openSqliteStore({ dataDir, clock: fixedClock(T0 + 60_000) });
  t.after(() => second.close());
  assert.equal(await second.schemaVersion(), sqliteMigrations.length);
  assert.equal(await second.audit.count(), 1);
  assert.equal(await second.meta.get(META_CREATED_AT), new Date(T0).toISOString());

  const raw = new Database(second.path, { readonly: true });
  t.after(() => raw.close());
  const rows = raw.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all();
  assert.deepEqual(
    rows,
    sqliteMigrations.map((m) => ({ version: m.version, name: m.name })),
  );
});

test('a newer migration list upgrades an existing database in place', async (t) => {
  const dataDir = tempDir(t);
  const v1 = await openSqliteStore({ dataDir });
  await v1.audit.append([event()]);
  await v1.close();

  const v2 = await openSqliteStore({ dataDir, migrations: [...sqliteMigrations, extraMigration] });
  t.after(() => v2.close());
  assert.equal(await v2.schemaVersion(), NEXT);
  assert.equal(await v2.audit.count(), 1);
});

test('a database newer than the code is refused with a clear error and left unchanged', async (t) => {
  const dataDir = tempDir(t);
  const newer = await openSqliteStore({ dataDir, migrations: [...sqliteMigrations, extraMigration] });
  await newer.close();

  await assert.rejects(openSqliteStore({ dataDir }), (err: unknown) => {
    assert.ok(err instanceof StoreUnavailableError);
    assert.equal(err.code, 'ERR_STORE_UNAVAILABLE');
    assert.match(err.description, new RegExp(`schema version ${NEXT}, newer than this build of Mandate supports \\(${NEXT - 1}\\)`));
    return true;
  });
  const raw = new Database(join(dataDir, 'mandate.db'), { readonly: true });
  t.after(() => raw.close());
  assert.deepEqual(raw.prepare('SELECT max(version) AS v FROM schema_migrations').get(), { v: NEXT });
});

test('a database whose applied migration has another name is refused', async (t) => {
  const dataDir = tempDir(t);
  const other = await openSqliteStore({ dataDir, migrations: [...sqliteMigrations, { ...extraMigration, name: 'something_else' }] });
  await other.close();
  await assert.rejects(
    openSqliteStore({ dataDir, migrations: [...sqliteMigrations, extraMigration] }),
    (err: unknown) => err instanceof StoreUnavailableError && err.description.includes(`migration ${NEXT} "something_else"`),
  );
});

test('a broken migration list is a programming error (TypeError)', () => {
  assert.throws(() => assertMigrationList([{ version: 2, name: 'x', sql: 'SELECT 1' }]), TypeError);
  assert.throws(
    () =>
      assertMigrationList([
        { version: 1, name: 'a', sql: 'SELECT 1' },
        { version: 2, name: 'a', sql: 'SELECT 1' },
      ]),
    TypeError,
  );
  assert.doesNotThrow(() => assertMigrationList(sqliteMigrations));
});

test('a failing migration rolls back entirely', async (t) => {
  const dataDir = tempDir(t);
  const broken: Migration = { version: 2, name: 'broken', sql: 'CREATE TABLE ok_table (x INTEGER); SELECT * FROM no_such_table;' };
  await assert.rejects(openSqliteStore({ dataDir, migrations: [...sqliteMigrations, broken] }), StoreUnavailableError);
  const raw = new Database(join(dataDir, 'mandate.db'), { readonly: true });
  t.after(() => raw.close());
  // Not even migration 1 was kept: all pending migrations share one transaction.
  assert.deepEqual(raw.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name IN ('ok_table', 'audit_events')").get(), { n: 0 });
});

test('audit append/list round trip keeps every field and assigns seq in order', async (t) => {
  const store = await openSqliteStore({ dataDir: tempDir(t) });
  t.after(() => store.close());
  const full = event({
    outcome: 'deny',
    decisionId: 'dec-1',
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    actor: 'authzen-client-1',
    subject: 'User::"alice"',
    action: 'Action::"read"',
    resource: 'Document::"q3"',
    policySetVersion: 'sha256:abc',
    reasons: ['forbid policy p1 matched'],
    redacted: ['data.context.ssn'],
    data: { nested: { list: [1, 'two', null, true] } },
  });
  const minimal = event({ type: 'policy.load', outcome: 'success' });
  await store.audit.append([full, minimal]);
  await store.audit.append([]);

  const listed = await store.audit.list({ limit: 10 });
  assert.deepEqual(listed, [
    { ...full, seq: 1 },
    { ...minimal, seq: 2 },
  ]);
  assert.deepEqual(await store.audit.list({ afterSeq: 1, limit: 10 }), [{ ...minimal, seq: 2 }]);
  assert.deepEqual(await store.audit.list({ afterSeq: 0, limit: 1 }), [{ ...full, seq: 1 }]);
  assert.equal(await store.audit.count(), 2);
});

test('append is all or nothing: a duplicate id fails the whole call with StoreUnavailableError', async (t) => {
  const store = await openSqliteStore({ dataDir: tempDir(t) });
  t.after(() => store.close());
  const a = event();
  await store.audit.append([a]);
  await assert.rejects(store.audit.append([event(), a]), (err: unknown) => {
    assert.ok(err instanceof StoreUnavailableError);
    assert.match(err.detail ?? '', /SQLITE_CONSTRAINT/);
    assert.ok(err.cause !== undefined);
    return true;
  });
  assert.equal(await store.audit.count(), 1);
});

test('invalid events and arguments are TypeErrors, and nothing is written', async (t) => {
  const store = await openSqliteStore({ dataDir: tempDir(t) });
  t.after(() => store.close());
  await assert.rejects(store.audit.append([{ ...event(), time: 'yesterday' }]), TypeError);
  await assert.rejects(store.audit.append([event(), { ...event(), data: { access_token: 'x' } }]), TypeError);
  await assert.rejects(store.audit.list({ limit: 0 }), TypeError);
  await assert.rejects(store.audit.list({ limit: 10, afterSeq: -1 }), TypeError);
  assert.equal(await store.audit.count(), 0);
});

test('the audit table refuses updates and deletes at the SQL level', async (t) => {
  const store = await openSqliteStore({ dataDir: tempDir(t) });
  t.after(() => store.close());
  await store.audit.append([event()]);
  const raw = new Database(store.path);
  t.after(() => raw.close());
  assert.throws(() => raw.prepare("UPDATE audit_events SET outcome = 'allow'").run(), /append-only/);
  assert.throws(() => raw.prepare('DELETE FROM audit_events').run(), /append-only/);
});

test('meta get/set', async (t) => {
  const store = await openSqliteStore({ dataDir: tempDir(t) });
  t.after(() => store.close());
  assert.equal(await store.meta.get('nothing'), undefined);
  await store.meta.set('k', 'v1');
  await store.meta.set('k', 'v2');
  assert.equal(await store.meta.get('k'), 'v2');
});

test('a write lock held by another connection gives StoreUnavailableError, not a crash or a hang', async (t) => {
  const store = await openSqliteStore({ dataDir: tempDir(t), busyTimeoutMs: 10 });
  t.after(() => store.close());
  const other = new Database(store.path);
  t.after(() => other.close());
  other.exec('BEGIN EXCLUSIVE');
  await assert.rejects(store.audit.append([event()]), (err: unknown) => {
    assert.ok(err instanceof StoreUnavailableError);
    assert.equal(err.description, 'The store is unavailable; the request was refused.');
    assert.match(err.detail ?? '', /SQLITE_BUSY/);
    return true;
  });
  other.exec('ROLLBACK');
  await store.audit.append([event()]);
  assert.equal(await store.audit.count(), 1);
});

test('every call after close rejects with StoreUnavailableError; close is idempotent', async (t) => {
  const store = await openSqliteStore({ dataDir: tempDir(t) });
  await store.close();
  await store.close();
  for (const call of [
    () => store.ping(),
    () => store.schemaVersion(),
    () => store.audit.append([event()]),
    () => store.audit.list({ limit: 1 }),
    () => store.audit.count(),
    () => store.meta.get('k'),
    () => store.meta.set('k', 'v'),
  ]) {
    await assert.rejects(call(), (err: unknown) => err instanceof StoreUnavailableError && err.code === 'ERR_STORE_UNAVAILABLE');
  }
});

test('a file that is not a database is refused with StoreUnavailableError', async (t) => {
  const dataDir = tempDir(t);
  writeFileSync(join(dataDir, 'mandate.db'), 'this is not an SQLite database, just text that is long enough'.repeat(20));
  await assert.rejects(openSqliteStore({ dataDir }), (err: unknown) => {
    assert.ok(err instanceof StoreUnavailableError);
    assert.match(err.description, /Cannot open the store at/);
    assert.match(err.detail ?? '', /SQLITE_NOTADB/);
    return true;
  });
});

test('a data directory that cannot be created is refused with StoreUnavailableError', async (t) => {
  const root = tempDir(t);
  const blocker = join(root, 'file');
  writeFileSync(blocker, 'x');
  await assert.rejects(openSqliteStore({ dataDir: join(blocker, 'data') }), (err: unknown) => {
    assert.ok(err instanceof StoreUnavailableError);
    assert.match(err.description, /Cannot create the data directory/);
    return true;
  });
});

test('bad options are TypeErrors', async () => {
  await assert.rejects(openSqliteStore({ dataDir: '' }), TypeError);
  await assert.rejects(openSqliteStore({ dataDir: '/tmp/x', file: '../escape.db' }), TypeError);
});

test('openStore opens the configured sqlite store', async (t) => {
  const dataDir = tempDir(t);
  const store = await openStore({ driver: 'sqlite', dataDir, sqlite: { file: 'other.db' } });
  t.after(() => store.close());
  assert.equal(store.driver, 'sqlite');
  await store.ping();
  assert.ok(existsSync(join(dataDir, 'other.db')));
});

test('inline and thread audit writers commit the same rows; bad auditWriter is a TypeError', async (t) => {
  for (const auditWriter of ['inline', 'thread'] as const) {
    const store = await openSqliteStore({ dataDir: tempDir(t), auditWriter });
    t.after(() => store.close());
    const events = [event(), event({ outcome: 'deny', data: { k: [1, 2] } })];
    await store.audit.append(events);
    const rows = await store.audit.list({ limit: 10 });
    assert.deepEqual(rows.map((r) => ({ ...r, seq: undefined })), events.map((e) => ({ ...e, seq: undefined })), auditWriter);
  }
  await assert.rejects(openSqliteStore({ dataDir: tempDir(t), auditWriter: 'fast' as never }), TypeError);
});

test('close waits for appends already sent to the writer thread', async (t) => {
  const dataDir = tempDir(t);
  const store = await openSqliteStore({ dataDir });
  const pending = Array.from({ length: 20 }, () => store.audit.append([event(), event()]));
  await store.close();
  await Promise.all(pending);
  const again = await openSqliteStore({ dataDir });
  t.after(() => again.close());
  assert.equal(await again.audit.count(), 40);
});

test('a dead audit writer thread fails every append and the health check closed, and is not replaced', async (t) => {
  const dataDir = tempDir(t);
  const store = await openSqliteStore({ dataDir });
  t.after(() => store.close());
  await store.audit.append([event()]);
  const { SqliteAuditWriter } = await import('./sqlite-audit-writer.ts');
  const writer = await SqliteAuditWriter.start(store.path, 1000);
  const inFlight = writer.append([]);
  await writer.terminate();
  await assert.rejects(inFlight, StoreUnavailableError);
  await assert.rejects(writer.append([]), (err: unknown) => err instanceof StoreUnavailableError && /terminated/.test(err.detail ?? ''));
  assert.throws(() => writer.check(), StoreUnavailableError);
  await writer.close();
});

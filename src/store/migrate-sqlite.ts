/**
 * Applies SQLite schema migrations: all pending ones in ONE immediate transaction, so a database is either
 * fully upgraded or left as it was, and two processes opening the same file cannot both apply a migration.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { StoreUnavailableError } from '../core/errors.ts';
import type { Clock } from '../core/ports.ts';
import { assertMigrationList, type Migration } from './migrations/migration.ts';

/** What {@link migrateSqlite} did. */
export interface MigrationResult {
  /** Schema version before this call (0 for a new database). */
  readonly from: number;
  /** Schema version now. */
  readonly to: number;
  /** Versions applied by this call, in order. */
  readonly applied: readonly number[];
}

/**
 * Brings the database up to the newest migration in `migrations`; refuses (with `StoreUnavailableError`) a
 * database whose schema is newer than the list, or whose applied migrations differ from the list's.
 * @param where names the database in error messages (its path).
 */
export function migrateSqlite(
  db: BetterSqlite3.Database,
  migrations: readonly Migration[],
  clock: Clock,
  where: string,
): MigrationResult {
  assertMigrationList(migrations);
  const known = migrations.length;
  const run = db.transaction((): MigrationResult => {
    db.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT',
    );
    const rows = db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all() as {
      version: number;
      name: string;
    }[];
    const from = rows.length === 0 ? 0 : Math.max(...rows.map((r) => r.version));
    if (from > known) {
      throw new StoreUnavailableError(
        `The database at ${where} has schema version ${from}, newer than this build of Mandate supports (${known}). ` +
          'Upgrade Mandate, or point store.dataDir at another directory. The database was not changed.',
        { detail: `schema_migrations max(version)=${from}, known=${known}` },
      );
    }
    rows.forEach((row, i) => {
      const expected = migrations[row.version - 1];
      // Applied versions must be exactly 1..from with the names this build gives them; anything else means the
      // database was written by a different (diverged) build, and migrating it further could corrupt it.
      if (row.version !== i + 1 || expected === undefined || expected.name !== row.name) {
        throw new StoreUnavailableError(
          `The database at ${where} has schema migration ${row.version} "${row.name}", which this build of Mandate ` +
            `does not recognise${expected ? ` (it expects "${expected.name}")` : ''}. The database was not changed.`,
          { detail: `applied=${JSON.stringify(rows)}` },
        );
      }
    });
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    const applied: number[] = [];
    for (const m of migrations.slice(from)) {
      db.exec(m.sql);
      record.run(m.version, m.name, new Date(clock.now()).toISOString());
      applied.push(m.version);
    }
    return { from, to: known, applied };
  });
  return run.immediate();
}

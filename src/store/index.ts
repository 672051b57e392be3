/** The store capability's public surface. */
export {
  MAX_AUDIT_LIST_LIMIT,
  META_CREATED_AT,
  type AuditAppender,
  type AuditListOptions,
  type AuditStore,
  type MetaStore,
  type Store,
  type StoreDriver,
} from './store.ts';
export { openSqliteStore, SqliteStore, type SqliteStoreOptions } from './sqlite-store.ts';
export { openStore, type StoreSettings } from './open-store.ts';
export { migrateSqlite, type MigrationResult } from './migrate-sqlite.ts';
export { assertMigrationList, type Migration } from './migrations/migration.ts';
export { sqliteMigrations } from './migrations/sqlite-migrations.ts';

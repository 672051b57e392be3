/**
 * A versioned schema migration. Each store driver has its own ordered list (SQL dialects differ); the runner
 * records applied versions in a `schema_migrations` table and refuses a database newer than the code.
 */

/** One schema change: applied once, in version order, inside a transaction. Never edit one that has shipped: add a new one. */
export interface Migration {
  /** Positive integer; the list is strictly increasing, starting at 1, without gaps. */
  readonly version: number;
  /** Short snake_case name, stored beside the version and checked on every open. */
  readonly name: string;
  /** The statements to run. */
  readonly sql: string;
}

/**
 * Checks that a migration list is well formed (versions 1..n in order, unique snake_case names); a broken list
 * is a programming mistake, so it throws `TypeError`.
 */
export function assertMigrationList(list: readonly Migration[]): void {
  const names = new Set<string>();
  list.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new TypeError(`migration at index ${i} has version ${m.version}; expected ${i + 1} (ordered, no gaps)`);
    }
    if (!/^[a-z0-9_]{1,64}$/.test(m.name) || names.has(m.name)) {
      throw new TypeError(`migration ${m.version} has an invalid or duplicate name ${JSON.stringify(m.name)}`);
    }
    names.add(m.name);
    if (m.sql.trim() === '') throw new TypeError(`migration ${m.version} has no SQL`);
  });
}

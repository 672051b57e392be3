/**
 * Opens the store the configuration names. The one place that maps `store.driver` to an implementation, so
 * adding PostgreSQL later touches this file and not its callers.
 */
import type { Clock } from '../core/ports.ts';
import { openSqliteStore } from './sqlite-store.ts';
import type { Store, StoreDriver } from './store.ts';

/** The `store` section of the configuration, as {@link openStore} needs it. */
export interface StoreSettings {
  driver: StoreDriver;
  /** Absolute path of the data directory. */
  dataDir: string;
  sqlite: { file: string };
}

/** Opens (creating and migrating on first start) the store named by `settings.driver`; rejects with `StoreUnavailableError`. */
export async function openStore(settings: StoreSettings, deps: { clock?: Clock } = {}): Promise<Store> {
  switch (settings.driver) {
    case 'sqlite':
      return openSqliteStore({ dataDir: settings.dataDir, file: settings.sqlite.file, clock: deps.clock });
    default: {
      const never: never = settings.driver;
      throw new TypeError(`unknown store driver ${JSON.stringify(never)}`);
    }
  }
}

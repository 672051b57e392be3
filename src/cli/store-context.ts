/**
 * What the store-backed commands (`mandate agents`, `mandate keys`, `mandate token inspect`) share: the
 * configuration loaded exactly as `mandate serve` loads it, the store it names opened and always closed, the
 * audit actor of a change made from the command line, and text made safe for a terminal.
 */
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type MandateConfig } from '../config/index.ts';
import { StoreUnavailableError } from '../core/errors.ts';
import { openStore } from '../store/open-store.ts';
import type { Store } from '../store/store.ts';
import type { CliArgs, CliIo, CliOption } from './command.ts';

/** The `--config` option every store-backed command takes. */
export const CONFIG_OPTION: CliOption = {
  type: 'string',
  short: 'c',
  placeholder: 'FILE',
  description: 'Path of mandate.yaml (else MANDATE_CONFIG, else ./mandate.yaml), as for mandate serve',
};

/** Loads the configuration as `mandate serve` does; rejects with `ConfigInvalidError` listing every problem. */
export async function loadCliConfig(args: CliArgs, io: CliIo): Promise<MandateConfig> {
  const path = args.values.config as string | undefined;
  return loadConfig({ ...(path ? { path } : {}), env: io.env, cwd: io.cwd });
}

/** Absolute path of the database file the configuration names. */
export function storeLocation(config: MandateConfig): string {
  return join(config.store.dataDir, config.store.sqlite.file);
}

/**
 * Opens the configured store, runs `fn`, and closes the store whatever happens. With `mustExist`, a store that
 * does not exist yet is refused instead of created (a read should not leave an empty database behind a mistyped
 * `--config`).
 * @throws StoreUnavailableError when the store is missing (with `mustExist`) or cannot be opened
 */
export async function withStore<T>(config: MandateConfig, options: { mustExist: boolean }, fn: (store: Store) => Promise<T>): Promise<T> {
  const location = storeLocation(config);
  if (options.mustExist && !existsSync(location)) {
    throw new StoreUnavailableError(
      `there is no store at ${location}; check --config (or MANDATE_CONFIG, MANDATE_DATA_DIR) names the store of your nodes`,
    );
  }
  const store = await openStore(config.store);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/**
 * The audit actor of a change made from the command line: `cli:` and the operating-system user running it, so
 * that the audit log tells a CLI change from an admin API call (`actor` = the caller's id) and from the file
 * (`config`).
 */
export function cliActor(env: Readonly<Record<string, string | undefined>>): string {
  let name: string | undefined;
  try {
    name = userInfo().username;
  } catch {
    // No passwd entry for this uid (containers): fall back to what the shell says.
    name = env.USER ?? env.LOGNAME;
  }
  const clean = (name ?? '').replace(/[^A-Za-z0-9._@-]/g, '_').slice(0, 64);
  return `cli:${clean === '' ? 'unknown' : clean}`;
}

/**
 * Text from the store or a token, made safe to print: control, bidi-override and zero-width characters are
 * escaped, so that a registered name cannot rewrite the operator's terminal.
 */
export function terminalSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Renders rows as a left-aligned table with a header; cells are made terminal-safe. */
export function renderTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const safeRows = rows.map((r) => r.map(terminalSafe));
  const widths = head.map((h, i) => Math.max(h.length, ...safeRows.map((r) => (r[i] ?? '').length)));
  const format = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  return `${[format(head), ...safeRows.map(format)].join('\n')}\n`;
}

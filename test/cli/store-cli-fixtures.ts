/**
 * Fixtures for the store-backed commands (`mandate agents`, `keys`, `token`): a temporary directory with a
 * mandate.yaml naming a SQLite store inside it, a real KEK, and `mandate` run in-process through `runCli` with
 * buffered standard streams and an environment of the test's choosing (never the developer's).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { AuditEventV1 } from '../../src/audit/audit-event.ts';
import { loadConfig, type MandateConfig } from '../../src/config/index.ts';
import { runCli } from '../../src/cli/run-cli.ts';
import { openStore } from '../../src/store/open-store.ts';
import type { Store } from '../../src/store/store.ts';
import { generateKek } from '../../src/tokens/key-encryption.ts';

/** What one in-process run of `mandate` printed and returned. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The issuer the fixture configuration names. */
export const ISSUER = 'https://mandate.test';

/** A temporary Mandate deployment on disk. */
export interface CliFixture {
  dir: string;
  configPath: string;
  /** Base64url KEK the store's keys are sealed under. */
  kek: string;
  /** Runs `mandate <argv> --config <configPath>` in-process; `env` replaces the default `{ MANDATE_KEK }`. */
  run(argv: readonly string[], options?: { env?: Record<string, string>; stdin?: string; config?: boolean }): Promise<CliRun>;
  /** Opens the fixture's store (the caller closes it). */
  openStore(): Promise<Store>;
  /** Every audit event in the store, in order. */
  auditEvents(): Promise<AuditEventV1[]>;
  config(): Promise<MandateConfig>;
  cleanup(): Promise<void>;
}

/** Writes a fixture; `extraYaml` is appended to mandate.yaml (e.g. a `principals:` section). */
export async function createCliFixture(extraYaml = ''): Promise<CliFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-cli-'));
  const configPath = join(dir, 'mandate.yaml');
  await writeFile(
    configPath,
    `store:\n  dataDir: ./data\npolicy:\n  dir: ./policies\n  watch: false\ntokens:\n  issuer: ${ISSUER}\n  maxLifetimeSeconds: 900\n${extraYaml}`,
  );
  const kek = generateKek();
  const config = () => loadConfig({ path: configPath, env: {}, cwd: dir });
  const fixture: CliFixture = {
    dir,
    configPath,
    kek,
    async run(argv, options = {}) {
      let stdout = '';
      let stderr = '';
      const io = {
        stdout: (t: string) => void (stdout += t),
        stderr: (t: string) => void (stderr += t),
        readStdin: async () => options.stdin ?? '',
        cwd: dir,
        env: options.env ?? { MANDATE_KEK: kek },
      };
      const args = options.config === false ? [...argv] : [...argv, '--config', configPath];
      const code = await runCli(args, io);
      return { code, stdout, stderr };
    },
    async openStore() {
      return openStore((await config()).store);
    },
    async auditEvents() {
      const store = await fixture.openStore();
      try {
        return await store.audit.list({ limit: 10_000 });
      } finally {
        await store.close();
      }
    },
    config,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
  return fixture;
}

/** A fresh Ed25519 key pair's public JWK (and the private one, for tests that must be refused). */
export async function publicJwk(): Promise<{ publicJwk: JWK; privateJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  return { publicJwk: await exportJWK(publicKey), privateJwk: await exportJWK(privateKey) };
}

/** Non-empty lines. */
export const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');

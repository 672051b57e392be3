/**
 * DEMO ONLY — the demo's key-encryption key: a file (mode 0600) under the demo's data directory, created on the
 * first run and kept, so that the token signing keys sealed under it stay readable across runs.
 */
import { stat } from 'node:fs/promises';
import { writeNewKekFile } from '../tokens/key-encryption.ts';

/**
 * Creates the KEK file at `path` unless it exists; an existing file is left as it is (Mandate checks its mode
 * when it loads it). Resolves whether it was created now.
 */
export async function ensureDemoKekFile(path: string): Promise<{ path: string; created: boolean }> {
  try {
    await stat(path);
    return { path, created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  try {
    await writeNewKekFile(path);
  } catch (error) {
    // Another demo process created it first: use theirs.
    if ((error as { cause?: NodeJS.ErrnoException }).cause?.code === 'EEXIST') return { path, created: false };
    throw error;
  }
  return { path, created: true };
}

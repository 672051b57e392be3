/**
 * What every `mandate policy` command does first: read a policy directory, compile it, and print its
 * diagnostics the way compilers do (`file:line:col: error: message`) so that editors and CI annotate them.
 */
import { isAbsolute, join, resolve } from 'node:path';
import { PolicySetInvalidError } from '../core/errors.ts';
import { compilePolicySet, type CompiledPolicySet } from '../policy/compile-policy-set.ts';
import { readPolicyDirectory, type PolicyDirectory } from '../policy/read-policy-directory.ts';
import type { PolicyDiagnostic } from '../policy/types.ts';
import type { CliIo } from './command.ts';

/** A directory read and compiled, or the diagnostics that refused it. */
export type LoadOutcome =
  | { ok: true; contents: PolicyDirectory; compiled: CompiledPolicySet }
  | { ok: false; diagnostics: PolicyDiagnostic[]; contents?: PolicyDirectory };

/** Resolves a path given on the command line against the working directory. */
export function resolvePath(io: CliIo, path: string): string {
  return isAbsolute(path) ? path : resolve(io.cwd, path);
}

/**
 * Reads and compiles `dir`. A refused set is a value (its diagnostics), not an exception, because every
 * command reports it the same way; other errors (unreadable files) propagate.
 */
export async function loadPolicyDirectory(io: CliIo, dir: string): Promise<LoadOutcome> {
  let contents: PolicyDirectory;
  try {
    contents = await readPolicyDirectory(resolvePath(io, dir));
  } catch (err) {
    if (err instanceof PolicySetInvalidError) return { ok: false, diagnostics: diagnosticsOf(err) };
    throw err;
  }
  try {
    return { ok: true, contents, compiled: compilePolicySet(contents) };
  } catch (err) {
    if (err instanceof PolicySetInvalidError) return { ok: false, diagnostics: diagnosticsOf(err), contents };
    throw err;
  }
}

/** The diagnostics a `PolicySetInvalidError` carries; one built from its message when it carries none. */
export function diagnosticsOf(err: PolicySetInvalidError): PolicyDiagnostic[] {
  const d = err.extra?.diagnostics;
  if (Array.isArray(d) && d.length > 0) return d as PolicyDiagnostic[];
  return [{ severity: 'error', message: err.description }];
}

/**
 * Renders one diagnostic as `dir/file:line:col: severity: message` plus an indented `help:` line. Paths
 * are prefixed with the directory as the user wrote it, so that they can be opened from where they ran.
 */
export function formatDiagnostic(dir: string, d: PolicyDiagnostic): string {
  const where = d.position ? `${join(dir, d.position.file)}:${d.position.line}:${d.position.column}: ` : `${dir}: `;
  const policy = d.policyId && !d.message.includes(d.policyId) ? ` [policy ${d.policyId}]` : '';
  const lines = [`${where}${d.severity}: ${oneLine(d.message)}${policy}`];
  if (d.help) lines.push(`  help: ${oneLine(d.help)}`);
  return `${lines.join('\n')}\n`;
}

/** Prints a refused set's diagnostics and a summary line. */
export function printRefusal(io: CliIo, dir: string, diagnostics: readonly PolicyDiagnostic[]): void {
  for (const d of diagnostics) io.stdout(formatDiagnostic(dir, d));
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  io.stdout(`${dir}: invalid (${errors} error${errors === 1 ? '' : 's'}); the set would be refused whole\n`);
}

/** Collapses engine messages that span lines into one line, so that every diagnostic is one grep-able line. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

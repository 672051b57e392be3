/**
 * What the `mandate agents` commands share: a registration read from a YAML/JSON file and/or flags, the audit
 * event of a change made from the command line, how a credential is keyed (as the store keys it, so that a taken
 * one is named before the store refuses it) and how a principal is printed.
 */
import { createPublicKey } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { parse as parseYaml } from 'yaml';
import { createAuditEvent, type NewAuditEventV1 } from '../audit/audit-event.ts';
import { systemClock } from '../core/ports.ts';
import type { PrincipalCredential } from '../identity/types.ts';
import type { PrincipalRecord } from '../store/store.ts';
import { CliUsageError, type CliArgs, type CliIo, type CliOption } from './command.ts';
import { renderTable, terminalSafe } from './store-context.ts';

/** Largest registration or key file read; a registration is a few kilobytes. */
export const MAX_INPUT_FILE_BYTES = 256 * 1024;

/** The flags that describe a registration (`mandate agents add`). */
export const REGISTRATION_OPTIONS: Record<string, CliOption> = {
  file: { type: 'string', short: 'f', placeholder: 'FILE', description: 'The registration as YAML or JSON (- reads standard input); flags override its fields' },
  id: { type: 'string', placeholder: 'ID', description: 'Stable id, also its OAuth client_id: lower-case letters, digits, . _ : -' },
  kind: { type: 'string', placeholder: 'KIND', description: 'agent (default) or service' },
  name: { type: 'string', placeholder: 'TEXT', description: 'Display name' },
  owner: { type: 'string', placeholder: 'USER', description: 'The accountable person, as the IdP names them' },
  mode: { type: 'string', placeholder: 'MODE', description: 'chat or autonomous (agents only; required for them)' },
  workflow: { type: 'string', multiple: true, placeholder: 'ID', description: 'A workflow it is registered for' },
  audience: { type: 'string', multiple: true, placeholder: 'URL', description: 'A resource (RFC 8707) it may ask mandates for' },
  'spiffe-id': { type: 'string', multiple: true, placeholder: 'ID', description: 'Credential: a SPIFFE ID (spiffe://<trust domain>/<path>)' },
  'jwks-file': { type: 'string', multiple: true, placeholder: 'FILE', description: 'Credential: public keys for private_key_jwt, a JWKS or one JWK (JSON/YAML) or a PEM public key' },
  'jwks-uri': { type: 'string', multiple: true, placeholder: 'URL', description: 'Credential: an https: URL of its JWKS for private_key_jwt' },
  'api-scope': { type: 'string', multiple: true, placeholder: 'SCOPE', description: "Services only: a scope of Mandate's own API (evaluate, policy:read, policy:reload, principals:read, principals:write)" },
  dpop: { type: 'string', placeholder: 'POLICY', description: 'required (default: every mandate DPoP-bound) or optional' },
};

const ENUM_FLAGS: Record<string, readonly string[]> = {
  kind: ['agent', 'service'],
  mode: ['chat', 'autonomous'],
  dpop: ['required', 'optional'],
};

/** Checks an enumerated flag's value; a wrong one is a usage error. */
export function checkEnumFlag(args: CliArgs, name: string, allowed: readonly string[]): string | undefined {
  const value = args.values[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !allowed.includes(value)) {
    throw new CliUsageError(`--${name}: ${JSON.stringify(String(value))} is not one of ${allowed.join(', ')}`);
  }
  return value;
}

const isMapping = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Reads a small text file (or standard input for `-`) named by a flag; unreadable is a usage error. */
async function readInputFile(io: CliIo, flag: string, path: string): Promise<string> {
  if (path === '-') return io.readStdin();
  const full = resolve(io.cwd, path);
  try {
    const info = await stat(full);
    if (!info.isFile()) throw new CliUsageError(`--${flag} ${path}: not a regular file`);
    if (info.size > MAX_INPUT_FILE_BYTES) throw new CliUsageError(`--${flag} ${path}: ${info.size} bytes; at most ${MAX_INPUT_FILE_BYTES} are read`);
    return await readFile(full, 'utf8');
  } catch (err) {
    if (err instanceof CliUsageError) throw err;
    const code = (err as { code?: unknown }).code;
    throw new CliUsageError(`--${flag} ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : `cannot read it (${String(code)})`}`);
  }
}

/** Parses YAML (JSON is YAML) into a mapping; anything else is a usage error naming the flag. */
function parseMapping(text: string, flag: string, path: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    const first = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    throw new CliUsageError(`--${flag} ${path}: not valid YAML or JSON: ${first}`);
  }
  if (!isMapping(value)) throw new CliUsageError(`--${flag} ${path}: expected ${what} (a mapping), found ${value === null ? 'nothing' : Array.isArray(value) ? 'a list' : typeof value}`);
  return value;
}

/**
 * Reads a `--jwks-file`: a JWKS (`{ keys: [...] }`), one JWK, or a PEM public key (SPKI). A private key is refused
 * here for PEM (it would otherwise yield its public half silently); a JWK with private members is refused by the
 * registration schema, which names the member.
 */
async function readJwksFile(io: CliIo, path: string): Promise<{ keys: unknown[] }> {
  const text = await readInputFile(io, 'jwks-file', path);
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw new CliUsageError(`--jwks-file ${path}: holds a PRIVATE key; register the public key only (never give Mandate a private key)`);
  }
  if (text.includes('-----BEGIN PUBLIC KEY-----')) {
    try {
      return { keys: [createPublicKey(text).export({ format: 'jwk' })] };
    } catch {
      throw new CliUsageError(`--jwks-file ${path}: not a PEM public key that can be read`);
    }
  }
  const doc = parseMapping(text, 'jwks-file', path, 'a JWKS { keys: [...] } or a JWK');
  if (Array.isArray(doc.keys)) return { keys: doc.keys as unknown[] };
  if (typeof doc.kty === 'string') return { keys: [doc] };
  throw new CliUsageError(`--jwks-file ${path}: neither a JWKS ({ keys: [...] }) nor a JWK (no "kty")`);
}

/**
 * Builds the registration to validate from `--file` and the flags: a flag replaces the field it sets (the
 * credential flags together replace `credentials`). `kind` defaults to `agent`. Not validated here: the caller
 * runs `PrincipalRegistrationSchema`, so that every problem is reported with its field path.
 */
export async function registrationInput(args: CliArgs, io: CliIo): Promise<Record<string, unknown>> {
  for (const [flag, allowed] of Object.entries(ENUM_FLAGS)) checkEnumFlag(args, flag, allowed);
  const v = args.values;
  const file = v.file as string | undefined;
  if (file === undefined && v.id === undefined) {
    throw new CliUsageError('give the registration: --file FILE, or --id with --name, --owner, --mode (agents) and a credential (--spiffe-id, --jwks-file or --jwks-uri)');
  }
  const input: Record<string, unknown> = file === undefined ? {} : parseMapping(await readInputFile(io, 'file', file), 'file', file, 'one registration');
  const scalar: Record<string, string> = { id: 'id', kind: 'kind', name: 'name', owner: 'owner', mode: 'mode', dpop: 'dpop' };
  for (const [flag, field] of Object.entries(scalar)) if (typeof v[flag] === 'string') input[field] = v[flag];
  if (Array.isArray(v.workflow)) input.workflows = v.workflow;
  if (Array.isArray(v.audience)) input.audiences = v.audience;
  if (Array.isArray(v['api-scope'])) input.apiScopes = v['api-scope'];
  const credentials: unknown[] = [];
  for (const spiffeId of (v['spiffe-id'] as string[] | undefined) ?? []) credentials.push({ type: 'spiffe', spiffeId });
  for (const path of (v['jwks-file'] as string[] | undefined) ?? []) credentials.push({ type: 'jwks', jwks: await readJwksFile(io, path) });
  for (const uri of (v['jwks-uri'] as string[] | undefined) ?? []) credentials.push({ type: 'jwks_uri', uri });
  if (credentials.length > 0) input.credentials = credentials;
  input.kind ??= 'agent';
  // So that a registration without any credential is told what it lacks, not that a list is missing.
  input.credentials ??= [];
  return input;
}

/** The audit event of a registry change made from the command line (type `admin`, like the admin API's). */
export function cliPrincipalEvent(operation: string, actor: string, data: Record<string, unknown>): NewAuditEventV1 {
  return createAuditEvent({ type: 'admin', outcome: 'success', actor, data: { operation, ...data, source: 'cli' } }, { clock: systemClock });
}

/** The keys a credential takes in the store (one per JWK, by RFC 7638 thumbprint), with what to call each. */
export async function credentialKeys(credentials: readonly PrincipalCredential[]): Promise<Array<{ key: string; label: string }>> {
  const out: Array<{ key: string; label: string }> = [];
  for (const c of credentials) {
    if (c.type === 'spiffe') out.push({ key: `spiffe:${c.spiffeId}`, label: `SPIFFE ID ${c.spiffeId}` });
    else if (c.type === 'jwks_uri') out.push({ key: `jwks_uri:${c.uri}`, label: `jwks_uri ${c.uri}` });
    else if (c.type === 'client_secret') out.push({ key: `secret:${c.hash}`, label: 'a shared secret' });
    else {
      for (const jwk of c.jwks.keys) {
        const thumbprint = await calculateJwkThumbprint(jwk as JWK);
        out.push({ key: `jwk:${thumbprint}`, label: `public key sha256:${thumbprint}` });
      }
    }
  }
  return out;
}

/** Lines describing each credential: public keys by type, curve, alg, kid and thumbprint, never the whole JWK. */
export async function credentialLines(credentials: readonly PrincipalCredential[]): Promise<string[]> {
  const lines: string[] = [];
  for (const c of credentials) {
    if (c.type === 'spiffe') lines.push(`spiffe    ${c.spiffeId}`);
    else if (c.type === 'jwks_uri') lines.push(`jwks_uri  ${c.uri}`);
    else if (c.type === 'client_secret') lines.push('secret    a shared secret (hash stored; usable only with clientAuth.allowSharedSecrets)');
    else {
      for (const jwk of c.jwks.keys) {
        const kind = [jwk.kty, jwk.crv].filter((x) => typeof x === 'string').join(' ');
        const parts = [kind, ...(typeof jwk.alg === 'string' ? [`alg ${jwk.alg}`] : []), ...(typeof jwk.kid === 'string' ? [`kid ${JSON.stringify(jwk.kid)}`] : [])];
        let thumbprint: string;
        try {
          thumbprint = `sha256:${await calculateJwkThumbprint(jwk as JWK)}`;
        } catch {
          thumbprint = '(malformed key)';
        }
        lines.push(`jwk       ${thumbprint}  ${parts.join(', ')}`);
      }
    }
  }
  return lines.map(terminalSafe);
}

const iso = (ms: number | undefined): string => (ms === undefined ? 'never' : new Date(ms).toISOString());

// Read defensively: records written before API scopes existed have none.
const apiScopesOf = (p: PrincipalRecord): readonly string[] => (p as { apiScopes?: readonly string[] }).apiScopes ?? [];

/** What `source` means, for `show`. */
export function sourceText(p: PrincipalRecord): string {
  return p.source === 'config'
    ? 'config (declared in mandate.yaml: the file is authoritative for its fields; a restart never re-activates it)'
    : 'api (registered through the admin API or the CLI)';
}

/** `mandate agents show`: every field, credentials as thumbprints. */
export async function renderPrincipal(p: PrincipalRecord): Promise<string> {
  const rows: Array<[string, string]> = [
    ['id', p.id],
    ['kind', p.kind],
    ['name', p.name],
    ['owner', p.owner],
    ['mode', p.mode ?? '-'],
    ['status', p.status],
    ['dpop', p.dpop],
    ['source', sourceText(p)],
    ['workflows', p.workflows.length === 0 ? '(none)' : p.workflows.join(', ')],
    ['audiences', p.audiences.length === 0 ? '(none)' : p.audiences.join(', ')],
    ['api scopes', apiScopesOf(p).length === 0 ? '(none)' : apiScopesOf(p).join(', ')],
    ['created', iso(p.createdAt)],
    ['updated', iso(p.updatedAt)],
    ['last used', iso(p.lastUsedAt)],
  ];
  const out = rows.map(([k, v]) => `${`${k}:`.padEnd(12)} ${terminalSafe(v)}`);
  const creds = await credentialLines(p.credentials);
  out.push(`credentials (${creds.length}):`, ...creds.map((l) => `  ${l}`));
  return `${out.join('\n')}\n`;
}

/** `mandate agents list`: one line per principal, both kinds. */
export function renderPrincipalTable(list: readonly PrincipalRecord[]): string {
  if (list.length === 0) return 'no principals registered\n';
  const count = (p: PrincipalRecord) => p.credentials.reduce((n, c) => n + (c.type === 'jwks' ? c.jwks.keys.length : 1), 0);
  return renderTable(
    ['ID', 'KIND', 'MODE', 'STATUS', 'OWNER', 'SOURCE', 'CREDS', 'LAST USED', 'NAME'],
    list.map((p) => [p.id, p.kind, p.mode ?? '-', p.status, p.owner, p.source, String(count(p)), p.lastUsedAt === undefined ? 'never' : iso(p.lastUsedAt), p.name]),
  );
}

/**
 * The principal registry: every agent and service is registered — distinct, owned by an accountable person,
 * with its credentials, mode, workflows, audiences and status. An unregistered workload is never authenticated.
 *
 * Registrations come from the configuration file (`principals:` in mandate.yaml; the file is authoritative for
 * what it declares) and from the admin API / CLI. Both go through {@link PrincipalRegistrationSchema}, so the
 * same rules hold everywhere: a public key only (never a private part), an `https:` jwks_uri, a valid SPIFFE ID,
 * a mode for agents, one credential per principal at most once (the store refuses a credential held by another).
 */
import { z } from 'zod';
import type { Clock } from '../core/ports.ts';
import type { NewAuditEventV1 } from '../audit/audit-event.ts';
import { parseSpiffeId } from './spiffe.ts';
import type { PrincipalLookup, PrincipalStatus, RegisteredPrincipal } from './types.ts';

/** Principal ids: also OAuth `client_id`s, audit actors and Cedar entity ids. */
export const PRINCIPAL_ID = /^[a-z0-9][a-z0-9._:-]{0,127}$/;
const ID_EXPECTED = 'an id of 1..128 lower-case letters, digits or . _ : - starting with a letter or digit';

/** Principal statuses; only `active` authenticates. */
/**
 * Scopes of Mandate's own API. `evaluate`: the AuthZEN API; `policy:read` / `policy:reload`: the policy admin
 * API; `principals:read` / `principals:write`: the principal registry API; `tasks:read` / `tasks:write`: the
 * task admin API and the revocation feed; `users:read` / `users:write`: disabled users; `lockdown`: the
 * break-glass switch; `signals:manage`: Shared Signals transmitter streams. Additive: never rename one.
 */
export const MANDATE_API_SCOPES = [
  'evaluate',
  'policy:read',
  'policy:reload',
  'principals:read',
  'principals:write',
  'tasks:read',
  'tasks:write',
  'users:read',
  'users:write',
  'lockdown',
  'signals:manage',
  'vault:admin',
] as const;

export const PRINCIPAL_STATUSES = ['active', 'suspended', 'quarantined', 'retired'] as const satisfies readonly PrincipalStatus[];

// The SPIFFE ID rules live in spiffe.ts; a workload's ID also needs a path (a bare trust domain names no workload).
function validSpiffeId(s: string): boolean {
  const r = parseSpiffeId(s);
  return r.ok && r.value.path !== '';
}

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth', 'priv'];

const PublicJwkSchema = z
  .record(z.string(), z.unknown(), { error: 'a JWK object' })
  .superRefine((jwk, ctx) => {
    const priv = PRIVATE_JWK_MEMBERS.filter((m) => m in jwk);
    if (priv.length > 0) ctx.addIssue({ code: 'custom', message: `holds a private part (${priv.join(', ')}); register the PUBLIC key only` });
    if (!['RSA', 'EC', 'OKP'].includes(String(jwk.kty))) ctx.addIssue({ code: 'custom', message: 'kty must be RSA, EC or OKP (an asymmetric key)' });
    if (jwk.use !== undefined && jwk.use !== 'sig') ctx.addIssue({ code: 'custom', message: 'use must be "sig" when present' });
  });

/** One credential in a registration. */
export const CredentialSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({
      type: z.literal('spiffe'),
      spiffeId: z.string().refine(validSpiffeId, { error: 'a SPIFFE ID: spiffe://<trust domain>/<path>' }),
    }),
    z.strictObject({
      type: z.literal('jwks'),
      jwks: z.strictObject({ keys: z.array(PublicJwkSchema).min(1, { error: 'at least one key' }).max(16, { error: 'at most 16 keys' }) }),
    }),
    z.strictObject({
      type: z.literal('client_secret'),
      hash: z
        .string({ error: 'sha256:<64 hex digits> of a generated secret' })
        .regex(/^sha256:[0-9a-f]{64}$/, { error: 'sha256:<64 lower-case hex digits> of a generated secret (never the secret itself)' }),
    }),
    z.strictObject({
      type: z.literal('jwks_uri'),
      uri: z.url({ protocol: /^https$/, error: 'an https: URL' }).max(2048),
    }),
  ],
  { error: 'a credential: { type: spiffe, spiffeId } | { type: jwks, jwks: { keys } } | { type: jwks_uri, uri } | { type: client_secret, hash }' },
);

/** A registration, as the config file, the admin API and the CLI give it. */
export const PrincipalRegistrationSchema = z
  .strictObject({
    id: z.string({ error: ID_EXPECTED }).regex(PRINCIPAL_ID, { error: ID_EXPECTED }),
    kind: z.enum(['agent', 'service'], { error: 'agent or service' }),
    name: z.string().min(1).max(200),
    owner: z.string({ error: 'the accountable person (a user id as the IdP names it)' }).min(1).max(320),
    mode: z.enum(['chat', 'autonomous'], { error: 'chat or autonomous' }).optional(),
    workflows: z.array(z.string().min(1).max(128)).max(256).default([]),
    audiences: z.array(z.url({ error: 'a resource indicator: an absolute URL' }).max(2048)).max(64).default([]),
    apiScopes: z
      .array(z.enum(MANDATE_API_SCOPES, { error: `one of: ${MANDATE_API_SCOPES.join(', ')}` }))
      .max(MANDATE_API_SCOPES.length)
      .refine((list) => new Set(list).size === list.length, { error: 'each scope at most once' })
      .default([]),
    credentials: z.array(CredentialSchema).min(1, { error: 'at least one credential: every principal proves itself' }).max(16),
    status: z.enum(PRINCIPAL_STATUSES, { error: PRINCIPAL_STATUSES.join(', ') }).default('active'),
    dpop: z.enum(['required', 'optional'], { error: 'required or optional' }).default('required'),
  })
  .superRefine((p, ctx) => {
    if (p.kind === 'agent' && p.mode === undefined) ctx.addIssue({ code: 'custom', path: ['mode'], message: 'an agent needs a mode: chat or autonomous' });
    if (p.kind === 'service' && p.mode !== undefined) ctx.addIssue({ code: 'custom', path: ['mode'], message: 'a service has no mode' });
    if (p.kind === 'agent' && p.apiScopes.length > 0) {
      ctx.addIssue({ code: 'custom', path: ['apiScopes'], message: "only a service may hold scopes of Mandate's own API; an agent acts through mandates for resources" });
    }
  });

/** A validated registration. */
export type PrincipalRegistration = z.output<typeof PrincipalRegistrationSchema>;

/** Lists every problem of a registration as `path: message`. */
export function registrationProblems(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(registration)'}: ${i.message}`);
}

/** The registry's view of the store (the store implements it). */
export interface RegistryStore {
  get(id: string): Promise<(RegisteredPrincipal & { source: 'config' | 'api' }) | undefined>;
  bySpiffeId(spiffeId: string): Promise<RegisteredPrincipal | undefined>;
  list(): Promise<Array<RegisteredPrincipal & { source: 'config' | 'api' }>>;
  create(principal: RegisteredPrincipal & { source: 'config' | 'api'; updatedAt: number }, event: NewAuditEventV1): Promise<void>;
  update(id: string, patch: Partial<Omit<RegisteredPrincipal, 'id' | 'kind' | 'createdAt' | 'lastUsedAt'>> & { source?: 'config' | 'api' }, atMs: number, event: NewAuditEventV1): Promise<unknown>;
}

/** What {@link syncConfiguredPrincipals} changed. */
export interface SyncResult {
  created: string[];
  updated: string[];
  /** Declared earlier in the file, now absent: retired (never deleted: audit and inventory keep them). */
  retired: string[];
}

// Status is compared apart: see syncConfiguredPrincipals.
function sameRegistration(a: RegisteredPrincipal, b: PrincipalRegistration): boolean {
  const pick = (p: RegisteredPrincipal | PrincipalRegistration) => JSON.stringify([p.name, p.owner, p.mode ?? null, p.workflows, p.audiences, p.apiScopes, p.credentials, p.dpop]);
  return pick(a) === pick(b);
}

/**
 * Brings the registry in line with the configuration file: principals the file declares are created or
 * updated (the file is authoritative for them); those it declared before and no longer does are retired.
 * Principals registered through the API are left alone, but an id the file declares that the API registered
 * first is refused (the operator must pick one source). Every change is audited (`admin` events built by `event`).
 *
 * Status: the file can restrict (a declared `suspended`, `quarantined` or `retired` is applied) but a restart
 * never re-activates a principal that an administrator suspended or quarantined through the API — only the
 * API re-activates.
 */
export async function syncConfiguredPrincipals(
  store: RegistryStore,
  declared: readonly PrincipalRegistration[],
  deps: { clock: Clock; event: (operation: string, principalId: string) => NewAuditEventV1 },
): Promise<SyncResult> {
  const result: SyncResult = { created: [], updated: [], retired: [] };
  const now = deps.clock.now();
  const ids = new Set<string>();
  for (const p of declared) {
    if (ids.has(p.id)) throw new TypeError(`principals: ${p.id} is declared twice in the configuration`);
    ids.add(p.id);
    const existing = await store.get(p.id);
    if (existing === undefined) {
      await store.create({ ...p, source: 'config', createdAt: now, updatedAt: now }, deps.event('principals.create', p.id));
      result.created.push(p.id);
    } else if (existing.source !== 'config') {
      throw new TypeError(`principals: ${p.id} is declared in the configuration but was registered through the admin API; remove one of the two`);
    } else if (existing.kind !== p.kind) {
      throw new TypeError(`principals: ${p.id} was registered as ${existing.kind}; a principal's kind cannot change — register a new id`);
    } else {
      const restrict = p.status !== 'active' && p.status !== existing.status;
      if (!sameRegistration(existing, p) || restrict) {
        const { id: _id, kind: _kind, status, ...patch } = p;
        await store.update(p.id, { ...patch, ...(restrict ? { status } : {}), source: 'config' }, now, deps.event('principals.update', p.id));
        result.updated.push(p.id);
      }
    }
  }
  for (const p of await store.list()) {
    if (p.source === 'config' && !ids.has(p.id) && p.status !== 'retired') {
      await store.update(p.id, { status: 'retired' }, now, deps.event('principals.retire', p.id));
      result.retired.push(p.id);
    }
  }
  return result;
}

/** The read side the authenticators use (`PrincipalLookup`), over the store. */
export function principalLookup(store: Pick<RegistryStore, 'get' | 'bySpiffeId'>): PrincipalLookup {
  return {
    byId: (id) => (PRINCIPAL_ID.test(id) ? store.get(id) : Promise.resolve(undefined)),
    bySpiffeId: (spiffeId) => (validSpiffeId(spiffeId) ? store.bySpiffeId(spiffeId) : Promise.resolve(undefined)),
  };
}

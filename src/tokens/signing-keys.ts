/**
 * The token service's signing keys: generated on first start, kept in the store with their private part encrypted
 * under the KEK (key-encryption.ts), rotated with an overlap, and published as a JWKS that never holds a private part.
 *
 * Lifecycle of a key: `active` (signs new mandates; exactly one) → `retiring` (no longer signs, still published
 * until `retireAt` so that mandates it signed verify until they expire) → `retired` (gone from the JWKS; the row
 * stays for the record of which key signed what).
 *
 * Several nodes may share one store. The port has no transactions, so every node resolves the same view from the
 * same rows: the active key with the latest `activatedAt` (then the greatest kid) signs; any other `active` row
 * (two nodes generating on first start, or a crash mid-rotation) is demoted to `retiring` with an overlap, so
 * whatever it signed keeps verifying.
 *
 * @see RFC 7517 (JWK, JWKS), RFC 7638 (thumbprint as kid), RFC 8037 (Ed25519), RFC 7518 §3.4 (ES256)
 */
import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JWK,
  type JWSHeaderParameters,
} from 'jose';
import { InvalidTokenError, MandateError } from '../core/errors.ts';
import type { Clock } from '../core/ports.ts';
import { decryptPrivateJwk, encryptPrivateJwk, type Kek } from './key-encryption.ts';

/** JWS algorithms Mandate signs mandates with: EdDSA over Ed25519 (default) or ES256 over P-256. */
export type SigningAlgorithm = 'EdDSA' | 'ES256';

/** Every supported signing algorithm, in preference order. */
export const SIGNING_ALGORITHMS: readonly SigningAlgorithm[] = Object.freeze(['EdDSA', 'ES256']);

/** Where a key is in its lifecycle. */
export type SigningKeyState = 'active' | 'retiring' | 'retired';

/** One signing key as the store keeps it: plain, JSON-able data; the private part only ever encrypted. */
export interface StoredSigningKey {
  /** RFC 7638 SHA-256 thumbprint of the public key, base64url. */
  kid: string;
  alg: SigningAlgorithm;
  /** Public members only (`kty`, `crv`, `x`, `y`), plus `kid`, `alg`, `use`. */
  publicJwk: JWK;
  /** The private JWK as a compact JWE under the KEK, bound to `kid` (see key-encryption.ts). */
  encryptedPrivateJwk: string;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms: when it became the signing key. */
  activatedAt: number;
  /** Epoch ms: when a retiring key leaves the JWKS. */
  retireAt?: number;
  state: SigningKeyState;
}

/** The fields of a stored key that change after insertion. */
export interface SigningKeyUpdate {
  retireAt?: number;
  state?: SigningKeyState;
}

/**
 * What the key manager needs from the store. Implementations keep rows as given (JSON round-trip safe); `insert`
 * rejects a duplicate kid and `update` rejects an unknown one; all reject with `StoreUnavailableError` when the
 * store cannot answer, and the key manager fails closed. `event` is the audit event built by
 * {@link KeyManagerOptions.auditEvent} for this change, to be committed in the same transaction as the row.
 */
export interface SigningKeyStore<E = unknown> {
  list(): Promise<StoredSigningKey[]>;
  insert(key: StoredSigningKey, event?: E): Promise<void>;
  update(kid: string, changes: SigningKeyUpdate, event?: E): Promise<void>;
}

/** A change to the signing keys, described for the audit log (public facts only, never key material). */
export interface SigningKeyChange {
  /** `created`: a new key signs from now on; `retiring`: replaced, published until `retireAt`; `retired`: left the JWKS. */
  action: 'created' | 'retiring' | 'retired';
  kid: string;
  alg: SigningAlgorithm;
  /** Why: first start, a rotation, two active keys found (nodes raced or a rotation was interrupted), the overlap ended. */
  reason: 'first_start' | 'rotation' | 'duplicate_active' | 'overlap_ended';
  /** Epoch ms. */
  atMs: number;
  retireAt?: number;
  /** Who asked for a rotation (an admin's id), when known. */
  by?: string;
}

/** A key as `mandate keys list` shows it. */
export interface KeySummary {
  kid: string;
  alg: SigningAlgorithm;
  /** The state in effect now (a retiring key past `retireAt` shows as `retired` even before the store says so). */
  state: SigningKeyState;
  createdAt: number;
  activatedAt: number;
  retireAt?: number;
  /** True for the one key that signs new mandates. */
  signing: boolean;
  /** True when the key is in the published JWKS. */
  published: boolean;
}

/** The key that signs new mandates. `key` is a non-extractable private key. */
export interface Signer {
  kid: string;
  alg: SigningAlgorithm;
  key: CryptoKey;
}

/** The public JWKS document (RFC 7517 §5). */
export interface PublicJwks {
  keys: JWK[];
}

/** No active signing key exists (the store is empty and `ensureActiveKey` has not run). */
export class NoSigningKeyError extends MandateError {
  static override readonly code: string = 'ERR_NO_SIGNING_KEY';
  override readonly code: string = 'ERR_NO_SIGNING_KEY';
  override readonly status: number = 503;
  override readonly oauthError: string = 'temporarily_unavailable';
}

/** A stored signing key is inconsistent: a private member in its public JWK, a kid that is not its thumbprint, an unknown algorithm. */
export class SigningKeyInvalidError extends MandateError {
  static override readonly code: string = 'ERR_SIGNING_KEY_INVALID';
  override readonly code: string = 'ERR_SIGNING_KEY_INVALID';
  override readonly status: number = 500;
  override readonly oauthError: string = 'server_error';
}

/** Options of {@link createKeyManager}. */
export interface KeyManagerOptions<E = unknown> {
  store: SigningKeyStore<E>;
  /** Builds the audit event for each change; it is handed to the store with the row it records. */
  auditEvent?: (change: SigningKeyChange) => E;
  kek: Kek;
  clock: Clock;
  /** Algorithm of newly generated keys; default `EdDSA` (Ed25519). Existing keys keep theirs. */
  alg?: SigningAlgorithm;
  /**
   * How long a replaced key stays published: at least the longest mandate lifetime plus the verifiers' clock
   * tolerance, so that every mandate it signed verifies until it expires. See {@link overlapForTokenLifetime}.
   */
  overlapMs: number;
  /**
   * How old the cached view of the store may get before `signer()`/`jwks()` re-read it; default 30 s. A node that
   * has not yet seen another node's rotation keeps signing with the old key for at most this long, so the overlap
   * is extended by it.
   */
  refreshIntervalMs?: number;
  /** Least time between store re-reads caused by an unknown kid in `getVerificationKey`; default 5 s. */
  unknownKidCooldownMs?: number;
}

/** Signing key lifecycle over a {@link SigningKeyStore}. */
export interface KeyManager {
  /**
   * Generates and stores the first key if there is no active one (first start), then decrypts the active key, so
   * that a wrong KEK fails at startup (ERR_KEK_MISMATCH) and never leads to generating a replacement key.
   */
  ensureActiveKey(): Promise<void>;
  /** The key that signs new mandates (decrypted once, cached until the active kid changes). */
  signer(): Promise<Signer>;
  /** Public parts of the active and retiring keys, each with `kid`, `alg`, `use: "sig"`; never a private member. */
  jwks(): Promise<PublicJwks>;
  /** Makes a new key active now; the previous one retires after the overlap. */
  rotate(options?: { by?: string }): Promise<{ newKid: string; retiringKid: string | undefined }>;
  /** Every key, the signing one first, then newest first, with its effective state. */
  list(): Promise<KeySummary[]>;
  /** Re-reads the store now (another node may have rotated) and retires what is due. */
  refresh(): Promise<void>;
  /**
   * Public key for a mandate's protected header, shaped like jose's `JWTVerifyGetKey`. An unknown kid re-reads the
   * store at most once per cooldown; a kid that is still unknown, retired, or used with another `alg` is refused.
   */
  getVerificationKey(protectedHeader: JWSHeaderParameters): Promise<CryptoKey>;
}

/**
 * The overlap a rotation needs: the longest mandate lifetime plus the verifiers' clock tolerance, in ms.
 * @example overlapForTokenLifetime(config.tokens.maxLifetimeSeconds, config.tokens.clockToleranceSeconds)
 */
export function overlapForTokenLifetime(maxTokenLifetimeSeconds: number, clockToleranceSeconds: number): number {
  if (!Number.isFinite(maxTokenLifetimeSeconds) || maxTokenLifetimeSeconds <= 0) {
    throw new TypeError('overlapForTokenLifetime: maxTokenLifetimeSeconds must be a positive number');
  }
  if (!Number.isFinite(clockToleranceSeconds) || clockToleranceSeconds < 0) {
    throw new TypeError('overlapForTokenLifetime: clockToleranceSeconds must be a non-negative number');
  }
  return (maxTokenLifetimeSeconds + clockToleranceSeconds) * 1000;
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;
const KEY_SHAPE: Record<SigningAlgorithm, { kty: string; crv: string; members: readonly string[] }> = {
  EdDSA: { kty: 'OKP', crv: 'Ed25519', members: ['kty', 'crv', 'x'] },
  ES256: { kty: 'EC', crv: 'P-256', members: ['kty', 'crv', 'x', 'y'] },
};

function hasPrivateMember(jwk: object): boolean {
  return PRIVATE_MEMBERS.some((m) => Object.hasOwn(jwk, m));
}

/** The public JWK Mandate publishes: an allowlist of members, so nothing else can slip through. */
function publicProjection(key: Pick<StoredSigningKey, 'kid' | 'alg' | 'publicJwk'>): JWK {
  const shape = KEY_SHAPE[key.alg];
  const out: Record<string, unknown> = {};
  for (const m of shape.members) out[m] = key.publicJwk[m as keyof JWK];
  out.kid = key.kid;
  out.alg = key.alg;
  out.use = 'sig';
  return out as JWK;
}

async function validateRow(row: StoredSigningKey): Promise<void> {
  const where = `signing key ${typeof row.kid === 'string' ? row.kid : '(no kid)'}`;
  if (typeof row.kid !== 'string' || row.kid === '') throw new SigningKeyInvalidError(`${where} has no kid`);
  if (!SIGNING_ALGORITHMS.includes(row.alg)) throw new SigningKeyInvalidError(`${where} has an unsupported alg`);
  if (!['active', 'retiring', 'retired'].includes(row.state)) throw new SigningKeyInvalidError(`${where} has an unknown state`);
  if (row.publicJwk === null || typeof row.publicJwk !== 'object') throw new SigningKeyInvalidError(`${where} has no public JWK`);
  if (hasPrivateMember(row.publicJwk)) {
    throw new SigningKeyInvalidError(`${where} has a private member in its public JWK; it is refused and never published`);
  }
  const shape = KEY_SHAPE[row.alg];
  if (row.publicJwk.kty !== shape.kty || row.publicJwk.crv !== shape.crv) {
    throw new SigningKeyInvalidError(`${where} is not a ${shape.kty} ${shape.crv} key as ${row.alg} requires`);
  }
  let thumbprint: string;
  try {
    thumbprint = await calculateJwkThumbprint(row.publicJwk, 'sha256');
  } catch (error) {
    throw new SigningKeyInvalidError(`${where} has a malformed public JWK`, { cause: error });
  }
  if (thumbprint !== row.kid) throw new SigningKeyInvalidError(`${where}: the kid is not the thumbprint of its public key`);
}

/** Newest activation first; kid breaks ties so that every node picks the same key. */
function byActivationDesc(a: StoredSigningKey, b: StoredSigningKey): number {
  if (a.activatedAt !== b.activatedAt) return b.activatedAt - a.activatedAt;
  return a.kid < b.kid ? 1 : a.kid > b.kid ? -1 : 0;
}

/** The signing key first, then newest activation first. */
function signingFirst(activeKid: string | undefined): (a: StoredSigningKey, b: StoredSigningKey) => number {
  return (a, b) => (a.kid === activeKid ? -1 : b.kid === activeKid ? 1 : byActivationDesc(a, b));
}

function isPublished(row: StoredSigningKey, now: number): boolean {
  if (row.state === 'active') return true;
  return row.state === 'retiring' && row.retireAt !== undefined && row.retireAt > now;
}

async function generateStoredKey(alg: SigningAlgorithm, kek: Kek, now: number): Promise<StoredSigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  const encryptedPrivateJwk = await encryptPrivateJwk(kek, kid, await exportJWK(privateKey));
  return {
    kid,
    alg,
    publicJwk: publicProjection({ kid, alg, publicJwk }),
    encryptedPrivateJwk,
    createdAt: now,
    activatedAt: now,
    state: 'active',
  };
}

/**
 * Creates the key manager of one node.
 * @example
 * const keys = createKeyManager({ store, kek, clock: systemClock, overlapMs: overlapForTokenLifetime(600, 30) });
 * await keys.ensureActiveKey();
 * const { kid, alg, key } = await keys.signer();
 */
export function createKeyManager<E = unknown>(options: KeyManagerOptions<E>): KeyManager {
  const { store, kek, clock } = options;
  const event = (change: SigningKeyChange): E | undefined => options.auditEvent?.(change);
  const alg = options.alg ?? 'EdDSA';
  if (!SIGNING_ALGORITHMS.includes(alg)) throw new TypeError(`createKeyManager: alg must be one of ${SIGNING_ALGORITHMS.join(', ')}`);
  if (!Number.isFinite(options.overlapMs) || options.overlapMs <= 0) {
    throw new TypeError('createKeyManager: overlapMs must be a positive number (see overlapForTokenLifetime)');
  }
  const refreshIntervalMs = options.refreshIntervalMs ?? 30_000;
  const unknownKidCooldownMs = options.unknownKidCooldownMs ?? 5_000;
  if (!Number.isFinite(refreshIntervalMs) || refreshIntervalMs < 0) throw new TypeError('createKeyManager: refreshIntervalMs must be >= 0');
  // A node may sign with the old key for up to refreshIntervalMs after another node rotated.
  const retireDelayMs = options.overlapMs + refreshIntervalMs;

  let view: { readAt: number; rows: StoredSigningKey[]; activeKid: string | undefined } | undefined;
  let refreshing: Promise<void> | undefined;
  let signerCache: { kid: string; signer: Promise<Signer> } | undefined;
  const publicKeys = new Map<string, Promise<CryptoKey>>();
  let lastUnknownKidRefresh = Number.NEGATIVE_INFINITY;

  async function readStore(): Promise<void> {
    const rows = (await store.list()).map((r) => ({ ...r }));
    // Retired rows are never used again; a damaged one must not stop signing, so only live rows are checked.
    for (const row of rows) if (row.state !== 'retired') await validateRow(row);
    const now = clock.now();
    const actives = rows.filter((r) => r.state === 'active').sort(byActivationDesc);
    const winner = actives[0];
    for (const row of rows) {
      let changes: SigningKeyUpdate | undefined;
      let change: SigningKeyChange | undefined;
      if (row.state === 'active' && row !== winner) {
        changes = { state: 'retiring', retireAt: now + retireDelayMs };
        change = { action: 'retiring', kid: row.kid, alg: row.alg, reason: 'duplicate_active', atMs: now, retireAt: changes.retireAt };
      } else if (row.state === 'retiring' && row.retireAt === undefined) {
        changes = { retireAt: now + retireDelayMs };
        change = { action: 'retiring', kid: row.kid, alg: row.alg, reason: 'rotation', atMs: now, retireAt: changes.retireAt };
      } else if (row.state === 'retiring' && row.retireAt !== undefined && row.retireAt <= now) {
        changes = { state: 'retired' };
        change = { action: 'retired', kid: row.kid, alg: row.alg, reason: 'overlap_ended', atMs: now };
      }
      if (changes !== undefined && change !== undefined) {
        await store.update(row.kid, changes, event(change));
        Object.assign(row, changes);
      }
    }
    view = { readAt: now, rows, activeKid: winner?.kid };
    if (signerCache !== undefined && signerCache.kid !== view.activeKid) signerCache = undefined;
  }

  /** Reads run one after another, and each explicit refresh starts a read after the call, so it sees every earlier write. */
  function refresh(): Promise<void> {
    const read = (refreshing ?? Promise.resolve()).catch(() => undefined).then(readStore);
    const tracked = read.finally(() => {
      if (refreshing === tracked) refreshing = undefined;
    });
    refreshing = tracked;
    return tracked;
  }

  async function freshView(): Promise<NonNullable<typeof view>> {
    if (view === undefined || clock.now() - view.readAt >= refreshIntervalMs) {
      // A stale view only needs some newer read: share the one in flight instead of queueing another.
      await (refreshing ?? refresh());
    }
    return view as NonNullable<typeof view>;
  }

  async function loadSigner(row: StoredSigningKey): Promise<Signer> {
    const jwk = await decryptPrivateJwk(kek, row.kid, row.encryptedPrivateJwk);
    if (typeof jwk.d !== 'string') throw new SigningKeyInvalidError(`signing key ${row.kid}: the encrypted part holds no private key`);
    const shape = KEY_SHAPE[row.alg];
    const matches = shape.members.every((m) => jwk[m as keyof JWK] === row.publicJwk[m as keyof JWK]);
    if (!matches || (await calculateJwkThumbprint(jwk, 'sha256')) !== row.kid) {
      throw new SigningKeyInvalidError(`signing key ${row.kid}: the private key does not match the public key`);
    }
    const key = await importJWK(jwk, row.alg, { extractable: false });
    return { kid: row.kid, alg: row.alg, key: key as CryptoKey };
  }

  async function signer(): Promise<Signer> {
    const current = await freshView();
    const row = current.rows.find((r) => r.kid === current.activeKid);
    if (row === undefined) {
      throw new NoSigningKeyError('there is no active signing key; Mandate creates one at startup (ensureActiveKey)');
    }
    if (signerCache?.kid !== row.kid) {
      const pending = loadSigner(row);
      signerCache = { kid: row.kid, signer: pending };
      // A failed load is not cached: the next call tries again (e.g. after the KEK is fixed).
      pending.catch(() => {
        if (signerCache?.signer === pending) signerCache = undefined;
      });
    }
    return signerCache.signer;
  }

  async function jwks(): Promise<PublicJwks> {
    const current = await freshView();
    const now = clock.now();
    const keys = current.rows
      .filter((r) => isPublished(r, now))
      .sort(signingFirst(current.activeKid))
      .map(publicProjection);
    if (keys.some(hasPrivateMember)) throw new SigningKeyInvalidError('refusing to publish a JWKS with a private member');
    return { keys };
  }

  async function ensureActiveKey(): Promise<void> {
    await refresh();
    if (view?.activeKid === undefined) {
      const fresh = await generateStoredKey(alg, kek, clock.now());
      await store.insert(fresh, event({ action: 'created', kid: fresh.kid, alg: fresh.alg, reason: 'first_start', atMs: fresh.createdAt }));
      await refresh();
    }
    // Decrypt now, so that a wrong KEK stops startup with ERR_KEK_MISMATCH rather than the first token request.
    await signer();
  }

  async function rotate(rotateOptions: { by?: string } = {}): Promise<{ newKid: string; retiringKid: string | undefined }> {
    await refresh();
    const previous = view?.rows.find((r) => r.kid === view?.activeKid);
    const fresh = await generateStoredKey(alg, kek, clock.now());
    const by = rotateOptions.by !== undefined ? { by: rotateOptions.by } : {};
    // Insert first: a crash after this leaves two active rows, which the next refresh resolves (newest signs).
    await store.insert(fresh, event({ action: 'created', kid: fresh.kid, alg: fresh.alg, reason: 'rotation', atMs: fresh.createdAt, ...by }));
    if (previous !== undefined) {
      const atMs = clock.now();
      const retireAt = atMs + retireDelayMs;
      await store.update(
        previous.kid,
        { state: 'retiring', retireAt },
        event({ action: 'retiring', kid: previous.kid, alg: previous.alg, reason: 'rotation', atMs, retireAt, ...by }),
      );
    }
    await refresh();
    return { newKid: fresh.kid, retiringKid: previous?.kid };
  }

  async function list(): Promise<KeySummary[]> {
    await refresh();
    const current = view as NonNullable<typeof view>;
    const now = clock.now();
    return [...current.rows].sort(signingFirst(current.activeKid)).map((r) => {
      const published = isPublished(r, now);
      const state: SigningKeyState = r.state === 'retiring' && !published ? 'retired' : r.state;
      return {
        kid: r.kid,
        alg: r.alg,
        state,
        createdAt: r.createdAt,
        activatedAt: r.activatedAt,
        ...(r.retireAt !== undefined ? { retireAt: r.retireAt } : {}),
        signing: r.kid === current.activeKid,
        published,
      };
    });
  }

  async function getVerificationKey(protectedHeader: JWSHeaderParameters): Promise<CryptoKey> {
    const kid = protectedHeader.kid;
    if (typeof kid !== 'string' || kid === '') throw new InvalidTokenError('the token names no signing key (kid)');
    let current = await freshView();
    let row = current.rows.find((r) => r.kid === kid);
    if (row === undefined && clock.now() - lastUnknownKidRefresh >= unknownKidCooldownMs) {
      lastUnknownKidRefresh = clock.now();
      await refresh();
      current = view as NonNullable<typeof view>;
      row = current.rows.find((r) => r.kid === kid);
    }
    if (row === undefined || !isPublished(row, clock.now())) {
      throw new InvalidTokenError('the token is signed by a key Mandate does not know or has retired');
    }
    if (protectedHeader.alg !== row.alg) throw new InvalidTokenError(`the token's alg does not match its signing key (${row.alg})`);
    let pending = publicKeys.get(row.kid);
    if (pending === undefined) {
      pending = importJWK(publicProjection(row), row.alg) as Promise<CryptoKey>;
      publicKeys.set(row.kid, pending);
    }
    return pending;
  }

  return { ensureActiveKey, signer, jwks, rotate, list, refresh, getVerificationKey };
}

/**
 * An in-memory {@link SigningKeyStore} for tests and single-process demos. Rows go through a JSON round trip on the
 * way in and out, as a database would, so callers cannot share mutable state with it. Audit events handed to it
 * are kept in order, for assertions.
 */
export function createMemorySigningKeyStore(initial: readonly StoredSigningKey[] = []): SigningKeyStore<unknown> & {
  /** A copy of the rows, for assertions. */
  rows(): StoredSigningKey[];
  /** The audit events received with inserts and updates, in order. */
  events(): unknown[];
} {
  const rows = new Map<string, string>();
  const events: unknown[] = [];
  const copy = (row: StoredSigningKey): StoredSigningKey => JSON.parse(JSON.stringify(row)) as StoredSigningKey;
  for (const row of initial) rows.set(row.kid, JSON.stringify(row));
  const all = () => [...rows.values()].map((r) => JSON.parse(r) as StoredSigningKey);
  return {
    async list() {
      return all();
    },
    async insert(key, event) {
      if (rows.has(key.kid)) throw new Error(`signing key ${key.kid} already exists`);
      rows.set(key.kid, JSON.stringify(copy(key)));
      if (event !== undefined) events.push(event);
    },
    async update(kid, changes, event) {
      const existing = rows.get(kid);
      if (existing === undefined) throw new Error(`no signing key ${kid}`);
      if (event !== undefined) events.push(event);
      const row = JSON.parse(existing) as StoredSigningKey;
      if (changes.state !== undefined) row.state = changes.state;
      if (changes.retireAt !== undefined) row.retireAt = changes.retireAt;
      rows.set(kid, JSON.stringify(row));
    },
    rows: all,
    events: () => [...events],
  };
}

/**
 * Renders key summaries as text for `mandate keys list`: one line per key, newest first, times in ISO 8601.
 * Only public facts are shown (kid, alg, state, times); never key material.
 */
export function renderKeySummaries(keys: readonly KeySummary[]): string {
  if (keys.length === 0) return 'no signing keys (Mandate creates one at startup)\n';
  const iso = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString());
  const rows = keys.map((k) => [
    k.kid,
    k.alg,
    k.signing ? `${k.state} (signing)` : k.state,
    k.published ? 'yes' : 'no',
    iso(k.activatedAt),
    iso(k.retireAt),
  ]);
  const head = ['KID', 'ALG', 'STATE', 'IN JWKS', 'ACTIVATED', 'RETIRES'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const format = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  return `${[format(head), ...rows.map(format)].join('\n')}\n`;
}

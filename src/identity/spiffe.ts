/**
 * SPIFFE for workloads: SPIFFE IDs, trust bundles in the SPIFFE bundle format, JWT-SVID verification and
 * X.509-SVID (mTLS peer chain) verification. Each trust domain's bundle is the only source of keys and roots for
 * SVIDs of that trust domain; a bundle fetched from a URL or read from a file is refreshed as its
 * `spiffe_refresh_hint` says, and served from cache (then refused) when a refresh fails.
 *
 * @see https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md
 * @see https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Trust_Domain_and_Bundle.md
 * @see https://github.com/spiffe/spiffe/blob/main/standards/JWT-SVID.md
 * @see https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { readFile as fsReadFile } from 'node:fs/promises';
import type { DetailedPeerCertificate } from 'node:tls';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  Certificate as AsnCertificate,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_subjectAltName,
} from '@peculiar/asn1-x509';
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, importJWK, jwtVerify } from 'jose';
import type { JWK, JWSHeaderParameters, JWTPayload } from 'jose';
import type { Clock } from '../core/ports.ts';
import type { FetchJson, KeySource, KeySourceStatus, VerificationKey } from './types.ts';

// ---------------------------------------------------------------------------------------------------------
// SPIFFE IDs

/** A parsed, valid SPIFFE ID. */
export interface SpiffeId {
  /** The whole ID, as given (already canonical: a valid SPIFFE ID has exactly one spelling). */
  readonly id: string;
  /** The trust domain name (lowercase). */
  readonly trustDomain: string;
  /** The path, `''` or `/segment(/segment)*`. */
  readonly path: string;
}

/** Outcome of {@link parseSpiffeId}: the ID, or a client-safe reason why it is not one. */
export type SpiffeIdResult = { readonly ok: true; readonly value: SpiffeId } | { readonly ok: false; readonly reason: string };

const SPIFFE_SCHEME = 'spiffe://';
const MAX_SPIFFE_ID_BYTES = 2048;
const MAX_TRUST_DOMAIN_CHARS = 255;
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
const PATH_SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

/**
 * Whether `name` is a valid trust domain name: lowercase letters, digits, `.`, `-`, `_`; 1..255 characters.
 * @see SPIFFE-ID §2.1
 */
export function isTrustDomainName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= MAX_TRUST_DOMAIN_CHARS && TRUST_DOMAIN_RE.test(name);
}

/**
 * Parses a SPIFFE ID by the SPIFFE-ID rules: scheme `spiffe://` in lowercase, a lowercase trust domain, no
 * port, userinfo, query or fragment, and path segments of letters, digits, `.`, `-`, `_` that are neither empty,
 * `.` nor `..`, with no trailing slash. No percent-encoding is accepted.
 * @see SPIFFE-ID §2
 * @example parseSpiffeId('spiffe://example.org/ns/prod/sa/agent') // { ok: true, value: { trustDomain: 'example.org', ... } }
 */
export function parseSpiffeId(value: unknown): SpiffeIdResult {
  if (typeof value !== 'string') return { ok: false, reason: 'a SPIFFE ID must be a string' };
  if (value.length === 0) return { ok: false, reason: 'the SPIFFE ID is empty' };
  if (Buffer.byteLength(value, 'utf8') > MAX_SPIFFE_ID_BYTES) return { ok: false, reason: 'the SPIFFE ID is longer than 2048 bytes' };
  if (!value.startsWith(SPIFFE_SCHEME)) return { ok: false, reason: 'a SPIFFE ID starts with "spiffe://" (lowercase)' };
  const rest = value.slice(SPIFFE_SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (trustDomain.length === 0) return { ok: false, reason: 'the SPIFFE ID has no trust domain' };
  if (!isTrustDomainName(trustDomain)) {
    return {
      ok: false,
      reason:
        'the trust domain of a SPIFFE ID has only lowercase letters, digits, ".", "-" and "_" (no port, userinfo, query or fragment)',
    };
  }
  if (path !== '') {
    const segments = path.slice(1).split('/');
    for (const segment of segments) {
      if (segment === '') return { ok: false, reason: 'a SPIFFE ID path has no empty segments and no trailing "/"' };
      if (segment === '.' || segment === '..') return { ok: false, reason: 'a SPIFFE ID path has no "." or ".." segments' };
      if (!PATH_SEGMENT_RE.test(segment)) {
        return {
          ok: false,
          reason: 'SPIFFE ID path segments have only letters, digits, ".", "-" and "_" (no query, fragment or percent-encoding)',
        };
      }
    }
  }
  return { ok: true, value: Object.freeze({ id: value, trustDomain, path }) };
}

// ---------------------------------------------------------------------------------------------------------
// Bundles

/** A parsed SPIFFE trust bundle of one trust domain. */
export interface SpiffeBundle {
  readonly trustDomain: string;
  /** `spiffe_sequence`, if the bundle carries one. */
  readonly sequence?: number;
  /** `spiffe_refresh_hint` in seconds, if the bundle carries one. */
  readonly refreshHintSeconds?: number;
  /** JWT-SVID signing keys by `kid` (public JWKs, `use` = `jwt-svid`). */
  readonly jwtAuthorities: ReadonlyMap<string, JWK>;
  /** X.509-SVID roots (`use` = `x509-svid`), each a CA certificate. */
  readonly x509Authorities: readonly X509Certificate[];
}

/** A bundle document is not a valid SPIFFE bundle; the message names the entry and what is wrong (no key material). */
export class SpiffeBundleError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SpiffeBundleError';
  }
}

const MAX_BUNDLE_KEYS = 1000;
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** The public-key members of a JWK, for comparing a bundle entry's key with its certificate's key. */
function publicKeyMembers(jwk: Record<string, unknown>): string {
  const kty = jwk.kty;
  const names = kty === 'RSA' ? ['kty', 'n', 'e'] : kty === 'EC' ? ['kty', 'crv', 'x', 'y'] : ['kty', 'crv', 'x'];
  return names.map((n) => `${n}=${String(jwk[n])}`).join('&');
}

/**
 * Parses a SPIFFE bundle document strictly, for `trustDomain`. Refused: a document that is not a JWKS object,
 * a bad `spiffe_sequence` or `spiffe_refresh_hint`, any entry without a known `use` (`jwt-svid`, `x509-svid`),
 * any private or symmetric key, a `jwt-svid` entry without a unique `kid`, an `x509-svid` entry without exactly
 * one CA certificate in `x5c` or whose key is not that certificate's key.
 * @throws SpiffeBundleError
 * @see SPIFFE Trust Domain and Bundle §4
 */
export function parseSpiffeBundle(trustDomain: string, doc: unknown): SpiffeBundle {
  if (!isTrustDomainName(trustDomain)) throw new SpiffeBundleError('the trust domain name is not valid');
  if (!isPlainObject(doc)) throw new SpiffeBundleError('a SPIFFE bundle is a JSON object (a JWKS)');
  const { keys, spiffe_sequence: sequence, spiffe_refresh_hint: refreshHint } = doc;
  if (!Array.isArray(keys)) throw new SpiffeBundleError('a SPIFFE bundle has a "keys" array');
  if (keys.length > MAX_BUNDLE_KEYS) throw new SpiffeBundleError(`a SPIFFE bundle has at most ${MAX_BUNDLE_KEYS} keys`);
  if (sequence !== undefined && !isNonNegativeInteger(sequence)) {
    throw new SpiffeBundleError('"spiffe_sequence" must be a non-negative integer');
  }
  if (refreshHint !== undefined && !isNonNegativeInteger(refreshHint)) {
    throw new SpiffeBundleError('"spiffe_refresh_hint" must be a non-negative integer (seconds)');
  }
  const jwtAuthorities = new Map<string, JWK>();
  const x509Authorities: X509Certificate[] = [];
  keys.forEach((entry: unknown, i: number) => {
    const where = `keys[${i}]`;
    if (!isPlainObject(entry)) throw new SpiffeBundleError(`${where} is not a JSON object`);
    if (typeof entry.kty !== 'string') throw new SpiffeBundleError(`${where} has no "kty"`);
    if (entry.kty === 'oct') throw new SpiffeBundleError(`${where} is a symmetric key; a bundle holds public keys only`);
    for (const member of PRIVATE_JWK_MEMBERS) {
      if (member in entry) throw new SpiffeBundleError(`${where} holds private key material ("${member}"); a bundle holds public keys only`);
    }
    let keyObject;
    try {
      keyObject = createPublicKey({ key: entry as JWK & { kty: string }, format: 'jwk' });
    } catch (cause) {
      throw new SpiffeBundleError(`${where} is not a valid public JWK`, { cause });
    }
    if (entry.use === 'jwt-svid') {
      if (typeof entry.kid !== 'string' || entry.kid.length === 0) throw new SpiffeBundleError(`${where} (jwt-svid) has no "kid"`);
      if (jwtAuthorities.has(entry.kid)) throw new SpiffeBundleError(`${where} (jwt-svid) repeats kid "${entry.kid}"`);
      if (entry.x5c !== undefined || entry.x5u !== undefined) {
        throw new SpiffeBundleError(`${where} (jwt-svid) carries "x5c"/"x5u"; only x509-svid entries carry certificates`);
      }
      jwtAuthorities.set(entry.kid, Object.freeze({ ...entry }) as JWK);
    } else if (entry.use === 'x509-svid') {
      const x5c = entry.x5c;
      if (!Array.isArray(x5c) || x5c.length !== 1 || typeof x5c[0] !== 'string') {
        throw new SpiffeBundleError(`${where} (x509-svid) must carry exactly one certificate in "x5c"`);
      }
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(Buffer.from(x5c[0], 'base64'));
      } catch (cause) {
        throw new SpiffeBundleError(`${where} (x509-svid) "x5c" is not a DER certificate in base64`, { cause });
      }
      if (!cert.ca) throw new SpiffeBundleError(`${where} (x509-svid) certificate is not a CA certificate`);
      const certJwk = cert.publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
      const entryJwk = keyObject.export({ format: 'jwk' }) as Record<string, unknown>;
      if (publicKeyMembers(certJwk) !== publicKeyMembers(entryJwk)) {
        throw new SpiffeBundleError(`${where} (x509-svid) key does not match its certificate's key`);
      }
      x509Authorities.push(cert);
    } else if (entry.use === undefined) {
      throw new SpiffeBundleError(`${where} has no "use" (expected "jwt-svid" or "x509-svid")`);
    } else {
      throw new SpiffeBundleError(`${where} has an unknown "use" (expected "jwt-svid" or "x509-svid")`);
    }
  });
  return Object.freeze({
    trustDomain,
    ...(sequence === undefined ? {} : { sequence }),
    ...(refreshHint === undefined ? {} : { refreshHintSeconds: refreshHint }),
    jwtAuthorities,
    x509Authorities: Object.freeze(x509Authorities),
  });
}

/**
 * A trust domain's bundle: a `KeySource` for its JWT-SVIDs (by `kid`) and the roots of its X.509-SVIDs.
 * Bundles read from a URL or a file are refreshed lazily, on use, once the refresh interval has passed.
 */
export interface SpiffeBundleSource extends KeySource {
  readonly trustDomain: string;
  /** The current bundle, refreshed if due. Rejects with `SpiffeBundleError` when no usable bundle is at hand. */
  current(): Promise<SpiffeBundle>;
  /** The X.509-SVID roots of the current bundle. */
  x509Authorities(): Promise<readonly X509Certificate[]>;
  /** Fetch or read the bundle now (a no-op for an inline bundle). Rejects if that fails; the cached bundle stays. */
  refresh(): Promise<void>;
}

/** Options of {@link createBundleSource}. Give exactly one of `url`, `file`, `bundle`. */
export interface BundleSourceOptions {
  readonly trustDomain: string;
  /** The bundle endpoint (SPIFFE federation, `https_web` profile); fetched with `fetchJson`. */
  readonly url?: string;
  /** A bundle file (e.g. written by a SPIRE agent); re-read on the same schedule as a URL. */
  readonly file?: string;
  /** An inline bundle document (never refreshed). */
  readonly bundle?: unknown;
  /** The guarded fetch (outbound.ts); required with `url`. */
  readonly fetchJson?: FetchJson;
  /** Reads a file as UTF-8; defaults to node:fs. */
  readonly readFile?: (path: string) => Promise<string>;
  readonly clock: Clock;
  /** Refresh interval when the bundle has no `spiffe_refresh_hint` (default 300). */
  readonly defaultRefreshSeconds?: number;
  /** Floor for the refresh interval, whatever the hint says (default 5). */
  readonly minRefreshSeconds?: number;
  /** Ceiling for the refresh interval (default 86400). */
  readonly maxRefreshSeconds?: number;
  /** How long a bundle is served after refreshes start failing, counted from its last successful load (default 3600). */
  readonly maxStaleSeconds?: number;
  /** An unknown `kid` triggers at most one early refresh per this many seconds (default 30). */
  readonly unknownKidCooldownSeconds?: number;
}

const MAX_BUNDLE_FILE_BYTES = 1024 * 1024;

async function defaultReadFile(path: string): Promise<string> {
  const text = await fsReadFile(path, 'utf8');
  if (Buffer.byteLength(text, 'utf8') > MAX_BUNDLE_FILE_BYTES) throw new SpiffeBundleError('the bundle file is larger than 1 MiB');
  return text;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < 0) throw new TypeError(`${name} must be a non-negative number`);
  return v;
}

/**
 * Creates the bundle source of one trust domain.
 * @example
 * const bundle = createBundleSource({ trustDomain: 'example.org', url: 'https://spire.example.org/bundle', fetchJson, clock: systemClock });
 * const bundles = new Map([[bundle.trustDomain, bundle]]);
 * @see SPIFFE Trust Domain and Bundle §4.1.2 (`spiffe_refresh_hint`)
 */
export function createBundleSource(options: BundleSourceOptions): SpiffeBundleSource {
  const { trustDomain, url, file, bundle, clock } = options;
  if (!isTrustDomainName(trustDomain)) throw new TypeError(`"${String(trustDomain)}" is not a valid trust domain name`);
  const given = [url, file, bundle].filter((v) => v !== undefined).length;
  if (given !== 1) throw new TypeError('createBundleSource takes exactly one of url, file or bundle');
  if (url !== undefined && options.fetchJson === undefined) throw new TypeError('createBundleSource with a url needs fetchJson');
  const fetchJson = options.fetchJson;
  const readFile = options.readFile ?? defaultReadFile;
  const defaultRefreshMs = positive('defaultRefreshSeconds', options.defaultRefreshSeconds, 300) * 1000;
  const minRefreshMs = positive('minRefreshSeconds', options.minRefreshSeconds, 5) * 1000;
  const maxRefreshMs = positive('maxRefreshSeconds', options.maxRefreshSeconds, 86_400) * 1000;
  const maxStaleMs = positive('maxStaleSeconds', options.maxStaleSeconds, 3600) * 1000;
  const kidCooldownMs = positive('unknownKidCooldownSeconds', options.unknownKidCooldownSeconds, 30) * 1000;
  const sourceName = url ?? file ?? `inline bundle of ${trustDomain}`;

  let current: SpiffeBundle | undefined;
  let fetchedAt: number | undefined;
  let nextRefreshAt = 0;
  let lastFailure: string | undefined;
  let lastKidRefreshAt = Number.NEGATIVE_INFINITY;
  let inflight: Promise<void> | undefined;
  const keyCache = new WeakMap<SpiffeBundle, Map<string, Promise<VerificationKey>>>();

  if (bundle !== undefined) {
    current = parseSpiffeBundle(trustDomain, bundle);
    fetchedAt = clock.now();
    nextRefreshAt = Number.POSITIVE_INFINITY;
  }

  function intervalFor(b: SpiffeBundle): number {
    const hinted = b.refreshHintSeconds === undefined || b.refreshHintSeconds === 0 ? defaultRefreshMs : b.refreshHintSeconds * 1000;
    return Math.min(maxRefreshMs, Math.max(minRefreshMs, hinted));
  }

  async function load(): Promise<void> {
    let doc: unknown;
    if (url !== undefined && fetchJson !== undefined) {
      doc = (await fetchJson(url, { accept: 'application/json' })).json;
    } else if (file !== undefined) {
      const text = await readFile(file);
      try {
        doc = JSON.parse(text);
      } catch (cause) {
        throw new SpiffeBundleError('the bundle file is not valid JSON', { cause });
      }
    } else {
      return;
    }
    const next = parseSpiffeBundle(trustDomain, doc);
    // A sequence number going backwards means a stale or replayed bundle; keep the newer one we have.
    if (current?.sequence !== undefined && next.sequence !== undefined && next.sequence < current.sequence) {
      throw new SpiffeBundleError(`the fetched bundle's spiffe_sequence (${next.sequence}) is older than the cached one (${current.sequence})`);
    }
    current = next;
    fetchedAt = clock.now();
    lastFailure = undefined;
    nextRefreshAt = fetchedAt + intervalFor(next);
  }

  function refresh(): Promise<void> {
    if (bundle !== undefined) return Promise.resolve();
    inflight ??= load()
      .catch((err: unknown) => {
        lastFailure =
          err instanceof SpiffeBundleError
            ? err.message
            : `the bundle could not be loaded from ${sourceName}${err instanceof Error ? ` (${err.name})` : ''}`;
        // Retry soon, but not on every request.
        nextRefreshAt = clock.now() + Math.min(minRefreshMs * 2, current ? intervalFor(current) : defaultRefreshMs);
        throw err;
      })
      .finally(() => {
        inflight = undefined;
      });
    return inflight;
  }

  function usable(now: number): boolean {
    return current !== undefined && fetchedAt !== undefined && (bundle !== undefined || now - fetchedAt <= maxStaleMs || lastFailure === undefined);
  }

  async function currentBundle(): Promise<SpiffeBundle> {
    const now = clock.now();
    if (current === undefined || now >= nextRefreshAt) {
      try {
        await refresh();
      } catch {
        // Served from cache below while within maxStale; otherwise refused.
      }
    }
    if (current === undefined || !usable(clock.now())) {
      throw new SpiffeBundleError(`no usable trust bundle for ${trustDomain}${lastFailure ? `: ${lastFailure}` : ''}`);
    }
    return current;
  }

  async function keyFor(b: SpiffeBundle, kid: string, alg: string): Promise<VerificationKey> {
    let perBundle = keyCache.get(b);
    if (!perBundle) {
      perBundle = new Map();
      keyCache.set(b, perBundle);
    }
    const cacheKey = `${kid}\u0000${alg}`;
    let key = perBundle.get(cacheKey);
    if (!key) {
      const jwk = b.jwtAuthorities.get(kid);
      if (!jwk) throw new joseErrors.JWKSNoMatchingKey();
      if (jwk.alg !== undefined && jwk.alg !== alg) throw new joseErrors.JWKSNoMatchingKey();
      key = importJWK(jwk, alg).then((k) => {
        if (k instanceof Uint8Array) throw new joseErrors.JWKSNoMatchingKey();
        return k;
      });
      // A failed import is not cached.
      key.catch(() => perBundle.delete(cacheKey));
      perBundle.set(cacheKey, key);
    }
    return key;
  }

  return {
    trustDomain,
    current: currentBundle,
    async x509Authorities() {
      return (await currentBundle()).x509Authorities;
    },
    refresh,
    async getKey(protectedHeader: JWSHeaderParameters): Promise<VerificationKey> {
      const { kid, alg } = protectedHeader;
      // JWT-SVID §3: the kid header is required, and names the bundle key.
      if (typeof kid !== 'string' || kid.length === 0 || typeof alg !== 'string') throw new joseErrors.JWKSNoMatchingKey();
      let b: SpiffeBundle;
      try {
        b = await currentBundle();
      } catch {
        throw new joseErrors.JWKSNoMatchingKey('the trust bundle is unavailable');
      }
      const now = clock.now();
      if (!b.jwtAuthorities.has(kid) && bundle === undefined && now - lastKidRefreshAt >= kidCooldownMs) {
        lastKidRefreshAt = now;
        try {
          await refresh();
          b = await currentBundle();
        } catch {
          // Fall through: the kid stays unknown.
        }
      }
      return keyFor(b, kid, alg);
    },
    status(): KeySourceStatus {
      const now = clock.now();
      if (current === undefined || !usable(now)) {
        return { source: sourceName, state: 'failed', reason: lastFailure ?? 'the bundle has not been loaded yet', ...(fetchedAt === undefined ? {} : { fetchedAt }) };
      }
      if (lastFailure !== undefined) return { source: sourceName, state: 'stale', reason: lastFailure, ...(fetchedAt === undefined ? {} : { fetchedAt }) };
      return { source: sourceName, state: 'ok', ...(fetchedAt === undefined ? {} : { fetchedAt }) };
    },
  };
}

/** Bundles by trust domain name (a `Map<string, SpiffeBundleSource>` fits). */
export interface SpiffeBundleSet {
  get(trustDomain: string): SpiffeBundleSource | undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Verification errors

/**
 * An SVID was refused. `message` is client-safe (it never holds the token or a claim set); `detail` is for logs.
 * `reason` is `invalid` (the SVID is bad) or `unavailable` (no usable bundle for its trust domain: fail closed).
 * Callers map it to their OAuth error (`invalid_client`, `invalid_grant`, `invalid_token`).
 */
export class SvidVerificationError extends Error {
  readonly reason: 'invalid' | 'unavailable';
  readonly detail: string | undefined;
  constructor(message: string, options: { reason?: 'invalid' | 'unavailable'; detail?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SvidVerificationError';
    this.reason = options.reason ?? 'invalid';
    this.detail = options.detail;
  }
}

// ---------------------------------------------------------------------------------------------------------
// JWT-SVID

/** Algorithms a JWT-SVID may use. @see JWT-SVID §3.1 */
export const JWT_SVID_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'] as const;

/** Options of {@link verifyJwtSvid}. */
export interface VerifyJwtSvidOptions {
  /** The SVID's `aud` must contain at least one of these. */
  readonly audiences: readonly string[];
  readonly bundles: SpiffeBundleSet;
  readonly clock: Clock;
  /** Subset of {@link JWT_SVID_ALGORITHMS} (default: all of them). */
  readonly algorithms?: readonly string[];
  /** Tolerance for `exp`/`nbf`, in seconds (default 5). */
  readonly clockToleranceSeconds?: number;
}

/** A verified JWT-SVID. */
export interface VerifiedJwtSvid {
  readonly spiffeId: SpiffeId;
  /** `aud`, always as an array. */
  readonly audience: readonly string[];
  /** `exp`, epoch seconds. */
  readonly expiresAt: number;
  /** `iat`, epoch seconds, if present. */
  readonly issuedAt?: number;
  /** `jti`, if present. */
  readonly jti?: string;
  /** The verified claims; never log them whole. */
  readonly claims: JWTPayload;
}

/** Header parameters that would let a token choose its own key (RFC 8725 §3.10 / JWT-SVID: the bundle is the only key source). */
const KEY_CARRYING_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'] as const;
const MAX_JWT_LENGTH = 16 * 1024;
const COMPACT_JWS_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Shape checks on a compact JWS before anything is decoded. @internal */
export function isCompactJws(token: unknown): token is string {
  return typeof token === 'string' && token.length <= MAX_JWT_LENGTH && COMPACT_JWS_RE.test(token);
}

function invalid(message: string, detail?: string, cause?: unknown): SvidVerificationError {
  return new SvidVerificationError(message, { ...(detail === undefined ? {} : { detail }), ...(cause === undefined ? {} : { cause }) });
}

function validateAlgorithms(algorithms: readonly string[] | undefined): string[] {
  const list = [...(algorithms ?? JWT_SVID_ALGORITHMS)];
  for (const a of list) {
    if (!(JWT_SVID_ALGORITHMS as readonly string[]).includes(a)) throw new TypeError(`"${a}" is not a JWT-SVID algorithm`);
  }
  if (list.length === 0) throw new TypeError('at least one JWT-SVID algorithm is required');
  return list;
}

/**
 * Verifies a JWT-SVID by the SPIFFE rules: `alg` in the allowlist, `typ` absent or `JWT`/`JOSE`, no header that
 * carries or points to a key and no `crit`, `kid` naming a `jwt-svid` key in the bundle of the trust domain of
 * `sub` (and no other bundle), `sub` a valid SPIFFE ID, `aud` present and containing an expected audience, `exp`
 * present and not passed.
 * @throws SvidVerificationError
 * @see JWT-SVID §3, §4
 */
export async function verifyJwtSvid(token: string, options: VerifyJwtSvidOptions): Promise<VerifiedJwtSvid> {
  const algorithms = validateAlgorithms(options.algorithms);
  if (options.audiences.length === 0) throw new TypeError('verifyJwtSvid needs at least one expected audience');
  if (!isCompactJws(token)) throw invalid('the JWT-SVID is not a compact JWS');
  let header: JWSHeaderParameters;
  let unverified: JWTPayload;
  try {
    header = decodeProtectedHeader(token) as JWSHeaderParameters;
    unverified = decodeJwt(token);
  } catch (cause) {
    throw invalid('the JWT-SVID is malformed', undefined, cause);
  }
  if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) {
    throw invalid(`the JWT-SVID algorithm is not allowed (allowed: ${algorithms.join(', ')})`, `alg=${String(header.alg).slice(0, 32)}`);
  }
  if (header.typ !== undefined && !(typeof header.typ === 'string' && ['JWT', 'JOSE'].includes(header.typ.toUpperCase()))) {
    throw invalid('the JWT-SVID "typ" header must be absent, "JWT" or "JOSE"');
  }
  for (const name of KEY_CARRYING_HEADERS) {
    if (name in header) throw invalid(`the JWT-SVID carries a "${name}" header; keys come only from the trust bundle`);
  }
  if ('crit' in header) throw invalid('the JWT-SVID has a "crit" header, which is not supported');
  const parsed = parseSpiffeId(unverified.sub);
  if (!parsed.ok) throw invalid(`the JWT-SVID "sub" is not a valid SPIFFE ID: ${parsed.reason}`);
  const spiffeId = parsed.value;
  const source = options.bundles.get(spiffeId.trustDomain);
  if (!source) throw invalid(`the trust domain "${spiffeId.trustDomain}" is not trusted`);
  // Fail closed with a distinct reason when the trust domain's bundle cannot be had at all.
  try {
    await source.current();
  } catch (cause) {
    throw new SvidVerificationError(`the trust bundle of "${spiffeId.trustDomain}" is unavailable`, {
      reason: 'unavailable',
      detail: cause instanceof Error ? cause.message : undefined,
      cause,
    });
  }
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, (h, t) => source.getKey(h, t), {
      algorithms,
      audience: [...options.audiences],
      requiredClaims: ['sub', 'aud', 'exp'],
      currentDate: new Date(options.clock.now()),
      clockTolerance: options.clockToleranceSeconds ?? 5,
    }));
  } catch (cause) {
    throw invalid(describeJoseFailure(cause, 'JWT-SVID'), cause instanceof Error ? `${cause.name}: ${cause.message}` : undefined, cause);
  }
  // The signed `sub` is the one the bundle was chosen by (same token), but say so explicitly.
  if (payload.sub !== spiffeId.id) throw invalid('the JWT-SVID "sub" changed during verification');
  if (typeof payload.exp !== 'number') throw invalid('the JWT-SVID has no "exp"');
  const audience = typeof payload.aud === 'string' ? [payload.aud] : (payload.aud ?? []);
  return Object.freeze({
    spiffeId,
    audience: Object.freeze([...audience]),
    expiresAt: payload.exp,
    ...(typeof payload.iat === 'number' ? { issuedAt: payload.iat } : {}),
    ...(typeof payload.jti === 'string' ? { jti: payload.jti } : {}),
    claims: payload,
  });
}

/**
 * Client-safe text for a jose failure: what kind of check failed, never the values.
 * @internal
 */
export function describeJoseFailure(err: unknown, what: string): string {
  if (err instanceof joseErrors.JWTExpired) return `the ${what} has expired`;
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return `the ${what} "aud" does not name this server`;
    if (err.claim === 'nbf') return `the ${what} is not valid yet ("nbf")`;
    if (err.reason === 'missing') return `the ${what} has no "${err.claim}" claim`;
    return `the ${what} "${err.claim}" claim is invalid`;
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return `the ${what} signature does not verify`;
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return `no registered key matches the ${what} "kid"/"alg"`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return `the ${what} algorithm is not allowed`;
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid) return `the ${what} is malformed`;
  return `the ${what} could not be verified`;
}

// ---------------------------------------------------------------------------------------------------------
// X.509-SVID

/** A peer certificate chain, leaf first: DER bytes, PEM text or node:crypto certificates. */
export type PeerCertificateChain = readonly (X509Certificate | Uint8Array | string)[];

/** Options of {@link verifyX509Svid}. */
export interface VerifyX509SvidOptions {
  readonly bundles: SpiffeBundleSet;
  readonly clock: Clock;
  /** Most certificates accepted from the peer (default 8). */
  readonly maxChainLength?: number;
}

/** A verified X.509-SVID. */
export interface VerifiedX509Svid {
  readonly spiffeId: SpiffeId;
  /** The leaf's `notAfter`, epoch seconds. */
  readonly expiresAt: number;
  readonly leaf: X509Certificate;
}

/**
 * Walks `tls.TLSSocket#getPeerCertificate(true)` into a DER chain, leaf first, stopping at a self-issued
 * certificate or a loop.
 */
export function peerCertificateChain(peer: DetailedPeerCertificate): Buffer[] {
  const chain: Buffer[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  let cur: DetailedPeerCertificate | undefined = peer;
  while (cur && cur.raw && !seen.has(cur) && chain.length < 16) {
    seen.add(cur);
    chain.push(cur.raw);
    cur = cur.issuerCertificate === cur ? undefined : cur.issuerCertificate;
  }
  return chain;
}

function toCertificate(input: X509Certificate | Uint8Array | string): X509Certificate {
  if (input instanceof X509Certificate) return input;
  if (typeof input === 'string') return new X509Certificate(input);
  return new X509Certificate(Buffer.from(input.buffer, input.byteOffset, input.byteLength));
}

interface CertExtensions {
  readonly uris: readonly string[];
  readonly keyUsage: number | undefined;
  readonly ca: boolean | undefined;
  readonly pathLength: number | undefined;
}

/**
 * The extensions SPIFFE rules need, decoded by @peculiar/asn1-x509 (node:crypto exposes neither key usage bits
 * nor a structured SAN list). A repeated extension is refused (RFC 5280 §4.2).
 */
function extensionsOf(cert: X509Certificate): CertExtensions {
  const parsed = AsnConvert.parse(cert.raw, AsnCertificate);
  const seen = new Set<string>();
  let uris: string[] = [];
  let keyUsage: number | undefined;
  let ca: boolean | undefined;
  let pathLength: number | undefined;
  for (const ext of parsed.tbsCertificate.extensions ?? []) {
    if (seen.has(ext.extnID)) throw new Error(`repeated extension ${ext.extnID}`);
    seen.add(ext.extnID);
    const value = ext.extnValue.buffer;
    if (ext.extnID === id_ce_subjectAltName) {
      uris = AsnConvert.parse(value, SubjectAlternativeName)
        .filter((n) => n.uniformResourceIdentifier !== undefined)
        .map((n) => n.uniformResourceIdentifier as string);
    } else if (ext.extnID === id_ce_keyUsage) {
      keyUsage = AsnConvert.parse(value, KeyUsage).toNumber();
    } else if (ext.extnID === id_ce_basicConstraints) {
      const bc = AsnConvert.parse(value, BasicConstraints);
      ca = bc.cA;
      pathLength = bc.pathLenConstraint;
    }
  }
  return { uris, keyUsage, ca, pathLength };
}

function validityOf(cert: X509Certificate): { from: number; to: number } {
  return { from: Date.parse(cert.validFrom), to: Date.parse(cert.validTo) };
}

/**
 * Verifies an mTLS peer's X.509-SVID chain (leaf first) by the SPIFFE rules: the leaf has exactly one URI SAN,
 * a valid SPIFFE ID; it is not a CA; its key usage has `digitalSignature` and neither `keyCertSign` nor
 * `cRLSign`; every other certificate the peer sent is a CA with `keyCertSign`; each certificate is signed by the
 * next; the last chains to (or is) a root in the bundle of the leaf's trust domain — no other bundle; every
 * certificate of the path, the root included, is within its validity window at `clock`; path-length
 * constraints hold.
 * @throws SvidVerificationError
 * @see X509-SVID §4, §5
 */
export async function verifyX509Svid(chainInput: PeerCertificateChain, options: VerifyX509SvidOptions): Promise<VerifiedX509Svid> {
  const maxChain = options.maxChainLength ?? 8;
  if (!Array.isArray(chainInput) || chainInput.length === 0) throw invalid('no client certificate was presented');
  if (chainInput.length > maxChain) throw invalid(`the client certificate chain is longer than ${maxChain}`);
  let chain: X509Certificate[];
  let exts: CertExtensions[];
  try {
    chain = chainInput.map(toCertificate);
    exts = chain.map(extensionsOf);
  } catch (cause) {
    throw invalid('the client certificate chain could not be parsed', undefined, cause);
  }
  const leaf = chain[0] as X509Certificate;
  const leafExt = exts[0] as CertExtensions;

  if (leafExt.uris.length !== 1) throw invalid(`an X.509-SVID has exactly one URI SAN (found ${leafExt.uris.length})`);
  const parsed = parseSpiffeId(leafExt.uris[0]);
  if (!parsed.ok) throw invalid(`the X.509-SVID URI SAN is not a valid SPIFFE ID: ${parsed.reason}`);
  const spiffeId = parsed.value;
  if (leaf.ca || leafExt.ca === true) throw invalid('the X.509-SVID leaf is a CA certificate');
  if (leafExt.keyUsage === undefined) throw invalid('the X.509-SVID leaf has no key usage extension');
  if ((leafExt.keyUsage & KeyUsageFlags.digitalSignature) === 0) throw invalid('the X.509-SVID leaf key usage lacks digitalSignature');
  if ((leafExt.keyUsage & (KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)) !== 0) {
    throw invalid('the X.509-SVID leaf key usage has keyCertSign or cRLSign');
  }
  for (let i = 1; i < chain.length; i++) {
    const e = exts[i] as CertExtensions;
    if (!(chain[i] as X509Certificate).ca) throw invalid('a certificate above the leaf is not a CA certificate');
    if (e.keyUsage !== undefined && (e.keyUsage & KeyUsageFlags.keyCertSign) === 0) {
      throw invalid('a signing certificate in the chain lacks keyCertSign');
    }
    for (const uri of e.uris) {
      const id = parseSpiffeId(uri);
      if (id.ok && id.value.trustDomain !== spiffeId.trustDomain) throw invalid('a signing certificate in the chain belongs to another trust domain');
    }
  }

  const source = options.bundles.get(spiffeId.trustDomain);
  if (!source) throw invalid(`the trust domain "${spiffeId.trustDomain}" is not trusted`);
  let roots: readonly X509Certificate[];
  try {
    roots = await source.x509Authorities();
  } catch (cause) {
    throw new SvidVerificationError(`the trust bundle of "${spiffeId.trustDomain}" is unavailable`, {
      reason: 'unavailable',
      detail: cause instanceof Error ? cause.message : undefined,
      cause,
    });
  }

  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i] as X509Certificate;
    const parent = chain[i + 1] as X509Certificate;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw invalid('the client certificate chain is broken: a certificate is not signed by the next one');
    }
  }
  // The path ends at a bundle root: either the peer sent the root itself, or its last certificate is signed by one.
  let path = chain;
  const top = chain[chain.length - 1] as X509Certificate;
  let anchor = roots.find((r) => r.raw.equals(top.raw));
  if (anchor) {
    path = chain.slice(0, -1);
  } else {
    anchor = roots.find((r) => top.checkIssued(r) && top.verify(r.publicKey));
  }
  if (!anchor || path.length === 0) throw invalid(`the client certificate does not chain to the trust bundle of "${spiffeId.trustDomain}"`);

  const nowMs = options.clock.now();
  for (const cert of [...path, anchor]) {
    const { from, to } = validityOf(cert);
    if (!(nowMs >= from)) throw invalid(cert === leaf ? 'the X.509-SVID is not valid yet' : 'a certificate in the chain is not valid yet');
    if (!(nowMs <= to)) throw invalid(cert === leaf ? 'the X.509-SVID has expired' : 'a certificate in the chain has expired');
  }
  // basicConstraints pathLenConstraint: CA at path index j (anchor at index path.length) may have j-1 intermediates below it.
  const pathCas: { ext: CertExtensions; index: number }[] = path.slice(1).map((_, k) => ({ ext: exts[k + 1] as CertExtensions, index: k + 1 }));
  let anchorExt: CertExtensions;
  try {
    anchorExt = extensionsOf(anchor);
  } catch (cause) {
    throw invalid('a trust bundle root could not be parsed', undefined, cause);
  }
  pathCas.push({ ext: anchorExt, index: path.length });
  for (const { ext, index } of pathCas) {
    if (ext.pathLength !== undefined && index - 1 > ext.pathLength) throw invalid('the client certificate chain exceeds a path length constraint');
  }

  return Object.freeze({ spiffeId, expiresAt: Math.floor(validityOf(leaf).to / 1000), leaf });
}

/**
 * Verification key sources: a static JWKS (a file read at start) and a remote JWKS behind a bounded cache with
 * rotation. Key selection and import are jose's (`createLocalJWKSet`); this file decides which keys may be used
 * at all, when to refetch, and when to stop trusting what it has.
 *
 * Remote rules (issue 4 §1): an unknown `kid` causes at most one refetch per cooldown; concurrent refreshes
 * coalesce into one fetch; a key set larger than `maxKeys`, or holding private or symmetric key material, is
 * refused whole; keys not meant for signatures are dropped; when the endpoint is unreachable the cached keys serve
 * until `maxAgeMs` after they were fetched, and then the source fails closed and `status()` says why.
 */
import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWK, type JWSHeaderParameters, type FlattenedJWSInput } from 'jose';
import { ConfigInvalidError, InvalidTokenError, isMandateError, MandateError } from '../core/errors.ts';
import type { Clock } from '../core/ports.ts';
import type { FetchJson, KeySource, KeySourceStatus, VerificationKey } from './types.ts';

/** No key of the source matches the token's header (`kid`, `alg`). */
export class UnknownKeyError extends InvalidTokenError {
  static override readonly code: string = 'ERR_UNKNOWN_KEY';
  override readonly code: string = 'ERR_UNKNOWN_KEY';
}

/**
 * The source has no keys it may use (never fetched, refused, or older than their maximum age): every token it
 * would verify is refused (fail closed) until a refresh succeeds. This is not the token's fault, so it is not an
 * `InvalidTokenError`: it renders as 503 `temporarily_unavailable`, with `Retry-After` when known.
 */
export class KeysUnavailableError extends MandateError {
  static override readonly code: string = 'ERR_KEYS_UNAVAILABLE';
  override readonly code: string = 'ERR_KEYS_UNAVAILABLE';
  override readonly status: number = 503;
  override readonly oauthError: string = 'temporarily_unavailable';
}

/** Members that make a JWK private or symmetric; a published key set must hold none of them. */
const SECRET_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;
const SIGNING_KEY_TYPES = new Set(['RSA', 'EC', 'OKP']);

/** Result of checking a key set: the usable signing keys, or why the set is refused. */
type CheckedKeySet = { ok: true; jwks: JSONWebKeySet; dropped: number } | { ok: false; reason: string };

/**
 * Checks a JWKS document: an object with a `keys` array of at most `maxKeys` members, none with private or
 * symmetric material; keys whose `use` is not `sig`, whose `key_ops` do not include `verify`, or whose `kty` is
 * not RSA, EC or OKP are dropped. At least one key must remain.
 */
export function checkKeySet(value: unknown, maxKeys: number): CheckedKeySet {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not a JWKS (expected an object with a keys array)' };
  const keys = (value as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) return { ok: false, reason: 'not a JWKS (expected an object with a keys array)' };
  if (keys.length > maxKeys) return { ok: false, reason: `key set has ${keys.length} keys, more than the limit of ${maxKeys}` };
  const usable: JWK[] = [];
  for (const key of keys as unknown[]) {
    if (typeof key !== 'object' || key === null || Array.isArray(key)) return { ok: false, reason: 'key set holds a member that is not a JWK' };
    const jwk = key as Record<string, unknown>;
    // A private or symmetric key in a published set means the set (or the issuer) is compromised or misconfigured.
    if (SECRET_MEMBERS.some((m) => m in jwk)) return { ok: false, reason: 'key set holds private or symmetric key material' };
    if (typeof jwk.kty !== 'string' || !SIGNING_KEY_TYPES.has(jwk.kty)) continue;
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) continue;
    if (typeof jwk.alg === 'string' && (jwk.alg === 'none' || /^HS/i.test(jwk.alg))) continue;
    if (jwk.kid !== undefined && typeof jwk.kid !== 'string') return { ok: false, reason: 'key set holds a key whose kid is not a string' };
    // `EdDSA` with an Ed25519 key and `Ed25519` (RFC 9864) name the same algorithm; clients use either (openid-client
    // signs as Ed25519). The key type and curve still pin it, so the declared name must not split them.
    if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519' && (jwk.alg === 'EdDSA' || jwk.alg === 'Ed25519')) {
      const { alg: _alg, ...rest } = jwk;
      usable.push(rest as JWK);
      continue;
    }
    usable.push(jwk as JWK);
  }
  if (usable.length === 0) return { ok: false, reason: 'key set holds no usable signing key' };
  return { ok: true, jwks: { keys: usable }, dropped: keys.length - usable.length };
}

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;

/** Selects a key with jose, turning jose's selection errors into Mandate errors. */
async function selectKey(set: LocalKeySet, header: JWSHeaderParameters, token: FlattenedJWSInput, source: string): Promise<VerificationKey> {
  try {
    return await set(header, token);
  } catch (cause) {
    if (cause instanceof joseErrors.JWKSMultipleMatchingKeys) {
      throw new UnknownKeyError('the token names no key id (kid) and the issuer has several matching keys', { detail: `source ${source}`, cause });
    }
    if (cause instanceof joseErrors.JWKSNoMatchingKey) {
      throw new UnknownKeyError('no key of the issuer matches the token (kid, alg)', { detail: `source ${source}`, cause });
    }
    if (cause instanceof joseErrors.JOSENotSupported) {
      throw new UnknownKeyError('the token uses an algorithm no key of the issuer supports', { detail: `source ${source}`, cause });
    }
    throw new UnknownKeyError('the issuer key matching the token could not be used', { detail: `source ${source}`, cause });
  }
}

/** Options of {@link createStaticKeySource}. */
export interface StaticKeySourceOptions {
  /** Where the keys came from (a file path), for `status()` and logs. */
  readonly source: string;
  /** Largest number of keys accepted (default 50). */
  readonly maxKeys?: number;
}

/**
 * A key source over a fixed JWKS (e.g. read from a file at start). The set is checked like a fetched one.
 *
 * @throws ConfigInvalidError when the set is not a valid public JWKS with at least one signing key.
 */
export function createStaticKeySource(jwks: unknown, options: StaticKeySourceOptions): KeySource {
  const checked = checkKeySet(jwks, options.maxKeys ?? 50);
  if (!checked.ok) {
    throw new ConfigInvalidError(`the JWKS from ${options.source} is refused: ${checked.reason}`, { detail: `source ${options.source}` });
  }
  let set: LocalKeySet;
  try {
    set = createLocalJWKSet(checked.jwks);
  } catch (cause) {
    throw new ConfigInvalidError(`the JWKS from ${options.source} is malformed`, { detail: `source ${options.source}`, cause });
  }
  const status: KeySourceStatus = { source: options.source, state: 'ok' };
  return {
    getKey: (header, token) => selectKey(set, header, token, options.source),
    status: () => status,
  };
}

/** Options of {@link createRemoteKeySource}. */
export interface RemoteKeySourceOptions {
  /** The JWKS URL (`jwks_uri`). */
  readonly url: string;
  /** The guarded fetch (see outbound.ts). */
  readonly fetchJson: FetchJson;
  readonly clock: Clock;
  /** Least time between two fetches triggered by unknown `kid`s or by failures (default 30 s). */
  readonly cooldownMs?: number;
  /** Age after which cached keys are refreshed on the next use (default 10 min). */
  readonly refreshMs?: number;
  /** Age after which cached keys are no longer trusted if no refresh succeeded (default 24 h). */
  readonly maxAgeMs?: number;
  /** Largest number of keys accepted in one set (default 50). */
  readonly maxKeys?: number;
}

/** A remote key source, with a way to fetch ahead of the first token. */
export interface RemoteKeySource extends KeySource {
  /**
   * Fetches the set now, joining a fetch in progress. Resolves once the attempt is over, whether it succeeded
   * or not (`status()` tells); never rejects.
   */
  refresh(): Promise<void>;
}

/**
 * A JWKS fetched from `url` through the guarded fetch and cached with rotation (see the file comment for rules).
 *
 * @example
 * const keys = createRemoteKeySource({ url: metadata.jwks_uri, fetchJson, clock: systemClock });
 * await jwtVerify(token, keys.getKey, { issuer, audience, algorithms });
 */
export function createRemoteKeySource(options: RemoteKeySourceOptions): RemoteKeySource {
  const { url, fetchJson, clock } = options;
  const cooldownMs = options.cooldownMs ?? 30_000;
  const refreshMs = options.refreshMs ?? 10 * 60_000;
  const maxAgeMs = options.maxAgeMs ?? 24 * 3_600_000;
  const maxKeys = options.maxKeys ?? 50;
  if (!(cooldownMs >= 0 && refreshMs > 0 && maxAgeMs >= refreshMs && maxKeys > 0)) {
    throw new TypeError('createRemoteKeySource: need cooldownMs >= 0, refreshMs > 0, maxAgeMs >= refreshMs, maxKeys > 0');
  }
  const source = url;

  let set: LocalKeySet | undefined;
  let fetchedAt: number | undefined;
  let lastAttemptAt: number | undefined;
  /** Why the last attempt failed, if it did (client-safe). */
  let lastFailure: string | undefined;
  let inflight: Promise<void> | undefined;

  async function fetchOnce(): Promise<void> {
    lastAttemptAt = clock.now();
    try {
      const { json } = await fetchJson(url, { accept: 'application/jwk-set+json, application/json' });
      const checked = checkKeySet(json, maxKeys);
      if (!checked.ok) {
        lastFailure = `the key set was refused: ${checked.reason}`;
        return;
      }
      set = createLocalJWKSet(checked.jwks);
      fetchedAt = clock.now();
      lastFailure = undefined;
    } catch (error) {
      lastFailure = isMandateError(error) ? `the key set could not be fetched: ${error.description}` : 'the key set could not be fetched';
    }
  }

  /** Starts a fetch or joins the one in progress. */
  function refresh(): Promise<void> {
    inflight ??= fetchOnce().finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  const coolingDown = (now: number) => lastAttemptAt !== undefined && now - lastAttemptAt < cooldownMs;
  const usable = (now: number) => set !== undefined && fetchedAt !== undefined && now - fetchedAt <= maxAgeMs;

  function unavailable(now: number): KeysUnavailableError {
    const why =
      fetchedAt === undefined
        ? (lastFailure ?? 'the key set has not been fetched yet')
        : `the cached keys are older than their maximum age (${Math.round(maxAgeMs / 1000)} s)${lastFailure === undefined ? '' : ` and ${lastFailure}`}`;
    return new KeysUnavailableError(`the issuer's keys are unavailable: ${why}`, {
      detail: `source ${source}; fetchedAt ${fetchedAt ?? 'never'}; lastAttemptAt ${lastAttemptAt ?? 'never'}; now ${now}`,
      extra: { retryAfterSeconds: Math.max(1, Math.ceil((cooldownMs - (lastAttemptAt === undefined ? cooldownMs : now - lastAttemptAt)) / 1000)) },
    });
  }

  async function getKey(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<VerificationKey> {
    let now = clock.now();
    if (inflight !== undefined) {
      await inflight;
    } else if (!usable(now)) {
      // Nothing to serve: fetch, unless a recent attempt failed (bounded retries against a dead endpoint).
      if (!coolingDown(now)) await refresh();
    } else if (fetchedAt !== undefined && now - fetchedAt >= refreshMs && !coolingDown(now)) {
      // Due for refresh but still trusted: refresh in the background and serve what we have.
      void refresh();
    }
    now = clock.now();
    if (!usable(now) || set === undefined) throw unavailable(now);
    try {
      return await selectKey(set, header, token, source);
    } catch (error) {
      if (!(error instanceof UnknownKeyError) || coolingDown(now)) throw error;
    }
    // An unknown kid may be a rotation at the issuer: refetch, at most once per cooldown.
    await refresh();
    now = clock.now();
    if (!usable(now) || set === undefined) throw unavailable(now);
    return selectKey(set, header, token, source);
  }

  function status(): KeySourceStatus {
    const now = clock.now();
    if (!usable(now)) {
      const { description } = unavailable(now);
      return { source, state: 'failed', reason: description, ...(fetchedAt === undefined ? {} : { fetchedAt }) };
    }
    if (lastFailure !== undefined) {
      return { source, state: 'stale', reason: `serving cached keys: ${lastFailure}`, ...(fetchedAt === undefined ? {} : { fetchedAt }) };
    }
    return { source, state: 'ok', ...(fetchedAt === undefined ? {} : { fetchedAt }) };
  }

  return { getKey, status, refresh };
}

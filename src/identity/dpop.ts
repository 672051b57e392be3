/**
 * DPoP proof verification (RFC 9449) at the token endpoint and at protected resources, with stateless server
 * nonces: a nonce is an HMAC of the current time window under a shared secret, so every node holding the secret
 * issues and accepts the same nonces without shared state (the current and the previous window are accepted).
 *
 * @see RFC 9449 §4.3 (checking DPoP proofs), §7 (resource access), §8–9 (server-provided nonces)
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { EmbeddedJWK, base64url, calculateJwkThumbprint, decodeProtectedHeader, jwtVerify } from 'jose';
import type { JWK, JWSHeaderParameters, JWTPayload } from 'jose';
import { InvalidDpopProofError, UseDpopNonceError } from '../core/errors.ts';
import type { DpopErrorSite } from '../core/errors.ts';
import type { Clock } from '../core/ports.ts';
import type { ReplayCache } from './types.ts';

/** Asymmetric JWS algorithms a DPoP verifier may be configured with (never `none`, never HMAC). */
export const DPOP_SUPPORTED_ALGORITHMS = [
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
  'PS256',
  'PS384',
  'PS512',
  'RS256',
  'RS384',
  'RS512',
] as const;

/** The default allowlist, as advertised in `dpop_signing_alg_values_supported` and the `DPoP` challenge. */
export const DEFAULT_DPOP_ALGORITHMS: readonly string[] = Object.freeze(['ES256', 'EdDSA', 'PS256', 'RS256']);

/** Options of {@link createDpopVerifier}. */
export interface DpopVerifierOptions {
  /** Remembers proof `jti`s (namespace `dpop`) until the proof is too old to be accepted anyway. */
  readonly replay: ReplayCache;
  readonly clock: Clock;
  /** Allowed `alg` values, a subset of {@link DPOP_SUPPORTED_ALGORITHMS} (default {@link DEFAULT_DPOP_ALGORITHMS}). */
  readonly algorithms?: readonly string[];
  /** How old a proof's `iat` may be, in seconds (default 60). */
  readonly maxAgeSeconds?: number;
  /** Allowed clock difference with the client, in seconds, both ways (default 5). */
  readonly skewSeconds?: number;
  /** Server nonces; absent: nonces are neither issued nor checked. */
  readonly nonce?: {
    /** HMAC key shared by every node (at least 32 bytes). */
    readonly secret: Uint8Array;
    /** Length of a nonce window in seconds (default 300); a nonce lives between one and two windows. */
    readonly windowSeconds?: number;
    /** `true`: a proof without the current (or previous) nonce is refused with `use_dpop_nonce`. */
    readonly required: boolean;
  };
}

/** The request a proof must match. */
export interface DpopRequestContext {
  /** The HTTP method of the request, as received (e.g. `POST`). */
  readonly method: string;
  /** The request URL as the client addressed it (built from Mandate's configured public origin, not the Host header). */
  readonly url: string | URL;
  /** The access token presented with the proof (resource access); its hash must be the proof's `ath`. */
  readonly accessToken?: string;
  /** The `cnf.jkt` of a bound token: the proof must be signed by that key. */
  readonly expectedJkt?: string;
  /** Where the proof is checked; decides the error's status and challenge. */
  readonly site: DpopErrorSite;
}

/** A verified proof. */
export interface VerifiedDpopProof {
  /** JWK SHA-256 thumbprint of the proof's key (RFC 7638), for `cnf.jkt`. */
  readonly jkt: string;
  readonly jti: string;
}

/** Verifies DPoP proofs and issues server nonces. */
export interface DpopVerifier {
  /**
   * Verifies the raw `DPoP` header value(s) of a request. Rejects with `InvalidDpopProofError` or
   * `UseDpopNonceError` (carrying a fresh nonce); with `StoreUnavailableError` when the replay cache cannot tell.
   */
  verify(proof: string | readonly string[] | undefined, request: DpopRequestContext): Promise<VerifiedDpopProof>;
  /** The current server nonce, for the `DPoP-Nonce` response header. Throws a `TypeError` when nonces are off. */
  nonce(): string;
  /** Whether nonces are off, offered (checked when sent) or required. */
  readonly nonceMode: 'off' | 'optional' | 'required';
  /** The allowed algorithms, for metadata and challenges. */
  readonly algorithms: readonly string[];
}

const MAX_PROOF_LENGTH = 8 * 1024;
const MAX_JTI_LENGTH = 256;
const COMPACT_JWS_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;
/** Headers that would bring a key other than the embedded public `jwk` into play (RFC 8725 §3.10). */
const FOREIGN_KEY_HEADERS = ['jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'] as const;
const UNRESERVED_RE = /^[A-Za-z0-9\-._~]$/;

/**
 * Normalises an HTTP(S) URL for `htu` comparison: scheme and host in lowercase, default port dropped, dot
 * segments resolved, percent-encoding of unreserved characters decoded and hex digits in uppercase, query and
 * fragment removed. `undefined` for anything that is not an absolute http(s) URL without userinfo.
 * @see RFC 9449 §4.3 (check 9), RFC 3986 §6.2.2–6.2.3
 */
export function normalizeHtu(value: string | URL): string | undefined {
  let u: URL;
  try {
    u = new URL(typeof value === 'string' ? value : value.href);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined;
  if (u.username !== '' || u.password !== '') return undefined;
  const path = u.pathname.replace(/%([0-9A-Fa-f]{2})/g, (m, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED_RE.test(c) ? c : m.toUpperCase();
  });
  return `${u.protocol}//${u.host}${path}`;
}

function checkAlgorithms(list: readonly string[]): string[] {
  if (list.length === 0) throw new TypeError('at least one DPoP algorithm is required');
  for (const a of list) {
    if (!(DPOP_SUPPORTED_ALGORITHMS as readonly string[]).includes(a)) {
      throw new TypeError(`"${a}" is not an asymmetric JWS algorithm supported for DPoP`);
    }
  }
  return [...list];
}

/** base64url(SHA-256(ASCII(token))), the `ath` of a proof sent with `token`. @see RFC 9449 §4.2 */
export function accessTokenHash(accessToken: string): string {
  return base64url.encode(createHash('sha256').update(accessToken, 'utf8').digest());
}

/**
 * Creates a DPoP proof verifier.
 * @example
 * const dpop = createDpopVerifier({ replay, clock: systemClock, nonce: { secret, required: true } });
 * const { jkt } = await dpop.verify(req.headers.dpop, { method: 'POST', url: 'https://mandate.example/token', site: 'token' });
 */
export function createDpopVerifier(options: DpopVerifierOptions): DpopVerifier {
  const algorithms = checkAlgorithms(options.algorithms ?? DEFAULT_DPOP_ALGORITHMS);
  const maxAgeSeconds = options.maxAgeSeconds ?? 60;
  const skewSeconds = options.skewSeconds ?? 5;
  if (!(maxAgeSeconds > 0 && maxAgeSeconds <= 3600)) throw new TypeError('maxAgeSeconds must be in (0, 3600]');
  if (!(skewSeconds >= 0 && skewSeconds <= 300)) throw new TypeError('skewSeconds must be in [0, 300]');
  const { replay, clock } = options;
  const nonceOptions = options.nonce;
  const windowMs = (nonceOptions?.windowSeconds ?? 300) * 1000;
  if (nonceOptions) {
    if (!(nonceOptions.secret instanceof Uint8Array) || nonceOptions.secret.byteLength < 32) {
      throw new TypeError('the DPoP nonce secret must be at least 32 bytes');
    }
    if (!(windowMs >= 1000)) throw new TypeError('nonce.windowSeconds must be at least 1');
  }
  const nonceSecret = nonceOptions ? Buffer.from(nonceOptions.secret) : undefined;
  const nonceMode: DpopVerifier['nonceMode'] = !nonceOptions ? 'off' : nonceOptions.required ? 'required' : 'optional';

  function nonceFor(window: number): string {
    if (!nonceSecret) throw new TypeError('DPoP nonces are off');
    return base64url.encode(createHmac('sha256', nonceSecret).update(`mandate-dpop-nonce\u0000${window}`).digest());
  }

  function currentNonce(): string {
    return nonceFor(Math.floor(clock.now() / windowMs));
  }

  function nonceIsValid(value: unknown): boolean {
    if (typeof value !== 'string' || value.length !== 43) return false;
    const window = Math.floor(clock.now() / windowMs);
    const given = Buffer.from(value);
    let ok = false;
    for (const w of [window, window - 1]) {
      const expected = Buffer.from(nonceFor(w));
      if (expected.length === given.length && timingSafeEqual(expected, given)) ok = true;
    }
    return ok;
  }

  return {
    nonceMode,
    algorithms: Object.freeze([...algorithms]),
    nonce: currentNonce,
    async verify(proof, request) {
      const site = request.site;
      const fail = (description: string, detail?: string, cause?: unknown): InvalidDpopProofError =>
        new InvalidDpopProofError(description, {
          site,
          algs: algorithms,
          ...(detail === undefined ? {} : { detail }),
          ...(cause === undefined ? {} : { cause }),
        });

      // RFC 9449 §4.3 check 1: exactly one DPoP header.
      let raw: string | undefined;
      if (Array.isArray(proof)) {
        if (proof.length !== 1) throw fail(proof.length === 0 ? 'a DPoP proof is required' : 'send exactly one DPoP header');
        raw = proof[0];
      } else {
        raw = proof as string | undefined;
      }
      if (raw === undefined || raw === '') throw fail('a DPoP proof is required');
      if (typeof raw !== 'string') throw fail('the DPoP header is malformed');
      if (raw.includes(',')) throw fail('send exactly one DPoP header');
      if (raw.length > MAX_PROOF_LENGTH || !COMPACT_JWS_RE.test(raw)) throw fail('the DPoP proof is not a compact JWS');

      const requestHtu = normalizeHtu(request.url);
      if (requestHtu === undefined) throw new TypeError('request.url must be an absolute http(s) URL');

      let header: JWSHeaderParameters;
      try {
        header = decodeProtectedHeader(raw) as JWSHeaderParameters;
      } catch (cause) {
        throw fail('the DPoP proof header is malformed', undefined, cause);
      }
      // Checks 4–6: typ, alg, a public jwk — before any signature work.
      if (typeof header.typ !== 'string' || header.typ.toLowerCase() !== 'dpop+jwt') throw fail('the DPoP proof "typ" must be "dpop+jwt"');
      if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) {
        throw fail(`the DPoP proof algorithm is not allowed (allowed: ${algorithms.join(', ')})`);
      }
      for (const name of FOREIGN_KEY_HEADERS) {
        if (name in header) throw fail(`the DPoP proof carries a "${name}" header; the key is the "jwk" header only`);
      }
      if ('crit' in header) throw fail('the DPoP proof has a "crit" header, which is not supported');
      const jwk = header.jwk as JWK | undefined;
      if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw fail('the DPoP proof has no "jwk" header');
      if (jwk.kty === 'oct') throw fail('the DPoP proof "jwk" must be an asymmetric public key');
      for (const member of PRIVATE_JWK_MEMBERS) {
        if (member in jwk) throw fail('the DPoP proof "jwk" must not contain a private key');
      }

      // Check 7: the signature verifies with that jwk (jose refuses a non-public embedded key too).
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(raw, EmbeddedJWK, {
          algorithms,
          currentDate: new Date(clock.now()),
          clockTolerance: skewSeconds,
          requiredClaims: ['jti', 'htm', 'htu', 'iat'],
        }));
      } catch (cause) {
        const name = cause instanceof Error ? cause.name : 'Error';
        const description =
          name === 'JWSSignatureVerificationFailed'
            ? 'the DPoP proof signature does not verify with its "jwk"'
            : name === 'JWTClaimValidationFailed'
              ? 'the DPoP proof lacks a required claim (jti, htm, htu, iat) or has an invalid one'
              : 'the DPoP proof could not be verified';
        throw fail(description, cause instanceof Error ? `${name}: ${cause.message}` : undefined, cause);
      }

      const { jti, htm, htu, iat, ath } = payload as JWTPayload & { htm?: unknown; htu?: unknown; ath?: unknown; nonce?: unknown };
      if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) {
        throw fail(`the DPoP proof "jti" must be a string of 1..${MAX_JTI_LENGTH} characters`);
      }
      // Checks 8–9: htm and htu match the request.
      if (typeof htm !== 'string' || htm !== request.method) throw fail('the DPoP proof "htm" does not match the request method');
      if (typeof htu !== 'string' || normalizeHtu(htu) !== requestHtu) throw fail('the DPoP proof "htu" does not match the request URL');
      // Check 11: iat within the acceptable window.
      const nowSeconds = clock.now() / 1000;
      if (typeof iat !== 'number' || !Number.isFinite(iat)) throw fail('the DPoP proof "iat" must be a number');
      if (iat > nowSeconds + skewSeconds) throw fail('the DPoP proof "iat" is in the future');
      if (iat < nowSeconds - maxAgeSeconds - skewSeconds) throw fail('the DPoP proof is too old ("iat")');
      // Check 12: ath, when an access token is presented.
      if (request.accessToken !== undefined) {
        if (typeof ath !== 'string') throw fail('the DPoP proof has no "ath" for the presented access token');
        if (ath !== accessTokenHash(request.accessToken)) throw fail('the DPoP proof "ath" does not match the access token');
      }
      let jkt: string;
      try {
        jkt = await calculateJwkThumbprint(jwk, 'sha256');
      } catch (cause) {
        throw fail('the DPoP proof "jwk" is invalid', undefined, cause);
      }
      // The bound token's key must be the proof's key (RFC 9449 §4.3 check 12, §7).
      if (request.expectedJkt !== undefined && request.expectedJkt !== jkt) {
        throw fail('the DPoP proof is signed by a key other than the one the token is bound to');
      }
      // Check 10: the server nonce.
      const proofNonce = (payload as { nonce?: unknown }).nonce;
      if (nonceMode === 'required' || (nonceMode === 'optional' && proofNonce !== undefined)) {
        if (!nonceIsValid(proofNonce)) {
          throw new UseDpopNonceError(
            proofNonce === undefined
              ? 'a DPoP nonce is required: retry with the nonce from the DPoP-Nonce header'
              : 'the DPoP nonce is stale or invalid: retry with the nonce from the DPoP-Nonce header',
            { site, nonce: currentNonce(), algs: algorithms },
          );
        }
      }
      // Check 11 continued: single use within the window; last, so a refused proof does not burn its jti.
      const expiresAtMs = (Math.max(iat, nowSeconds) + maxAgeSeconds + skewSeconds) * 1000;
      const first = await replay.use('dpop', `${jkt}.${jti}`, Math.ceil(expiresAtMs));
      if (!first) throw fail('the DPoP proof was already used (replayed "jti")');
      return Object.freeze({ jkt, jti });
    },
  };
}

/**
 * Keys the SDK signs with: the agent's registered key (client assertions) and a DPoP key pair (proofs). The
 * JWS algorithm follows from the key, so callers pass a key and nothing else.
 */
import type { KeyObject } from 'node:crypto';
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';

/** A signing key with its JWS algorithm and, for the registered key, its `kid`. */
export interface SigningKey {
  key: CryptoKey | KeyObject;
  alg: string;
  kid?: string;
}

const CURVE_ALG: Readonly<Record<string, string>> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512', prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' };

/** The JWS algorithm for a JWK (its `alg`, else from `kty`/`crv`). */
export function algOfJwk(jwk: JWK): string {
  if (typeof jwk.alg === 'string') return jwk.alg;
  if (jwk.kty === 'EC' && typeof jwk.crv === 'string' && CURVE_ALG[jwk.crv] !== undefined) return CURVE_ALG[jwk.crv] as string;
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  if (jwk.kty === 'RSA') return 'RS256';
  throw new TypeError(`cannot tell the signing algorithm of a ${String(jwk.kty)} key; set its "alg"`);
}

/** The JWS algorithm for a WebCrypto key or a Node KeyObject. */
export function algOfKey(key: CryptoKey | KeyObject): string {
  if ('algorithm' in key && typeof key.algorithm === 'object') {
    const a = key.algorithm as { name: string; namedCurve?: string; hash?: { name: string } };
    if (a.name === 'ECDSA' && a.namedCurve !== undefined && CURVE_ALG[a.namedCurve] !== undefined) return CURVE_ALG[a.namedCurve] as string;
    if (a.name === 'Ed25519') return 'EdDSA';
    const bits = a.hash?.name.replace('SHA-', '') ?? '256';
    if (a.name === 'RSASSA-PKCS1-v1_5') return `RS${bits}`;
    if (a.name === 'RSA-PSS') return `PS${bits}`;
    throw new TypeError(`a ${a.name} key cannot sign JWTs`);
  }
  const k = key as KeyObject;
  if (k.asymmetricKeyType === 'ec') {
    const curve = k.asymmetricKeyDetails?.namedCurve;
    if (curve !== undefined && CURVE_ALG[curve] !== undefined) return CURVE_ALG[curve] as string;
  }
  if (k.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (k.asymmetricKeyType === 'rsa') return 'RS256';
  throw new TypeError(`a ${String(k.asymmetricKeyType ?? k.type)} key cannot sign client assertions`);
}

/** The agent's registered key, from a private key object or a private JWK. */
export async function registeredKey(options: { privateKey?: CryptoKey | KeyObject; jwk?: JWK; kid?: string; alg?: string }): Promise<SigningKey> {
  if ((options.privateKey === undefined) === (options.jwk === undefined)) throw new TypeError('give exactly one of privateKey and jwk');
  if (options.jwk !== undefined) {
    if (typeof options.jwk.d !== 'string') throw new TypeError('jwk must be a private key (it has no "d")');
    const alg = options.alg ?? algOfJwk(options.jwk);
    const key = (await importJWK(options.jwk, alg)) as CryptoKey;
    const kid = options.kid ?? options.jwk.kid;
    return { key, alg, ...(kid === undefined ? {} : { kid }) };
  }
  const key = options.privateKey as CryptoKey | KeyObject;
  return { key, alg: options.alg ?? algOfKey(key), ...(options.kid === undefined ? {} : { kid: options.kid }) };
}

/** A WebCrypto key pair (the DOM's `CryptoKeyPair`, which Node's types do not declare globally). */
export interface CryptoKeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

/** A DPoP key pair with its public JWK (RFC 9449 §4.2 `jwk` header) and thumbprint (`cnf.jkt`). */
export interface DpopKey {
  privateKey: CryptoKey;
  alg: string;
  publicJwk: JWK;
  jkt: string;
}

/** Prepares a DPoP key: the given pair, or a new non-extractable one with an algorithm Mandate accepts. */
export async function dpopKey(pair: CryptoKeyPair | undefined, supported: readonly string[] | undefined): Promise<DpopKey> {
  let keys: CryptoKeyPair;
  let alg: string;
  if (pair !== undefined) {
    keys = pair;
    alg = algOfKey(keys.privateKey);
  } else {
    alg = supported === undefined || supported.includes('ES256') ? 'ES256' : supported.includes('EdDSA') ? 'EdDSA' : (supported[0] ?? 'ES256');
    keys = await generateKeyPair(alg, { extractable: false });
  }
  const full = await exportJWK(keys.publicKey);
  const publicJwk: JWK = Object.fromEntries(Object.entries(full).filter(([k]) => ['kty', 'crv', 'x', 'y', 'n', 'e'].includes(k)));
  return { privateKey: keys.privateKey, alg, publicJwk, jkt: await calculateJwkThumbprint(publicJwk) };
}

/** `ath`: the base64url SHA-256 of the access token (RFC 9449 §4.2). */
export async function accessTokenHash(token: string): Promise<string> {
  return base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))));
}

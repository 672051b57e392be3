/**
 * Test-only fixture builders for workload identity: SPIFFE CAs and X.509-SVIDs (@peculiar/x509 over WebCrypto),
 * SPIFFE bundle documents, JWT-SVIDs and an in-memory bounded `ReplayCache`. Keys are generated per run.
 * Imported only by *.test.ts files.
 */
import { webcrypto } from 'node:crypto';
import type * as X509 from '@peculiar/x509';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey, JWK, JWTPayload, JWSHeaderParameters } from 'jose';
import { StoreUnavailableError } from '../core/errors.ts';
import type { ReplayCache } from './types.ts';

// @peculiar/x509 (through tsyringe) refuses to load without a Reflect metadata polyfill, and none is installed;
// its classes take no constructor parameters, so a minimal store is enough for these tests.
const reflect = Reflect as unknown as Record<string, unknown>;
if (typeof reflect.getMetadata !== 'function') {
  const store = new WeakMap<object, Map<unknown, unknown>>();
  const meta = (target: object) => {
    let m = store.get(target);
    if (!m) store.set(target, (m = new Map()));
    return m;
  };
  reflect.getMetadata = (key: unknown, target: object) => store.get(target)?.get(key);
  reflect.getOwnMetadata = reflect.getMetadata;
  reflect.hasMetadata = (key: unknown, target: object) => store.get(target)?.has(key) ?? false;
  reflect.hasOwnMetadata = reflect.hasMetadata;
  reflect.defineMetadata = (key: unknown, value: unknown, target: object) => void meta(target).set(key, value);
  reflect.metadata = (key: unknown, value: unknown) => (target: object) => void meta(target).set(key, value);
}

/** @peculiar/x509, loaded after the polyfill. */
export const x509: typeof X509 = await import('@peculiar/x509');
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKeyPair = webcrypto.CryptoKeyPair;

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A generated CA (root or intermediate). */
export interface TestCa {
  readonly cert: X509.X509Certificate;
  readonly keys: CryptoKeyPair;
  readonly der: Buffer;
}

/** A generated leaf certificate. */
export interface TestLeaf {
  readonly cert: X509.X509Certificate;
  readonly keys: CryptoKeyPair;
  readonly der: Buffer;
}

async function ecKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
}

function der(cert: X509.X509Certificate): Buffer {
  return Buffer.from(cert.rawData);
}

/** Builds a CA for `trustDomain`: self-signed when no `parent`, else signed by it. */
export async function makeCa(options: {
  trustDomain: string;
  notBefore: Date;
  notAfter: Date;
  parent?: TestCa;
  pathLength?: number;
  name?: string;
}): Promise<TestCa> {
  const keys = await ecKeys();
  const name = options.name ?? `CN=${options.parent ? 'Intermediate' : 'Root'} CA ${options.trustDomain} ${Math.random().toString(36).slice(2, 8)}`;
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(true, options.pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${options.trustDomain}` }]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  let cert: X509.X509Certificate;
  if (options.parent) {
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(options.parent.keys.publicKey));
    cert = await x509.X509CertificateGenerator.create({
      subject: name,
      issuer: options.parent.cert.subject,
      publicKey: keys.publicKey,
      signingKey: options.parent.keys.privateKey,
      notBefore: options.notBefore,
      notAfter: options.notAfter,
      signingAlgorithm: EC_ALG,
      extensions,
    });
  } else {
    cert = await x509.X509CertificateGenerator.createSelfSigned({
      name,
      keys,
      notBefore: options.notBefore,
      notAfter: options.notAfter,
      signingAlgorithm: EC_ALG,
      extensions,
    });
  }
  return { cert, keys, der: der(cert) };
}

/** Builds a leaf signed by `issuer` with the given URI SANs (an X.509-SVID when there is one SPIFFE ID). */
export async function makeLeaf(options: {
  issuer: TestCa;
  uris: readonly string[];
  notBefore: Date;
  notAfter: Date;
  ca?: boolean;
  keyUsage?: number;
}): Promise<TestLeaf> {
  const keys = await ecKeys();
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(options.ca ?? false, undefined, true),
    new x509.KeyUsagesExtension(options.keyUsage ?? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    await x509.AuthorityKeyIdentifierExtension.create(options.issuer.keys.publicKey),
  ];
  if (options.uris.length > 0) {
    extensions.push(new x509.SubjectAlternativeNameExtension(options.uris.map((value) => ({ type: 'url' as const, value }))));
  }
  const cert = await x509.X509CertificateGenerator.create({
    subject: 'O=SPIFFE',
    issuer: options.issuer.cert.subject,
    publicKey: keys.publicKey,
    signingKey: options.issuer.keys.privateKey,
    notBefore: options.notBefore,
    notAfter: options.notAfter,
    signingAlgorithm: EC_ALG,
    extensions,
  });
  return { cert, keys, der: der(cert) };
}

/** A JWT-SVID signing key of a trust domain. */
export interface TestJwtAuthority {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

/** Generates a JWT-SVID signing key. */
export async function makeJwtAuthority(kid: string, alg = 'ES256'): Promise<TestJwtAuthority> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: await exportJWK(publicKey) };
}

/** A SPIFFE bundle document with these roots and JWT authorities. */
export async function bundleDoc(options: {
  roots?: readonly TestCa[];
  jwtAuthorities?: readonly TestJwtAuthority[];
  sequence?: number;
  refreshHint?: number;
}): Promise<Record<string, unknown>> {
  const keys: Record<string, unknown>[] = [];
  for (const root of options.roots ?? []) {
    const jwk = await exportJWK(root.keys.publicKey as unknown as CryptoKey);
    keys.push({ ...jwk, use: 'x509-svid', x5c: [root.der.toString('base64')] });
  }
  for (const a of options.jwtAuthorities ?? []) keys.push({ ...a.publicJwk, use: 'jwt-svid', kid: a.kid });
  return {
    keys,
    ...(options.sequence === undefined ? {} : { spiffe_sequence: options.sequence }),
    ...(options.refreshHint === undefined ? {} : { spiffe_refresh_hint: options.refreshHint }),
  };
}

/** Signs a JWT with exactly the given header and claims (no defaults added). */
export async function signJwt(header: JWSHeaderParameters & { alg: string }, claims: JWTPayload, key: CryptoKey | Uint8Array): Promise<string> {
  return new SignJWT(claims).setProtectedHeader(header).sign(key);
}

/** An in-memory, bounded `ReplayCache` for unit tests (the real one is store-backed). */
export function memoryReplayCache(options: { maxEntries?: number; now?: () => number } = {}): ReplayCache & { size(): number } {
  const max = options.maxEntries ?? 10_000;
  const now = options.now ?? (() => Date.now());
  const entries = new Map<string, number>();
  return {
    async use(namespace: string, id: string, expiresAtMs: number): Promise<boolean> {
      const key = `${namespace}\u0000${id}`;
      const t = now();
      const seen = entries.get(key);
      if (seen !== undefined && seen > t) return false;
      if (entries.size >= max) {
        for (const [k, exp] of entries) if (exp <= t) entries.delete(k);
        // Still full: fail closed rather than forget a live id.
        if (entries.size >= max) throw new StoreUnavailableError('the replay cache is full');
      }
      entries.set(key, expiresAtMs);
      return true;
    },
    size: () => entries.size,
  };
}

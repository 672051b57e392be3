/**
 * The key-encryption key (KEK): Mandate's one root secret (DESIGN.md "Short-lived by default"). It encrypts the
 * private parts of the token signing keys at rest, so that a copy of the store alone yields no signing key.
 *
 * The KEK is 32 random bytes, given as base64url either in the environment variable `MANDATE_KEK` or in a file
 * (`kekFile`) that only its owner may read (mode 0600 or stricter). A KMS comes later.
 *
 * Private JWKs are sealed as compact JWE with `alg: "dir"`, `enc: "A256GCM"` (RFC 7516, RFC 7518 §4.5 and §5.3).
 * The protected header names the KEK by its fingerprint (`kid`, never the KEK itself) and the signing key by its
 * id (`mandate_kid`). The protected header is the AES-GCM additional authenticated data (RFC 7516 §5.1 step 14),
 * so a ciphertext moved to another key's row fails to decrypt there.
 *
 * Nothing in this file puts the KEK, a private key or a plaintext into an error or log text.
 */
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader, type CryptoKey, type JWK } from 'jose';
import { MandateError } from '../core/errors.ts';

/** Name of the environment variable that holds the KEK (base64url of 32 random bytes). */
export const KEK_ENV_VAR = 'MANDATE_KEK';

/** Length of the KEK in bytes (AES-256). */
export const KEK_BYTES = 32;

/** The JWE protected header parameter that binds a sealed private key to its signing key id. */
export const ENCRYPTED_KEY_ID_HEADER = 'mandate_kid';

const FINGERPRINT_LABEL = 'mandate-kek-fingerprint-v1\0';
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]+$/;
const HOW_TO_GENERATE =
  'generate one with: node -e "console.log(require(\'node:crypto\').randomBytes(32).toString(\'base64url\'))"';

/** No KEK is configured: neither `MANDATE_KEK` nor `kekFile` is set. */
export class KekMissingError extends MandateError {
  static override readonly code: string = 'ERR_KEK_MISSING';
  override readonly code: string = 'ERR_KEK_MISSING';
  override readonly status: number = 500;
  override readonly oauthError: string = 'server_error';
}

/** The configured KEK is unusable: not base64url, not 32 bytes, unreadable, or in a file others can read. */
export class KekInvalidError extends MandateError {
  static override readonly code: string = 'ERR_KEK_INVALID';
  override readonly code: string = 'ERR_KEK_INVALID';
  override readonly status: number = 500;
  override readonly oauthError: string = 'server_error';
}

/**
 * Encrypted data was sealed under another KEK than the one loaded. `extra.requiredKekFingerprint` names the KEK
 * the data needs and `extra.loadedKekFingerprint` the one in use (fingerprints only, never key material).
 */
export class KekMismatchError extends MandateError {
  static override readonly code: string = 'ERR_KEK_MISMATCH';
  override readonly code: string = 'ERR_KEK_MISMATCH';
  override readonly status: number = 500;
  override readonly oauthError: string = 'server_error';
}

/** A sealed private key is malformed, was altered, or belongs to another signing key than the row it sits in. */
export class EncryptedKeyInvalidError extends MandateError {
  static override readonly code: string = 'ERR_ENCRYPTED_KEY_INVALID';
  override readonly code: string = 'ERR_ENCRYPTED_KEY_INVALID';
  override readonly status: number = 500;
  override readonly oauthError: string = 'server_error';
}

/**
 * A loaded KEK. It exposes only its fingerprint and where it came from; the key itself is a non-extractable
 * WebCrypto key held outside the object, so neither `JSON.stringify` nor `util.inspect` can reveal it.
 */
export interface Kek {
  /** `kek-` + base64url of the first 16 bytes of SHA-256 over a domain label and the key: names the KEK, reveals nothing. */
  readonly fingerprint: string;
  /** Where the KEK came from, e.g. `env MANDATE_KEK` or `file /etc/mandate/kek` (never its value). */
  readonly source: string;
}

const kekKeys = new WeakMap<Kek, CryptoKey>();
/** The same 32 bytes imported as an HKDF base key, for secrets derived from the KEK (never the KEK itself). */
const kekDerivationKeys = new WeakMap<Kek, CryptoKey>();

function cryptoKeyOf(kek: Kek): CryptoKey {
  const key = kekKeys.get(kek);
  if (key === undefined) throw new TypeError('not a Kek: load one with loadKek() or kekFromBase64url()');
  return key;
}

/**
 * Computes the fingerprint that names a KEK in sealed data. Domain-separated so the value is useless for anything
 * but recognising the same KEK.
 */
function fingerprintOf(bytes: Uint8Array): string {
  const digest = createHash('sha256').update(FINGERPRINT_LABEL, 'utf8').update(bytes).digest();
  return `kek-${digest.subarray(0, 16).toString('base64url')}`;
}

/**
 * Makes a KEK from its base64url text. `source` says where the text came from, for error messages.
 * @throws KekInvalidError when the text is not canonical base64url of exactly 32 bytes (the text is never quoted).
 * @example const kek = await kekFromBase64url(generateKek(), 'test');
 */
export async function kekFromBase64url(text: string, source: string): Promise<Kek> {
  if (typeof text !== 'string') throw new TypeError('kekFromBase64url: text must be a string');
  const trimmed = text.trim();
  if (trimmed === '') {
    throw new KekInvalidError(`the KEK from ${source} is empty; ${HOW_TO_GENERATE}`);
  }
  if (!BASE64URL_PATTERN.test(trimmed)) {
    throw new KekInvalidError(
      `the KEK from ${source} is not base64url (only A-Z a-z 0-9 - _ without padding are allowed); ${HOW_TO_GENERATE}`,
    );
  }
  const bytes = Buffer.from(trimmed, 'base64url');
  if (bytes.length !== KEK_BYTES) {
    bytes.fill(0);
    throw new KekInvalidError(
      `the KEK from ${source} decodes to ${bytes.length} bytes; it must be exactly ${KEK_BYTES} random bytes; ${HOW_TO_GENERATE}`,
    );
  }
  if (bytes.toString('base64url') !== trimmed) {
    bytes.fill(0);
    throw new KekInvalidError(`the KEK from ${source} is not canonical base64url of ${KEK_BYTES} bytes; ${HOW_TO_GENERATE}`);
  }
  const fingerprint = fingerprintOf(bytes);
  const key = await webcrypto.subtle.importKey('raw', bytes, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
  const derivation = await webcrypto.subtle.importKey('raw', bytes, 'HKDF', false, ['deriveBits']);
  bytes.fill(0);
  const kek: Kek = Object.freeze({ fingerprint, source });
  kekKeys.set(kek, key as unknown as CryptoKey);
  kekDerivationKeys.set(kek, derivation as unknown as CryptoKey);
  return kek;
}

/** Where to look for the KEK. */
export interface LoadKekOptions {
  /** Environment to read `MANDATE_KEK` from; defaults to `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Path of a file holding the KEK (base64url, one line); must not be readable by group or others. */
  kekFile?: string;
}

/**
 * Loads the KEK from `MANDATE_KEK` or from `kekFile`. Exactly one must be set: two sources could disagree, and
 * guessing which one wins would be a silent fallback.
 * @throws KekMissingError when neither is set; KekInvalidError when both are set, the value is malformed, or the
 *   file is missing, unreadable, not a regular file or readable by group/others.
 * @example const kek = await loadKek({ kekFile: config.keys.kekFile });
 */
export async function loadKek(options: LoadKekOptions = {}): Promise<Kek> {
  const env = options.env ?? process.env;
  const fromEnv = env[KEK_ENV_VAR];
  const envSet = fromEnv !== undefined && fromEnv !== '';
  const fileSet = options.kekFile !== undefined && options.kekFile !== '';
  if (envSet && fileSet) {
    throw new KekInvalidError(`both ${KEK_ENV_VAR} and kekFile are set; set exactly one of them`);
  }
  if (envSet) return kekFromBase64url(fromEnv, `env ${KEK_ENV_VAR}`);
  if (fileSet) return kekFromBase64url(await readKekFile(options.kekFile as string), `file ${options.kekFile as string}`);
  throw new KekMissingError(
    `no key-encryption key: set ${KEK_ENV_VAR} or kekFile to base64url of ${KEK_BYTES} random bytes; ${HOW_TO_GENERATE}`,
  );
}

/**
 * Reads a KEK file after checking, on the open handle (no race between check and read), that it is a regular
 * file readable by its owner only.
 */
async function readKekFile(path: string): Promise<string> {
  let handle;
  try {
    // Symlinks are followed (Kubernetes mounts secrets through them); the mode checked is the target's.
    handle = await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new KekInvalidError(`cannot open the KEK file ${path} (${code}); it must be a regular file readable by Mandate`, {
      cause: error,
    });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new KekInvalidError(`the KEK file ${path} is not a regular file`);
    // POSIX permission bits only; Windows has no such mode bits and reports 0o666 for every writable file.
    if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(3, '0');
      throw new KekInvalidError(
        `the KEK file ${path} has mode ${mode}: group or others may access it; restrict it with: chmod 600 ${path}`,
      );
    }
    if (stat.size > 1024) throw new KekInvalidError(`the KEK file ${path} is ${stat.size} bytes; it must hold one base64url line`);
    return await handle.readFile({ encoding: 'utf8' });
  } finally {
    await handle.close();
  }
}

/**
 * Derives a 32-byte secret from the KEK for one purpose (HKDF-SHA-256, RFC 5869), e.g. the DPoP nonce HMAC key
 * that every node of a deployment must share. Different labels give independent secrets; none reveals the KEK.
 * @example const nonceSecret = await deriveKekSecret(kek, 'dpop-nonce-v1');
 */
export async function deriveKekSecret(kek: Kek, label: string): Promise<Uint8Array> {
  const base = kekDerivationKeys.get(kek);
  if (base === undefined) throw new TypeError('not a Kek: load one with loadKek() or kekFromBase64url()');
  if (typeof label !== 'string' || label === '') throw new TypeError('deriveKekSecret: label must be a non-empty string');
  const bits = await webcrypto.subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: new TextEncoder().encode('mandate-kek-derive-v1'), info: new TextEncoder().encode(label) },
    base as unknown as webcrypto.CryptoKey,
    256,
  );
  return new Uint8Array(bits);
}

/**
 * Generates a new KEK as base64url of 32 random bytes, for first-run and demo tooling. Show or store it once;
 * it must never be logged.
 */
export function generateKek(): string {
  return randomBytes(KEK_BYTES).toString('base64url');
}

/**
 * Writes a new KEK to `path` with mode 0600, refusing to overwrite an existing file (a lost KEK makes every
 * sealed key unreadable). Returns the new KEK's fingerprint, never the KEK.
 * @throws KekInvalidError when the file exists or cannot be written.
 */
export async function writeNewKekFile(path: string): Promise<{ fingerprint: string }> {
  const text = generateKek();
  try {
    await writeFile(path, `${text}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    const why = code === 'EEXIST' ? 'it already exists (Mandate never overwrites a KEK)' : code;
    throw new KekInvalidError(`cannot create the KEK file ${path}: ${why}`, { cause: error });
  }
  const kek = await kekFromBase64url(text, `file ${path}`);
  return { fingerprint: kek.fingerprint };
}

/**
 * Encrypts a private JWK under the KEK as a compact JWE bound to `signingKid`.
 * @see RFC 7516 §7.1 (compact serialization), RFC 7518 §4.5 (`dir`) and §5.3 (`A256GCM`)
 */
export async function encryptPrivateJwk(kek: Kek, signingKid: string, privateJwk: JWK): Promise<string> {
  if (typeof signingKid !== 'string' || signingKid === '') throw new TypeError('encryptPrivateJwk: signingKid must be a non-empty string');
  const plaintext = new TextEncoder().encode(JSON.stringify(privateJwk));
  return new CompactEncrypt(plaintext)
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: kek.fingerprint, cty: 'jwk+json', [ENCRYPTED_KEY_ID_HEADER]: signingKid })
    .encrypt(cryptoKeyOf(kek));
}

/**
 * Seals a short secret (e.g. a push `Authorization` header of an SSF stream) under the KEK as a compact JWE
 * (`dir`/`A256GCM`), bound to `purpose`: it opens only with the same KEK and purpose.
 */
export async function sealSecret(kek: Kek, purpose: string, plaintext: string): Promise<string> {
  if (typeof purpose !== 'string' || purpose === '') throw new TypeError('sealSecret: purpose must be a non-empty string');
  return new CompactEncrypt(new TextEncoder().encode(plaintext))
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: kek.fingerprint, mandate_purpose: purpose })
    .encrypt(cryptoKeyOf(kek));
}

/**
 * Opens a secret sealed by {@link sealSecret} for `purpose`.
 * @throws KekMismatchError when sealed under another KEK; EncryptedKeyInvalidError when altered or for another purpose.
 */
export async function openSecret(kek: Kek, purpose: string, sealed: string): Promise<string> {
  let header;
  try {
    header = decodeProtectedHeader(sealed);
  } catch (error) {
    throw new EncryptedKeyInvalidError(`the sealed ${purpose} is not a compact JWE`, { cause: error });
  }
  if (header.kid !== kek.fingerprint) throw new KekMismatchError(`the sealed ${purpose} was sealed under another KEK; configure the KEK that sealed the store`);
  if (header.mandate_purpose !== purpose) throw new EncryptedKeyInvalidError(`the sealed value is not a ${purpose}`);
  try {
    const { plaintext } = await compactDecrypt(sealed, cryptoKeyOf(kek), { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] });
    return new TextDecoder().decode(plaintext);
  } catch (error) {
    throw new EncryptedKeyInvalidError(`the sealed ${purpose} fails authentication: it was altered`, { cause: error });
  }
}

/**
 * Decrypts a private JWK encrypted by {@link encryptPrivateJwk}, checking that it was sealed under this KEK and for `signingKid`.
 * @throws KekMismatchError when the data names another KEK (the error says which one it needs);
 *   EncryptedKeyInvalidError when it is malformed, altered, or sealed for another signing key.
 */
export async function decryptPrivateJwk(kek: Kek, signingKid: string, sealed: string): Promise<JWK> {
  let header;
  try {
    header = decodeProtectedHeader(sealed);
  } catch (error) {
    throw new EncryptedKeyInvalidError(`the sealed private key of signing key ${signingKid} is not a compact JWE`, { cause: error });
  }
  if (header.alg !== 'dir' || header.enc !== 'A256GCM') {
    throw new EncryptedKeyInvalidError(`the sealed private key of signing key ${signingKid} is not sealed with dir/A256GCM`);
  }
  if (header.kid !== kek.fingerprint) {
    // Stored data is not trusted to be well-formed: only a fingerprint-shaped kid is repeated in the message.
    const required = typeof header.kid === 'string' && /^kek-[A-Za-z0-9_-]{1,64}$/.test(header.kid) ? header.kid : 'an unknown KEK';
    throw new KekMismatchError(
      `signing key ${signingKid} is sealed under KEK ${required}, but the loaded KEK (${kek.source}) is ${kek.fingerprint}; configure the KEK that sealed the store`,
      { extra: { requiredKekFingerprint: required, loadedKekFingerprint: kek.fingerprint } },
    );
  }
  if (header[ENCRYPTED_KEY_ID_HEADER] !== signingKid) {
    throw new EncryptedKeyInvalidError(`the sealed private key stored for signing key ${signingKid} belongs to another signing key`);
  }
  let plaintext: Uint8Array;
  try {
    ({ plaintext } = await compactDecrypt(sealed, cryptoKeyOf(kek), {
      keyManagementAlgorithms: ['dir'],
      contentEncryptionAlgorithms: ['A256GCM'],
    }));
  } catch (error) {
    // The KEK fingerprint matched, so a failure here means the ciphertext or its header was altered.
    throw new EncryptedKeyInvalidError(`the sealed private key of signing key ${signingKid} fails authentication: it was altered`, {
      cause: error,
    });
  }
  try {
    const jwk: unknown = JSON.parse(new TextDecoder().decode(plaintext));
    if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) throw new Error('not a JSON object');
    return jwk as JWK;
  } catch {
    throw new EncryptedKeyInvalidError(`the sealed private key of signing key ${signingKid} does not hold a JWK`);
  } finally {
    plaintext.fill(0);
  }
}

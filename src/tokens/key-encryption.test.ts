import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { base64url, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';
import {
  EncryptedKeyInvalidError,
  KEK_ENV_VAR,
  KekInvalidError,
  KekMismatchError,
  KekMissingError,
  decryptPrivateJwk,
  deriveKekSecret,
  encryptPrivateJwk,
  generateKek,
  kekFromBase64url,
  loadKek,
  writeNewKekFile,
} from './key-encryption.ts';

const posix = process.platform !== 'win32';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'mandate-kek-'));
}

async function privateJwk() {
  const { privateKey } = await generateKeyPair('EdDSA', { extractable: true });
  return exportJWK(privateKey);
}

test('loadKek reads MANDATE_KEK and names the KEK by a fingerprint that does not reveal it', async () => {
  const text = generateKek();
  const kek = await loadKek({ env: { [KEK_ENV_VAR]: text } });
  assert.match(kek.fingerprint, /^kek-[A-Za-z0-9_-]{22}$/);
  assert.equal(kek.source, 'env MANDATE_KEK');
  const shown = `${JSON.stringify(kek)} ${inspect(kek, { showHidden: true, depth: 5 })}`;
  assert.ok(!shown.includes(text), 'the KEK never shows in JSON or inspect output');
  const again = await loadKek({ env: { [KEK_ENV_VAR]: `${text}\n` } });
  assert.equal(again.fingerprint, kek.fingerprint, 'same KEK, same fingerprint; surrounding whitespace ignored');
  const other = await loadKek({ env: { [KEK_ENV_VAR]: generateKek() } });
  assert.notEqual(other.fingerprint, kek.fingerprint);
});

test('loadKek refuses a KEK of the wrong length or not in base64url, without quoting it', async () => {
  const cases: [string, RegExp][] = [
    [Buffer.alloc(16, 7).toString('base64url'), /decodes to 16 bytes; it must be exactly 32/],
    [Buffer.alloc(33, 7).toString('base64url'), /decodes to 33 bytes/],
    [Buffer.alloc(32, 7).toString('base64'), /not base64url/], // standard base64 with '=' padding
    ['not/base64url+at=all!', /not base64url/],
    ['   ', /empty/],
  ];
  for (const [value, message] of cases) {
    await assert.rejects(loadKek({ env: { [KEK_ENV_VAR]: value } }), (error: unknown) => {
      assert.ok(error instanceof KekInvalidError);
      assert.equal(error.code, 'ERR_KEK_INVALID');
      assert.match(error.message, message);
      if (value.trim() !== '') assert.ok(!error.message.includes(value.trim()), 'the value is never quoted');
      return true;
    });
  }
});

test('loadKek refuses non-canonical base64url (trailing bits set)', async () => {
  const canonical = generateKek();
  const last = canonical.at(-1) as string;
  // The 43rd character carries 2 padding bits; flipping them gives the same 32 bytes in a non-canonical form.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const sibling = alphabet[(alphabet.indexOf(last) & ~3) | ((alphabet.indexOf(last) + 1) & 3)] as string;
  await assert.rejects(loadKek({ env: { [KEK_ENV_VAR]: canonical.slice(0, -1) + sibling } }), { code: 'ERR_KEK_INVALID' });
});

test('loadKek without any source says how to configure one', async () => {
  await assert.rejects(loadKek({ env: {} }), (error: unknown) => {
    assert.ok(error instanceof KekMissingError);
    assert.equal(error.code, 'ERR_KEK_MISSING');
    assert.match(error.message, /MANDATE_KEK/);
    assert.match(error.message, /kekFile/);
    return true;
  });
});

test('loadKek refuses two sources at once', async () => {
  const dir = tempDir();
  try {
    const file = join(dir, 'kek');
    writeFileSync(file, generateKek(), { mode: 0o600 });
    await assert.rejects(loadKek({ env: { [KEK_ENV_VAR]: generateKek() }, kekFile: file }), {
      code: 'ERR_KEK_INVALID',
      message: /both MANDATE_KEK and kekFile/,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadKek reads a 0600 file and refuses a file readable by group or others, saying how to fix it', async (t) => {
  const dir = tempDir();
  try {
    const text = generateKek();
    const file = join(dir, 'kek');
    writeFileSync(file, `${text}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    const kek = await loadKek({ env: {}, kekFile: file });
    assert.equal(kek.source, `file ${file}`);
    assert.equal(kek.fingerprint, (await kekFromBase64url(text, 'x')).fingerprint);

    chmodSync(file, 0o400);
    await loadKek({ env: {}, kekFile: file });

    if (!posix) {
      t.diagnostic('mode bits are not checked on Windows');
      return;
    }
    for (const mode of [0o640, 0o604, 0o644, 0o660]) {
      chmodSync(file, mode);
      await assert.rejects(loadKek({ env: {}, kekFile: file }), (error: unknown) => {
        assert.ok(error instanceof KekInvalidError);
        assert.match(error.message, new RegExp(`mode ${mode.toString(8)}`));
        assert.match(error.message, /chmod 600/);
        assert.ok(!error.message.includes(text));
        return true;
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadKek refuses a missing file, a directory and a file with a bad KEK', async () => {
  const dir = tempDir();
  try {
    await assert.rejects(loadKek({ env: {}, kekFile: join(dir, 'absent') }), { code: 'ERR_KEK_INVALID', message: /ENOENT/ });
    await assert.rejects(loadKek({ env: {}, kekFile: dir }), { code: 'ERR_KEK_INVALID' });
    const short = join(dir, 'short');
    writeFileSync(short, Buffer.alloc(31, 1).toString('base64url'), { mode: 0o600 });
    await assert.rejects(loadKek({ env: {}, kekFile: short }), { code: 'ERR_KEK_INVALID', message: /decodes to 31 bytes/ });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writeNewKekFile creates a 0600 file that loadKek accepts, and never overwrites one', async () => {
  const dir = tempDir();
  try {
    const file = join(dir, 'kek');
    const { fingerprint } = await writeNewKekFile(file);
    if (posix) assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal((await loadKek({ env: {}, kekFile: file })).fingerprint, fingerprint);
    await assert.rejects(writeNewKekFile(file), { code: 'ERR_KEK_INVALID', message: /already exists/ });
    assert.equal((await loadKek({ env: {}, kekFile: file })).fingerprint, fingerprint, 'the first KEK is intact');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a private JWK round-trips through dir/A256GCM, with the KEK fingerprint and the signing kid in the header', async () => {
  const kek = await kekFromBase64url(generateKek(), 'test');
  const jwk = await privateJwk();
  const jwe = await encryptPrivateJwk(kek, 'kid-1', jwk);
  assert.equal(jwe.split('.').length, 5);
  assert.equal(jwe.split('.')[1], '', 'dir: no encrypted key segment');
  const header = decodeProtectedHeader(jwe);
  assert.equal(header.alg, 'dir');
  assert.equal(header.enc, 'A256GCM');
  assert.equal(header.kid, kek.fingerprint);
  assert.equal(header.mandate_kid, 'kid-1');
  assert.ok(!jwe.includes(jwk.d as string), 'the private part is not in the clear');
  assert.deepEqual(await decryptPrivateJwk(kek, 'kid-1', jwe), jwk);
});

test('the wrong KEK gives ERR_KEK_MISMATCH naming the KEK the data needs', async () => {
  const kekA = await kekFromBase64url(generateKek(), 'test A');
  const kekB = await kekFromBase64url(generateKek(), 'test B');
  const jwk = await privateJwk();
  const jwe = await encryptPrivateJwk(kekA, 'kid-1', jwk);
  await assert.rejects(decryptPrivateJwk(kekB, 'kid-1', jwe), (error: unknown) => {
    assert.ok(error instanceof KekMismatchError);
    assert.equal(error.code, 'ERR_KEK_MISMATCH');
    assert.ok(error.message.includes(kekA.fingerprint), 'names the KEK the data needs');
    assert.ok(error.message.includes(kekB.fingerprint), 'names the KEK loaded');
    assert.deepEqual(error.extra, { requiredKekFingerprint: kekA.fingerprint, loadedKekFingerprint: kekB.fingerprint });
    assert.ok(!error.message.includes(jwk.d as string));
    return true;
  });
});

test('a wrong KEK that claims the right fingerprint still fails authentication', async () => {
  const kekA = await kekFromBase64url(generateKek(), 'test A');
  const kekB = await kekFromBase64url(generateKek(), 'test B');
  const jwe = await encryptPrivateJwk(kekA, 'kid-1', await privateJwk());
  // Rewrite the header to name kekB: the header is AAD, so the tag no longer matches either way.
  const [, ...rest] = jwe.split('.');
  const forgedHeader = base64url.encode(JSON.stringify({ ...decodeProtectedHeader(jwe), kid: kekB.fingerprint }));
  await assert.rejects(decryptPrivateJwk(kekB, 'kid-1', [forgedHeader, ...rest].join('.')), {
    code: 'ERR_ENCRYPTED_KEY_INVALID',
  });
});

test('a ciphertext swapped between two key rows is refused', async () => {
  const kek = await kekFromBase64url(generateKek(), 'test');
  const jweA = await encryptPrivateJwk(kek, 'kid-A', await privateJwk());
  await assert.rejects(decryptPrivateJwk(kek, 'kid-B', jweA), (error: unknown) => {
    assert.ok(error instanceof EncryptedKeyInvalidError);
    assert.match(error.message, /belongs to another signing key/);
    return true;
  });
  // Re-labelling the header to the other kid breaks the authentication tag.
  const [, ...rest] = jweA.split('.');
  const relabelled = base64url.encode(JSON.stringify({ ...decodeProtectedHeader(jweA), mandate_kid: 'kid-B' }));
  await assert.rejects(decryptPrivateJwk(kek, 'kid-B', [relabelled, ...rest].join('.')), {
    code: 'ERR_ENCRYPTED_KEY_INVALID',
    message: /altered/,
  });
});

test('altered or malformed ciphertexts are refused with ERR_ENCRYPTED_KEY_INVALID', async () => {
  const kek = await kekFromBase64url(generateKek(), 'test');
  const jwe = await encryptPrivateJwk(kek, 'kid-1', await privateJwk());
  const parts = jwe.split('.');
  const ct = parts[3] as string;
  const flipped = (ct[0] === 'A' ? 'B' : 'A') + ct.slice(1);
  const altered = [parts[0], parts[1], parts[2], flipped, parts[4]].join('.');
  for (const bad of [altered, 'not a jwe', '', 'a.b.c.d.e', jwe.split('.').slice(0, 3).join('.')]) {
    await assert.rejects(decryptPrivateJwk(kek, 'kid-1', bad), { code: 'ERR_ENCRYPTED_KEY_INVALID' });
  }
});

test('an object that is not a loaded KEK is a programming error', async () => {
  const fake = { fingerprint: 'kek-x', source: 'fake' };
  await assert.rejects(encryptPrivateJwk(fake, 'kid', {}), TypeError);
});

test('deriveKekSecret: the same KEK and label give the same 32 bytes on every node; labels and KEKs separate', async () => {
  const text = generateKek();
  const a = await kekFromBase64url(text, 'node a');
  const b = await kekFromBase64url(text, 'node b');
  const other = await kekFromBase64url(generateKek(), 'other');
  const sa = await deriveKekSecret(a, 'dpop-nonce-v1');
  assert.equal(sa.length, 32);
  assert.deepEqual(await deriveKekSecret(b, 'dpop-nonce-v1'), sa);
  assert.notDeepEqual(await deriveKekSecret(a, 'another-purpose'), sa);
  assert.notDeepEqual(await deriveKekSecret(other, 'dpop-nonce-v1'), sa);
  assert.notDeepEqual(Buffer.from(sa).toString('base64url'), text, 'never the KEK itself');
  await assert.rejects(deriveKekSecret(a, ''), TypeError);
  await assert.rejects(deriveKekSecret({ fingerprint: 'x', source: 'forged' }, 'l'), TypeError);
});

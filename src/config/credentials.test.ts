import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { CredentialHashSchema } from './config-schema.ts';
import { CREDENTIAL_SECRET_PREFIX, generateCredentialSecret, hashCredential, matchCredential, verifyCredential } from './credentials.ts';

test('hashCredential gives sha256:<hex> of the UTF-8 secret (FIPS 180-4 test vector "abc")', () => {
  assert.equal(hashCredential('abc'), 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(CredentialHashSchema.safeParse({ id: 'x', hash: hashCredential('abc') }).success, true);
  assert.throws(() => hashCredential(''), TypeError);
});

test('verifyCredential accepts the right secret only, and never a malformed hash', () => {
  const secret = generateCredentialSecret();
  const hash = hashCredential(secret);
  assert.equal(verifyCredential(secret, hash), true);
  assert.equal(verifyCredential(secret, hash.toUpperCase().replace('SHA256', 'sha256')), true);
  assert.equal(verifyCredential(`${secret}x`, hash), false);
  assert.equal(verifyCredential('', hashCredential('x')), false);
  for (const bad of ['', 'sha256:', `sha256:${'a'.repeat(63)}`, `md5:${'a'.repeat(64)}`, createHash('sha256').update(secret).digest('hex')]) {
    assert.equal(verifyCredential(secret, bad), false, bad);
  }
});

test('matchCredential returns the matching id, or undefined', () => {
  const a = generateCredentialSecret();
  const b = generateCredentialSecret();
  const creds = [
    { id: 'a', hash: hashCredential(a) },
    { id: 'b', hash: hashCredential(b) },
  ];
  assert.equal(matchCredential(b, creds), 'b');
  assert.equal(matchCredential(a, creds), 'a');
  assert.equal(matchCredential('nope', creds), undefined);
  assert.equal(matchCredential(a, []), undefined);
});

test('generated secrets are prefixed, 256-bit and distinct', () => {
  const s = generateCredentialSecret();
  assert.ok(s.startsWith(CREDENTIAL_SECRET_PREFIX));
  assert.equal(Buffer.from(s.slice(CREDENTIAL_SECRET_PREFIX.length), 'base64url').length, 32);
  assert.notEqual(generateCredentialSecret(), s);
});

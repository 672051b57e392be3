import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignalsConfigSchema } from './signals-config.ts';
import { SetRefusedError } from './set-errors.ts';
import { checkSubjectIdentifier, mapSubject, type SubjectPrincipalLookup } from './subject.ts';

const none: SubjectPrincipalLookup = { byId: async () => undefined, bySpiffeId: async () => undefined };
const options = { userIssuer: 'https://idp.example.com', emailIsSubject: false, opaqueIsSubject: false };

test('checkSubjectIdentifier: known formats need their members; complex and aliases are bounded', () => {
  const bad: unknown[] = [
    null,
    'alice',
    { format: '' },
    { format: 'iss_sub', iss: 'https://idp' },
    { format: 'email', email: 42 },
    { format: 'complex' },
    { format: 'complex', user: { format: 'complex', user: { format: 'opaque', id: 'x' } } },
    { format: 'aliases', identifiers: [] },
    { format: 'aliases', identifiers: [{ format: 'aliases', identifiers: [{ format: 'opaque', id: 'x' }] }] },
    { format: 'opaque', id: 'x'.repeat(2049) },
  ];
  for (const value of bad) {
    assert.throws(() => checkSubjectIdentifier(value, 'sub_id'), (e: unknown) => e instanceof SetRefusedError && e.err === 'invalid_request' && e.reason === 'subject', JSON.stringify(value)?.slice(0, 80));
  }
  // A proprietary format passes unchecked (SSF 1.0 §3.3).
  assert.equal(checkSubjectIdentifier({ format: 'catalog_item', catalog_id: 'c1' }, 'sub_id').format, 'catalog_item');
});

test('mapSubject: email and opaque map to users only when configured', async () => {
  assert.deepEqual(await mapSubject({ format: 'email', email: 'a@example.com' }, options, none), {});
  assert.deepEqual(await mapSubject({ format: 'email', email: 'a@example.com' }, { ...options, emailIsSubject: true }, none), {
    principal: { kind: 'user', iss: 'https://idp.example.com', sub: 'a@example.com' },
  });
  assert.deepEqual(await mapSubject({ format: 'opaque', id: 'u1' }, { ...options, opaqueIsSubject: true }, none), { principal: { kind: 'user', iss: 'https://idp.example.com', sub: 'u1' } });
  assert.deepEqual(await mapSubject({ format: 'email', email: 'a@example.com' }, { emailIsSubject: true, opaqueIsSubject: false }, none), {}, 'no userIssuer: unmapped');
  assert.deepEqual(
    await mapSubject({ format: 'aliases', identifiers: [{ format: 'phone_number', phone_number: '+1' }, { format: 'iss_sub', iss: 'https://i', sub: 's' }] }, options, none),
    { principal: { kind: 'user', iss: 'https://i', sub: 's' } },
  );
});

test('mapSubject: complex subjects name a user, else an application (agent), and a session', async () => {
  const lookup: SubjectPrincipalLookup = {
    byId: async (id) => (id === 'agent-1' ? ({ id, kind: 'agent' } as never) : undefined),
    bySpiffeId: async () => undefined,
  };
  assert.deepEqual(await mapSubject({ format: 'complex', application: { format: 'opaque', id: 'agent-1' }, session: { format: 'iss_sub', iss: 'https://i', sub: 's1' } }, options, lookup), {
    principal: { kind: 'agent', id: 'agent-1' },
    session: 'https://i#s1',
  });
});

test('SignalsConfigSchema: defaults, asymmetric algorithms only, unique transmitter ids', () => {
  const d = SignalsConfigSchema.parse({});
  assert.equal(d.receiver.enabled, false);
  assert.equal(d.transmitter.enabled, false);
  assert.equal(d.transmitter.delivery.maxAttempts, 6);
  const t = { id: 'idp', issuer: 'https://idp', jwksUri: 'https://idp/jwks', audience: 'https://mandate' };
  assert.deepEqual(SignalsConfigSchema.parse({ receiver: { transmitters: [t] } }).receiver.transmitters[0]?.audience, ['https://mandate']);
  assert.equal(SignalsConfigSchema.safeParse({ receiver: { transmitters: [{ ...t, algorithms: ['HS256'] }] } }).success, false);
  assert.equal(SignalsConfigSchema.safeParse({ receiver: { transmitters: [{ ...t, algorithms: ['none'] }] } }).success, false);
  assert.equal(SignalsConfigSchema.safeParse({ receiver: { transmitters: [t, t] } }).success, false);
  assert.equal(SignalsConfigSchema.safeParse({ receiver: { transmitters: [{ ...t, id: 'a/b' }] } }).success, false);
  assert.equal(SignalsConfigSchema.safeParse({ receiver: { transmitters: [{ ...t, authorizationHash: 'plain-secret' }] } }).success, false);
  assert.equal(SignalsConfigSchema.safeParse({ receiver: { unknown: 1 } }).success, false);
});

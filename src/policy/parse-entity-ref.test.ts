import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EntityRefSyntaxError, parseEntityRef } from './parse-entity-ref.ts';

test('parses Cedar entity references, namespaced types and escapes included', () => {
  assert.deepEqual(parseEntityRef('User::"alice"'), { type: 'User', id: 'alice' });
  assert.deepEqual(parseEntityRef('Acme::Agent::"triage-bot"'), { type: 'Acme::Agent', id: 'triage-bot' });
  assert.deepEqual(parseEntityRef('Tool::"email.send"'), { type: 'Tool', id: 'email.send' });
  assert.deepEqual(parseEntityRef('User::""'), { type: 'User', id: '' });
  assert.deepEqual(parseEntityRef('User::"a\\"b\\\\c\\n\\u{e9}"'), { type: 'User', id: 'a"b\\c\né' });
  assert.deepEqual(parseEntityRef('Dataset::"with :: inside"'), { type: 'Dataset', id: 'with :: inside' });
});

test('refuses anything that is not exactly one reference, saying what is wrong', () => {
  const cases: Array<[string, RegExp]> = [
    ['alice', /no "::"/],
    ['User:alice', /no "::"/],
    ['User::alice', /double-quoted/],
    ["User::'alice'", /double-quoted/],
    ['User::"alice" ', /double-quoted/],
    ['User::"alice"x', /double-quoted/],
    ['1User::"alice"', /identifiers/],
    [' User::"alice"', /identifiers/],
    ['User::"a"::"b"', /identifiers|nothing may follow/],
    ['User::"a\\qb"', /unknown escape \\q/],
    ['User::"\\u{110000}"', /\\u\{hex\}/],
    ['User::"\\u{d800}"', /\\u\{hex\}/],
    ['User::"a"b"', /./],
  ];
  for (const [input, why] of cases) {
    assert.throws(() => parseEntityRef(input), (err: unknown) => err instanceof EntityRefSyntaxError && why.test(err.message) && err.message.includes('User::"alice"'), input);
  }
});

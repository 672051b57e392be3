/**
 * `mandate keys list|rotate` in-process against a real SQLite store and a real KEK: listing needs no KEK,
 * rotating needs the right one (refused clearly when missing or wrong, with nothing written), and every key
 * change is audited with the row it records.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKek } from '../../src/tokens/key-encryption.ts';
import { createCliFixture, lines, type CliFixture } from './store-cli-fixtures.ts';

async function withFixture(fn: (fx: CliFixture) => Promise<void>): Promise<void> {
  const fx = await createCliFixture();
  try {
    await fn(fx);
  } finally {
    await fx.cleanup();
  }
}

async function signingKeyRows(fx: CliFixture) {
  const store = await fx.openStore();
  try {
    return await store.signingKeys.list();
  } finally {
    await store.close();
  }
}

test('keys rotate: refused without a KEK (nothing written); then first key, then active + retiring, each change audited', async () => {
  await withFixture(async (fx) => {
    const noKek = await fx.run(['keys', 'rotate'], { env: {} });
    assert.equal(noKek.code, 1);
    assert.deepEqual(lines(noKek.stderr).length, 1);
    assert.match(noKek.stderr, /^mandate keys rotate: ERR_KEK_MISSING: rotation needs the key-encryption key to seal the new signing key: no key-encryption key: set MANDATE_KEK or kekFile/);
    assert.ok(!noKek.stderr.includes(fx.kek));

    const first = await fx.run(['keys', 'rotate']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^rotated: \S{43} \(EdDSA\) signs new mandates; running nodes switch within 30 s\nthere was no signing key before: this is the first one\n/);

    const second = await fx.run(['keys', 'rotate', '--json']);
    assert.equal(second.code, 0, second.stderr);
    const rotated = JSON.parse(second.stdout) as { newKid: string; retiringKid: string; retireAt: string };
    const rows = await signingKeyRows(fx);
    assert.equal(rows.length, 2);
    assert.equal(rows.find((r) => r.kid === rotated.newKid)?.state, 'active');
    const old = rows.find((r) => r.kid === rotated.retiringKid);
    assert.equal(old?.state, 'retiring');
    // The overlap covers the longest mandate (900 s) plus tolerance and the nodes' refresh interval.
    assert.ok(old?.retireAt !== undefined && Date.parse(rotated.retireAt) === old.retireAt);
    const fresh = rows.find((r) => r.kid === rotated.newKid);
    assert.ok((old.retireAt ?? 0) - (fresh?.activatedAt ?? Infinity) >= (900 + 5 + 30) * 1000);
    // No private part outside the JWE.
    for (const r of rows) assert.equal('d' in r.publicJwk, false);

    // keys list needs no KEK.
    const list = await fx.run(['keys', 'list'], { env: {} });
    assert.equal(list.code, 0, list.stderr);
    const out = lines(list.stdout);
    assert.match(out[0] ?? '', /^KID +ALG +STATE +IN JWKS +ACTIVATED +RETIRES$/);
    assert.match(out[1] ?? '', new RegExp(`^${rotated.newKid} +EdDSA +active \\(signing\\) +yes +\\S+Z +-$`));
    assert.match(out[2] ?? '', new RegExp(`^${rotated.retiringKid} +EdDSA +retiring +yes +\\S+Z +${rotated.retireAt.replace(/\./g, '\\.')}$`));
    const json = JSON.parse((await fx.run(['keys', 'list', '--json'], { env: {} })).stdout) as Array<{ kid: string; state: string; signing: boolean; published: boolean }>;
    assert.deepEqual(json.map((k) => [k.kid, k.state, k.signing, k.published]), [
      [rotated.newKid, 'active', true, true],
      [rotated.retiringKid, 'retiring', false, true],
    ]);

    const events = (await fx.auditEvents()).filter((e) => e.type === 'admin' && String(e.data?.operation).startsWith('keys.'));
    assert.deepEqual(
      events.map((e) => [e.data?.operation, e.data?.kid, e.data?.reason, e.resource]),
      [
        ['keys.created', rows.find((r) => r.kid === rotated.retiringKid)?.kid, 'rotation', `signing-key:${rotated.retiringKid}`],
        ['keys.created', rotated.newKid, 'rotation', `signing-key:${rotated.newKid}`],
        ['keys.retiring', rotated.retiringKid, 'rotation', `signing-key:${rotated.retiringKid}`],
      ],
    );
    for (const e of events) {
      assert.match(e.actor ?? '', /^cli:\S+$/);
      assert.equal(e.data?.source, 'cli');
      assert.ok(!JSON.stringify(e).includes(fx.kek));
    }
  });
});

test('keys rotate with another KEK than the one that sealed the store: ERR_KEK_MISMATCH, nothing written', async () => {
  await withFixture(async (fx) => {
    assert.equal((await fx.run(['keys', 'rotate'])).code, 0);
    const before = await signingKeyRows(fx);
    const eventsBefore = (await fx.auditEvents()).length;
    const wrong = await fx.run(['keys', 'rotate'], { env: { MANDATE_KEK: generateKek() } });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^mandate keys rotate: ERR_KEK_MISMATCH: signing key \S+ is sealed under KEK kek-\S+, but the loaded KEK \(env MANDATE_KEK\) is kek-\S+; configure the KEK that sealed the store\n$/);
    assert.deepEqual(await signingKeyRows(fx), before);
    assert.equal((await fx.auditEvents()).length, eventsBefore);

    const malformed = await fx.run(['keys', 'rotate'], { env: { MANDATE_KEK: 'not-a-kek' } });
    assert.equal(malformed.code, 1);
    assert.match(malformed.stderr, /^mandate keys rotate: ERR_KEK_INVALID: rotation needs the key-encryption key .*decodes to \d+ bytes/);
    assert.ok(!malformed.stderr.includes('not-a-kek'));
  });
});

test('keys list: an empty store says so; a missing store is refused; usage errors exit 2', async () => {
  await withFixture(async (fx) => {
    const missing = await fx.run(['keys', 'list']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /ERR_STORE_UNAVAILABLE: there is no store at /);
    await (await fx.openStore()).close();
    const empty = await fx.run(['keys', 'list'], { env: {} });
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout, 'no signing keys (Mandate creates one at startup)\n');
    assert.equal((await fx.run(['keys', 'rotate', '--kid', 'x'])).code, 2);
    const help = await fx.run(['keys', '--help'], { config: false });
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^ {2}rotate +Rotate the token signing key/m);
  });
});

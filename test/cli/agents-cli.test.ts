/**
 * `mandate agents add|list|show|suspend|retire` in-process against a real SQLite store in a temporary directory:
 * registrations from a file and from flags, refusals that write nothing, output and JSON, status changes and
 * their audit events, and principals declared in mandate.yaml.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import { systemClock } from '../../src/core/ports.ts';
import { syncConfiguredPrincipals } from '../../src/identity/registry.ts';
import { configPrincipalEvent } from '../../src/server/principal-routes.ts';
import { createCliFixture, lines, publicJwk, type CliFixture } from './store-cli-fixtures.ts';

async function withFixture(fn: (fx: CliFixture) => Promise<void>, extraYaml = ''): Promise<void> {
  const fx = await createCliFixture(extraYaml);
  try {
    await fn(fx);
  } finally {
    await fx.cleanup();
  }
}

async function writeRegistration(fx: CliFixture, name: string, yaml: string): Promise<string> {
  const path = join(fx.dir, name);
  await writeFile(path, yaml);
  return path;
}

test('agents add from a YAML file and from flags; show prints every field with thumbprints; list shows both kinds', async () => {
  await withFixture(async (fx) => {
    const { publicJwk: jwk } = await publicJwk();
    const thumbprint = await calculateJwkThumbprint(jwk);
    const file = await writeRegistration(
      fx,
      'triage-bot.yaml',
      `id: triage-bot
kind: agent
name: Triage bot
owner: alice@example.com
mode: autonomous
workflows: [triage]
audiences: [https://crm.example/mcp]
credentials:
  - type: jwks
    jwks: { keys: [${JSON.stringify({ ...jwk, kid: 'tb-1' })}] }
`,
    );
    const added = await fx.run(['agents', 'add', '--file', file]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /^registered agent triage-bot \("Triage bot", owner alice@example\.com, mode autonomous, 1 credential, status active, dpop required\)\n/);
    assert.match(added.stdout, /audited as cli:\S+/);

    // Flags: a service, with the key in a JWK file, a SPIFFE ID and repeated audiences.
    const { publicJwk: svcJwk } = await publicJwk();
    const jwkFile = join(fx.dir, 'crm-sync.jwk.json');
    await writeFile(jwkFile, JSON.stringify(svcJwk));
    const svc = await fx.run([
      'agents', 'add', '--kind', 'service', '--id', 'crm-sync', '--name', 'CRM sync', '--owner', 'ops@example.com',
      '--spiffe-id', 'spiffe://example.org/crm-sync', '--jwks-file', jwkFile, '--audience', 'https://crm.example/mcp', '--audience', 'https://wiki.example/mcp', '--dpop', 'optional',
    ]);
    assert.equal(svc.code, 0, svc.stderr);
    assert.match(svc.stdout, /^registered service crm-sync \("CRM sync", owner ops@example\.com, 2 credentials, status active, dpop optional\)/);

    const show = await fx.run(['agents', 'show', 'triage-bot']);
    assert.equal(show.code, 0, show.stderr);
    const out = lines(show.stdout);
    assert.ok(out.includes('id:          triage-bot'), show.stdout);
    assert.ok(out.includes('kind:        agent'));
    assert.ok(out.includes('owner:       alice@example.com'));
    assert.ok(out.includes('mode:        autonomous'));
    assert.ok(out.includes('status:      active'));
    assert.ok(out.includes('workflows:   triage'));
    assert.ok(out.includes('audiences:   https://crm.example/mcp'));
    assert.ok(out.includes('last used:   never'));
    assert.ok(out.some((l) => l.startsWith('source:      api ')));
    assert.ok(out.includes('credentials (1):'));
    assert.ok(out.includes(`  jwk       sha256:${thumbprint}  OKP Ed25519, kid "tb-1"`), show.stdout);
    // Thumbprints, not whole JWKs.
    assert.ok(!show.stdout.includes(jwk.x as string));

    const json = await fx.run(['agents', 'show', 'triage-bot', '--json']);
    assert.equal(json.code, 0);
    const view = JSON.parse(json.stdout) as { id: string; credentials: Array<{ type: string; jwks: { keys: Array<{ x: string }> } }>; source: string };
    assert.equal(view.id, 'triage-bot');
    assert.equal(view.source, 'api');
    assert.equal(view.credentials[0]?.jwks.keys[0]?.x, jwk.x);

    const svcShow = await fx.run(['agents', 'show', 'crm-sync']);
    assert.ok(lines(svcShow.stdout).includes('  spiffe    spiffe://example.org/crm-sync'), svcShow.stdout);
    assert.ok(lines(svcShow.stdout).includes('mode:        -'));

    const list = await fx.run(['agents', 'list']);
    assert.equal(list.code, 0, list.stderr);
    const rows = lines(list.stdout);
    assert.match(rows[0] ?? '', /^ID +KIND +MODE +STATUS +OWNER +SOURCE +CREDS +LAST USED +NAME$/);
    assert.match(rows[1] ?? '', /^crm-sync +service +- +active +ops@example\.com +api +2 +never +CRM sync$/);
    assert.match(rows[2] ?? '', /^triage-bot +agent +autonomous +active +alice@example\.com +api +1 +never +Triage bot$/);
    const services = JSON.parse((await fx.run(['agents', 'list', '--kind', 'service', '--json'])).stdout) as { principals: Array<{ id: string; kind: string }> };
    assert.deepEqual(services.principals.map((p) => p.id), ['crm-sync']);

    const events = (await fx.auditEvents()).filter((e) => e.type === 'admin');
    assert.deepEqual(events.map((e) => [e.data?.operation, e.data?.principal, e.data?.source]), [
      ['principals.create', 'triage-bot', 'cli'],
      ['principals.create', 'crm-sync', 'cli'],
    ]);
    for (const e of events) assert.match(e.actor ?? '', /^cli:\S+$/);
  });
});

test('agents add refuses a credential another principal holds, and a taken id: exit 1, a clear message, nothing written', async () => {
  await withFixture(async (fx) => {
    const { publicJwk: jwk } = await publicJwk();
    const jwkFile = join(fx.dir, 'shared.jwk.json');
    await writeFile(jwkFile, JSON.stringify({ keys: [jwk] }));
    const base = ['agents', 'add', '--name', 'Bot', '--owner', 'alice@example.com', '--mode', 'chat'];
    assert.equal((await fx.run([...base, '--id', 'bot-a', '--jwks-file', jwkFile])).code, 0);
    const before = (await fx.auditEvents()).length;

    const dup = await fx.run([...base, '--id', 'bot-b', '--jwks-file', jwkFile]);
    assert.equal(dup.code, 1);
    assert.deepEqual(lines(dup.stderr), [
      `mandate agents add: ERR_CONFLICT: the public key sha256:${await calculateJwkThumbprint(jwk)} is already registered to bot-a; one credential belongs to one principal: give bot-b its own (nothing was written)`,
    ]);
    assert.equal(dup.stdout, '');

    const spiffe = ['--spiffe-id', 'spiffe://example.org/bot'];
    assert.equal((await fx.run([...base, '--id', 'bot-c', ...spiffe])).code, 0);
    const dupSpiffe = await fx.run([...base, '--id', 'bot-d', ...spiffe]);
    assert.equal(dupSpiffe.code, 1);
    assert.match(dupSpiffe.stderr, /ERR_CONFLICT: the SPIFFE ID spiffe:\/\/example\.org\/bot is already registered to bot-c/);

    const taken = await fx.run([...base, '--id', 'bot-a', '--spiffe-id', 'spiffe://example.org/other']);
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /^mandate agents add: ERR_CONFLICT: a principal with id bot-a is already registered \(agent, active, source api\); nothing was written$/m);

    // The same refusal for a JSON registration on standard input.
    const json = JSON.stringify({ id: 'bot-e', name: 'E', owner: 'o', mode: 'chat', credentials: [{ type: 'jwks', jwks: { keys: [jwk] } }] });
    const stdin = await fx.run(['agents', 'add', '--file', '-'], { stdin: json });
    assert.equal(stdin.code, 1);
    assert.match(stdin.stderr, /ERR_CONFLICT: the public key sha256:\S+ is already registered to bot-a/);

    const list = JSON.parse((await fx.run(['agents', 'list', '--json'])).stdout) as { principals: Array<{ id: string }> };
    assert.deepEqual(list.principals.map((p) => p.id), ['bot-a', 'bot-c']);
    assert.equal((await fx.auditEvents()).length, before + 1);
  });
});

test('agents add: invalid registrations list every problem with its field path (exit 1); command-line mistakes exit 2', async () => {
  await withFixture(async (fx) => {
    const bad = await fx.run(['agents', 'add', '--id', 'Bad Id', '--name', 'x', '--owner', 'o', '--audience', 'not a url']);
    assert.equal(bad.code, 1);
    const err = lines(bad.stderr);
    assert.equal(err[0], 'mandate agents add: ERR_INVALID_REQUEST: the registration is invalid (4 problems); nothing was written');
    assert.ok(err.includes('  id: an id of 1..128 lower-case letters, digits or . _ : - starting with a letter or digit'), bad.stderr);
    assert.ok(err.includes('  audiences.0: a resource indicator: an absolute URL'), bad.stderr);
    assert.ok(err.includes('  credentials: at least one credential: every principal proves itself'), bad.stderr);
    assert.ok(err.includes('  mode: an agent needs a mode: chat or autonomous'), bad.stderr);
    const noMode = await fx.run(['agents', 'add', '--id', 'no-mode', '--name', 'x', '--owner', 'o', '--spiffe-id', 'spiffe://example.org/no-mode']);
    assert.equal(noMode.code, 1);
    assert.deepEqual(lines(noMode.stderr).slice(1), ['  mode: an agent needs a mode: chat or autonomous']);

    // A private key in a JWK file: refused by the schema, with the member named.
    const { privateJwk } = await publicJwk();
    const privFile = join(fx.dir, 'private.jwk.json');
    await writeFile(privFile, JSON.stringify(privateJwk));
    const priv = await fx.run(['agents', 'add', '--id', 'p', '--name', 'P', '--owner', 'o', '--mode', 'chat', '--jwks-file', privFile]);
    assert.equal(priv.code, 1);
    assert.ok(lines(priv.stderr).includes('  credentials.0.jwks.keys.0: holds a private part (d); register the PUBLIC key only'), priv.stderr);
    assert.ok(!priv.stderr.includes(privateJwk.d as string));
    const pem = join(fx.dir, 'key.pem');
    await writeFile(pem, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
    const pemRun = await fx.run(['agents', 'add', '--id', 'p', '--name', 'P', '--owner', 'o', '--mode', 'chat', '--jwks-file', pem]);
    assert.equal(pemRun.code, 2);
    assert.match(pemRun.stderr, /--jwks-file .*key\.pem: holds a PRIVATE key; register the public key only/);

    const service = await fx.run(['agents', 'add', '--kind', 'service', '--id', 's', '--name', 'S', '--owner', 'o', '--mode', 'chat', '--jwks-uri', 'https://keys.example/jwks']);
    assert.equal(service.code, 1);
    assert.deepEqual(lines(service.stderr).slice(1), ['  mode: a service has no mode']);
    const http = await fx.run(['agents', 'add', '--kind', 'service', '--id', 's', '--name', 'S', '--owner', 'o', '--jwks-uri', 'http://keys.example/jwks']);
    assert.equal(http.code, 1);
    assert.deepEqual(lines(http.stderr).slice(1), ['  credentials.0.uri: an https: URL']);

    const yamlFile = await writeRegistration(fx, 'broken.yaml', 'id: [unclosed\n');
    const broken = await fx.run(['agents', 'add', '--file', yamlFile]);
    assert.equal(broken.code, 2);
    assert.match(broken.stderr, /^mandate agents add: ERR_USAGE: --file .*broken\.yaml: not valid YAML or JSON: /);
    const missing = await fx.run(['agents', 'add', '--file', join(fx.dir, 'nope.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--file .*nope\.yaml: no such file/);
    const nothing = await fx.run(['agents', 'add']);
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /ERR_USAGE: give the registration: --file FILE, or --id/);
    const dpop = await fx.run(['agents', 'add', '--id', 'x', '--dpop', 'sometimes']);
    assert.equal(dpop.code, 2);
    assert.match(dpop.stderr, /ERR_USAGE: --dpop: "sometimes" is not one of required, optional/);
    assert.equal((await fx.run(['agents', 'list', '--status', 'asleep'])).code, 2);

    // Nothing was written by any of these.
    assert.equal((await fx.auditEvents()).filter((e) => e.type === 'admin').length, 0);
  });
});

test('agents suspend and retire: status changes with audit events; no-ops and refusals; not found', async () => {
  await withFixture(async (fx) => {
    const add = await fx.run(['agents', 'add', '--id', 'helper', '--name', 'Helper', '--owner', 'bob@example.com', '--mode', 'chat', '--spiffe-id', 'spiffe://example.org/helper']);
    assert.equal(add.code, 0, add.stderr);

    const suspend = await fx.run(['agents', 'suspend', 'helper', '--reason', 'key exposure under investigation']);
    assert.equal(suspend.code, 0, suspend.stderr);
    assert.match(suspend.stdout, /^suspended agent helper: it can no longer authenticate; 0 open tasks revoked with every mandate they held; other mandates already issued to it stay valid until they expire \(at most 900 s\)\. Audited as cli:\S+\.\n$/);
    const again = await fx.run(['agents', 'suspend', 'helper']);
    assert.equal(again.code, 0);
    assert.equal(again.stdout, 'agent helper is already suspended; nothing changed\n');

    const suspended = JSON.parse((await fx.run(['agents', 'list', '--status', 'suspended', '--json'])).stdout) as { principals: Array<{ id: string }> };
    assert.deepEqual(suspended.principals.map((p) => p.id), ['helper']);
    assert.equal(JSON.parse((await fx.run(['agents', 'list', '--status', 'active', '--json'])).stdout).principals.length, 0);

    const retire = await fx.run(['agents', 'retire', 'helper', '--json']);
    assert.equal(retire.code, 0, retire.stderr);
    assert.equal((JSON.parse(retire.stdout) as { status: string }).status, 'retired');
    const suspendRetired = await fx.run(['agents', 'suspend', 'helper']);
    assert.equal(suspendRetired.code, 1);
    assert.match(suspendRetired.stderr, /ERR_CONFLICT: helper is retired, not active; .*nothing was written/);

    const statusEvents = (await fx.auditEvents()).filter((e) => e.type === 'admin' && String(e.data?.operation).startsWith('principals.status.'));
    assert.deepEqual(
      statusEvents.map((e) => [e.data?.operation, e.data?.principal, e.data?.previous, e.data?.reason ?? null]),
      [
        ['principals.status.suspended', 'helper', 'active', 'key exposure under investigation'],
        ['principals.status.retired', 'helper', 'suspended', null],
      ],
    );
    for (const e of statusEvents) assert.match(e.actor ?? '', /^cli:/);

    const unknown = await fx.run(['agents', 'retire', 'nobody']);
    assert.equal(unknown.code, 1);
    assert.equal(lines(unknown.stderr)[0], 'mandate agents retire: ERR_NOT_FOUND: no principal nobody is registered; see mandate agents list');
    assert.equal((await fx.run(['agents', 'show', 'nobody'])).code, 1);
    const badId = await fx.run(['agents', 'show', 'Not/An/Id']);
    assert.equal(badId.code, 2);
    assert.match(badId.stderr, /is not a principal id/);
  });
});

test('principals declared in mandate.yaml: add refuses their id; suspend and retire hold across a restart, and say so', async () => {
  const declared = `principals:
  - id: declared-bot
    kind: agent
    name: Declared bot
    owner: carol@example.com
    mode: chat
    credentials:
      - type: spiffe
        spiffeId: spiffe://example.org/declared-bot
`;
  await withFixture(async (fx) => {
    const config = await fx.config();
    const sync = async () => {
      const store = await fx.openStore();
      try {
        return await syncConfiguredPrincipals(store.principals, config.principals, {
          clock: systemClock,
          event: (operation, id) => configPrincipalEvent(operation, id, { clock: systemClock }),
        });
      } finally {
        await store.close();
      }
    };
    assert.deepEqual((await sync()).created, ['declared-bot']);

    const add = await fx.run(['agents', 'add', '--id', 'declared-bot', '--name', 'x', '--owner', 'o', '--mode', 'chat', '--spiffe-id', 'spiffe://example.org/x']);
    assert.equal(add.code, 1);
    assert.match(add.stderr, /ERR_CONFLICT: declared-bot is declared in the configuration file \(principals:\), which is authoritative for it/);

    const suspend = await fx.run(['agents', 'suspend', 'declared-bot']);
    assert.equal(suspend.code, 0, suspend.stderr);
    assert.match(suspend.stdout, /^note: declared-bot is declared in mandate\.yaml\. The suspension holds across restarts/m);
    // A restart syncs the file again: it never re-activates.
    await sync();
    assert.match((await fx.run(['agents', 'show', 'declared-bot'])).stdout, /^status: +suspended$/m);

    const retire = await fx.run(['agents', 'retire', 'declared-bot']);
    assert.equal(retire.code, 0);
    assert.match(retire.stdout, /remove it from the file so that the two agree/);
    await sync();
    const show = await fx.run(['agents', 'show', 'declared-bot']);
    assert.match(show.stdout, /^status: +retired$/m);
    assert.match(show.stdout, /^source: +config \(declared in mandate\.yaml/m);
  }, declared);
});

test('agents list on a store that does not exist: exit 1, says where it looked, creates nothing', async () => {
  await withFixture(async (fx) => {
    const r = await fx.run(['agents', 'list']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^mandate agents list: ERR_STORE_UNAVAILABLE: there is no store at .*data\/mandate\.db; check --config/);
    assert.equal((await fx.run(['agents', 'list'])).code, 1);
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigInvalidError } from '../core/errors.ts';
import type { ConfigIssue } from './config-issues.ts';
import { defaultConfig, findConfigFile, loadConfig, parseConfig, type ConfigEnv } from './load-config.ts';

const HASH_A = `sha256:${'a'.repeat(64)}`;
const HASH_B = `sha256:${'b'.repeat(64)}`;

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const parse = (text: string, env: ConfigEnv = {}) => parseConfig(text, { source: 'mandate.yaml', env, baseDir: '/etc/mandate', cwd: '/home/op' });

/** Parses expecting failure; returns the issues (and checks the error's shape once, here). */
function issuesOf(text: string, env: ConfigEnv = {}): ConfigIssue[] {
  try {
    parse(text, env);
  } catch (err) {
    assert.ok(err instanceof ConfigInvalidError, String(err));
    assert.equal(err.code, 'ERR_CONFIG_INVALID');
    const issues = err.extra?.issues as ConfigIssue[];
    assert.ok(Array.isArray(issues) && issues.length > 0);
    for (const i of issues) assert.ok(err.description.includes(i.message), `description lists "${i.message}"`);
    return issues;
  }
  assert.fail('expected ConfigInvalidError');
}
const messages = (text: string, env: ConfigEnv = {}) => issuesOf(text, env).map((i) => i.message);

const DEFAULTS = {
  server: {
    host: '127.0.0.1',
    port: 8080,
    bodyLimitBytes: 65536,
    maxJsonDepth: 32,
    maxHeaderSizeBytes: 16384,
    requestTimeoutMs: 10000,
    headersTimeoutMs: 5000,
    keepAliveTimeoutMs: 5000,
    trustProxy: false,
  },
  store: { driver: 'sqlite', dataDir: '/etc/mandate/data', sqlite: { file: 'mandate.db' } },
  policy: { dir: '/etc/mandate/policies', watch: true, engine: 'compiled' },
  authzen: { credentials: [] },
  identity: { issuers: [], outbound: { timeoutMs: 5000, maxBytes: 1048576, allowPrivateNetworks: false, allowHosts: [], allowHttp: false } },
  tokens: { lifetimeSeconds: 300, maxLifetimeSeconds: 900, maxDelegationDepth: 4, signingAlgorithm: 'EdDSA' },
  spiffe: { trustDomains: [], audiences: [], defaultRefreshSeconds: 300, maxStaleSeconds: 3600 },
  dpop: { algorithms: ['ES256', 'EdDSA', 'PS256', 'RS256'], maxAgeSeconds: 60, skewSeconds: 5, nonce: 'off', nonceWindowSeconds: 300 },
  clientAuth: {
    maxAssertionLifetimeSeconds: 300,
    clockToleranceSeconds: 5,
    algorithms: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'],
    allowSharedSecrets: false,
  },
  signals: {
    receiver: { enabled: false, maxSetBytes: 65536, maxSetAgeSeconds: 3600, clockToleranceSeconds: 60, transmitters: [] },
    transmitter: {
      enabled: false,
      maxStreamsPerClient: 5,
      minVerificationIntervalSeconds: 30,
      audiences: {},
      delivery: { maxAttempts: 6, initialBackoffMs: 1000, maxBackoffMs: 300000, maxQueued: 10000, concurrency: 4 },
    },
  },
  gateway: { allowedOrigins: [], upstreams: [], http: {}, extAuthz: { enabled: false, rules: [] }, results: { onSensitive: 'remove', maxBytes: 4194304 } },
  resources: [],
  principals: [],
  audit: { maxDelayMs: 0, maxBatch: 256, maxPending: 10000 },
  rateLimit: { decisionsPerSecondPerClient: 1000, burst: 2000 },
  log: { level: 'info' },
};

test('an empty file, a comment-only file, and empty sections all give the defaults', () => {
  assert.deepEqual(parse(''), DEFAULTS);
  assert.deepEqual(parse('# nothing yet\n'), DEFAULTS);
  assert.deepEqual(parse('server:\n  # port: 9000\nstore:\nlog: {}\n'), DEFAULTS);
  assert.deepEqual(defaultConfig('/etc/mandate'), DEFAULTS);
});

test('a full file is read, relative paths resolve against the file directory', () => {
  const c = parse(`
server: { host: 0.0.0.0, port: 9443, trustProxy: true }
store: { dataDir: ../var/mandate, sqlite: { file: m.db } }
policy: { dir: /srv/policies, watch: false }
authzen:
  credentials:
    - { id: billing-service, hash: "${HASH_A.toUpperCase().replace('SHA256', 'sha256')}" }
audit: { maxDelayMs: 0, maxBatch: 10, maxPending: 100 }
rateLimit: { decisionsPerSecondPerClient: 5, burst: 10 }
log: { level: debug }
`);
  assert.equal(c.server.host, '0.0.0.0');
  assert.equal(c.server.port, 9443);
  assert.equal(c.server.trustProxy, true);
  assert.equal(c.store.dataDir, '/etc/var/mandate');
  assert.equal(c.store.sqlite.file, 'm.db');
  assert.equal(c.policy.dir, '/srv/policies');
  assert.equal(c.policy.watch, false);
  // Hex is normalised to lower case.
  assert.deepEqual(c.authzen.credentials, [{ id: 'billing-service', hash: HASH_A }]);
  assert.deepEqual(c.audit, { maxDelayMs: 0, maxBatch: 10, maxPending: 100 });
  assert.equal(c.log.level, 'debug');
});

test('each kind of bad value is reported as "<key.path>: found …, expected …"', () => {
  const table: [string, string][] = [
    ['server:\n  port: abc\n', 'server.port: found string "abc", expected an integer 1..65535'],
    ['server:\n  port: 70000\n', 'server.port: found number 70000, expected an integer 1..65535'],
    ['server:\n  port: 80.5\n', 'server.port: found number 80.5, expected an integer 1..65535'],
    ['server:\n  port: "8080"\n', 'server.port: found string "8080", expected an integer 1..65535'],
    ['server:\n  trustProxy: yes\n', 'server.trustProxy: found string "yes", expected true or false'],
    ['server:\n  host: [a]\n', 'server.host: found a list of 1 item, expected a host name or IP address (e.g. 127.0.0.1, ::, localhost)'],
    ['server: 3\n', 'server: found number 3, expected a mapping'],
    ['- a\n- b\n', '(top level): found a list of 2 items, expected a mapping'],
    ['store:\n  driver: postgres\n', 'store.driver: found string "postgres", expected one of: sqlite'],
    ['store:\n  sqlite:\n    file: ../x.db\n', 'store.sqlite.file: found string "../x.db", expected a plain file name without directories (e.g. mandate.db)'],
    ['policy:\n  dir: ""\n', 'policy.dir: found string "", expected a non-empty path'],
    ['audit:\n  maxDelayMs: -1\n', 'audit.maxDelayMs: found number -1, expected an integer 0..1000'],
    ['log:\n  level: loud\n', 'log.level: found string "loud", expected one of: fatal, error, warn, info, debug, trace, silent'],
    ['authzen:\n  credentials: {}\n', 'authzen.credentials: found a mapping, expected a list of { id, hash } mappings'],
    [
      `authzen:\n  credentials:\n    - hash: "${HASH_A}"\n`,
      'authzen.credentials[0].id: found nothing, expected an id of 1..128 letters, digits or . _ : @ - starting with a letter or digit',
    ],
    [
      'server:\n  requestTimeoutMs: 1000\n  headersTimeoutMs: 2000\n',
      'server.headersTimeoutMs: found number 2000, expected at most server.requestTimeoutMs (1000)',
    ],
  ];
  for (const [text, expected] of table) assert.deepEqual(messages(text), [expected], text);
});

test('every problem is listed at once, with its position in the file', () => {
  const issues = issuesOf('server:\n  port: abc\n  trustProxy: 1\nlog:\n  level: loud\n');
  assert.deepEqual(
    issues.map((i) => [i.path, i.found, i.expected, i.line, i.column]),
    [
      ['server.port', 'string "abc"', 'an integer 1..65535', 2, 9],
      ['server.trustProxy', 'number 1', 'true or false', 3, 15],
      ['log.level', 'string "loud"', 'one of: fatal, error, warn, info, debug, trace, silent', 5, 10],
    ],
  );
});

test('a credential hash is never echoed back, even a wrong one (it may be a pasted secret)', () => {
  const secret = 'mandate_SuperSecretValueThatSomeonePastedHere';
  const issues = issuesOf(`authzen:\n  credentials:\n    - id: svc\n      hash: ${secret}\n`);
  assert.deepEqual(
    issues.map((i) => i.message),
    [`authzen.credentials[0].hash: found a string of ${secret.length} characters, expected sha256:<64 hex digits>`],
  );
  try {
    parse(`authzen:\n  credentials:\n    - id: svc\n      hash: ${secret}\n`);
  } catch (err) {
    assert.doesNotMatch(JSON.stringify({ d: (err as ConfigInvalidError).description, e: (err as ConfigInvalidError).extra }), /SuperSecret/);
  }
});

test("a principal's shared-secret hash is never echoed either, nor a credential given as a bare string", () => {
  const secret = 'mandate_AnotherPastedSecretValue0123456789';
  const text = `principals:\n  - id: legacy\n    kind: service\n    name: L\n    owner: alice\n    credentials:\n      - { type: client_secret, hash: ${secret} }\n      - ${secret}\n`;
  const all = issuesOf(text).map((i) => i.message).join('\n');
  assert.match(all, /principals\[0\]\.credentials\[0\]\.hash: found a string of \d+ characters/);
  assert.doesNotMatch(all, /AnotherPasted/);
});

test('a credential entry that is a bare string is not echoed; scopes are checked and echoed', () => {
  assert.deepEqual(messages('authzen:\n  credentials:\n    - mandate_pastedSecret\n'), [
    'authzen.credentials[0]: found a string of 20 characters, expected a mapping with id, hash and optional scopes',
  ]);
  assert.deepEqual(messages(`authzen:\n  credentials:\n    - { id: a, hash: "${HASH_A}", scopes: [evaluate, admin] }\n`), [
    'authzen.credentials[0].scopes[1]: found string "admin", expected a list of scopes, each one of: evaluate, policy:read, policy:reload, principals:read, principals:write, tasks:read, tasks:write, users:read, users:write, lockdown, signals:manage, vault:admin',
  ]);
  const c = parse(`authzen:\n  credentials:\n    - { id: a, hash: "${HASH_A}", scopes: [evaluate, "policy:read"] }\n`);
  assert.deepEqual(c.authzen.credentials, [{ id: 'a', hash: HASH_A, scopes: ['evaluate', 'policy:read'] }]);
});

test('duplicate credential ids and hashes are refused', () => {
  assert.deepEqual(
    messages(`authzen:\n  credentials:\n    - { id: a, hash: "${HASH_A}" }\n    - { id: a, hash: "${HASH_B}" }\n    - { id: c, hash: "${HASH_A}" }\n`),
    [
      'authzen.credentials[1].id: found string "a", expected an id not already used by authzen.credentials[0].id',
      'authzen.credentials[2].hash: found the same hash as authzen.credentials[0].hash, expected a hash used by one credential only',
    ],
  );
});

test('unknown keys are errors, with a suggestion when one is obvious', () => {
  const serverKeys = 'host, port, bodyLimitBytes, maxJsonDepth, maxHeaderSizeBytes, requestTimeoutMs, headersTimeoutMs, keepAliveTimeoutMs, trustProxy, tls';
  const topKeys = 'server, store, policy, authzen, identity, tokens, spiffe, dpop, clientAuth, signals, gateway, resources, principals, audit, rateLimit, log';
  assert.deepEqual(messages('server:\n  prot: 1\n'), [`server.prot: found an unknown key, expected one of ${serverKeys} (did you mean "port"?)`]);
  assert.deepEqual(messages('server:\n  body_limit_bytes: 1\n'), [
    `server.body_limit_bytes: found an unknown key, expected one of ${serverKeys} (did you mean "bodyLimitBytes"?)`,
  ]);
  assert.deepEqual(messages('port: 8080\n'), [`port: found an unknown key, expected one of ${topKeys} (did you mean "server.port"?)`]);
  assert.deepEqual(messages('frobnicate: true\n'), [`frobnicate: found an unknown key, expected one of ${topKeys}`]);
  assert.deepEqual(messages('authzen:\n  credentials:\n    - { id: a, hash: "' + HASH_A + '", secret: x }\n'), [
    'authzen.credentials[0].secret: found an unknown key, expected one of id, hash, scopes',
  ]);
  // `__proto__` stays a key (and is rejected); it does not become the prototype that supplies `port`.
  assert.deepEqual(messages('server:\n  __proto__: { port: 1 }\n'), [`server.__proto__: found an unknown key, expected one of ${serverKeys}`]);
  const [issue] = issuesOf('log:\n  levle: debug\n');
  assert.equal(issue?.line, 2);
  assert.equal(issue?.column, 3);
});

test('YAML syntax errors name the line and column', () => {
  const tab = issuesOf('server:\n  port: 8080\n\thost: x\n');
  assert.deepEqual(
    tab.map((i) => [i.message, i.line, i.column]),
    [['line 3, column 1: found invalid YAML (Tabs are not allowed as indentation), expected well-formed YAML', 3, 1]],
  );
  const unterminated = issuesOf('server:\n  port: 8080\n  host: "unterminated\n');
  assert.match(unterminated[0]?.message ?? '', /^line \d+, column \d+: found invalid YAML \(Missing closing "quote\), expected well-formed YAML$/);

  const dup = issuesOf('log:\n  level: info\nlog:\n  level: debug\n');
  assert.deepEqual(
    dup.map((i) => i.message),
    ['line 3, column 1: found invalid YAML (Map keys must be unique), expected well-formed YAML'],
  );
  assert.deepEqual(
    messages('store:\n  dataDir: !!binary aGVsbG8=\n'),
    ['line 2, column 21: found the YAML tag !!binary, expected plain YAML values without tags'],
  );
});

test('environment overrides win over the file; env paths resolve against the working directory', () => {
  const c = parse('server:\n  port: 1000\nstore:\n  dataDir: ./d\n', {
    MANDATE_HOST: '0.0.0.0',
    MANDATE_PORT: '9090',
    MANDATE_DATA_DIR: 'state',
    MANDATE_POLICY_DIR: '/opt/policies',
    MANDATE_LOG_LEVEL: 'warn',
    MANDATE_AUTHZEN_CREDENTIAL_HASHES: ` a=${HASH_A} , b=${HASH_B},`,
    MANDATE_UNRELATED: 'ignored',
  });
  assert.equal(c.server.host, '0.0.0.0');
  assert.equal(c.server.port, 9090);
  assert.equal(c.store.dataDir, '/home/op/state');
  assert.equal(c.policy.dir, '/opt/policies');
  assert.equal(c.log.level, 'warn');
  assert.deepEqual(c.authzen.credentials, [
    { id: 'a', hash: HASH_A },
    { id: 'b', hash: HASH_B },
  ]);
  // An empty value counts as unset.
  assert.equal(parse('server:\n  port: 1000\n', { MANDATE_PORT: '' }).server.port, 1000);
});

test('bad environment values are reported like bad keys', () => {
  assert.deepEqual(messages('', { MANDATE_PORT: 'abc' }), ['env MANDATE_PORT: found "abc", expected an integer 1..65535']);
  assert.deepEqual(messages('', { MANDATE_PORT: '0' }), ['env MANDATE_PORT: found "0", expected an integer 1..65535']);
  assert.deepEqual(messages('', { MANDATE_LOG_LEVEL: 'loud' }), [
    'env MANDATE_LOG_LEVEL: found "loud", expected one of: fatal, error, warn, info, debug, trace, silent',
  ]);
  assert.deepEqual(messages('', { MANDATE_HOST: 'two words' }), [
    'env MANDATE_HOST: found "two words", expected a host name or IP address (e.g. 127.0.0.1, ::, localhost)',
  ]);
  assert.deepEqual(messages('', { MANDATE_AUTHZEN_CREDENTIAL_HASHES: `a=${HASH_A},mandate_rawsecret,b=sha256:zz,a=${HASH_B}` }), [
    'env MANDATE_AUTHZEN_CREDENTIAL_HASHES[1]: found a value of 17 characters, expected id=sha256:<64 hex digits>',
    'env MANDATE_AUTHZEN_CREDENTIAL_HASHES[2].hash: found a value of 9 characters, expected sha256:<64 hex digits>',
    'env MANDATE_AUTHZEN_CREDENTIAL_HASHES[1].id: found string "a", expected an id not already used by env MANDATE_AUTHZEN_CREDENTIAL_HASHES[0].id',
  ]);
  // File and environment problems come together in one error.
  assert.deepEqual(messages('log:\n  level: loud\n', { MANDATE_PORT: 'x' }), [
    'env MANDATE_PORT: found "x", expected an integer 1..65535',
    'log.level: found string "loud", expected one of: fatal, error, warn, info, debug, trace, silent',
  ]);
});

test('loadConfig: --config wins over MANDATE_CONFIG; relative paths resolve against the file directory', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'etc'));
  writeFileSync(join(dir, 'etc', 'a.yaml'), 'server:\n  port: 1111\nstore:\n  dataDir: ./data\n');
  writeFileSync(join(dir, 'etc', 'b.yaml'), 'server:\n  port: 2222\n');
  const viaFlag = await loadConfig({ path: 'etc/a.yaml', env: { MANDATE_CONFIG: 'etc/b.yaml' }, cwd: dir });
  assert.equal(viaFlag.server.port, 1111);
  assert.equal(viaFlag.store.dataDir, join(dir, 'etc', 'data'));
  const viaEnv = await loadConfig({ env: { MANDATE_CONFIG: 'etc/b.yaml' }, cwd: dir });
  assert.equal(viaEnv.server.port, 2222);
  assert.deepEqual(await findConfigFile({ env: { MANDATE_CONFIG: 'etc/b.yaml' }, cwd: dir }), {
    path: join(dir, 'etc', 'b.yaml'),
    from: 'MANDATE_CONFIG',
  });
});

test('loadConfig: no file anywhere gives defaults (paths against cwd); ./mandate.yaml is picked up', async (t) => {
  const dir = tempDir(t);
  const none = await loadConfig({ env: {}, cwd: dir });
  assert.equal(none.server.port, 8080);
  assert.equal(none.store.dataDir, join(dir, 'data'));
  assert.equal(await findConfigFile({ env: {}, cwd: dir }), undefined);

  writeFileSync(join(dir, 'mandate.yaml'), 'log:\n  level: error\n');
  assert.equal((await loadConfig({ env: {}, cwd: dir })).log.level, 'error');
});

test('loadConfig: a named file that is missing or a directory is a ConfigInvalidError', async (t) => {
  const dir = tempDir(t);
  await assert.rejects(loadConfig({ path: 'nope.yaml', env: {}, cwd: dir }), (err: unknown) => {
    assert.ok(err instanceof ConfigInvalidError);
    assert.deepEqual(
      (err.extra?.issues as ConfigIssue[]).map((i) => i.message),
      [`--config ${join(dir, 'nope.yaml')}: found no such file, expected a readable YAML file`],
    );
    return true;
  });
  await assert.rejects(loadConfig({ env: { MANDATE_CONFIG: dir }, cwd: dir }), (err: unknown) => {
    assert.ok(err instanceof ConfigInvalidError);
    assert.match(err.description, /MANDATE_CONFIG .*: found a directory, expected a readable YAML file/);
    return true;
  });
});

test('loadConfig: the error names the file', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'mandate.yaml');
  writeFileSync(file, 'server:\n  port: nope\n');
  await assert.rejects(loadConfig({ path: file, env: {}, cwd: dir }), (err: unknown) => {
    assert.ok(err instanceof ConfigInvalidError);
    assert.equal(
      err.description,
      `Invalid configuration (${file}), 1 problem:\n  - server.port: found string "nope", expected an integer 1..65535 (line 2, column 9)`,
    );
    assert.equal(err.extra?.source, file);
    return true;
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writePolicyDir } from '../../test/fixtures/policy-dir.ts';
import { CLEAN_POLICIES, FAILING_TESTS, INVALID_TESTS, PASSING_TESTS } from '../../test/cli/policy-fixtures.ts';
import { PolicySetInvalidError } from '../core/errors.ts';
import { readPolicyDirectory } from './read-policy-directory.ts';
import { parsePolicyTestFile, runPolicyTests } from './run-policy-tests.ts';

const withDir = async (files: Record<string, string>, fn: (dir: string) => Promise<void>) => {
  const fx = await writePolicyDir(files);
  try {
    await fn(fx.dir);
  } finally {
    await fx.cleanup();
  }
};

test('passing cases pass: allow, deny, determining, Type::"id" refs, expect: error with its code', async () => {
  await withDir({ ...CLEAN_POLICIES, 'clean.test.yaml': PASSING_TESTS }, async (dir) => {
    const report = runPolicyTests(await readPolicyDirectory(dir));
    assert.deepEqual(report.results.map((r) => [r.name, r.passed, r.actual]), [
      ['alice reads the wiki', true, 'allow'],
      ['bob is not in sales', true, 'deny'],
      ['a high risk score denies alice', true, 'deny'],
      ['an unknown action is refused with its code', true, 'error'],
    ]);
    assert.equal(report.passed, 4);
    assert.equal(report.failed, 0);
    assert.deepEqual(report.invalidFiles, []);
    assert.match(report.policySetVersion, /^sha256:[0-9a-f]{64}$/);
    assert.equal(report.results[0]?.line, 4);
  });
});

test('failing cases say why: wrong outcome with reasons, missing determining policy, refused request with its code', async () => {
  await withDir({ ...CLEAN_POLICIES, 'fail.test.yaml': FAILING_TESTS }, async (dir) => {
    const report = runPolicyTests(await readPolicyDirectory(dir));
    assert.equal(report.total, 4);
    assert.equal(report.failed, 3);
    const [ok, wrong, determining, refused] = report.results;
    assert.equal(ok?.passed, true);
    assert.equal(wrong?.failure, 'expected allow, got deny');
    assert.deepEqual(wrong?.reasons, ['User::"bob": no policy permits this']);
    assert.equal(wrong?.line, 9);
    assert.deepEqual(determining?.missingDetermining, ['deny-high-risk']);
    assert.match(determining?.failure ?? '', /deny-high-risk was not among the determining policies \(sales-read-internal\)/);
    assert.equal(refused?.actual, 'error');
    assert.equal(refused?.errorCode, 'ERR_INVALID_CONTEXT');
    assert.match(refused?.failure ?? '', /refused with ERR_INVALID_CONTEXT/);
  });
});

test('an expected error code that does not match fails, and so does an error expected from a valid request', async () => {
  const cases = `tests:
  - name: wrong code
    request: { principal: User::"alice", action: fly, resource: Dataset::"wiki" }
    expect: error
    code: ERR_INVALID_CONTEXT
  - name: no error at all
    request: { principal: User::"alice", action: read, resource: Dataset::"wiki" }
    expect: error
    code: ERR_UNKNOWN_ACTION
  - name: unknown policy id in determining
    request: { principal: User::"alice", action: read, resource: Dataset::"wiki" }
    expect: allow
    determining: [sales-read-internal, no-such-policy]
`;
  await withDir({ ...CLEAN_POLICIES, 'codes.test.yaml': cases }, async (dir) => {
    const report = runPolicyTests(await readPolicyDirectory(dir));
    assert.deepEqual(report.results.map((r) => r.failure), [
      'expected error ERR_INVALID_CONTEXT, got error ERR_UNKNOWN_ACTION',
      'expected error ERR_UNKNOWN_ACTION, got allow',
      'determining names "no-such-policy", which is not a policy id of this set',
    ]);
  });
});

test('an invalid test file is reported with file, line and the case, and the other files still run', async () => {
  await withDir({ ...CLEAN_POLICIES, 'a.test.yaml': PASSING_TESTS, 'b.test.yaml': INVALID_TESTS, 'c.test.yaml': 'tests: [\n' }, async (dir) => {
    const report = runPolicyTests(await readPolicyDirectory(dir));
    assert.equal(report.passed, 4);
    assert.equal(report.invalidFiles.length, 2);
    const [shape, yaml] = report.invalidFiles;
    assert.equal(shape?.file, 'b.test.yaml');
    assert.equal(shape?.line, 10);
    assert.match(shape?.message ?? '', /^case #2 "not an outcome": tests\[1\]\.expect: Invalid option/);
    assert.equal(yaml?.file, 'c.test.yaml');
    assert.match(yaml?.message ?? '', /not valid YAML/);
  });
});

test('the file shape is checked strictly', () => {
  const bad = (text: string) => {
    const r = parsePolicyTestFile({ path: 'x.test.yaml', text });
    assert.equal(r.ok, false);
    return r.ok ? '' : r.error.message;
  };
  const req = '{ principal: User::"alice", action: read, resource: Dataset::"wiki" }';
  assert.match(bad(`tests:\n  - name: a\n    request: ${req}\n    expected: allow\n`), /Unrecognized key: "expected"/);
  assert.match(bad(`tests:\n  - name: a\n    request: ${req}\n    expect: error\n`), /expect: error needs the error code/);
  assert.match(bad(`tests:\n  - name: a\n    request: ${req}\n    expect: allow\n    code: ERR_X\n`), /code is only meaningful with expect: error/);
  assert.match(bad(`tests:\n  - name: a\n    request: { principal: alice, action: read, resource: Dataset::"wiki" }\n    expect: allow\n`), /request\.principal: .*not an entity reference/);
  assert.match(bad(`now: yesterday\ntests: []\n`), /now: expected an ISO 8601 date-time/);
  assert.match(bad(`tests:\n  - name: a\n    request: ${req}\n    expect: allow\n  - name: a\n    request: ${req}\n    expect: deny\n`), /already used by case #1/);
  assert.match(bad(`- just a list\n`), /expected object/);
});

test('now: sets context.time.now for a file, and a case may set its own', async () => {
  const policies = {
    't.cedar': '@id("until-2027") permit (principal == User::"bob", action == Action::"read", resource == Dataset::"wiki") when { context.time.now < datetime("2027-01-01") };',
  };
  const cases = `now: 2026-06-01T00:00:00Z
tests:
  - name: before the end date
    request: { principal: User::"bob", action: read, resource: Dataset::"wiki" }
    expect: allow
  - name: after it
    now: 2027-06-01T00:00:00Z
    request: { principal: User::"bob", action: read, resource: Dataset::"wiki" }
    expect: deny
`;
  await withDir({ ...policies, 'time.test.yaml': cases }, async (dir) => {
    const report = runPolicyTests(await readPolicyDirectory(dir));
    assert.deepEqual(report.results.map((r) => r.passed), [true, true]);
  });
});

test('file-level entities describe entities for every case; the directory still wins for its own', async () => {
  const cases = `entities:
  - uid: Agent::"new-bot"
    attrs: { owner: { type: User, id: alice }, mode: chat, status: active, workflows: [] }
    parents: []
  - uid: User::"bob"
    attrs: { roles: [] }
    parents: [Group::"sales"]
tests:
  - name: a described agent is known
    request: { principal: Agent::"new-bot", action: read, resource: Dataset::"wiki" }
    expect: allow
    determining: [chat-read]
  - name: the directory's bob is not in sales, whatever the file says
    request: { principal: User::"bob", action: read, resource: Dataset::"wiki" }
    expect: deny
`;
  const policies = { ...CLEAN_POLICIES, 'p.cedar': '@id("chat-read") permit (principal is Agent, action == Action::"read", resource) when { principal.mode == "chat" };' };
  await withDir({ ...policies, 'e.test.yaml': cases }, async (dir) => {
    const [agent, bob] = runPolicyTests(await readPolicyDirectory(dir)).results;
    assert.equal(agent?.passed, true);
    assert.equal(bob?.passed, true);
    assert.match(bob?.reasons[0] ?? '', /caller data ignored for entities the policy directory defines: User::"bob"/);
  });
});

test('a set that does not load runs no case', async () => {
  await withDir({ 'bad.cedar': 'permit (principal, action, resource) when { principal.nope };', 'a.test.yaml': PASSING_TESTS }, async (dir) => {
    const contents = await readPolicyDirectory(dir);
    assert.throws(() => runPolicyTests(contents), PolicySetInvalidError);
  });
});

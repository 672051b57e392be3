import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { extractComments, formatPolicyFile, guardFormatted, restoreBlankLinesBeforeComments } from './format-policy-file.ts';

const SOURCE = `// File header: what this file is for.

// ---- Section ----

// Alice reads the wiki.
@id("a") permit(principal == User::"alice", action == Action::"read", resource == Dataset::"wiki") // trailing
when { context has step && // inside
  context.step >= 1 };
`;

test('formats, keeping every comment and the blank lines between comment blocks', () => {
  const r = formatPolicyFile('a.cedar', SOURCE);
  assert.equal(r.status, 'changed');
  if (r.status !== 'changed') return;
  assert.deepEqual(extractComments(r.formatted).map((c) => c.text), extractComments(SOURCE).map((c) => c.text));
  assert.match(r.formatted, /^\/\/ File header: what this file is for\.\n\n\/\/ ---- Section ----\n\n\/\/ Alice reads the wiki\.\n@id\("a"\)\n/);
  // Formatting is idempotent: the result is left as it is.
  assert.equal(formatPolicyFile('a.cedar', r.formatted).status, 'unchanged');
});

test('refuses a result that drops, moves or adds a comment, or changes a policy', () => {
  const original = '// keep me\npermit (principal, action, resource) when { true }; // and me\n';
  const dropped = guardFormatted('a.cedar', original, 'permit (principal, action, resource) when { true }; // and me\n');
  assert.equal(dropped.status, 'refused');
  assert.match(dropped.status === 'refused' ? dropped.reason : '', /would drop the comment at line 1 \(\/\/ keep me\)/);
  const moved = guardFormatted('a.cedar', original, '// and me\npermit (principal, action, resource) when { true }; // keep me\n');
  assert.match(moved.status === 'refused' ? moved.reason : '', /would move the comment at line 1/);
  const added = guardFormatted('a.cedar', original, `${original}// new\n`);
  assert.match(added.status === 'refused' ? added.reason : '', /would add a comment/);
  const changed = guardFormatted('a.cedar', original, '// keep me\nforbid (principal, action, resource) when { true }; // and me\n');
  assert.match(changed.status === 'refused' ? changed.reason : '', /would change policy #1/);
});

test('comments are found outside string literals only', () => {
  const text = 'permit (principal, action, resource) when { context.intent == "see http://x // not a comment" }; // real\n// second "quoted"\n';
  assert.deepEqual(extractComments(text), [
    { text: '// real', line: 1 },
    { text: '// second "quoted"', line: 2 },
  ]);
});

test('blank lines before comments are put back only where the original had them', () => {
  const original = '// a\n\n// b\n// c\npermit (principal, action, resource);\n';
  assert.equal(restoreBlankLinesBeforeComments(original, '// a\n// b\n// c\npermit (principal, action, resource);\n'), original);
});

test('a file that does not parse is invalid, with line and column', () => {
  const r = formatPolicyFile('bad.cedar', '// x\npermit (principal, action, resource) when { principal. };\n');
  assert.equal(r.status, 'invalid');
  if (r.status !== 'invalid') return;
  assert.equal(r.diagnostics[0]?.position?.file, 'bad.cedar');
  assert.equal(r.diagnostics[0]?.position?.line, 2);
});

test('every example policy file formats without losing a comment', async () => {
  const root = new URL('../../examples/policies/', import.meta.url);
  const files = (await readdir(root, { recursive: true })).filter((f) => f.endsWith('.cedar'));
  assert.ok(files.length > 0);
  for (const f of files) {
    const text = await readFile(new URL(f, root), 'utf8');
    const r = formatPolicyFile(f, text);
    assert.ok(r.status === 'changed' || r.status === 'unchanged', `${f}: ${JSON.stringify(r)}`);
    if (r.status === 'changed') assert.deepEqual(extractComments(r.formatted).map((c) => c.text), extractComments(text).map((c) => c.text), f);
  }
});

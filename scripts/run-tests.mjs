#!/usr/bin/env node
// Runs every test file in ONE node:test run. Node 20 does not discover .ts files by itself
// (it would print "# tests 0" and exit 0), so the list is explicit and an empty list fails.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const roots = ['src', 'test'];
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(relative(root, p));
  }
};
for (const r of roots) {
  try { walk(join(root, r)); } catch (err) { if (err.code !== 'ENOENT') throw err; }
}
const filter = process.argv.slice(2);
const selected = filter.length ? files.filter((f) => filter.some((x) => f.includes(x))) : files;
if (selected.length === 0) {
  console.error('run-tests: no test files found (expected src/**/*.test.ts or test/**/*.test.ts)');
  process.exit(1);
}
selected.sort();
const args = [
  // V8 on Node 20 can crash when it inlines JS→WebAssembly calls into hot cedar-wasm callers (seen in tests).
  '--no-turbo-inline-js-wasm-calls',
  '--import', 'tsx',
  '--test',
  '--test-timeout=600000',
  '--test-force-exit',
  '--test-concurrency=2',
  '--test-reporter=spec',
  ...selected,
];
const r = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root, env: { ...process.env, NODE_ENV: 'test' } });
process.exit(r.status ?? 1);

/**
 * `npm run bench`: every benchmark prints Mandate's figure beside a baseline measured in the same run.
 * Flags: --quick (fewer iterations, shorter load), --json (machine-readable output),
 * --only decisions|http (one of the two benchmarks).
 */
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import { benchDecisions } from './decision.ts';
import { benchHttp } from './http.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, only: { type: 'string' } } });
if (values.only !== undefined && values.only !== 'decisions' && values.only !== 'http') {
  console.error(`--only: found "${values.only}", expected "decisions" or "http"`);
  process.exit(2);
}
const iterations = values.quick ? 3_000 : 20_000;
const durationSeconds = values.quick ? 3 : 10;

const env = { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', date: new Date().toISOString() };
const decisions = values.only === 'http' ? [] : await benchDecisions([[10, 2], [10, 10], [100, 2], [100, 10], [1000, 10]], iterations);
const http = values.only === 'decisions' ? { targets: [], ratio: 'not measured (--only decisions)' } : await benchHttp(durationSeconds);

if (values.json) {
  console.log(JSON.stringify({ env, decisions, http }, null, 2));
} else {
  console.log(`# Mandate benchmarks — ${env.date}\nNode ${env.node}, ${env.cpus} × ${env.cpu}\n`);
  console.log('## In-process decision latency (µs)\n');
  console.log('Baseline: raw cedar-wasm `statefulIsAuthorized` on the same request. "reference" is Mandate deciding with cedar-wasm');
  console.log('(ratio = its p50 ÷ raw p50); "compiled" is Mandate\'s default engine (speed-up = raw p50 ÷ compiled p50).\n');
  console.log('| policies | entities | raw p50 | raw p99 | raw ops/s | reference p50 | reference p99 | ratio | compiled p50 | compiled p99 | compiled ops/s | speed-up |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of decisions) {
    console.log(`| ${r.policies} | ${r.entities} | ${r.raw.p50Micros} | ${r.raw.p99Micros} | ${r.raw.opsPerSecond} | ${r.mandate.p50Micros} | ${r.mandate.p99Micros} | ${r.p50Ratio} | ${r.compiled.p50Micros} | ${r.compiled.p99Micros} | ${r.compiled.opsPerSecond} | ${r.speedup} |`);
  }
  console.log('\n## HTTP throughput (autocannon, separate server process; ratio = AuthZEN req/s ÷ bare node:http req/s)\n');
  console.log('| target | req/s | p50 ms | p99 ms | errors | non-2xx |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const t of http.targets) console.log(`| ${t.name} | ${t.requestsPerSecond} | ${t.p50Ms} | ${t.p99Ms} | ${t.errors} | ${t.non2xx} |`);
  console.log(`\nratio: ${http.ratio}`);
}

/**
 * `npm run bench`: every benchmark prints Mandate's figure beside a baseline measured in the same run.
 * Flags: --quick (fewer iterations, shorter load), --json (machine-readable output),
 * --only decisions|http|tokens|tasks|gateway (one of the benchmarks).
 */
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import { benchDecisions } from './decision.ts';
import { benchGateway, printGateway } from './gateway.ts';
import { benchHttp } from './http.ts';
import { round } from './stats.ts';
import { benchTasks, type TaskBenchResult, type TaskHttpResult } from './tasks.ts';
import { benchTokens, type TokenBenchResult, type TokenHttpResult } from './tokens.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, only: { type: 'string' } } });
const GROUPS = ['decisions', 'http', 'tokens', 'tasks', 'gateway'] as const;
if (values.only !== undefined && !(GROUPS as readonly string[]).includes(values.only)) {
  console.error(`--only: found "${values.only}", expected one of: ${GROUPS.join(', ')}`);
  process.exit(2);
}
const runs = (group: (typeof GROUPS)[number]) => values.only === undefined || values.only === group;
const iterations = values.quick ? 3_000 : 20_000;
const durationSeconds = values.quick ? 3 : 10;

const env = { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', date: new Date().toISOString() };
const decisions = runs('decisions') ? await benchDecisions([[10, 2], [10, 10], [100, 2], [100, 10], [1000, 10]], iterations) : [];
const http = runs('http') ? await benchHttp(durationSeconds) : { targets: [], ratio: `not measured (--only ${values.only})` };
const tokens = runs('tokens') ? await benchTokens(durationSeconds, values.quick ? 2_000 : 10_000) : undefined;
const tasks = runs('tasks') ? await benchTasks({ iterations: values.quick ? 100 : 500, seconds: durationSeconds, openTasks: values.quick ? 2_000 : 10_000 }) : undefined;
const gateway = runs('gateway') ? await benchGateway(durationSeconds, 3, values.quick ? 2 : 4) : undefined;

if (values.json) {
  console.log(JSON.stringify({ env, decisions, http, tokens, tasks, gateway }, null, 2));
} else {
  console.log(`# Mandate benchmarks — ${env.date}\nNode ${env.node}, ${env.cpus} × ${env.cpu}\n`);
  if (runs('decisions')) printDecisions();
  if (runs('http')) printHttp();
  if (tokens !== undefined) printTokens(tokens);
  if (tasks !== undefined) printTasks(tasks);
  if (gateway !== undefined) printGateway(gateway);
}

function printDecisions(): void {
  console.log('## In-process decision latency (µs)\n');
  console.log('Baseline: raw cedar-wasm `statefulIsAuthorized` on the same request. "reference" is Mandate deciding with cedar-wasm');
  console.log('(ratio = its p50 ÷ raw p50); "compiled" is Mandate\'s default engine (speed-up = raw p50 ÷ compiled p50).\n');
  console.log('| policies | entities | raw p50 | raw p99 | raw ops/s | reference p50 | reference p99 | ratio | compiled p50 | compiled p99 | compiled ops/s | speed-up |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of decisions) {
    console.log(`| ${r.policies} | ${r.entities} | ${r.raw.p50Micros} | ${r.raw.p99Micros} | ${r.raw.opsPerSecond} | ${r.mandate.p50Micros} | ${r.mandate.p99Micros} | ${r.p50Ratio} | ${r.compiled.p50Micros} | ${r.compiled.p99Micros} | ${r.compiled.opsPerSecond} | ${r.speedup} |`);
  }
}

function printHttp(): void {
  console.log('\n## HTTP throughput (autocannon, separate server process; ratio = AuthZEN req/s ÷ bare node:http req/s)\n');
  console.log('| target | req/s | p50 ms | p99 ms | errors | non-2xx |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const t of http.targets) console.log(`| ${t.name} | ${t.requestsPerSecond} | ${t.p50Ms} | ${t.p99Ms} | ${t.errors} | ${t.non2xx} |`);
  console.log(`\nratio: ${http.ratio}`);
}

function printTokens(t: TokenBenchResult): void {
  const row = (r: TokenHttpResult) => `| ${r.name} | ${r.requestsPerSecond} | ${r.p50Ms} | ${r.p99Ms} | ${r.ok} | ${r.errors} | ${r.non2xx} | ${r.poolExhausted} |`;
  const head = '| target | req/s (2xx) | p50 ms | p99 ms | 2xx | errors | non-2xx | pool exhausted |\n|---|---:|---:|---:|---:|---:|---:|---:|';
  console.log(`\n## Token service (${t.load}; ${t.rounds} alternating rounds per comparison)\n`);
  console.log('### Issuance over HTTP: client_credentials + private_key_jwt, one pre-signed assertion per request\n');
  console.log('Baseline: oidc-provider (certified OAuth server), same grant, same client authentication, EdDSA JWT access token for one resource indicator.\n');
  console.log(head);
  console.log(row(t.issuance.oidcProvider));
  console.log(row(t.issuance.mandate));
  console.log(`\nratio (Mandate ÷ oidc-provider): throughput ${t.issuance.ratio}, p50 latency ${t.issuance.p50Ratio}`);
  console.log('\n### Token exchange over HTTP (Mandate only: oidc-provider has no RFC 8693 grant; reference = Mandate client_credentials)\n');
  console.log(head);
  console.log(row(t.exchange.clientCredentials));
  console.log(row(t.exchange.exchange));
  console.log(row(t.exchange.exchangeDpop));
  console.log(`\nratio (÷ client_credentials req/s): exchange ${t.exchange.ratio}, exchange + DPoP ${t.exchange.dpopRatio}`);
  const v = t.verification;
  console.log(`\n### Verifying a mandate in-process (µs; ${v.tokensInStore} issued tokens in the store)\n`);
  console.log('| operation | p50 | p99 | mean | ops/s |\n|---|---:|---:|---:|---:|');
  for (const r of [v.raw, v.mandate, v.store]) console.log(`| ${r.name} | ${r.p50Micros} | ${r.p99Micros} | ${r.meanMicros} | ${r.opsPerSecond} |`);
  console.log(`\nratio (verifyMandate p50 ÷ jose.jwtVerify p50): ${v.ratio}; the store lookup is ${v.storeShare} of verifyMandate's p50`);
}

function printTasks(t: TaskBenchResult): void {
  const r = t.revocation;
  const ms = (micros: number) => round(micros / 1000);
  console.log(`\n## Tasks and revocation (${t.load})\n`);
  console.log(`### Revocation to denial, in-process (ms; ${r.iterations} revocations per variant, rotating order)\n`);
  console.log('The revoke call resolves once its transaction is durable; then the first verifyMandate of the revoked mandate must be denied.\n');
  console.log('| revoke | p50 | p99 | mean | first verification after: p50 | p99 | not denied | p50 ÷ bare write |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const v of r.rows) {
    const d = v.denial;
    console.log(`| ${v.name} | ${ms(v.revoke.p50Micros)} | ${ms(v.revoke.p99Micros)} | ${ms(v.revoke.meanMicros)} | ${d ? ms(d.p50Micros) : '—'} | ${d ? ms(d.p99Micros) : '—'} | ${d ? v.notDenied : '—'} | ${v.ratioToBareWrite} |`);
  }
  const s = r.stepCheck;
  console.log(`\nStep check of the ended task (AuthZEN, in-process inject), right after each closeTask: p50 ${ms(s.latency.p50Micros)} ms, p99 ${ms(s.latency.p99Micros)} ms; not denied with task_not_open: ${s.notDenied} (each of the ${s.allowedBefore} tasks was allowed a step before its end).`);
  console.log(`closeTask p50 ÷ plain tokens.revoke p50: ${r.closeToPlain}; the bare write appends an event row of ${r.bareEventBytes} bytes (a stored task.close event).`);
  const h = t.throughput;
  const row = (x: TaskHttpResult) => `| ${x.name} | ${x.perSecond} | ${x.requestsPerSecond} | ${x.p50Ms} | ${x.p99Ms} | ${x.completed} | ${x.errors} | ${x.non2xx} | ${x.poolExhausted} |`;
  console.log(`\n### Tasks opened and closed per second over HTTP (autocannon, 32 connections, separate server process; ${h.rounds} alternating rounds)\n`);
  console.log('| target | operations/s | req/s (2xx) | p50 ms | p99 ms | operations | errors | non-2xx | pool exhausted |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  console.log(row(h.tasks));
  console.log(row(h.exchange));
  console.log(`\nratio (tasks opened and closed per second ÷ plain exchanges per second): ${h.ratio}; tasks left open when the load stopped: ${h.leftOpen}`);
  const m = t.memory;
  const mib = (n: number) => round(n / 1048576);
  console.log(`\n### Resident memory with ${m.tasks} open tasks (server process, after GC; warmed up with ${m.warmup} tasks opened and closed; opened over HTTP at ${m.openedPerSecond} tasks/s)\n`);
  console.log('| node | RSS MiB | heap used MiB | external MiB | data dir MiB | open tasks |\n|---|---:|---:|---:|---:|---:|');
  console.log(`| idle (warmed up, no open task) | ${mib(m.idle.rss)} | ${mib(m.idle.heapUsed)} | ${mib(m.idle.external)} | ${mib(m.idle.dataDirBytes)} | ${m.idle.openTasks} |`);
  console.log(`| ${m.tasks} open tasks | ${mib(m.open.rss)} | ${mib(m.open.heapUsed)} | ${mib(m.open.external)} | ${mib(m.open.dataDirBytes)} | ${m.open.openTasks} |`);
  console.log(`| control: all closed (store, one transaction) | ${mib(m.afterClose.rss)} | ${mib(m.afterClose.heapUsed)} | ${mib(m.afterClose.external)} | ${mib(m.afterClose.dataDirBytes)} | ${m.afterClose.openTasks} |`);
  console.log(`\nper open task: RSS ${m.perTaskRssBytes} B, heap ${m.perTaskHeapBytes} B, disk ${m.perTaskDiskBytes} B; RSS ratio (open ÷ idle): ${m.rssRatio}`);
}

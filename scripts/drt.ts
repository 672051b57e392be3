/**
 * Differential testing from the command line: runs many random cases through the reference engine and a
 * second engine and prints progress, the shrunk case of any difference, and a summary line.
 *
 *   npm run drt -- --cases 100000 [--seed S] [--mode strict|dynamic|both] [--engine compiled|stateful]
 *   npm run drt -- --cases 10000000 --minutes 60         (stops after an hour, shared between the modes)
 *   npm run drt -- --mode strict --seed S --path P        (replays one reported case)
 *
 * See docs/DIFFERENTIAL-TESTING.md.
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { describeStats, newStats, runDrt, summaryLine, type DrtMode } from '../test/drt/harness.ts';
import { loadSecondEngine } from '../test/drt/select-engine.ts';
import { referenceEngine } from '../test/drt/engines.ts';

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '10000' },
    seed: { type: 'string' },
    path: { type: 'string' },
    mode: { type: 'string', default: 'both' },
    engine: { type: 'string' },
    constructs: { type: 'boolean', default: false },
    mutants: { type: 'boolean', default: false },
    minutes: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  console.log('usage: npm run drt -- [--cases N] [--seed S] [--mode strict|dynamic|both] [--engine compiled|stateful] [--path P] [--minutes M] [--constructs] [--mutants]');
  process.exit(0);
}

const cases = Number(values.cases);
if (!Number.isSafeInteger(cases) || cases < 1) throw new TypeError(`--cases must be a positive integer, not ${values.cases}`);
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
if (!Number.isSafeInteger(seed)) throw new TypeError(`--seed must be an integer, not ${values.seed}`);
const modes: DrtMode[] = values.mode === 'both' ? ['strict', 'dynamic'] : values.mode === 'strict' || values.mode === 'dynamic' ? [values.mode] : [];
if (modes.length === 0) throw new TypeError(`--mode must be strict, dynamic or both, not ${values.mode}`);
if (values.path && modes.length !== 1) throw new TypeError('--path replays one case: give its --mode too');
const minutes = values.minutes !== undefined ? Number(values.minutes) : undefined;
if (minutes !== undefined && !(minutes > 0)) throw new TypeError(`--minutes must be a positive number, not ${values.minutes}`);

if (values.mutants) {
  // The harness's power: each deliberate bug must be caught within --cases cases per mode.
  const { MUTANTS, mutantEngine } = await import('../test/drt/mutants.ts');
  let missed = 0;
  for (const mode of modes) {
    for (const [name, rewrite] of MUTANTS) {
      const result = runDrt({ mode, engines: [referenceEngine, mutantEngine(rewrite)], numRuns: cases, seed, maxShrinkRuns: 0 });
      if (result.ok) missed++;
      console.log(`${mode}: ${name}: ${result.ok ? `NOT caught in ${cases} cases` : `caught at case ${result.stats.cases}`}`);
    }
  }
  process.exit(missed > 0 ? 1 : 0);
}

const second = await loadSecondEngine(values.engine);
const engines = [referenceEngine, second];
console.log(`drt: ${cases} cases, seed ${seed}, modes ${modes.join('+')}, ${engines.map((e) => e.name).join(' vs ')}`);

const started = performance.now();
let differences = 0;
let lastPrint = started;
const totals = newStats();
for (const [i, mode] of modes.entries()) {
  const share = values.path ? 1 : Math.floor(cases / modes.length) + (i < cases % modes.length ? 1 : 0);
  const stats = newStats();
  const result = runDrt({
    mode,
    engines,
    numRuns: share,
    seed,
    ...(values.path ? { path: values.path } : {}),
    ...(minutes !== undefined ? { timeLimitMs: (minutes * 60_000) / modes.length } : {}),
    stats,
    onCase: (s) => {
      const now = performance.now();
      if (now - lastPrint > 10_000) {
        lastPrint = now;
        const done = totals.cases + s.cases;
        console.log(`  ${mode}: ${done} cases, ${((now - started) / 1000).toFixed(0)} s, ${((1000 * done) / (now - started)).toFixed(0)} cases/s`);
      }
    },
  });
  console.log(`[${mode}] ${describeStats(stats).split('\n').join(`\n[${mode}] `)}`);
  if (values.constructs) {
    const rows = [...stats.constructs.entries()].sort((a, b) => b[1] - a[1]);
    console.log(`[${mode}] constructs in kept policies: ${rows.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  totals.cases += stats.cases;
  if (!result.ok) {
    differences++;
    console.log(result.report);
  }
}
console.log(summaryLine(totals, differences, (performance.now() - started) / 1000));
process.exitCode = differences > 0 ? 1 : 0;

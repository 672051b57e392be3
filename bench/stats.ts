/**
 * Small measurement helpers for the benchmarks: per-operation latency samples, percentiles, ratios.
 */
import { performance } from 'node:perf_hooks';

/** Latency summary of one measured operation. */
export interface LatencyResult {
  name: string;
  iterations: number;
  p50Micros: number;
  p99Micros: number;
  meanMicros: number;
  opsPerSecond: number;
}

/** Rounds to two decimals. */
export function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** Formats `ours / baseline` as a ratio string. */
export function ratio(ours: number, baseline: number): string {
  if (!baseline) return 'n/a';
  return `${round(ours / baseline)}×`;
}

/**
 * Measures several operations in alternating rounds (A, B, A, B, …) so that neither gains from running
 * second (a warmer JIT, a grown heap) or suffers from a noisy neighbour during its one turn.
 */
export function measureInterleaved(fns: Record<string, () => unknown>, iterations = 20_000, rounds = 4, warmup = 2_000): Record<string, LatencyResult> {
  const names = Object.keys(fns);
  for (const n of names) for (let i = 0; i < warmup; i++) (fns[n] as () => unknown)();
  const per = Math.max(1, Math.floor(iterations / rounds));
  const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const totals: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  for (let r = 0; r < rounds; r++) {
    for (const n of names) {
      const fn = fns[n] as () => unknown;
      const out = samples[n] as number[];
      const start = performance.now();
      for (let i = 0; i < per; i++) {
        const t = performance.now();
        fn();
        out.push(performance.now() - t);
      }
      totals[n] = (totals[n] as number) + performance.now() - start;
    }
  }
  return summarise(names, samples, totals);
}

function summarise(names: readonly string[], samples: Record<string, number[]>, totals: Record<string, number>): Record<string, LatencyResult> {
  const result: Record<string, LatencyResult> = {};
  for (const n of names) {
    const s = Float64Array.from(samples[n] as number[]).sort();
    const count = s.length;
    const pct = (p: number) => (s[Math.min(count - 1, Math.floor(count * p))] ?? 0) * 1000;
    result[n] = {
      name: n,
      iterations: count,
      p50Micros: round(pct(0.5)),
      p99Micros: round(pct(0.99)),
      meanMicros: round(((totals[n] as number) / count) * 1000),
      opsPerSecond: Math.round(count / ((totals[n] as number) / 1000)),
    };
  }
  return result;
}

/**
 * {@link measureInterleaved} for asynchronous operations: each call is awaited before the next starts, so a
 * sample is one operation's full latency (promise settling included), as a request handler would see it.
 */
export async function measureInterleavedAsync(
  fns: Record<string, () => Promise<unknown>>,
  iterations = 20_000,
  rounds = 4,
  warmup = 2_000,
): Promise<Record<string, LatencyResult>> {
  const names = Object.keys(fns);
  for (const n of names) for (let i = 0; i < warmup; i++) await (fns[n] as () => Promise<unknown>)();
  const per = Math.max(1, Math.floor(iterations / rounds));
  const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const totals: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  for (let r = 0; r < rounds; r++) {
    for (const n of names) {
      const fn = fns[n] as () => Promise<unknown>;
      const out = samples[n] as number[];
      const start = performance.now();
      for (let i = 0; i < per; i++) {
        const t = performance.now();
        await fn();
        out.push(performance.now() - t);
      }
      totals[n] = (totals[n] as number) + performance.now() - start;
    }
  }
  return summarise(names, samples, totals);
}

/** Summarises latency samples (ms) gathered by hand, one per operation; ops/s is over the samples' sum. */
export function summariseSamples(name: string, samplesMs: readonly number[]): LatencyResult {
  const total = samplesMs.reduce((s, n) => s + n, 0);
  return summarise([name], { [name]: [...samplesMs] }, { [name]: total })[name] as LatencyResult;
}

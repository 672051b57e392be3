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

/** Runs `fn` for `warmup` iterations, then `iterations` timed ones, and summarises. */
export function measure(name: string, fn: () => unknown, iterations = 20_000, warmup = 2_000): LatencyResult {
  for (let i = 0; i < warmup; i++) fn();
  const samples = new Float64Array(iterations);
  const start = performance.now();
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    fn();
    samples[i] = performance.now() - t;
  }
  const total = performance.now() - start;
  samples.sort();
  const pct = (p: number) => (samples[Math.min(iterations - 1, Math.floor(iterations * p))] ?? 0) * 1000;
  return {
    name,
    iterations,
    p50Micros: round(pct(0.5)),
    p99Micros: round(pct(0.99)),
    meanMicros: round((total / iterations) * 1000),
    opsPerSecond: Math.round(iterations / (total / 1000)),
  };
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

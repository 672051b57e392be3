/**
 * The source of every random choice the generators make. Backed by fast-check's `gen()`, so a case is
 * reproducible from (seed, path) and shrinks: each choice shrinks towards its first option, and the
 * generators put the simplest option first (no policy condition, `true`, 0, the empty string…).
 */
import fc from 'fast-check';

/** Random choices, all shrinking towards their minimum or first option. */
export interface Rand {
  /** An integer in [min, max]. */
  int(min: number, max: number): number;
  /** True with probability `p` (shrinks to false). */
  chance(p: number): boolean;
  /** One element of a non-empty list (shrinks to the first). */
  pick<T>(items: readonly T[]): T;
  /** One option by weight (shrinks to the first). */
  weighted<T>(options: readonly (readonly [number, T])[]): T;
  /** A subset of `items`, each kept with probability `p`, in order. */
  subset<T>(items: readonly T[], p: number): T[];
}

/**
 * fast-check biases integers towards small and extreme values; the generators' weights mean what they say
 * only over a uniform draw. (One function, so that `gen()` can cache the arbitrary.)
 */
function uniformInteger(c: { min: number; max: number }): fc.Arbitrary<number> {
  return fc.noBias(fc.integer(c));
}

/** Wraps a fast-check generator value (`fc.gen()`) as a {@link Rand}. */
export function randFromGen(g: fc.GeneratorValue): Rand {
  const int = (min: number, max: number) => (max <= min ? min : g(uniformInteger, { min, max }));
  const chance = (p: number) => int(0, 999) >= 1000 - Math.round(p * 1000);
  const pick = <T>(items: readonly T[]): T => {
    if (items.length === 0) throw new TypeError('pick from an empty list');
    return items[int(0, items.length - 1)] as T;
  };
  const weighted = <T>(options: readonly (readonly [number, T])[]): T => {
    const total = options.reduce((s, [w]) => s + w, 0);
    let n = int(0, total - 1);
    for (const [w, v] of options) {
      if (n < w) return v;
      n -= w;
    }
    return (options[options.length - 1] as readonly [number, T])[1];
  };
  const subset = <T>(items: readonly T[], p: number): T[] => items.filter(() => chance(p));
  return { int, chance, pick, weighted, subset };
}

/**
 * Narrow ports that the pure core and the capabilities depend on. Implementations live at the edges
 * (src/store, src/server); tests pass fakes.
 */

/** Source of the current time, passed in so that decisions and token checks never read the clock themselves. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/** The system clock. */
export const systemClock: Clock = { now: () => Date.now() };

/** A clock frozen at `ms`, advanced by hand; for tests. */
export function fixedClock(ms: number): Clock & { advance(deltaMs: number): void; set(ms: number): void } {
  let t = ms;
  return {
    now: () => t,
    advance(deltaMs: number) {
      t += deltaMs;
    },
    set(next: number) {
      t = next;
    },
  };
}

/** Generates unique, unguessable identifiers (decision ids, event ids). */
export interface IdGenerator {
  next(): string;
}

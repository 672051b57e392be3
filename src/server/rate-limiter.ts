/**
 * Per-client token buckets: each authenticated client may make `burst` requests at once and
 * `ratePerSecond` on average (DESIGN.md "Abuse is bounded"). Time comes from the injected clock, so tests
 * drive it by hand. Keyed by authenticated client id only — never by anything a caller can invent — and the
 * number of buckets is bounded all the same.
 */
import type { Clock } from '../core/ports.ts';

/** Settings of a {@link TokenBucketLimiter}. */
export interface RateLimitSettings {
  /** Average requests per second allowed per client. */
  ratePerSecond: number;
  /** Requests a client may make at once (the bucket's capacity). */
  burst: number;
  /** Most clients tracked; the least recently seen is forgotten beyond it (a fresh bucket is full). Default 10000. */
  maxClients?: number;
}

/** Outcome of {@link TokenBucketLimiter.take}. */
export type RateLimitResult = { allowed: true } | { allowed: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/** Token-bucket rate limiter keyed by client id. */
export class TokenBucketLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxClients: number;
  readonly #clock: Clock;
  // A Map keeps insertion order: re-inserting on use makes the first key the least recently seen.
  readonly #buckets = new Map<string, Bucket>();

  /** Creates a limiter; throws `TypeError` for non-positive settings. */
  constructor(settings: RateLimitSettings, clock: Clock) {
    if (!(settings.ratePerSecond > 0) || !(settings.burst >= 1)) {
      throw new TypeError('TokenBucketLimiter: ratePerSecond must be > 0 and burst >= 1');
    }
    this.#rate = settings.ratePerSecond;
    this.#burst = settings.burst;
    this.#maxClients = settings.maxClients ?? 10_000;
    this.#clock = clock;
  }

  /**
   * Takes `cost` tokens from `clientId`'s bucket if it holds them.
   * @returns allowed, or refused with the whole seconds to wait before `cost` tokens are available
   */
  take(clientId: string, cost = 1): RateLimitResult {
    const now = this.#clock.now();
    const b = this.#buckets.get(clientId) ?? { tokens: this.#burst, updatedMs: now };
    this.#buckets.delete(clientId);
    const elapsed = Math.max(0, now - b.updatedMs) / 1000;
    b.tokens = Math.min(this.#burst, b.tokens + elapsed * this.#rate);
    b.updatedMs = now;
    this.#buckets.set(clientId, b);
    if (this.#buckets.size > this.#maxClients) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
    if (b.tokens >= cost) {
      b.tokens -= cost;
      return { allowed: true };
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((cost - b.tokens) / this.#rate)) };
  }
}

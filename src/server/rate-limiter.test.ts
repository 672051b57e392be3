import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixedClock } from '../core/ports.ts';
import { TokenBucketLimiter } from './rate-limiter.ts';

test('a client may spend its burst at once, then refills at the configured rate', () => {
  const clock = fixedClock(1_000_000);
  const limiter = new TokenBucketLimiter({ ratePerSecond: 2, burst: 3 }, clock);
  assert.deepEqual([1, 2, 3].map(() => limiter.take('a').allowed), [true, true, true]);
  assert.deepEqual(limiter.take('a'), { allowed: false, retryAfterSeconds: 1 });
  // Other clients have their own bucket.
  assert.equal(limiter.take('b').allowed, true);
  clock.advance(500);
  assert.equal(limiter.take('a').allowed, true);
  assert.equal(limiter.take('a').allowed, false);
  clock.advance(60_000);
  // Refill is capped at the burst.
  assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('a').allowed), [true, true, true, false]);
});

test('a batch costs one token per evaluation; Retry-After covers the whole cost', () => {
  const clock = fixedClock(0);
  const limiter = new TokenBucketLimiter({ ratePerSecond: 1, burst: 10 }, clock);
  assert.equal(limiter.take('a', 10).allowed, true);
  assert.deepEqual(limiter.take('a', 5), { allowed: false, retryAfterSeconds: 5 });
});

test('the number of tracked clients is bounded; a forgotten client starts with a full bucket', () => {
  const clock = fixedClock(0);
  const limiter = new TokenBucketLimiter({ ratePerSecond: 1, burst: 1, maxClients: 2 }, clock);
  assert.equal(limiter.take('a').allowed, true);
  assert.equal(limiter.take('b').allowed, true);
  assert.equal(limiter.take('c').allowed, true);
  assert.equal(limiter.take('a').allowed, true);
  assert.throws(() => new TokenBucketLimiter({ ratePerSecond: 0, burst: 1 }, clock), TypeError);
});

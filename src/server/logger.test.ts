import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from './logger.ts';

test('authorization and cookie headers are redacted wherever a request is logged', () => {
  const lines: string[] = [];
  const logger = createLogger({ destination: { write: (l: string) => void lines.push(l) } });
  const secret = `mandate_${'x'.repeat(43)}`;
  logger.info({ req: { headers: { authorization: `Bearer ${secret}`, cookie: `sid=${secret}` } } }, 'request');
  logger.info({ headers: { authorization: `Bearer ${secret}` } }, 'outbound');
  const text = lines.join('');
  assert.equal(text.includes(secret), false);
  assert.match(text, /\[redacted\]/);
});

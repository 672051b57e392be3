/**
 * The server's structured JSON logger (pino). Credentials never reach a log line: the authorization and
 * cookie headers are redacted wherever a request or response object is logged, whatever serializer logs it —
 * defence in depth on top of never putting secrets into messages (STYLE.md #8).
 */
import { pino, type DestinationStream, type Logger } from 'pino';

/** Paths pino censors in every log line. */
export const REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'req.headers.dpop',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers["proxy-authorization"]',
  'headers.cookie',
  'headers.dpop',
  'authorization',
  'cookie',
];

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** pino level; default `info`. */
  level?: string;
  /** Where lines go; default stdout. Tests pass a stream to inspect the lines. */
  destination?: DestinationStream;
}

/**
 * Creates the logger the server and the CLI share.
 * @example const logger = createLogger({ level: config.log.level });
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const opts = {
    level: options.level ?? 'info',
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    base: { service: 'mandate' },
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

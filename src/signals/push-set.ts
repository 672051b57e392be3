/**
 * The guarded HTTP POST that delivers a SET to a receiver's push endpoint (RFC 8935 §2). It applies the same
 * outbound rules as src/identity/outbound.ts (DESIGN.md "Outbound is guarded"): `https:` only unless configured, no
 * credentials in URLs, every address the host resolves to checked against the special-use ranges and the connection
 * pinned to the address checked (no DNS rebinding), one deadline for the whole exchange, and a bounded response
 * body. Redirects are never followed: a push endpoint that redirects is misconfigured (RFC 8935 defines none).
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { isBlockedAddress, OutboundRefusedError, type HostResolver } from '../identity/outbound.ts';
import { createGuardedPost, loggableUrl } from '../identity/guarded-post.ts';
import type { OutboundPolicy } from '../identity/types.ts';

/** What the receiver answered. */
export interface PushResponse {
  /** HTTP status. */
  readonly status: number;
  /** The RFC 8935 §2.3 error body, when the receiver sent one. */
  readonly error?: { readonly err: string; readonly description?: string };
  /** `Retry-After` in seconds, when sent with 429 or 503. */
  readonly retryAfterSeconds?: number;
}

/** Delivers one SET; rejects with `OutboundFetchError` (network, timeout) or `OutboundRefusedError` (policy). */
export type PushSet = (endpointUrl: string, set: string, options?: { authorization?: string }) => Promise<PushResponse>;

/** Largest error body read from a receiver (it is only parsed for `err`). */
const MAX_ERROR_BODY = 16 * 1024;

/**
 * Checks a push endpoint URL without resolving it (at stream creation): scheme, credentials, fragment, and a
 * literal IP address in a special-use range. Returns a client-safe reason, or undefined when acceptable.
 */
export function pushEndpointProblem(endpointUrl: string, policy: Pick<OutboundPolicy, 'allowHttp' | 'allowPrivateNetworks' | 'allowHosts'>): string | undefined {
  if (typeof endpointUrl !== 'string' || endpointUrl.length > 2048 || !URL.canParse(endpointUrl)) return 'endpoint_url must be an absolute URL of at most 2048 characters';
  const url = new URL(endpointUrl);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowHttp)) return 'endpoint_url must use https';
  if (url.username !== '' || url.password !== '') return 'endpoint_url must not carry credentials; use delivery.authorization_header';
  if (url.hash !== '') return 'endpoint_url must not have a fragment';
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const trusted = policy.allowPrivateNetworks || policy.allowHosts.map((h) => h.toLowerCase()).includes(host);
  if (isIP(host) !== 0 && !trusted && isBlockedAddress(host)) return 'endpoint_url is a private or special-use address (outbound.allowPrivateNetworks, outbound.allowHosts)';
  if (host === 'localhost' && !trusted) return 'endpoint_url is a loopback host (outbound.allowPrivateNetworks, outbound.allowHosts)';
  return undefined;
}

/** Options of {@link createPushSet}. */
export interface PushSetOptions {
  /** Host resolution; tests inject one to simulate DNS answers. */
  readonly resolve?: HostResolver;
}

/**
 * Creates the guarded SET pusher.
 *
 * @param policy the configured outbound limits (the parsed `outbound` section)
 * @example
 * const push = createPushSet(config.outbound);
 * const { status } = await push(stream.delivery.endpointUrl, set);
 */
export function createPushSet(policy: OutboundPolicy, options: PushSetOptions = {}): PushSet {
  const post = createGuardedPost(policy, options.resolve === undefined ? {} : { resolve: options.resolve });

  function readBody(response: IncomingMessage, limit: number): Promise<Buffer | undefined> {
    return new Promise((resolveBody) => {
      const chunks: Buffer[] = [];
      let total = 0;
      let done = false;
      const finish = (value: Buffer | undefined) => {
        if (done) return;
        done = true;
        resolveBody(value);
      };
      response.on('data', (chunk: Buffer) => {
        total += chunk.length;
        if (total > limit) {
          response.destroy();
          finish(undefined);
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => finish(Buffer.concat(chunks)));
      response.on('error', () => finish(undefined));
      response.on('close', () => finish(undefined));
    });
  }

  return async function pushSet(endpointUrl, set, pushOptions = {}) {
    if (!URL.canParse(endpointUrl)) throw new OutboundRefusedError('bad_url', 'push refused: not a valid absolute URL');
    const url = new URL(endpointUrl);
    const problem = pushEndpointProblem(url.href, policy);
    if (problem !== undefined) throw new OutboundRefusedError(problem.includes('private') || problem.includes('loopback') ? 'private_address' : 'scheme', `push refused: ${problem}`, { detail: `url ${loggableUrl(url)}` });
    const { response, status } = await post({
      url,
      headers: {
        'content-type': 'application/secevent+jwt',
        accept: 'application/json',
        ...(pushOptions.authorization === undefined ? {} : { authorization: pushOptions.authorization }),
      },
      body: Buffer.from(set, 'utf8'),
      what: 'push',
    });
    const retryAfter = Number(response.headers['retry-after']);
    const retryAfterSeconds = Number.isSafeInteger(retryAfter) && retryAfter >= 0 ? retryAfter : undefined;
    if (status >= 200 && status < 300) {
      response.resume();
      return { status };
    }
    const raw = await readBody(response, Math.min(policy.maxBytes, MAX_ERROR_BODY));
    let error: PushResponse['error'];
    if (raw !== undefined) {
      try {
        const parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw)) as { err?: unknown; description?: unknown };
        if (typeof parsed.err === 'string') {
          error = { err: parsed.err.slice(0, 64), ...(typeof parsed.description === 'string' ? { description: parsed.description.slice(0, 512) } : {}) };
        }
      } catch {
        // Not an RFC 8935 error body: the status says enough.
      }
    }
    return { status, ...(error === undefined ? {} : { error }), ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }) };
  };
}

/**
 * A guarded outbound POST, under the rules every URL Mandate calls follows (src/identity/outbound.ts): every
 * address a host name resolves to is checked against private and special-use ranges (unless allowed), the
 * connection is pinned to the address that was checked (no DNS rebinding between check and connect), a fresh
 * connection per request, one deadline, and no redirects. The caller checks the URL's scheme and shape first (its
 * rules differ: an SSF push endpoint, a token endpoint) and reads the response under its own size cap.
 *
 * Errors name the URL by origin and path only, never credentials, query, request or response bodies.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { isBlockedAddress, OutboundFetchError, OutboundRefusedError, type HostResolver, type ResolvedAddress } from './outbound.ts';
import type { OutboundPolicy } from './types.ts';

/** The system resolver: every address of a host name, as the OS answers. */
export const systemResolve: HostResolver = async (hostname) => {
  const answers = await dnsLookup(hostname, { all: true, verbatim: true });
  return answers.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

/** The URL as it may appear in logs: origin and path, no credentials, query or fragment. */
export function loggableUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** One POST. `what` starts every error message (`push`, `token request`). */
export interface GuardedPostRequest {
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  readonly what: string;
}

/** The response, with the deadline's signal (for reading the body) and the loggable URL. */
export interface GuardedPostResponse {
  readonly response: IncomingMessage;
  readonly status: number;
  readonly signal: AbortSignal;
  readonly detail: string;
}

/** Sends one guarded POST; rejects with `OutboundRefusedError` / `OutboundFetchError`. */
export type GuardedPost = (request: GuardedPostRequest) => Promise<GuardedPostResponse>;

/**
 * Creates the guarded POST for an outbound policy.
 * @example
 * const post = createGuardedPost(config.identity.outbound);
 * const { response, status } = await post({ url, headers: { 'content-type': 'application/json' }, body, what: 'push' });
 */
export function createGuardedPost(policy: OutboundPolicy, options: { resolve?: HostResolver } = {}): GuardedPost {
  const resolve = options.resolve ?? systemResolve;
  const allowHosts = new Set(policy.allowHosts.map((h) => h.toLowerCase().replace(/\.$/, '')));

  /** Resolves and checks the host; the address to connect to (undefined for an IP literal, checked here too). */
  async function checkTarget(url: URL, what: string, detail: string): Promise<ResolvedAddress | undefined> {
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
    const trusted = policy.allowPrivateNetworks || allowHosts.has(host);
    if (isIP(host) !== 0) {
      if (!trusted && isBlockedAddress(host)) {
        throw new OutboundRefusedError('private_address', `${what} refused: the address is private or special-use (outbound.allowPrivateNetworks, outbound.allowHosts)`, { detail });
      }
      return undefined;
    }
    let addresses: readonly ResolvedAddress[];
    try {
      addresses = await resolve(host);
    } catch (cause) {
      throw new OutboundFetchError('dns', `${what} failed: the host name did not resolve`, { detail, cause });
    }
    if (addresses.length === 0) throw new OutboundFetchError('dns', `${what} failed: the host name did not resolve`, { detail });
    if (!trusted && addresses.some((a) => isBlockedAddress(a.address))) {
      throw new OutboundRefusedError('private_address', `${what} refused: the host resolves to a private or special-use address (outbound.allowPrivateNetworks, outbound.allowHosts)`, {
        detail: `${detail} resolves to ${addresses.map((a) => a.address).join(', ')}`,
      });
    }
    return addresses[0];
  }

  return async function post(request) {
    const { url, what } = request;
    const detail = `url ${loggableUrl(url)}`;
    const pinned = await checkTarget(url, what, detail);
    const signal = AbortSignal.timeout(policy.timeoutMs);
    const requestOptions: RequestOptions = {
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      headers: { 'accept-encoding': 'identity', 'user-agent': 'mandate', ...request.headers, 'content-length': String(request.body.length) },
      // A fresh connection per request: a pooled socket could have been opened under another policy.
      agent: false,
      signal,
    };
    if (pinned !== undefined) {
      // Connect to the address that was checked, whatever a second resolution would say (DNS rebinding).
      requestOptions.lookup = ((_hostname: string, lookupOptions: LookupOptions, callback: (...args: unknown[]) => void) => {
        if (lookupOptions.all === true) callback(null, [{ address: pinned.address, family: pinned.family } satisfies LookupAddress]);
        else callback(null, pinned.address, pinned.family);
      }) as RequestOptions['lookup'];
    }
    let response: IncomingMessage;
    try {
      response = await new Promise<IncomingMessage>((resolveResponse, reject) => {
        const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(requestOptions, resolveResponse);
        req.on('error', reject);
        req.end(request.body);
      });
    } catch (cause) {
      if (signal.aborted) throw new OutboundFetchError('timeout', `${what} timed out`, { detail, cause });
      throw new OutboundFetchError('network', `${what} failed: the endpoint could not be reached`, { detail, cause });
    }
    const status = response.statusCode ?? 0;
    if (status >= 300 && status < 400) {
      response.destroy();
      throw new OutboundRefusedError('redirect', `${what} refused: the endpoint answered a redirect (HTTP ${status}); it is not followed`, { detail });
    }
    return { response, status, signal, detail };
  };
}

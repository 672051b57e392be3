/**
 * The guarded outbound POST of the vault's OAuth `refresh_token` grant (RFC 6749 §6) to an upstream's token
 * endpoint, under the same rules as every URL Mandate fetches (src/identity/outbound.ts): `https:` only unless
 * `outbound.allowHttp`, every address the host resolves to checked against private and special-use ranges and the
 * connection pinned to the address checked, one deadline, a size cap, no redirects. Neither the request's secrets
 * nor the response body ever reach an error text or a log line.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { isBlockedAddress, isJsonContentType, OutboundFetchError, OutboundRefusedError, type HostResolver, type ResolvedAddress } from '../identity/outbound.ts';
import type { OutboundPolicy } from '../identity/types.ts';

/** The answer of a token endpoint: its HTTP status and its JSON body (an object), or undefined when it sent none. */
export interface TokenEndpointAnswer {
  readonly status: number;
  readonly json: Record<string, unknown> | undefined;
}

/**
 * POSTs an `application/x-www-form-urlencoded` token request.
 * @param endpoint the token endpoint URL
 * @param form the request parameters (e.g. `grant_type`, `refresh_token`)
 * @param authorization an HTTP `Authorization` value for client authentication, if any
 */
export type TokenRequest = (endpoint: string, form: Readonly<Record<string, string>>, authorization?: string) => Promise<TokenEndpointAnswer>;

const systemResolve: HostResolver = async (hostname) => {
  const answers = await dnsLookup(hostname, { all: true, verbatim: true });
  return answers.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

/** The URL as it may appear in logs: origin and path, no credentials, query or fragment. */
const loggable = (url: URL) => `${url.protocol}//${url.host}${url.pathname}`;

/**
 * Creates the guarded token request.
 * @param policy the configured outbound limits (the parsed `identity.outbound` section)
 * @param options a host resolver, for tests
 * @example
 * const tokenRequest = createTokenRequest(config.identity.outbound);
 * const { status, json } = await tokenRequest(endpoint, { grant_type: 'refresh_token', refresh_token: rt });
 */
export function createTokenRequest(policy: OutboundPolicy, options: { resolve?: HostResolver } = {}): TokenRequest {
  const resolve = options.resolve ?? systemResolve;
  const allowHosts = new Set(policy.allowHosts.map((h) => h.toLowerCase().replace(/\.$/, '')));

  async function checkTarget(url: URL): Promise<ResolvedAddress | undefined> {
    const detail = `url ${loggable(url)}`;
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowHttp)) {
      throw new OutboundRefusedError('scheme', 'token request refused: only https token endpoints are called (outbound.allowHttp)', { detail });
    }
    if (url.username !== '' || url.password !== '') throw new OutboundRefusedError('bad_url', 'token request refused: URLs with credentials are not called', { detail });
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
    const trusted = policy.allowPrivateNetworks || allowHosts.has(host);
    if (isIP(host) !== 0) {
      if (!trusted && isBlockedAddress(host)) throw new OutboundRefusedError('private_address', 'token request refused: the token endpoint is a private or special-use address (outbound.allowPrivateNetworks, outbound.allowHosts)', { detail });
      return undefined;
    }
    let addresses: readonly ResolvedAddress[];
    try {
      addresses = await resolve(host);
    } catch (cause) {
      throw new OutboundFetchError('dns', 'token request failed: the host name did not resolve', { detail, cause });
    }
    if (addresses.length === 0) throw new OutboundFetchError('dns', 'token request failed: the host name did not resolve', { detail });
    if (!trusted && addresses.some((a) => isBlockedAddress(a.address))) {
      throw new OutboundRefusedError('private_address', 'token request refused: the host resolves to a private or special-use address (outbound.allowPrivateNetworks, outbound.allowHosts)', { detail });
    }
    return addresses[0];
  }

  function readBody(response: IncomingMessage, signal: AbortSignal, detail: string): Promise<Buffer> {
    return new Promise((resolveBody, reject) => {
      const chunks: Buffer[] = [];
      let total = 0;
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        fn();
      };
      response.on('data', (chunk: Buffer) => {
        total += chunk.length;
        if (total > policy.maxBytes) {
          response.destroy();
          settle(() => reject(new OutboundRefusedError('too_large', `token response exceeds ${policy.maxBytes} bytes (outbound.maxBytes)`, { detail })));
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => settle(() => resolveBody(Buffer.concat(chunks))));
      const interrupted = () => settle(() => reject(new OutboundFetchError(signal.aborted ? 'timeout' : 'network', signal.aborted ? 'token request timed out' : 'token response was interrupted', { detail })));
      response.on('error', interrupted);
      response.on('close', interrupted);
    });
  }

  return async function tokenRequest(endpoint, form, authorization) {
    if (!URL.canParse(endpoint)) throw new OutboundRefusedError('bad_url', 'token request refused: not a valid absolute URL');
    const url = new URL(endpoint);
    const detail = `url ${loggable(url)}`;
    const pinned = await checkTarget(url);
    const signal = AbortSignal.timeout(policy.timeoutMs);
    const body = Buffer.from(new URLSearchParams(form).toString(), 'utf8');
    const requestOptions: RequestOptions = {
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
        'accept-encoding': 'identity',
        'user-agent': 'mandate',
        'content-length': String(body.length),
        ...(authorization === undefined ? {} : { authorization }),
      },
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
        req.end(body);
      });
    } catch (cause) {
      if (signal.aborted) throw new OutboundFetchError('timeout', 'token request timed out', { detail, cause });
      throw new OutboundFetchError('network', 'token request failed: the token endpoint could not be reached', { detail, cause });
    }
    const status = response.statusCode ?? 0;
    if (status >= 300 && status < 400) {
      response.destroy();
      throw new OutboundRefusedError('redirect', `token request refused: the token endpoint answered a redirect (HTTP ${status})`, { detail });
    }
    if (!isJsonContentType(response.headers['content-type'])) {
      response.destroy();
      return { status, json: undefined };
    }
    const raw = await readBody(response, signal, detail);
    try {
      const json: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
      return { status, json: typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined };
    } catch {
      // The parser's message quotes the body (a token, perhaps): neither goes into the error.
      throw new OutboundFetchError('json', 'token response is not valid JSON', { detail });
    }
  };
}

/**
 * The guarded JSON fetch behind every URL Mandate fetches (discovery, JWKS, `jwks_uri`, bundles): one deadline for
 * the whole request, a size limit enforced while the body streams in, redirects bounded and re-checked, `https:`
 * only unless configured, and SSRF protection that checks every address a host resolves to and then connects to
 * the address it checked, so that a second DNS answer cannot swap it (DNS rebinding).
 *
 * DESIGN.md "Outbound is guarded". Uses node:http(s) with a pinned `lookup`, because the global `fetch` cannot be
 * told which address to connect to without a new dependency.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP } from 'node:net';
import { MandateError, type MandateErrorOptions } from '../core/errors.ts';
import type { FetchJson, OutboundPolicy } from './types.ts';

/** Why an outbound fetch failed; stable values, for logs, metrics and tests. */
export type OutboundFailure =
  | 'bad_url'
  | 'scheme'
  | 'private_address'
  | 'dns'
  | 'timeout'
  | 'too_large'
  | 'redirect'
  | 'status'
  | 'content_type'
  | 'encoding'
  | 'json'
  | 'network';

/** Failures that are Mandate's own refusals (policy), as opposed to a peer that misbehaved or could not be reached. */
const REFUSALS: ReadonlySet<OutboundFailure> = new Set(['bad_url', 'scheme', 'private_address', 'redirect', 'too_large']);

/**
 * An outbound fetch failed or was refused. The description names what went wrong, never a response body; the
 * URL (without its query) is in `detail`, for logs. Renders as 502 (504 on timeout) `temporarily_unavailable`.
 */
export class OutboundFetchError extends MandateError {
  static override readonly code: string = 'ERR_OUTBOUND_FAILED';
  override readonly code: string = 'ERR_OUTBOUND_FAILED';
  override readonly status: number;
  override readonly oauthError: string = 'temporarily_unavailable';
  /** What went wrong. */
  readonly reason: OutboundFailure;

  constructor(reason: OutboundFailure, description: string, options: MandateErrorOptions = {}) {
    super(description, options);
    this.reason = reason;
    this.status = reason === 'timeout' ? 504 : 502;
  }
}

/** An outbound fetch refused by policy: scheme, private address, redirect limit, size limit. */
export class OutboundRefusedError extends OutboundFetchError {
  static override readonly code: string = 'ERR_OUTBOUND_REFUSED';
  override readonly code: string = 'ERR_OUTBOUND_REFUSED';
}

function fail(reason: OutboundFailure, description: string, options: MandateErrorOptions = {}): OutboundFetchError {
  return REFUSALS.has(reason) ? new OutboundRefusedError(reason, description, options) : new OutboundFetchError(reason, description, options);
}

/** One address a host name resolves to. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Resolves a host name to all its addresses (node:dns `lookup` with `all: true` by default). */
export type HostResolver = (hostname: string) => Promise<readonly ResolvedAddress[]>;

/** Options of {@link createFetchJson} beyond the configured policy. */
export interface FetchJsonOptions {
  /** Redirects followed, each re-checked like the first URL (default 3; 0 refuses every redirect). */
  readonly maxRedirects?: number;
  /** Host resolution; tests inject one to simulate DNS answers. */
  readonly resolve?: HostResolver;
}

const systemResolve: HostResolver = async (hostname) => {
  const answers = await dnsLookup(hostname, { all: true, verbatim: true });
  return answers.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

// Special-use ranges (RFC 6890 and the IANA special-purpose registries) that an outbound fetch must not reach
// unless the operator allows private networks.
const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // CGNAT shared address space
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata endpoints)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['::', 96], // IPv4-compatible (deprecated)
  ['64:ff9b:1::', 48], // local-use IPv4/IPv6 translation
  ['100::', 64], // discard-only
  ['2001::', 32], // Teredo
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv6');
}

/** The eight 16-bit groups of an IPv6 address (with an optional trailing dotted IPv4 part), or undefined. */
function ipv6Groups(address: string): number[] | undefined {
  let text = address;
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1] !== undefined) {
    const octets = dotted[1].split('.').map(Number);
    tail.push(((octets[0] ?? 0) << 8) | (octets[1] ?? 0), ((octets[2] ?? 0) << 8) | (octets[3] ?? 0));
    text = text.slice(0, -dotted[1].length);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head = '', rest] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const missing = 8 - tail.length - left.length - right.length;
  if (missing < 0 || (rest === undefined && missing !== 0)) return undefined;
  const groups = [...left, ...Array<number>(missing).fill(0), ...right, ...tail];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

/**
 * Whether an IP address is private, loopback, link-local, unique-local, unspecified, multicast, CGNAT, reserved,
 * or an IPv6 form (IPv4-mapped, NAT64) of such an IPv4 address. Unparseable input counts as blocked.
 */
export function isBlockedAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 4) return BLOCKED.check(bare, 'ipv4');
  if (family !== 6) return true;
  const groups = ipv6Groups(bare.toLowerCase());
  if (groups === undefined) return true;
  const [g0, g1, g2, g3, g4, g5, g6 = 0, g7 = 0] = groups;
  const embedded = `${g6 >> 8}.${g6 & 0xff}.${g7 >> 8}.${g7 & 0xff}`;
  // ::ffff:a.b.c.d (IPv4-mapped) and 64:ff9b::a.b.c.d (NAT64) reach the embedded IPv4 address.
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0xffff) return BLOCKED.check(embedded, 'ipv4');
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return BLOCKED.check(embedded, 'ipv4');
  return BLOCKED.check(bare, 'ipv6');
}

const JSON_TYPE = /^application\/(?:json|[a-z0-9!#$&^_.-]+\+json)$/;

/** Whether a `Content-Type` value is JSON (`application/json` or `application/*+json`, e.g. `jwk-set+json`). */
export function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const mediaType = value.split(';')[0]?.trim().toLowerCase() ?? '';
  return JSON_TYPE.test(mediaType);
}

/** The URL as it may appear in logs: origin and path, no credentials, query or fragment. */
function loggable(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function toHeaders(message: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(message.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      try {
        headers.append(name, v);
      } catch {
        // A header value the Fetch API cannot hold is dropped rather than failing the fetch.
      }
    }
  }
  return headers;
}

function abortReason(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const onAbort = () => reject(new Error('aborted'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Creates a {@link FetchJson} that enforces `policy` on every request and every redirect.
 *
 * @param policy the configured limits (the parsed `outbound` section).
 * @param options redirect limit and, for tests, a host resolver.
 * @example
 * const fetchJson = createFetchJson(config.outbound);
 * const { json } = await fetchJson('https://idp.example.com/.well-known/openid-configuration');
 */
export function createFetchJson(policy: OutboundPolicy, options: FetchJsonOptions = {}): FetchJson {
  const maxRedirects = options.maxRedirects ?? 3;
  const resolve = options.resolve ?? systemResolve;
  const allowHosts = new Set(policy.allowHosts.map((h) => h.toLowerCase().replace(/\.$/, '')));

  /** Checks the URL and its host's addresses; returns the address to connect to (undefined for an IP literal). */
  async function checkTarget(url: URL, signal: AbortSignal, previous: URL | undefined): Promise<ResolvedAddress | undefined> {
    const detail = `url ${loggable(url)}`;
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw fail('scheme', 'outbound request refused: only https URLs are fetched', { detail });
    }
    if (url.protocol === 'http:' && !policy.allowHttp) {
      throw fail('scheme', 'outbound request refused: plain http is not allowed (outbound.allowHttp)', { detail });
    }
    if (previous?.protocol === 'https:' && url.protocol === 'http:') {
      throw fail('redirect', 'outbound request refused: redirect from https to http', { detail });
    }
    if (url.username !== '' || url.password !== '') {
      throw fail('bad_url', 'outbound request refused: URLs with credentials are not fetched', { detail: loggable(url) });
    }
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
    const trusted = policy.allowPrivateNetworks || allowHosts.has(host);
    if (isIP(host) !== 0) {
      if (!trusted && isBlockedAddress(host)) {
        throw fail('private_address', 'outbound request refused: the target is a private or special-use address (outbound.allowPrivateNetworks, outbound.allowHosts)', { detail });
      }
      return undefined;
    }
    let addresses: readonly ResolvedAddress[];
    try {
      addresses = await Promise.race([resolve(host), abortReason(signal)]);
    } catch (cause) {
      if (signal.aborted) throw fail('timeout', 'outbound request timed out', { detail, cause });
      throw fail('dns', 'outbound request failed: the host name did not resolve', { detail, cause });
    }
    if (addresses.length === 0) throw fail('dns', 'outbound request failed: the host name did not resolve', { detail });
    // Every answer is checked, not only the one used: a host that also resolves to a private address is refused.
    if (!trusted && addresses.some((a) => isBlockedAddress(a.address))) {
      throw fail('private_address', 'outbound request refused: the host resolves to a private or special-use address (outbound.allowPrivateNetworks, outbound.allowHosts)', {
        detail: `${detail} resolves to ${addresses.map((a) => a.address).join(', ')}`,
      });
    }
    return addresses[0];
  }

  function send(url: URL, pinned: ResolvedAddress | undefined, accept: string, signal: AbortSignal): Promise<IncomingMessage> {
    const requestOptions: RequestOptions = {
      method: 'GET',
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      headers: { accept, 'accept-encoding': 'identity', 'user-agent': 'mandate' },
      // A fresh connection per fetch: a pooled socket could have been opened under another policy.
      agent: false,
      signal,
    };
    if (pinned !== undefined) {
      // Connect to the address that was checked, whatever a second resolution would say.
      requestOptions.lookup = ((_hostname: string, lookupOptions: LookupOptions, callback: (...args: unknown[]) => void) => {
        if (lookupOptions.all === true) callback(null, [{ address: pinned.address, family: pinned.family } satisfies LookupAddress]);
        else callback(null, pinned.address, pinned.family);
      }) as RequestOptions['lookup'];
    }
    return new Promise((resolveResponse, reject) => {
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(requestOptions, resolveResponse);
      req.on('error', reject);
      req.end();
    });
  }

  function readBody(response: IncomingMessage, url: URL, signal: AbortSignal): Promise<Buffer> {
    const detail = `url ${loggable(url)}`;
    return new Promise((resolveBody, reject) => {
      const chunks: Buffer[] = [];
      let total = 0;
      let settled = false;
      const interrupted = (cause?: unknown) => {
        if (settled) return;
        settled = true;
        if (signal.aborted) reject(fail('timeout', 'outbound request timed out', { detail, cause }));
        else reject(fail('network', 'outbound response was interrupted', { detail, cause }));
      };
      response.on('data', (chunk: Buffer) => {
        if (settled) return;
        total += chunk.length;
        if (total > policy.maxBytes) {
          settled = true;
          response.destroy();
          reject(fail('too_large', `outbound response exceeds ${policy.maxBytes} bytes (outbound.maxBytes)`, { detail }));
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => {
        if (settled) return;
        settled = true;
        resolveBody(Buffer.concat(chunks));
      });
      response.on('error', interrupted);
      response.on('close', () => interrupted());
    });
  }

  return async function fetchJson(target, fetchOptions = {}) {
    const accept = fetchOptions.accept ?? 'application/json';
    if (!URL.canParse(target)) throw fail('bad_url', 'outbound request refused: not a valid absolute URL');
    let url = new URL(target);
    let previous: URL | undefined;
    const signal = AbortSignal.timeout(policy.timeoutMs);

    for (let redirects = 0; ; redirects += 1) {
      const detail = `url ${loggable(url)}`;
      const pinned = await checkTarget(url, signal, previous);
      let response: IncomingMessage;
      try {
        response = await send(url, pinned, accept, signal);
      } catch (cause) {
        if (signal.aborted) throw fail('timeout', 'outbound request timed out', { detail, cause });
        throw fail('network', 'outbound request failed: the peer could not be reached', { detail, cause });
      }
      const status = response.statusCode ?? 0;

      if (status >= 300 && status < 400 && status !== 304) {
        response.destroy();
        const location = response.headers.location;
        if (location === undefined || !URL.canParse(location, url.href)) {
          throw fail('redirect', 'outbound request failed: redirect without a valid location', { detail });
        }
        if (redirects >= maxRedirects) {
          throw fail('redirect', `outbound request refused: more than ${maxRedirects} redirects`, { detail });
        }
        previous = url;
        url = new URL(location, url);
        continue;
      }
      if (status < 200 || status > 299) {
        response.destroy();
        throw fail('status', `outbound request failed: the peer answered HTTP ${status}`, { detail: `${detail} status ${status}` });
      }
      if (!isJsonContentType(response.headers['content-type'])) {
        response.destroy();
        throw fail('content_type', 'outbound response is not JSON (expected application/json or application/*+json)', {
          detail: `${detail} content-type ${(response.headers['content-type'] ?? '(none)').slice(0, 100)}`,
        });
      }
      const encoding = response.headers['content-encoding'];
      if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
        response.destroy();
        throw fail('encoding', 'outbound response uses a content encoding that was not asked for', { detail });
      }
      const declared = Number(response.headers['content-length']);
      if (Number.isFinite(declared) && declared > policy.maxBytes) {
        response.destroy();
        throw fail('too_large', `outbound response exceeds ${policy.maxBytes} bytes (outbound.maxBytes)`, { detail });
      }
      const body = await readBody(response, url, signal);
      let json: unknown;
      try {
        json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
      } catch {
        // The parser's message quotes the body; neither it nor the body goes into the error.
        throw fail('json', 'outbound response is not valid JSON', { detail });
      }
      return { json, headers: toHeaders(response) };
    }
  };
}

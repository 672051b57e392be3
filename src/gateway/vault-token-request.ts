/**
 * The guarded outbound POST of the vault's OAuth `refresh_token` grant (RFC 6749 §6) to an upstream's token
 * endpoint, under the same rules as every URL Mandate fetches (src/identity/outbound.ts): `https:` only unless
 * `outbound.allowHttp`, every address the host resolves to checked against private and special-use ranges and the
 * connection pinned to the address checked, one deadline, a size cap, no redirects. Neither the request's secrets
 * nor the response body ever reach an error text or a log line.
 */
import type { IncomingMessage } from 'node:http';
import { isJsonContentType, OutboundFetchError, OutboundRefusedError, type HostResolver } from '../identity/outbound.ts';
import { createGuardedPost, loggableUrl } from '../identity/guarded-post.ts';
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

/**
 * Creates the guarded token request.
 * @param policy the configured outbound limits (the parsed `identity.outbound` section)
 * @param options a host resolver, for tests
 * @example
 * const tokenRequest = createTokenRequest(config.identity.outbound);
 * const { status, json } = await tokenRequest(endpoint, { grant_type: 'refresh_token', refresh_token: rt });
 */
export function createTokenRequest(policy: OutboundPolicy, options: { resolve?: HostResolver } = {}): TokenRequest {
  const post = createGuardedPost(policy, options.resolve === undefined ? {} : { resolve: options.resolve });

  /** The token endpoint's URL itself: https unless allowed, no credentials (the address is checked by the POST). */
  function scheme(url: URL): OutboundRefusedError | undefined {
    const detail = `url ${loggableUrl(url)}`;
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowHttp)) {
      return new OutboundRefusedError('scheme', 'token request refused: only https token endpoints are called (outbound.allowHttp)', { detail });
    }
    if (url.username !== '' || url.password !== '') return new OutboundRefusedError('bad_url', 'token request refused: URLs with credentials are not called', { detail });
    return undefined;
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
    const problem = scheme(url);
    if (problem !== undefined) throw problem;
    const { response, status, signal, detail } = await post({
      url,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
        ...(authorization === undefined ? {} : { authorization }),
      },
      body: Buffer.from(new URLSearchParams(form).toString(), 'utf8'),
      what: 'token request',
    });
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

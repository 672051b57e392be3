/**
 * `mandate token inspect <jwt>`: decodes a mandate without trusting it, verifies it against Mandate's keys and
 * explains each header parameter and claim — and whether it would be accepted or refused, and why.
 *
 * The keys come from the store the configuration names (the published JWKS: active and retiring keys; no KEK
 * needed), or from a running node: `--issuer` reads its RFC 8414 metadata and then its `jwks_uri`, `--jwks-url`
 * reads a JWKS directly. With the store, the token is also checked as the token service checks it: its own
 * record (revoked, or revoked because its task ended), its task, and every mandate it was re-exchanged from
 * (`parentJti`). The token itself is never printed.
 *
 * @see RFC 8414 §3 (metadata location and issuer check), RFC 9068 (JWT access tokens)
 */
import type { JSONWebKeySet } from 'jose';
import type { MandateConfig } from '../config/index.ts';
import { InvalidRequestError } from '../core/errors.ts';
import { systemClock } from '../core/ports.ts';
import { createFetchJson } from '../identity/outbound.ts';
import { inspectToken, inspectTokenRecord, renderTokenInspection, type TokenInspection } from '../tokens/inspect-token.ts';
import { CliUsageError, EXIT_FAILURE, EXIT_OK, type CliCommand, type CliIo } from './command.ts';
import { VERIFIER_CLOCK_TOLERANCE_SECONDS, cliKeyManager } from './keys-manager.ts';
import { CONFIG_OPTION, cliActor, loadCliConfig, storeLocation, terminalSafe, withStore } from './store-context.ts';

/** The RFC 8414 metadata path (§3.1: inserted between the host and the issuer's path). */
const METADATA_PATH = '/.well-known/oauth-authorization-server';

/** Where the keys came from, and which issuer the token must name. */
interface KeySetting {
  jwks: JSONWebKeySet;
  issuer: string;
  /** e.g. `store /var/lib/mandate/mandate.db` or `https://mandate.example/oauth/jwks`. */
  keysFrom: string;
  /** Why this issuer, e.g. `tokens.issuer`. */
  issuerFrom: string;
}

function parseUrlOption(name: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliUsageError(`--${name}: not an absolute URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new CliUsageError(`--${name}: an http(s) URL`);
  if (url.username !== '' || url.password !== '') throw new CliUsageError(`--${name}: a URL without credentials`);
  return url;
}

/** The issuer a node uses when tokens.issuer is not set: the URL it listens on. */
function listenUrl(config: MandateConfig): string {
  const host = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host;
  return `http://${host}:${config.server.port}`;
}

// The token node drops trailing slashes from the issuer it puts in `iss`; so does this command.
const withoutTrailingSlash = (url: string): string => url.replace(/\/+$/, '');

/** The issuer the token must name, and where that came from. */
function expectedIssuer(config: MandateConfig, issuerOption: string | undefined): { issuer: string; issuerFrom: string } {
  if (issuerOption !== undefined) return { issuer: withoutTrailingSlash(issuerOption), issuerFrom: '--issuer' };
  if (config.tokens.issuer !== undefined) return { issuer: withoutTrailingSlash(config.tokens.issuer), issuerFrom: 'tokens.issuer' };
  return { issuer: listenUrl(config), issuerFrom: 'the listen URL, as tokens.issuer is not set' };
}

function asJwks(json: unknown, where: string): JSONWebKeySet {
  const keys = (json as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || !keys.every((k) => k !== null && typeof k === 'object' && !Array.isArray(k))) {
    throw new InvalidRequestError(`the document at ${where} is not a JWKS ({ "keys": [...] })`);
  }
  return { keys: keys as JSONWebKeySet['keys'] };
}

/** Reads the keys of a running node: from `--jwks-url`, else from the `jwks_uri` of `--issuer`'s metadata. */
async function remoteKeys(config: MandateConfig, issuerOption: string | undefined, jwksOption: string | undefined): Promise<KeySetting> {
  // The operator names the node on the command line, often on loopback or a private network, so those are
  // allowed here; the configured timeout and size limit still apply to every fetch.
  const fetchJson = createFetchJson({ ...config.identity.outbound, allowPrivateNetworks: true, allowHttp: true, allowHosts: [] }, { maxRedirects: 0 });
  const { issuer, issuerFrom } = expectedIssuer(config, issuerOption);
  if (jwksOption !== undefined) {
    const url = parseUrlOption('jwks-url', jwksOption);
    const { json } = await fetchJson(url.href);
    return { jwks: asJwks(json, url.href), issuer, keysFrom: url.href, issuerFrom };
  }
  const issuerUrl = parseUrlOption('issuer', issuer);
  const path = issuerUrl.pathname.replace(/\/+$/, '');
  const metadataUrl = `${issuerUrl.origin}${METADATA_PATH}${path}`;
  const { json } = await fetchJson(metadataUrl);
  const metadata = (json ?? {}) as { issuer?: unknown; jwks_uri?: unknown };
  // RFC 8414 §3.3: the metadata must name exactly the issuer it was fetched for.
  if (metadata.issuer !== issuer) {
    throw new InvalidRequestError(`the metadata at ${metadataUrl} names issuer ${terminalSafe(JSON.stringify(metadata.issuer) ?? 'none')}, not ${issuer} (RFC 8414 §3.3); pass the node's exact issuer`);
  }
  if (typeof metadata.jwks_uri !== 'string') throw new InvalidRequestError(`the metadata at ${metadataUrl} has no jwks_uri`);
  let jwksUrl: URL;
  try {
    jwksUrl = new URL(metadata.jwks_uri);
  } catch {
    throw new InvalidRequestError(`the metadata at ${metadataUrl} has a jwks_uri that is not a URL`);
  }
  // A document fetched from the network does not get to send this command elsewhere.
  if (jwksUrl.origin !== issuerUrl.origin) {
    throw new InvalidRequestError(`the jwks_uri of ${issuer} is on another origin (${jwksUrl.origin}); to trust it, pass it as --jwks-url`);
  }
  const keys = await fetchJson(jwksUrl.href);
  return { jwks: asJwks(keys.json, jwksUrl.href), issuer, keysFrom: `${jwksUrl.href} (jwks_uri of ${metadataUrl})`, issuerFrom };
}

/** Decodes just the jti, for the record lookup (the inspection already reported anything malformed). */
function jtiOf(token: string): unknown {
  const payload = token.trim().replace(/^(?:Bearer|DPoP)\s+/i, '').split('.')[1];
  if (payload === undefined) return undefined;
  try {
    return (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { jti?: unknown }).jti;
  } catch {
    return undefined;
  }
}

async function readToken(argument: string | undefined, io: CliIo): Promise<string> {
  if (argument === undefined) throw new CliUsageError('give the token, or - to read it from standard input (keeps it out of your shell history)');
  const token = argument === '-' ? (await io.readStdin()).trim() : argument;
  if (token === '') throw new CliUsageError(argument === '-' ? 'standard input is empty: expected a token' : 'the token is empty');
  return token;
}

/** The `token inspect` command. */
export const tokenInspectCommand: CliCommand = {
  summary: 'Decode and verify a mandate, and explain why it would be accepted or refused',
  usage: '<jwt|-> [--issuer URL] [--jwks-url URL] [--audience URL] [--json] [--config FILE]',
  description: `Decodes the token without trusting it, verifies its signature against Mandate's published keys and
explains each header parameter and claim: what it means and whether it is accepted, with the verdict and
every reason for a refusal. The signature and the token itself are never printed.

Keys: by default the JWKS of the store the configuration names (active and retiring keys; no KEK needed),
with the issuer from tokens.issuer (else the listen URL). The store is then checked as the token service
checks it: a mandate that was revoked, whose task ended (or is past its deadline or idle limit), or that was
re-exchanged from a mandate since revoked (its parentJti chain) is refused, and the line says why. --issuer URL reads a running node instead: its RFC 8414 metadata
(/.well-known/oauth-authorization-server), then the jwks_uri it names (same origin only). --jwks-url URL
reads a JWKS directly (the issuer is then --issuer, else as configured). Fetches use the configured
outbound timeout and size limit; loopback and private addresses are allowed, since you name the node.`,
  positionals: [{ name: 'jwt', description: 'the token (a leading "Bearer " or "DPoP " is ignored), or - to read it from standard input' }],
  options: {
    config: CONFIG_OPTION,
    issuer: { type: 'string', placeholder: 'URL', description: "A running node's issuer: read its metadata and jwks_uri; iss must equal it" },
    'jwks-url': { type: 'string', placeholder: 'URL', description: 'Read the verification keys from this JWKS URL' },
    audience: { type: 'string', placeholder: 'URL', description: 'Also require aud to be exactly this resource' },
    json: { type: 'boolean', description: 'Print the inspection as JSON (verdict, reasons, signature, header, claims, keys)' },
  },
  exitCodes: ['0  the token would be accepted', '1  it would be refused (or is not a token, or the keys cannot be read)', '2  usage error'],
  examples: [
    'mandate token inspect - < mandate.jwt',
    'mandate token inspect "$TOKEN" --issuer https://mandate.example.com',
    'mandate token inspect - --jwks-url http://127.0.0.1:8080/oauth/jwks --issuer http://127.0.0.1:8080 --json < mandate.jwt',
  ],
  async run(args, io) {
    const token = await readToken(args.positionals[0], io);
    const issuerOption = args.values.issuer as string | undefined;
    const jwksOption = args.values['jwks-url'] as string | undefined;
    const audience = args.values.audience as string | undefined;
    if (issuerOption !== undefined) parseUrlOption('issuer', issuerOption);
    if (audience !== undefined) parseUrlOption('audience', audience);
    const config = await loadCliConfig(args, io);
    const options = (setting: KeySetting) => ({
      jwks: setting.jwks,
      issuer: setting.issuer,
      clock: systemClock,
      maxLifetimeSeconds: config.tokens.maxLifetimeSeconds,
      clockToleranceSeconds: VERIFIER_CLOCK_TOLERANCE_SECONDS,
      maxDelegationDepth: config.tokens.maxDelegationDepth,
      ...(audience === undefined ? {} : { expectedAudience: audience }),
    });

    let setting: KeySetting;
    let inspection: TokenInspection;
    if (issuerOption !== undefined || jwksOption !== undefined) {
      setting = await remoteKeys(config, issuerOption, jwksOption);
      inspection = await inspectToken(token, options(setting));
    } else {
      ({ setting, inspection } = await withStore(config, { mustExist: true }, async (store) => {
        const jwks = await cliKeyManager(config, store, cliActor(io.env)).jwks();
        const s: KeySetting = { jwks, ...expectedIssuer(config, undefined), keysFrom: `store ${storeLocation(config)}` };
        const inspected = await inspectToken(token, options(s));
        const recordOptions = { clock: systemClock, maxDelegationDepth: config.tokens.maxDelegationDepth };
        return { setting: s, inspection: await inspectTokenRecord(inspected, jtiOf(token), { tokens: store.tokens, tasks: store.tasks }, recordOptions) };
      }));
    }

    const keys = { from: setting.keysFrom, published: setting.jwks.keys.length, issuer: setting.issuer, issuerFrom: setting.issuerFrom };
    if (args.values.json) {
      io.stdout(`${JSON.stringify({ ...inspection, keys }, null, 2)}\n`);
    } else {
      io.stdout(renderTokenInspection(inspection));
      io.stdout(`\nkeys: ${keys.published} published key${keys.published === 1 ? '' : 's'} from ${keys.from}; issuer ${setting.issuer} (from ${setting.issuerFrom})\n`);
    }
    return inspection.verdict === 'accepted' ? EXIT_OK : EXIT_FAILURE;
  },
};

/**
 * Configuration schemas for workload identity: the `spiffe` section (trust domains and their bundles), the
 * `dpop` section (proof verification and server nonces) and the `clientAuth` section (client assertions,
 * shared secrets). The config loader (src/config) embeds these; each leaf's error message is the
 * "expected …" text shown to the operator, in the style of src/config/config-schema.ts.
 */
import { z } from 'zod';
import { CLIENT_ASSERTION_ALGORITHMS } from './client-assertion.ts';
import { DEFAULT_DPOP_ALGORITHMS, DPOP_SUPPORTED_ALGORITHMS } from './dpop.ts';
import { isTrustDomainName, parseSpiffeBundle, SpiffeBundleError } from './spiffe.ts';

const int = (min: number, max: number) => {
  const expected = `an integer ${min}..${max}`;
  return z.int({ error: expected }).min(min, { error: expected }).max(max, { error: expected });
};
const bool = () => z.boolean({ error: 'true or false' });

const PATH_EXPECTED = 'a non-empty path';
const HTTPS_EXPECTED = 'an absolute https URL without credentials or fragment (http only on loopback with outbound.allowHttp)';
const TD_EXPECTED = 'a trust domain name: lowercase letters, digits, ".", "-", "_" (e.g. example.org)';
const AUD_EXPECTED = 'a list of non-empty audience strings';

const bundleUrl = () =>
  z.string({ error: HTTPS_EXPECTED }).refine(
    (s) => {
      if (!URL.canParse(s)) return false;
      const u = new URL(s);
      return (u.protocol === 'https:' || u.protocol === 'http:') && u.username === '' && u.password === '' && u.hash === '';
    },
    { error: HTTPS_EXPECTED },
  );

/** One trusted SPIFFE trust domain and where its bundle comes from (exactly one of the three). */
export const SpiffeTrustDomainSchema = z
  .strictObject(
    {
      /** The trust domain name, e.g. `example.org` (SVIDs of `spiffe://example.org/...`). */
      trustDomain: z.string({ error: TD_EXPECTED }).refine(isTrustDomainName, { error: TD_EXPECTED }),
      /** A bundle file in the SPIFFE bundle format (e.g. written by a SPIRE agent); re-read on its refresh hint. */
      bundleFile: z.string({ error: PATH_EXPECTED }).min(1, { error: PATH_EXPECTED }).max(4096, { error: PATH_EXPECTED }).optional(),
      /** A SPIFFE bundle endpoint (`https_web` profile); fetched through the guarded outbound client. */
      bundleUrl: bundleUrl().optional(),
      /** The bundle document inline (a JWKS with `use` on each key); never refreshed. */
      bundle: z.record(z.string(), z.unknown(), { error: 'a SPIFFE bundle (a JWKS mapping)' }).optional(),
    },
    { error: 'a mapping' },
  )
  .refine((t) => [t.bundleFile, t.bundleUrl, t.bundle].filter((v) => v !== undefined).length === 1, {
    error: 'exactly one of bundleFile, bundleUrl or bundle',
  })
  .superRefine((t, ctx) => {
    if (t.bundle === undefined || !isTrustDomainName(t.trustDomain)) return;
    try {
      parseSpiffeBundle(t.trustDomain, t.bundle);
    } catch (err) {
      if (!(err instanceof SpiffeBundleError)) throw err;
      ctx.addIssue({ code: 'custom', path: ['bundle'], message: `a valid SPIFFE bundle (${err.message})` });
    }
  });

/**
 * The `spiffe` section. No trust domains: SPIFFE authentication is off (JWT-SVID assertions and mTLS
 * X.509-SVIDs are refused).
 */
export const SpiffeConfigSchema = z
  .strictObject(
    {
      trustDomains: z
        .array(SpiffeTrustDomainSchema, { error: 'a list of trust domains' })
        .default([])
        .refine((list) => new Set(list.map((t) => t.trustDomain)).size === list.length, { error: 'each trust domain at most once' }),
      /**
       * Audiences a JWT-SVID presented to Mandate as a token (e.g. an `actor_token`) may carry, besides the issuer
       * identifier; client assertions always need the issuer identifier (or the token endpoint URL) as sole `aud`.
       */
      audiences: z.array(z.string({ error: AUD_EXPECTED }).min(1, { error: AUD_EXPECTED }), { error: AUD_EXPECTED }).default([]),
      /** Refresh interval for a fetched or file bundle without `spiffe_refresh_hint`, in seconds. */
      defaultRefreshSeconds: int(5, 86_400).default(300),
      /** How long a bundle keeps serving after refreshes start failing, in seconds; then SVIDs of that domain fail closed. */
      maxStaleSeconds: int(0, 7 * 86_400).default(3600),
    },
    { error: 'a mapping' },
  )
  .prefault({});

/** The parsed `spiffe` section. */
export type SpiffeConfig = z.output<typeof SpiffeConfigSchema>;

const DPOP_ALG_EXPECTED = `a list of algorithms, each one of: ${DPOP_SUPPORTED_ALGORITHMS.join(', ')}`;

/** The `dpop` section (RFC 9449). */
export const DpopConfigSchema = z
  .strictObject(
    {
      /** Accepted proof algorithms (`dpop_signing_alg_values_supported`); asymmetric only. */
      algorithms: z
        .array(z.enum(DPOP_SUPPORTED_ALGORITHMS, { error: DPOP_ALG_EXPECTED }), { error: DPOP_ALG_EXPECTED })
        .min(1, { error: DPOP_ALG_EXPECTED })
        .default([...DEFAULT_DPOP_ALGORITHMS] as (typeof DPOP_SUPPORTED_ALGORITHMS)[number][]),
      /** How old a proof's `iat` may be, in seconds. */
      maxAgeSeconds: int(1, 600).default(60),
      /** Tolerated clock difference with clients, in seconds. */
      skewSeconds: int(0, 300).default(5),
      /**
       * `required`: every proof must carry a current server nonce (RFC 9449 §8), issued in `DPoP-Nonce`; nodes
       * share the nonce secret, derived from the key-encryption key. `off`: no nonces.
       */
      nonce: z.enum(['off', 'required'], { error: 'off or required' }).default('off'),
      /** Length of a nonce window in seconds; a nonce is accepted for one to two windows. */
      nonceWindowSeconds: int(10, 3600).default(300),
    },
    { error: 'a mapping' },
  )
  .prefault({});

/** The parsed `dpop` section. */
export type DpopConfig = z.output<typeof DpopConfigSchema>;

const ASSERTION_ALG_EXPECTED = `a list of algorithms, each one of: ${CLIENT_ASSERTION_ALGORITHMS.join(', ')}`;

/** The `clientAuth` section: how agents and services authenticate as OAuth clients. */
export const ClientAuthConfigSchema = z
  .strictObject(
    {
      /** Longest accepted client assertion lifetime (`exp` − `iat`, or `exp` − now), in seconds. */
      maxAssertionLifetimeSeconds: int(1, 3600).default(300),
      /** Tolerated clock difference for assertion time claims, in seconds. */
      clockToleranceSeconds: int(0, 300).default(5),
      /** Accepted client assertion algorithms; asymmetric only. */
      algorithms: z
        .array(z.enum(CLIENT_ASSERTION_ALGORITHMS, { error: ASSERTION_ALG_EXPECTED }), { error: ASSERTION_ALG_EXPECTED })
        .min(1, { error: ASSERTION_ALG_EXPECTED })
        .default([...CLIENT_ASSERTION_ALGORITHMS]),
      /**
       * Shared-secret client authentication (`client_secret_basic`, `client_secret_post`). Off by default: long-lived
       * bearer secrets are against Mandate's rules. Turning it on logs a warning at every start.
       */
      allowSharedSecrets: bool().default(false),
    },
    { error: 'a mapping' },
  )
  .prefault({});

/** The parsed `clientAuth` section. */
export type ClientAuthConfig = z.output<typeof ClientAuthConfigSchema>;

/**
 * The warnings the server must log at start for these sections (DESIGN.md: a weakened default is said loudly).
 * @example for (const w of workloadConfigWarnings({ clientAuth })) log.warn(w);
 */
export function workloadConfigWarnings(config: { clientAuth?: ClientAuthConfig; spiffe?: SpiffeConfig }): string[] {
  const warnings: string[] = [];
  if (config.clientAuth?.allowSharedSecrets) {
    warnings.push(
      'clientAuth.allowSharedSecrets is on: agents and services may authenticate with long-lived shared secrets (client_secret_basic / client_secret_post). Prefer private_key_jwt or SPIFFE SVIDs.',
    );
  }
  for (const td of config.spiffe?.trustDomains ?? []) {
    if (td.bundleUrl?.startsWith('http:')) {
      warnings.push(`spiffe trust domain ${td.trustDomain}: the bundle is fetched over plain http; anyone on the path can replace its keys.`);
    }
  }
  return warnings;
}

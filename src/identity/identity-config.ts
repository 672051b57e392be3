/**
 * Configuration schemas of the identity capability: the `outbound` section (guarded fetches) and one trusted
 * OIDC issuer of users. The config loader (src/config) embeds these; each leaf's error message is the
 * "expected …" text shown to the operator, in the style of src/config/config-schema.ts.
 */
import { z } from 'zod';

const int = (min: number, max: number) => {
  const expected = `an integer ${min}..${max}`;
  return z.int({ error: expected }).min(min, { error: expected }).max(max, { error: expected });
};
const bool = () => z.boolean({ error: 'true or false' });

const HOST_EXPECTED = 'a host name (e.g. idp.internal.example)';
const URL_EXPECTED = 'an absolute http(s) URL without credentials or fragment';
const PATH_EXPECTED = 'a non-empty path';

const httpUrl = () =>
  z.string({ error: URL_EXPECTED }).refine(
    (s) => {
      if (!URL.canParse(s)) return false;
      const u = new URL(s);
      return (u.protocol === 'https:' || u.protocol === 'http:') && u.username === '' && u.password === '' && u.hash === '';
    },
    { error: URL_EXPECTED },
  );

/**
 * The `outbound` section: limits for every URL Mandate fetches (discovery, JWKS, `jwks_uri`, bundles).
 * Its output satisfies {@link import('./types.ts').OutboundPolicy}.
 */
export const OutboundConfigSchema = z
  .strictObject(
    {
      /** Whole-request timeout (connect, redirects, body), in milliseconds. */
      timeoutMs: int(100, 120_000).default(5000),
      /** Largest response body accepted, in bytes (enforced while reading). */
      maxBytes: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
      /** Allow targets that resolve to private, loopback or link-local addresses. Off by default (SSRF). */
      allowPrivateNetworks: bool().default(false),
      /** Host names allowed even when they resolve to private addresses (e.g. an internal IdP). */
      allowHosts: z
        .array(
          z
            .string({ error: HOST_EXPECTED })
            .min(1, { error: HOST_EXPECTED })
            .max(253, { error: HOST_EXPECTED })
            .regex(/^[A-Za-z0-9.:[\]-]+$/, { error: HOST_EXPECTED })
            .toLowerCase(),
          { error: 'a list of host names' },
        )
        .default([]),
      /** Allow plain `http:` URLs. Off by default; loopback tests turn it on. */
      allowHttp: bool().default(false),
    },
    { error: 'a mapping' },
  )
  .prefault({});

/** The parsed `outbound` section. */
export type OutboundConfig = z.output<typeof OutboundConfigSchema>;

/**
 * JWS algorithms an operator may allow for user tokens: asymmetric only. `none` and the HMAC family are never
 * accepted, since a verifier holding only public keys must never verify a MAC (RFC 8725 §3.1, §3.2).
 */
export const USER_TOKEN_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;

/** Algorithms allowed when an issuer does not list its own. */
export const DEFAULT_USER_TOKEN_ALGORITHMS = ['RS256', 'ES256', 'EdDSA', 'PS256'] as const;

/** Accepted JOSE `typ` values when an issuer does not list its own. @see RFC 9068 §2.1 */
export const DEFAULT_USER_TOKEN_TYPES = ['at+jwt', 'application/at+jwt'] as const;

const ALG_EXPECTED = `a non-empty list of algorithms, each one of: ${USER_TOKEN_ALGORITHMS.join(', ')}`;
const AUD_EXPECTED = 'a non-empty list of audiences (the resource identifiers Mandate accepts tokens for)';
const TYP_EXPECTED = 'a non-empty list of JOSE typ values (e.g. at+jwt)';
const CLAIM_EXPECTED = 'a claim name';

/**
 * One trusted OIDC issuer of user tokens. Keys come from exactly one of: `discovery: true`
 * (`${issuer}/.well-known/openid-configuration`, whose `issuer` must equal this one exactly, then its `jwks_uri`),
 * `jwksUri`, or `jwksFile` (a static JWKS read at start).
 */
export const OidcIssuerSchema = z
  .strictObject(
    {
      /** The issuer identifier; a token's `iss` must equal it exactly. */
      issuer: httpUrl(),
      /** Fetch the issuer's OpenID Provider metadata to find `jwks_uri`. */
      discovery: bool().optional(),
      /** The issuer's JWKS URL. */
      jwksUri: httpUrl().optional(),
      /** A static JWKS file (public keys only). */
      jwksFile: z.string({ error: PATH_EXPECTED }).min(1, { error: PATH_EXPECTED }).max(4096, { error: PATH_EXPECTED }).optional(),
      /** Accepted audiences; a token's `aud` must contain one of them. */
      audiences: z.array(z.string({ error: AUD_EXPECTED }).min(1, { error: AUD_EXPECTED }), { error: AUD_EXPECTED }).min(1, { error: AUD_EXPECTED }),
      /** Algorithm allowlist; the token header's `alg` must be one of these. */
      algorithms: z
        .array(z.enum(USER_TOKEN_ALGORITHMS, { error: ALG_EXPECTED }), { error: ALG_EXPECTED })
        .min(1, { error: ALG_EXPECTED })
        .default([...DEFAULT_USER_TOKEN_ALGORITHMS]),
      /**
       * Accepted JOSE `typ` header values (compared case-insensitively, `application/` optional, RFC 7515 §4.1.9).
       * Add `JWT` only for an IdP that does not issue RFC 9068 tokens; ID tokens stay refused by their claims.
       */
      tokenTypes: z
        .array(
          z
            .string({ error: TYP_EXPECTED })
            .min(1, { error: TYP_EXPECTED })
            .refine((t) => !/^(application\/)?(dpop|secevent|logout|jwt-bearer-assertion)\+jwt$/i.test(t), {
              error: 'a typ that is not a DPoP proof, SET, logout token or assertion',
            }),
          { error: TYP_EXPECTED },
        )
        .min(1, { error: TYP_EXPECTED })
        .default([...DEFAULT_USER_TOKEN_TYPES]),
      /** Tolerated clock difference for `exp`, `nbf` and `iat`, in seconds. */
      clockSkewSeconds: int(0, 300).default(60),
      /** The claim holding the user's Mandate roles (an array of strings, or a space-separated string). */
      rolesClaim: z.string({ error: CLAIM_EXPECTED }).min(1, { error: CLAIM_EXPECTED }).max(256, { error: CLAIM_EXPECTED }).default('roles'),
      /** Refuse tokens issued (`iat`) longer ago than this; unset means only `exp` bounds a token's life. */
      maxTokenAgeSeconds: int(1, 7 * 24 * 3600).optional(),
    },
    { error: 'a mapping' },
  )
  .refine((c) => [c.discovery === true, c.jwksUri !== undefined, c.jwksFile !== undefined].filter(Boolean).length === 1, {
    error: 'exactly one of discovery: true, jwksUri or jwksFile',
  });

/** One parsed trusted issuer. */
export type OidcIssuerConfig = z.output<typeof OidcIssuerSchema>;

/** Input form of {@link OidcIssuerConfig} (defaults optional). */
export type OidcIssuerInput = z.input<typeof OidcIssuerSchema>;

/**
 * The `signals` configuration section: Shared Signals (OpenID SSF 1.0 / CAEP 1.0) as a receiver of SETs pushed by
 * configured transmitters (RFC 8935), and as a transmitter that lets downstream systems subscribe to Mandate's own
 * revocations. Defined once as a zod schema (STYLE.md #11); each leaf's error message is the "expected …" text
 * shown to the operator, in the style of src/config/config-schema.ts.
 *
 * @see https://openid.net/specs/openid-sharedsignals-framework-1_0.html
 */
import { z } from 'zod';

const int = (min: number, max: number) => {
  const expected = `an integer ${min}..${max}`;
  return z.int({ error: expected }).min(min, { error: expected }).max(max, { error: expected });
};
const bool = () => z.boolean({ error: 'true or false' });

const URL_EXPECTED = 'an absolute http(s) URL without credentials, query or fragment';
const httpUrl = () =>
  z.string({ error: URL_EXPECTED }).max(2048, { error: URL_EXPECTED }).refine(
    (s) => {
      if (!URL.canParse(s)) return false;
      const u = new URL(s);
      return (u.protocol === 'https:' || u.protocol === 'http:') && u.username === '' && u.password === '' && u.hash === '' && u.search === '';
    },
    { error: URL_EXPECTED },
  );

const ID_EXPECTED = 'an identifier of letters, digits, "-" and "_" (at most 64), used in the push endpoint path';
const HASH_EXPECTED = 'sha256:<64 hex digits> of the secret (see `mandate` credential hashing)';
const AUD_EXPECTED = 'a non-empty string or list of strings';

/**
 * JWS algorithms a transmitter's SETs may use: asymmetric only. `none` and the HMAC family are never accepted, since
 * a receiver holding only the transmitter's public keys must never verify a MAC (RFC 8725 §3.1, §3.2).
 */
export const SET_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

/** Algorithms accepted when a transmitter's entry lists none. */
export const DEFAULT_SET_ALGORITHMS = ['RS256', 'ES256', 'EdDSA', 'PS256'] as const;

const ALG_EXPECTED = `a non-empty list of algorithms, each one of: ${SET_ALGORITHMS.join(', ')}`;

const audience = () =>
  z.union([z.string().min(1).max(2048), z.array(z.string().min(1).max(2048)).min(1).max(16)], { error: AUD_EXPECTED }).transform((a) => (Array.isArray(a) ? a : [a]));

/**
 * One upstream transmitter whose SETs Mandate accepts (an IdP, an XDR, another Mandate). SETs are pushed to
 * `POST /ssf/events/<id>`; the SET's signature, checked against `jwksUri`, is what authenticates the transmitter.
 */
export const SsfTransmitterSchema = z.strictObject(
  {
    /** Names the transmitter in the push endpoint path (`/ssf/events/<id>`), in logs and in audit events. */
    id: z.string({ error: ID_EXPECTED }).regex(/^[A-Za-z0-9_-]{1,64}$/, { error: ID_EXPECTED }),
    /** The transmitter's issuer identifier; a SET's `iss` must equal it exactly (SSF 1.0 §"The iss Claim"). */
    issuer: httpUrl(),
    /** The transmitter's JWKS (`jwks_uri` of its `/.well-known/ssf-configuration`), fetched through the guarded fetch. */
    jwksUri: httpUrl(),
    /** What Mandate is called in this transmitter's SETs: `aud` must contain one of these (the stream's `aud`). */
    audience: audience(),
    /** JWS algorithms accepted from this transmitter. */
    algorithms: z
      .array(z.enum(SET_ALGORITHMS, { error: ALG_EXPECTED }), { error: ALG_EXPECTED })
      .min(1, { error: ALG_EXPECTED })
      .default([...DEFAULT_SET_ALGORITHMS]),
    /**
     * Optional second factor for the push: `sha256:<hex>` of the `Authorization` header value the transmitter was
     * given as the stream's `authorization_header` (SSF 1.0 §"Push Delivery using HTTP"). When set, a push without
     * the matching header is refused (`authentication_failed`) before the SET is parsed.
     */
    authorizationHash: z.string({ error: HASH_EXPECTED }).regex(/^sha256:[0-9a-fA-F]{64}$/, { error: HASH_EXPECTED }).optional(),
    /** The stream id at the transmitter, when known: verification and stream-updated events must name it. */
    streamId: z.string().min(1).max(256).optional(),
    /**
     * The OIDC issuer (as configured in `oidc`) whose users this transmitter's `email` and `opaque` subjects name.
     * `iss_sub` subjects carry their own issuer and need nothing here.
     */
    userIssuer: httpUrl().optional(),
    /** Map `email` subjects to the user whose `sub` at `userIssuer` is that email address (only if the IdP uses emails as `sub`). */
    emailIsSubject: bool().default(false),
    /** Map simple `opaque` subjects to the user whose `sub` at `userIssuer` is that id. */
    opaqueIsSubject: bool().default(false),
  },
  { error: 'a mapping' },
);
/** One configured upstream transmitter (parsed). */
export type SsfTransmitterConfig = z.output<typeof SsfTransmitterSchema>;

/** The receiver side: SETs pushed to Mandate. */
export const SsfReceiverSchema = z
  .strictObject(
    {
      /** Mount the push endpoints. Off by default. */
      enabled: bool().default(false),
      /** Largest SET accepted, in bytes (the request body limit of the push endpoint). */
      maxSetBytes: int(1024, 1024 * 1024).default(64 * 1024),
      /**
       * Oldest `iat` accepted, in seconds. SSF SETs carry no `exp`; this bounds how long a captured SET could be
       * replayed, and how long its `jti` is remembered.
       */
      maxSetAgeSeconds: int(60, 7 * 86_400).default(3600),
      /** Clock skew tolerated on `iat` (and `exp`, if a transmitter sends one), in seconds. */
      clockToleranceSeconds: int(0, 600).default(60),
      transmitters: z
        .array(SsfTransmitterSchema, { error: 'a list of transmitters' })
        .max(64)
        .default([])
        .refine((list) => new Set(list.map((t) => t.id)).size === list.length, { error: 'each transmitter id at most once' }),
    },
    { error: 'a mapping' },
  )
  .prefault({});

/** The transmitter side: Mandate's own SETs, pushed to subscribed receivers. */
export const SsfTransmitterSideSchema = z
  .strictObject(
    {
      /** Publish `/.well-known/ssf-configuration` and the stream management API. Off by default. */
      enabled: bool().default(false),
      /** Streams one API caller may hold; a further create is answered 409 (SSF 1.0 §"Creating a Stream"). */
      maxStreamsPerClient: int(1, 100).default(5),
      /** Least time between two verification requests on one stream (`min_verification_interval`), in seconds. */
      minVerificationIntervalSeconds: int(0, 86_400).default(30),
      /**
       * `aud` of the streams an API caller creates, by its client id; a caller not listed gets its own client id.
       * `aud` is Transmitter-Supplied and cannot be changed by the receiver (SSF 1.0 §"Stream Configuration").
       */
      audiences: z.record(z.string().min(1).max(256), audience(), { error: 'a mapping of client id to audience' }).default({}),
      /** Delivery: attempts per SET per stream (the first included), backoff between them, queue bound. */
      delivery: z
        .strictObject(
          {
            maxAttempts: int(1, 20).default(6),
            initialBackoffMs: int(1, 600_000).default(1000),
            maxBackoffMs: int(1, 3_600_000).default(300_000),
            /** Deliveries waiting (all streams); beyond it new ones are dropped, counted and audited. */
            maxQueued: int(1, 1_000_000).default(10_000),
            /** Deliveries in flight at once. */
            concurrency: int(1, 64).default(4),
          },
          { error: 'a mapping' },
        )
        .prefault({}),
    },
    { error: 'a mapping' },
  )
  .prefault({});

/**
 * The `signals` section.
 *
 * @example
 * signals:
 *   receiver:
 *     enabled: true
 *     transmitters:
 *       - id: okta
 *         issuer: https://example.okta.com
 *         jwksUri: https://example.okta.com/oauth2/v1/keys
 *         audience: https://mandate.example.com
 *         userIssuer: https://example.okta.com
 *   transmitter:
 *     enabled: true
 */
export const SignalsConfigSchema = z
  .strictObject(
    {
      receiver: SsfReceiverSchema,
      transmitter: SsfTransmitterSideSchema,
    },
    { error: 'a mapping' },
  )
  .prefault({});

/** The parsed `signals` section. */
export type SignalsConfig = z.output<typeof SignalsConfigSchema>;
/** The parsed receiver side. */
export type SsfReceiverConfig = SignalsConfig['receiver'];
/** The parsed transmitter side. */
export type SsfTransmitterSideConfig = SignalsConfig['transmitter'];

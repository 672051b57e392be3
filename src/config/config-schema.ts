/**
 * The schema of `mandate.yaml`, with every default. An empty file, or no file at all, is a valid configuration.
 * Every mapping is strict: an unknown key is an error, never ignored, so a typo cannot silently fall back to a
 * default. Each leaf's error message is the "expected …" text shown to the operator.
 *
 * Environment overrides (they win over the file; an empty value counts as unset; relative paths given in the
 * environment resolve against the working directory, those in the file against the file's directory):
 *
 * | variable                          | key                    | format                                  |
 * | --------------------------------- | ---------------------- | --------------------------------------- |
 * | MANDATE_CONFIG                    | (the file itself)      | path of mandate.yaml                    |
 * | MANDATE_HOST                      | server.host            | host name or IP address                 |
 * | MANDATE_PORT                      | server.port            | integer 1..65535                        |
 * | MANDATE_DATA_DIR                  | store.dataDir          | directory path                          |
 * | MANDATE_POLICY_DIR                | policy.dir             | directory path                          |
 * | MANDATE_POLICY_ENGINE             | policy.engine          | compiled | reference                    |
 * | MANDATE_LOG_LEVEL                 | log.level              | fatal, error, warn, info, debug, trace, silent |
 * | MANDATE_AUTHZEN_CREDENTIAL_HASHES | authzen.credentials    | comma-separated `id=sha256:<64 hex>`; replaces the file's list |
 *
 * docs/CONFIGURATION.md documents every key; keep the two in step.
 */
import { z } from 'zod';
import { MANDATE_API_SCOPES, PrincipalRegistrationSchema } from '../identity/registry.ts';
import { OidcIssuerSchema, OutboundConfigSchema } from '../identity/identity-config.ts';
import { ResourcesSchema } from '../tokens/resources.ts';
import { ClientAuthConfigSchema, DpopConfigSchema, SpiffeConfigSchema } from '../identity/workload-config.ts';
import { SignalsConfigSchema } from '../signals/signals-config.ts';
import { GatewayConfigSchema } from '../gateway/gateway-config.ts';

const int = (min: number, max: number) => {
  const expected = `an integer ${min}..${max}`;
  return z.int({ error: expected }).min(min, { error: expected }).max(max, { error: expected });
};
const bool = () => z.boolean({ error: 'true or false' });
// Every key of a section has a default, so `{}` is valid input; TypeScript cannot see that through the generic.
const section = <T extends z.ZodRawShape>(shape: T) =>
  z.strictObject(shape, { error: 'a mapping' }).prefault({} as z.input<z.ZodObject<T, z.core.$strict>>);

const PATH_EXPECTED = 'a non-empty path';
const path = () =>
  z
    .string({ error: PATH_EXPECTED })
    .min(1, { error: PATH_EXPECTED })
    .max(4096, { error: PATH_EXPECTED })
    .refine((s) => !s.includes('\0'), { error: PATH_EXPECTED });

const HOST_EXPECTED = 'a host name or IP address (e.g. 127.0.0.1, ::, localhost)';
const FILE_EXPECTED = 'a plain file name without directories (e.g. mandate.db)';
const ID_EXPECTED = 'an id of 1..128 letters, digits or . _ : @ - starting with a letter or digit';
const HASH_EXPECTED = 'sha256:<64 hex digits>';

/** Log levels, as pino names them. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Store drivers this build knows (`postgres` comes later). */
export const STORE_DRIVERS = ['sqlite'] as const;

/**
 * Which engine decides: `compiled` (Cedar policies compiled to JavaScript, proven equal to the reference by
 * differential testing; a set using anything the compiler does not support falls back to `reference` as a
 * whole) or `reference` (cedar-wasm for every decision).
 */
export const POLICY_ENGINES = ['compiled', 'reference'] as const;

/**
 * What a credential may call: `evaluate` the AuthZEN decision API, `policy:read` / `policy:reload` the policy
 * admin API (src/server/admin-routes.ts), `principals:read` / `principals:write` the principal registry API
 * (src/server/principal-routes.ts).
 */
export const CREDENTIAL_SCOPES = MANDATE_API_SCOPES;
const SCOPES_EXPECTED = `a list of scopes, each one of: ${CREDENTIAL_SCOPES.join(', ')}`;

/** A hashed pre-shared API credential for AuthZEN callers (interim, until service principals exist). */
export const CredentialHashSchema = z.strictObject(
  {
    /** The caller's id: it appears in logs and audit events as the actor. */
    id: z
      .string({ error: ID_EXPECTED })
      .regex(/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/, { error: ID_EXPECTED }),
    /** `sha256:` and the hex SHA-256 of the secret; the secret itself is never configured. */
    hash: z
      .string({ error: HASH_EXPECTED })
      .regex(/^sha256:[0-9a-fA-F]{64}$/, { error: HASH_EXPECTED })
      .toLowerCase(),
    /**
     * What this credential may call. Absent means `[evaluate]` (applied by the server, so that the parsed
     * form of an entry without scopes stays `{ id, hash }`). Give each caller only what it needs.
     */
    scopes: z
      .array(z.enum(CREDENTIAL_SCOPES, { error: SCOPES_EXPECTED }), { error: SCOPES_EXPECTED })
      .max(CREDENTIAL_SCOPES.length, { error: SCOPES_EXPECTED })
      .optional(),
  },
  { error: 'a mapping with id, hash and optional scopes' },
);

/** The whole configuration, with defaults. */
export const MandateConfigSchema = z.strictObject(
  {
    server: section({
      host: z
        .string({ error: HOST_EXPECTED })
        .regex(/^[A-Za-z0-9._:%-]{1,253}$/, { error: HOST_EXPECTED })
        .default('127.0.0.1'),
      port: int(1, 65535).default(8080),
      bodyLimitBytes: int(1, 64 * 1024 * 1024).default(65536),
      maxJsonDepth: int(1, 256).default(32),
      maxHeaderSizeBytes: int(1024, 1024 * 1024).default(16384),
      requestTimeoutMs: int(100, 600_000).default(10_000),
      headersTimeoutMs: int(100, 600_000).default(5000),
      keepAliveTimeoutMs: int(100, 600_000).default(5000),
      trustProxy: bool().default(false),
      /**
       * Serve HTTPS. With `clientCertificates: request`, clients may present an X.509-SVID, verified against the
       * SPIFFE trust bundles (never against a system CA store) to authenticate at the OAuth endpoints (mTLS).
       */
      tls: z
        .strictObject(
          {
            certFile: path(),
            keyFile: path(),
            clientCertificates: z.enum(['off', 'request'], { error: 'off or request' }).default('off'),
          },
          { error: 'a mapping with certFile, keyFile and optional clientCertificates' },
        )
        .optional(),
    }),
    store: section({
      driver: z.enum(STORE_DRIVERS, { error: `one of: ${STORE_DRIVERS.join(', ')}` }).default('sqlite'),
      dataDir: path().default('./data'),
      sqlite: section({
        file: z
          .string({ error: FILE_EXPECTED })
          .regex(/^[^/\\\0]{1,255}$/, { error: FILE_EXPECTED })
          .refine((s) => s !== '.' && s !== '..', { error: FILE_EXPECTED })
          .default('mandate.db'),
      }),
    }),
    policy: section({
      dir: path().default('./policies'),
      watch: bool().default(true),
      engine: z.enum(POLICY_ENGINES, { error: `one of: ${POLICY_ENGINES.join(', ')}` }).default('compiled'),
    }),
    authzen: section({
      credentials: z.array(CredentialHashSchema, { error: 'a list of { id, hash } mappings' }).max(1000, {
        error: 'at most 1000 credentials',
      }).default([]),
    }),
    /**
     * Registered agents and services declared in the file (more can be registered through the admin API).
     * The file is authoritative for what it declares; a principal removed from it is retired, never deleted.
     */
    /** Who Mandate trusts to say who users are, and how it fetches their keys. */
    identity: section({
      /** Trusted OIDC issuers of users' tokens. */
      issuers: z.array(OidcIssuerSchema, { error: 'a list of OIDC issuers' }).max(32, { error: 'at most 32 issuers' }).default([]),
      /** Limits of every outbound fetch (discovery, JWKS, jwks_uri, bundles). */
      outbound: OutboundConfigSchema,
    }),
    /** The token service (RFC 8693 mandates); on when `resources` lists at least one resource. */
    tokens: section({
      /** The issuer identifier (Mandate's public base URL); default: the URL the node listens on. */
      issuer: z.url({ protocol: /^https?$/, error: 'an http(s) URL' }).max(2048).optional(),
      /** Default mandate lifetime, seconds. */
      lifetimeSeconds: int(10, 3600).default(300),
      /** Hard cap on any mandate's lifetime, seconds. */
      maxLifetimeSeconds: int(10, 3600).default(900),
      /** Most actors in a delegation chain. */
      maxDelegationDepth: int(1, 8).default(4),
      /** Algorithm of newly generated signing keys. */
      signingAlgorithm: z.enum(['EdDSA', 'ES256'], { error: 'EdDSA or ES256' }).default('EdDSA'),
      /** File holding the key-encryption key (base64url of 32 bytes, mode 0600); or set MANDATE_KEK. */
      kekFile: path().optional(),
    }).refine((t) => t.lifetimeSeconds <= t.maxLifetimeSeconds, { error: 'tokens.lifetimeSeconds must not exceed tokens.maxLifetimeSeconds' }),
    /** SPIFFE trust domains whose SVIDs authenticate workloads (JWT-SVID assertions, X.509-SVIDs over mTLS). */
    spiffe: SpiffeConfigSchema,
    /** DPoP proof verification (RFC 9449) and server nonces. */
    dpop: DpopConfigSchema,
    /** How agents and services authenticate as OAuth clients. */
    clientAuth: ClientAuthConfigSchema,
    /** Shared Signals (SSF 1.0 / CAEP 1.0): SETs received from IdPs, Mandate's own revocations sent to receivers. */
    signals: SignalsConfigSchema,
    /** The enforcement gateway: upstream MCP servers fronted at /mcp/<id>. */
    gateway: GatewayConfigSchema,
    /** Resources (RFC 8707) mandates are issued for, and the Cedar meaning of their scopes. */
    resources: ResourcesSchema,
    principals: z.array(PrincipalRegistrationSchema, { error: 'a list of principal registrations' }).max(10_000, { error: 'at most 10000 principals' }).default([]),
    audit: section({
      maxDelayMs: int(0, 1000).default(0),
      maxBatch: int(1, 100_000).default(256),
      maxPending: int(1, 10_000_000).default(10_000),
    }),
    rateLimit: section({
      decisionsPerSecondPerClient: int(1, 1_000_000).default(1000),
      burst: int(1, 10_000_000).default(2000),
    }),
    log: section({
      level: z.enum(LOG_LEVELS, { error: `one of: ${LOG_LEVELS.join(', ')}` }).default('info'),
    }),
  },
  { error: 'a mapping' },
);

/**
 * The validated configuration. Paths (`store.dataDir`, `policy.dir`) are absolute once loaded by
 * `loadConfig` / `parseConfig`; `store.sqlite.file` is a file name inside `store.dataDir`.
 */
export type MandateConfig = z.output<typeof MandateConfigSchema>;

/** One hashed AuthZEN credential. */
export type CredentialHash = z.output<typeof CredentialHashSchema>;

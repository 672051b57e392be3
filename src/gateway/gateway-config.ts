/**
 * The `gateway` configuration section: the upstream MCP servers Mandate fronts at `/mcp/<id>`, what each of their
 * tools means in Cedar terms, and how the gateway authenticates to them (never with the caller's token).
 *
 * ```yaml
 * gateway:
 *   allowedOrigins: [https://agents.example.com]
 *   upstreams:
 *     - id: crm
 *       url: http://crm.internal:9000/mcp
 *       resource: https://mandate.example.com/mcp/crm   # also a resources[].uri: agents get mandates for it
 *       credential: { type: token_exchange, audience: https://crm.internal }
 *       tools:
 *         search: { action: call, resource: { type: Tool, id: crm.search } }
 *     - id: files                                        # a local MCP server, launched and supervised by Mandate
 *       stdio: { command: npx, args: [-y, "@modelcontextprotocol/server-filesystem", /srv/shared] }
 *       resource: https://mandate.example.com/mcp/files
 * ```
 */
import { z } from 'zod';
import { HttpRouteRuleV1, HttpToolsConfigV1 } from './http-routes.ts';

const ID = /^[A-Za-z0-9._-]{1,64}$/;
const NAME = /^[A-Za-z0-9_.-]{1,128}$/;
const EntityRef = z.strictObject({ type: z.string().min(1).max(256), id: z.string().min(1).max(1024) });
const Entry = z.strictObject({
  action: z.string().min(1).max(128),
  resource: EntityRef,
  pinnedHash: z.string().regex(/^sha256:[0-9a-f]{64}$/, { error: 'sha256:<64 hex digits>' }).optional(),
});
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const httpUrl = () => z.url({ protocol: /^https?$/, error: 'an http(s) URL' }).max(2048);

/**
 * A local MCP server Mandate launches as a child process and talks to over stdio (src/gateway/stdio-upstream.ts).
 * The child's environment is `env` alone, plus the MCP SDK's short list of harmless variables (HOME, LOGNAME,
 * PATH, SHELL, TERM, USER): nothing of Mandate's own environment (its keys, its secrets) is passed on.
 */
export const GatewayStdioSchema = z.strictObject({
  command: z.string().min(1).max(4096),
  args: z.array(z.string().max(8192)).max(256).default([]),
  /** Variables for the child: a value, or `{ fromEnv: NAME }` to pass one of Mandate's variables (never a `MANDATE_*` one). */
  env: z
    .record(
      z.string().regex(ENV_NAME, { error: 'an environment variable name' }),
      z.union([z.string().max(32768), z.strictObject({ fromEnv: z.string().regex(ENV_NAME).refine((n) => !n.toUpperCase().startsWith('MANDATE_'), { error: "Mandate's own MANDATE_* variables are never passed to an upstream" }) })]),
    )
    .default({}),
  /** Working directory of the child (relative paths resolve against Mandate's). */
  cwd: z.string().min(1).max(4096).optional(),
});

/** One upstream MCP server: remote (`url`) or local (`stdio`), exactly one of them. */
export const GatewayUpstreamSchema = z
  .strictObject({
    id: z.string().regex(ID, { error: 'letters, digits, ".", "_", "-" (1..64)' }),
    /** The upstream's Streamable HTTP endpoint. */
    url: httpUrl().optional(),
    /** A local MCP server to launch and supervise; the gateway reaches it through a private loopback endpoint. */
    stdio: GatewayStdioSchema.optional(),
    /** The gateway resource URI: the `aud` of mandates for this upstream; it must also be a `resources[].uri`. */
    resource: z.url({ error: 'an absolute URI' }).max(2048),
    /**
     * How the gateway authenticates upstream. `token_exchange`: Mandate mints a short-lived token for `audience`
     * (sub = the user, act = the agent chain extended with the gateway). `none`: the upstream has no notion of a
     * user and is reached with no credential (reported as such). `vault`: the credential the user connected for
     * this upstream (`PUT /vault/v1/credentials/<id>`), refreshed at `tokenEndpoint` (src/gateway/vault.ts).
     */
    credential: z
      .discriminatedUnion('type', [
        z.strictObject({ type: z.literal('token_exchange'), audience: z.string().min(1).max(2048) }),
        z.strictObject({ type: z.literal('none') }),
        z.strictObject({
          type: z.literal('vault'),
          /** The OAuth token endpoint for the `refresh_token` grant (RFC 6749 §6); absent: expired credentials are not refreshed. */
          tokenEndpoint: httpUrl().optional(),
          /** The client id Mandate refreshes as. */
          clientId: z.string().min(1).max(256).optional(),
          /** The environment variable holding the client secret (HTTP Basic client authentication, RFC 6749 §2.3.1). */
          clientSecretEnv: z.string().regex(ENV_NAME, { error: 'an environment variable name' }).optional(),
        }),
      ])
      .default({ type: 'none' }),
    tools: z.record(z.string().regex(NAME), Entry).default({}),
    resources: z.record(z.string().min(1).max(2048), Entry).default({}),
    prompts: z.record(z.string().regex(NAME), Entry).default({}),
    /** Methods forwarded without a decision (e.g. `completion/complete`). */
    allowedMethods: z.array(z.string().min(1).max(128)).max(64).default([]),
    /** `enforce`: tools are callable only when their definition matches `pinnedHash`. */
    pinning: z.enum(['off', 'enforce']).default('off'),
    /** Highest sensitivity (0..3) readable in results of calls made outside a task. */
    sensitivityCeiling: z.int().min(0).max(3).default(0),
  })
  .refine((u) => (u.url === undefined) !== (u.stdio === undefined), { error: 'an upstream has exactly one of url (remote) or stdio (local)' });

/** The `gateway` section. */
export const GatewayConfigSchema = z
  .strictObject({
    /** Browser origins allowed besides the resource's own (MCP clients in a browser). */
    allowedOrigins: z.array(z.url()).max(64).default([]),
    upstreams: z
      .array(GatewayUpstreamSchema)
      .max(256)
      .default([])
      .refine((list) => new Set(list.map((u) => u.id)).size === list.length, { error: 'each upstream id at most once' }),
    /** REST tools behind `/http/<tool>/<path>` (method + path mapped to Cedar actions and resources). */
    http: HttpToolsConfigV1.default({}),
    /** Envoy `ext_authz` HTTP checks at `/ext_authz/...` for one service behind Envoy. */
    extAuthz: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** The protected resource (mandate `aud`) of the service behind Envoy. */
        resource: z.url().optional(),
        rules: z.array(HttpRouteRuleV1).max(1000).default([]),
      })
      .refine((e) => !e.enabled || (e.resource !== undefined && e.rules.length > 0), { error: 'an enabled extAuthz needs resource and at least one rule' })
      .prefault({}),
    results: z
      .strictObject({
        onSensitive: z.enum(['remove', 'refuse']).default('remove'),
        maxBytes: z.int().min(1024).max(64 * 1024 * 1024).default(4 * 1024 * 1024),
      })
      .prefault({}),
  })
  .prefault({});

/** The parsed `gateway` section. */
export type GatewayConfig = z.output<typeof GatewayConfigSchema>;
/** One parsed upstream. */
export type GatewayUpstream = GatewayConfig['upstreams'][number];
/** The parsed `stdio` of a local upstream. */
export type GatewayStdio = z.output<typeof GatewayStdioSchema>;

/**
 * DEMO ONLY — `demo.json`: what a running demo tells its client script (URLs, ids and the paths of the demo
 * agents' key files; never a secret itself). Written under the demo's data directory when the demo is up.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/** The file name under the demo's data directory. */
export const DEMO_INFO_FILE = 'demo.json';

/** The demo's description of itself, version 1. */
export const DemoInfoV1Schema = z.strictObject({
  version: z.literal(1),
  /** The demo process, so a reader can tell a stale file from a live demo. */
  pid: z.int(),
  startedAt: z.string(),
  mandate: z.strictObject({
    /** Where the node listens. */
    url: z.string(),
    /** Mandate's issuer identifier (its RFC 8414 metadata lives under it). */
    issuer: z.string(),
  }),
  idp: z.strictObject({
    issuer: z.string(),
    /** The public client that logs users in (authorization code + PKCE). */
    clientId: z.string(),
    /** The resource indicator users' access tokens are issued for (Mandate's token exchange accepts it). */
    userTokenAudience: z.string(),
    userTokenScope: z.string(),
    /** Open in a browser to log in and see your access token. */
    browserLoginUrl: z.string(),
    users: z.array(z.string()),
  }),
  resources: z.array(z.strictObject({ uri: z.string(), name: z.string().optional(), scopes: z.array(z.string()) })),
  agents: z.array(
    z.strictObject({
      id: z.string(),
      name: z.string(),
      owner: z.string(),
      mode: z.string(),
      /** Path of the agent's private JWK (mode 0600). */
      privateJwkFile: z.string(),
    }),
  ),
  /** The gateway in front of the demo MCP server (`npm run demo:agent`). */
  gateway: z
    .strictObject({
      /** Where agents' MCP clients connect: Mandate's `/mcp/crm`. */
      url: z.string(),
      /** The resource (RFC 8707) agents ask mandates for; the gateway accepts only those. */
      resource: z.string(),
      /** The demo MCP server itself, which accepts only tokens Mandate minted for it. */
      upstream: z.string(),
      /** The tools the gateway knows (the server has more). */
      tools: z.array(z.string()),
      /** Demo users with the `approver` role. */
      approvers: z.array(z.string()),
    })
    .optional(),
});

/** A parsed `demo.json`. */
export type DemoInfoV1 = z.output<typeof DemoInfoV1Schema>;

/** Writes `demo.json` under `dataDir` (atomically: a reader never sees half a file). */
export async function writeDemoInfo(dataDir: string, info: DemoInfoV1): Promise<string> {
  const path = join(dataDir, DEMO_INFO_FILE);
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(DemoInfoV1Schema.parse(info), null, 2)}\n`, { mode: 0o600 });
  await rename(temp, path);
  return path;
}

/**
 * Reads `demo.json` from `dataDir`.
 * @throws Error saying to start the demo when the file is missing or not a demo description.
 */
export async function readDemoInfo(dataDir: string): Promise<DemoInfoV1> {
  const path = join(dataDir, DEMO_INFO_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`no ${path}: start the demo first (npm start), then run this in another terminal`, { cause: error });
    throw error;
  }
  const parsed = DemoInfoV1Schema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${path} is not a demo description this version understands; restart the demo (npm start)`);
  return parsed.data;
}

/**
 * Mandate's SDK for agent developers (`mandate/sdk`): open a task for a user, get its mandates (renewed before
 * they expire, never after the task ended), call resources with them (`task.fetch`, DPoP proofs included), hand
 * them to MCP clients (`task.mcpAuthProvider()`), and end the task. See docs/SDK.md.
 */
export { MandateClient } from './mandate-client.ts';
export type { MandateClientOptions, StartTaskOptions, AuthorizationServerMetadata, TokenResponseBody } from './mandate-client.ts';
export { Task } from './task.ts';
export type { HeldMandate, ResourceMap } from './task.ts';
export type { CryptoKeyPair } from './keys.ts';
export type { McpAuthProviderOptions } from './mcp-auth-provider.ts';
export { MandateOAuthError, MandateResponseError, TaskEndedError } from './errors.ts';

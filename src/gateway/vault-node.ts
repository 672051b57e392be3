/**
 * Builds the gateway vault for a node from its configuration: the `vault` upstreams, the guarded token request
 * under the node's outbound policy, and the KEK's seal / open. Nothing is built when no upstream uses the vault.
 */
import type { Clock } from '../core/ports.ts';
import type { OutboundPolicy } from '../identity/types.ts';
import type { VaultStore } from '../store/store.ts';
import type { GatewayConfig } from './gateway-config.ts';
import { createVault, type Vault, type VaultUpstreamConfig } from './vault.ts';
import { createTokenRequest } from './vault-token-request.ts';

/** What {@link startVault} needs from the node. */
export interface VaultNodeOptions {
  gateway: GatewayConfig;
  outbound: OutboundPolicy;
  store: VaultStore;
  seal(purpose: string, plaintext: string): Promise<string>;
  open(purpose: string, sealed: string): Promise<string>;
  env: Readonly<Record<string, string | undefined>>;
  clock: Clock;
}

/**
 * The vault of a node, or undefined when no upstream has `credential.type: vault`.
 * @throws ConfigInvalidError when a `clientSecretEnv` names an unset variable
 */
export function startVault(options: VaultNodeOptions): Vault | undefined {
  const upstreams = new Map<string, VaultUpstreamConfig>();
  for (const u of options.gateway.upstreams) {
    if (u.credential.type !== 'vault') continue;
    const c = u.credential;
    upstreams.set(u.id, { ...(c.tokenEndpoint === undefined ? {} : { tokenEndpoint: c.tokenEndpoint }), ...(c.clientId === undefined ? {} : { clientId: c.clientId }), ...(c.clientSecretEnv === undefined ? {} : { clientSecretEnv: c.clientSecretEnv }) });
  }
  if (upstreams.size === 0) return undefined;
  return createVault({ store: options.store, seal: options.seal, open: options.open, tokenRequest: createTokenRequest(options.outbound), upstreams, env: options.env, clock: options.clock });
}

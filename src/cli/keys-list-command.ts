/**
 * `mandate keys list`: the token signing keys in the store the configuration names — which one signs, which
 * are still published for verification and until when. Public facts only; the KEK is not needed.
 */
import { renderKeySummaries } from '../tokens/signing-keys.ts';
import { EXIT_OK, type CliCommand } from './command.ts';
import { cliKeyManager } from './keys-manager.ts';
import { CONFIG_OPTION, cliActor, loadCliConfig, withStore } from './store-context.ts';

/** The `keys list` command. */
export const keysListCommand: CliCommand = {
  summary: 'List the token signing keys (public facts only)',
  usage: '[--json] [--config FILE]',
  description: `Lists the signing keys of the store the configuration names, the signing key first, then newest first:
kid (RFC 7638 thumbprint), algorithm, state (active, retiring, retired), whether it is in the published JWKS,
when it became active and when a retiring key leaves the JWKS. Needs no key-encryption key: only public
parts are read. Like every node, it applies lifecycle steps that are due (a retiring key past its time
becomes retired), each with its audit event.`,
  positionals: [],
  options: {
    config: CONFIG_OPTION,
    json: { type: 'boolean', description: 'Print [{ kid, alg, state, signing, published, createdAt, activatedAt, retireAt? }] (times ISO 8601)' },
  },
  exitCodes: ['0  listed (also when there is none)', '1  the store is unavailable or a stored key is invalid', '2  usage error'],
  examples: ['mandate keys list', 'mandate keys list --json | jq -r ".[] | select(.signing) | .kid"'],
  async run(args, io) {
    const config = await loadCliConfig(args, io);
    const keys = await withStore(config, { mustExist: true }, (store) => cliKeyManager(config, store, cliActor(io.env)).list());
    if (args.values.json) {
      const iso = (ms: number) => new Date(ms).toISOString();
      const view = keys.map((k) => ({
        kid: k.kid,
        alg: k.alg,
        state: k.state,
        signing: k.signing,
        published: k.published,
        createdAt: iso(k.createdAt),
        activatedAt: iso(k.activatedAt),
        ...(k.retireAt === undefined ? {} : { retireAt: iso(k.retireAt) }),
      }));
      io.stdout(`${JSON.stringify(view, null, 2)}\n`);
    } else {
      io.stdout(renderKeySummaries(keys));
    }
    return EXIT_OK;
  },
};

/**
 * `mandate keys rotate`: makes a new signing key active now; the previous one keeps being published for the
 * overlap (the longest mandate lifetime plus tolerance), so that every mandate it signed verifies until it
 * expires. Needs the key-encryption key, and checks first that it is the one that sealed the store's keys.
 */
import { isMandateError } from '../core/errors.ts';
import { loadKek } from '../tokens/key-encryption.ts';
import { renderKeySummaries } from '../tokens/signing-keys.ts';
import { EXIT_FAILURE, EXIT_OK, type CliCommand } from './command.ts';
import { cliKeyManager } from './keys-manager.ts';
import { CONFIG_OPTION, cliActor, loadCliConfig, withStore } from './store-context.ts';

/** The `keys rotate` command. */
export const keysRotateCommand: CliCommand = {
  summary: 'Rotate the token signing key (the old one stays published for the overlap)',
  usage: '[--json] [--config FILE]',
  description: `Generates a new signing key (tokens.signingAlgorithm), seals its private part under the key-encryption
key and makes it the signing key; the previous key becomes retiring and stays in the JWKS until every
mandate it signed has expired (tokens.maxLifetimeSeconds plus tolerance and the nodes' 30 s refresh).
Running nodes sign with the new key within 30 s. Every change is audited (admin events keys.created / keys.retiring, actor cli:<user>).

Needs the key-encryption key (MANDATE_KEK or tokens.kekFile, as for the nodes). Before anything is written,
the current signing key is decrypted with it, so that a wrong KEK is refused (ERR_KEK_MISMATCH) rather than
sealing a key the nodes cannot read.`,
  positionals: [],
  options: {
    config: CONFIG_OPTION,
    json: { type: 'boolean', description: 'Print { newKid, retiringKid, retireAt? } as JSON' },
  },
  exitCodes: ['0  rotated', '1  no or wrong key-encryption key, the store is unavailable, or a stored key is invalid', '2  usage error'],
  examples: ['MANDATE_KEK=... mandate keys rotate --config /etc/mandate/mandate.yaml', 'mandate keys rotate && mandate keys list'],
  async run(args, io) {
    const config = await loadCliConfig(args, io);
    let kek;
    try {
      kek = await loadKek({ env: io.env, ...(config.tokens.kekFile === undefined ? {} : { kekFile: config.tokens.kekFile }) });
    } catch (err) {
      if (isMandateError(err)) {
        io.stderr(`mandate keys rotate: ${err.code}: rotation needs the key-encryption key to seal the new signing key: ${err.description}\n`);
        return EXIT_FAILURE;
      }
      throw err;
    }
    const actor = cliActor(io.env);
    const { rotated, keys } = await withStore(config, { mustExist: false }, async (store) => {
      const manager = cliKeyManager(config, store, actor, kek);
      const before = await manager.list();
      // Prove the KEK before writing: a key sealed under another KEK would stop every node from signing.
      if (before.some((k) => k.signing)) await manager.signer();
      const result = await manager.rotate({ by: actor });
      return { rotated: result, keys: await manager.list() };
    });
    const retiring = keys.find((k) => k.kid === rotated.retiringKid);
    if (args.values.json) {
      const retireAt = retiring?.retireAt === undefined ? {} : { retireAt: new Date(retiring.retireAt).toISOString() };
      io.stdout(`${JSON.stringify({ newKid: rotated.newKid, retiringKid: rotated.retiringKid ?? null, ...retireAt }, null, 2)}\n`);
      return EXIT_OK;
    }
    const signing = keys.find((k) => k.kid === rotated.newKid);
    io.stdout(`rotated: ${rotated.newKid} (${signing?.alg ?? config.tokens.signingAlgorithm}) signs new mandates; running nodes switch within 30 s\n`);
    if (retiring !== undefined) {
      const until = retiring.retireAt === undefined ? 'for the overlap' : `until ${new Date(retiring.retireAt).toISOString()}`;
      io.stdout(`${retiring.kid} is retiring: still published ${until}, so that the mandates it signed verify until they expire\n`);
    } else {
      io.stdout('there was no signing key before: this is the first one\n');
    }
    io.stdout(`audited as ${actor}\n\n`);
    io.stdout(renderKeySummaries(keys));
    return EXIT_OK;
  },
};

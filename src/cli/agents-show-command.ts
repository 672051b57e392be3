/**
 * `mandate agents show <id>`: every field of one registered principal, credentials included (as thumbprints;
 * in full, public keys only, with `--json`).
 */
import { NotFoundError } from '../core/errors.ts';
import { principalView } from '../server/principal-routes.ts';
import { renderPrincipal } from './agents-registration.ts';
import { principalIdArgument } from './agents-status-command.ts';
import { EXIT_OK, type CliCommand } from './command.ts';
import { CONFIG_OPTION, loadCliConfig, withStore } from './store-context.ts';

/** The `agents show` command. */
export const agentsShowCommand: CliCommand = {
  summary: 'Show one agent or service, credentials included',
  usage: '<id> [--json] [--config FILE]',
  description: `Prints every field of a registered principal: kind, name, owner, mode, status, DPoP policy, source,
workflows, audiences, times, and its credentials — SPIFFE IDs, jwks_uri URLs, and public keys by type, alg,
kid and RFC 7638 SHA-256 thumbprint. --json prints the record as GET /admin/v1/principals/<id> does, with the
public JWKs in full.`,
  positionals: [{ name: 'id', description: 'the principal id (its client_id)' }],
  options: {
    config: CONFIG_OPTION,
    json: { type: 'boolean', description: 'Print JSON (public JWKs in full)' },
  },
  exitCodes: ['0  shown', '1  no such principal, or the store is unavailable', '2  usage error'],
  examples: ['mandate agents show triage-bot', 'mandate agents show crm-sync --json'],
  async run(args, io) {
    const id = principalIdArgument(args);
    const config = await loadCliConfig(args, io);
    const p = await withStore(config, { mustExist: true }, (store) => store.principals.get(id));
    if (p === undefined) throw new NotFoundError(`no principal ${id} is registered; see mandate agents list`);
    io.stdout(args.values.json ? `${JSON.stringify(principalView(p), null, 2)}\n` : await renderPrincipal(p));
    return EXIT_OK;
  },
};

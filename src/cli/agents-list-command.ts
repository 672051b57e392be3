/**
 * `mandate agents list`: the principal registry — agents and services — from the store the configuration names.
 */
import { PRINCIPAL_STATUSES } from '../identity/registry.ts';
import { principalView } from '../server/principal-routes.ts';
import type { PrincipalRecord } from '../store/store.ts';
import { checkEnumFlag, renderPrincipalTable } from './agents-registration.ts';
import { EXIT_OK, type CliCommand } from './command.ts';
import { CONFIG_OPTION, loadCliConfig, withStore } from './store-context.ts';

/** The `agents list` command. */
export const agentsListCommand: CliCommand = {
  summary: 'List registered agents and services',
  usage: '[--status STATUS] [--kind KIND] [--json] [--config FILE]',
  description: `Lists every registered principal, agents and services (KIND column), with its mode, status, owner,
source (config: declared in mandate.yaml; api: registered through the admin API or the CLI), number of
credentials and last use. --json prints { principals: [...] } as GET /admin/v1/principals does.`,
  positionals: [],
  options: {
    config: CONFIG_OPTION,
    status: { type: 'string', placeholder: 'STATUS', description: `Only principals with this status: ${PRINCIPAL_STATUSES.join(', ')}` },
    kind: { type: 'string', placeholder: 'KIND', description: 'Only agents or only services: agent, service' },
    json: { type: 'boolean', description: 'Print JSON (credentials in full: public keys only)' },
  },
  exitCodes: ['0  listed (also when there is none)', '1  the store is unavailable or the configuration invalid', '2  usage error'],
  examples: ['mandate agents list', 'mandate agents list --status suspended', 'mandate agents list --kind service --json | jq .'],
  async run(args, io) {
    const status = checkEnumFlag(args, 'status', PRINCIPAL_STATUSES) as PrincipalRecord['status'] | undefined;
    const kind = checkEnumFlag(args, 'kind', ['agent', 'service']) as PrincipalRecord['kind'] | undefined;
    const config = await loadCliConfig(args, io);
    const list = await withStore(config, { mustExist: true }, (store) =>
      store.principals.list({ ...(status === undefined ? {} : { status }), ...(kind === undefined ? {} : { kind }) }),
    );
    if (args.values.json) io.stdout(`${JSON.stringify({ principals: list.map(principalView) }, null, 2)}\n`);
    else io.stdout(renderPrincipalTable(list));
    return EXIT_OK;
  },
};

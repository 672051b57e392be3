/**
 * `mandate agents add`: registers an agent or a service in the store the configuration names, validated by the
 * same schema as the configuration file and the admin API, committed with its audit event.
 */
import { ConflictError } from '../core/errors.ts';
import { systemClock } from '../core/ports.ts';
import { PrincipalRegistrationSchema, registrationProblems } from '../identity/registry.ts';
import { principalView } from '../server/principal-routes.ts';
import type { PrincipalRecord } from '../store/store.ts';
import { cliPrincipalEvent, credentialKeys, REGISTRATION_OPTIONS, registrationInput } from './agents-registration.ts';
import { EXIT_FAILURE, EXIT_OK, type CliCommand } from './command.ts';
import { CONFIG_OPTION, cliActor, loadCliConfig, storeLocation, terminalSafe, withStore } from './store-context.ts';

/** The `agents add` command. */
export const agentsAddCommand: CliCommand = {
  summary: 'Register an agent or a service',
  usage: '(--file FILE | --id ID --name TEXT --owner USER [--mode MODE] CREDENTIAL...) [options]',
  description: `Registers a principal in the store named by the configuration, with an audit event (actor cli:<user>)
committed in the same transaction. The registration is checked like a principals: entry of mandate.yaml
(kind, name, owner, mode for agents, workflows, audiences, credentials, status, dpop): every problem is
listed with its field path and nothing is written. A credential already registered to another principal is
refused (one credential belongs to one principal), as is an id that exists or that mandate.yaml declares.
Credentials: --spiffe-id, --jwks-file (public keys only), --jwks-uri (https:).`,
  positionals: [],
  options: {
    config: CONFIG_OPTION,
    ...REGISTRATION_OPTIONS,
    json: { type: 'boolean', description: 'Print the registered principal as JSON' },
  },
  exitCodes: ['0  registered', '1  invalid registration, taken id or credential, or the store is unavailable', '2  usage error'],
  examples: [
    'mandate agents add --id triage-bot --name "Triage bot" --owner alice@example.com --mode autonomous \\\n    --workflow triage --audience https://crm.example/mcp --jwks-file triage-bot.pub.jwk.json',
    'mandate agents add --kind service --id crm-sync --name "CRM sync" --owner ops@example.com --spiffe-id spiffe://example.org/crm-sync',
    'mandate agents add --file triage-bot.yaml --config /etc/mandate/mandate.yaml',
  ],
  async run(args, io) {
    const input = await registrationInput(args, io);
    const parsed = PrincipalRegistrationSchema.safeParse(input);
    if (!parsed.success) {
      const problems = registrationProblems(parsed.error);
      io.stderr(`mandate agents add: ERR_INVALID_REQUEST: the registration is invalid (${problems.length} problem${problems.length === 1 ? '' : 's'}); nothing was written\n`);
      for (const p of problems) io.stderr(`  ${terminalSafe(p)}\n`);
      return EXIT_FAILURE;
    }
    const registration = parsed.data;
    const config = await loadCliConfig(args, io);
    if (config.principals.some((p) => p.id === registration.id)) {
      throw new ConflictError(`${registration.id} is declared in the configuration file (principals:), which is authoritative for it; change it there, or register another id`);
    }
    const actor = cliActor(io.env);
    const record = await withStore(config, { mustExist: false }, async (store) => {
      const existing = await store.principals.get(registration.id);
      if (existing !== undefined) {
        throw new ConflictError(`a principal with id ${registration.id} is already registered (${existing.kind}, ${existing.status}, source ${existing.source}); nothing was written`);
      }
      // Name the holder of a taken credential; the store refuses it anyway (and a concurrent registration too).
      const wanted = await credentialKeys(registration.credentials);
      const holders = new Map<string, string>();
      for (const p of await store.principals.list()) for (const k of await credentialKeys(p.credentials)) holders.set(k.key, p.id);
      for (const w of wanted) {
        const holder = holders.get(w.key);
        if (holder !== undefined) {
          throw new ConflictError(`the ${w.label} is already registered to ${holder}; one credential belongs to one principal: give ${registration.id} its own (nothing was written)`);
        }
      }
      const now = systemClock.now();
      const created: PrincipalRecord = { ...registration, source: 'api', createdAt: now, updatedAt: now };
      await store.principals.create(created, cliPrincipalEvent('principals.create', actor, { principal: created.id, kind: created.kind, owner: created.owner }));
      return created;
    });
    if (args.values.json) {
      io.stdout(`${JSON.stringify(principalView(record), null, 2)}\n`);
      return EXIT_OK;
    }
    const n = record.credentials.length;
    const mode = record.mode === undefined ? '' : `, mode ${record.mode}`;
    io.stdout(
      terminalSafe(`registered ${record.kind} ${record.id} ("${record.name}", owner ${record.owner}${mode}, ${n} credential${n === 1 ? '' : 's'}, status ${record.status}, dpop ${record.dpop})`) +
        `\nstore ${storeLocation(config)}; audited as ${actor}\n`,
    );
    return EXIT_OK;
  },
};

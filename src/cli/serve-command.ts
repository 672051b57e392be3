/**
 * `mandate serve`: runs a production node from `mandate.yaml`. It never starts demo parts: no demo
 * credential, no demo data, nothing that is not in the configuration.
 */
import { loadConfig } from '../config/index.ts';
import { EXIT_FAILURE, type CliCommand } from './command.ts';
import { describeStartupFailure, startMandate } from './start-mandate.ts';

/** The `serve` command. */
export const serveCommand: CliCommand = {
  summary: 'Run the Mandate server (production: no demo parts)',
  usage: '[--config FILE]',
  description: `Loads the configuration (--config, else MANDATE_CONFIG, else ./mandate.yaml, else defaults and
environment), opens the store, loads and strictly validates the policy directory, and serves the AuthZEN
decision API, /healthz, /readyz and /metrics. Refuses to start when the configuration, the store or the
policy set is invalid. SIGHUP reloads the policy set; SIGTERM and SIGINT shut down gracefully.`,
  positionals: [],
  options: {
    config: { type: 'string', short: 'c', placeholder: 'FILE', description: 'Path of mandate.yaml' },
  },
  exitCodes: ['0  stopped by a signal', '1  refused to start (configuration, store or policy set)', '2  usage error'],
  examples: ['mandate serve --config /etc/mandate/mandate.yaml', 'MANDATE_PORT=9090 mandate serve'],
  async run(args, io) {
    const configPath = args.values.config as string | undefined;
    let node;
    try {
      const config = await loadConfig({ ...(configPath ? { path: configPath } : {}), env: io.env, cwd: io.cwd });
      node = await startMandate(config, { handleSignals: true, env: io.env });
    } catch (err) {
      for (const line of describeStartupFailure(err)) io.stderr(`${line}\n`);
      return EXIT_FAILURE;
    }
    io.stderr(`mandate: serving on ${node.url}\n`);
    // Keep running until a signal stops the process.
    return new Promise<number>(() => undefined);
  },
};

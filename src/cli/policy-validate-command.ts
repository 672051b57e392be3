/**
 * `mandate policy validate [dir]`: the checks the server runs before it activates a set (parse, strict
 * validation against the schema, entities), without starting anything.
 */
import { EXIT_FAILURE, EXIT_OK, type CliCommand } from './command.ts';
import { formatDiagnostic, loadPolicyDirectory, printRefusal } from './policy-directory-io.ts';
import { createCompiledBackend } from '../policy/compiled/compiled-backend.ts';

/** The `policy validate` command. */
export const policyValidateCommand: CliCommand = {
  summary: 'Parse and strictly validate a policy directory',
  usage: '[dir] [--json]',
  description: `Loads the directory exactly as the server does: parses schema.cedarschema and every *.cedar file,
validates every policy strictly against the schema, and checks entities.yaml. Prints each problem as
file:line:col: error: message (and warnings likewise), then a summary with the set's version.`,
  positionals: [{ name: 'dir', description: 'policy directory', default: 'policies' }],
  options: {
    json: { type: 'boolean', description: 'Print the diagnostics as a JSON array instead' },
  },
  exitCodes: ['0  the set is valid (warnings allowed)', '1  the set would be refused', '2  usage error'],
  examples: ['mandate policy validate examples/policies', 'mandate policy validate policies --json | jq .'],
  async run(args, io) {
    const dir = args.positionals[0] as string;
    const loaded = await loadPolicyDirectory(io, dir);
    if (args.values.json) {
      io.stdout(`${JSON.stringify(loaded.ok ? loaded.compiled.warnings : loaded.diagnostics, null, 2)}\n`);
      return loaded.ok ? EXIT_OK : EXIT_FAILURE;
    }
    if (!loaded.ok) {
      printRefusal(io, dir, loaded.diagnostics);
      return EXIT_FAILURE;
    }
    const { compiled } = loaded;
    for (const w of compiled.warnings) io.stdout(formatDiagnostic(dir, w));
    const n = compiled.policies.length;
    const m = compiled.entities.size;
    const warned = compiled.warnings.length > 0 ? `, ${compiled.warnings.length} warning${compiled.warnings.length === 1 ? '' : 's'}` : '';
    io.stdout(`${n} ${n === 1 ? 'policy' : 'policies'}, ${m} ${m === 1 ? 'entity' : 'entities'}: valid${warned} (version ${compiled.version})\n`);
    // Which engine will decide: the compiled one, or — for a set using something it does not support — the
    // reference engine for the whole set. Nothing is approximated, and the operator is told.
    const backend = createCompiledBackend(compiled);
    if (backend.ok) io.stdout('engine: compiled (the default; policy.engine: reference selects cedar-wasm)\n');
    else {
      io.stdout('engine: reference — the compiler does not support this set, so cedar-wasm decides for all of it:\n');
      for (const u of backend.unsupported) io.stdout(`  ${u.policyId}: ${u.feature}\n`);
    }
    return EXIT_OK;
  },
};

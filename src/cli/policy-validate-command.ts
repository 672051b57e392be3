/**
 * `mandate policy validate [dir]`: the checks the server runs before it activates a set (parse, strict
 * validation against the schema, entities) and its workflows (workflows/*.yaml), without starting anything.
 */
import { EXIT_FAILURE, EXIT_OK, type CliCommand } from './command.ts';
import { formatDiagnostic, loadPolicyDirectory, printRefusal, resolvePath } from './policy-directory-io.ts';
import { createCompiledBackend } from '../policy/compiled/compiled-backend.ts';
import { checkWorkflowEntities, loadWorkflowDirectory, WORKFLOWS_FOLDER, workflowSetVersion } from '../tasks/workflows.ts';
import type { PolicyDiagnostic } from '../policy/types.ts';

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** The `policy validate` command. */
export const policyValidateCommand: CliCommand = {
  summary: 'Parse and strictly validate a policy directory and its workflows',
  usage: '[dir] [--json]',
  description: `Loads the directory exactly as the server does: parses schema.cedarschema and every *.cedar file,
validates every policy strictly against the schema, and checks entities.yaml. Then validates the workflow
files in ${WORKFLOWS_FOLDER}/ (docs/workflows.md), all or nothing, and checks that the Workflow entities of
entities.yaml say what their files say. Prints each problem as file:line:col: error: message (and warnings
likewise), then a summary with the set's version and the number of workflows.`,
  positionals: [{ name: 'dir', description: 'policy directory', default: 'policies' }],
  options: {
    json: { type: 'boolean', description: 'Print the diagnostics as a JSON array instead' },
  },
  exitCodes: ['0  the set and its workflows are valid (warnings allowed)', '1  the set or its workflows would be refused', '2  usage error'],
  examples: ['mandate policy validate examples/policies', 'mandate policy validate policies --json | jq .'],
  async run(args, io) {
    const dir = args.positionals[0] as string;
    const loaded = await loadPolicyDirectory(io, dir);
    const flows = await loadWorkflowDirectory(resolvePath(io, dir));
    const workflowDiagnostics: PolicyDiagnostic[] = [...flows.diagnostics];
    if (loaded.ok && flows.ok) {
      const { contents } = loaded;
      workflowDiagnostics.push(...checkWorkflowEntities(flows.workflows, contents.entities, contents.entitiesFile));
    }
    const workflowErrors = workflowDiagnostics.filter((d) => d.severity === 'error').length;
    const ok = loaded.ok && workflowErrors === 0;
    if (args.values.json) {
      io.stdout(`${JSON.stringify([...(loaded.ok ? loaded.compiled.warnings : loaded.diagnostics), ...workflowDiagnostics], null, 2)}\n`);
      return ok ? EXIT_OK : EXIT_FAILURE;
    }
    if (!loaded.ok) {
      printRefusal(io, dir, [...loaded.diagnostics, ...workflowDiagnostics]);
      return EXIT_FAILURE;
    }
    const { compiled } = loaded;
    for (const w of compiled.warnings) io.stdout(formatDiagnostic(dir, w));
    const n = compiled.policies.length;
    const m = compiled.entities.size;
    const warned = compiled.warnings.length > 0 ? `, ${plural(compiled.warnings.length, 'warning', 'warnings')}` : '';
    io.stdout(`${n} ${n === 1 ? 'policy' : 'policies'}, ${m} ${m === 1 ? 'entity' : 'entities'}: valid${warned} (version ${compiled.version})\n`);
    // Which engine will decide: the compiled one, or — for a set using something it does not support — the
    // reference engine for the whole set. Nothing is approximated, and the operator is told.
    const backend = createCompiledBackend(compiled);
    if (backend.ok) io.stdout('engine: compiled (the default; policy.engine: reference selects cedar-wasm)\n');
    else {
      io.stdout('engine: reference — the compiler does not support this set, so cedar-wasm decides for all of it:\n');
      for (const u of backend.unsupported) io.stdout(`  ${u.policyId}: ${u.feature}\n`);
    }
    // Workflows last, so that the policy summary keeps its place for scripts that read it.
    for (const d of workflowDiagnostics) io.stdout(formatDiagnostic(dir, d));
    if (workflowErrors > 0) {
      io.stdout(`${dir}/${WORKFLOWS_FOLDER}: invalid (${plural(workflowErrors, 'error', 'errors')}); no workflow would be loaded\n`);
      return EXIT_FAILURE;
    }
    const k = flows.workflows.size;
    const retired = [...flows.workflows.values()].filter((w) => w.status === 'retired').length;
    const wWarnings = workflowDiagnostics.length;
    io.stdout(
      k === 0
        ? `0 workflows (no workflow files in ${WORKFLOWS_FOLDER}/)\n`
        : `${plural(k, 'workflow', 'workflows')}${retired > 0 ? ` (${retired} retired)` : ''}: valid${wWarnings > 0 ? `, ${plural(wWarnings, 'warning', 'warnings')}` : ''} (version ${workflowSetVersion(flows.workflows)})\n`,
    );
    return EXIT_OK;
  },
};

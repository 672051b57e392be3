/**
 * Entry point of the `mandate` command (`bin/mandate.js`, `npm run mandate -- ...`): binds the dispatcher
 * to the real process. Everything else lives in run-cli.ts so that tests can run commands in-process.
 */
import { runCli } from './run-cli.ts';
import type { CliIo } from './command.ts';

/** The process's streams as a `CliIo`. */
export const processIo: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  },
  cwd: process.cwd(),
  env: process.env,
};

// `mandate policy analyze | head` closes the pipe early; that is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

// exitCode rather than exit(): let buffered output to a pipe drain before the process ends.
process.exitCode = await runCli(process.argv.slice(2), processIo);

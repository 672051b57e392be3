// The audit writer thread of the SQLite store. It owns its own connection to the database file and commits
// batches of audit rows, one IMMEDIATE transaction per message, so that the fsync of every group commit
// (synchronous=FULL) happens off the main event loop. Plain JavaScript on purpose: a worker does not inherit a
// TypeScript loader registered in-process (bin/mandate.js), and this file needs nothing but better-sqlite3.
//
// Protocol (main → worker): { op: 'append', id, rows } | { op: 'close' }.
// (worker → main): { op: 'ready' } once the connection is open; { op: 'done', id } or
// { op: 'failed', id, code, message } per append; { op: 'closed' } after close.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const { path, busyTimeoutMs } = workerData;

function describe(err) {
  if (err instanceof Error) return { code: typeof err.code === 'string' ? err.code : 'ERROR', message: err.message };
  return { code: 'ERROR', message: String(err) };
}

let db;
try {
  db = new Database(path, { timeout: busyTimeoutMs, fileMustExist: true });
  // The same durability settings as the main connection (see sqlite-store.ts): WAL, fsync on every commit.
  db.pragma('synchronous = FULL');
  db.pragma('trusted_schema = OFF');
  db.pragma(`busy_timeout = ${busyTimeoutMs}`);
} catch (err) {
  parentPort.postMessage({ op: 'failed', id: 0, ...describe(err) });
  process.exit(1);
}

const insert = db.prepare(
  `INSERT INTO audit_events (id, time, type, outcome, decision_id, trace_id, actor, subject, action, resource,
     policy_set_version, reasons, redacted, data)
   VALUES (@id, @time, @type, @outcome, @decision_id, @trace_id, @actor, @subject, @action, @resource,
     @policy_set_version, @reasons, @redacted, @data)`,
);
const append = db.transaction((rows) => {
  for (const row of rows) insert.run(row);
});

parentPort.on('message', (msg) => {
  if (msg.op === 'append') {
    try {
      append.immediate(msg.rows);
      parentPort.postMessage({ op: 'done', id: msg.id });
    } catch (err) {
      parentPort.postMessage({ op: 'failed', id: msg.id, ...describe(err) });
    }
  } else if (msg.op === 'close') {
    try {
      db.close();
    } finally {
      parentPort.postMessage({ op: 'closed' });
      parentPort.close();
    }
  }
});
parentPort.postMessage({ op: 'ready' });

/**
 * SQLite schema migrations, in order. Append new ones at the end; never change one that has shipped, because
 * databases in the field have already applied it (the runner checks names to catch that mistake).
 *
 * Tables are STRICT so that a wrong type fails the write instead of being coerced silently.
 */
import type { Migration } from './migration.ts';

/** Every SQLite migration this build knows, version 1..n. */
export const sqliteMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial',
    sql: `
      CREATE TABLE meta (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at TEXT NOT NULL
      ) STRICT;

      -- AUTOINCREMENT (not just INTEGER PRIMARY KEY) so that a seq is never reused, even after a retention job
      -- deletes the newest rows: seq is the audit cursor that exporters and verifiers resume from.
      CREATE TABLE audit_events (
        seq                INTEGER PRIMARY KEY AUTOINCREMENT,
        id                 TEXT NOT NULL UNIQUE,
        time               TEXT NOT NULL,
        type               TEXT NOT NULL,
        outcome            TEXT NOT NULL,
        decision_id        TEXT,
        trace_id           TEXT,
        actor              TEXT,
        subject            TEXT,
        action             TEXT,
        resource           TEXT,
        policy_set_version TEXT,
        reasons            TEXT CHECK (reasons IS NULL OR json_valid(reasons)),
        redacted           TEXT NOT NULL CHECK (json_valid(redacted)),
        data               TEXT CHECK (data IS NULL OR json_valid(data))
      ) STRICT;

      CREATE INDEX audit_events_time ON audit_events (time);
      CREATE INDEX audit_events_type_time ON audit_events (type, time);
      CREATE INDEX audit_events_decision_id ON audit_events (decision_id) WHERE decision_id IS NOT NULL;

      -- The audit log is append-only: refuse edits at the lowest layer too, not only in code.
      -- A future retention feature drops these in its own migration, deliberately.
      CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
      BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
      CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
      BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
    `,
  },
];

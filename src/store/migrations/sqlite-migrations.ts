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
  {
    version: 2,
    name: 'identity_and_tokens',
    sql: `
      -- Registered agents and services (the principal registry). Users are not stored: the IdP owns them.
      CREATE TABLE principals (
        id           TEXT PRIMARY KEY,
        kind         TEXT NOT NULL CHECK (kind IN ('agent', 'service')),
        name         TEXT NOT NULL,
        owner        TEXT NOT NULL,
        mode         TEXT CHECK (mode IS NULL OR mode IN ('chat', 'autonomous')),
        workflows    TEXT NOT NULL CHECK (json_valid(workflows)),
        audiences    TEXT NOT NULL CHECK (json_valid(audiences)),
        status       TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'quarantined', 'retired')),
        dpop         TEXT NOT NULL CHECK (dpop IN ('required', 'optional')),
        source       TEXT NOT NULL CHECK (source IN ('config', 'api')),
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        last_used_at INTEGER
      ) STRICT;

      -- One row per credential. "key" is what makes a credential unique across principals: a SPIFFE ID, the
      -- RFC 7638 thumbprint of a registered public key, or a jwks_uri. UNIQUE: one credential, one principal.
      CREATE TABLE principal_credentials (
        principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
        type         TEXT NOT NULL CHECK (type IN ('spiffe', 'jwks', 'jwks_uri')),
        key          TEXT NOT NULL UNIQUE,
        value        TEXT NOT NULL CHECK (json_valid(value))
      ) STRICT;
      CREATE INDEX principal_credentials_principal ON principal_credentials (principal_id);

      -- One-time identifiers (client assertion and DPoP proof jti) until they expire.
      CREATE TABLE replay_ids (
        namespace  TEXT NOT NULL,
        id         TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, id)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX replay_ids_expires ON replay_ids (expires_at);

      -- Token signing keys; the private part is a JWE under the key-encryption key, never plaintext.
      CREATE TABLE signing_keys (
        kid                   TEXT PRIMARY KEY,
        alg                   TEXT NOT NULL,
        public_jwk            TEXT NOT NULL CHECK (json_valid(public_jwk)),
        encrypted_private_jwk TEXT NOT NULL,
        state                 TEXT NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
        created_at            INTEGER NOT NULL,
        activated_at          INTEGER NOT NULL,
        retire_at             INTEGER
      ) STRICT;

      -- Every token Mandate issued, for introspection and revocation. Never the token itself.
      CREATE TABLE issued_tokens (
        jti          TEXT PRIMARY KEY,
        client_id    TEXT NOT NULL,
        subject      TEXT NOT NULL,
        actors       TEXT NOT NULL CHECK (json_valid(actors)),
        audience     TEXT NOT NULL,
        scope        TEXT NOT NULL,
        jkt          TEXT,
        task_id      TEXT,
        parent_jti   TEXT,
        issued_at    INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL,
        revoked_at   INTEGER,
        revoked_reason TEXT
      ) STRICT;
      CREATE INDEX issued_tokens_expires ON issued_tokens (expires_at);
      CREATE INDEX issued_tokens_client ON issued_tokens (client_id);
      CREATE INDEX issued_tokens_subject ON issued_tokens (subject);
      CREATE INDEX issued_tokens_task ON issued_tokens (task_id) WHERE task_id IS NOT NULL;
    `,
  },
  {
    version: 3,
    name: 'principal_api_scopes',
    sql: `
      -- Scopes of Mandate's own API (evaluate, policy:*, principals:*) granted to a registered service.
      ALTER TABLE principals ADD COLUMN api_scopes TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(api_scopes));

      -- Credentials may also be a hashed shared secret (usable only when clientAuth.allowSharedSecrets is on).
      -- SQLite cannot widen a CHECK in place: the table is rebuilt with the same rows.
      CREATE TABLE principal_credentials_v3 (
        principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
        type         TEXT NOT NULL CHECK (type IN ('spiffe', 'jwks', 'jwks_uri', 'client_secret')),
        key          TEXT NOT NULL UNIQUE,
        value        TEXT NOT NULL CHECK (json_valid(value))
      ) STRICT;
      INSERT INTO principal_credentials_v3 (rowid, principal_id, type, key, value)
        SELECT rowid, principal_id, type, key, value FROM principal_credentials;
      DROP TABLE principal_credentials;
      ALTER TABLE principal_credentials_v3 RENAME TO principal_credentials;
      CREATE INDEX principal_credentials_principal ON principal_credentials (principal_id);
    `,
  },
  {
    version: 4,
    name: 'tasks_approvals_revocation',
    sql: `
      -- Tasks: one run of an approved workflow by an agent for a user (the task grant and its live state).
      CREATE TABLE tasks (
        id               TEXT PRIMARY KEY,
        user_iss         TEXT NOT NULL,
        user_sub         TEXT NOT NULL,
        agent_id         TEXT NOT NULL,
        workflow_id      TEXT NOT NULL,
        workflow_version TEXT NOT NULL,
        purpose          TEXT NOT NULL,
        status           TEXT NOT NULL CHECK (status IN ('open', 'ended', 'revoked')),
        opened_at        INTEGER NOT NULL,
        expires_at       INTEGER NOT NULL,
        idle_timeout_ms  INTEGER NOT NULL,
        last_activity_at INTEGER NOT NULL,
        steps_taken      INTEGER NOT NULL,
        recent_steps     TEXT NOT NULL CHECK (json_valid(recent_steps)),
        ended_at         INTEGER,
        end_reason       TEXT
      ) STRICT;
      CREATE INDEX tasks_open ON tasks (status) WHERE status = 'open';
      CREATE INDEX tasks_agent ON tasks (agent_id, status);
      CREATE INDEX tasks_user ON tasks (user_iss, user_sub, status);

      -- Refresh tokens (task grant handles): only their hash; rotated at each use.
      CREATE TABLE refresh_tokens (
        hash       TEXT PRIMARY KEY,
        task_id    TEXT NOT NULL REFERENCES tasks (id),
        client_id  TEXT NOT NULL,
        jkt        TEXT,
        issued_at  INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER
      ) STRICT;
      CREATE INDEX refresh_tokens_task ON refresh_tokens (task_id);

      -- Approval requests (step-up): bound to one exact call by the hash of its arguments.
      CREATE TABLE approvals (
        id         TEXT PRIMARY KEY,
        task_id    TEXT,
        user_iss   TEXT,
        user_sub   TEXT NOT NULL,
        actors     TEXT NOT NULL CHECK (json_valid(actors)),
        action     TEXT NOT NULL,
        resource   TEXT NOT NULL CHECK (json_valid(resource)),
        args_hash  TEXT NOT NULL,
        summary    TEXT NOT NULL,
        status     TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'used')),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        decided_at INTEGER,
        decided_by TEXT,
        reason     TEXT,
        used_at    INTEGER
      ) STRICT;
      CREATE INDEX approvals_pending ON approvals (status, created_at);
      CREATE INDEX approvals_task ON approvals (task_id) WHERE task_id IS NOT NULL;

      -- Users Mandate must no longer act for (CAEP, admin API). The IdP owns users; this is only the deny list.
      CREATE TABLE disabled_users (
        iss         TEXT NOT NULL,
        sub         TEXT NOT NULL,
        disabled_at INTEGER NOT NULL,
        reason      TEXT NOT NULL,
        PRIMARY KEY (iss, sub)
      ) STRICT, WITHOUT ROWID;

      -- The revocation feed: every revocation in order, for other nodes to apply (a later issue).
      CREATE TABLE revocations (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        kind   TEXT NOT NULL CHECK (kind IN ('task', 'token', 'principal', 'user', 'lockdown')),
        target TEXT NOT NULL,
        at     INTEGER NOT NULL,
        reason TEXT NOT NULL
      ) STRICT;

      -- The break-glass switch (one row).
      CREATE TABLE lockdown (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        active INTEGER NOT NULL CHECK (active IN (0, 1)),
        since  INTEGER,
        by     TEXT,
        reason TEXT
      ) STRICT;
    `,
  },
  {
    version: 5,
    name: 'ssf_streams',
    sql: `
      -- Shared Signals streams Mandate transmits on. The push Authorization header inside doc is sealed (KEK).
      CREATE TABLE ssf_streams (
        stream_id  TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        status     TEXT NOT NULL CHECK (status IN ('enabled', 'paused', 'disabled')),
        events     TEXT NOT NULL CHECK (json_valid(events)),
        doc        TEXT NOT NULL CHECK (json_valid(doc)),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX ssf_streams_owner ON ssf_streams (owner);
    `,
  },
  {
    version: 6,
    name: 'task_user_attributes',
    sql: `
      -- The user's attributes from their IdP token when the task opened (roles, email, department), so that a
      -- renewal or a re-evaluation decides for the same user even when the policy directory does not list them.
      ALTER TABLE tasks ADD COLUMN user_attrs TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(user_attrs));
    `,
  },
  {
    version: 7,
    name: 'user_credentials',
    sql: `
      -- The gateway vault: credentials users connected for upstreams (e.g. OAuth tokens for a SaaS API). The tokens
      -- are compact JWEs sealed under the KEK and bound to their row; a revoked row keeps no token.
      CREATE TABLE user_credentials (
        upstream             TEXT NOT NULL,
        user_iss             TEXT NOT NULL,
        user_sub             TEXT NOT NULL,
        sealed_access_token  TEXT NOT NULL,
        sealed_refresh_token TEXT,
        expires_at           INTEGER,
        created_at           INTEGER NOT NULL,
        updated_at           INTEGER NOT NULL,
        revoked_at           INTEGER,
        PRIMARY KEY (upstream, user_iss, user_sub)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX user_credentials_user ON user_credentials (user_iss, user_sub);
    `,
  },
];

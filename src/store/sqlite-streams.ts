/**
 * The SQLite implementation of the Shared Signals stream store (src/signals/stream-store.ts `SsfStreamStore`).
 * Streams are kept as JSON documents; the caller seals the push `Authorization` header before it gets here.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { ConflictError } from '../core/errors.ts';
import type { SsfStream, SsfStreamStore } from '../signals/stream-store.ts';
import type { SqliteRun } from './sqlite-identity.ts';

interface StreamRow {
  stream_id: string;
  owner: string;
  status: string;
  events: string;
  doc: string;
}

/** Builds the stream store over one connection. */
export function createSqliteStreamStore(db: BetterSqlite3.Database, run: SqliteRun): SsfStreamStore {
  const stmt = {
    insert: db.prepare('INSERT INTO ssf_streams (stream_id, owner, status, events, doc, created_at, updated_at) VALUES (@stream_id, @owner, @status, @events, @doc, @created_at, @updated_at)'),
    get: db.prepare<[string], StreamRow>('SELECT * FROM ssf_streams WHERE stream_id = ?'),
    byOwner: db.prepare<[string], StreamRow>('SELECT * FROM ssf_streams WHERE owner = ? ORDER BY created_at, stream_id'),
    enabled: db.prepare<[], StreamRow>("SELECT * FROM ssf_streams WHERE status = 'enabled' ORDER BY created_at, stream_id"),
    replace: db.prepare('UPDATE ssf_streams SET owner = @owner, status = @status, events = @events, doc = @doc, updated_at = @updated_at WHERE stream_id = @stream_id'),
    delete: db.prepare<[string]>('DELETE FROM ssf_streams WHERE stream_id = ?'),
  };
  const row = (s: SsfStream) => ({
    stream_id: s.streamId,
    owner: s.owner,
    status: s.status,
    events: JSON.stringify(s.eventsDelivered),
    doc: JSON.stringify(s),
    created_at: s.createdAt,
    updated_at: s.updatedAt,
  });
  const from = (r: StreamRow): SsfStream => JSON.parse(r.doc) as SsfStream;
  return {
    create: async (s) =>
      run('ssfStreams.create', () => {
        try {
          stmt.insert.run(row(s));
        } catch (err) {
          const code = (err as { code?: unknown } | null)?.code;
          if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new ConflictError('a stream with this id exists', { cause: err });
          throw err;
        }
      }),
    get: async (id) =>
      run('ssfStreams.get', () => {
        const r = stmt.get.get(id);
        return r === undefined ? undefined : from(r);
      }),
    listByOwner: async (owner) => run('ssfStreams.listByOwner', () => stmt.byOwner.all(owner).map(from)),
    listForEvent: async (eventType) =>
      run('ssfStreams.listForEvent', () => stmt.enabled.all().filter((r) => (JSON.parse(r.events) as string[]).includes(eventType)).map(from)),
    replace: async (s) => run('ssfStreams.replace', () => stmt.replace.run(row(s)).changes === 1),
    delete: async (id) => run('ssfStreams.delete', () => stmt.delete.run(id).changes === 1),
  };
}

/**
 * The RAG data boundary, end to end: a SQLite table of documents, the filter Mandate computes from Cedar's
 * partial evaluation applied as a `WHERE` clause, and the result compared with a per-record decision on
 * every row. Run: `node --import tsx examples/rag/rag-example.ts [policy-dir]` (default examples/rag/policies).
 */
import Database from 'better-sqlite3';
import { fileURLToPath } from 'node:url';
import type { EntityRef } from '../../src/core/decision.ts';
import { fixedClock } from '../../src/core/ports.ts';
import { PolicyEngine } from '../../src/policy/policy-engine.ts';
import { filterCandidates, retrievalFilter, type RetrievalCandidate, type RetrievalFilterResult, type RetrievalSubject, type RetrievalTable } from '../../src/gateway/rag-filter.ts';

/** One row of the documents table. */
export interface DocumentRow {
  id: string;
  dataset: string | null;
  sensitivity: string | null;
  sensitivity_level: number | null;
  tenant: string | null;
  owner: string | null;
}

/** How the documents table stores Records (the mapping given to `retrievalFilter`). */
export const DOCUMENTS_TABLE: RetrievalTable = {
  resourceType: 'Record',
  idColumn: 'id',
  parent: { column: 'dataset', type: 'Dataset' },
  columns: {
    sensitivity: { column: 'sensitivity', type: 'string' },
    sensitivityLevel: { column: 'sensitivity_level', type: 'long' },
    tenant: { column: 'tenant', type: 'string' },
    owner: { column: 'owner', type: 'entity', entityType: 'User' },
  },
};

const LEVELS: Record<string, number> = { public: 0, internal: 1, confidential: 2, restricted: 3 };

/** A deterministic generator of documents (mulberry32), with a few rows that are invalid or lie. */
export function generateDocuments(count: number, seed: number, datasets: readonly string[], tenants: readonly string[], owners: readonly string[], lyingIds: readonly string[] = []): DocumentRow[] {
  let s = seed >>> 0;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const sensitivities = Object.keys(LEVELS);
  const rows: DocumentRow[] = [];
  for (let i = 0; i < count; i++) {
    const sensitivity = pick(sensitivities);
    rows.push({
      id: i < lyingIds.length ? (lyingIds[i] as string) : `doc-${i}`,
      dataset: rnd() < 0.1 ? null : pick(datasets),
      sensitivity,
      sensitivity_level: LEVELS[sensitivity] as number,
      // A few rows without a tenant: invalid entities, denied both ways.
      tenant: rnd() < 0.03 ? null : pick(tenants),
      owner: rnd() < 0.4 ? null : pick(owners),
    });
  }
  return rows;
}

/** Creates the in-memory documents table. `sensitivity_level` must agree with `sensitivity` (a CHECK). */
export function createDocumentsDb(rows: readonly DocumentRow[]): Database.Database {
  const db = new Database(':memory:');
  db.exec(`CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    dataset TEXT,
    sensitivity TEXT,
    sensitivity_level INTEGER CHECK (sensitivity_level IS (CASE sensitivity WHEN 'public' THEN 0 WHEN 'internal' THEN 1 WHEN 'confidential' THEN 2 WHEN 'restricted' THEN 3 END)),
    tenant TEXT,
    owner TEXT
  )`);
  const insert = db.prepare('INSERT INTO documents (id, dataset, sensitivity, sensitivity_level, tenant, owner) VALUES (@id, @dataset, @sensitivity, @sensitivity_level, @tenant, @owner)');
  db.transaction(() => rows.forEach((r) => insert.run(r)))();
  return db;
}

/** A row as a retrieval candidate (what a retriever would return). */
export function rowCandidate(r: DocumentRow): RetrievalCandidate {
  return {
    id: r.id,
    type: 'Record',
    sensitivity: r.sensitivity as string,
    ...(r.tenant === null ? {} : { tenant: r.tenant }),
    ...(r.owner === null ? {} : { owner: r.owner }),
    ...(r.dataset === null ? {} : { dataset: r.dataset }),
  };
}

/** The outcome of one subject: the filter, the ids it selects and the ids per-record decisions allow. */
export interface Comparison {
  name: string;
  result: RetrievalFilterResult;
  filtered: string[] | undefined;
  perRecord: string[];
  agree: boolean;
}

/** Computes the filter and the per-record decisions for each subject, and compares them. */
export async function compareSubjects(engine: PolicyEngine, db: Database.Database, subjects: ReadonlyArray<{ name: string; who: RetrievalSubject }>, nowMs: number): Promise<Comparison[]> {
  const rows = db.prepare('SELECT * FROM documents ORDER BY id').all() as DocumentRow[];
  const clock = fixedClock(nowMs);
  const decide = (r: Parameters<PolicyEngine['decide']>[0]) => engine.decide(r);
  const out: Comparison[] = [];
  for (const { name, who } of subjects) {
    const result = await retrievalFilter(who, { policySet: () => engine.activeSet(), clock, table: DOCUMENTS_TABLE, decide });
    const valid = rows.filter((r) => r.sensitivity !== null);
    const per = await filterCandidates(valid.map(rowCandidate), who, decide);
    const perRecord = per.allowed.map((c) => c.id).sort();
    let filtered: string[] | undefined;
    if (result.kind === 'filter') filtered = (db.prepare(`SELECT id FROM documents WHERE ${result.where.sql} ORDER BY id`).all(...result.where.params) as Array<{ id: string }>).map((r) => r.id);
    else if (result.kind === 'deny') filtered = [];
    const agree = filtered !== undefined && filtered.length === perRecord.length && filtered.every((id, i) => id === perRecord[i]);
    out.push({ name, result, filtered, perRecord, agree });
  }
  return out;
}

const user = (id: string): EntityRef => ({ type: 'User', id });
const agent = (id: string): EntityRef => ({ type: 'Agent', id });

/** The example's subjects, for examples/rag/policies. */
export const KNOWLEDGE_BASE_SUBJECTS: ReadonlyArray<{ name: string; who: RetrievalSubject }> = [
  { name: 'ann (Acme staff)', who: { principal: user('ann') } },
  { name: 'pete (partner)', who: { principal: user('pete') } },
  { name: 'olga (no group: her own documents only)', who: { principal: user('olga') } },
  { name: 'kb-agent for ann in task-kb-1', who: { principal: user('ann'), actors: [agent('kb-agent')], context: { task: { type: 'Task', id: 'task-kb-1' }, step: 1 } } },
  { name: 'kb-agent for ann without a task', who: { principal: user('ann'), actors: [agent('kb-agent')] } },
];

async function main() {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const dir = process.argv[2] ?? `${here}policies`;
  const engine = new PolicyEngine({ clock: fixedClock(Date.parse('2025-06-02T10:00:00Z')) });
  await engine.loadDirectory(dir);
  const db = createDocumentsDb(generateDocuments(300, 7, ['kb', 'legal-hold', 'handbook'], ['acme', 'globex', 'initech', 'umbrella'], ['ann', 'pete', 'olga'], ['doc-board-minutes']));
  for (const c of await compareSubjects(engine, db, KNOWLEDGE_BASE_SUBJECTS, Date.parse('2025-06-02T10:00:00Z'))) {
    console.log(`\n${c.name}`);
    if (c.result.kind === 'filter') console.log(`  WHERE ${c.result.where.sql}\n  params ${JSON.stringify(c.result.where.params)}`);
    else console.log(`  ${c.result.kind}: ${c.result.reason}`);
    console.log(`  filter selects ${c.filtered?.length ?? '-'} rows; per-record decisions allow ${c.perRecord.length}; ${c.agree ? 'they agree' : 'THEY DIFFER'}`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}

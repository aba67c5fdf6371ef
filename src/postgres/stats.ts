import type pg from "pg";
import { quoteIdent } from "./connection.js";

/**
 * Facts about key tables recorded at backup time and compared after every restore: row counts
 * and the latest value of a timestamp column. They answer "is the restored data the data we
 * backed up, and how recent is it?" — the question a restore test exists to answer.
 */
export type KeyTableSpec = string | { table: string; timestampColumn?: string | undefined };

export interface TableStats {
  table: string;
  exists: boolean;
  rows?: number;
  timestampColumn?: string;
  /** ISO time of the newest row by timestampColumn, when there is one. */
  latest?: string | null;
}

const TIMESTAMP_CANDIDATES = ["created_at", "updated_at", "inserted_at", "timestamp", "created"];

export async function collectTableStats(
  client: pg.Client,
  specs: readonly KeyTableSpec[],
): Promise<TableStats[]> {
  const results: TableStats[] = [];
  for (const spec of specs) {
    const name = typeof spec === "string" ? spec : spec.table;
    const wanted = typeof spec === "string" ? undefined : spec.timestampColumn;
    const [schema, table] = name.includes(".")
      ? (name.split(".", 2) as [string, string])
      : [undefined, name];
    const found = await client.query<{ schema: string; table: string }>(
      `SELECT n.nspname AS schema, c.relname AS table
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname = $1 AND c.relkind IN ('r', 'p')
          AND (($2::text IS NULL AND n.nspname = ANY (current_schemas(false))) OR n.nspname = $2)
        ORDER BY array_position(current_schemas(false), n.nspname) NULLS LAST
        LIMIT 1`,
      [table, schema ?? null],
    );
    const row = found.rows[0];
    if (!row) {
      results.push({ table: name, exists: false });
      continue;
    }
    const qualified = `${quoteIdent(row.schema)}.${quoteIdent(row.table)}`;
    const column = await pickTimestampColumn(client, row.schema, row.table, wanted);
    const select = column
      ? `SELECT count(*)::bigint AS rows, max(${quoteIdent(column)}) AS latest FROM ${qualified}`
      : `SELECT count(*)::bigint AS rows FROM ${qualified}`;
    const stats = await client.query<{ rows: string; latest?: Date | string | null }>(select);
    const first = stats.rows[0];
    results.push({
      table: name,
      exists: true,
      rows: Number(first?.rows ?? 0),
      ...(column ? { timestampColumn: column, latest: toIso(first?.latest) } : {}),
    });
  }
  return results;
}

async function pickTimestampColumn(
  client: pg.Client,
  schema: string,
  table: string,
  wanted?: string,
): Promise<string | undefined> {
  const columns = await client.query<{ name: string; type: string }>(
    `SELECT attname AS name, format_type(atttypid, atttypmod) AS type
       FROM pg_attribute
      WHERE attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass AND attnum > 0 AND NOT attisdropped`,
    [schema, table],
  );
  const isTime = (type: string) => /^(timestamp|date)/.test(type);
  if (wanted) return columns.rows.some((c) => c.name === wanted) ? wanted : undefined;
  return TIMESTAMP_CANDIDATES.find((candidate) =>
    columns.rows.some((c) => c.name === candidate && isTime(c.type)),
  );
}

function toIso(value: Date | string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  return String(value);
}

export interface StatsComparison {
  table: string;
  ok: boolean;
  expected: TableStats;
  actual?: TableStats;
  problem?: string;
}

/**
 * Restored data must match what the backup recorded: same row counts, same latest timestamp.
 * Tables absent at backup time are not expected after restore.
 */
export function compareTableStats(
  expected: readonly TableStats[],
  actual: readonly TableStats[],
): StatsComparison[] {
  return expected
    .filter((e) => e.exists)
    .map((e) => {
      const a = actual.find((candidate) => candidate.table === e.table);
      if (!a || !a.exists)
        return {
          table: e.table,
          ok: false,
          expected: e,
          ...(a ? { actual: a } : {}),
          problem: "table missing after restore",
        };
      if (a.rows !== e.rows)
        return {
          table: e.table,
          ok: false,
          expected: e,
          actual: a,
          problem: `${a.rows} rows, backup had ${e.rows}`,
        };
      if (e.latest !== undefined && a.latest !== e.latest) {
        return {
          table: e.table,
          ok: false,
          expected: e,
          actual: a,
          problem: `latest ${e.timestampColumn} is ${a.latest}, backup had ${e.latest}`,
        };
      }
      return { table: e.table, ok: true, expected: e, actual: a };
    });
}

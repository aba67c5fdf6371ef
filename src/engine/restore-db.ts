import { LifeboatError } from "../errors.js";
import type { DatabaseConfig } from "../config/schema.js";
import { withClient, type PgConnection } from "../postgres/connection.js";
import { dumpTool } from "../postgres/dump.js";
import {
  createDatabase,
  databaseExists,
  dropDatabase,
  renameDatabase,
  existingRoles,
  restoreGlobals,
  rolesInGlobals,
  rolesInToc,
  type GlobalsResult,
} from "../postgres/restore.js";
import { collectTableStats, compareTableStats, type StatsComparison } from "../postgres/stats.js";
import type { Manifest, ObjectRecord } from "../repository/format.js";
import type { Repository } from "../repository/repository.js";
import type { AgeIdentity } from "../stream/age/index.js";
import type { ProgressListener } from "../stream/progress.js";
import { GLOBALS_OBJECT, dbDetails } from "./database.js";
import { archiveToc, restoreArchive } from "./db-archive.js";

export interface CheckResult {
  name: string;
  ok: boolean;
  problem?: string;
}

export interface Validation {
  ok: boolean;
  tables: StatsComparison[];
  checks: CheckResult[];
}

export interface RestoreIntoOptions {
  repository: Repository;
  manifest: Manifest;
  identities: readonly AgeIdentity[];
  /** Server to restore onto (the database field is ignored: `database` names the new one). */
  target: PgConnection;
  database: string;
  jobs: number;
  withGlobals: boolean;
  checks: DatabaseConfig["checks"];
  binDir?: string;
  workDir?: string;
  onProgress?: ProgressListener;
  onNote?: (message: string) => void;
  /**
   * Restore straight into `database` instead of a working name renamed at the end. Only for
   * callers whose target is itself a temporary name (in-place staging, restore tests).
   */
  direct?: boolean;
}

export interface RestoreIntoResult {
  database: string;
  ownership: "restored" | "skipped (roles missing on target)";
  globals?: GlobalsResult;
  validation: Validation;
  restoreMs: number;
}

/**
 * Restores a db backup into a database that must not exist yet, then validates it against the
 * backup's recorded row counts, timestamps and the configured SQL checks. A database this
 * function created is dropped again if the restore fails, so a failure leaves nothing behind;
 * validation failures keep it for inspection (the caller decides what to do).
 */
export async function restoreIntoNewDatabase(
  options: RestoreIntoOptions,
): Promise<RestoreIntoResult> {
  const details = dbDetails(options.manifest.details);
  const serverMajor = await withClient(
    options.target,
    async (client) => {
      if (await databaseExists(client, options.database)) {
        throw new LifeboatError(
          "USAGE",
          `database "${options.database}" already exists on ${options.target.host}:${options.target.port}`,
          {
            hint: "restore into a new name with --into <name>, or replace it with --in-place",
          },
        );
      }
      const version = await client.query<{ num: string }>(
        "SELECT current_setting('server_version_num') AS num",
      );
      return Math.floor(Number(version.rows[0]!.num) / 10000);
    },
    "postgres",
  );
  const tools = {
    pgRestore: dumpTool("pg_restore", Math.max(serverMajor, details.server.major), options.binDir),
    psql: dumpTool("psql", serverMajor, options.binDir),
  };

  let globals: GlobalsResult | undefined;
  const globalsRecord = options.manifest.objects.find((o) => o.name === GLOBALS_OBJECT);
  const globalsSql = globalsRecord
    ? await readText(options.repository, options.manifest, globalsRecord, options.identities)
    : undefined;
  if (options.withGlobals) {
    if (globalsSql === undefined)
      throw new LifeboatError(
        "USAGE",
        `backup ${options.manifest.id} has no globals (it was taken with globals: false)`,
      );
    globals = await restoreGlobals(options.target, globalsSql, tools.psql);
    for (const warning of globals.warnings) options.onNote?.(`globals: ${warning}`);
  }

  // Owners come from the archive; grantees only from the globals (pg_restore does not list them).
  const archive = {
    repository: options.repository,
    manifest: options.manifest,
    identities: options.identities,
    ...(options.workDir ? { workDir: options.workDir } : {}),
  };
  const toc = await archiveToc(archive, tools.pgRestore);
  const needed = new Set([...rolesInToc(toc), ...(globalsSql ? rolesInGlobals(globalsSql) : [])]);
  const present = await withClient(options.target, existingRoles, "postgres");
  const missing = [...needed].filter((role) => !present.has(role));
  if (missing.length > 0) {
    options.onNote?.(
      `roles ${missing.join(", ")} do not exist on the target: restoring without ownership and grants (use --with-globals to restore roles)`,
    );
  }

  // Restored under a working name and renamed only once validated: an interrupted or killed
  // restore never leaves a database under the requested name that looks complete.
  const working = options.direct ? options.database : workingName(options.database);
  const started = Date.now();
  await withClient(
    options.target,
    (client) => createDatabase(client, working, details),
    "postgres",
  );
  try {
    const restoreOptions = {
      connection: options.target,
      database: working,
      pgRestore: tools.pgRestore,
      jobs: options.jobs,
      withoutOwnership: missing.length > 0,
    };
    await restoreArchive(archive, restoreOptions, options.onProgress);
  } catch (error) {
    await withClient(options.target, (client) => dropDatabase(client, working), "postgres").catch(
      () => undefined,
    );
    throw error;
  }
  const restoreMs = Date.now() - started;
  const validation = await validateDatabase(
    { ...options.target, database: working },
    options.manifest,
    options.checks,
  );
  let database = working;
  if (validation.ok && working !== options.database) {
    await withClient(
      options.target,
      (client) => renameDatabase(client, working, options.database),
      "postgres",
    );
    database = options.database;
  } else if (!validation.ok && working !== options.database) {
    options.onNote?.(
      `validation failed: the restored copy is kept as "${working}" for inspection, not as "${options.database}"`,
    );
  }
  return {
    database,
    ownership: missing.length > 0 ? "skipped (roles missing on target)" : "restored",
    ...(globals ? { globals } : {}),
    validation,
    restoreMs,
  };
}

export function workingName(database: string): string {
  const stamp = new Date()
    .toISOString()
    .replace(/[-:.TZ]/g, "")
    .slice(0, 14);
  return `${database.slice(0, 30)}__lifeboat_partial_${stamp}`;
}

/** Row counts and latest timestamps against the manifest, then the configured SQL checks. */
export async function validateDatabase(
  connection: PgConnection,
  manifest: Manifest,
  checks: DatabaseConfig["checks"],
): Promise<Validation> {
  const expected = dbDetails(manifest.details).tables ?? [];
  return withClient(connection, async (client) => {
    const actual = await collectTableStats(
      client,
      expected.map((t) =>
        t.timestampColumn ? { table: t.table, timestampColumn: t.timestampColumn } : t.table,
      ),
    );
    const tables = compareTableStats(expected, actual);
    const results: CheckResult[] = [];
    for (const check of checks) {
      try {
        const result = await client.query({ text: check.sql, rowMode: "array" });
        const value = (result.rows[0] as unknown[] | undefined)?.[0];
        const ok =
          value === true ||
          value === "t" ||
          (typeof value === "number" && value !== 0) ||
          (typeof value === "string" && /^[1-9]\d*$/.test(value));
        results.push(
          ok
            ? { name: check.name, ok }
            : { name: check.name, ok, problem: `returned ${JSON.stringify(value ?? null)}` },
        );
      } catch (error) {
        results.push({ name: check.name, ok: false, problem: (error as Error).message });
      }
    }
    return { ok: tables.every((t) => t.ok) && results.every((r) => r.ok), tables, checks: results };
  });
}

async function readText(
  repository: Repository,
  manifest: Manifest,
  record: ObjectRecord,
  identities: readonly AgeIdentity[],
): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of await repository.openObject(manifest, record, { identities }))
    chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

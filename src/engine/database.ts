import { Readable } from "node:stream";
import { LifeboatError, toLifeboatError } from "../errors.js";
import type { DatabaseConfig, LifeboatConfig } from "../config/schema.js";
import { connectionFromConfig, type PgConnection } from "../postgres/connection.js";
import { dumpDirectory } from "../postgres/dump-directory.js";
import {
  dumpGlobals,
  dumpTool,
  openDumpSnapshot,
  streamCustomDump,
  toolVersion,
  type SnapshotFacts,
} from "../postgres/dump.js";
import { appendRunQuietly } from "../repository/history.js";
import type { Repository } from "../repository/repository.js";
import { runBackup, type CommittedBackup } from "../repository/writer.js";
import { ProgressStage, type ProgressListener } from "../stream/progress.js";
import { encodingFromConfig } from "./files.js";

export const DB_KIND = "db";
export const DUMP_OBJECT = "dump.pgcustom";
export const GLOBALS_OBJECT = "globals.sql";
/** Objects of a directory-format dump are `dump/<file>` (toc.dat, <id>.dat, blobs...). */
export const DIRECTORY_PREFIX = "dump/";

/** What a db backup's manifest carries in `details` (read back by restore and verify). */
export interface DbBackupDetails extends SnapshotFacts {
  format: "custom" | "directory";
  connection: { host: string; port: number; user: string };
  tools: { pgDump: string; pgDumpall?: string };
  globals: { included: boolean; withoutRolePasswords?: boolean };
  throughputBytesPerSecond: number;
}

export function databaseConfig(
  config: LifeboatConfig,
  name?: string,
): { name: string; database: DatabaseConfig } {
  const names = Object.keys(config.databases);
  if (names.length === 0) {
    throw new LifeboatError("CONFIG_INVALID", "no databases are configured", {
      hint: "add one under `databases:` (see `lifeboat config example`)",
    });
  }
  const chosen = name ?? (names.length === 1 ? names[0] : undefined);
  if (!chosen) {
    throw new LifeboatError(
      "USAGE",
      `several databases are configured (${names.join(", ")}); name one`,
    );
  }
  const database = config.databases[chosen];
  if (!database)
    throw new LifeboatError(
      "USAGE",
      `no database named "${chosen}" (configured: ${names.join(", ")})`,
    );
  return { name: chosen, database };
}

export interface BackupDbOptions {
  labels?: Record<string, string>;
  onProgress?: ProgressListener;
  /** Overrides the configured connection (emergency backups of a restore target). */
  connection?: PgConnection;
}

/**
 * A logical backup: pg_dump (custom format, large objects included) of one database inside an
 * exported snapshot, plus the cluster's globals, streamed once through compression and
 * encryption into every repository. No temporary copy touches the disk.
 */
export async function backupDatabase(
  config: LifeboatConfig,
  name: string,
  repositories: Repository[],
  options: BackupDbOptions = {},
): Promise<CommittedBackup> {
  const database = config.databases[name];
  if (!database) throw new LifeboatError("USAGE", `no database named "${name}"`);
  const connection = options.connection ?? connectionFromConfig(database);
  const started = new Date();
  try {
    const committed = await runBackup(
      repositories,
      {
        kind: DB_KIND,
        source: name,
        labels: options.labels ?? {},
        encoding: encodingFromConfig(config),
        operation: `backup db ${name}`,
      },
      async (session) => {
        const snapshot = await openDumpSnapshot(connection, database.keyTables);
        try {
          const pgDump = dumpTool("pg_dump", snapshot.facts.server.major, database.binDir);
          const dumpStarted = Date.now();
          let dumpBytes = 0;
          if (database.format === "directory") {
            await dumpDirectory({
              connection,
              snapshot: snapshot.id,
              pgDump,
              jobs: database.jobs,
              onFile: async (file, open) => {
                const record = await session.addObject(`${DIRECTORY_PREFIX}${file}`, open(), {
                  role: "dump-file",
                });
                dumpBytes += record.plain.bytes;
                options.onProgress?.(dumpBytes, false);
              },
            });
          } else {
            const dump = streamCustomDump({ connection, snapshot: snapshot.id, pgDump });
            const counted = options.onProgress
              ? dump.output.pipe(new ProgressStage(options.onProgress))
              : dump.output;
            if (options.onProgress) dump.output.once("error", (error) => counted.destroy(error));
            const record = await session.addObject(DUMP_OBJECT, counted, {
              role: "dump",
              contentType: "application/x-pg-dump-custom",
            });
            dumpBytes = record.plain.bytes;
          }
          const seconds = Math.max(0.001, (Date.now() - dumpStarted) / 1000);
          let globals: DbBackupDetails["globals"] = { included: false };
          let pgDumpallVersion: string | undefined;
          if (database.globals) {
            const pgDumpall = dumpTool("pg_dumpall", snapshot.facts.server.major, database.binDir);
            const dumped = await dumpGlobals(connection, pgDumpall);
            await session.addObject(GLOBALS_OBJECT, Readable.from([Buffer.from(dumped.sql)]), {
              role: "globals",
              contentType: "application/sql",
            });
            globals = { included: true, withoutRolePasswords: dumped.withoutRolePasswords };
            pgDumpallVersion = await toolVersion(pgDumpall);
          }
          const details: DbBackupDetails = {
            ...snapshot.facts,
            format: database.format,
            connection: { host: connection.host, port: connection.port, user: connection.user },
            tools: {
              pgDump: await toolVersion(pgDump),
              ...(pgDumpallVersion ? { pgDumpall: pgDumpallVersion } : {}),
            },
            globals,
            throughputBytesPerSecond: Math.round(dumpBytes / seconds),
          };
          return details as unknown as Record<string, unknown>;
        } finally {
          await snapshot.release();
        }
      },
    );
    await appendRunQuietly(
      committed.manifests.map((m) => m.repository),
      {
        operation: "backup",
        result: committed.failures.length > 0 ? "partial" : "ok",
        startedAt: started,
        backupId: committed.id,
        source: name,
        bytes: committed.manifests[0]?.manifest.totals.storedBytes ?? 0,
        details: { kind: DB_KIND, failedRepositories: committed.failures.map((f) => f.repository) },
      },
    );
    return committed;
  } catch (error) {
    await appendRunQuietly(repositories, {
      operation: "backup",
      result: "failed",
      startedAt: started,
      source: name,
      error: toLifeboatError(error),
      details: { kind: DB_KIND },
    });
    throw error;
  }
}

export function dbDetails(details: Record<string, unknown>): DbBackupDetails {
  return details as unknown as DbBackupDetails;
}

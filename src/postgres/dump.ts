import type pg from "pg";
import { LifeboatError } from "../errors.js";
import { runTool, toolFailed } from "../util/process.js";
import { spawnOutput, type ToolStream } from "../util/spawn-stream.js";
import { requirePgBin, versionOf, type PgBinary } from "./binaries.js";
import {
  childEnv,
  connect,
  describeConnection,
  libpqEnv,
  type PgConnection,
} from "./connection.js";
import { collectTableStats, type KeyTableSpec, type TableStats } from "./stats.js";

export interface ServerFacts {
  version: string;
  versionNum: number;
  major: number;
  inRecovery: boolean;
  systemIdentifier?: string;
}

/**
 * What a logical dump records about its source, all read inside the exported snapshot the dump
 * itself uses, so row counts and latest timestamps describe exactly the dumped data.
 */
export interface SnapshotFacts {
  server: ServerFacts;
  database: string;
  databaseSizeBytes: number;
  /** Encoding and locale of the database, re-used when a restore creates its copy. */
  encoding?: string;
  collate?: string;
  ctype?: string;
  snapshotTime: string;
  /** WAL position at the snapshot (replay position on a standby). */
  lsn: string;
  tables: TableStats[];
}

export interface DumpSnapshot {
  id: string;
  facts: SnapshotFacts;
  /** Ends the exporting transaction; call after every pg_dump using the snapshot finished. */
  release(): Promise<void>;
}

/** Opens a repeatable-read transaction, exports its snapshot and records the facts above. */
export async function openDumpSnapshot(
  connection: PgConnection,
  keyTables: readonly KeyTableSpec[],
): Promise<DumpSnapshot> {
  const client = await connect(connection);
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    const info = await client.query<{
      snapshot: string;
      at: Date;
      recovery: boolean;
      version: string;
      num: string;
      size: string;
      db: string;
      encoding: string;
      collate: string;
      ctype: string;
    }>(
      `SELECT pg_export_snapshot() AS snapshot, now() AS at, pg_is_in_recovery() AS recovery,
              current_setting('server_version') AS version, current_setting('server_version_num') AS num,
              pg_database_size(current_database())::bigint AS size, current_database() AS db,
              pg_encoding_to_char(d.encoding) AS encoding, d.datcollate AS collate, d.datctype AS ctype
         FROM pg_database d WHERE d.datname = current_database()`,
    );
    const row = info.rows[0]!;
    const lsn = await client.query<{ lsn: string | null }>(
      row.recovery
        ? "SELECT pg_last_wal_replay_lsn()::text AS lsn"
        : "SELECT pg_current_wal_lsn()::text AS lsn",
    );
    const systemIdentifier = await readSystemIdentifier(client);
    const tables = await collectTableStats(client, keyTables);
    const versionNum = Number(row.num);
    return {
      id: row.snapshot,
      facts: {
        server: {
          version: row.version,
          versionNum,
          major: Math.floor(versionNum / 10000),
          inRecovery: row.recovery,
          ...(systemIdentifier ? { systemIdentifier } : {}),
        },
        database: row.db,
        databaseSizeBytes: Number(row.size),
        encoding: row.encoding,
        collate: row.collate,
        ctype: row.ctype,
        snapshotTime: row.at.toISOString(),
        lsn: lsn.rows[0]?.lsn ?? "0/0",
        tables,
      },
      release: async () => {
        await client.query("COMMIT").catch(() => undefined);
        await client.end().catch(() => undefined);
      },
    };
  } catch (error) {
    await client.end().catch(() => undefined);
    if (error instanceof LifeboatError) throw error;
    throw new LifeboatError(
      "PG_QUERY",
      `reading ${describeConnection(connection)}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

async function readSystemIdentifier(client: pg.Client): Promise<string | undefined> {
  try {
    const result = await client.query<{ id: string }>(
      "SELECT system_identifier::text AS id FROM pg_control_system()",
    );
    return result.rows[0]?.id;
  } catch {
    return undefined; // needs pg_read_all_settings or superuser on some setups; optional
  }
}

/** pg_dump/pg_dumpall able to dump a server of this major (same, else the nearest newer). */
export function dumpTool(
  tool: "pg_dump" | "pg_dumpall" | "pg_restore" | "psql",
  major: number,
  binDir?: string,
): PgBinary {
  if (binDir) {
    const path = `${binDir.replace(/\/$/, "")}/${tool}`;
    const toolMajor = versionOf(path);
    if (toolMajor === undefined) {
      throw new LifeboatError("TOOL_MISSING", `${tool} not found in ${binDir}`, {
        hint: "fix databases.<name>.binDir",
      });
    }
    if (toolMajor < major) {
      throw new LifeboatError(
        "TOOL_MISSING",
        `${path} is version ${toolMajor}, older than the server (${major})`,
        {
          hint: `install postgresql-client-${major} or point binDir at it`,
        },
      );
    }
    return { path, binDir, major: toolMajor };
  }
  return requirePgBin(tool, { major, allowNewer: true });
}

export interface DumpOptions {
  connection: PgConnection;
  snapshot: string;
  pgDump: PgBinary;
}

/** `pg_dump -Fc` of the database at the snapshot, uncompressed (lifeboat compresses better). */
export function streamCustomDump(options: DumpOptions): ToolStream {
  const args = [
    "--format=custom",
    "--compress=0",
    "--blobs",
    `--snapshot=${options.snapshot}`,
    "--no-password",
  ];
  return spawnOutput(options.pgDump.path, args, {
    env: childEnv(libpqEnv(options.connection)),
    label: `pg_dump of ${describeConnection(options.connection)}`,
  });
}

export interface GlobalsDump {
  sql: string;
  /** True when role passwords could not be read (not a superuser) and were left out. */
  withoutRolePasswords: boolean;
}

/**
 * Roles, memberships and role settings (`pg_dumpall --globals-only`). Small, so it is collected
 * whole. Non-superusers cannot read pg_authid: retry without passwords rather than fail the backup.
 */
export async function dumpGlobals(
  connection: PgConnection,
  pgDumpall: PgBinary,
): Promise<GlobalsDump> {
  const env = childEnv(libpqEnv(connection));
  const base = ["--globals-only", "--no-password", `--database=${connection.database}`];
  let result = await runTool(pgDumpall.path, base, { env, inheritEnv: false });
  if (result.code !== 0 && /permission denied/i.test(result.stderr)) {
    result = await runTool(pgDumpall.path, [...base, "--no-role-passwords"], {
      env,
      inheritEnv: false,
    });
    if (result.code === 0) return { sql: result.stdout, withoutRolePasswords: true };
  }
  if (result.code !== 0)
    throw toolFailed(pgDumpall.path, result, {
      context: `globals of ${describeConnection(connection)}`,
    });
  return { sql: result.stdout, withoutRolePasswords: false };
}

export async function toolVersion(binary: PgBinary): Promise<string> {
  const result = await runTool(binary.path, ["--version"], { inheritEnv: true });
  return result.stdout.trim();
}

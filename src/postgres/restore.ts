import type pg from "pg";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { LifeboatError } from "../errors.js";
import { runTool } from "../util/process.js";
import { spawnInput } from "../util/spawn-stream.js";
import type { PgBinary } from "./binaries.js";
import {
  childEnv,
  describeConnection,
  libpqEnv,
  quoteIdent,
  type PgConnection,
} from "./connection.js";

export async function databaseExists(client: pg.Client, name: string): Promise<boolean> {
  const result = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
  return (result.rowCount ?? 0) > 0;
}

export interface DatabaseLocale {
  encoding?: string | undefined;
  collate?: string | undefined;
  ctype?: string | undefined;
}

/**
 * Creates the database a restore fills, with the source's encoding and locale when the target
 * server has them (an archive of a LATIN1 or de_DE database restores faithfully), else with the
 * server's defaults. Returns what was used. Values come from the manifest, so they are checked
 * against a strict pattern before they reach SQL.
 */
export async function createDatabase(
  client: pg.Client,
  name: string,
  locale: DatabaseLocale = {},
): Promise<string> {
  const safe = (value: string | undefined) =>
    value && /^[A-Za-z0-9_.@-]{1,64}$/.test(value) ? value : undefined;
  const encoding = safe(locale.encoding);
  const collate = safe(locale.collate);
  const ctype = safe(locale.ctype);
  // template0: the archive recreates everything, so nothing from template1 may collide with it.
  const base = `CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0`;
  const attempts = [
    ...(encoding && collate && ctype
      ? [`${base} ENCODING '${encoding}' LC_COLLATE '${collate}' LC_CTYPE '${ctype}'`]
      : []),
    ...(encoding ? [`${base} ENCODING '${encoding}'`] : []),
    base,
  ];
  let lastError: unknown;
  for (const sql of attempts) {
    try {
      await client.query(sql);
      return sql.slice(base.length).trim() || "server defaults";
    } catch (error) {
      lastError = error;
      // Only locale/encoding mismatches fall back; anything else (permissions, name taken) is final.
      if (!/locale|encoding|collation|LC_/i.test((error as Error).message)) throw error;
    }
  }
  throw lastError;
}

export async function dropDatabase(client: pg.Client, name: string): Promise<void> {
  await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
}

export async function terminateConnections(client: pg.Client, name: string): Promise<void> {
  await client.query(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    [name],
  );
}

export async function renameDatabase(client: pg.Client, from: string, to: string): Promise<void> {
  await terminateConnections(client, from);
  await client.query(`ALTER DATABASE ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}`);
}

export async function existingRoles(client: pg.Client): Promise<Set<string>> {
  const result = await client.query<{ rolname: string }>("SELECT rolname FROM pg_roles");
  return new Set(result.rows.map((row) => row.rolname));
}

/**
 * Owners named in an archive's table of contents (`pg_restore --list`: the last field of each
 * entry; entries without an owner end in a space). Grantees of ACL entries are not listed there,
 * which is why callers also consider the roles of the backup's globals.
 */
export function rolesInToc(toc: string): Set<string> {
  const roles = new Set<string>();
  for (const line of toc.split("\n")) {
    const match = /^\d+;\s+\d+\s+\d+\s+(.*)$/.exec(line.replace(/\r$/, ""));
    if (!match || match[1]!.endsWith(" ")) continue;
    const fields = match[1]!.split(" ");
    const owner = fields[fields.length - 1];
    if (owner && fields.length >= 3) roles.add(owner);
  }
  return roles;
}

/** Role names a `pg_dumpall --globals-only` script creates. */
export function rolesInGlobals(sql: string): Set<string> {
  const roles = new Set<string>();
  for (const match of sql.matchAll(/^CREATE ROLE ("(?:[^"]|"")+"|[^\s;]+)/gm)) {
    const name = match[1]!;
    roles.add(name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name);
  }
  return roles;
}

export interface RestoreArchiveOptions {
  connection: PgConnection;
  database: string;
  pgRestore: PgBinary;
  jobs: number;
  /** Restore without ownership and grants (roles missing on the target). */
  withoutOwnership: boolean;
}

function restoreArgs(options: RestoreArchiveOptions): string[] {
  return [
    `--dbname=${options.database}`,
    "--exit-on-error",
    "--no-password",
    ...(options.jobs > 1 ? [`--jobs=${options.jobs}`] : []),
    ...(options.withoutOwnership ? ["--no-owner", "--no-privileges"] : []),
  ];
}

/** pg_restore reading the archive from a stream (single job: parallel restore needs a file). */
export async function restoreFromStream(
  source: Readable,
  options: RestoreArchiveOptions,
): Promise<void> {
  const sink = spawnInput(options.pgRestore.path, restoreArgs({ ...options, jobs: 1 }), {
    env: childEnv(libpqEnv(options.connection, options.database)),
    label: `pg_restore into ${describeConnection(options.connection, options.database)}`,
  });
  // If pg_restore dies, the source must stop too; if the source fails, pg_restore must not
  // mistake a short archive for a whole one — it sees EOF mid-archive and fails as well.
  const feeding = pipeline(source, sink.input).catch((error: unknown) => {
    sink.child.kill("SIGTERM");
    throw error;
  });
  const [fed, done] = await Promise.allSettled([feeding, sink.done]);
  if (fed.status === "rejected") throw fed.reason;
  if (done.status === "rejected") throw done.reason;
}

/** pg_restore from an archive file (allows --jobs). */
export async function restoreFromFile(file: string, options: RestoreArchiveOptions): Promise<void> {
  const result = await runTool(options.pgRestore.path, [...restoreArgs(options), file], {
    env: childEnv(libpqEnv(options.connection, options.database)),
    inheritEnv: false,
  });
  if (result.code !== 0) {
    const line =
      result.stderr.split("\n").find((l) => /error/i.test(l)) ?? result.stderr.split("\n")[0] ?? "";
    throw new LifeboatError(
      "TOOL_FAILED",
      `pg_restore into ${describeConnection(options.connection, options.database)} failed: ${line.trim()}`,
    );
  }
}

/** `pg_restore --list` of an archive stream: its table of contents (reads only the header). */
export async function listArchive(source: Readable, pgRestore: PgBinary): Promise<string> {
  const sink = spawnInput(pgRestore.path, ["--list"], {
    env: childEnv({}),
    label: "pg_restore --list",
  });
  // pg_restore stops reading once it has the TOC; the rest of the stream is not needed.
  pipeline(source, sink.input).catch(() => source.destroy());
  try {
    const { stdout } = await sink.done;
    return stdout;
  } finally {
    source.destroy();
  }
}

export interface GlobalsResult {
  applied: number;
  skipped: string[];
  warnings: string[];
}

/**
 * Replays `pg_dumpall --globals-only` output. Roles that already exist are fine (the statements
 * fail with "already exists"); the role lifeboat connects as is never altered, so a restore
 * cannot change the password it is logged in with.
 */
export async function restoreGlobals(
  connection: PgConnection,
  sql: string,
  psql: PgBinary,
): Promise<GlobalsResult> {
  const me = connection.user;
  const statements = sql.split("\n");
  const skipped: string[] = [];
  const kept = statements.filter((line) => {
    const target = /^(CREATE|ALTER)\s+ROLE\s+("?)([^"\s;]+)\2/i.exec(line);
    if (target && target[3] === me) {
      skipped.push(line.replace(/PASSWORD\s+'[^']*'/i, "PASSWORD '…'"));
      return false;
    }
    return true;
  });
  const result = await runTool(
    psql.path,
    ["-X", "-q", "-v", "ON_ERROR_STOP=0", "-d", "postgres", "-f", "-"],
    {
      env: childEnv(libpqEnv(connection, "postgres")),
      inheritEnv: false,
      input: kept.join("\n"),
    },
  );
  if (result.code !== 0 && result.code !== 3) {
    throw new LifeboatError(
      "TOOL_FAILED",
      `psql could not apply globals: ${result.stderr.split("\n")[0]}`,
    );
  }
  const warnings = result.stderr
    .split("\n")
    .filter((line) => /ERROR:/.test(line) && !/already exists/.test(line))
    .map((line) => line.replace(/^psql:[^:]*:\d+:\s*/, ""));
  return { applied: kept.length, skipped, warnings };
}

import path from "node:path";
import { fileURLToPath } from "node:url";
import { LifeboatError } from "../errors.js";
import {
  durationSeconds,
  type DatabaseConfig,
  type LifeboatConfig,
  type WalConfig,
} from "../config/schema.js";
import { connectionFromConfig, type PgConnection } from "../postgres/connection.js";

export const DEFAULT_SPOOL_ROOT = "/var/lib/lifeboat/spool";

/** The `wal:` section resolved: connections, spool and the paths archive_command needs. */
export interface WalContext {
  wal: WalConfig;
  databaseName: string;
  database: DatabaseConfig;
  /** For SQL (settings, status, restore points, validation). */
  connection: PgConnection;
  /** For pg_basebackup and pg_receivewal (needs the REPLICATION attribute). */
  replication: PgConnection;
  spoolDir: string;
}

export function walContext(config: LifeboatConfig): WalContext {
  const wal = config.wal;
  if (!wal) {
    throw new LifeboatError("WAL_NOT_CONFIGURED", "the configuration has no `wal:` section");
  }
  const database = config.databases[wal.database];
  if (!database) {
    throw new LifeboatError("CONFIG_INVALID", `wal.database: no database named "${wal.database}"`);
  }
  const connection = connectionFromConfig(database);
  const r = wal.replication ?? {};
  const replication: PgConnection = {
    ...connection,
    ...(r.host ? { host: r.host } : {}),
    ...(r.port ? { port: r.port } : {}),
    ...(r.user ? { user: r.user } : {}),
    ...(r.password !== undefined ? { password: r.password } : {}),
    ...(r.passwordFile ? { passwordFile: r.passwordFile } : {}),
  };
  return {
    wal,
    databaseName: wal.database,
    database,
    connection,
    replication,
    spoolDir: path.resolve(wal.spoolDir ?? path.join(DEFAULT_SPOOL_ROOT, wal.database)),
  };
}

export const archiveTimeoutSeconds = (wal: WalConfig) => durationSeconds(wal.archiveTimeout);

/** Absolute path of a file of the built CLI (dist/...), for commands PostgreSQL runs. */
export function distPath(...parts: string[]): string {
  return path.join(path.dirname(fileURLToPath(import.meta.url)), "..", ...parts);
}

/** The lifeboat CLI entry point (dist/cli/bin.js). */
export const cliEntry = () => distPath("cli", "bin.js");

/** POSIX shell quoting for one word. */
export function shellWord(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * archive_command using the fast entry (dist/cli/wal-push.js): it loads no configuration unless
 * it must start the uploader, so each segment costs about one node start-up plus a local copy.
 */
export function archiveCommand(context: WalContext, configFile: string): string {
  return [
    process.execPath,
    distPath("cli", "wal-push.js"),
    "%p",
    "--spool",
    context.spoolDir,
    "--max-segments",
    String(context.wal.spoolMaxSegments),
    "--config",
    path.resolve(configFile),
  ]
    .map((word) => (word === "%p" ? word : shellWord(word)))
    .join(" ");
}

/** restore_command for standbys and manual recoveries (needs the config and identity readable). */
export function restoreCommand(configFile: string): string {
  return [process.execPath, cliEntry(), "--config", path.resolve(configFile), "wal", "fetch"]
    .map(shellWord)
    .concat(["%f", "%p"])
    .join(" ");
}

import { existsSync, rmSync } from "node:fs";
import { appendFile, chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LifeboatError } from "../errors.js";
import { onExit, runTool, toolFailed } from "../util/process.js";
import { requirePgBin, versionOf } from "./binaries.js";
import {
  HOST,
  isPortConflict,
  mkdirOwned,
  pgCtlStart,
  serverSpawn,
  stopPostgres,
  stopSync,
  unprivilegedRunAs,
  type RunningPostgres,
} from "./local-server.js";

/**
 * A throwaway PostgreSQL cluster in a temporary directory, for tests and `lifeboat demo`: trust
 * auth on 127.0.0.1 and a private socket directory, removed by destroy() or when the process exits.
 */

export {
  postmasterPid,
  startPostgresOnDataDir,
  stopPostgres,
  type RunningPostgres,
  type ServerOptions,
  type ShutdownMode,
} from "./local-server.js";

export interface ThrowawayClusterOptions {
  /** Parent of the temporary directory; default os.tmpdir(). Must be reachable by the server user. */
  baseDir?: string;
  /** Default: a free port picked by the kernel (retried if another server grabs it first). */
  port?: number;
  /** Extra postgresql.conf settings, e.g. wal_level, archive_mode, archive_command, fsync. */
  settings?: Record<string, string>;
  initdbArgs?: string[];
  superuser?: string;
  env?: Record<string, string>;
  logFile?: string;
  /** Wanted PostgreSQL major; default the newest installed. Ignored when binDir is given. */
  major?: number;
  binDir?: string;
}

export interface ThrowawayCluster extends RunningPostgres {
  /** The temporary directory holding data/, sock/ and postgres.log; destroy() removes it. */
  readonly baseDir: string;
  readonly socketDir: string;
  readonly superuser: string;
  /** libpq variables for 127.0.0.1 with trust auth (no password). */
  connectionEnv(database?: string): Record<string, string>;
  url(database?: string): string;
  /** Runs SQL through psql (unaligned, tuples only, quiet); returns stdout without the final newline. */
  psql(sql: string, options?: { database?: string }): Promise<string>;
  restart(): Promise<void>;
  destroy(): Promise<void>;
}

// Settings that would expose a trust-auth server beyond this host or break our bookkeeping.
const RESERVED = new Set(["listen_addresses", "port", "unix_socket_directories"]);

export async function startThrowawayCluster(
  options: ThrowawayClusterOptions = {},
): Promise<ThrowawayCluster> {
  for (const name of Object.keys(options.settings ?? {})) {
    if (RESERVED.has(name) || !/^[a-z_][a-z0-9_.]*$/i.test(name)) {
      throw new LifeboatError("USAGE", `throwaway cluster setting "${name}" is not allowed`, {
        hint: "listen_addresses, port and unix_socket_directories are managed by lifeboat",
      });
    }
  }
  const { binDir, major } = serverBinaries(options);
  const superuser = options.superuser ?? "postgres";
  const runAs = unprivilegedRunAs();
  const baseDir = await mkdtemp(join(options.baseDir ?? tmpdir(), "lifeboat-pg-"));
  const dataDir = join(baseDir, "data");
  const socketDir = join(baseDir, "sock");
  const logFile = options.logFile ?? join(baseDir, "postgres.log");
  // Registered before initdb so that even an interrupted setup leaves no directory behind.
  const unregister = onExit(() => {
    stopSync(dataDir, binDir, runAs);
    rmSync(baseDir, { recursive: true, force: true });
  });
  try {
    if (runAs) await chown(baseDir, runAs.uid, runAs.gid);
    await mkdirOwned(socketDir, runAs);
    const initdbArgs = ["-D", dataDir, "-U", superuser, "-A", "trust", "-E", "UTF8", "--locale=C"];
    const init = await runTool(
      join(binDir, "initdb"),
      [...initdbArgs, ...(options.initdbArgs ?? [])],
      serverSpawn(runAs, baseDir),
    );
    if (init.code !== 0) {
      const hint = runAs
        ? `the server runs as uid ${runAs.uid}; baseDir must be reachable by it`
        : undefined;
      throw toolFailed("initdb", init, { hint, context: dataDir });
    }
    await writeFile(join(dataDir, "pg_hba.conf"), HBA);
    await appendFile(join(dataDir, "postgresql.conf"), "\ninclude = 'lifeboat.conf'\n");
    let port = options.port ?? (await freePort());
    for (let attempt = 1; ; attempt++) {
      const conf = {
        listen_addresses: HOST,
        port: String(port),
        unix_socket_directories: socketDir,
      };
      await writeFile(join(dataDir, "lifeboat.conf"), confLines({ ...conf, ...options.settings }));
      try {
        await pgCtlStart({ dataDir, binDir, logFile, runAs, env: options.env, port });
        break;
      } catch (error) {
        // Another process may take the port between our probe and postgres binding it.
        const retry = options.port === undefined && attempt < 3 && isPortConflict(error);
        if (!retry) throw error;
        port = await freePort();
      }
    }
    const connectionEnv = (database = "postgres") => ({
      PGHOST: HOST,
      PGPORT: String(port),
      PGUSER: superuser,
      PGDATABASE: database,
    });
    let destroyed = false;
    const cluster: ThrowawayCluster = {
      baseDir,
      dataDir,
      socketDir,
      host: HOST,
      port,
      binDir,
      major,
      logFile,
      superuser,
      connectionEnv,
      url: (database = "postgres") => `postgresql://${superuser}@${HOST}:${port}/${database}`,
      psql: (sql, psqlOptions = {}) =>
        runPsql(binDir, major, connectionEnv(psqlOptions.database), sql),
      stop: (mode = "fast") => stopPostgres(dataDir, mode, { binDir }),
      async restart() {
        await stopPostgres(dataDir, "fast", { binDir });
        await pgCtlStart({ dataDir, binDir, logFile, runAs, env: options.env, port });
      },
      async destroy() {
        if (destroyed) return;
        destroyed = true;
        await stopPostgres(dataDir, "immediate", { binDir });
        unregister();
        await rm(baseDir, { recursive: true, force: true });
      },
    };
    return cluster;
  } catch (error) {
    stopSync(dataDir, binDir, runAs);
    unregister();
    await rm(baseDir, { recursive: true, force: true });
    throw error;
  }
}

const HBA = `# lifeboat throwaway cluster: no passwords, so only its private socket and loopback are trusted.
local   all          all                 trust
local   replication  all                 trust
host    all          all   127.0.0.1/32  trust
host    replication  all   127.0.0.1/32  trust
`;

function confLines(settings: Record<string, string>): string {
  // postgresql.conf strings: quotes doubled, backslashes are escapes, no raw newlines allowed.
  const quote = (value: string) =>
    `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''").replace(/\n/g, "\\n").replace(/\r/g, "\\r")}'`;
  return Object.entries(settings)
    .map(([name, value]) => `${name} = ${quote(value)}\n`)
    .join("");
}

async function runPsql(
  binDir: string,
  major: number,
  conn: Record<string, string>,
  sql: string,
): Promise<string> {
  const psql = existsSync(join(binDir, "psql"))
    ? join(binDir, "psql")
    : requirePgBin("psql", { major, allowNewer: true }).path;
  const args = ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"];
  const env = { ...withoutPgEnv(process.env), ...conn, PGCONNECT_TIMEOUT: "10" };
  const result = await runTool(psql, args, { env, inheritEnv: false, input: sql });
  if (result.code === 0) return result.stdout.replace(/\n$/, "");
  const where = `${conn.PGHOST}:${conn.PGPORT}/${conn.PGDATABASE}`;
  const line = (result.stderr.split("\n").find((l) => l.trim() !== "") ?? "").replace(
    /^psql:<stdin>:\d+:\s*/,
    "",
  );
  // psql exit codes: 2 = connection lost or refused, 3 = an SQL statement failed under ON_ERROR_STOP.
  if (result.code === 3) throw new LifeboatError("PG_QUERY", `query failed on ${where}: ${line}`);
  if (result.code === 2)
    throw new LifeboatError("PG_CONNECT", `cannot connect to ${where}: ${line}`);
  throw toolFailed(psql, result, { context: where });
}

function withoutPgEnv(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(env).filter(([key]) => !key.startsWith("PG")));
}

/** initdb, pg_ctl and postgres from one installation, so versions cannot mix. */
function serverBinaries(options: { binDir?: string; major?: number }): {
  binDir: string;
  major: number;
} {
  const binDir = options.binDir ?? requirePgBin("postgres", { major: options.major }).binDir;
  const major = versionOf(join(binDir, "postgres"));
  const missing = ["postgres", "initdb", "pg_ctl"].find((tool) => !existsSync(join(binDir, tool)));
  if (major === undefined || missing) {
    throw new LifeboatError(
      "TOOL_MISSING",
      `${missing ?? "postgres"} is missing or broken in ${binDir}`,
      {
        hint: `install the PostgreSQL server package (Debian/Ubuntu: apt-get install postgresql-${major ?? options.major ?? "<major>"})`,
      },
    );
  }
  return { binDir, major };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chown, lchown, mkdir, open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { LifeboatError } from "../errors.js";
import { onExit, runTool, toolFailed, type ToolResult } from "../util/process.js";
import { requirePgBin } from "./binaries.js";

/**
 * Starting and stopping a PostgreSQL server on a local data directory we own: a throwaway cluster
 * (cluster.ts) or a restored data directory. Servers listen on 127.0.0.1 only and are stopped when
 * this process exits, because pg_ctl puts them in their own session where our signals never reach.
 */

export type ShutdownMode = "smart" | "fast" | "immediate";
export const HOST = "127.0.0.1";
const START_TIMEOUT_SECONDS = 60;

/** The OS account servers run as: postgres refuses root, so root hands them to an unprivileged user. */
export interface RunAs {
  uid: number;
  gid: number;
}

export interface ServerOptions {
  port: number;
  /** Directory holding pg_ctl/postgres; default: the install matching the data dir's PG_VERSION. */
  binDir?: string;
  /** Unix socket directory; default none (TCP only), so no root-owned /var/run is needed. */
  socketDir?: string;
  /** Default: `<dataDir>.log` next to the data directory. */
  logFile?: string;
  /** The server's whole environment besides PATH, LANG, LC_* and TZ (archive_command runs with it). */
  env?: Record<string, string>;
  /** Passed as `-c name=value`; they override postgresql.conf (and ALTER SYSTEM). */
  settings?: Record<string, string>;
  timeoutSeconds?: number;
  /** Stop the server (immediate) if this process exits first; default true. */
  stopOnExit?: boolean;
}

export interface RunningPostgres {
  readonly dataDir: string;
  readonly host: typeof HOST;
  readonly port: number;
  readonly binDir: string;
  readonly major: number;
  readonly logFile: string;
  stop(mode?: ShutdownMode): Promise<void>;
}

/** Starts an existing data directory (e.g. a restored one) with `pg_ctl -w start`. */
export async function startPostgresOnDataDir(
  dataDir: string,
  options: ServerOptions,
): Promise<RunningPostgres> {
  const major = dataDirMajor(dataDir);
  const binDir = options.binDir ?? requirePgBin("pg_ctl", { major }).binDir;
  const runAs = await runAsForDataDir(dataDir, true);
  const logFile = options.logFile ?? `${dataDir}.log`;
  if (options.socketDir !== undefined) await mkdirOwned(options.socketDir, runAs);
  const settings = {
    listen_addresses: HOST,
    port: String(options.port),
    unix_socket_directories: options.socketDir ?? "",
    ...options.settings,
  };
  const argv = Object.entries(settings).map(
    ([name, value]) => `-c ${shellQuote(`${name}=${value}`)}`,
  );
  const start = { dataDir, binDir, logFile, runAs, env: options.env, postgresArgs: argv.join(" ") };
  await pgCtlStart({ ...start, port: options.port, timeoutSeconds: options.timeoutSeconds });
  const unregister =
    options.stopOnExit === false ? () => {} : onExit(() => stopSync(dataDir, binDir, runAs));
  return {
    dataDir,
    host: HOST,
    port: options.port,
    binDir,
    major,
    logFile,
    async stop(mode: ShutdownMode = "fast") {
      await stopPostgres(dataDir, mode, { binDir });
      unregister();
    },
  };
}

/** Stops the server on `dataDir` (pg_ctl -w stop); a stopped server is not an error. */
export async function stopPostgres(
  dataDir: string,
  mode: ShutdownMode = "fast",
  options: { binDir?: string } = {},
): Promise<void> {
  if (!existsSync(join(dataDir, "postmaster.pid"))) return;
  const binDir = options.binDir ?? requirePgBin("pg_ctl", { major: dataDirMajor(dataDir) }).binDir;
  const runAs = await runAsForDataDir(dataDir, false);
  const args = ["-D", dataDir, "-m", mode, "-w", "-t", String(START_TIMEOUT_SECONDS), "stop"];
  const result = await runTool(join(binDir, "pg_ctl"), args, serverSpawn(runAs, dataDir));
  if (result.code !== 0 && existsSync(join(dataDir, "postmaster.pid"))) {
    throw toolFailed("pg_ctl", result, { context: `stopping ${dataDir}` });
  }
}

interface StartParams {
  dataDir: string;
  binDir: string;
  logFile: string;
  port: number;
  runAs: RunAs | undefined;
  env?: Record<string, string>;
  /** One string because pg_ctl hands it to /bin/sh; every value must already be shell-quoted. */
  postgresArgs?: string;
  timeoutSeconds?: number;
}

export async function pgCtlStart(p: StartParams): Promise<void> {
  // pg_ctl builds a shell command with the paths in double quotes; refuse what that cannot carry.
  for (const path of [p.dataDir, p.logFile]) {
    if (/["$`\\\n]/.test(path))
      throw new LifeboatError("USAGE", `path not usable by pg_ctl: ${path}`);
  }
  const log = await open(p.logFile, "a");
  const logStart = (await log.stat()).size;
  await log.close();
  if (p.runAs) await chown(p.logFile, p.runAs.uid, p.runAs.gid);
  const timeout = String(p.timeoutSeconds ?? START_TIMEOUT_SECONDS);
  const args = ["-D", p.dataDir, "-l", p.logFile, "-w", "-t", timeout];
  if (p.postgresArgs) args.push("-o", p.postgresArgs);
  const result: ToolResult = await runTool(join(p.binDir, "pg_ctl"), [...args, "start"], {
    ...serverSpawn(p.runAs, p.dataDir, p.env),
  });
  if (result.code === 0) return;
  // A timed-out start may still come up later; make sure it does not outlive the failure.
  stopSync(p.dataDir, p.binDir, p.runAs);
  const tail = (await readLogFrom(p.logFile, logStart)).trimEnd().split("\n").slice(-12).join("\n");
  // The FATAL line is often a summary ("configuration file contains errors"); the cause is the
  // first complaint, e.g. `LOG: invalid value for parameter` or `LOG: could not bind`.
  const complaint = tail
    .split("\n")
    .find((l) =>
      /\b(FATAL|PANIC|ERROR):|invalid value|unrecognized|syntax error|could not/.test(l),
    );
  const reason = complaint?.replace(/^\S+ \S+ \S+ \[\d+\] /, "") ?? firstLine(result.stderr);
  throw new LifeboatError(
    "TOOL_FAILED",
    `PostgreSQL ${p.dataDir} (port ${p.port}) did not start: ${reason}\n--- server log ---\n${tail}`,
    {
      hint: "the last lines of the server log are shown above",
      data: { tool: "pg_ctl", port: p.port, logFile: p.logFile, logTail: tail },
    },
  );
}

/** What the server logged since `offset`, at most the last 64 KiB. */
async function readLogFrom(path: string, offset: number): Promise<string> {
  try {
    const file = await open(path, "r");
    try {
      const size = (await file.stat()).size;
      const start = Math.max(offset, size - 65_536);
      const buffer = Buffer.alloc(Math.max(0, size - start));
      await file.read(buffer, 0, buffer.length, start);
      return buffer.toString("utf8");
    } finally {
      await file.close();
    }
  } catch {
    return "";
  }
}

export function isPortConflict(error: unknown): boolean {
  const tail = error instanceof LifeboatError ? String(error.data?.logTail ?? "") : "";
  return /could not bind|Address already in use|could not create any TCP\/IP sockets|lock file .*\.s\.PGSQL/.test(
    tail,
  );
}

/** Synchronous immediate stop for exit hooks, where nothing asynchronous gets to run. */
export function stopSync(dataDir: string, binDir: string, runAs: RunAs | undefined): void {
  const pidFile = join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  spawnSync(join(binDir, "pg_ctl"), ["-D", dataDir, "-m", "immediate", "-w", "-t", "20", "stop"], {
    ...serverSpawn(runAs, dataDir),
    stdio: "ignore",
    timeout: 25_000,
  });
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  try {
    if (pid > 0) process.kill(pid, "SIGQUIT"); // what pg_ctl -m immediate would have sent
  } catch {
    // already gone
  }
}

export function serverSpawn(
  runAs: RunAs | undefined,
  cwd: string,
  extraEnv?: Record<string, string>,
) {
  // A minimal environment: the server runs as another user and archive_command should see only
  // what the caller passes, not this process's secrets. PG* variables would change its defaults.
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && /^(PATH|LANG|LC_[A-Z]+|TZ)$/.test(key)) env[key] = value;
  }
  return { env: { ...env, ...extraEnv }, inheritEnv: false, uid: runAs?.uid, gid: runAs?.gid, cwd };
}

let cachedRunAs: RunAs | undefined | null = null;

/** undefined when not root; otherwise the `postgres` account, else `nobody`. */
export function unprivilegedRunAs(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  if (cachedRunAs !== null) return cachedRunAs;
  for (const user of ["postgres", "nobody"]) {
    try {
      const id = (flag: string) =>
        Number(execFileSync("id", [flag, user], { encoding: "utf8", stdio: "pipe" }).trim());
      cachedRunAs = { uid: id("-u"), gid: id("-g") };
      return cachedRunAs;
    } catch {
      // no such user; try the next
    }
  }
  throw new LifeboatError(
    "TOOL_FAILED",
    "running as root, but neither a postgres nor a nobody user exists",
    {
      hint: "PostgreSQL refuses to run as root; create a postgres user or run lifeboat as a normal user",
    },
  );
}

/**
 * As root, the data dir's owner runs the server. A root-owned dir (e.g. restored by root) cannot be
 * started at all, so when `adopt` is set it is handed to the server user first.
 */
async function runAsForDataDir(dataDir: string, adopt: boolean): Promise<RunAs | undefined> {
  const fallback = unprivilegedRunAs();
  if (!fallback) return undefined;
  const owner = await stat(dataDir);
  if (owner.uid !== 0) return { uid: owner.uid, gid: owner.gid };
  if (adopt) await chownTree(dataDir, fallback);
  return fallback;
}

async function chownTree(path: string, runAs: RunAs): Promise<void> {
  await lchown(path, runAs.uid, runAs.gid);
  for (const entry of await readdir(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) await chownTree(child, runAs);
    else await lchown(child, runAs.uid, runAs.gid);
  }
}

export async function mkdirOwned(dir: string, runAs: RunAs | undefined): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (runAs) await chown(dir, runAs.uid, runAs.gid);
}

function dataDirMajor(dataDir: string): number {
  let text: string;
  try {
    text = readFileSync(join(dataDir, "PG_VERSION"), "utf8");
  } catch (error) {
    throw new LifeboatError(
      "TOOL_FAILED",
      `${dataDir} is not a PostgreSQL data directory (no PG_VERSION)`,
      {
        hint: "point at the directory that contains PG_VERSION, base/ and global/",
        cause: error,
      },
    );
  }
  return Number.parseInt(text.trim(), 10);
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function firstLine(text: string): string {
  return (
    text
      .split("\n")
      .find((l) => l.trim() !== "")
      ?.trim() ?? "no output"
  );
}

// Exposed for tests that need to see the server process itself.
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

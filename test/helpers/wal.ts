import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { unprivilegedRunAs } from "../../src/postgres/local-server.js";
import { startThrowawayCluster, type ThrowawayCluster } from "../../src/postgres/cluster.js";
import { generateIdentity } from "../../src/stream/age/keys.js";
import { runTool, type ToolResult } from "../../src/util/process.js";
import { createTestBucket, deleteTestBucket, s3TestConfig } from "./s3.js";

/**
 * A WAL test bed: a directory the PostgreSQL server user can reach (spool, config), an age key
 * pair, an S3 (or local) repository, a lifeboat.yaml with a `wal:` section, and a throwaway
 * cluster whose archive_command is the built CLI's fast push entry.
 */

export const REPO_ROOT = path.resolve(import.meta.dirname, "../..");
export const CLI = path.join(REPO_ROOT, "dist/cli/bin.js");
export const PUSH = path.join(REPO_ROOT, "dist/cli/wal-push.js");

export interface WalBedOptions {
  mode?: "archive" | "stream";
  /** S3 endpoint override (a proxy the test can cut). */
  endpoint?: string;
  local?: boolean;
  archiveTimeout?: string;
  spoolMaxSegments?: number;
  settings?: Record<string, string>;
}

export interface WalBed {
  dir: string;
  configFile: string;
  identityFile: string;
  spoolDir: string;
  bucket?: string;
  port: number;
  cluster: ThrowawayCluster;
  cli(args: string[], options?: { timeoutMs?: number }): Promise<ToolResult>;
  client(): Promise<pg.Client>;
  destroy(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export async function startWalBed(options: WalBedOptions = {}): Promise<WalBed> {
  const dir = await mkdtemp(path.join(tmpdir(), "lifeboat-wal-"));
  await chmod(dir, 0o755);
  const runAs = unprivilegedRunAs();
  const spoolDir = path.join(dir, "spool");
  await mkdir(spoolDir, { mode: 0o755 });
  if (runAs) await chown(spoolDir, runAs.uid, runAs.gid);
  const { identity, recipient } = generateIdentity();
  const identityFile = path.join(dir, "identity.txt");
  await writeFile(identityFile, `${identity}\n`, { mode: 0o600 });
  const s3 = s3TestConfig();
  const bucket = options.local ? undefined : await createTestBucket("lifeboat-wal");
  const repoDir = path.join(dir, "repo");
  const port = await freePort();
  const repository = options.local
    ? `  main: { type: local, path: ${repoDir} }`
    : `  main:
    type: s3
    endpoint: ${options.endpoint ?? s3.endpoint}
    region: ${s3.region}
    bucket: ${bucket}
    pathStyle: true
    credentials: { accessKeyId: ${s3.accessKeyId}, secretAccessKey: ${s3.secretAccessKey} }`;
  const configFile = path.join(dir, "lifeboat.yaml");
  await writeFile(
    configFile,
    `repositories:
${repository}
storage: { retryAttempts: 2, retryBaseDelayMs: 50 }
encryption:
  recipients: [${recipient}]
  identityFile: ${identityFile}
databases:
  app:
    host: 127.0.0.1
    port: ${port}
    user: postgres
    database: app
    keyTables: [events]
wal:
  database: app
  mode: ${options.mode ?? "archive"}
  spoolDir: ${spoolDir}
  spoolMaxSegments: ${options.spoolMaxSegments ?? 64}
  archiveTimeout: ${options.archiveTimeout ?? "1s"}
  partialInterval: 500ms
  prefetch: 4
`,
    { mode: 0o644 },
  );
  const cli = (args: string[], opts: { timeoutMs?: number } = {}) =>
    runTool(process.execPath, [CLI, "--config", configFile, ...args], {
      timeoutMs: opts.timeoutMs ?? 120_000,
    });
  const init = await cli(["repo", "init"]);
  if (init.code !== 0) throw new Error(`repo init failed: ${init.stderr}`);
  if (options.local && runAs) await chownTree(repoDir, runAs);
  const archive: Record<string, string> =
    options.mode === "stream"
      ? {}
      : {
          archive_mode: "on",
          archive_command: `${process.execPath} ${PUSH} %p --spool ${spoolDir} --max-segments ${options.spoolMaxSegments ?? 64} --config ${configFile}`,
          archive_timeout: options.archiveTimeout ?? "1s",
        };
  const cluster = await startThrowawayCluster({
    port,
    initdbArgs: ["--wal-segsize=1"],
    settings: {
      wal_level: "replica",
      track_commit_timestamp: "on",
      ...archive,
      ...options.settings,
    },
  });
  await cluster.psql("CREATE DATABASE app");
  return {
    dir,
    configFile,
    identityFile,
    spoolDir,
    ...(bucket ? { bucket } : {}),
    port,
    cluster,
    cli,
    async client() {
      const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "app" });
      client.on("error", () => undefined);
      await client.connect();
      return client;
    },
    async destroy() {
      await cluster.destroy();
      await stopSpoolProcesses(spoolDir);
      if (bucket) await deleteTestBucket(bucket).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Stops the uploader a push started (by its pid file), so no process outlives the test. */
export async function stopSpoolProcesses(spoolDir: string): Promise<void> {
  const { readFile } = await import("node:fs/promises");
  const pid = Number(
    (await readFile(path.join(spoolDir, "uploader.pid"), "utf8").catch(() => "")).trim(),
  );
  if (pid > 0) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
}

async function chownTree(dir: string, runAs: { uid: number; gid: number }): Promise<void> {
  await runTool("chown", ["-R", `${runAs.uid}:${runAs.gid}`, dir]);
}

/** Writes timestamped rows, one transaction each, until stopped; the rows carry commit timestamps. */
export function startWorkload(
  client: pg.Client,
  intervalMs = 20,
): { stop(): Promise<number>; pause(): Promise<void>; resume(): void } {
  let running = true;
  let paused: Promise<void> | undefined;
  let release: (() => void) | undefined;
  let idle: (() => void) | undefined;
  let count = 0;
  const loop = (async () => {
    while (running) {
      if (paused) {
        idle?.();
        await paused;
      }
      await client.query("INSERT INTO events (note) VALUES ('w')");
      count++;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      release?.();
      await loop;
      return count;
    },
    /** Resolves once no insert is in flight. */
    pause() {
      paused = new Promise((resolve) => (release = resolve));
      return new Promise((resolve) => (idle = resolve));
    },
    resume() {
      paused = undefined;
      release?.();
    },
  };
}

export const EVENTS_TABLE =
  "CREATE TABLE events (id bigserial PRIMARY KEY, note text, created_at timestamptz NOT NULL DEFAULT clock_timestamp())";

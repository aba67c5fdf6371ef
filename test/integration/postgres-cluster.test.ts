import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { connect, createServer, type AddressInfo } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { freePort } from "../helpers/wal.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isLifeboatError } from "../../src/errors.js";
import { installedMajors, pgTool } from "../../src/postgres/binaries.js";
import {
  postmasterPid,
  startPostgresOnDataDir,
  startThrowawayCluster,
} from "../../src/postgres/cluster.js";
import { runTool } from "../../src/util/process.js";
import { withCluster } from "../helpers/pg.js";

const REPO = resolve(import.meta.dirname, "../..");

describe("throwaway PostgreSQL cluster", () => {
  const cluster = withCluster();

  it("runs queries", async () => {
    const pg = cluster();
    await pg.psql("CREATE TABLE items (id int PRIMARY KEY, name text)");
    await pg.psql("INSERT INTO items VALUES (1, 'one'), (2, 'two')");
    expect(await pg.psql("SELECT id, name FROM items ORDER BY id")).toBe("1|one\n2|two");
    expect(await pg.psql("SELECT current_user")).toBe("postgres");
    expect(await pg.psql("SHOW server_version_num")).toMatch(new RegExp(`^${pg.major}\\d{4}$`));
  });

  it("maps SQL errors to PG_QUERY with psql's message", async () => {
    const error = await cluster()
      .psql("SELECT * FROM nope")
      .catch((e: unknown) => e);
    expect(isLifeboatError(error, "PG_QUERY")).toBe(true);
    expect((error as Error).message).toContain('relation "nope" does not exist');
  });

  it("listens on 127.0.0.1 only", async () => {
    const pg = cluster();
    expect(await pg.psql("SHOW listen_addresses")).toBe("127.0.0.1");
    expect(pg.connectionEnv()).toEqual({
      PGHOST: "127.0.0.1",
      PGPORT: String(pg.port),
      PGUSER: "postgres",
      PGDATABASE: "postgres",
    });
    expect(listeningAddresses(pg.port)).toEqual(["0100007F"]);
    for (const address of externalAddresses()) {
      await expect(canConnect(address, pg.port)).resolves.toBe(false);
    }
  });

  it("keeps data across restart()", async () => {
    const pg = cluster();
    await pg.psql("CREATE TABLE kept AS SELECT 42 AS answer");
    await pg.restart();
    expect(await pg.psql("SELECT answer FROM kept")).toBe("42");
  });
});

describe("cluster lifecycle", () => {
  it("runs two clusters concurrently on different ports", async () => {
    const [a, b] = await Promise.all([startThrowawayCluster(), startThrowawayCluster()]);
    try {
      expect(a.port).not.toBe(b.port);
      await a.psql("CREATE TABLE only_in_a (x int)");
      expect(await a.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'")).toBe(
        "1",
      );
      expect(await b.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'")).toBe(
        "0",
      );
    } finally {
      await Promise.all([a.destroy(), b.destroy()]);
    }
  });

  it("reports TOOL_MISSING for a major version that is not installed", async () => {
    expect(installedMajors()).toContain(15);
    const error = await startThrowawayCluster({ major: 99 }).catch((e: unknown) => e);
    expect(isLifeboatError(error, "TOOL_MISSING")).toBe(true);
    expect((error as Error).message).toMatch(/postgres from PostgreSQL 99 is not installed/);
    expect((error as { hint: string }).hint).toContain("postgresql-99");
    expect(() => pgTool("pg_dump", 99)).toThrow(/pg_dump from PostgreSQL 99/);
    expect(pgTool("pg_dump", 15)).toBe("/usr/lib/postgresql/15/bin/pg_dump");
  });

  it("explains a failed start with the server log and cleans up", async () => {
    const blocker = createServer();
    await new Promise<void>((done) => blocker.listen(0, "127.0.0.1", done));
    const port = (blocker.address() as AddressInfo).port;
    const baseDir = await mkdtemp(join(tmpdir(), "lifeboat-test-"));
    await chmod(baseDir, 0o755); // the server user (when we are root) must be able to enter it
    try {
      const error = await startThrowawayCluster({ port, baseDir }).catch((e: unknown) => e);
      expect(isLifeboatError(error, "TOOL_FAILED")).toBe(true);
      expect((error as Error).message).toMatch(/did not start: LOG: +could not bind IPv4 address/);
      expect((error as Error).message).toContain("Address already in use");
      expect(readdirSync(baseDir)).toEqual([]);
    } finally {
      blocker.close();
      await rm(baseDir, { recursive: true, force: true });
    }
  });

  it("leaves no process and no directory after destroy()", async () => {
    const pg = await startThrowawayCluster({ settings: { fsync: "off" } });
    const pid = postmasterPid(pg.dataDir);
    expect(pid).toBeDefined();
    const family = [pid!, ...childrenOf(pid!)];
    expect(family.length).toBeGreaterThan(1);
    await pg.destroy();
    expect(family.filter(isAlive)).toEqual([]);
    expect(processesMentioning(pg.dataDir)).toEqual([]);
    expect(existsSync(pg.baseDir)).toBe(false);
  });

  it("starts an existing data directory with startPostgresOnDataDir", async () => {
    const pg = await startThrowawayCluster({ settings: { fsync: "off" } });
    try {
      await pg.psql("CREATE TABLE restored AS SELECT 'yes' AS ok");
      await pg.stop();
      // A port of its own: pg.port + 1 may belong to a cluster of a test running in parallel.
      const server = await startPostgresOnDataDir(pg.dataDir, { port: await freePort() });
      const psql = pgTool("psql", server.major);
      const result = await runTool(psql, ["-X", "-A", "-t", "-c", "SELECT ok FROM restored"], {
        env: { ...pg.connectionEnv(), PGPORT: String(server.port) },
      });
      expect(result.stdout.trim()).toBe("yes");
      await server.stop();
      expect(postmasterPid(pg.dataDir)).toBeUndefined();
    } finally {
      await pg.destroy();
    }
  });
});

describe("cleanup when the process ends", () => {
  let modulePath: string;
  const outDir = join(REPO, "node_modules/.cache/lifeboat-test", `cluster-${process.pid}`);

  // Transpiling just the module graph (no type check) keeps this independent of dist/ and of
  // whatever else in src/ is mid-edit; node_modules/ keeps package imports resolvable.
  beforeAll(async () => {
    modulePath = await transpileGraph(join(REPO, "src/postgres/cluster.ts"), outDir);
  });
  afterAll(async () => {
    await rm(outDir, { recursive: true, force: true });
    await rmdir(dirname(outDir)).catch(() => {}); // only if no other run is using it
  });

  for (const [mode, expected] of [
    ["wait", { signal: "SIGTERM", code: null }],
    ["drain", { signal: null, code: 0 }],
  ] as const) {
    it(`stops the cluster on ${mode === "wait" ? "SIGTERM" : "normal exit"}`, async () => {
      const fixture = join(REPO, "test/fixtures/cluster-child.mjs");
      const child = spawn(process.execPath, [fixture, modulePath, mode], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const exited = new Promise<{ code: number | null; signal: string | null }>((done) =>
        child.on("exit", (code, signal) => done({ code, signal })),
      );
      const line = await new Promise<string>((done, fail) => {
        let text = "";
        child.stdout.on("data", (chunk: Buffer) => {
          text += chunk.toString();
          if (text.includes("\n")) done(text.split("\n")[0]!);
        });
        child.on("exit", () => fail(new Error(`child exited before reporting: ${text}`)));
      });
      const info = JSON.parse(line) as { baseDir: string; dataDir: string; pid: number };
      expect(isAlive(info.pid)).toBe(true);
      if (mode === "wait") child.kill("SIGTERM");
      expect(await exited).toEqual(expected);
      expect(isAlive(info.pid)).toBe(false);
      expect(processesMentioning(info.dataDir)).toEqual([]);
      expect(existsSync(info.baseDir)).toBe(false);
    });
  }
});

/** Local addresses (hex, as in /proc/net/tcp*) of sockets listening on `port`. */
function listeningAddresses(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const found: string[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    if (!existsSync(file)) continue;
    for (const row of readFileSync(file, "utf8").trim().split("\n").slice(1)) {
      const [, local, , state] = row.trim().split(/\s+/);
      const [address, p] = (local ?? "").split(":");
      if (state === "0A" && p === hexPort) found.push(address!);
    }
  }
  return found;
}

function externalAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((i) => i !== undefined && !i.internal && i.family === "IPv4")
    .map((i) => i!.address);
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host, port, timeout: 2000 });
    socket.on("connect", () => (socket.destroy(), done(true)));
    socket.on("error", () => done(false));
    socket.on("timeout", () => (socket.destroy(), done(false)));
  });
}

/** Alive and not a zombie (container init processes do not always reap orphans). */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

function procStats(): { pid: number; ppid: number; cmdline: string }[] {
  const result = [];
  for (const name of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").replace(/\0/g, " ");
      result.push({ pid: Number(name), ppid, cmdline });
    } catch {
      // exited while we looked
    }
  }
  return result;
}

function childrenOf(pid: number): number[] {
  return procStats()
    .filter((p) => p.ppid === pid)
    .map((p) => p.pid);
}

function processesMentioning(text: string): string[] {
  return procStats()
    .filter((p) => p.cmdline.includes(text) && isAlive(p.pid))
    .map((p) => `${p.pid} ${p.cmdline}`);
}

/** Transpiles `entry` and every relative import under src/ into `outDir`; returns the entry's .js. */
async function transpileGraph(entry: string, outDir: string): Promise<string> {
  const srcRoot = join(REPO, "src");
  const queue = [entry];
  const done = new Set<string>();
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (done.has(file)) continue;
    done.add(file);
    const source = await readFile(file, "utf8");
    const { outputText } = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    const target = join(outDir, relative(srcRoot, file)).replace(/\.ts$/, ".js");
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, outputText);
    for (const match of source.matchAll(/from\s+"(\.{1,2}\/[^"]+)\.js"/g)) {
      queue.push(resolve(dirname(file), `${match[1]}.ts`));
    }
  }
  return join(outDir, relative(srcRoot, entry)).replace(/\.ts$/, ".js");
}

import { createReadStream } from "node:fs";
import { mkdtemp, readdir, readlink, readFile, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { spawn } from "node:child_process";
import { LifeboatError } from "../errors.js";
import { firstMeaningfulLine } from "../util/process.js";
import { killWithUs } from "../util/spawn-stream.js";
import type { PgBinary } from "./binaries.js";
import { childEnv, describeConnection, libpqEnv, type PgConnection } from "./connection.js";

export interface DirectoryDumpOptions {
  connection: PgConnection;
  snapshot: string;
  pgDump: PgBinary;
  jobs: number;
  workDir?: string;
  /** Called once per finished file, in completion order; the file is deleted after it resolves. */
  onFile(name: string, open: () => Readable): Promise<void>;
}

const POLL_MS = 200;

/**
 * `pg_dump -Fd -j N`: parallel, for large databases. pg_dump writes a directory, so lifeboat
 * uploads each table file the moment pg_dump closes it (no pg_dump process holds it open any
 * more, per /proc) and deletes it: the disk holds only the files being written, never a full copy.
 * toc.dat is written last, when pg_dump finishes.
 */
export async function dumpDirectory(options: DirectoryDumpOptions): Promise<{ files: string[] }> {
  const base = await mkdtemp(path.join(options.workDir ?? tmpdir(), "lifeboat-dump-"));
  const dir = path.join(base, "dump");
  const uploaded: string[] = [];
  try {
    const child = spawn(
      options.pgDump.path,
      [
        "--format=directory",
        `--jobs=${options.jobs}`,
        "--compress=0",
        "--blobs",
        `--snapshot=${options.snapshot}`,
        "--no-password",
        `--file=${dir}`,
      ],
      { env: childEnv(libpqEnv(options.connection)), stdio: ["ignore", "ignore", "pipe"] },
    );
    killWithUs(child);
    const stderr: Buffer[] = [];
    child.stderr!.on("data", (chunk: Buffer) => stderr.length < 1000 && stderr.push(chunk));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        child.once("error", reject);
        child.once("close", (code, signal) => resolve({ code, signal }));
      },
    );
    let finished = false;
    void exited.then(() => (finished = true));

    const drain = async (all: boolean) => {
      const names = await readdir(dir).catch(() => [] as string[]);
      const busy = all ? new Set<string>() : await openFiles(child.pid!);
      if (!busy) return;
      for (const name of names.sort()) {
        if (
          uploaded.includes(name) ||
          (!all && (name === "toc.dat" || busy.has(path.join(dir, name))))
        )
          continue;
        const file = path.join(dir, name);
        await options.onFile(name, () => createReadStream(file, { highWaterMark: 1 << 20 }));
        await unlink(file);
        uploaded.push(name);
      }
    };
    try {
      while (!finished) {
        await drain(false);
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, POLL_MS))]);
      }
    } catch (error) {
      child.kill("SIGTERM");
      throw error;
    }
    const { code, signal } = await exited;
    if (code !== 0) {
      const detail = firstMeaningfulLine(Buffer.concat(stderr).toString("utf8"));
      throw new LifeboatError(
        /could not connect|authentication failed|Connection refused/i.test(detail)
          ? "PG_CONNECT"
          : "TOOL_FAILED",
        `pg_dump of ${describeConnection(options.connection)} ${signal ? `was killed by ${signal}` : `exited with status ${code}`}${detail ? `: ${detail}` : ""}`,
      );
    }
    await drain(true);
    return { files: uploaded };
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

/**
 * Files held open by a process and its descendants (pg_dump forks one worker per job), or
 * undefined where /proc cannot tell (then nothing counts as finished until pg_dump exits).
 */
async function openFiles(root: number): Promise<Set<string> | undefined> {
  const pids = await descendants(root);
  if (!pids) return undefined;
  const open = new Set<string>();
  for (const pid of pids) {
    const fdDir = `/proc/${pid}/fd`;
    for (const fd of await readdir(fdDir).catch(() => [] as string[])) {
      const target = await readlink(path.join(fdDir, fd)).catch(() => undefined);
      if (target) open.add(target);
    }
  }
  return open;
}

async function descendants(root: number): Promise<number[] | undefined> {
  let entries: string[];
  try {
    entries = (await readdir("/proc")).filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  const parentOf = new Map<number, number>();
  for (const entry of entries) {
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    // Field 4 (ppid) follows the command name, which is in parentheses and may contain spaces.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (Number.isInteger(ppid)) parentOf.set(Number(entry), ppid);
  }
  if (!parentOf.has(root)) return undefined;
  const found = [root];
  for (let i = 0; i < found.length; i++) {
    for (const [pid, ppid] of parentOf) if (ppid === found[i]) found.push(pid);
  }
  return found;
}

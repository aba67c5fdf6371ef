import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, openSync } from "node:fs";
import {
  chown,
  link,
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  rm,
  stat,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import path from "node:path";
import { LifeboatError } from "../errors.js";
import { parseWalName } from "./layout.js";

/**
 * The local spool between PostgreSQL's archive_command and the repositories. `wal push` only
 * copies the segment here (fsync + rename) and returns, so node's start-up and the network never
 * hold up the archiver; a background uploader drains the queue in parallel. Node built-ins only:
 * this module is on the archive_command fast path.
 *
 *   <spool>/queue/<name>       waiting for upload (plaintext copy, mtime of the original)
 *   <spool>/done/<name>        uploaded: `sha256 bytes` (push of the same name is then a no-op)
 *   <spool>/uploader.pid       the running uploader
 *   <spool>/uploader.json      its last success / error, read by `wal status` and `wal push`
 *   <spool>/uploader.log       its output
 */

export const QUEUE_DIR = "queue";
export const DONE_DIR = "done";
export const PID_FILE = "uploader.pid";
export const STATE_FILE = "uploader.json";
export const LOG_FILE = "uploader.log";
const TEMP_PREFIX = ".tmp-";

export interface UploaderState {
  pid?: number;
  updatedAt?: string;
  lastSuccessAt?: string;
  lastError?: { code: string; message: string; at: string };
  /** Set when a repository holds different content under a queued name: a person must look. */
  conflict?: { name: string; message: string; at: string };
  uploaded?: number;
}

export type EnqueueOutcome = "queued" | "already-queued" | "already-archived";

export interface EnqueueResult {
  name: string;
  outcome: EnqueueOutcome;
  bytes: number;
}

/** Copies a WAL file into the queue durably. Fails (so PostgreSQL retries) when the spool is full. */
export async function enqueue(
  spoolDir: string,
  file: string,
  options: { maxSegments: number },
): Promise<EnqueueResult> {
  const name = path.basename(file);
  if (!parseWalName(name)) {
    throw new LifeboatError("USAGE", `"${name}" is not a WAL file name`, {
      hint: "archive_command passes %p, the path of the file under pg_wal/",
    });
  }
  const queue = path.join(spoolDir, QUEUE_DIR);
  await spoolSubdir(spoolDir, QUEUE_DIR);
  const state = await readUploaderState(spoolDir);
  if (state.conflict) {
    throw new LifeboatError("WAL_CONFLICT", `archiving is stopped: ${state.conflict.message}`, {
      hint: "another cluster archives into this repository; fix that, then delete uploader.json in the spool",
    });
  }
  const done = await readFile(path.join(spoolDir, DONE_DIR, name), "utf8").catch(() => undefined);
  const queued = path.join(queue, name);
  const isQueued = (await stat(queued).catch(() => undefined)) !== undefined;
  // Checked before copying: during an outage PostgreSQL retries every second or so, and a
  // 16 MiB copy + fsync per retry would only add I/O to a host that already has a problem.
  if (done === undefined && !isQueued) {
    const waiting = (await pendingNames(spoolDir)).length;
    if (waiting >= options.maxSegments) {
      const why = state.lastError
        ? `; last upload error (${state.lastError.at}): ${state.lastError.message}`
        : "";
      throw new LifeboatError(
        "WAL_SPOOL_FULL",
        `spool ${spoolDir} holds ${waiting} file(s), the limit is ${options.maxSegments}${why}`,
        { data: { waiting, limit: options.maxSegments } },
      );
    }
  }
  const temporary = path.join(queue, `${TEMP_PREFIX}${name}-${randomBytes(4).toString("hex")}`);
  const copied = await copyDurably(file, temporary);
  try {
    if (done !== undefined) {
      if (done.split(" ")[0] === copied.sha256) return result(name, "already-archived", copied);
      throw conflict(name, "was archived earlier with different content");
    }
    if (isQueued) {
      if ((await sha256File(queued)) === copied.sha256)
        return result(name, "already-queued", copied);
      throw conflict(name, "is already queued with different content");
    }
    await rename(temporary, queued);
    await syncDir(queue);
    return result(name, "queued", copied);
  } finally {
    await rm(temporary, { force: true });
  }
}

function result(name: string, outcome: EnqueueOutcome, copied: { bytes: number }): EnqueueResult {
  return { name, outcome, bytes: copied.bytes };
}

function conflict(name: string, what: string): LifeboatError {
  return new LifeboatError("WAL_CONFLICT", `${name} ${what}`, { data: { name } });
}

async function copyDurably(from: string, to: string): Promise<{ sha256: string; bytes: number }> {
  const source = await stat(from).catch((error: unknown) => {
    throw new LifeboatError("USAGE", `cannot read ${from}: ${(error as Error).message}`);
  });
  const hash = createHash("sha256");
  const out = await open(to, "wx", 0o600);
  let bytes = 0;
  try {
    for await (const chunk of createReadStream(from, { highWaterMark: 1 << 20 })) {
      const buffer = chunk as Buffer;
      hash.update(buffer);
      bytes += buffer.length;
      await out.write(buffer);
    }
    await out.sync();
  } finally {
    await out.close();
  }
  // The original's mtime is when PostgreSQL last wrote it: the newest data the file can hold.
  await utimes(to, source.atime, source.mtime);
  return { sha256: hash.digest("hex"), bytes };
}

/**
 * Creates a spool subdirectory. When root runs `wal push`/`wal upload` by hand, the directory
 * goes to the spool's owner: the server's archive_command must still be able to write there.
 */
export async function spoolSubdir(spoolDir: string, name: string): Promise<string> {
  const dir = path.join(spoolDir, name);
  const created = await mkdir(dir, { recursive: true });
  if (created !== undefined && process.getuid?.() === 0) {
    const owner = await stat(spoolDir);
    if (owner.uid !== 0) await chown(dir, owner.uid, owner.gid);
  }
  return dir;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }))
    hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Names waiting in the queue, in upload order (history files sort before their segments). */
export async function pendingNames(spoolDir: string): Promise<string[]> {
  const entries = await readdir(path.join(spoolDir, QUEUE_DIR)).catch(() => [] as string[]);
  return entries.filter((e) => !e.startsWith(TEMP_PREFIX) && !e.startsWith(".")).sort();
}

export interface PendingFile {
  name: string;
  bytes: number;
  modifiedAt: Date;
}

export async function pendingFiles(spoolDir: string): Promise<PendingFile[]> {
  const files: PendingFile[] = [];
  for (const name of await pendingNames(spoolDir)) {
    const info = await stat(path.join(spoolDir, QUEUE_DIR, name)).catch(() => undefined);
    if (info) files.push({ name, bytes: info.size, modifiedAt: info.mtime });
  }
  return files;
}

/** Called by the uploader once every repository has the file. */
export async function markDone(
  spoolDir: string,
  name: string,
  sha256: string,
  bytes: number,
): Promise<void> {
  const dir = await spoolSubdir(spoolDir, DONE_DIR);
  await writeAtomic(path.join(dir, name), `${sha256} ${bytes}\n`);
  await unlink(path.join(spoolDir, QUEUE_DIR, name)).catch(() => undefined);
}

/** Done markers only answer re-pushes of recent files; older ones are dropped. */
export async function pruneDone(
  spoolDir: string,
  olderThanMs: number,
  now = Date.now(),
): Promise<void> {
  const dir = path.join(spoolDir, DONE_DIR);
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    const info = await stat(path.join(dir, entry)).catch(() => undefined);
    if (info && now - info.mtimeMs > olderThanMs) await rm(path.join(dir, entry), { force: true });
  }
}

export async function readUploaderState(spoolDir: string): Promise<UploaderState> {
  try {
    return JSON.parse(await readFile(path.join(spoolDir, STATE_FILE), "utf8")) as UploaderState;
  } catch {
    return {};
  }
}

export async function writeUploaderState(spoolDir: string, state: UploaderState): Promise<void> {
  await writeAtomic(path.join(spoolDir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const temporary = `${file}.${process.pid}.${randomBytes(3).toString("hex")}`;
  await writeFile(temporary, text, { mode: 0o644 });
  await rename(temporary, file);
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The pid in a pid file, if that process still runs. */
export async function runningPid(file: string): Promise<number | undefined> {
  const pid = Number((await readFile(file, "utf8").catch(() => "")).trim());
  return pid > 0 && pidAlive(pid) ? pid : undefined;
}

/**
 * Takes a pid file atomically (link() fails when it exists), replacing one left by a dead
 * process. False when a live process holds it.
 */
export async function acquirePidFile(file: string): Promise<boolean> {
  const mine = `${file}.${process.pid}`;
  await writeFile(mine, `${process.pid}\n`);
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await link(mine, file);
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        if (await runningPid(file)) return false;
        await unlink(file).catch(() => undefined);
      }
    }
    return false;
  } finally {
    await unlink(mine).catch(() => undefined);
  }
}

export async function releasePidFile(file: string): Promise<void> {
  const pid = Number((await readFile(file, "utf8").catch(() => "")).trim());
  if (pid === process.pid) await unlink(file).catch(() => undefined);
}

/** Starts `node <args>` in its own session, output appended to `logFile`, and lets it run on. */
export function spawnDetached(args: string[], logFile: string): number | undefined {
  const fd = openSync(logFile, "a", 0o644);
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ["ignore", fd, fd],
    env: process.env,
  });
  child.unref();
  return child.pid;
}

/** The uploader `wal push` starts exits once the queue stays empty, so nothing lingers when idle. */
export const UPLOADER_ARGS = ["wal", "upload", "--daemon", "--exit-when-idle", "30s"];

/** Starts the uploader unless one runs. `cliArgs` are the lifeboat CLI arguments after node. */
export async function ensureUploader(
  spoolDir: string,
  cliArgs: string[],
): Promise<number | undefined> {
  const running = await runningPid(path.join(spoolDir, PID_FILE));
  if (running) return running;
  const log = path.join(spoolDir, LOG_FILE);
  const info = await stat(log).catch(() => undefined);
  if (info && info.size > 8 << 20) await rename(log, `${log}.1`).catch(() => undefined);
  return spawnDetached(cliArgs, log);
}

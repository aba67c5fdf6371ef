import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, readdir, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { durationSeconds } from "../config/schema.js";
import { toLifeboatError } from "../errors.js";
import { requirePgBin } from "../postgres/binaries.js";
import { childEnv, libpqEnv, withClient } from "../postgres/connection.js";
import type { Repository } from "../repository/repository.js";
import type { EncodeSettings } from "../stream/encode.js";
import { onExit } from "../util/process.js";
import type { WalContext } from "./config.js";
import { parseWalName } from "./layout.js";
import { archiveFailure, archiveWalFile, deleteWalFile } from "./push.js";
import { ensureSlot } from "./setup.js";

/**
 * Streaming mode: pg_receivewal receives WAL over a physical replication slot into
 * <spool>/stream/ (flushing each write, --synchronous), and this loop uploads what it writes:
 * completed segments and history files as they appear, and the segment being written, as
 * `<name>.partial`, every `partialInterval` while it grows. Exposure is then that interval
 * plus one upload, instead of archive_timeout. The slot makes the server keep WAL the receiver
 * has not flushed, so a stopped stream costs disk on the server, never data.
 */

export interface StreamOptions {
  context: WalContext;
  encoding: EncodeSettings;
  openRepositories: () => Promise<Repository[]>;
  signal: AbortSignal;
  log?: (message: string) => void;
}

export interface StreamState {
  pid: number;
  receiverRunning: boolean;
  receiverPid?: number;
  startedAt: string;
  lastUploadAt?: string;
  lastPartial?: { name: string; bytes?: number; at: string };
  lastError?: { code: string; message: string; at: string };
  segments: number;
}

export async function runWalStream(options: StreamOptions): Promise<StreamState> {
  const { context } = options;
  const log = options.log ?? (() => undefined);
  const dir = path.join(context.spoolDir, "stream");
  await mkdir(dir, { recursive: true });
  const intervalMs = durationSeconds(context.wal.partialInterval) * 1000;
  const major = await withClient(context.connection, async (client) => {
    await ensureSlot(client, context.wal.slot);
    const { rows } = await client.query<{ num: number }>(
      "SELECT current_setting('server_version_num')::int AS num",
    );
    return Math.floor(rows[0]!.num / 10_000);
  });
  const receivewal = requirePgBin("pg_receivewal", { major, allowNewer: true }).path;
  const state: StreamState = {
    pid: process.pid,
    receiverRunning: false,
    startedAt: now(),
    segments: 0,
  };
  const saveState = () =>
    writeFile(
      path.join(context.spoolDir, "stream.json"),
      `${JSON.stringify(state, null, 2)}\n`,
    ).catch(() => undefined);

  let child: ChildProcess | undefined;
  const unregister = onExit(() => child?.kill("SIGTERM"));
  const startReceiver = () => {
    child = spawn(
      receivewal,
      ["-D", dir, "--slot", context.wal.slot, "--synchronous", "--status-interval=1", "-w", "-v"],
      {
        env: childEnv(libpqEnv(context.replication, "replication")),
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    state.receiverRunning = true;
    if (child.pid) state.receiverPid = child.pid;
    child.stderr
      ?.setEncoding("utf8")
      .on("data", (text: string) => log(`pg_receivewal: ${text.trimEnd()}`));
    child.once("close", (code) => {
      state.receiverRunning = false;
      if (!options.signal.aborted) log(`pg_receivewal exited (${code}); restarting in 5 s`);
    });
  };

  let repositories: Repository[] | undefined;
  let lastPartialMtime = 0;
  let lastPartialUpload = 0;
  let restartAt = 0;

  const scan = async (final: boolean) => {
    repositories ??= await options.openRepositories();
    const entries = (await readdir(dir)).sort();
    for (const entry of entries) {
      const name = parseWalName(entry);
      if (!name || name.kind === "partial" || name.kind === "backup") continue;
      const result = await archiveWalFile(repositories, path.join(dir, entry), {
        encoding: options.encoding,
        tmpDir: path.join(context.spoolDir, "tmp"),
        source: "stream",
      });
      const failure = archiveFailure(result);
      if (failure) throw failure;
      if (name.kind === "segment") {
        const partial = parseWalName(`${name.name}.partial`)!;
        for (const repository of repositories)
          await deleteWalFile(repository, partial).catch(() => undefined);
        state.segments++;
      }
      await unlink(path.join(dir, entry));
      state.lastUploadAt = now();
    }
    const partial = entries.filter((e) => parseWalName(e)?.kind === "partial").pop();
    if (!partial) return;
    const info = await stat(path.join(dir, partial)).catch(() => undefined);
    if (!info || info.mtimeMs === lastPartialMtime) return;
    if (!final && Date.now() - lastPartialUpload < intervalMs) return;
    const mtime = info.mtimeMs;
    const result = await archiveWalFile(repositories, path.join(dir, partial), {
      encoding: options.encoding,
      tmpDir: path.join(context.spoolDir, "tmp"),
      source: "stream",
    });
    const failure = archiveFailure(result);
    if (failure) throw failure;
    lastPartialMtime = mtime;
    lastPartialUpload = Date.now();
    state.lastPartial = { name: partial, bytes: result.plain.bytes, at: now() };
    state.lastUploadAt = now();
  };

  let backoff = 0;
  try {
    while (!options.signal.aborted) {
      if (!state.receiverRunning && Date.now() >= restartAt) {
        startReceiver();
        restartAt = Date.now() + 5000;
      }
      try {
        await scan(false);
        backoff = 0;
      } catch (error) {
        const failure = toLifeboatError(error);
        state.lastError = { code: failure.code, message: failure.message, at: now() };
        repositories = undefined;
        log(`upload failed: ${failure.message}`);
        backoff = Math.min(30_000, Math.max(1000, backoff * 2));
      }
      await saveState();
      await sleep(Math.max(backoff, Math.min(500, intervalMs / 2)), undefined, {
        signal: options.signal,
      }).catch(() => undefined);
    }
  } finally {
    if (child && state.receiverRunning) {
      const closed = new Promise((resolve) => child!.once("close", resolve));
      child.kill("SIGTERM");
      await closed;
    }
    unregister();
    // What the receiver flushed before stopping is worth one more upload.
    await scan(true).catch((error: unknown) =>
      log(`final upload failed: ${toLifeboatError(error).message}`),
    );
    state.receiverRunning = false;
    await saveState();
  }
  return state;
}

function now(): string {
  return new Date().toISOString();
}

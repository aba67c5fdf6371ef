import { readFileSync, unlinkSync } from "node:fs";
import { stat } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { toLifeboatError, type LifeboatError } from "../errors.js";
import type { Repository } from "../repository/repository.js";
import type { EncodeSettings } from "../stream/encode.js";
import { onExit } from "../util/process.js";
import { prepareWalFile, storeWalFile } from "./push.js";
import {
  PID_FILE,
  QUEUE_DIR,
  acquirePidFile,
  markDone,
  pendingNames,
  pruneDone,
  readUploaderState,
  releasePidFile,
  spoolSubdir,
  writeUploaderState,
  type UploaderState,
} from "./spool.js";

/**
 * Drains the spool into every repository, `concurrency` files at a time. A file leaves the queue
 * only when every repository has it; failures back off (1 s doubling to 30 s) and are recorded in
 * uploader.json, where `wal push` and `wal status` see them.
 */

export interface UploaderOptions {
  spoolDir: string;
  encoding: EncodeSettings;
  concurrency: number;
  /** Opened lazily and again after a failure (a repository may come back). */
  openRepositories: () => Promise<Repository[]>;
  /** Keep running and watch the queue; otherwise drain once and return. */
  daemon: boolean;
  /** Daemon mode: exit after the queue has been empty this long (the push-started uploader). */
  exitWhenIdleMs?: number;
  pollMs?: number;
  signal?: AbortSignal;
  log?: (message: string) => void;
}

export interface UploaderResult {
  status: "drained" | "stopped" | "busy" | "failed";
  uploaded: number;
  failures: number;
  lastError?: LifeboatError;
}

const MAX_BACKOFF_MS = 30_000;
const DONE_KEEP_MS = 24 * 3600_000;

export async function runUploader(options: UploaderOptions): Promise<UploaderResult> {
  const pidFile = path.join(options.spoolDir, PID_FILE);
  if (!(await acquirePidFile(pidFile))) return { status: "busy", uploaded: 0, failures: 0 };
  const unregister = onExit(() => {
    try {
      if (Number(readFileSync(pidFile, "utf8").trim()) === process.pid) unlinkSync(pidFile);
    } catch {
      // already gone
    }
  });
  const log = options.log ?? (() => undefined);
  const tmpDir = await spoolSubdir(options.spoolDir, "tmp");
  const state: UploaderState = { ...(await readUploaderState(options.spoolDir)), pid: process.pid };
  const stored = new Map<string, Set<string>>(); // name → repositories that have it
  let repositories: Repository[] | undefined;
  let backoff = 0;
  let idleSince = Date.now();
  let lastPrune = 0;
  const result: UploaderResult = { status: "drained", uploaded: 0, failures: 0 };

  const uploadOne = async (name: string): Promise<void> => {
    const file = path.join(options.spoolDir, QUEUE_DIR, name);
    // Another uploader incarnation may have drained it since the listing.
    if (!(await stat(file).catch(() => undefined))) return;
    const prepared = await prepareWalFile(file, {
      encoding: options.encoding,
      tmpDir,
      source: "archive_command",
    });
    try {
      const have = stored.get(name) ?? new Set<string>();
      stored.set(name, have);
      const errors: LifeboatError[] = [];
      await Promise.all(
        repositories!.map(async (repository) => {
          if (have.has(repository.name)) return;
          try {
            await storeWalFile(repository, prepared);
            have.add(repository.name);
          } catch (error) {
            errors.push(toLifeboatError(error));
          }
        }),
      );
      const conflict = errors.find((e) => e.code === "WAL_CONFLICT");
      if (conflict) state.conflict = { name, message: conflict.message, at: now() };
      if (errors.length > 0) throw conflict ?? errors[0]!;
      await markDone(
        options.spoolDir,
        name,
        prepared.facts.plain.sha256,
        prepared.facts.plain.bytes,
      );
      stored.delete(name);
      result.uploaded++;
      state.uploaded = (state.uploaded ?? 0) + 1;
      state.lastSuccessAt = now();
      log(
        `uploaded ${name} (${prepared.facts.plain.bytes} -> ${prepared.facts.stored.bytes} bytes)`,
      );
    } finally {
      await prepared.cleanup();
    }
  };

  try {
    while (!options.signal?.aborted) {
      const names = await pendingNames(options.spoolDir);
      if (names.length === 0) {
        if (!options.daemon) break;
        if (options.exitWhenIdleMs !== undefined && Date.now() - idleSince > options.exitWhenIdleMs)
          break;
        if (Date.now() - lastPrune > 600_000) {
          lastPrune = Date.now();
          await pruneDone(options.spoolDir, DONE_KEEP_MS);
        }
        await sleep(options.pollMs ?? 250, undefined, { signal: options.signal }).catch(
          () => undefined,
        );
        continue;
      }
      idleSince = Date.now();
      let roundError: LifeboatError | undefined;
      try {
        repositories ??= await options.openRepositories();
        let next = 0;
        const worker = async () => {
          while (next < names.length && !options.signal?.aborted) {
            const name = names[next++]!;
            try {
              await uploadOne(name);
            } catch (error) {
              const failure = toLifeboatError(error);
              roundError ??= failure;
              result.failures++;
              log(`upload of ${name} failed: ${failure.message}`);
            }
          }
        };
        await Promise.all(Array.from({ length: options.concurrency }, worker));
      } catch (error) {
        roundError = toLifeboatError(error);
        result.failures++;
        log(`cannot open the repositories: ${roundError.message}`);
      }
      if (roundError) {
        state.lastError = { code: roundError.code, message: roundError.message, at: now() };
        result.lastError = roundError;
        repositories = undefined;
        await writeUploaderState(options.spoolDir, { ...state, updatedAt: now() });
        if (!options.daemon) {
          result.status = "failed";
          break;
        }
        backoff = Math.min(MAX_BACKOFF_MS, Math.max(1000, backoff * 2));
        await sleep(backoff, undefined, { signal: options.signal }).catch(() => undefined);
      } else {
        backoff = 0;
        if (state.lastError && !state.conflict) delete state.lastError;
        await writeUploaderState(options.spoolDir, { ...state, updatedAt: now() });
      }
    }
    if (options.signal?.aborted) result.status = "stopped";
    return result;
  } finally {
    await releasePidFile(pidFile);
    unregister();
  }
}

function now(): string {
  return new Date().toISOString();
}

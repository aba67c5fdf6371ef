import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, truncate } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { LifeboatError, isLifeboatError, toLifeboatError } from "../errors.js";
import type { Repository } from "../repository/repository.js";
import type { AgeIdentity } from "../stream/age/index.js";
import { decode } from "../stream/encode.js";
import {
  DEFAULT_SEGMENT_SIZE,
  nextSegmentName,
  parseWalName,
  readWalPageHeader,
  segmentNumber,
  type WalName,
} from "./layout.js";
import { readWalRecord, walNameOrThrow, type WalRecord } from "./push.js";

/**
 * Restoring WAL for PostgreSQL's restore_command: find the file's record in the first
 * repository that has one, stream and verify it (stored sha256, age tags, zstd checksum,
 * plaintext sha256) into a temporary file, and only then rename it to the destination. A damaged
 * copy falls back to the next repository; unverified bytes never reach PostgreSQL.
 */

/** restore_command exit status that makes PostgreSQL abort recovery instead of ending it. */
export const RECOVERY_ABORT_EXIT = 255;
/** restore_command exit status for "not archived" (the normal end of archive recovery). */
export const NOT_ARCHIVED_EXIT = 1;

export interface FetchOptions {
  identities: readonly AgeIdentity[];
  /**
   * Serve `X.partial` as `X` when X itself is not archived (stream mode, `restore pitr
   * --latest`). Only for a recovery that ends at the end of the archive.
   */
  allowPartial?: boolean;
  log?: (message: string) => void;
}

export type FetchOutcome =
  | { status: "found"; repository: string; record: WalRecord; partial: boolean }
  | { status: "missing" };

export async function fetchWalFile(
  repositories: Repository[],
  fileName: string,
  dest: string,
  options: FetchOptions,
): Promise<FetchOutcome> {
  const name = walNameOrThrow(fileName);
  const candidates: WalName[] = [name];
  if (options.allowPartial && name.kind === "segment") {
    candidates.push(walNameOrThrow(`${name.name}.partial`));
  }
  const errors: LifeboatError[] = [];
  for (const candidate of candidates) {
    for (const repository of repositories) {
      try {
        const record = await readWalRecord(repository, candidate);
        if (!record) continue;
        await download(repository, record, dest, options.identities);
        return {
          status: "found",
          repository: repository.name,
          record,
          partial: candidate.kind === "partial",
        };
      } catch (error) {
        const failure = toLifeboatError(error);
        options.log?.(`${repository.name}: ${candidate.name}: ${failure.message}`);
        errors.push(failure);
      }
    }
    // A complete segment is better than a partial one, but a repository that failed might have
    // had it: only fall back to a partial when every repository answered.
    if (errors.length > 0) break;
  }
  if (errors.length === 0) return { status: "missing" };
  const first = errors.find((e) => e.code !== "STORAGE_NOT_FOUND") ?? errors[0]!;
  throw new LifeboatError(
    first.code,
    `cannot restore ${fileName}: ${errors.map((e) => e.message).join("; ")}`,
    { cause: first, hint: first.hint },
  );
}

async function download(
  repository: Repository,
  record: WalRecord,
  dest: string,
  identities: readonly AgeIdentity[],
): Promise<void> {
  let stored;
  try {
    stored = await repository.storage.get(record.key);
  } catch (error) {
    if (isLifeboatError(error, "STORAGE_NOT_FOUND")) {
      throw new LifeboatError(
        "OBJECT_MISSING",
        `${record.name}: data object ${record.key} is missing from "${repository.name}"`,
      );
    }
    throw error;
  }
  const temporary = path.join(
    path.dirname(dest),
    `.lifeboat-${path.basename(dest)}-${randomBytes(4).toString("hex")}`,
  );
  try {
    await pipeline(
      decode(stored, record, { identities }),
      createWriteStream(temporary, { mode: 0o600 }),
    );
    // PostgreSQL insists on full-size segments; a partial one ends in zeros, read as end of WAL.
    if (record.kind === "partial" && record.segmentSize) {
      const { size } = await stat(temporary);
      if (size < record.segmentSize) await truncate(temporary, record.segmentSize);
    }
    await rename(temporary, dest);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** Moves a prefetched file into place; false when it is not in the cache. */
export async function takeFromCache(
  cacheDir: string,
  name: string,
  dest: string,
): Promise<boolean> {
  try {
    await rename(path.join(cacheDir, name), dest);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

/** Segment size of a segment on disk, from its first page header. */
export async function segmentSizeOf(file: string): Promise<number> {
  const handle = await open(file, "r");
  try {
    const head = Buffer.alloc(64);
    await handle.read(head, 0, 64, 0);
    return readWalPageHeader(head)?.segmentSize ?? DEFAULT_SEGMENT_SIZE;
  } finally {
    await handle.close();
  }
}

export interface PrefetchOptions extends FetchOptions {
  count: number;
  concurrency?: number;
  segmentSize: number;
}

/**
 * Downloads the `count` segments after `after` (same timeline) into `cacheDir`, skipping those
 * already there and stopping at the first one not archived. Errors are left for the real fetch
 * to meet and report; prefetching is only an optimisation.
 */
export async function prefetchAfter(
  repositories: Repository[],
  after: string,
  cacheDir: string,
  options: PrefetchOptions,
): Promise<string[]> {
  const start = parseWalName(after);
  if (start?.kind !== "segment" || options.count <= 0) return [];
  await mkdir(cacheDir, { recursive: true });
  await dropOlder(cacheDir, start, options.segmentSize);
  const names: string[] = [];
  let next = start.name;
  for (let i = 0; i < options.count; i++)
    names.push((next = nextSegmentName(next, options.segmentSize)));
  let stopAt = names.length;
  const fetched: string[] = [];
  let index = 0;
  const worker = async () => {
    while (index < stopAt) {
      const position = index++;
      const name = names[position]!;
      const target = path.join(cacheDir, name);
      if (await stat(target).catch(() => undefined)) continue;
      try {
        const outcome = await fetchWalFile(repositories, name, target, {
          ...options,
          allowPartial: false,
        });
        if (outcome.status === "missing") stopAt = Math.min(stopAt, position);
        else fetched.push(name);
      } catch {
        stopAt = Math.min(stopAt, position);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
  return fetched;
}

/** Recovery never goes back: cached segments before the one just requested are dead weight. */
async function dropOlder(cacheDir: string, current: WalName, segmentSize: number): Promise<void> {
  const position = segmentNumber(current.name, segmentSize);
  for (const entry of await readdir(cacheDir).catch(() => [] as string[])) {
    const name = parseWalName(entry);
    if (name?.kind === "segment" && segmentNumber(name.name, segmentSize) <= position) {
      await rm(path.join(cacheDir, entry), { force: true });
    }
  }
}

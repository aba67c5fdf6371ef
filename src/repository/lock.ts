import { randomBytes } from "node:crypto";
import { z } from "zod";
import { LifeboatError, isLifeboatError } from "../errors.js";
import type { Storage } from "../storage/types.js";
import { readSmall, writeSmall } from "../storage/text.js";
import { hostName } from "../version.js";
import { LOCK_PREFIX, lockKey } from "./format.js";

/**
 * Repository locks, restic-style: commands that add data take shared locks, commands that delete
 * take an exclusive one. A lock is an object under locks/ refreshed while held; it is stale when
 * its refresh is older than STALE_AFTER_MS, or when it belongs to a dead process on this host.
 */
export const STALE_AFTER_MS = 30 * 60_000;
const REFRESH_EVERY_MS = 5 * 60_000;

const lockSchema = z.object({
  format: z.literal("lifeboat-lock"),
  id: z.string(),
  exclusive: z.boolean(),
  operation: z.string(),
  host: z.string(),
  pid: z.number().int(),
  createdAt: z.string(),
  refreshedAt: z.string(),
  backupId: z.string().optional(),
});
export type LockDocument = z.infer<typeof lockSchema>;

export interface HeldLock {
  readonly document: LockDocument;
  release(): Promise<void>;
}

export interface LockOptions {
  exclusive: boolean;
  operation: string;
  backupId?: string;
  now?: () => Date;
}

export async function acquireLock(storage: Storage, options: LockOptions): Promise<HeldLock> {
  const now = options.now ?? (() => new Date());
  const created = now().toISOString();
  const document: LockDocument = {
    format: "lifeboat-lock",
    // Time first so ids order by age; the tie-breaker below relies on it.
    id: `${created.replace(/[-:.]/g, "")}-${randomBytes(4).toString("hex")}`,
    exclusive: options.exclusive,
    operation: options.operation,
    host: hostName(),
    pid: process.pid,
    createdAt: created,
    refreshedAt: created,
    ...(options.backupId ? { backupId: options.backupId } : {}),
  };
  const before = await liveLocks(storage, now());
  throwIfConflict(
    storage,
    document,
    before.filter((other) => conflicts(document, other)),
  );
  await writeSmall(storage, lockKey(document.id), JSON.stringify(document));

  // Two writers can pass the first check together; after writing, the older lock wins.
  const after = await liveLocks(storage, now());
  const olderRivals = after.filter((other) => other.id < document.id && conflicts(document, other));
  if (olderRivals.length > 0) {
    await storage.delete(lockKey(document.id));
    throwIfConflict(storage, document, olderRivals);
  }

  const timer = setInterval(() => {
    document.refreshedAt = now().toISOString();
    writeSmall(storage, lockKey(document.id), JSON.stringify(document)).catch(() => {
      // A failed refresh is retried at the next tick; the lock only goes stale after 30 minutes.
    });
  }, REFRESH_EVERY_MS);
  timer.unref();

  let released = false;
  return {
    document,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await storage.delete(lockKey(document.id));
    },
  };
}

/** Runs `work` under a lock and always releases it. */
export async function withLock<T>(
  storage: Storage,
  options: LockOptions,
  work: (lock: HeldLock) => Promise<T>,
): Promise<T> {
  const lock = await acquireLock(storage, options);
  try {
    return await work(lock);
  } finally {
    await lock.release().catch(() => undefined);
  }
}

export interface LockListing {
  key: string;
  lock?: LockDocument;
  stale: boolean;
  reason?: string;
}

export async function listLocks(storage: Storage, now = new Date()): Promise<LockListing[]> {
  const listings: LockListing[] = [];
  for await (const info of storage.list(LOCK_PREFIX)) {
    let lock: LockDocument | undefined;
    try {
      const parsed = lockSchema.safeParse(JSON.parse(await readSmall(storage, info.key, 1 << 20)));
      lock = parsed.success ? parsed.data : undefined;
    } catch (error) {
      if (isLifeboatError(error, "STORAGE_NOT_FOUND")) continue; // released while we listed
      if (!(error instanceof SyntaxError)) throw error;
    }
    if (!lock) {
      // An unreadable lock is treated as stale once old enough; a fresh one may be mid-write.
      listings.push({
        key: info.key,
        stale: now.getTime() - info.modified.getTime() > STALE_AFTER_MS,
        reason: "unreadable",
      });
      continue;
    }
    const reason = staleReason(lock, now);
    listings.push({
      key: info.key,
      lock,
      stale: reason !== undefined,
      ...(reason ? { reason } : {}),
    });
  }
  return listings;
}

function staleReason(lock: LockDocument, now: Date): string | undefined {
  if (now.getTime() - Date.parse(lock.refreshedAt) > STALE_AFTER_MS)
    return "not refreshed for 30 minutes";
  if (lock.host === hostName() && !processAlive(lock.pid))
    return `process ${lock.pid} on this host has exited`;
  return undefined;
}

async function liveLocks(storage: Storage, now: Date): Promise<LockDocument[]> {
  const live: LockDocument[] = [];
  for (const listing of await listLocks(storage, now)) {
    if (listing.stale) {
      await storage.delete(listing.key);
    } else if (listing.lock) {
      live.push(listing.lock);
    }
  }
  return live;
}

function conflicts(mine: LockDocument, other: LockDocument): boolean {
  return other.id !== mine.id && (mine.exclusive || other.exclusive);
}

function throwIfConflict(storage: Storage, mine: LockDocument, rivals: LockDocument[]): void {
  const holder = rivals[0];
  if (!holder) return;
  throw new LifeboatError(
    "LOCKED",
    `${storage.location} is locked by "${holder.operation}" (${holder.exclusive ? "exclusive" : "shared"}) on ${holder.host} pid ${holder.pid} since ${holder.createdAt}; cannot start "${mine.operation}"`,
    { data: { holder } },
  );
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

import type { Storage } from "../storage/types.js";
import {
  DATA_PREFIX,
  MANIFEST_PREFIX,
  backupIdOfDataKey,
  backupIdOfManifestKey,
  manifestCopyKey,
} from "./format.js";
import { listLocks, withLock } from "./lock.js";
import type { Repository } from "./repository.js";

/**
 * Leftovers of backups that never committed: data objects and manifest copies whose backup has
 * no manifest. A backup still being written holds a lock naming its id, so it is never a leftover.
 */
export const ABANDONED_AFTER_MS = 15 * 60_000;

export interface IncompleteBackup {
  backupId: string;
  keys: string[];
  bytes: number;
}

export interface PruneIncompletePlan {
  repository: string;
  incomplete: IncompleteBackup[];
  /** Temp files / unfinished multipart uploads of killed writers removed (apply only). */
  abandoned?: { count: number; bytes: number };
  /** Backups skipped because a live lock says they are being written right now. */
  inProgress: string[];
  totalBytes: number;
}

export interface RepositoryInventory {
  /** Every key under data/ and manifests/, with sizes. */
  objects: { key: string; size: number }[];
  /** Backup ids named by live (non-stale) locks. */
  lockedBackupIds: ReadonlySet<string>;
}

/** Pure: decides what prune-incomplete removes, from a listing. */
export function planPruneIncomplete(
  repository: string,
  inventory: RepositoryInventory,
): PruneIncompletePlan {
  const committed = new Set<string>();
  for (const object of inventory.objects) {
    const id = backupIdOfManifestKey(object.key);
    if (id) committed.add(id);
  }
  const leftovers = new Map<string, IncompleteBackup>();
  const inProgress = new Set<string>();
  for (const object of inventory.objects) {
    const id = backupIdOfDataKey(object.key) ?? copyOwner(object.key);
    if (!id || committed.has(id)) continue;
    if (inventory.lockedBackupIds.has(id)) {
      inProgress.add(id);
      continue;
    }
    const entry = leftovers.get(id) ?? { backupId: id, keys: [], bytes: 0 };
    entry.keys.push(object.key);
    entry.bytes += object.size;
    leftovers.set(id, entry);
  }
  const incomplete = [...leftovers.values()].sort((a, b) => (a.backupId < b.backupId ? -1 : 1));
  return {
    repository,
    incomplete,
    inProgress: [...inProgress].sort(),
    totalBytes: incomplete.reduce((sum, entry) => sum + entry.bytes, 0),
  };
}

function copyOwner(key: string): string | undefined {
  if (!key.startsWith(MANIFEST_PREFIX) || !key.endsWith(".copy.json")) return undefined;
  const id = key.slice(MANIFEST_PREFIX.length, -".copy.json".length);
  return manifestCopyKey(id) === key ? id : undefined;
}

export async function inventory(storage: Storage): Promise<RepositoryInventory> {
  const objects: { key: string; size: number }[] = [];
  for (const prefix of [DATA_PREFIX, MANIFEST_PREFIX]) {
    for await (const info of storage.list(prefix)) objects.push({ key: info.key, size: info.size });
  }
  const lockedBackupIds = new Set<string>();
  for (const listing of await listLocks(storage)) {
    if (!listing.stale && listing.lock?.backupId) lockedBackupIds.add(listing.lock.backupId);
  }
  return { objects, lockedBackupIds };
}

export async function planForRepository(repository: Repository): Promise<PruneIncompletePlan> {
  return planPruneIncomplete(repository.name, await inventory(repository.storage));
}

/**
 * Applies under an exclusive lock, re-planning inside it: the plan shown by --dry-run may be
 * stale by the time the user runs the real thing.
 */
export async function applyPruneIncomplete(repository: Repository): Promise<PruneIncompletePlan> {
  return withLock(
    repository.storage,
    { exclusive: true, operation: "repo prune-incomplete" },
    async () => {
      const plan = await planForRepository(repository);
      for (const entry of plan.incomplete) {
        // Data first, copy last: an interrupted prune still leaves a recognisable leftover.
        const ordered = [...entry.keys].sort(
          (a, b) => Number(a.startsWith(MANIFEST_PREFIX)) - Number(b.startsWith(MANIFEST_PREFIX)),
        );
        for (const key of ordered) await repository.storage.delete(key);
      }
      return plan;
    },
  );
}

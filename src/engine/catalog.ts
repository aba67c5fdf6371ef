import { toLifeboatError, LifeboatError } from "../errors.js";
import {
  backupIdOfDataKey,
  backupIdTime,
  DATA_PREFIX,
  type Manifest,
} from "../repository/format.js";
import type { Repository } from "../repository/repository.js";

export type BackupStatus = "complete" | "incomplete" | "unreadable";

export interface BackupSummary {
  repository: string;
  id: string;
  status: BackupStatus;
  kind?: string;
  source?: string;
  labels?: Record<string, string>;
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  plainBytes?: number;
  storedBytes?: number;
  objects?: number;
  problem?: string;
}

export interface ListOptions {
  kind?: string;
  source?: string;
  /** Also list backups without a manifest (never usable, shown so they get cleaned up). */
  includeIncomplete?: boolean;
}

/** Every backup of the given repositories, newest first. Only `complete` ones can be restored. */
export async function listBackups(
  repositories: Repository[],
  options: ListOptions = {},
): Promise<BackupSummary[]> {
  const all: BackupSummary[] = [];
  for (const repository of repositories) {
    const ids = await repository.listBackupIds();
    const summaries = await mapLimited(ids, 8, async (id): Promise<BackupSummary> => {
      try {
        return summarise(repository, await repository.readManifest(id));
      } catch (error) {
        const failure = toLifeboatError(error);
        if (failure.code === "STORAGE_UNREACHABLE" || failure.code === "STORAGE_AUTH")
          throw failure;
        return {
          repository: repository.name,
          id,
          status: "unreadable",
          startedAt: backupIdTime(id).toISOString(),
          problem: failure.message,
        };
      }
    });
    all.push(...summaries);
    if (options.includeIncomplete ?? true) {
      const committed = new Set(ids);
      const seen = new Set<string>();
      for await (const info of repository.storage.list(DATA_PREFIX)) {
        const id = backupIdOfDataKey(info.key);
        if (!id || committed.has(id) || seen.has(id)) continue;
        seen.add(id);
        all.push({
          repository: repository.name,
          id,
          status: "incomplete",
          startedAt: backupIdTime(id).toISOString(),
          problem: "no manifest",
        });
      }
    }
  }
  return all
    .filter(
      (s) =>
        (!options.kind || s.kind === undefined || s.kind === options.kind) &&
        (!options.source || s.source === undefined || s.source === options.source),
    )
    .sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt) || (a.id < b.id ? 1 : -1));
}

export function summarise(repository: Repository, manifest: Manifest): BackupSummary {
  return {
    repository: repository.name,
    id: manifest.id,
    status: "complete",
    kind: manifest.kind,
    ...(manifest.source ? { source: manifest.source } : {}),
    labels: manifest.labels,
    startedAt: manifest.startedAt,
    finishedAt: manifest.finishedAt,
    durationMs: manifest.durationMs,
    plainBytes: manifest.totals.plainBytes,
    storedBytes: manifest.totals.storedBytes,
    objects: manifest.totals.objects,
  };
}

export interface ResolvedBackup {
  repository: Repository;
  manifest: Manifest;
}

/**
 * Finds a backup by id (or `latest`, optionally of a kind/source) in the first repository that
 * has a readable manifest for it, trying the others when one is down or damaged.
 */
export async function resolveBackup(
  repositories: Repository[],
  reference: string,
  filter: { kind?: string; source?: string } = {},
): Promise<ResolvedBackup> {
  const errors: LifeboatError[] = [];
  for (const repository of repositories) {
    try {
      const id = reference === "latest" ? await latestId(repository, filter) : reference;
      if (!id) continue;
      return { repository, manifest: await repository.readManifest(id) };
    } catch (error) {
      errors.push(toLifeboatError(error));
    }
  }
  const worst = errors.find((e) => e.code !== "BACKUP_NOT_FOUND") ?? errors[0];
  if (worst) throw worst;
  throw new LifeboatError(
    "BACKUP_NOT_FOUND",
    `no ${filter.kind ?? ""}${filter.kind ? " " : ""}backup${filter.source ? ` of ${filter.source}` : ""} in ${repositories.map((r) => `"${r.name}"`).join(", ")}`,
  );
}

async function latestId(
  repository: Repository,
  filter: { kind?: string; source?: string },
): Promise<string | undefined> {
  for (const id of await repository.listBackupIds()) {
    if (!filter.kind && !filter.source) return id;
    const manifest = await repository.readManifest(id).catch(() => undefined);
    if (
      manifest &&
      (!filter.kind || manifest.kind === filter.kind) &&
      (!filter.source || manifest.source === filter.source)
    ) {
      return id;
    }
  }
  return undefined;
}

export async function mapLimited<T, R>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  });
  await Promise.all(workers);
  return results;
}

import { toLifeboatError, LifeboatError, type ErrorCode } from "../errors.js";
import type { LifeboatConfig } from "../config/schema.js";
import { Repository, type RepositoryEncryption } from "../repository/repository.js";
import {
  applyPruneIncomplete,
  planForRepository,
  type PruneIncompletePlan,
} from "../repository/incomplete.js";
import { listLocks, type LockListing } from "../repository/lock.js";
import { selectRepositoryNames, storageFor } from "./repositories.js";

export interface InitResult {
  repository: string;
  location: string;
  id?: string;
  status: "created" | "exists" | "failed";
  error?: { code: ErrorCode; message: string };
}

/** `repo init`: creates each selected repository; an existing one is reported, not an error. */
export async function initRepositories(
  config: LifeboatConfig,
  names: string[],
): Promise<InitResult[]> {
  const encryption: RepositoryEncryption = config.encryption.disabled
    ? { format: "none" }
    : { format: "age-v1", recipients: config.encryption.recipients };
  const results: InitResult[] = [];
  for (const name of selectRepositoryNames(config, names)) {
    const storage = storageFor(config, name);
    try {
      const repository = await Repository.init(name, storage, encryption);
      results.push({
        repository: name,
        location: storage.location,
        id: repository.id,
        status: "created",
      });
    } catch (error) {
      const failure = toLifeboatError(error);
      if (failure.code === "REPO_EXISTS") {
        const existing = await Repository.open(name, storage).catch(() => undefined);
        results.push({
          repository: name,
          location: storage.location,
          status: "exists",
          ...(existing ? { id: existing.id } : {}),
        });
      } else {
        results.push({
          repository: name,
          location: storage.location,
          status: "failed",
          error: { code: failure.code, message: failure.message },
        });
      }
    }
  }
  return results;
}

export interface RepositoryInfo {
  repository: string;
  location: string;
  id: string;
  format: number;
  createdAt: string;
  encryption: string;
  backups: number;
  locks: LockListing[];
}

export async function describeRepository(repository: Repository): Promise<RepositoryInfo> {
  return {
    repository: repository.name,
    location: repository.location,
    id: repository.id,
    format: repository.config.version,
    createdAt: repository.config.createdAt,
    encryption:
      repository.config.encryption.format === "none"
        ? "none"
        : `age (${repository.config.encryption.recipients.length} recipient(s) at init)`,
    backups: (await repository.listBackupIds()).length,
    locks: await listLocks(repository.storage),
  };
}

export async function pruneIncomplete(
  repositories: Repository[],
  dryRun: boolean,
): Promise<PruneIncompletePlan[]> {
  const plans: PruneIncompletePlan[] = [];
  for (const repository of repositories) {
    plans.push(
      dryRun ? await planForRepository(repository) : await applyPruneIncomplete(repository),
    );
  }
  return plans;
}

/** Removes stale locks, or every lock with `all` (when the user knows the holder is gone). */
export async function unlock(repository: Repository, all: boolean): Promise<string[]> {
  const removed: string[] = [];
  for (const listing of await listLocks(repository.storage)) {
    if (listing.stale || all) {
      await repository.storage.delete(listing.key);
      removed.push(listing.key);
    }
  }
  if (!all && removed.length === 0) {
    const live = (await listLocks(repository.storage)).length;
    if (live > 0) {
      throw new LifeboatError(
        "LOCKED",
        `${live} live lock(s) in "${repository.name}"; none is stale`,
        {
          hint: "if you are sure no lifeboat process is using this repository, run `lifeboat repo unlock --all`",
        },
      );
    }
  }
  return removed;
}

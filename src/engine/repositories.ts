import { LifeboatError, toLifeboatError } from "../errors.js";
import type { LifeboatConfig, RepositoryConfig } from "../config/schema.js";
import { Repository } from "../repository/repository.js";
import { openStorage } from "../storage/index.js";
import type { Storage } from "../storage/types.js";
import { loadIdentityFile, type AgeIdentity } from "../stream/age/index.js";
import type { RepositoryFailure } from "../repository/writer.js";

/** Names of the repositories a command works on: those asked for, or every configured one. */
export function selectRepositoryNames(config: LifeboatConfig, names: string[]): string[] {
  const known = Object.keys(config.repositories);
  if (names.length === 0) return known;
  for (const name of names) {
    if (!known.includes(name)) {
      throw new LifeboatError(
        "REPO_UNKNOWN",
        `no repository named "${name}" (configured: ${known.join(", ")})`,
      );
    }
  }
  return names;
}

export function storageFor(
  config: LifeboatConfig,
  name: string,
  log?: (message: string) => void,
): Storage {
  const repository: RepositoryConfig | undefined = config.repositories[name];
  if (!repository) throw new LifeboatError("REPO_UNKNOWN", `no repository named "${name}"`);
  const retry = {
    attempts: config.storage.retryAttempts,
    baseDelayMs: config.storage.retryBaseDelayMs,
    ...(log
      ? {
          onRetry: (event: {
            operation: string;
            key: string;
            attempt: number;
            delayMs: number;
            error: unknown;
          }) =>
            log(
              `${name}: ${event.operation} ${event.key} failed (attempt ${event.attempt}: ${toLifeboatError(event.error).message}); retrying in ${event.delayMs}ms`,
            ),
        }
      : {}),
  };
  if (repository.type === "local") {
    return openStorage(
      { type: "local", path: repository.path },
      { retry, concurrency: config.storage.concurrency },
    );
  }
  return openStorage(
    {
      type: "s3",
      region: repository.region,
      bucket: repository.bucket,
      prefix: repository.prefix,
      pathStyle: repository.pathStyle,
      partSize: repository.partSizeMiB * 1024 * 1024,
      queueSize: repository.queueSize,
      ...(repository.endpoint ? { endpoint: repository.endpoint } : {}),
      ...(repository.credentials ? { credentials: repository.credentials } : {}),
      ...(repository.storageClass ? { storageClass: repository.storageClass } : {}),
    },
    { retry, concurrency: config.storage.concurrency },
  );
}

export async function openRepositories(
  config: LifeboatConfig,
  names: string[],
  log?: (message: string) => void,
): Promise<Repository[]> {
  const selected = selectRepositoryNames(config, names);
  return Promise.all(selected.map((name) => Repository.open(name, storageFor(config, name, log))));
}

/**
 * For writers: a repository that cannot be opened is reported, not fatal, as long as one works —
 * the local copy must still be taken when the offsite bucket is down.
 */
export async function openRepositoriesTolerant(
  config: LifeboatConfig,
  names: string[],
  log?: (message: string) => void,
): Promise<{ repositories: Repository[]; failures: RepositoryFailure[] }> {
  const selected = selectRepositoryNames(config, names);
  const settled = await Promise.allSettled(
    selected.map((name) => Repository.open(name, storageFor(config, name, log))),
  );
  const repositories: Repository[] = [];
  const failures: RepositoryFailure[] = [];
  settled.forEach((result, index) => {
    if (result.status === "fulfilled") repositories.push(result.value);
    else failures.push({ repository: selected[index]!, error: toLifeboatError(result.reason) });
  });
  if (repositories.length === 0) throw failures[0]!.error;
  return { repositories, failures };
}

export async function loadIdentities(file: string): Promise<AgeIdentity[]> {
  return loadIdentityFile(file);
}

import type { Readable } from "node:stream";
import { LifeboatError, isLifeboatError, toLifeboatError } from "../errors.js";
import { COMPRESSION_SUFFIX } from "../stream/compress.js";
import { encode, type EncodeSettings } from "../stream/encode.js";
import { fanOut } from "../stream/fanout.js";
import { TOOL, hostName } from "../version.js";
import {
  OBJECT_NAME_PATTERN,
  dataKey,
  dataPrefix,
  newBackupId,
  type Manifest,
  type ObjectRecord,
} from "./format.js";
import { acquireLock, type HeldLock } from "./lock.js";
import type { Repository } from "./repository.js";

export interface BackupSessionOptions {
  kind: string;
  source?: string;
  labels?: Record<string, string>;
  encoding: EncodeSettings;
  /** Shown to anyone who finds the repository locked, e.g. "backup db app". */
  operation: string;
  now?: () => Date;
}

export interface RepositoryFailure {
  repository: string;
  error: LifeboatError;
}

export interface CommittedBackup {
  id: string;
  manifests: { repository: Repository; manifest: Manifest }[];
  failures: RepositoryFailure[];
}

interface Target {
  repository: Repository;
  lock: HeldLock;
}

/**
 * One backup written to every configured repository at once: each object is read, compressed and
 * encrypted once, then fanned out, so the local and offsite copies are byte-identical and the
 * source (a pg_dump pipe, say) is read a single time. A repository that fails is dropped and
 * reported; the backup carries on in the others. Data first, manifest last (see DESIGN.md).
 */
export class BackupSession {
  readonly objects: ObjectRecord[] = [];
  readonly failures: RepositoryFailure[] = [];
  private finished = false;

  private constructor(
    readonly id: string,
    readonly startedAt: Date,
    private targets: Target[],
    private readonly options: BackupSessionOptions,
  ) {}

  static async start(
    repositories: Repository[],
    options: BackupSessionOptions,
  ): Promise<BackupSession> {
    const now = options.now ?? (() => new Date());
    const startedAt = now();
    const id = newBackupId(options.kind, options.source, startedAt);
    const targets: Target[] = [];
    const failures: RepositoryFailure[] = [];
    for (const repository of repositories) {
      try {
        assertEncryptionMatches(repository, options.encoding);
        const lock = await acquireLock(repository.storage, {
          exclusive: false,
          operation: options.operation,
          backupId: id,
        });
        targets.push({ repository, lock });
      } catch (error) {
        if (isLifeboatError(error, "CONFIG_INVALID")) {
          await Promise.all(targets.map((t) => t.lock.release().catch(() => undefined)));
          throw error;
        }
        failures.push({ repository: repository.name, error: toLifeboatError(error) });
      }
    }
    if (targets.length === 0)
      throw failures[0]?.error ?? new LifeboatError("USAGE", "no repository to write to");
    const session = new BackupSession(id, startedAt, targets, options);
    session.failures.push(...failures);
    return session;
  }

  get repositories(): Repository[] {
    return this.targets.map((t) => t.repository);
  }

  /** Streams one object into every live repository and records it. */
  async addObject(
    name: string,
    source: Readable,
    meta: { role?: string; contentType?: string } = {},
  ): Promise<ObjectRecord> {
    if (this.finished) throw new LifeboatError("INTERNAL", `backup ${this.id} is already finished`);
    if (!OBJECT_NAME_PATTERN.test(name) || this.objects.some((o) => o.name === name)) {
      throw new LifeboatError(
        "INTERNAL",
        `invalid or duplicate object name "${name}" in backup ${this.id}`,
      );
    }
    const encryptedSuffix = this.options.encoding.recipients.length > 0 ? ".age" : "";
    const key = dataKey(
      this.id,
      `${name}${COMPRESSION_SUFFIX[this.options.encoding.compression]}${encryptedSuffix}`,
    );
    const started = new Date();
    const encoding = encode(source, this.options.encoding);
    let sourceError: Error | undefined;
    encoding.output.once("error", (error) => (sourceError ??= error));
    source.once("error", (error) => (sourceError ??= error));

    const copies = fanOut(encoding.output, this.targets.length);
    const results = await Promise.allSettled(
      this.targets.map((target, index) => {
        const copy = copies[index]!;
        return target.repository.storage
          .put(key, copy, { contentType: "application/octet-stream" })
          .catch((error: unknown) => {
            copy.destroy();
            throw error;
          });
      }),
    );
    if (sourceError) throw toLifeboatError(sourceError);

    const survivors: Target[] = [];
    results.forEach((result, index) => {
      const target = this.targets[index]!;
      if (result.status === "fulfilled") survivors.push(target);
      else this.dropTarget(target, result.reason);
    });
    this.targets = survivors;
    if (survivors.length === 0) {
      throw (
        this.failures[this.failures.length - 1]?.error ??
        new LifeboatError("INTERNAL", "all repositories failed")
      );
    }

    const facts = encoding.facts();
    const finished = new Date();
    const record: ObjectRecord = {
      name,
      key,
      ...(meta.role ? { role: meta.role } : {}),
      ...(meta.contentType ? { contentType: meta.contentType } : {}),
      size: facts.stored.bytes,
      sha256: facts.stored.sha256,
      plain: facts.plain,
      compression: facts.compression,
      encryption: facts.encryption,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationMs: finished.getTime() - started.getTime(),
    };
    this.objects.push(record);
    return record;
  }

  /** Writes the manifest everywhere the data arrived; the manifest put is the commit point. */
  async commit(details: Record<string, unknown> = {}): Promise<CommittedBackup> {
    this.finished = true;
    const finishedAt = (this.options.now ?? (() => new Date()))();
    const manifests: CommittedBackup["manifests"] = [];
    for (const target of this.targets) {
      const manifest: Omit<Manifest, "checksum"> = {
        format: "lifeboat-manifest",
        version: 1,
        id: this.id,
        repositoryId: target.repository.id,
        kind: this.options.kind,
        ...(this.options.source ? { source: this.options.source } : {}),
        labels: this.options.labels ?? {},
        startedAt: this.startedAt.toISOString(),
        finishedAt: finishedAt.toISOString(),
        durationMs: finishedAt.getTime() - this.startedAt.getTime(),
        host: hostName(),
        tool: TOOL,
        objects: this.objects,
        totals: {
          objects: this.objects.length,
          plainBytes: this.objects.reduce((sum, o) => sum + o.plain.bytes, 0),
          storedBytes: this.objects.reduce((sum, o) => sum + o.size, 0),
        },
        details,
      };
      try {
        await target.repository.writeManifest(manifest);
        manifests.push({
          repository: target.repository,
          manifest: await target.repository.readManifest(this.id),
        });
      } catch (error) {
        this.failures.push({ repository: target.repository.name, error: toLifeboatError(error) });
      }
      await target.lock.release().catch(() => undefined);
    }
    if (manifests.length === 0) throw this.failures[this.failures.length - 1]!.error;
    return { id: this.id, manifests, failures: this.failures };
  }

  /** Gives up: removes what this backup wrote (best effort) and releases the locks. */
  async abort(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    for (const target of this.targets) {
      try {
        for await (const info of target.repository.storage.list(dataPrefix(this.id))) {
          await target.repository.storage.delete(info.key);
        }
      } catch {
        // Leftovers without a manifest are never listed as backups; prune-incomplete removes them.
      }
      await target.lock.release().catch(() => undefined);
    }
  }

  private dropTarget(target: Target, reason: unknown): void {
    this.failures.push({ repository: target.repository.name, error: toLifeboatError(reason) });
    target.lock.release().catch(() => undefined);
  }
}

function assertEncryptionMatches(repository: Repository, encoding: EncodeSettings): void {
  const encrypted = encoding.recipients.length > 0;
  const repositoryEncrypted = repository.config.encryption.format !== "none";
  if (repositoryEncrypted && !encrypted) {
    throw new LifeboatError(
      "CONFIG_INVALID",
      `repository "${repository.name}" was initialised with encryption but no recipients are configured`,
      { hint: "add encryption.recipients to the configuration" },
    );
  }
  if (!repositoryEncrypted && encrypted) {
    throw new LifeboatError(
      "CONFIG_INVALID",
      `repository "${repository.name}" was initialised without encryption but recipients are configured`,
      {
        hint: "initialise a new repository for encrypted backups, or set encryption.disabled: true",
      },
    );
  }
}

/**
 * Runs a backup: `work` adds objects and returns the manifest details; any error aborts the
 * session (nothing committed, locks released) and is rethrown.
 */
export async function runBackup(
  repositories: Repository[],
  options: BackupSessionOptions,
  work: (session: BackupSession) => Promise<Record<string, unknown>>,
): Promise<CommittedBackup> {
  const session = await BackupSession.start(repositories, options);
  let details: Record<string, unknown>;
  try {
    details = await work(session);
  } catch (error) {
    await session.abort();
    throw error;
  }
  return session.commit(details);
}

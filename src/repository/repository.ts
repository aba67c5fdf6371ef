import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import { LifeboatError, isLifeboatError } from "../errors.js";
import type { Storage } from "../storage/types.js";
import { readSmall, writeSmall } from "../storage/text.js";
import { decode, type DecodeOptions } from "../stream/encode.js";
import { TOOL, hostName } from "../version.js";
import { checksumMatches, sealDocument } from "./canonical.js";
import {
  CONFIG_COPY_KEY,
  CONFIG_KEY,
  REPOSITORY_FORMAT,
  REPOSITORY_VERSION,
  MANIFEST_PREFIX,
  type Manifest,
  type ObjectRecord,
  type RepositoryConfigDocument,
  backupIdOfManifestKey,
  backupIdTime,
  dataPrefix,
  manifestCopyKey,
  manifestKey,
  manifestSchema,
  repositoryConfigSchema,
  MANIFEST_VERSION,
} from "./format.js";

export type RepositoryEncryption = { format: "age-v1"; recipients: string[] } | { format: "none" };

/**
 * A repository on some storage: its config document plus the operations on manifests and
 * objects that every command shares. Writing backups lives in writer.ts, locks in lock.ts.
 */
export class Repository {
  private constructor(
    /** Name of the repository in the configuration (for messages). */
    readonly name: string,
    readonly storage: Storage,
    readonly config: RepositoryConfigDocument,
  ) {}

  get id(): string {
    return this.config.id;
  }

  get location(): string {
    return this.storage.location;
  }

  static async init(
    name: string,
    storage: Storage,
    encryption: RepositoryEncryption,
  ): Promise<Repository> {
    if ((await storage.stat(CONFIG_KEY)) || (await storage.stat(CONFIG_COPY_KEY))) {
      throw new LifeboatError(
        "REPO_EXISTS",
        `repository "${name}" at ${storage.location} is already initialised`,
      );
    }
    const document = {
      format: REPOSITORY_FORMAT,
      version: REPOSITORY_VERSION,
      id: randomUUID(),
      createdAt: new Date().toISOString(),
      createdBy: { tool: TOOL, host: hostName() },
      encryption,
    };
    const text = sealDocument(document);
    // The copy first: a crash between the two leaves a readable config, never a half one.
    await writeSmall(storage, CONFIG_COPY_KEY, text);
    await writeSmall(storage, CONFIG_KEY, text);
    return new Repository(name, storage, repositoryConfigSchema.parse(JSON.parse(text)));
  }

  static async open(name: string, storage: Storage): Promise<Repository> {
    const primary = await readConfigDocument(storage, CONFIG_KEY);
    const document = primary.ok ? primary : await readConfigDocument(storage, CONFIG_COPY_KEY);
    if (!document.ok) {
      if (!primary.ok && primary.reason === "missing" && document.reason === "missing") {
        throw new LifeboatError(
          "REPO_NOT_INITIALISED",
          `repository "${name}" at ${storage.location} is not initialised (no ${CONFIG_KEY})`,
        );
      }
      throw new LifeboatError(
        "REPO_FORMAT",
        `repository "${name}" at ${storage.location}: ${CONFIG_KEY} and its copy are unreadable (${document.reason})`,
      );
    }
    if (document.value.version > REPOSITORY_VERSION) {
      throw new LifeboatError(
        "REPO_FORMAT",
        `repository "${name}" uses format version ${document.value.version}; this lifeboat reads up to ${REPOSITORY_VERSION}`,
      );
    }
    return new Repository(name, storage, document.value);
  }

  /** Ids of committed backups (those with a manifest), newest first. */
  async listBackupIds(): Promise<string[]> {
    const ids: string[] = [];
    for await (const info of this.storage.list(MANIFEST_PREFIX)) {
      const id = backupIdOfManifestKey(info.key);
      if (id) ids.push(id);
    }
    return ids.sort(
      (a, b) => backupIdTime(b).getTime() - backupIdTime(a).getTime() || (a < b ? 1 : -1),
    );
  }

  /** Reads and checks a manifest; falls back to the copy when the primary fails its checksum. */
  async readManifest(backupId: string): Promise<Manifest> {
    const primary = await this.readManifestAt(backupId, manifestKey(backupId));
    if (primary.ok) return primary.value;
    if (primary.reason === "missing") {
      const hasData = await firstKey(this.storage, dataPrefix(backupId));
      if (hasData || (await this.storage.stat(manifestCopyKey(backupId)))) {
        throw new LifeboatError(
          "BACKUP_INCOMPLETE",
          `backup ${backupId} in "${this.name}" has data but no manifest: it never finished`,
        );
      }
      throw new LifeboatError(
        "BACKUP_NOT_FOUND",
        `no backup ${backupId} in repository "${this.name}" (${this.location})`,
      );
    }
    const copy = await this.readManifestAt(backupId, manifestCopyKey(backupId));
    if (copy.ok) return copy.value;
    throw new LifeboatError(
      "MANIFEST_CORRUPT",
      `manifest of backup ${backupId} in "${this.name}" is unreadable (${primary.reason}) and so is its copy`,
    );
  }

  /** Manifest copy first, then the manifest: the second put is the commit point. */
  async writeManifest(manifest: Omit<Manifest, "checksum">): Promise<void> {
    const text = sealDocument({ ...manifest, version: MANIFEST_VERSION });
    await writeSmall(this.storage, manifestCopyKey(manifest.id), text);
    await writeSmall(this.storage, manifestKey(manifest.id), text);
  }

  /** Plaintext of one object, verified end to end (errors, never a clean end, on any mismatch). */
  async openObject(
    manifest: Manifest,
    record: ObjectRecord,
    options: DecodeOptions = {},
  ): Promise<Readable> {
    let stored: Readable;
    try {
      stored = await this.storage.get(record.key);
    } catch (error) {
      if (isLifeboatError(error, "STORAGE_NOT_FOUND")) {
        throw new LifeboatError(
          "OBJECT_MISSING",
          `backup ${manifest.id}: object ${record.name} (${record.key}) is missing from "${this.name}"`,
          { cause: error },
        );
      }
      throw error;
    }
    return decode(stored, record, options);
  }

  private async readManifestAt(backupId: string, key: string): Promise<DocumentRead<Manifest>> {
    const read = await readDocument(this.storage, key);
    if (!read.ok) return read;
    const parsed = manifestSchema.safeParse(read.value);
    if (!parsed.success)
      return { ok: false, reason: `not a lifeboat manifest: ${parsed.error.issues[0]?.message}` };
    if (parsed.data.id !== backupId)
      return { ok: false, reason: `manifest names backup ${parsed.data.id}` };
    if (parsed.data.version > MANIFEST_VERSION) {
      return {
        ok: false,
        reason: `manifest version ${parsed.data.version} is newer than this lifeboat`,
      };
    }
    return { ok: true, value: parsed.data };
  }
}

type DocumentRead<T> = { ok: true; value: T } | { ok: false; reason: string };

async function readDocument(
  storage: Storage,
  key: string,
): Promise<DocumentRead<Record<string, unknown>>> {
  let text: string;
  try {
    text = await readSmall(storage, key);
  } catch (error) {
    if (isLifeboatError(error, "STORAGE_NOT_FOUND")) return { ok: false, reason: "missing" };
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: `${key} is not valid JSON` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { ok: false, reason: `${key} is not a JSON object` };
  }
  if (!checksumMatches(value as Record<string, unknown>))
    return { ok: false, reason: `${key} fails its checksum` };
  return { ok: true, value: value as Record<string, unknown> };
}

async function readConfigDocument(
  storage: Storage,
  key: string,
): Promise<DocumentRead<RepositoryConfigDocument>> {
  const read = await readDocument(storage, key);
  if (!read.ok) return read;
  if (read.value.format !== REPOSITORY_FORMAT)
    return { ok: false, reason: `${key} is not a lifeboat repository config` };
  const parsed = repositoryConfigSchema.safeParse(read.value);
  if (!parsed.success) return { ok: false, reason: `${key}: ${parsed.error.issues[0]?.message}` };
  return { ok: true, value: parsed.data };
}

async function firstKey(storage: Storage, prefix: string): Promise<string | undefined> {
  for await (const info of storage.list(prefix)) return info.key;
  return undefined;
}

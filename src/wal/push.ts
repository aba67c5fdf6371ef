import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { z } from "zod";
import { LifeboatError, isLifeboatError, toLifeboatError } from "../errors.js";
import { checksumMatches, sealDocument } from "../repository/canonical.js";
import { storedObjectFields } from "../repository/format.js";
import type { Repository } from "../repository/repository.js";
import { readSmall, writeSmall } from "../storage/text.js";
import { COMPRESSION_SUFFIX } from "../stream/compress.js";
import { encode, type EncodeSettings, type EncodedFacts } from "../stream/encode.js";
import { TOOL, hostName } from "../version.js";
import {
  formatLsn,
  parseHistory,
  parseWalName,
  readWalPageHeader,
  walDataKey,
  walRecordKey,
  type WalName,
} from "./layout.js";

/**
 * Archiving one WAL file into repositories: encode once into a temporary file (so every
 * repository gets identical bytes and a failed put can be retried from the start), then per
 * repository: data object first, record last. The record's presence commits the file.
 */

export const WAL_RECORD_FORMAT = "lifeboat-wal";
export const WAL_RECORD_VERSION = 1;

export const walRecordSchema = z.object({
  format: z.literal(WAL_RECORD_FORMAT),
  version: z.number().int(),
  name: z.string(),
  kind: z.enum(["segment", "partial", "history", "backup"]),
  timeline: z.number().int(),
  ...storedObjectFields,
  systemIdentifier: z.string().optional(),
  segmentSize: z.number().int().optional(),
  /** Bytes up to the last non-zero byte of a partial segment: how far it reaches. */
  validBytes: z.number().int().optional(),
  history: z
    .array(z.object({ timeline: z.number().int(), switchLsn: z.string(), reason: z.string() }))
    .optional(),
  modifiedAt: z.string(),
  archivedAt: z.string(),
  source: z.enum(["archive_command", "stream"]),
  host: z.string(),
  tool: z.object({ name: z.string(), version: z.string(), node: z.string().optional() }),
  checksum: z.string(),
});
export type WalRecord = z.infer<typeof walRecordSchema>;

export interface PreparedWalFile {
  name: WalName;
  /** Encoded bytes, ready to put. */
  encodedPath: string;
  facts: EncodedFacts;
  record: Omit<WalRecord, "checksum" | "archivedAt" | "key" | "size" | "sha256">;
  key: string;
  cleanup(): Promise<void>;
}

export interface PrepareOptions {
  encoding: EncodeSettings;
  /** Where the encoded temporary file goes. */
  tmpDir: string;
  source: WalRecord["source"];
  /** Store under this name instead of the file's own (stream mode stores `X.partial`). */
  as?: string;
}

export function walNameOrThrow(name: string): WalName {
  const parsed = parseWalName(name);
  if (!parsed) {
    throw new LifeboatError("USAGE", `"${name}" is not a WAL file name`, {
      hint: "archive_command passes %p (a path under pg_wal/); restore_command passes %f",
    });
  }
  return parsed;
}

export async function prepareWalFile(
  file: string,
  options: PrepareOptions,
): Promise<PreparedWalFile> {
  const name = walNameOrThrow(options.as ?? path.basename(file));
  const info = await stat(file).catch((error: unknown) => {
    throw new LifeboatError("USAGE", `cannot read ${file}: ${(error as Error).message}`, {
      cause: error,
    });
  });
  await mkdir(options.tmpDir, { recursive: true });
  const encodedPath = path.join(
    options.tmpDir,
    `.enc-${name.name}-${randomBytes(4).toString("hex")}`,
  );
  const inspector = new WalInspector(name.kind === "partial");
  const encoding = encode(createReadStream(file, { highWaterMark: 1 << 20 }).pipe(inspector), {
    ...options.encoding,
  });
  try {
    await pipeline(encoding.output, createWriteStream(encodedPath, { mode: 0o600 }));
  } catch (error) {
    await rm(encodedPath, { force: true });
    throw error;
  }
  const facts = encoding.facts();
  const header = readWalPageHeader(inspector.head);
  const history =
    name.kind === "history"
      ? parseHistory(await readFile(file, "utf8")).map((h) => ({
          timeline: h.timeline,
          switchLsn: formatLsn(h.switchLsn),
          reason: h.reason,
        }))
      : undefined;
  const suffix = `${COMPRESSION_SUFFIX[facts.compression.algorithm]}${facts.encryption ? ".age" : ""}`;
  return {
    name,
    encodedPath,
    facts,
    key: walDataKey(name, facts.plain.sha256, suffix),
    record: {
      format: WAL_RECORD_FORMAT,
      version: WAL_RECORD_VERSION,
      name: name.name,
      kind: name.kind,
      timeline: name.timeline,
      plain: facts.plain,
      compression: facts.compression,
      encryption: facts.encryption,
      ...(header && (name.kind === "segment" || name.kind === "partial")
        ? { systemIdentifier: header.systemIdentifier, segmentSize: header.segmentSize }
        : {}),
      ...(name.kind === "partial" ? { validBytes: inspector.lastNonZero } : {}),
      ...(history ? { history } : {}),
      modifiedAt: info.mtime.toISOString(),
      source: options.source,
      host: hostName(),
      tool: TOOL,
    },
    cleanup: () => rm(encodedPath, { force: true }),
  };
}

export type StoreOutcome = "stored" | "exists" | "replaced";

/**
 * Idempotent: the same content under the same name is success without a write; different
 * content is WAL_CONFLICT — except partial segments, which are replaced as they grow.
 */
export async function storeWalFile(
  repository: Repository,
  prepared: PreparedWalFile,
): Promise<StoreOutcome> {
  assertEncryptionMatches(repository, prepared.facts.encryption !== null);
  const existing = await readWalRecord(repository, prepared.name).catch((error: unknown) => {
    // A damaged record commits nothing we can trust; rewriting it with verified content repairs it.
    if (isLifeboatError(error, "OBJECT_CORRUPT")) return undefined;
    throw error;
  });
  const same =
    existing?.plain.sha256 === prepared.facts.plain.sha256 &&
    existing.plain.bytes === prepared.facts.plain.bytes;
  if (existing && same && (await repository.storage.stat(existing.key))) return "exists";
  if (existing && !same && prepared.name.kind !== "partial") {
    throw new LifeboatError(
      "WAL_CONFLICT",
      `${prepared.name.name} is already archived in "${repository.name}" with different content (sha256 ${existing.plain.sha256.slice(0, 16)}… from ${existing.host}${existing.systemIdentifier ? `, system ${existing.systemIdentifier}` : ""}; this file: ${prepared.facts.plain.sha256.slice(0, 16)}…${prepared.record.systemIdentifier ? `, system ${prepared.record.systemIdentifier}` : ""})`,
      { data: { name: prepared.name.name, repository: repository.name } },
    );
  }
  const size = prepared.facts.stored.bytes;
  await repository.storage.put(
    prepared.key,
    { open: () => createReadStream(prepared.encodedPath, { highWaterMark: 1 << 20 }), size },
    { contentType: "application/octet-stream" },
  );
  const record = {
    ...prepared.record,
    key: prepared.key,
    size,
    sha256: prepared.facts.stored.sha256,
    archivedAt: new Date().toISOString(),
  };
  await writeSmall(repository.storage, walRecordKey(prepared.name), sealDocument(record));
  if (existing && existing.key !== prepared.key) {
    await repository.storage.delete(existing.key).catch(() => undefined);
  }
  return existing ? "replaced" : "stored";
}

export async function readWalRecord(
  repository: Repository,
  name: WalName,
): Promise<WalRecord | undefined> {
  const key = walRecordKey(name);
  let text: string;
  try {
    text = await readSmall(repository.storage, key, 1 << 20);
  } catch (error) {
    if (isLifeboatError(error, "STORAGE_NOT_FOUND")) return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const record = walRecordSchema.safeParse(parsed);
  if (!record.success || !checksumMatches(parsed as Record<string, unknown>)) {
    throw new LifeboatError(
      "OBJECT_CORRUPT",
      `WAL record ${key} in "${repository.name}" is damaged`,
    );
  }
  if (record.data.version > WAL_RECORD_VERSION) {
    throw new LifeboatError("REPO_FORMAT", `WAL record ${key} is newer than this lifeboat`);
  }
  return record.data;
}

/** Removes a file's record first (uncommitting it), then its data. */
export async function deleteWalFile(repository: Repository, name: WalName): Promise<void> {
  const record = await readWalRecord(repository, name).catch(() => undefined);
  await repository.storage.delete(walRecordKey(name));
  if (record) await repository.storage.delete(record.key);
}

export interface ArchiveResult {
  name: string;
  plain: { sha256: string; bytes: number };
  repositories: { repository: string; outcome?: StoreOutcome; error?: LifeboatError }[];
}

/** Encodes `file` once and stores it in every repository; never throws for one repository. */
export async function archiveWalFile(
  repositories: Repository[],
  file: string,
  options: PrepareOptions,
): Promise<ArchiveResult> {
  const prepared = await prepareWalFile(file, options);
  try {
    const results = await Promise.all(
      repositories.map(async (repository) => {
        try {
          return { repository: repository.name, outcome: await storeWalFile(repository, prepared) };
        } catch (error) {
          return { repository: repository.name, error: toLifeboatError(error) };
        }
      }),
    );
    return { name: prepared.name.name, plain: prepared.facts.plain, repositories: results };
  } finally {
    await prepared.cleanup();
  }
}

/** The first error of an archive result, preferring conflicts (they need a person). */
export function archiveFailure(result: ArchiveResult): LifeboatError | undefined {
  const errors = result.repositories.flatMap((r) => (r.error ? [r.error] : []));
  return errors.find((e) => e.code === "WAL_CONFLICT") ?? errors[0];
}

function assertEncryptionMatches(repository: Repository, encrypted: boolean): void {
  const repositoryEncrypted = repository.config.encryption.format !== "none";
  if (repositoryEncrypted !== encrypted) {
    throw new LifeboatError(
      "CONFIG_INVALID",
      `repository "${repository.name}" was initialised ${repositoryEncrypted ? "with" : "without"} encryption but the configuration ${encrypted ? "has" : "has no"} recipients`,
    );
  }
}

/** Keeps the first page (for the header) and, for partials, where the data stops. */
class WalInspector extends Transform {
  head = Buffer.alloc(0);
  lastNonZero = 0;
  private offset = 0;
  private zeros = Buffer.alloc(0);

  constructor(private readonly scan: boolean) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.head.length < 64) this.head = Buffer.concat([this.head, chunk.subarray(0, 64)]);
    if (this.scan) {
      if (this.zeros.length < chunk.length) this.zeros = Buffer.alloc(chunk.length);
      // Whole zero chunks are common (preallocated tail): memcmp them instead of looping.
      if (!chunk.equals(this.zeros.subarray(0, chunk.length))) {
        let i = chunk.length - 1;
        while (i >= 0 && chunk[i] === 0) i--;
        this.lastNonZero = this.offset + i + 1;
      }
    }
    this.offset += chunk.length;
    done(null, chunk);
  }
}

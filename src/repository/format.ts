import { randomBytes } from "node:crypto";
import { z } from "zod";

/**
 * Repository layout (see docs/DESIGN.md). Every key the repository writes is built here, so the
 * layout is defined in one place:
 *
 *   lifeboat.json, lifeboat.json.copy     repository config (format version, id, encryption mode)
 *   data/<backup-id>/<object>             stored objects of one backup (written first)
 *   manifests/<backup-id>.copy.json       manifest copy (written second)
 *   manifests/<backup-id>.json            manifest (written last: its presence commits the backup)
 *   locks/<lock-id>.json                  one per running command
 */
export const REPOSITORY_FORMAT = "lifeboat-repository";
export const REPOSITORY_VERSION = 1;
export const MANIFEST_FORMAT = "lifeboat-manifest";
export const MANIFEST_VERSION = 1;

export const CONFIG_KEY = "lifeboat.json";
export const CONFIG_COPY_KEY = "lifeboat.json.copy";
export const DATA_PREFIX = "data/";
export const MANIFEST_PREFIX = "manifests/";
export const LOCK_PREFIX = "locks/";
const MANIFEST_SUFFIX = ".json";
const MANIFEST_COPY_SUFFIX = ".copy.json";

export const BACKUP_ID_PATTERN = /^\d{8}T\d{6}Z-[a-z][a-z0-9-]*-[0-9a-f]{6}$/;
export const OBJECT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/;

export const dataPrefix = (backupId: string) => `${DATA_PREFIX}${backupId}/`;
export const dataKey = (backupId: string, storedName: string) =>
  `${dataPrefix(backupId)}${storedName}`;
export const manifestKey = (backupId: string) => `${MANIFEST_PREFIX}${backupId}${MANIFEST_SUFFIX}`;
export const manifestCopyKey = (backupId: string) =>
  `${MANIFEST_PREFIX}${backupId}${MANIFEST_COPY_SUFFIX}`;
export const lockKey = (lockId: string) => `${LOCK_PREFIX}${lockId}.json`;

/** The backup id of a `manifests/` key, or undefined for copies and strays. */
export function backupIdOfManifestKey(key: string): string | undefined {
  if (!key.startsWith(MANIFEST_PREFIX) || key.endsWith(MANIFEST_COPY_SUFFIX)) return undefined;
  if (!key.endsWith(MANIFEST_SUFFIX)) return undefined;
  const id = key.slice(MANIFEST_PREFIX.length, -MANIFEST_SUFFIX.length);
  return BACKUP_ID_PATTERN.test(id) ? id : undefined;
}

export function backupIdOfDataKey(key: string): string | undefined {
  if (!key.startsWith(DATA_PREFIX)) return undefined;
  const id = key.slice(DATA_PREFIX.length).split("/")[0];
  return id && BACKUP_ID_PATTERN.test(id) ? id : undefined;
}

/**
 * `20261126T020000Z-db-app-3fa9c1`: sorts by time, tells kind and source at a glance, and the
 * random tail keeps two backups started in the same second apart.
 */
export function newBackupId(kind: string, source: string | undefined, at = new Date()): string {
  const stamp = at
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}Z$/, "Z");
  const slug = [kind, source]
    .filter((part): part is string => Boolean(part))
    .map((part) =>
      part
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, "-")
        .replace(/^-+|-+$/g, ""),
    )
    .filter(Boolean)
    .join("-");
  return `${stamp}-${slug || "backup"}-${randomBytes(3).toString("hex")}`;
}

/** Time encoded in a backup id (UTC), for sorting and ageing without reading manifests. */
export function backupIdTime(backupId: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(backupId);
  if (!m) return new Date(Number.NaN);
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

const toolInfo = z.object({ name: z.string(), version: z.string(), node: z.string().optional() });

export const repositoryConfigSchema = z.object({
  format: z.literal(REPOSITORY_FORMAT),
  version: z.number().int(),
  id: z.string().min(1),
  createdAt: z.string(),
  createdBy: z.object({ tool: toolInfo, host: z.string() }),
  encryption: z.discriminatedUnion("format", [
    z.object({ format: z.literal("age-v1"), recipients: z.array(z.string()) }),
    z.object({ format: z.literal("none") }),
  ]),
  checksum: z.string(),
});
export type RepositoryConfigDocument = z.infer<typeof repositoryConfigSchema>;

const SHA256 = /^[0-9a-f]{64}$/;

const digest = z.object({
  sha256: z.string().regex(SHA256),
  bytes: z.number().int().min(0),
});

/**
 * What every stored object records, whoever stores it (backup manifests, WAL records): where
 * it is, its stored and plaintext digests, and how it was encoded — enough to decode and verify it.
 */
export const storedObjectFields = {
  key: z.string().min(1),
  size: z.number().int().min(0),
  sha256: z.string().regex(SHA256),
  plain: digest,
  compression: z.object({
    algorithm: z.enum(["zstd", "gzip", "none"]),
    level: z.number().optional(),
  }),
  encryption: z.object({ format: z.literal("age-v1"), recipients: z.array(z.string()) }).nullable(),
};

export const objectRecordSchema = z.object({
  name: z.string().regex(OBJECT_NAME_PATTERN),
  role: z.string().optional(),
  contentType: z.string().optional(),
  ...storedObjectFields,
  startedAt: z.string(),
  finishedAt: z.string(),
  durationMs: z.number().min(0),
});
export type ObjectRecord = z.infer<typeof objectRecordSchema>;

export const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.number().int(),
  id: z.string().regex(BACKUP_ID_PATTERN),
  repositoryId: z.string(),
  kind: z.string(),
  source: z.string().optional(),
  labels: z.record(z.string(), z.string()).default({}),
  startedAt: z.string(),
  finishedAt: z.string(),
  durationMs: z.number().min(0),
  host: z.string(),
  tool: toolInfo,
  objects: z.array(objectRecordSchema),
  totals: z.object({
    objects: z.number().int(),
    plainBytes: z.number().int(),
    storedBytes: z.number().int(),
  }),
  details: z.record(z.string(), z.unknown()).default({}),
  checksum: z.string(),
});
export type Manifest = z.infer<typeof manifestSchema>;

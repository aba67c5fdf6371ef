import {
  GetBucketVersioningCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
} from "@aws-sdk/client-s3";
import { LifeboatError } from "../errors.js";
import { call, type BucketTarget } from "./client.js";

/** One current object, as a listing shows it (user metadata only after a HEAD). */
export interface ListingEntry {
  key: string;
  size: number;
  /** Without quotes. */
  etag: string;
  lastModified: string;
  /** `lifeboat-sha256` metadata: sha256 of the content, recorded by streamed copies. */
  sha256?: string;
  /** `lifeboat-source-etag` metadata: ETag of the object this copy was made from. */
  sourceEtag?: string;
}

/** One version or delete marker. */
export interface VersionEntry {
  key: string;
  versionId: string;
  isLatest: boolean;
  deleteMarker: boolean;
  lastModified: string;
  size: number;
  etag: string;
}

export type VersioningStatus = "Enabled" | "Suspended" | "Off";

export const unquote = (etag: string | undefined) => (etag ?? "").replace(/^"|"$/g, "");

/** Current objects under `prefix`, in key order. */
export async function* listCurrent(
  target: BucketTarget,
  prefix = "",
): AsyncGenerator<ListingEntry> {
  let token: string | undefined;
  do {
    const page = await call(target, "list objects", (s3) =>
      s3.send(
        new ListObjectsV2Command({
          Bucket: target.bucket,
          ...(prefix ? { Prefix: prefix } : {}),
          ContinuationToken: token,
        }),
      ),
    );
    for (const o of page.Contents ?? []) {
      if (o.Key === undefined) continue;
      yield {
        key: o.Key,
        size: o.Size ?? 0,
        etag: unquote(o.ETag),
        lastModified: (o.LastModified ?? new Date(0)).toISOString(),
      };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

/**
 * Every version and delete marker under `prefix`. Within a page entries come in key order and,
 * per key, newest first — the order S3 defines; the SDK splits versions from markers, so they
 * are merged back here.
 */
export async function* listVersions(
  target: BucketTarget,
  prefix = "",
): AsyncGenerator<VersionEntry> {
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (;;) {
    const page = await call(target, "list object versions", (s3) =>
      s3.send(
        new ListObjectVersionsCommand({
          Bucket: target.bucket,
          ...(prefix ? { Prefix: prefix } : {}),
          KeyMarker: keyMarker,
          VersionIdMarker: versionIdMarker,
        }),
      ),
    );
    const entries: VersionEntry[] = [];
    for (const v of page.Versions ?? []) {
      if (v.Key === undefined) continue;
      entries.push({
        key: v.Key,
        versionId: v.VersionId ?? "null",
        isLatest: v.IsLatest ?? false,
        deleteMarker: false,
        lastModified: (v.LastModified ?? new Date(0)).toISOString(),
        size: v.Size ?? 0,
        etag: unquote(v.ETag),
      });
    }
    for (const m of page.DeleteMarkers ?? []) {
      if (m.Key === undefined) continue;
      entries.push({
        key: m.Key,
        versionId: m.VersionId ?? "null",
        isLatest: m.IsLatest ?? false,
        deleteMarker: true,
        lastModified: (m.LastModified ?? new Date(0)).toISOString(),
        size: 0,
        etag: "",
      });
    }
    entries.sort(compareVersions);
    yield* entries;
    if (!page.IsTruncated) return;
    keyMarker = page.NextKeyMarker;
    versionIdMarker = page.NextVersionIdMarker;
  }
}

/** Key order, then newest first; the latest entry wins a tie in time. */
export function compareVersions(a: VersionEntry, b: VersionEntry): number {
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  const time = Date.parse(b.lastModified) - Date.parse(a.lastModified);
  if (time !== 0) return time;
  return Number(b.isLatest) - Number(a.isLatest);
}

export async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
}

export async function getVersioning(target: BucketTarget): Promise<VersioningStatus> {
  const result = await call(target, "read versioning", (s3) =>
    s3.send(new GetBucketVersioningCommand({ Bucket: target.bucket })),
  );
  return result.Status === "Enabled" || result.Status === "Suspended" ? result.Status : "Off";
}

/**
 * Refuses to work on a bucket without versioning: rolling back would overwrite the only copy, and
 * a delete would destroy data instead of adding a marker.
 */
export async function requireVersioning(target: BucketTarget, doing: string): Promise<void> {
  const status = await getVersioning(target);
  if (status === "Enabled") return;
  throw new LifeboatError(
    "BUCKET_NOT_VERSIONED",
    `cannot ${doing}: versioning of ${target.location} is ${status === "Off" ? "not enabled" : "suspended"}`,
    {
      hint: `without versioning there is no history to restore from and changes would overwrite data; run \`lifeboat bucket protect ${target.name}\` first`,
      data: { bucket: target.bucket, versioning: status },
    },
  );
}

/** Whether the bucket exists (throws on permission or connection problems). */
export async function bucketExists(target: BucketTarget): Promise<boolean> {
  try {
    await call(target, "check bucket", (s3) =>
      s3.send(new HeadBucketCommand({ Bucket: target.bucket })),
    );
    return true;
  } catch (error) {
    // HEAD has no body: a missing bucket is a bare 404.
    const code = (error as LifeboatError).code;
    if (code === "STORAGE_NOT_FOUND" || code === "STORAGE_NO_BUCKET") return false;
    throw error;
  }
}

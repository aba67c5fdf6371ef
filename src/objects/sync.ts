import { DeleteObjectsCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import { LifeboatError, toLifeboatError, type ErrorCode } from "../errors.js";
import { call, forEachLimited, sameService, withRetries, type BucketTarget } from "./client.js";
import { META_SHA256, META_SOURCE_ETAG, hashObject, serverCopy, streamCopy } from "./copy.js";
import { collect, listCurrent, type ListingEntry } from "./list.js";

export const DEFAULT_SYNC_CONCURRENCY = 16;

export interface SyncItem {
  key: string;
  size: number;
  etag: string;
  reason?: "new" | "changed";
}

export interface SyncPlan {
  copy: SyncItem[];
  /** Destination objects missing from the source, removed only with propagateDeletes. */
  delete: SyncItem[];
  /** Destination-only objects left alone (deletions are not propagated by default). */
  kept: number;
  skipped: number;
  skippedBytes: number;
  copyBytes: number;
  sourceObjects: number;
}

export interface SyncPlanOptions {
  propagateDeletes?: boolean;
}

/**
 * Whether the destination already holds the source's content. Size first; then equal ETags (the
 * MD5 for single-part uploads, on every S3 service); then recorded sha256s; then the source ETag a
 * lifeboat copy recorded — multipart uploads get different ETags in different buckets, so a
 * recorded source ETag is what recognises them.
 */
export function sameContent(source: ListingEntry, destination: ListingEntry): boolean {
  if (source.size !== destination.size) return false;
  if (source.etag !== "" && source.etag === destination.etag) return true;
  if (source.sha256 && destination.sha256) return source.sha256 === destination.sha256;
  if (destination.sourceEtag) return destination.sourceEtag === source.etag;
  return false;
}

/** Keys whose listings cannot decide (same size, other ETag): their metadata must be read. */
export function keysNeedingMetadata(source: ListingEntry[], destination: ListingEntry[]): string[] {
  const byKey = new Map(destination.map((d) => [d.key, d]));
  return source
    .filter((s) => {
      const d = byKey.get(s.key);
      return (
        d !== undefined && d.size === s.size && d.etag !== s.etag && !d.sourceEtag && !d.sha256
      );
    })
    .map((s) => s.key);
}

/** Pure: what to copy, skip, keep and (only if asked) delete. */
export function planSync(
  source: ListingEntry[],
  destination: ListingEntry[],
  options: SyncPlanOptions = {},
): SyncPlan {
  const byKey = new Map(destination.map((d) => [d.key, d]));
  const plan: SyncPlan = {
    copy: [],
    delete: [],
    kept: 0,
    skipped: 0,
    skippedBytes: 0,
    copyBytes: 0,
    sourceObjects: source.length,
  };
  const inSource = new Set<string>();
  for (const s of source) {
    inSource.add(s.key);
    const d = byKey.get(s.key);
    if (d && sameContent(s, d)) {
      plan.skipped++;
      plan.skippedBytes += s.size;
      continue;
    }
    plan.copy.push({ key: s.key, size: s.size, etag: s.etag, reason: d ? "changed" : "new" });
    plan.copyBytes += s.size;
  }
  for (const d of destination) {
    if (inSource.has(d.key)) continue;
    if (options.propagateDeletes) plan.delete.push({ key: d.key, size: d.size, etag: d.etag });
    else plan.kept++;
  }
  return plan;
}

export interface SyncOptions {
  prefix?: string;
  propagateDeletes?: boolean;
  concurrency?: number;
  /** auto: server-side copy when both buckets are on one service with the same credentials. */
  mode?: "auto" | "server" | "stream";
  dryRun?: boolean;
  verify?: boolean;
  retryAttempts?: number;
  partSize?: number;
  onProgress?: (progress: SyncProgress) => void;
  onRetry?: (key: string, attempt: number, error: LifeboatError) => void;
}

export interface SyncProgress {
  done: number;
  total: number;
  bytes: number;
  totalBytes: number;
}

export interface SyncFailure {
  key: string;
  code: ErrorCode;
  message: string;
}

export interface SyncResult {
  source: string;
  destination: string;
  mode: "server" | "stream";
  dryRun: boolean;
  plan: SyncPlan;
  copied: number;
  copiedBytes: number;
  deleted: number;
  failed: SyncFailure[];
  durationMs: number;
  objectsPerSecond: number;
  mibPerSecond: number;
  verify?: VerifyResult;
}

/** Lists both sides and reads the metadata the listings lack, then plans. */
export async function planBucketSync(
  source: BucketTarget,
  destination: BucketTarget,
  options: SyncOptions = {},
): Promise<SyncPlan> {
  const [sourceListing, destinationListing] = await Promise.all([
    collect(listCurrent(source, options.prefix)),
    collect(listCurrent(destination, options.prefix)),
  ]);
  const ambiguous = new Set(keysNeedingMetadata(sourceListing, destinationListing));
  const concurrency = options.concurrency ?? DEFAULT_SYNC_CONCURRENCY;
  const toRead = destinationListing.filter((d) => ambiguous.has(d.key));
  await forEachLimited(toRead, concurrency, async (entry) => {
    const head = await call(
      destination,
      "head",
      (s3) => s3.send(new HeadObjectCommand({ Bucket: destination.bucket, Key: entry.key })),
      entry.key,
    );
    const sha256 = head.Metadata?.[META_SHA256];
    const sourceEtag = head.Metadata?.[META_SOURCE_ETAG];
    if (sha256) entry.sha256 = sha256;
    if (sourceEtag) entry.sourceEtag = sourceEtag;
  });
  if (options.propagateDeletes && sourceListing.length === 0 && destinationListing.length > 0) {
    throw new LifeboatError(
      "ABORTED",
      `the source ${source.location}${options.prefix ? ` (prefix ${options.prefix})` : ""} is empty: refusing to delete all ${destinationListing.length} object(s) of the destination`,
      {
        hint: "an empty source is what a lost or wiped bucket looks like; check it, then sync without --propagate-deletes",
      },
    );
  }
  return planSync(sourceListing, destinationListing, options);
}

/**
 * Plan, then apply: copies new and changed objects in parallel (each retried on transient
 * errors), deletes only when asked, and optionally re-reads the destination to verify. Failures
 * of single objects are collected, not fatal: a rerun copies only what is still missing.
 */
export async function syncBuckets(
  source: BucketTarget,
  destination: BucketTarget,
  options: SyncOptions = {},
): Promise<SyncResult> {
  const started = Date.now();
  const serverSide =
    options.mode === "server" ||
    ((options.mode ?? "auto") === "auto" && sameService(source, destination));
  const plan = await planBucketSync(source, destination, options);
  const result: SyncResult = {
    source: source.location,
    destination: destination.location,
    mode: serverSide ? "server" : "stream",
    dryRun: Boolean(options.dryRun),
    plan,
    copied: 0,
    copiedBytes: 0,
    deleted: 0,
    failed: [],
    durationMs: 0,
    objectsPerSecond: 0,
    mibPerSecond: 0,
  };
  if (options.dryRun) return finish(result, started);

  const concurrency = options.concurrency ?? DEFAULT_SYNC_CONCURRENCY;
  const attempts = options.retryAttempts ?? 5;
  // Progress only for runs long enough to need it: first after 2 s, then every 2 s.
  let lastReport = Date.now();
  let reported = false;
  const report = (final = false) => {
    if (!options.onProgress || (final ? !reported : Date.now() - lastReport < 2000)) return;
    lastReport = Date.now();
    reported = true;
    options.onProgress({
      done: result.copied + result.failed.length,
      total: plan.copy.length,
      bytes: result.copiedBytes,
      totalBytes: plan.copyBytes,
    });
  };
  await forEachLimited(plan.copy, concurrency, async (item) => {
    const from = { target: source, key: item.key, size: item.size, etag: item.etag };
    try {
      const outcome = await withRetries(
        attempts,
        () =>
          serverSide
            ? serverCopy(from, destination, item.key)
            : streamCopy(from, destination, item.key, {
                ...(options.partSize ? { partSize: options.partSize } : {}),
              }),
        (attempt, error) => options.onRetry?.(item.key, attempt, error),
      );
      result.copied++;
      result.copiedBytes += outcome.bytes;
    } catch (error) {
      const failure = toLifeboatError(error);
      result.failed.push({ key: item.key, code: failure.code, message: failure.message });
    }
    report();
  });
  report(true);
  for (let i = 0; i < plan.delete.length; i += 1000) {
    const batch = plan.delete.slice(i, i + 1000);
    const response = await call(destination, "delete objects", (s3) =>
      s3.send(
        new DeleteObjectsCommand({
          Bucket: destination.bucket,
          Delete: { Objects: batch.map((d) => ({ Key: d.key })), Quiet: true },
        }),
      ),
    );
    const errors = response.Errors ?? [];
    result.deleted += batch.length - errors.length;
    for (const e of errors) {
      result.failed.push({
        key: e.Key ?? "?",
        code: "STORAGE_IO",
        message: `delete: ${e.Code} ${e.Message}`,
      });
    }
  }
  finish(result, started);
  if (options.verify) result.verify = await verifySync(source, destination, options);
  return result;
}

function finish(result: SyncResult, started: number): SyncResult {
  result.durationMs = Date.now() - started;
  const seconds = Math.max(result.durationMs, 1) / 1000;
  result.objectsPerSecond = Math.round((result.copied / seconds) * 10) / 10;
  result.mibPerSecond = Math.round((result.copiedBytes / 1048576 / seconds) * 100) / 100;
  return result;
}

export interface VerifyResult {
  checked: number;
  ok: number;
  problems: { key: string; problem: string }[];
}

/**
 * Re-reads every destination object that should match the source and compares content: against
 * the sha256 recorded at copy time when there is one, else against the source's bytes.
 */
export async function verifySync(
  source: BucketTarget,
  destination: BucketTarget,
  options: { prefix?: string; concurrency?: number } = {},
): Promise<VerifyResult> {
  const [sourceListing, destinationListing] = await Promise.all([
    collect(listCurrent(source, options.prefix)),
    collect(listCurrent(destination, options.prefix)),
  ]);
  const byKey = new Map(destinationListing.map((d) => [d.key, d]));
  const result: VerifyResult = { checked: 0, ok: 0, problems: [] };
  await forEachLimited(
    sourceListing,
    options.concurrency ?? DEFAULT_SYNC_CONCURRENCY,
    async (s) => {
      result.checked++;
      const d = byKey.get(s.key);
      if (!d)
        return void result.problems.push({ key: s.key, problem: "missing from the destination" });
      if (d.size !== s.size) {
        return void result.problems.push({ key: s.key, problem: `size ${d.size} != ${s.size}` });
      }
      try {
        const copy = await hashObject(destination, d.key);
        const recorded = copy.metadata[META_SHA256];
        const expected =
          recorded && copy.metadata[META_SOURCE_ETAG] === s.etag
            ? recorded
            : (await hashObject(source, s.key)).sha256;
        if (copy.sha256 === expected) result.ok++;
        else
          result.problems.push({
            key: s.key,
            problem: `content sha256 ${copy.sha256} != ${expected}`,
          });
      } catch (error) {
        result.problems.push({ key: s.key, problem: toLifeboatError(error).message });
      }
    },
  );
  return result;
}

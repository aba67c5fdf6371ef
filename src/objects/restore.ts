import { DeleteObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import { LifeboatError, toLifeboatError } from "../errors.js";
import { call, forEachLimited, sameService, withRetries, type BucketTarget } from "./client.js";
import { META_SOURCE_ETAG, copyVersionInPlace, serverCopy, streamCopy } from "./copy.js";
import {
  collect,
  compareVersions,
  listVersions,
  requireVersioning,
  unquote,
  type VersionEntry,
} from "./list.js";
import { readLifecycleRules } from "./protect.js";
import type { SnapshotLine } from "./snapshot.js";

export interface VersionRef {
  versionId: string;
  size: number;
  etag: string;
  lastModified: string;
  deleteMarker?: boolean;
}

export interface RestoreItem {
  key: string;
  /** restore: make `from` current; delete: add a delete marker; missing: no copy of the content. */
  action: "restore" | "delete" | "missing";
  from?: VersionRef;
  current?: VersionRef;
  /** Content found in the secondary bucket (its version here has expired). */
  fromSecondary?: { bucket: string; etag: string };
}

export interface BucketRestorePlan {
  at: string;
  prefix: string;
  /** The snapshot used as the state at its time, when versions alone did not reach back. */
  snapshot?: { id: string; takenAt: string };
  restore: RestoreItem[];
  delete: RestoreItem[];
  missing: RestoreItem[];
  /** Keys whose content at `at` is already current: left alone, not rewritten. */
  unchanged: number;
  /** Keys absent both at `at` and now. */
  absent: number;
  restoreBytes: number;
}

/** A snapshot as the known state of every key at `takenAt`. */
export interface RestoreBaseline {
  id: string;
  takenAt: Date;
  lines: SnapshotLine[];
}

const ref = (e: VersionEntry | SnapshotLine): VersionRef => ({
  versionId: e.versionId,
  size: e.size,
  etag: e.etag,
  lastModified: e.lastModified,
  ...(e.deleteMarker ? { deleteMarker: true } : {}),
});

function groupByKey(versions: VersionEntry[], prefix: string): Map<string, VersionEntry[]> {
  const byKey = new Map<string, VersionEntry[]>();
  for (const entry of versions) {
    if (!entry.key.startsWith(prefix)) continue;
    const list = byKey.get(entry.key) ?? [];
    list.push(entry);
    byKey.set(entry.key, list);
  }
  for (const list of byKey.values()) list.sort(compareVersions);
  return byKey;
}

/**
 * Pure: for each key under `prefix`, the state at `at` is the newest version or delete marker
 * with LastModified <= at (with a baseline: the snapshot's line, unless a version newer than the
 * snapshot and not after `at` exists). Keys whose state differs from the current one are restored
 * (that version copied to be current) or deleted (a delete marker added); the rest are left alone.
 */
export function planBucketRestore(
  versions: VersionEntry[],
  at: Date,
  prefix = "",
  baseline?: RestoreBaseline,
): BucketRestorePlan {
  const plan: BucketRestorePlan = {
    at: at.toISOString(),
    prefix,
    ...(baseline ? { snapshot: { id: baseline.id, takenAt: baseline.takenAt.toISOString() } } : {}),
    restore: [],
    delete: [],
    missing: [],
    unchanged: 0,
    absent: 0,
    restoreBytes: 0,
  };
  const byKey = groupByKey(versions, prefix);
  const lines = new Map(
    (baseline?.lines ?? []).filter((l) => l.key.startsWith(prefix)).map((l) => [l.key, l]),
  );
  const keys = [...new Set([...byKey.keys(), ...lines.keys()])].sort();
  for (const key of keys) {
    const entries = byKey.get(key) ?? [];
    const current = entries.find((e) => e.isLatest) ?? entries[0];
    let state: VersionRef | undefined = (() => {
      const atEntry = entries.find((e) => Date.parse(e.lastModified) <= at.getTime());
      return atEntry ? ref(atEntry) : undefined;
    })();
    if (baseline && !(state && Date.parse(state.lastModified) > baseline.takenAt.getTime())) {
      const line = lines.get(key);
      state = line ? ref(line) : undefined;
    }
    const currentRef = current ? ref(current) : undefined;
    if (!state || state.deleteMarker) {
      if (!current || current.deleteMarker) plan.absent++;
      else plan.delete.push({ key, action: "delete", current: ref(current) });
      continue;
    }
    const same = (e: VersionEntry) =>
      !e.deleteMarker &&
      (e.versionId === state.versionId ||
        (state.etag !== "" && e.etag === state.etag && e.size === state.size));
    if (current && same(current)) {
      plan.unchanged++;
      continue;
    }
    const source =
      entries.find((e) => !e.deleteMarker && e.versionId === state.versionId) ?? entries.find(same);
    const item: RestoreItem = {
      key,
      action: source ? "restore" : "missing",
      from: source ? ref(source) : state,
      ...(currentRef ? { current: currentRef } : {}),
    };
    if (source) {
      plan.restore.push(item);
      plan.restoreBytes += source.size;
    } else plan.missing.push(item);
  }
  return plan;
}

export interface HistoryLimit {
  earliest: string;
  reason: string;
}

/**
 * Pure: whether the versions can tell the state at `at`. They cannot before the oldest entry
 * listed, before `noncurrentDays` ago (older noncurrent versions may have expired), or before the
 * newest unversioned ("null") write of a key (it may have overwritten older content).
 */
export function historyLimit(
  versions: VersionEntry[],
  at: Date,
  options: { noncurrentDays?: number; now?: Date } = {},
): HistoryLimit | undefined {
  if (versions.length === 0) return undefined;
  const limits: HistoryLimit[] = [];
  const oldest = versions.reduce(
    (min, v) => (v.lastModified < min ? v.lastModified : min),
    versions[0]!.lastModified,
  );
  limits.push({ earliest: oldest, reason: `the oldest version is from ${oldest}` });
  if (options.noncurrentDays !== undefined) {
    const now = options.now ?? new Date();
    const expiry = new Date(now.getTime() - options.noncurrentDays * 86_400_000).toISOString();
    limits.push({
      earliest: expiry,
      reason: `noncurrent versions expire after ${options.noncurrentDays} day(s)`,
    });
  }
  const nulls = versions.filter((v) => v.versionId === "null" && !v.deleteMarker);
  if (nulls.length > 0) {
    const newest = nulls.reduce(
      (max, v) => (v.lastModified > max ? v.lastModified : max),
      nulls[0]!.lastModified,
    );
    limits.push({
      earliest: newest,
      reason: `object ${nulls.find((v) => v.lastModified === newest)!.key} was written without versioning at ${newest}`,
    });
  }
  const binding = limits
    .filter((l) => Date.parse(l.earliest) > at.getTime())
    .sort((a, b) => Date.parse(b.earliest) - Date.parse(a.earliest))[0];
  return binding;
}

export interface BucketRestoreOptions {
  at: Date;
  prefix?: string;
  dryRun?: boolean;
  concurrency?: number;
  retryAttempts?: number;
  /** A snapshot to start from: given explicitly, or looked up when versions do not reach `at`. */
  baseline?: (at: Date) => Promise<RestoreBaseline | undefined>;
  forceBaseline?: boolean;
  /** Where to look for content whose versions have expired (matched by ETag). */
  secondary?: BucketTarget;
  now?: Date;
}

export interface BucketRestoreResult extends BucketRestorePlan {
  dryRun: boolean;
  restored: number;
  deleted: number;
  failed: { key: string; code: string; message: string }[];
  durationMs: number;
}

/** Plan then apply a rollback of a prefix (or the whole bucket) to its state at `at`. */
export async function restoreBucket(
  target: BucketTarget,
  options: BucketRestoreOptions,
): Promise<BucketRestoreResult> {
  const started = Date.now();
  const prefix = options.prefix ?? "";
  await requireVersioning(target, "restore a bucket as of a time");
  const versions = await collect(listVersions(target, prefix));
  const days = (await readLifecycleRules(target))
    .filter((r) => r.Status === "Enabled")
    .map((r) => r.NoncurrentVersionExpiration?.NoncurrentDays)
    .filter((d): d is number => d !== undefined);
  const limit = historyLimit(versions, options.at, {
    ...(days.length > 0 ? { noncurrentDays: Math.min(...days) } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  let baseline: RestoreBaseline | undefined;
  let snapshotProblem = "";
  if (options.forceBaseline) baseline = await options.baseline?.(options.at);
  else if (limit) {
    // Not finding snapshots (no repository, no key) must not hide why they were needed.
    baseline = await options.baseline?.(options.at).catch((error: unknown) => {
      snapshotProblem = ` (snapshots could not be searched: ${toLifeboatError(error).message})`;
      return undefined;
    });
  }
  if (options.forceBaseline && !baseline) {
    throw new LifeboatError(
      "BACKUP_NOT_FOUND",
      `no snapshot of ${target.bucket} at or before ${options.at.toISOString()}`,
    );
  }
  if (limit && !baseline) {
    throw new LifeboatError(
      "BUCKET_HISTORY_TOO_SHORT",
      `cannot restore ${target.location}${prefix ? ` prefix ${prefix}` : ""} to ${options.at.toISOString()}: ${limit.reason}; the earliest restorable time is ${limit.earliest}${snapshotProblem}`,
      {
        hint: `choose a time at or after ${limit.earliest}, or take bucket snapshots (\`lifeboat bucket snapshot\`) so older states can be restored`,
        data: { earliest: limit.earliest },
      },
    );
  }
  const plan = planBucketRestore(versions, options.at, prefix, baseline);
  if (options.secondary && plan.missing.length > 0) await lookInSecondary(plan, options.secondary);
  const result: BucketRestoreResult = {
    ...plan,
    dryRun: Boolean(options.dryRun),
    restored: 0,
    deleted: 0,
    failed: [],
    durationMs: 0,
  };
  if (!options.dryRun) {
    const attempts = options.retryAttempts ?? 5;
    const work = [...plan.restore, ...plan.delete];
    await forEachLimited(work, options.concurrency ?? 8, async (item) => {
      try {
        await withRetries(attempts, async () => {
          if (item.fromSecondary) {
            const from = { target: options.secondary!, key: item.key, size: item.from!.size };
            const pinned = { ...from, etag: item.fromSecondary.etag };
            await (sameService(options.secondary!, target)
              ? serverCopy(pinned, target, item.key)
              : streamCopy(pinned, target, item.key));
          } else if (item.action === "restore") {
            await copyVersionInPlace(target, item.key, item.from!.versionId, item.from!.size);
          } else {
            await call(
              target,
              "delete",
              (s3) => s3.send(new DeleteObjectCommand({ Bucket: target.bucket, Key: item.key })),
              item.key,
            );
          }
        });
        if (item.action === "restore") result.restored++;
        else result.deleted++;
      } catch (error) {
        const failure = toLifeboatError(error);
        result.failed.push({ key: item.key, code: failure.code, message: failure.message });
      }
    });
  }
  result.durationMs = Date.now() - started;
  return result;
}

/**
 * Content whose versions expired may survive in the secondary: a copy there with the same size
 * and the same ETag (or a recorded source ETag equal to it) is the same content.
 */
async function lookInSecondary(plan: BucketRestorePlan, secondary: BucketTarget): Promise<void> {
  const found: RestoreItem[] = [];
  await forEachLimited(plan.missing, 8, async (item) => {
    const copy = await call(secondary, "head", (s3) =>
      s3.send(new HeadObjectCommand({ Bucket: secondary.bucket, Key: item.key })),
    ).catch((error: LifeboatError) => {
      if (error.code === "STORAGE_NOT_FOUND") return undefined;
      throw error;
    });
    const etag = unquote(copy?.ETag);
    const wanted = item.from!;
    if (!copy || copy.ContentLength !== wanted.size) return;
    if (etag !== wanted.etag && copy.Metadata?.[META_SOURCE_ETAG] !== wanted.etag) return;
    found.push({ ...item, action: "restore", fromSecondary: { bucket: secondary.bucket, etag } });
  });
  const keys = new Set(found.map((f) => f.key));
  plan.missing = plan.missing.filter((m) => !keys.has(m.key));
  plan.restore.push(...found);
  plan.restore.sort((a, b) => (a.key < b.key ? -1 : 1));
  plan.restoreBytes += found.reduce((sum, f) => sum + f.from!.size, 0);
}

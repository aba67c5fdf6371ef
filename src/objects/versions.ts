import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { LifeboatError } from "../errors.js";
import { call, type BucketTarget } from "./client.js";
import { copyVersionInPlace } from "./copy.js";
import { compareVersions, listVersions, requireVersioning, type VersionEntry } from "./list.js";

/** Every version and delete marker of one key, newest first. */
export async function objectVersions(target: BucketTarget, key: string): Promise<VersionEntry[]> {
  const entries: VersionEntry[] = [];
  for await (const entry of listVersions(target, key)) {
    // Key order: the first other key (`key` + more characters) means ours is complete.
    if (entry.key !== key) break;
    entries.push(entry);
  }
  return entries.sort(compareVersions);
}

export type ObjectRestorePlan =
  | { key: string; action: "restore"; from: VersionEntry; current?: VersionEntry }
  | { key: string; action: "delete"; current: VersionEntry; reason: string }
  | { key: string; action: "none"; reason: string; current?: VersionEntry };

/**
 * Pure: which version to make current. `versionId` picks one; `at` picks the state at that time
 * (which may be "deleted"); neither means undelete (the newest real version, when the key is
 * currently a delete marker).
 */
export function planObjectRestore(
  key: string,
  versions: VersionEntry[],
  selector: { versionId?: string; at?: Date } = {},
): ObjectRestorePlan {
  const sorted = [...versions].sort(compareVersions);
  const current = sorted.find((v) => v.isLatest) ?? sorted[0];
  const withCurrent = current ? { current } : {};
  if (sorted.length === 0) {
    throw new LifeboatError("STORAGE_NOT_FOUND", `no version of ${key} exists`, {
      hint: "check the key (it is case-sensitive); `lifeboat object versions` lists what exists",
    });
  }
  let wanted: VersionEntry | undefined;
  if (selector.versionId !== undefined) {
    wanted = sorted.find((v) => v.versionId === selector.versionId);
    if (!wanted) {
      throw new LifeboatError("USAGE", `${key} has no version ${selector.versionId}`, {
        hint: "`lifeboat object versions <bucket> <key>` lists its versions",
      });
    }
    if (wanted.deleteMarker) {
      throw new LifeboatError(
        "USAGE",
        `version ${selector.versionId} of ${key} is a delete marker`,
        {
          hint: "pick a version that holds content",
        },
      );
    }
  } else if (selector.at !== undefined) {
    const at = selector.at.getTime();
    wanted = sorted.find((v) => Date.parse(v.lastModified) <= at);
    if (!wanted) {
      const oldest = sorted[sorted.length - 1]!.lastModified;
      throw new LifeboatError(
        "BUCKET_HISTORY_TOO_SHORT",
        `${key} has no version at ${selector.at.toISOString()}: its oldest version is from ${oldest}`,
        { hint: `choose a time at or after ${oldest}`, data: { earliest: oldest } },
      );
    }
    if (wanted.deleteMarker) {
      return current && !current.deleteMarker
        ? { key, action: "delete", current, reason: `${key} was deleted at that time` }
        : { key, action: "none", reason: "it was deleted then and is deleted now", ...withCurrent };
    }
  } else {
    if (current && !current.deleteMarker) {
      return {
        key,
        action: "none",
        reason: "it is not deleted; pass --version or --at to roll back to older content",
        current,
      };
    }
    wanted = sorted.find((v) => !v.deleteMarker);
    if (!wanted) {
      throw new LifeboatError(
        "STORAGE_NOT_FOUND",
        `${key} has only delete markers: no content to restore`,
      );
    }
  }
  if (current && !current.deleteMarker && current.versionId === wanted.versionId) {
    return { key, action: "none", reason: "that version is already current", current };
  }
  if (
    current &&
    !current.deleteMarker &&
    current.etag === wanted.etag &&
    current.size === wanted.size
  ) {
    return { key, action: "none", reason: "the current version already has that content", current };
  }
  return { key, action: "restore", from: wanted, ...withCurrent };
}

export interface ObjectRestoreResult {
  bucket: string;
  plan: ObjectRestorePlan;
  dryRun: boolean;
  /** The new current version after the restore (the copy). */
  newVersionId?: string;
}

/** Undelete or roll back one object by copying the chosen version on top; history is kept. */
export async function restoreObject(
  target: BucketTarget,
  key: string,
  selector: { versionId?: string; at?: Date; dryRun?: boolean },
): Promise<ObjectRestoreResult> {
  await requireVersioning(target, `restore ${key}`);
  const plan = planObjectRestore(key, await objectVersions(target, key), selector);
  const result: ObjectRestoreResult = {
    bucket: target.bucket,
    plan,
    dryRun: Boolean(selector.dryRun),
  };
  if (selector.dryRun || plan.action === "none") return result;
  if (plan.action === "restore") {
    await copyVersionInPlace(target, key, plan.from.versionId, plan.from.size);
  } else {
    await call(
      target,
      "delete",
      (s3) => s3.send(new DeleteObjectCommand({ Bucket: target.bucket, Key: key })),
      key,
    );
  }
  const after = await objectVersions(target, key);
  const latest = after.find((v) => v.isLatest);
  if (latest) result.newVersionId = latest.versionId;
  return result;
}

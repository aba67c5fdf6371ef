import { CreateBucketCommand, type BucketLocationConstraint } from "@aws-sdk/client-s3";
import { LifeboatError } from "../errors.js";
import { call, type BucketTarget } from "./client.js";
import { bucketExists, listCurrent, listVersions } from "./list.js";
import { protectBucket } from "./protect.js";
import { applyBucketSettings, type ApplyResult, type BucketSettings } from "./settings.js";
import { syncBuckets, type SyncOptions, type SyncResult } from "./sync.js";

export interface RecoverOptions extends Pick<
  SyncOptions,
  "concurrency" | "retryAttempts" | "mode" | "verify" | "onProgress" | "onRetry"
> {
  /** Saved settings (newest snapshot or sync); without them the bucket gets `bucket protect`. */
  saved?: { backupId: string; settings: BucketSettings };
  dryRun?: boolean;
}

export interface RecoverResult {
  bucket: string;
  location: string;
  from: string;
  dryRun: boolean;
  /** The bucket had to be created (it was gone), or existed empty. */
  created: boolean;
  settings:
    | {
        source: "backup";
        backupId: string;
        applied: ApplyResult["applied"];
        skipped: ApplyResult["skipped"];
      }
    | { source: "defaults"; applied: string[] };
  /** For a dry run: what the secondary holds. */
  objects?: { count: number; bytes: number };
  sync?: SyncResult;
}

/**
 * Brings back a lost bucket: create it (with object lock if it had it), switch versioning on,
 * copy every object back from the secondary, then re-apply CORS, lifecycle, tags and — last, so
 * it cannot block the copy — the policy. Refuses a bucket that still holds anything: rolling back
 * a live bucket is `bucket restore`, not this.
 */
export async function recoverBucket(
  target: BucketTarget,
  from: BucketTarget,
  options: RecoverOptions = {},
): Promise<RecoverResult> {
  if (!(await bucketExists(from))) {
    throw new LifeboatError(
      "STORAGE_NO_BUCKET",
      `the secondary ${from.location} does not exist: nothing to recover from`,
    );
  }
  const exists = await bucketExists(target);
  if (exists) {
    for await (const _entry of listVersions(target)) {
      throw new LifeboatError(
        "USAGE",
        `${target.location} exists and is not empty: recover only recreates a lost bucket`,
        {
          hint: `to roll a live bucket back use \`lifeboat bucket restore ${target.name} --at <time>\`; to copy missing objects use \`lifeboat bucket sync ${from.bucket} ${target.bucket}\``,
        },
      );
    }
  }
  const settings = options.saved?.settings;
  const result: RecoverResult = {
    bucket: target.bucket,
    location: target.location,
    from: from.location,
    dryRun: Boolean(options.dryRun),
    created: !exists,
    settings: options.saved
      ? { source: "backup", backupId: options.saved.backupId, applied: [], skipped: [] }
      : { source: "defaults", applied: [] },
  };
  if (options.dryRun) {
    const objects = { count: 0, bytes: 0 };
    for await (const entry of listCurrent(from)) {
      objects.count++;
      objects.bytes += entry.size;
    }
    result.objects = objects;
    return result;
  }
  if (!exists) {
    const region = target.connection.region;
    // AWS wants the region spelt out except for us-east-1; S3-compatible services mostly refuse it.
    const constraint =
      !target.connection.endpoint && region !== "us-east-1"
        ? { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } }
        : {};
    await call(target, "create bucket", (s3) =>
      s3.send(
        new CreateBucketCommand({
          Bucket: target.bucket,
          ...constraint,
          ...(settings?.objectLock ? { ObjectLockEnabledForBucket: true } : {}),
        }),
      ),
    );
  }
  // Versioning before the copy, so the copies are versions with history from the first write.
  const first = settings
    ? await applyBucketSettings(target, settings, ["versioning", "objectLock"])
    : await protectBucket(target).then(() => undefined);
  result.sync = await syncBuckets(from, target, {
    ...options,
    dryRun: false,
    propagateDeletes: false,
  });
  if (settings && first && result.settings.source === "backup") {
    const rest = await applyBucketSettings(target, settings, [
      "cors",
      "lifecycle",
      "tags",
      "policy",
    ]);
    result.settings.applied = [...first.applied, ...rest.applied];
    result.settings.skipped = [...first.skipped, ...rest.skipped];
  } else if (result.settings.source === "defaults") {
    result.settings.applied = ["versioning", "lifecycle"];
  }
  return result;
}

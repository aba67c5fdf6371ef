import {
  GetBucketLifecycleConfigurationCommand,
  GetObjectLockConfigurationCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketVersioningCommand,
  type LifecycleRule,
} from "@aws-sdk/client-s3";
import { LifeboatError } from "../errors.js";
import { bucketError, call, httpStatusOf, type BucketTarget } from "./client.js";
import { s3ErrorCode } from "../storage/s3.js";
import { getVersioning, listVersions, type VersioningStatus } from "./list.js";
import { normaliseLifecycleRules } from "./settings.js";

export const DEFAULT_NONCURRENT_DAYS = 90;
/** The one lifecycle rule lifeboat owns; other rules are never touched. */
export const PROTECT_RULE_ID = "lifeboat-noncurrent-versions";

export interface ProtectPlan {
  bucket: string;
  versioning: { from: VersioningStatus; to: "Enabled" };
  lifecycle: {
    action: "add" | "update" | "unchanged";
    rule: LifecycleRule;
    /** Every rule after the change, ours merged with the existing ones. */
    rules: LifecycleRule[];
  };
  changes: number;
}

export function protectRule(days: number): LifecycleRule {
  return {
    ID: PROTECT_RULE_ID,
    Status: "Enabled",
    Filter: { Prefix: "" },
    NoncurrentVersionExpiration: { NoncurrentDays: days },
  };
}

/** Pure: what `bucket protect` changes, given the bucket's current versioning and rules. */
export function planProtect(
  bucket: string,
  versioning: VersioningStatus,
  existing: LifecycleRule[],
  days: number,
): ProtectPlan {
  const rule = protectRule(days);
  const rules = normaliseLifecycleRules(existing);
  const index = rules.findIndex((r) => r.ID === PROTECT_RULE_ID);
  let action: ProtectPlan["lifecycle"]["action"] = "add";
  if (index >= 0) {
    const old = rules[index]!;
    const same =
      old.Status === "Enabled" &&
      old.NoncurrentVersionExpiration?.NoncurrentDays === days &&
      (old.Filter?.Prefix ?? "") === "";
    action = same ? "unchanged" : "update";
    rules[index] = rule;
  } else {
    rules.push(rule);
  }
  const changes = (versioning === "Enabled" ? 0 : 1) + (action === "unchanged" ? 0 : 1);
  return {
    bucket,
    versioning: { from: versioning, to: "Enabled" },
    lifecycle: { action, rule, rules },
    changes,
  };
}

export async function readLifecycleRules(target: BucketTarget): Promise<LifecycleRule[]> {
  try {
    const result = await target.s3.send(
      new GetBucketLifecycleConfigurationCommand({ Bucket: target.bucket }),
    );
    return result.Rules ?? [];
  } catch (error) {
    if ((error as { name?: string }).name === "NoSuchLifecycleConfiguration") return [];
    throw bucketError(error, "read lifecycle", target);
  }
}

/**
 * Enables versioning and sets lifeboat's noncurrent-version rule. Reads everything before the
 * first write, checks that versioning really took (some services accept the call and ignore it),
 * and names what was already changed when a later step fails.
 */
export async function protectBucket(
  target: BucketTarget,
  options: { days?: number; dryRun?: boolean } = {},
): Promise<ProtectPlan & { applied: boolean }> {
  const days = options.days ?? target.config?.noncurrentVersionDays ?? DEFAULT_NONCURRENT_DAYS;
  const plan = planProtect(
    target.bucket,
    await getVersioning(target),
    await readLifecycleRules(target),
    days,
  );
  if (options.dryRun || plan.changes === 0) return { ...plan, applied: false };
  if (plan.versioning.from !== "Enabled") {
    try {
      await target.s3.send(
        new PutBucketVersioningCommand({
          Bucket: target.bucket,
          VersioningConfiguration: { Status: "Enabled" },
        }),
      );
    } catch (error) {
      const failure = bucketError(error, "enable versioning", target);
      if (s3ErrorCode(error) !== "NotImplemented" && httpStatusOf(error) !== 501) throw failure;
      throw new LifeboatError(
        "BUCKET_NOT_VERSIONED",
        `${target.location} does not support versioning (${failure.message})`,
        {
          hint: "use a storage service with S3 versioning; nothing was changed",
          cause: error,
        },
      );
    }
    const now = await getVersioning(target);
    if (now !== "Enabled") {
      throw new LifeboatError(
        "BUCKET_NOT_VERSIONED",
        `${target.location} accepted versioning but reports it as ${now}`,
        {
          hint: "this storage service does not support versioning; nothing else was changed",
        },
      );
    }
  }
  if (plan.lifecycle.action !== "unchanged") {
    try {
      await target.s3.send(
        new PutBucketLifecycleConfigurationCommand({
          Bucket: target.bucket,
          LifecycleConfiguration: { Rules: plan.lifecycle.rules },
        }),
      );
    } catch (error) {
      const failure = bucketError(error, "set lifecycle", target);
      const done = plan.versioning.from !== "Enabled" ? "versioning WAS enabled; " : "";
      throw new LifeboatError(
        failure.code,
        `${failure.message}: ${done}the lifecycle rule was NOT set`,
        {
          cause: error,
          data: { versioningEnabled: plan.versioning.from !== "Enabled", lifecycleSet: false },
        },
      );
    }
  }
  return { ...plan, applied: true };
}

export interface BucketStatus {
  bucket: string;
  location: string;
  versioning: VersioningStatus;
  lifecycle: { rules: number; noncurrentDays?: number; protectRule: boolean };
  objectLock: { enabled: boolean; mode?: string; days?: number; years?: number };
  objects: number;
  versions: number;
  noncurrentVersions: number;
  deleteMarkers: number;
  currentBytes: number;
  totalBytes: number;
  oldestVersion?: string;
  protected: boolean;
  warnings: string[];
}

/** Versioning, lifecycle, object lock and what the versions hold (one pass over the listing). */
export async function bucketStatus(target: BucketTarget): Promise<BucketStatus> {
  const versioning = await getVersioning(target);
  const rules = await readLifecycleRules(target);
  const lock = await call(target, "read object lock", (s3) =>
    s3.send(new GetObjectLockConfigurationCommand({ Bucket: target.bucket })),
  ).catch((error: LifeboatError) => {
    if (
      error.code === "STORAGE_NOT_FOUND" ||
      /ObjectLockConfigurationNotFound/.test(String(error.cause))
    ) {
      return undefined;
    }
    throw error;
  });
  const status: BucketStatus = {
    bucket: target.bucket,
    location: target.location,
    versioning,
    lifecycle: { rules: rules.length, protectRule: rules.some((r) => r.ID === PROTECT_RULE_ID) },
    objectLock: { enabled: lock?.ObjectLockConfiguration?.ObjectLockEnabled === "Enabled" },
    objects: 0,
    versions: 0,
    noncurrentVersions: 0,
    deleteMarkers: 0,
    currentBytes: 0,
    totalBytes: 0,
    protected: false,
    warnings: [],
  };
  const retention = lock?.ObjectLockConfiguration?.Rule?.DefaultRetention;
  if (retention?.Mode) status.objectLock.mode = retention.Mode;
  if (retention?.Days) status.objectLock.days = retention.Days;
  if (retention?.Years) status.objectLock.years = retention.Years;
  const days = rules
    .filter((r) => r.Status === "Enabled" && r.NoncurrentVersionExpiration?.NoncurrentDays)
    .map((r) => r.NoncurrentVersionExpiration!.NoncurrentDays!);
  if (days.length > 0) status.lifecycle.noncurrentDays = Math.min(...days);
  for await (const entry of listVersions(target)) {
    if (!status.oldestVersion || entry.lastModified < status.oldestVersion) {
      status.oldestVersion = entry.lastModified;
    }
    if (entry.deleteMarker) {
      status.deleteMarkers++;
      continue;
    }
    status.versions++;
    status.totalBytes += entry.size;
    if (entry.isLatest) {
      status.objects++;
      status.currentBytes += entry.size;
    } else status.noncurrentVersions++;
  }
  if (versioning !== "Enabled") {
    status.warnings.push(
      `versioning is ${versioning === "Off" ? "not enabled" : "suspended"}: deleted or overwritten objects cannot be recovered`,
    );
  }
  if (status.lifecycle.noncurrentDays === undefined) {
    status.warnings.push(
      "no lifecycle rule expires noncurrent versions: old versions are kept (and billed) forever",
    );
  }
  status.protected = versioning === "Enabled" && status.lifecycle.noncurrentDays !== undefined;
  return status;
}

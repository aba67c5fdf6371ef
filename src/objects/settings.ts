import {
  DeleteBucketCorsCommand,
  DeleteBucketLifecycleCommand,
  DeleteBucketPolicyCommand,
  DeleteBucketTaggingCommand,
  GetBucketCorsCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketPolicyCommand,
  GetBucketTaggingCommand,
  GetObjectLockConfigurationCommand,
  PutBucketCorsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketPolicyCommand,
  PutBucketTaggingCommand,
  PutBucketVersioningCommand,
  PutObjectLockConfigurationCommand,
  type CORSRule,
  type LifecycleRule,
  type ObjectLockConfiguration,
  type Tag,
} from "@aws-sdk/client-s3";
import { LifeboatError } from "../errors.js";
import { bucketError, type BucketTarget } from "./client.js";
import { getVersioning, type VersioningStatus } from "./list.js";

export const SETTINGS_FORMAT = "lifeboat-bucket-settings";
export const SETTING_NAMES = [
  "versioning",
  "objectLock",
  "cors",
  "lifecycle",
  "tags",
  "policy",
] as const;
export type SettingName = (typeof SETTING_NAMES)[number];

/** Everything about a bucket that is not its objects; saved by `bucket snapshot` and `sync`. */
export interface BucketSettings {
  format: typeof SETTINGS_FORMAT;
  version: 1;
  bucket: string;
  capturedAt: string;
  versioning: VersioningStatus;
  cors?: CORSRule[];
  lifecycle?: LifecycleRule[];
  /** The policy document as the service returned it (JSON text). */
  policy?: string;
  objectLock?: ObjectLockConfiguration;
  tags?: Tag[];
  /** Settings that could not be read (denied or unsupported): name → error code. */
  unreadable?: Partial<Record<SettingName, string>>;
}

/** "No such configuration" answers: the setting is simply absent. */
const ABSENT = new Set([
  "NoSuchCORSConfiguration",
  "NoSuchLifecycleConfiguration",
  "NoSuchBucketPolicy",
  "NoSuchTagSet",
  "NoSuchTagSetError",
  "ObjectLockConfigurationNotFoundError",
]);

export async function readBucketSettings(
  target: BucketTarget,
  now = new Date(),
): Promise<BucketSettings> {
  const settings: BucketSettings = {
    format: SETTINGS_FORMAT,
    version: 1,
    bucket: target.bucket,
    capturedAt: now.toISOString(),
    versioning: await getVersioning(target), // also fails fast on a missing bucket
  };
  const unreadable: Partial<Record<SettingName, string>> = {};
  const read = async <T>(name: SettingName, run: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await run();
    } catch (error) {
      const code = (error as { name?: string }).name ?? "";
      if (ABSENT.has(code)) return undefined;
      const failure = bucketError(error, `read ${name}`, target);
      if (failure.code === "STORAGE_NO_BUCKET" || failure.transient) throw failure;
      unreadable[name] = `${failure.code} (${code})`;
      return undefined;
    }
  };
  const { Bucket } = { Bucket: target.bucket };
  const cors = await read("cors", () => target.s3.send(new GetBucketCorsCommand({ Bucket })));
  if (cors?.CORSRules?.length) settings.cors = cors.CORSRules;
  const lifecycle = await read("lifecycle", () =>
    target.s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket })),
  );
  if (lifecycle?.Rules?.length) settings.lifecycle = normaliseLifecycleRules(lifecycle.Rules);
  const policy = await read("policy", () => target.s3.send(new GetBucketPolicyCommand({ Bucket })));
  if (policy?.Policy) settings.policy = policy.Policy;
  const lock = await read("objectLock", () =>
    target.s3.send(new GetObjectLockConfigurationCommand({ Bucket })),
  );
  if (lock?.ObjectLockConfiguration?.ObjectLockEnabled === "Enabled") {
    settings.objectLock = lock.ObjectLockConfiguration;
  }
  const tags = await read("tags", () => target.s3.send(new GetBucketTaggingCommand({ Bucket })));
  if (tags?.TagSet?.length) settings.tags = tags.TagSet;
  if (Object.keys(unreadable).length > 0) settings.unreadable = unreadable;
  return stripUndefined(settings);
}

/**
 * Rules in the shape PutBucketLifecycleConfiguration accepts: some services (radosgw) answer with
 * the legacy rule-level `Prefix`, which AWS refuses next to `Filter`.
 */
export function normaliseLifecycleRules(rules: LifecycleRule[]): LifecycleRule[] {
  return rules.map((rule) => {
    const { Prefix, Filter, ...rest } = rule as LifecycleRule & { Prefix?: string };
    const filter = Filter ?? { Prefix: Prefix ?? "" };
    return stripUndefined({ ...rest, Filter: filter });
  });
}

export interface ApplyResult {
  applied: SettingName[];
  skipped: { setting: SettingName; reason: string }[];
}

/**
 * Makes the bucket's settings equal to `settings`: present ones are put, absent ones removed (a
 * settings restore means the saved state, not a union). Versioning cannot be switched off once
 * enabled and object lock cannot be removed; those are reported as skipped. The policy goes last
 * so a restrictive one cannot block the other changes.
 */
export async function applyBucketSettings(
  target: BucketTarget,
  settings: BucketSettings,
  only: readonly SettingName[] = SETTING_NAMES,
): Promise<ApplyResult> {
  const result: ApplyResult = { applied: [], skipped: [] };
  const Bucket = target.bucket;
  const step = async (name: SettingName, run: () => Promise<unknown>) => {
    if (!only.includes(name)) return;
    if (settings.unreadable?.[name]) {
      result.skipped.push({ setting: name, reason: `not saved (${settings.unreadable[name]})` });
      return;
    }
    try {
      await run();
      result.applied.push(name);
    } catch (error) {
      const failure = bucketError(error, `apply ${name}`, target);
      throw new LifeboatError(
        failure.code,
        `${failure.message}; applied before the failure: ${result.applied.join(", ") || "nothing"}`,
        { cause: error, data: { applied: result.applied } },
      );
    }
  };
  const current = await getVersioning(target);
  if (settings.versioning !== "Off") {
    await step("versioning", () =>
      target.s3.send(
        new PutBucketVersioningCommand({
          Bucket,
          VersioningConfiguration: { Status: settings.versioning as "Enabled" | "Suspended" },
        }),
      ),
    );
  } else if (current !== "Off" && only.includes("versioning")) {
    result.skipped.push({
      setting: "versioning",
      reason: `is ${current}; it cannot be turned off`,
    });
  }
  if (settings.objectLock?.Rule) {
    await step("objectLock", () =>
      target.s3.send(
        new PutObjectLockConfigurationCommand({
          Bucket,
          ObjectLockConfiguration: settings.objectLock,
        }),
      ),
    );
  }
  await step("cors", () =>
    settings.cors
      ? target.s3.send(
          new PutBucketCorsCommand({ Bucket, CORSConfiguration: { CORSRules: settings.cors } }),
        )
      : ignoreAbsent(target.s3.send(new DeleteBucketCorsCommand({ Bucket }))),
  );
  await step("lifecycle", () =>
    settings.lifecycle
      ? target.s3.send(
          new PutBucketLifecycleConfigurationCommand({
            Bucket,
            LifecycleConfiguration: { Rules: normaliseLifecycleRules(settings.lifecycle) },
          }),
        )
      : ignoreAbsent(target.s3.send(new DeleteBucketLifecycleCommand({ Bucket }))),
  );
  await step("tags", () =>
    settings.tags
      ? target.s3.send(new PutBucketTaggingCommand({ Bucket, Tagging: { TagSet: settings.tags } }))
      : ignoreAbsent(target.s3.send(new DeleteBucketTaggingCommand({ Bucket }))),
  );
  await step("policy", () =>
    settings.policy
      ? target.s3.send(new PutBucketPolicyCommand({ Bucket, Policy: settings.policy }))
      : ignoreAbsent(target.s3.send(new DeleteBucketPolicyCommand({ Bucket }))),
  );
  return result;
}

async function ignoreAbsent(request: Promise<unknown>): Promise<void> {
  try {
    await request;
  } catch (error) {
    if (!ABSENT.has((error as { name?: string }).name ?? "")) throw error;
  }
}

/** Parses a saved settings document, refusing anything newer than this lifeboat. */
export function parseSettings(text: string): BucketSettings {
  let value: BucketSettings;
  try {
    value = JSON.parse(text) as BucketSettings;
  } catch (error) {
    throw new LifeboatError("REPO_FORMAT", "saved bucket settings are not JSON", { cause: error });
  }
  if (value.format !== SETTINGS_FORMAT || value.version > 1) {
    throw new LifeboatError(
      "REPO_FORMAT",
      `not a bucket settings document (version ${value.version})`,
    );
  }
  return value;
}

/** A short human line per setting. */
export function describeSettings(settings: BucketSettings): string[] {
  return [
    `versioning: ${settings.versioning}`,
    `object lock: ${settings.objectLock ? JSON.stringify(settings.objectLock.Rule ?? "enabled") : "off"}`,
    `cors: ${settings.cors ? `${settings.cors.length} rule(s)` : "none"}`,
    `lifecycle: ${settings.lifecycle ? settings.lifecycle.map((r) => r.ID ?? "(unnamed)").join(", ") : "none"}`,
    `tags: ${settings.tags ? settings.tags.map((t) => `${t.Key}=${t.Value}`).join(", ") : "none"}`,
    `policy: ${settings.policy ? `${settings.policy.length} characters` : "none"}`,
    ...Object.entries(settings.unreadable ?? {}).map(
      ([name, code]) => `unreadable: ${name} (${code})`,
    ),
  ];
}

export function stripUndefined<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

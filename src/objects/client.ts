import type { S3Client } from "@aws-sdk/client-s3";
import type { BucketConfig, LifeboatConfig } from "../config/schema.js";
import { DURATION_PATTERN, durationSeconds } from "../config/schema.js";
import { setTimeout as delay } from "node:timers/promises";
import { LifeboatError, isLifeboatError, toLifeboatError, type ErrorCode } from "../errors.js";
import { S3Storage, s3ErrorCode } from "../storage/s3.js";

/** How to reach a bucket: the same fields as an S3 repository. */
export interface BucketConnection {
  endpoint?: string;
  region: string;
  pathStyle?: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** A bucket a command works on, with a client for its service. */
export interface BucketTarget {
  /** Configured name, or the bucket name for a raw reference. */
  name: string;
  bucket: string;
  connection: BucketConnection;
  /** Present when the bucket is configured under `buckets:`. */
  config?: BucketConfig;
  /** For copies into this bucket (a secondary's storageClass). */
  storageClass?: string;
  s3: S3Client;
  /** `s3://bucket (http://host)` — never credentials. */
  location: string;
}

/** Flags that give raw bucket names a connection of their own. */
export interface ConnectionFlags {
  endpoint?: string;
  region?: string;
}

export function openTarget(
  name: string,
  bucket: string,
  connection: BucketConnection,
  options: { maxAttempts?: number; storageClass?: string; config?: BucketConfig } = {},
): BucketTarget {
  // The repository driver owns the client settings every S3-compatible server needs (checksum
  // mode, timeouts, path style); building it here keeps them in one place.
  const storage = new S3Storage({
    bucket,
    region: connection.region,
    ...(connection.endpoint ? { endpoint: connection.endpoint } : {}),
    ...(connection.pathStyle === undefined ? {} : { pathStyle: connection.pathStyle }),
    ...(connection.credentials ? { credentials: connection.credentials } : {}),
    maxAttempts: options.maxAttempts ?? 5,
  });
  const where = connection.endpoint ? ` (${new URL(connection.endpoint).host})` : "";
  return {
    name,
    bucket,
    connection,
    ...(options.config ? { config: options.config } : {}),
    ...(options.storageClass ? { storageClass: options.storageClass } : {}),
    s3: storage.s3Client(),
    location: `s3://${bucket}${where}`,
  };
}

function connectionOf(config: BucketConfig): BucketConnection {
  return {
    region: config.region,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    ...(config.pathStyle === undefined ? {} : { pathStyle: config.pathStyle }),
    ...(config.credentials ? { credentials: config.credentials } : {}),
  };
}

/**
 * The connection raw bucket names use: `--endpoint`/`--region` when given (credentials from the
 * AWS default chain), else the first configured bucket's, else the first S3 repository's.
 */
function defaultConnection(config: LifeboatConfig, flags: ConnectionFlags): BucketConnection {
  if (flags.endpoint) {
    return { endpoint: flags.endpoint, region: flags.region ?? "us-east-1" };
  }
  const first = Object.values(config.buckets)[0];
  if (first) return { ...connectionOf(first), ...(flags.region ? { region: flags.region } : {}) };
  for (const repository of Object.values(config.repositories)) {
    if (repository.type !== "s3") continue;
    return {
      region: flags.region ?? repository.region,
      pathStyle: repository.pathStyle,
      ...(repository.endpoint ? { endpoint: repository.endpoint } : {}),
      ...(repository.credentials ? { credentials: repository.credentials } : {}),
    };
  }
  return { region: flags.region ?? process.env.AWS_REGION ?? "us-east-1" };
}

/** A configured bucket by name (or by its bucket name), or a raw bucket name. */
export function resolveBucket(
  config: LifeboatConfig,
  reference: string,
  flags: ConnectionFlags = {},
): BucketTarget {
  const maxAttempts = config.storage.retryAttempts;
  const byName = config.buckets[reference];
  const entry =
    byName !== undefined
      ? ([reference, byName] as const)
      : Object.entries(config.buckets).find(([, b]) => b.bucket === reference);
  if (entry && !flags.endpoint) {
    const [name, bucket] = entry;
    return openTarget(name, bucket.bucket, connectionOf(bucket), { maxAttempts, config: bucket });
  }
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(reference)) {
    throw new LifeboatError(
      "USAGE",
      `"${reference}" is neither a configured bucket nor a valid bucket name`,
      {
        hint: `configured buckets: ${Object.keys(config.buckets).join(", ") || "(none)"}`,
      },
    );
  }
  return openTarget(reference, reference, defaultConnection(config, flags), { maxAttempts });
}

/**
 * The secondary of `source`: the configured one when `reference` is omitted or names it,
 * otherwise `reference` resolved like any bucket.
 */
export function resolveSecondary(
  config: LifeboatConfig,
  source: BucketTarget,
  reference?: string,
  flags: ConnectionFlags = {},
): BucketTarget {
  const secondary = source.config?.secondary;
  if (secondary && (reference === undefined || reference === secondary.bucket)) {
    const primary = connectionOf(source.config!);
    const connection: BucketConnection = {
      region: secondary.region ?? primary.region,
      ...((secondary.endpoint ?? primary.endpoint)
        ? { endpoint: secondary.endpoint ?? primary.endpoint }
        : {}),
      ...((secondary.pathStyle ?? primary.pathStyle) === undefined
        ? {}
        : { pathStyle: secondary.pathStyle ?? primary.pathStyle }),
      ...((secondary.credentials ?? primary.credentials)
        ? { credentials: secondary.credentials ?? primary.credentials }
        : {}),
    };
    return openTarget(`${source.name}:secondary`, secondary.bucket, connection, {
      maxAttempts: config.storage.retryAttempts,
      ...(secondary.storageClass ? { storageClass: secondary.storageClass } : {}),
    });
  }
  if (reference === undefined) {
    throw new LifeboatError("USAGE", `bucket "${source.name}" has no secondary configured`, {
      hint: `name the other bucket, or set buckets.${source.name}.secondary in the configuration`,
    });
  }
  return resolveBucket(config, reference, flags);
}

/** Server-side copy needs one service and credentials that can read the source. */
export function sameService(a: BucketTarget, b: BucketTarget): boolean {
  const endpoint = (c: BucketConnection) => (c.endpoint ? new URL(c.endpoint).origin : "aws");
  return (
    endpoint(a.connection) === endpoint(b.connection) &&
    a.connection.credentials?.accessKeyId === b.connection.credentials?.accessKeyId
  );
}

export function closeTargets(...targets: (BucketTarget | undefined)[]): void {
  for (const target of targets) target?.s3.destroy();
}

const AUTH = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "InvalidToken",
  "ExpiredToken",
  "CredentialsProviderError",
]);
const TRANSIENT = new Set(["SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"]);
const NETWORK =
  /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EPIPE|TimeoutError|socket hang up/;

export function httpStatusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

/**
 * Maps an SDK error on a bucket operation to a LifeboatError naming the bucket and what was
 * being done, so "no permission" and "no such bucket" read as such rather than as an HTTP status.
 */
export function bucketError(
  error: unknown,
  operation: string,
  target: BucketTarget,
  key?: string,
): LifeboatError {
  if (error instanceof LifeboatError) return error;
  const code = s3ErrorCode(error) ?? "Error";
  const status = httpStatusOf(error);
  const what = `${operation} on ${target.location}${key === undefined ? "" : ` key ${key}`}`;
  const detail = `${code}${status ? `, HTTP ${status}` : ""}`;
  let lifeboatCode: ErrorCode = "STORAGE_IO";
  let message = `${what} failed (${detail})`;
  if (AUTH.has(code) || status === 401) lifeboatCode = "STORAGE_AUTH";
  else if (code === "NoSuchBucket") {
    lifeboatCode = "STORAGE_NO_BUCKET";
    message = `bucket ${target.bucket} does not exist (${what})`;
  } else if (code === "AccessDenied" || status === 403) {
    lifeboatCode = "STORAGE_DENIED";
    message = `permission denied: ${what}`;
  } else if (code === "NoSuchKey" || code === "NoSuchVersion" || status === 404) {
    lifeboatCode = "STORAGE_NOT_FOUND";
  } else if (code === "PreconditionFailed" || status === 412) {
    message = `${what}: the object changed since it was listed (${detail}); run again to copy the new content`;
  } else if (code === "NotImplemented" || status === 501) {
    lifeboatCode = "STORAGE_IO";
    message = `${what} is not supported by this storage service (${detail})`;
  } else if (TRANSIENT.has(code) || status === 429 || (status !== undefined && status >= 500)) {
    lifeboatCode = "STORAGE_TRANSIENT";
  } else if (status === undefined && NETWORK.test(`${code} ${String(error)}`)) {
    lifeboatCode = "STORAGE_UNREACHABLE";
  }
  return new LifeboatError(lifeboatCode, message, { cause: error });
}

/** Runs one SDK call and maps its failure. */
export async function call<T>(
  target: BucketTarget,
  operation: string,
  run: (s3: S3Client) => Promise<T>,
  key?: string,
): Promise<T> {
  try {
    return await run(target.s3);
  } catch (error) {
    throw bucketError(error, operation, target, key);
  }
}

/**
 * A point in time from the command line: an ISO 8601 timestamp (UTC when no offset is given) or
 * a duration ago (`90m`, `2h ago`). Times in the future are refused.
 */
export function parseTime(text: string, now = new Date()): Date {
  const trimmed = text.trim().replace(/\s+ago$/, "");
  if (DURATION_PATTERN.test(trimmed))
    return new Date(now.getTime() - durationSeconds(trimmed) * 1000);
  let iso = trimmed.replace(" ", "T");
  if (/T\d/.test(iso) && !/(Z|[+-]\d\d:?\d\d)$/i.test(iso)) iso += "Z";
  const time = Date.parse(iso);
  if (Number.isNaN(time)) {
    throw new LifeboatError("USAGE", `"${text}" is not a time`, {
      hint: "give an ISO 8601 time such as 2026-11-26T14:00:00Z, or a duration ago such as 2h",
    });
  }
  if (time > now.getTime() + 1000) {
    throw new LifeboatError("USAGE", `${new Date(time).toISOString()} is in the future`);
  }
  return new Date(time);
}

/** Runs `fn` over items with at most `limit` in flight; results in input order. */
export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

/** Retries transient failures of a whole operation (a copy, a restore step) with exponential backoff and full jitter. */
export async function withRetries<T>(
  attempts: number,
  run: () => Promise<T>,
  onRetry?: (attempt: number, error: LifeboatError) => void,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      const failure = toLifeboatError(error);
      if (!isLifeboatError(failure) || !failure.transient || attempt >= attempts) throw failure;
      onRetry?.(attempt, failure);
      await delay(Math.round(Math.random() * Math.min(10_000, 200 * 2 ** (attempt - 1))));
    }
  }
}

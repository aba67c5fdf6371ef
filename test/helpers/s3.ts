// Helpers for tests that talk to the shared S3 test server (radosgw, see scripts/services.sh).
// Tests share one server and isolate themselves by bucket: create a bucket per test (file)
// with createTestBucket() and remove it with deleteTestBucket().
import { randomBytes } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectLegalHoldCommand,
  S3Client,
  S3ServiceException,
  type ObjectIdentifier,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";

export interface S3TestConfig {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/** The test server's coordinates, from the LIFEBOAT_TEST_S3_* variables globalSetup sets. */
export function s3TestConfig(): S3TestConfig {
  const endpoint = process.env.LIFEBOAT_TEST_S3_ENDPOINT;
  if (!endpoint) {
    throw new Error(
      "LIFEBOAT_TEST_S3_ENDPOINT is not set. Run tests through vitest (its globalSetup, " +
        "test/helpers/global-setup.ts, starts the S3 server), or start it with " +
        '`bash scripts/services.sh start` and `eval "$(bash scripts/services.sh env)"`.',
    );
  }
  return {
    endpoint,
    region: process.env.LIFEBOAT_TEST_S3_REGION || "default",
    accessKeyId: process.env.LIFEBOAT_TEST_S3_ACCESS_KEY || "lifeboat-test",
    secretAccessKey: process.env.LIFEBOAT_TEST_S3_SECRET_KEY || "lifeboat-test-secret",
  };
}

/**
 * An S3 client for the test server. radosgw needs path-style addressing and does not support
 * the SDK's default flexible checksums, so checksums are only sent where an operation
 * requires one.
 */
export function makeTestS3Client(overrides: Partial<S3ClientConfig> = {}): S3Client {
  const config = s3TestConfig();
  return new S3Client({
    endpoint: config.endpoint,
    region: config.region,
    credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    ...overrides,
  });
}

let sharedClient: S3Client | undefined;
function client(): S3Client {
  sharedClient ??= makeTestS3Client();
  return sharedClient;
}

/** A valid, unique bucket name: `<prefix>-<time>-<random>`, lowercase, at most 63 chars. */
export function testBucketName(prefix: string): string {
  const suffix = `${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
  let base = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^-+|-+$/g, "");
  base = base.slice(0, 63 - suffix.length - 1).replace(/-+$/g, "");
  if (base.length === 0) base = "test";
  return `${base}-${suffix}`;
}

export interface TestBucketOptions {
  /** Enable versioning. */
  versioning?: boolean;
  /** Create the bucket with S3 Object Lock (this also enables versioning). */
  objectLock?: boolean;
}

/** Create a uniquely named bucket and return its name. */
export async function createTestBucket(
  prefix: string,
  options: TestBucketOptions = {},
): Promise<string> {
  const name = testBucketName(prefix);
  const s3 = client();
  await s3.send(
    new CreateBucketCommand({
      Bucket: name,
      ...(options.objectLock ? { ObjectLockEnabledForBucket: true } : {}),
    }),
  );
  if (options.versioning && !options.objectLock) {
    await s3.send(
      new PutBucketVersioningCommand({
        Bucket: name,
        VersioningConfiguration: { Status: "Enabled" },
      }),
    );
  }
  return name;
}

function isNoSuchBucket(error: unknown): boolean {
  return error instanceof S3ServiceException && error.name === "NoSuchBucket";
}

/** Delete one batch of versions; returns the identifiers that could not be deleted. */
async function deleteBatch(bucket: string, objects: ObjectIdentifier[]): Promise<string[]> {
  const s3 = client();
  const result = await s3.send(
    new DeleteObjectsCommand({
      Bucket: bucket,
      Delete: { Objects: objects, Quiet: true },
      BypassGovernanceRetention: true,
    }),
  );
  const failures: string[] = [];
  for (const error of result.Errors ?? []) {
    if (error.Key === undefined) continue;
    // A legal hold blocks deletion even with the governance bypass: lift it and retry once.
    try {
      await s3.send(
        new PutObjectLegalHoldCommand({
          Bucket: bucket,
          Key: error.Key,
          VersionId: error.VersionId,
          LegalHold: { Status: "OFF" },
        }),
      );
      const retry = await s3.send(
        new DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: [{ Key: error.Key, VersionId: error.VersionId }], Quiet: true },
          BypassGovernanceRetention: true,
        }),
      );
      if (!retry.Errors?.length) continue;
    } catch {
      // fall through: reported below
    }
    failures.push(`${error.Key}@${error.VersionId ?? "null"}: ${error.Code} ${error.Message}`);
  }
  return failures;
}

/** Remove every object version, delete marker and pending multipart upload. */
async function emptyBucket(bucket: string): Promise<void> {
  const s3 = client();
  const failures: string[] = [];
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (;;) {
    const page = await s3.send(
      new ListObjectVersionsCommand({
        Bucket: bucket,
        KeyMarker: keyMarker,
        VersionIdMarker: versionIdMarker,
        MaxKeys: 1000,
      }),
    );
    const objects: ObjectIdentifier[] = [
      ...(page.Versions ?? []),
      ...(page.DeleteMarkers ?? []),
    ].flatMap((entry) =>
      entry.Key === undefined ? [] : [{ Key: entry.Key, VersionId: entry.VersionId }],
    );
    if (objects.length > 0) failures.push(...(await deleteBatch(bucket, objects)));
    if (!page.IsTruncated) break;
    keyMarker = page.NextKeyMarker;
    versionIdMarker = page.NextVersionIdMarker;
  }

  let uploadKeyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (;;) {
    const page = await s3.send(
      new ListMultipartUploadsCommand({
        Bucket: bucket,
        KeyMarker: uploadKeyMarker,
        UploadIdMarker: uploadIdMarker,
      }),
    );
    for (const upload of page.Uploads ?? []) {
      await s3.send(
        new AbortMultipartUploadCommand({
          Bucket: bucket,
          Key: upload.Key,
          UploadId: upload.UploadId,
        }),
      );
    }
    if (!page.IsTruncated) break;
    uploadKeyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
  }

  if (failures.length > 0) {
    throw new Error(
      `could not delete ${failures.length} object version(s) in ${bucket} ` +
        `(compliance-mode retention?): ${failures.slice(0, 5).join("; ")}`,
    );
  }
}

/**
 * Delete a test bucket and everything in it (all versions and delete markers, bypassing
 * governance-mode retention and lifting legal holds). A bucket that is already gone is fine.
 */
export async function deleteTestBucket(bucket: string): Promise<void> {
  const s3 = client();
  for (let attempt = 1; ; attempt++) {
    try {
      await emptyBucket(bucket);
      await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
      return;
    } catch (error) {
      if (isNoSuchBucket(error)) return;
      // Objects written concurrently (or a listing lagging behind): empty it again.
      const retryable = error instanceof S3ServiceException && error.name === "BucketNotEmpty";
      if (!retryable || attempt >= 3) throw error;
    }
  }
}

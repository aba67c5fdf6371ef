// Helpers for the object-storage protection tests (src/objects/) against the shared radosgw.
import { createHash } from "node:crypto";
import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { openTarget, type BucketTarget } from "../../src/objects/client.js";
import { makeTestS3Client, s3TestConfig } from "./s3.js";

let shared: S3Client | undefined;
export function s3(): S3Client {
  shared ??= makeTestS3Client();
  return shared;
}

/** A target on the test server, the way a configured bucket would be opened. */
export function testTarget(bucket: string, name = bucket): BucketTarget {
  const c = s3TestConfig();
  return openTarget(
    name,
    bucket,
    {
      endpoint: c.endpoint,
      region: c.region,
      pathStyle: true,
      credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey },
    },
    { maxAttempts: 3 },
  );
}

export async function put(
  bucket: string,
  key: string,
  body: Buffer | string,
  metadata?: Record<string, string>,
): Promise<string | undefined> {
  const result = await s3().send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: body,
      ...(metadata ? { Metadata: metadata } : {}),
    }),
  );
  return result.VersionId;
}

export async function getBytes(bucket: string, key: string, versionId?: string): Promise<Buffer> {
  const result = await s3().send(
    new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }),
  );
  return Buffer.from(await result.Body!.transformToByteArray());
}

/** undefined when the key is absent (or its current version is a delete marker). */
export async function head(bucket: string, key: string) {
  try {
    return await s3().send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) {
      return undefined;
    }
    throw error;
  }
}

export const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

/** Runs `fn` over items with `limit` in flight (test data set-up). */
export async function parallel<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/** LastModified has millisecond precision on radosgw but whole seconds on AWS: leave a gap. */
export const pause = (ms = 1100) => new Promise((resolve) => setTimeout(resolve, ms));

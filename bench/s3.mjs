// The S3 server for the benchmark: LIFEBOAT_TEST_S3_* from the environment, else the radosgw of
// scripts/services.sh (.services/s3.env). A bucket of its own, emptied and removed afterwards.
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

export function s3Settings(root) {
  const vars = { ...process.env };
  const file = path.join(
    process.env.LIFEBOAT_SERVICES_DIR ?? path.join(root, ".services"),
    "s3.env",
  );
  if (!vars.LIFEBOAT_TEST_S3_ENDPOINT && existsSync(file)) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const match = /^(LIFEBOAT_TEST_S3_[A-Z_]+)=(.*)$/.exec(line.trim());
      if (match) vars[match[1]] = match[2];
    }
  }
  if (!vars.LIFEBOAT_TEST_S3_ENDPOINT) return undefined;
  return {
    endpoint: vars.LIFEBOAT_TEST_S3_ENDPOINT,
    region: vars.LIFEBOAT_TEST_S3_REGION || "default",
    accessKeyId: vars.LIFEBOAT_TEST_S3_ACCESS_KEY || "lifeboat-test",
    secretAccessKey: vars.LIFEBOAT_TEST_S3_SECRET_KEY || "lifeboat-test-secret",
  };
}

function client(s3) {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

export async function createBucket(s3, prefix) {
  const name = `${prefix}-${Date.now().toString(36)}-${Math.random().toString(16).slice(2, 8)}`;
  const c = client(s3);
  await c.send(new CreateBucketCommand({ Bucket: name }));
  c.destroy();
  return name;
}

export async function cleanupBucket(s3, bucket) {
  const c = client(s3);
  try {
    for (let token; ;) {
      const page = await c.send(
        new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }),
      );
      const objects = (page.Contents ?? []).map(({ Key }) => ({ Key }));
      if (objects.length > 0) {
        await c.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects } }));
      }
      if (!page.IsTruncated) break;
      token = page.NextContinuationToken;
    }
    const uploads = await c.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    for (const { Key, UploadId } of uploads.Uploads ?? []) {
      await c.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }));
    }
    await c.send(new DeleteBucketCommand({ Bucket: bucket }));
  } finally {
    c.destroy();
  }
}

// Proves that the S3 test server (radosgw from scripts/services.sh) supports what the other
// integration tests rely on.
import { createHash, randomBytes } from "node:crypto";
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createTestBucket,
  deleteTestBucket,
  makeTestS3Client,
  s3TestConfig,
} from "../helpers/s3.js";

const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");
const md5 = (data: Uint8Array): string => createHash("md5").update(data).digest("hex");

async function getBytes(s3: S3Client, bucket: string, key: string, extra: object = {}) {
  const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...extra }));
  const body = await response.Body!.transformToByteArray();
  return { response, body };
}

async function statusOf(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
    return 200;
  } catch (error) {
    if (error instanceof S3ServiceException) return error.$metadata.httpStatusCode;
    throw error;
  }
}

/** Run `task` over `items` with at most `limit` in flight. */
async function mapLimit<T>(items: T[], limit: number, task: (item: T) => Promise<unknown>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

describe("S3 test server (radosgw)", () => {
  let s3: S3Client;
  // Versioned writes and deletes cost radosgw about twice as much: the 1,200 small keys go to
  // an unversioned bucket.
  let bucket: string;
  let versioned: string;

  beforeAll(async () => {
    s3 = makeTestS3Client();
    [bucket, versioned] = await Promise.all([
      createTestBucket("services-test"),
      createTestBucket("services-test-versioned", { versioning: true }),
    ]);
  });

  afterAll(async () => {
    for (const name of [bucket, versioned]) {
      if (!name) continue;
      await deleteTestBucket(name);
      expect(await statusOf(s3.send(new HeadBucketCommand({ Bucket: name })))).toBe(404);
    }
    if (bucket) await deleteTestBucket(bucket); // already gone: tolerated
    s3?.destroy();
  });

  it("publishes the test server's coordinates to workers", () => {
    const config = s3TestConfig();
    expect(config.endpoint).toMatch(/^https?:\/\//);
    expect(config.accessKeyId).not.toBe("");
    expect(bucket).toMatch(/^services-test-[a-z0-9]+-[0-9a-f]{8}$/);
  });

  it("puts, gets, heads and reads ranges", async () => {
    const data = new TextEncoder().encode("hello, lifeboat! 0123456789");
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: "dir/hello.txt",
        Body: data,
        ContentType: "text/plain",
        Metadata: { purpose: "services-test" },
      }),
    );
    expect(put.ETag).toBe(`"${md5(data)}"`);

    const { body } = await getBytes(s3, bucket, "dir/hello.txt");
    expect(sha256(body)).toBe(sha256(data));

    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "dir/hello.txt" }));
    expect(head.ContentLength).toBe(data.length);
    expect(head.ContentType).toBe("text/plain");
    expect(head.Metadata).toEqual({ purpose: "services-test" });

    const ranged = await getBytes(s3, bucket, "dir/hello.txt", { Range: "bytes=7-14" });
    expect(new TextDecoder().decode(ranged.body)).toBe("lifeboat");
    expect(ranged.response.ContentRange).toBe(`bytes 7-14/${data.length}`);

    expect(await statusOf(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "missing" })))).toBe(
      404,
    );
  });

  it("paginates ListObjectsV2 over 1,200 keys", async () => {
    const keys = Array.from({ length: 1200 }, (_, i) => `many/${String(i).padStart(5, "0")}`);
    await mapLimit(keys, 32, (key) =>
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key })),
    );

    const listed: string[] = [];
    let pages = 0;
    let token: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: "many/",
          MaxKeys: 500,
          ContinuationToken: token,
        }),
      );
      pages++;
      listed.push(...(page.Contents ?? []).map((object) => object.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    expect(pages).toBe(3);
    expect(listed).toEqual(keys);

    const delimited = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Delimiter: "/", MaxKeys: 1000 }),
    );
    expect(delimited.CommonPrefixes?.map((p) => p.Prefix)).toEqual(
      expect.arrayContaining(["dir/", "many/"]),
    );
  });

  it("uploads 20 MiB in parts with lib-storage", async () => {
    const data = randomBytes(20 * 1024 * 1024);
    const upload = new Upload({
      client: s3,
      params: { Bucket: bucket, Key: "big/blob.bin", Body: data },
      partSize: 5 * 1024 * 1024,
      queueSize: 4,
    });
    await upload.done();

    // radosgw's CompleteMultipartUpload answer has an empty ETag; HeadObject has the real one.
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "big/blob.bin" }));
    expect(head.ContentLength).toBe(data.length);
    expect(head.ETag).toMatch(/-4"$/);
    const { body } = await getBytes(s3, bucket, "big/blob.bin");
    expect(sha256(body)).toBe(sha256(data));
  });

  it("keeps versions, delete markers, and copies a given version", async () => {
    const key = "versioned/file.txt";
    const v1 = await s3.send(new PutObjectCommand({ Bucket: versioned, Key: key, Body: "one" }));
    const v2 = await s3.send(new PutObjectCommand({ Bucket: versioned, Key: key, Body: "two" }));
    expect(v1.VersionId).toBeTruthy();
    expect(v2.VersionId).toBeTruthy();
    expect(v2.VersionId).not.toBe(v1.VersionId);

    const deleted = await s3.send(new DeleteObjectCommand({ Bucket: versioned, Key: key }));
    expect(deleted.DeleteMarker).toBe(true);
    expect(await statusOf(s3.send(new GetObjectCommand({ Bucket: versioned, Key: key })))).toBe(
      404,
    );

    const versions = await s3.send(
      new ListObjectVersionsCommand({ Bucket: versioned, Prefix: key }),
    );
    expect(versions.Versions?.map((v) => v.VersionId).sort()).toEqual(
      [v1.VersionId, v2.VersionId].sort(),
    );
    expect(versions.DeleteMarkers).toHaveLength(1);
    expect(versions.DeleteMarkers?.[0]?.IsLatest).toBe(true);

    const old = await getBytes(s3, versioned, key, { VersionId: v1.VersionId });
    expect(new TextDecoder().decode(old.body)).toBe("one");

    await s3.send(
      new CopyObjectCommand({
        Bucket: versioned,
        Key: "versioned/restored.txt",
        CopySource: `${versioned}/${encodeURIComponent(key)}?versionId=${v1.VersionId}`,
      }),
    );
    const restored = await getBytes(s3, versioned, "versioned/restored.txt");
    expect(new TextDecoder().decode(restored.body)).toBe("one");
  });

  it("stores objects in the GLACIER storage class", async () => {
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: "cold/archive.bin",
        Body: "frozen",
        StorageClass: "GLACIER",
      }),
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "cold/archive.bin" }));
    expect(head.StorageClass).toBe("GLACIER");
  });

  it("cleans up an object-lock bucket holding governance-retained versions", async () => {
    const locked = await createTestBucket("services-lock", { objectLock: true });
    const body = "retained";
    await s3.send(
      new PutObjectCommand({
        Bucket: locked,
        Key: "retained.txt",
        Body: body,
        ContentMD5: createHash("md5").update(body).digest("base64"),
        ObjectLockMode: "GOVERNANCE",
        ObjectLockRetainUntilDate: new Date(Date.now() + 24 * 3600 * 1000),
      }),
    );
    // Retention is enforced without the bypass header...
    const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: locked }));
    const versionId = versions.Versions?.[0]?.VersionId;
    expect(
      await statusOf(
        s3.send(
          new DeleteObjectCommand({ Bucket: locked, Key: "retained.txt", VersionId: versionId }),
        ),
      ),
    ).toBe(403);
    // ...and deleteTestBucket bypasses it.
    await deleteTestBucket(locked);
    expect(await statusOf(s3.send(new HeadBucketCommand({ Bucket: locked })))).toBe(404);
  });
});

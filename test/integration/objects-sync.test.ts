import { randomBytes } from "node:crypto";
import { DeleteObjectCommand, DeleteObjectsCommand } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, it } from "vitest";
import { META_SHA256, META_SOURCE_ETAG } from "../../src/objects/copy.js";
import { syncBuckets } from "../../src/objects/sync.js";
import { getBytes, head, parallel, put, s3, sha256, testTarget } from "../helpers/objects.js";
import { createTestBucket, deleteTestBucket } from "../helpers/s3.js";

const buckets: string[] = [];
async function bucket(prefix: string, versioning = false): Promise<string> {
  const name = await createTestBucket(prefix, { versioning });
  buckets.push(name);
  return name;
}
afterAll(async () => {
  for (const name of buckets) await deleteTestBucket(name);
});

describe("bucket sync to a secondary", () => {
  it("copies 2,000 objects, then only what changed; never propagates deletes unless asked", async () => {
    const [primary, secondary] = [await bucket("lb-sync-src"), await bucket("lb-sync-dst", true)];
    const keys = Array.from({ length: 2000 }, (_, i) => `onboarding/s${i % 100}/doc-${i}.pdf`);
    const content = new Map(
      keys.map((k) => [k, randomBytes(512 + Math.floor(Math.random() * 3584))]),
    );
    await parallel(keys, 32, (k) => put(primary, k, content.get(k)!));
    const source = testTarget(primary);
    const destination = testTarget(secondary);

    const first = await syncBuckets(source, destination, { concurrency: 16 });
    const bytes = [...content.values()].reduce((sum, b) => sum + b.length, 0);
    expect(first).toMatchObject({ mode: "server", copied: 2000, copiedBytes: bytes, failed: [] });
    expect(first.plan.skipped).toBe(0);
    console.info(
      `sync of 2,000 objects (${(bytes / 1048576).toFixed(1)} MiB): ${first.durationMs} ms, ${first.objectsPerSecond} objects/s, ${first.mibPerSecond} MiB/s`,
    );
    expect(await getBytes(secondary, keys[7]!)).toEqual(content.get(keys[7]!));
    // Server-side copies carry no sha256 of their own: verify compares with the source's bytes.
    const verified = await syncBuckets(source, destination, {
      prefix: "onboarding/s7/",
      verify: true,
    });
    expect(verified).toMatchObject({ copied: 0, verify: { checked: 20, ok: 20, problems: [] } });

    // 1% changes: exactly those are copied.
    const changed = keys.filter((_, i) => i % 100 === 3);
    await parallel(changed, 16, async (k) => {
      content.set(k, randomBytes(1000));
      await put(primary, k, content.get(k)!);
    });
    const second = await syncBuckets(source, destination, { concurrency: 16 });
    expect(second).toMatchObject({ copied: 20, failed: [], plan: { skipped: 1980 } });
    expect(second.plan.copy.every((c) => c.reason === "changed")).toBe(true);
    expect(await getBytes(secondary, changed[5]!)).toEqual(content.get(changed[5]!));

    // An interrupted run resumes: objects it never got to are the only ones copied.
    const lost = keys.slice(100, 150);
    await s3().send(
      new DeleteObjectsCommand({
        Bucket: secondary,
        Delete: { Objects: lost.map((Key) => ({ Key })) },
      }),
    );
    expect(await syncBuckets(source, destination, { dryRun: true })).toMatchObject({
      copied: 0,
      plan: { copy: expect.any(Array), skipped: 1950 },
    });
    expect((await syncBuckets(source, destination)).copied).toBe(50);

    // A deleted source object stays in the secondary...
    await s3().send(new DeleteObjectCommand({ Bucket: primary, Key: keys[0] }));
    const third = await syncBuckets(source, destination);
    expect(third).toMatchObject({ copied: 0, deleted: 0, plan: { kept: 1 } });
    expect(await head(secondary, keys[0]!)).toBeDefined();
    // ...unless deletions are propagated explicitly.
    const fourth = await syncBuckets(source, destination, { propagateDeletes: true });
    expect(fourth).toMatchObject({ copied: 0, deleted: 1 });
    expect(await head(secondary, keys[0]!)).toBeUndefined();
  });

  it("streams across services with a recorded sha256, recognises multipart copies and verifies", async () => {
    const [primary, secondary] = [await bucket("lb-stream-src"), await bucket("lb-stream-dst")];
    const big = randomBytes(12 * 1024 * 1024 + 123);
    await put(primary, "pdf/large.pdf", big, { owner: "kyc" });
    await put(primary, "pdf/small.pdf", "small");
    await put(primary, "pdf/empty", "");
    const source = testTarget(primary);
    const destination = testTarget(secondary);
    const options = { mode: "stream" as const, partSize: 5 * 1024 * 1024, verify: true };

    const first = await syncBuckets(source, destination, options);
    expect(first).toMatchObject({ mode: "stream", copied: 3, failed: [] });
    expect(first.verify).toMatchObject({ checked: 3, ok: 3 });
    const copy = await head(secondary, "pdf/large.pdf");
    expect(copy?.Metadata).toMatchObject({ owner: "kyc", [META_SHA256]: sha256(big) });
    expect(copy?.ETag).toMatch(/-3"$/); // multipart: not the source's ETag...
    expect(copy?.Metadata?.[META_SOURCE_ETAG]).toBe(
      (await head(primary, "pdf/large.pdf"))?.ETag?.replace(/"/g, ""),
    );
    // ...yet the next run recognises it and copies nothing.
    expect(await syncBuckets(source, destination, options)).toMatchObject({
      copied: 0,
      plan: { skipped: 3 },
    });

    // Content that does not match its recorded sha256 is never completed as a copy.
    const tampered = randomBytes(9 * 1024 * 1024 + 5);
    await put(primary, "pdf/large.pdf", tampered, { [META_SHA256]: sha256(big) });
    const bad = await syncBuckets(source, destination, options);
    expect(bad.failed).toEqual([
      expect.objectContaining({ key: "pdf/large.pdf", code: "OBJECT_CORRUPT" }),
    ]);
    expect(sha256(await getBytes(secondary, "pdf/large.pdf"))).toBe(sha256(big));
  });

  it("refuses to propagate deletes from an empty source", async () => {
    const [primary, secondary] = [await bucket("lb-empty-src"), await bucket("lb-empty-dst")];
    await put(secondary, "keep/me", "precious");
    await expect(
      syncBuckets(testTarget(primary), testTarget(secondary), { propagateDeletes: true }),
    ).rejects.toMatchObject({ code: "ABORTED" });
    expect(await head(secondary, "keep/me")).toBeDefined();
    await expect(
      syncBuckets(testTarget(`${primary}-nope`), testTarget(secondary)),
    ).rejects.toMatchObject({ code: "STORAGE_NO_BUCKET" });
  });
});

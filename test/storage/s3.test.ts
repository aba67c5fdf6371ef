import {
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
} from "@aws-sdk/client-s3";
import { createServer, connect, type Server, type Socket } from "node:net";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isLifeboatError } from "../../src/errors.js";
import { withRetry } from "../../src/storage/retry.js";
import { S3Storage, type S3StorageOptions } from "../../src/storage/s3.js";
import {
  createTestBucket,
  deleteTestBucket,
  makeTestS3Client,
  s3TestConfig,
} from "../helpers/s3.js";
import { collect, describeStorageContract, digest, expectCode, generated } from "./contract.js";

const MiB = 1024 * 1024;

function s3Storage(bucket: string, extra: Partial<S3StorageOptions> = {}): S3Storage {
  const config = s3TestConfig();
  return new S3Storage({
    endpoint: config.endpoint,
    region: config.region,
    bucket,
    prefix: "lifeboat/repo",
    credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
    ...extra,
  });
}

describeStorageContract("s3 (radosgw)", async () => {
  const bucket = await createTestBucket("lifeboat-contract");
  return { storage: s3Storage(bucket), cleanup: () => deleteTestBucket(bucket) };
});

describe("S3Storage specifics", () => {
  let bucket: string;
  let storage: S3Storage;
  const raw = makeTestS3Client();
  beforeAll(async () => {
    bucket = await createTestBucket("lifeboat-s3");
    storage = s3Storage(bucket, { partSize: 5 * MiB, copyPartSize: 5 * MiB });
  });
  afterAll(async () => {
    await storage?.close();
    if (bucket) await deleteTestBucket(bucket);
    raw.destroy();
  });

  it("stores keys under the prefix and describes its location without secrets", async () => {
    await storage.put("a/b", Readable.from(["x"]));
    const listed = await raw.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual(["lifeboat/repo/a/b"]);
    expect(storage.location).toBe(`s3://${bucket}/lifeboat/repo/ (${s3TestConfig().endpoint})`);
    expect(storage.location).not.toContain(s3TestConfig().accessKeyId);
  });

  it("reports an unreachable endpoint quickly as STORAGE_UNREACHABLE", async () => {
    const dead = s3Storage(bucket, { endpoint: "http://127.0.0.1:1", maxAttempts: 1 });
    const retrying = withRetry(dead, { attempts: 2, baseDelayMs: 10 });
    const started = Date.now();
    await expectCode(retrying.stat("x"), "STORAGE_UNREACHABLE");
    await expectCode(
      retrying.put("x", { open: () => Readable.from(["x"]) }),
      "STORAGE_UNREACHABLE",
    );
    await expectCode(collect(retrying.list("")), "STORAGE_UNREACHABLE");
    expect(Date.now() - started).toBeLessThan(5000);
    await dead.close();
  });

  it("maps wrong credentials to STORAGE_AUTH without printing them", async () => {
    const secretAccessKey = "definitely-not-the-secret";
    const config = s3TestConfig();
    for (const credentials of [
      { accessKeyId: config.accessKeyId, secretAccessKey },
      { accessKeyId: "NOSUCHKEY", secretAccessKey },
    ]) {
      const wrong = s3Storage(bucket, { credentials, maxAttempts: 1 });
      const error = await collect(wrong.list("")).catch((e: unknown) => e);
      expect(isLifeboatError(error, "STORAGE_AUTH")).toBe(true);
      expect(String((error as Error).message)).not.toContain(secretAccessKey);
      await expectCode(wrong.put("k", Readable.from(["x"])), "STORAGE_AUTH");
      await wrong.close();
    }
  });

  it("maps a missing bucket to STORAGE_NO_BUCKET", async () => {
    const missing = s3Storage(`${bucket}-missing`);
    await expectCode(collect(missing.list("")), "STORAGE_NO_BUCKET");
    await expectCode(missing.put("k", Readable.from(["x"])), "STORAGE_NO_BUCKET");
    await expectCode(missing.get("k"), "STORAGE_NO_BUCKET");
    await missing.close();
  });

  it("leaves no object and no multipart upload when the source fails half-way", async () => {
    const failing = Readable.from(
      (async function* () {
        yield* generated("half", 17 * MiB);
        throw new Error("pg_dump died");
      })(),
    );
    await expect(storage.put("broken/object", failing)).rejects.toThrow("pg_dump died");
    expect(await storage.stat("broken/object")).toBeUndefined();
    const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    expect(uploads.Uploads ?? []).toEqual([]);
  });

  it("copies objects server-side, in parts above copyPartSize", async () => {
    await storage.put("copy/small", generated("small", 1000));
    await storage.put("copy/large", generated("large", 12 * MiB + 5));
    await storage.copyObject("copy/small", "copy/small-2");
    await storage.copyObject("copy/large", "copy/large-2");
    expect(await digest(await storage.get("copy/small-2"))).toEqual(
      await digest(generated("small", 1000)),
    );
    expect(await digest(await storage.get("copy/large-2"))).toEqual(
      await digest(generated("large", 12 * MiB + 5)),
    );
    await expectCode(storage.copyObject("copy/none", "copy/x"), "STORAGE_NOT_FOUND");
  });

  it("applies the storage class", async () => {
    await storage.put("cold/object", Readable.from(["x"]), { storageClass: "GLACIER" });
    const head = await raw.send(
      new HeadObjectCommand({ Bucket: bucket, Key: "lifeboat/repo/cold/object" }),
    );
    expect(head.StorageClass).toBe("GLACIER");
  });

  it("resumes a download whose connection is cut mid-way", async () => {
    await storage.put("cut/object", generated("cut", 6 * MiB));
    const proxy = await cuttingProxy(new URL(s3TestConfig().endpoint), 2 * MiB);
    try {
      const viaProxy = s3Storage(bucket, { endpoint: proxy.url, maxAttempts: 1 });
      const errors: unknown[] = [];
      const retrying = withRetry(viaProxy, {
        baseDelayMs: 1,
        onRetry: (event) => errors.push(event.error),
      });
      expect(await digest(await retrying.get("cut/object"))).toEqual(
        await digest(generated("cut", 6 * MiB)),
      );
      expect(errors.map((e) => isLifeboatError(e) && e.code)).toEqual(["STORAGE_UNREACHABLE"]);
      await viaProxy.close();
    } finally {
      proxy.server.close();
    }
  });

  it("keeps memory bounded during a 200 MiB upload; measures throughput", async () => {
    const big = s3Storage(bucket); // default 8 MiB parts x 4 in flight
    const size = 200 * MiB;
    const start = process.memoryUsage().rss;
    let peak = start;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    let t = performance.now();
    try {
      await big.put("big/object", generated("big", size));
    } finally {
      clearInterval(sampler);
    }
    const putSeconds = (performance.now() - t) / 1000;
    t = performance.now();
    const got = await digest(await big.get("big/object"));
    const getSeconds = (performance.now() - t) / 1000;
    expect(got).toEqual(await digest(generated("big", size)));
    console.log(
      `S3 200 MiB: put ${(200 / putSeconds).toFixed(0)} MiB/s, get ${(200 / getSeconds).toFixed(0)} MiB/s, ` +
        `peak RSS +${((peak - start) / MiB).toFixed(0)} MiB during put`,
    );
    expect(peak - start).toBeLessThan(150 * MiB);
    await big.delete("big/object");
    await big.close();
  });
});

/** A TCP proxy that cuts the first connection after `cutAfter` bytes from the server. */
async function cuttingProxy(
  target: URL,
  cutAfter: number,
): Promise<{ server: Server; url: string }> {
  let cut = false;
  const server = createServer((client: Socket) => {
    const upstream = connect(Number(target.port), target.hostname);
    let sent = 0;
    const cutThis = !cut;
    upstream.on("data", (chunk: Buffer) => {
      sent += chunk.length;
      if (cutThis && !cut && sent > cutAfter) {
        cut = true;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    client.on("data", (chunk: Buffer) => upstream.write(chunk));
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return { server, url: `http://127.0.0.1:${port}` };
}

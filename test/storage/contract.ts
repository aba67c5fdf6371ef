import { createCipheriv, createHash } from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isLifeboatError, type ErrorCode } from "../../src/errors.js";
import { FaultyStorage } from "../../src/storage/faulty.js";
import { compareKeys } from "../../src/storage/keys.js";
import { withRetry } from "../../src/storage/retry.js";
import type { ReopenableBody, Storage } from "../../src/storage/types.js";

export interface StorageFixture {
  storage: Storage;
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;

/** Deterministic pseudo-random bytes (AES-CTR keystream, ~1 GB/s), streamed in 256 KiB chunks. */
export function generated(seed: string, size: number, chunkDelayMs = 0): Readable {
  const key = createHash("sha256").update(seed).digest();
  const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  let left = size;
  return new Readable({
    highWaterMark: 256 * 1024,
    read() {
      if (left === 0) return void this.push(null);
      const n = Math.min(left, 256 * 1024);
      left -= n;
      const chunk = cipher.update(Buffer.alloc(n));
      if (chunkDelayMs > 0) setTimeout(() => this.push(chunk), chunkDelayMs);
      else this.push(chunk);
    },
  });
}

export function reopenable(seed: string, size: number): ReopenableBody {
  return { open: () => generated(seed, size), size };
}

export async function digest(
  stream: AsyncIterable<unknown>,
): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest("hex"), size };
}

export async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

export async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isLifeboatError(error) ? error.code : error).toBe(code);
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

const expected = (seed: string, size: number) => digest(generated(seed, size));

/** The behaviour every Storage driver must show; each driver's test file runs it once. */
export function describeStorageContract(name: string, makeStorage: () => Promise<StorageFixture>) {
  describe(`storage contract: ${name}`, () => {
    let fixture: StorageFixture;
    let storage: Storage;
    beforeAll(async () => {
      fixture = await makeStorage();
      storage = fixture.storage;
    });
    afterAll(async () => {
      await storage?.close?.();
      await fixture?.cleanup();
    });

    describe("put and get round trip", () => {
      it.each([
        ["empty", 0],
        ["small", 13],
        ["1 MiB", MiB],
      ])("%s object", async (label, size) => {
        const key = `roundtrip/${label.replace(" ", "-")}`;
        const result = await storage.put(key, reopenable(label, size));
        expect(result).toEqual({ key, size });
        expect(await digest(await storage.get(key))).toEqual(await expected(label, size));
        const info = await storage.stat(key);
        expect(info?.size).toBe(size);
        expect(info?.modified).toBeInstanceOf(Date);
      });

      it("a >64 MiB object streamed in and out without buffering it", async () => {
        const size = 65 * MiB + 7;
        const before = process.memoryUsage().rss;
        const result = await storage.put("roundtrip/large", generated("large", size));
        expect(result.size).toBe(size);
        expect(await digest(await storage.get("roundtrip/large"))).toEqual(
          await expected("large", size),
        );
        // Generous: drivers may buffer a few parts, never the whole object.
        expect(process.memoryUsage().rss - before).toBeLessThan(size * 2);
      });

      it("accepts a one-shot stream and a reopenable body", async () => {
        const oneShot = await storage.put("roundtrip/oneshot", Readable.from([Buffer.from("abc")]));
        expect(oneShot.size).toBe(3);
        let opened = 0;
        const body: ReopenableBody = {
          open: () => (opened++, Readable.from([Buffer.from("xyz!")])),
        };
        expect((await storage.put("roundtrip/reopenable", body)).size).toBe(4);
        expect(opened).toBe(1);
        expect((await readAll(await storage.get("roundtrip/oneshot"))).toString()).toBe("abc");
        expect((await readAll(await storage.get("roundtrip/reopenable"))).toString()).toBe("xyz!");
      });
    });

    it("overwrites atomically: a concurrent reader sees the old or the new object whole", async () => {
      const key = "atomic/object";
      const size = 4 * MiB;
      await storage.put(key, reopenable("old", size));
      const versions = [(await expected("old", size)).sha256, (await expected("new", size)).sha256];
      let writing = true;
      const writer = storage.put(key, generated("new", size, 5)).finally(() => (writing = false));
      let reads = 0;
      while (writing || reads < 2) {
        const seen = await digest(await storage.get(key));
        expect(versions).toContain(seen.sha256);
        reads++;
      }
      await writer;
      expect((await digest(await storage.get(key))).sha256).toBe(versions[1]);
    });

    describe("ranged reads (end inclusive)", () => {
      let data: Buffer;
      beforeAll(async () => {
        data = await readAll(generated("range", 1000));
        await storage.put("range/object", reopenable("range", 1000));
        await storage.put("range/empty", Readable.from([]));
      });
      const read = async (start: number, end?: number, key = "range/object") =>
        readAll(await storage.get(key, { range: end === undefined ? { start } : { start, end } }));

      it("start only, start-end and the last byte", async () => {
        expect(await read(100)).toEqual(data.subarray(100));
        expect(await read(100, 199)).toEqual(data.subarray(100, 200));
        expect(await read(999, 999)).toEqual(data.subarray(999));
        expect(await read(0, 0)).toEqual(data.subarray(0, 1));
      });

      it("an end past the last byte is clamped; a start at or past the end reads nothing", async () => {
        expect(await read(990, 5000)).toEqual(data.subarray(990));
        expect((await read(1000)).length).toBe(0);
        expect((await read(5000, 6000)).length).toBe(0);
        expect((await read(0, undefined, "range/empty")).length).toBe(0);
      });

      it("rejects malformed ranges", async () => {
        await expectCode(storage.get("range/object", { range: { start: 10, end: 5 } }), "USAGE");
        await expectCode(storage.get("range/object", { range: { start: -1 } }), "USAGE");
      });
    });

    it("missing keys: stat gives undefined, get throws STORAGE_NOT_FOUND", async () => {
      expect(await storage.stat("missing/object")).toBeUndefined();
      await expectCode(storage.get("missing/object"), "STORAGE_NOT_FOUND");
      await expectCode(storage.get("missing/object", { range: { start: 5 } }), "STORAGE_NOT_FOUND");
    });

    it("lists nested keys in byte order and filters by prefix", async () => {
      // `-` < `.` < `/` < `0` in ASCII: a folder-walking driver must interleave correctly.
      const keys = ["ls/a-b", "ls/a.txt", "ls/a/b", "ls/a/c/d", "ls/a0", "ls/ab", "ls/b", "ls/Z"];
      keys.push("ls/\u00e9t\u00e9", "ls/\u{1F600}", "ls/\uFF21"); // UTF-8 order != UTF-16 order
      await Promise.all(keys.map((k, i) => storage.put(k, reopenable(k, i))));
      await storage.put("lsx/other", reopenable("x", 1));
      const list = async (prefix: string) =>
        (await collect(storage.list(prefix))).map((o) => o.key);
      expect(await list("ls/")).toEqual([...keys].sort(compareKeys));
      expect(await list("ls/a")).toEqual([
        "ls/a-b",
        "ls/a.txt",
        "ls/a/b",
        "ls/a/c/d",
        "ls/a0",
        "ls/ab",
      ]);
      expect(await list("ls/a/")).toEqual(["ls/a/b", "ls/a/c/d"]);
      expect(await list("ls/a/c")).toEqual(["ls/a/c/d"]);
      expect(await list("ls/nothing")).toEqual([]);
      expect(await list("nothing/at/all/")).toEqual([]);
      const all = await list("");
      expect(all).toEqual([...all].sort(compareKeys));
      expect(all).toContain("lsx/other");
      const info = (await collect(storage.list("ls/a/c/")))[0]!;
      expect(info.size).toBe(keys.indexOf("ls/a/c/d"));
      expect(info.modified).toBeInstanceOf(Date);
    });

    it("pages through 1,100 keys", async () => {
      const keys = Array.from({ length: 1100 }, (_, i) => `page/${String(i).padStart(5, "0")}`);
      await mapLimit(keys, 32, (k) =>
        storage.put(k, { open: () => Readable.from([k]), size: k.length }),
      );
      const listed = await collect(storage.list("page/"));
      expect(listed.map((o) => o.key)).toEqual(keys);
      expect(listed.every((o) => o.size === 10)).toBe(true);
      expect((await collect(storage.list("page/001"))).length).toBe(100);
    });

    it("delete is idempotent", async () => {
      await storage.put("del/a/b", reopenable("d", 10));
      await storage.delete("del/a/b");
      expect(await storage.stat("del/a/b")).toBeUndefined();
      await storage.delete("del/a/b");
      await storage.delete("del/never/existed");
      expect(await collect(storage.list("del/"))).toEqual([]);
    });

    it("rejects invalid keys with STORAGE_BAD_KEY", async () => {
      const bad = [
        "",
        "/abs",
        "a/../b",
        "..",
        "./a",
        "a/./b",
        "a\\b",
        "a\0b",
        "a//b",
        "a/",
        "d/.tmp-x",
      ];
      for (const key of bad) {
        await expectCode(storage.put(key, reopenable("k", 1)), "STORAGE_BAD_KEY");
        await expectCode(storage.get(key), "STORAGE_BAD_KEY");
        await expectCode(storage.stat(key), "STORAGE_BAD_KEY");
        await expectCode(storage.delete(key), "STORAGE_BAD_KEY");
      }
      for (const prefix of ["/a", "../", "a//", "a\\"]) {
        await expectCode(collect(storage.list(prefix)), "STORAGE_BAD_KEY");
      }
    });

    describe("retry over injected faults", () => {
      let faulty: FaultyStorage;
      let retrying: Storage;
      const delays: number[] = [];
      beforeAll(async () => {
        faulty = new FaultyStorage(storage);
        retrying = withRetry(faulty, {
          attempts: 4,
          sleep: async (ms) => void delays.push(ms),
        });
        await storage.put("retry/object", reopenable("retry", MiB));
        await Promise.all(
          Array.from({ length: 10 }, (_, i) => storage.put(`retry/list/${i}`, reopenable("l", i))),
        );
      });
      const fresh = () => faulty.reset();

      it("retries transient failures of put, get, stat, list and delete", async () => {
        fresh().failNext(["put", "get", "stat", "delete"], 2, "STORAGE_UNREACHABLE");
        expect((await retrying.put("retry/put", reopenable("p", 1000))).size).toBe(1000);
        expect(await digest(await retrying.get("retry/put"))).toEqual(await expected("p", 1000));
        expect((await retrying.stat("retry/put"))?.size).toBe(1000);
        await retrying.delete("retry/put");
        expect(faulty.calls).toMatchObject({ put: 3, get: 3, stat: 3, delete: 3 });
        expect(delays.length).toBeGreaterThanOrEqual(8);
        expect(Math.max(...delays)).toBeLessThanOrEqual(800);
      });

      it("restarts a failed listing without repeating keys", async () => {
        fresh().failNext("list", 1, "STORAGE_TRANSIENT", { afterItems: 4 });
        const keys = (await collect(retrying.list("retry/list/"))).map((o) => o.key);
        expect(keys).toEqual(Array.from({ length: 10 }, (_, i) => `retry/list/${i}`));
        expect(faulty.calls.list).toBe(2);
        fresh().failNext("list", 2);
        expect((await collect(retrying.list("retry/list/"))).length).toBe(10);
      });

      it("fails at once on permanent errors and after the last attempt on transient ones", async () => {
        fresh().failNext("put", 1, "STORAGE_DENIED").failNext("get", 1, "STORAGE_AUTH");
        faulty.failNext("list", 1, "STORAGE_NO_BUCKET");
        await expectCode(retrying.put("retry/denied", reopenable("x", 1)), "STORAGE_DENIED");
        await expectCode(retrying.get("retry/object"), "STORAGE_AUTH");
        await expectCode(collect(retrying.list("retry/")), "STORAGE_NO_BUCKET");
        expect(faulty.calls).toMatchObject({ put: 1, get: 1, list: 1 });
        await expectCode(retrying.get("retry/none"), "STORAGE_NOT_FOUND");
        expect(faulty.calls.get).toBe(2);
        fresh().failNext("stat", 10);
        await expectCode(retrying.stat("retry/object"), "STORAGE_TRANSIENT");
        expect(faulty.calls.stat).toBe(4);
      });

      it("does not retry a put from a one-shot stream", async () => {
        fresh().failNext("put", 1);
        await expectCode(retrying.put("retry/oneshot", generated("o", 100)), "STORAGE_TRANSIENT");
        expect(faulty.calls.put).toBe(1);
      });

      it("resumes a get stream cut mid-way from the byte already delivered", async (ctx) => {
        if (!storage.features.rangedGet) return ctx.skip();
        const whole = await readAll(generated("retry", MiB));
        fresh().cutNextGet(300_000, 2);
        // Buffer.equals: vitest's deep equality takes seconds on a MiB.
        expect((await readAll(await retrying.get("retry/object"))).equals(whole)).toBe(true);
        expect(faulty.calls.get).toBe(3);
        fresh().cutNextGet(100_000, 1);
        const range = { start: 1000, end: 500_000 };
        const part = await readAll(await retrying.get("retry/object", { range }));
        expect(part.equals(whole.subarray(1000, 500_001))).toBe(true);
        fresh().cutNextGet(1000, 1, "STORAGE_IO");
        await expectCode(readAll(await retrying.get("retry/object")), "STORAGE_IO");
        fresh().cutNextGet(1000, 10);
        await expectCode(readAll(await retrying.get("retry/object")), "STORAGE_TRANSIENT");
      });
    });
  });
}

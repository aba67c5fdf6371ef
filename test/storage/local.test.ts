import { mkdtemp, readdir, rm, stat, writeFile, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { LocalStorage } from "../../src/storage/local.js";
import { Semaphore, withConcurrencyLimit } from "../../src/storage/limit.js";
import { openStorage } from "../../src/storage/index.js";
import type { Storage } from "../../src/storage/types.js";
import { collect, describeStorageContract, expectCode, generated, readAll } from "./contract.js";

const tempRoot = () => mkdtemp(path.join(tmpdir(), "lifeboat-local-"));

describeStorageContract("local", async () => {
  const root = await tempRoot();
  return {
    storage: new LocalStorage(path.join(root, "repo")),
    cleanup: () => rm(root, { recursive: true }),
  };
});

describe("LocalStorage specifics", () => {
  it("leaves no temporary file when the body fails, and keeps the old object", async () => {
    await withRoot(async (storage, root) => {
      await storage.put("a/b", Readable.from([Buffer.from("old")]));
      const failing = Readable.from(
        (async function* () {
          yield Buffer.alloc(100_000);
          throw new Error("source broke");
        })(),
      );
      await expect(storage.put("a/b", failing)).rejects.toThrow("source broke");
      expect(await readdir(path.join(root, "a"))).toEqual(["b"]);
      expect((await readAll(await storage.get("a/b"))).toString()).toBe("old");
    });
  });

  it("hides temporary files from listings and removes empty folders on delete", async () => {
    await withRoot(async (storage, root) => {
      await storage.put("x/y/z/obj", Readable.from(["1"]));
      await storage.put("x/keep", Readable.from(["2"]));
      await writeFile(path.join(root, "x", ".tmp-123"), "partial");
      expect((await collect(storage.list("x/"))).map((o) => o.key)).toEqual([
        "x/keep",
        "x/y/z/obj",
      ]);
      await storage.delete("x/y/z/obj");
      expect(await readdir(path.join(root, "x"))).toEqual([".tmp-123", "keep"].sort());
      await storage.delete("x/y"); // a folder, not an object: nothing to delete
      expect((await stat(root)).isDirectory()).toBe(true);
    });
  });

  it("maps permission errors to STORAGE_DENIED with the path", async (ctx) => {
    if (process.getuid?.() === 0) return ctx.skip(); // root ignores file modes
    await withRoot(async (storage, root) => {
      await storage.put("ro/obj", Readable.from(["1"]));
      await chmod(path.join(root, "ro"), 0o500);
      await expect(storage.put("ro/new", Readable.from(["1"]))).rejects.toMatchObject({
        code: "STORAGE_DENIED",
        message: expect.stringContaining(path.join(root, "ro")),
      });
      await chmod(path.join(root, "ro"), 0o700);
    });
  });

  it("reports a key shadowed by a folder as missing", async () => {
    await withRoot(async (storage) => {
      await storage.put("f/g", Readable.from(["1"]));
      expect(await storage.stat("f")).toBeUndefined();
      await expectCode(storage.get("f"), "STORAGE_NOT_FOUND");
    });
  });

  it("survives concurrent puts and deletes in the same folder", async () => {
    await withRoot(async (storage) => {
      const ops = Array.from({ length: 200 }, (_, i) =>
        i % 2
          ? storage.put(`race/d/${i}`, Readable.from(["x"]))
          : storage.delete(`race/d/${i - 1}`),
      );
      await Promise.all(ops);
      expect((await collect(storage.list("race/"))).length).toBeGreaterThan(0);
    });
  });
});

describe("withConcurrencyLimit", () => {
  it("bounds operations in flight and holds a get slot until its stream closes", async () => {
    await withRoot(async (storage) => {
      let inFlight = 0;
      let peak = 0;
      const slow: Storage = Object.assign(Object.create(storage) as LocalStorage, {
        stat: async (key: string) => {
          peak = Math.max(peak, ++inFlight);
          await new Promise((r) => setTimeout(r, 5));
          inFlight--;
          return storage.stat(key);
        },
      });
      const limited = withConcurrencyLimit(slow, 3);
      await Promise.all(Array.from({ length: 20 }, () => limited.stat("k")));
      expect(peak).toBe(3);

      await storage.put("k", generated("k", 1000));
      const one = withConcurrencyLimit(storage, 1);
      const stream = await one.get("k");
      let second = false;
      const pending = one.stat("k").then(() => (second = true));
      await new Promise((r) => setTimeout(r, 20));
      expect(second).toBe(false);
      await readAll(stream);
      await pending;
      // A listing consumer may use the storage between entries without deadlocking.
      for await (const info of one.list("")) await one.stat(info.key);
    });
  });

  it("semaphore releases are idempotent", async () => {
    const semaphore = new Semaphore(1);
    const release = await semaphore.acquire();
    release();
    release();
    expect(semaphore.inUse).toBe(0);
  });
});

describe("openStorage", () => {
  it("wraps a local driver with retry and a concurrency limit", async () => {
    await withRoot(async (_storage, root) => {
      const storage = openStorage({ type: "local", path: root }, { concurrency: 2 });
      expect(storage.backend).toBeInstanceOf(LocalStorage);
      expect(storage.location).toBe(root);
      await storage.put("a", Readable.from(["hi"]));
      expect((await readAll(await storage.get("a"))).toString()).toBe("hi");
    });
  });
});

async function withRoot(fn: (storage: LocalStorage, root: string) => Promise<void>) {
  const root = await tempRoot();
  try {
    await fn(new LocalStorage(root), root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

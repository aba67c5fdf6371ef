import { createHash, randomBytes } from "node:crypto";
import { readFile, writeFile, readdir } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import { LifeboatError } from "../../src/errors.js";
import { canonicalJson, checksumMatches, sealDocument } from "../../src/repository/canonical.js";
import {
  dataKey,
  manifestKey,
  newBackupId,
  BACKUP_ID_PATTERN,
} from "../../src/repository/format.js";
import { planPruneIncomplete, applyPruneIncomplete } from "../../src/repository/incomplete.js";
import { acquireLock } from "../../src/repository/lock.js";
import { Repository } from "../../src/repository/repository.js";
import { verifyBackup, discard } from "../../src/repository/verify.js";
import { BackupSession, runBackup } from "../../src/repository/writer.js";
import { FaultyStorage, LocalStorage } from "../../src/storage/index.js";
import { generateIdentity, parseIdentity } from "../../src/stream/age/index.js";
import { listBackups } from "../../src/engine/catalog.js";
import { tempDir } from "../helpers/tmp.js";

const pair = generateIdentity();
const identities = [parseIdentity(pair.identity)];
const encoding = { compression: "zstd" as const, recipients: [pair.recipient] };

async function newRepo(name = "local") {
  const dir = await tempDir();
  const storage = new LocalStorage(dir);
  const repository = await Repository.init(name, storage, {
    format: "age-v1",
    recipients: [pair.recipient],
  });
  return { dir, storage, repository };
}

async function plaintextOf(repository: Repository, id: string, name: string): Promise<Buffer> {
  const manifest = await repository.readManifest(id);
  const record = manifest.objects.find((o) => o.name === name)!;
  const chunks: Buffer[] = [];
  for await (const chunk of await repository.openObject(manifest, record, { identities }))
    chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe("canonical documents", () => {
  it("checksums do not depend on key order or indentation, and detect edits", () => {
    expect(canonicalJson({ b: 1, a: [true, { d: null, c: "x" }] })).toBe(
      '{"a":[true,{"c":"x","d":null}],"b":1}',
    );
    const sealed = JSON.parse(sealDocument({ z: 1, a: "b" })) as Record<string, unknown>;
    expect(checksumMatches(sealed)).toBe(true);
    expect(checksumMatches({ ...sealed, z: 2 })).toBe(false);
    expect(checksumMatches({ a: "b", z: 1 })).toBe(false);
  });

  it("backup ids sort by time and say what they are", () => {
    const id = newBackupId("db", "App Main", new Date("2026-11-26T02:00:00Z"));
    expect(id).toMatch(/^20261126T020000Z-db-app-main-[0-9a-f]{6}$/);
    expect(BACKUP_ID_PATTERN.test(id)).toBe(true);
  });
});

describe("repository", () => {
  it("init refuses an existing repository and open refuses a missing one", async () => {
    const { storage } = await newRepo();
    await expect(Repository.init("again", storage, { format: "none" })).rejects.toMatchObject({
      code: "REPO_EXISTS",
    });
    const empty = new LocalStorage(await tempDir());
    await expect(Repository.open("empty", empty)).rejects.toMatchObject({
      code: "REPO_NOT_INITIALISED",
    });
  });

  it("reads the config copy when the primary is damaged", async () => {
    const { dir, storage, repository } = await newRepo();
    await writeFile(path.join(dir, "lifeboat.json"), "{ broken");
    expect((await Repository.open("local", storage)).id).toBe(repository.id);
  });

  it("writes one backup to two repositories with identical bytes and reads it back", async () => {
    const a = await newRepo("a");
    const b = await newRepo("b");
    const payload = randomBytes(300_000);
    const committed = await runBackup(
      [a.repository, b.repository],
      { kind: "files", source: "t", encoding, operation: "test" },
      async (session) => {
        await session.addObject("one.bin", Readable.from([payload]));
        await session.addObject("two.txt", Readable.from(["hello\n".repeat(10_000)]));
        return { note: "x" };
      },
    );
    expect(committed.failures).toEqual([]);
    expect(committed.manifests).toHaveLength(2);
    const [ma, mb] = committed.manifests.map((m) => m.manifest);
    expect(ma!.objects[0]!.sha256).toBe(mb!.objects[0]!.sha256);
    expect(ma!.objects[0]!.plain.sha256).toBe(createHash("sha256").update(payload).digest("hex"));
    expect(ma!.repositoryId).not.toBe(mb!.repositoryId);
    expect(await plaintextOf(b.repository, committed.id, "one.bin")).toEqual(payload);
    expect((await plaintextOf(a.repository, committed.id, "two.txt")).toString()).toBe(
      "hello\n".repeat(10_000),
    );
    const stored = await readFile(
      path.join(a.dir, ...dataKey(committed.id, "one.bin.zst.age").split("/")),
    );
    expect(stored.subarray(0, 21).toString()).toBe("age-encryption.org/v1");
  });

  it("keeps writing to healthy repositories when one fails, and reports it", async () => {
    const good = await newRepo("good");
    const badDir = await newRepo("bad");
    const faulty = new FaultyStorage(badDir.storage);
    const bad = await Repository.open("bad", faulty);
    faulty.failNext("put", 1, "STORAGE_DENIED");
    const committed = await runBackup(
      [good.repository, bad],
      { kind: "files", encoding, operation: "test" },
      async (session) => {
        await session.addObject("big.bin", Readable.from(chunks(40, 256 * 1024)));
        return {};
      },
    );
    expect(committed.manifests.map((m) => m.repository.name)).toEqual(["good"]);
    expect(committed.failures.map((f) => [f.repository, f.error.code])).toEqual([
      ["bad", "STORAGE_DENIED"],
    ]);
    expect(await bad.listBackupIds()).toEqual([]);
    expect(await good.repository.listBackupIds()).toEqual([committed.id]);
  });

  it("a failing source aborts the backup: no manifest anywhere, no leftovers, locks released", async () => {
    const { repository, dir } = await newRepo();
    const source = new Readable({ read() {} });
    const run = runBackup(
      [repository],
      { kind: "files", encoding, operation: "test" },
      async (session) => {
        await session.addObject("first.txt", Readable.from(["ok"]));
        setTimeout(() => {
          source.push(randomBytes(100_000));
          source.destroy(new Error("pg_dump died"));
        }, 20);
        await session.addObject("second.bin", source);
        return {};
      },
    );
    await expect(run).rejects.toThrow("pg_dump died");
    expect(await repository.listBackupIds()).toEqual([]);
    expect(await readdir(path.join(dir, "data")).catch(() => [])).toEqual([]);
    expect(await readdir(path.join(dir, "locks")).catch(() => [])).toEqual([]);
  });

  it("detects a flipped stored byte, a truncated object and a missing manifest", async () => {
    const { repository, dir } = await newRepo();
    const committed = await runBackup(
      [repository],
      { kind: "files", encoding, operation: "test" },
      async (session) => {
        await session.addObject("data.bin", Readable.from(chunks(8, 100_000)));
        return {};
      },
    );
    const manifest = await repository.readManifest(committed.id);
    const file = path.join(dir, ...manifest.objects[0]!.key.split("/"));
    const original = await readFile(file);

    const flipped = Buffer.from(original);
    flipped[Math.floor(flipped.length / 2)]! ^= 0x01;
    await writeFile(file, flipped);
    const stored = await verifyBackup(repository, manifest, { level: "stored" });
    expect(stored.ok).toBe(false);
    expect(stored.objects[0]!.code).toBe("OBJECT_CORRUPT");
    await expect(
      drain(repository.openObject(manifest, manifest.objects[0]!, { identities })),
    ).rejects.toMatchObject({ code: "OBJECT_CORRUPT" });

    await writeFile(file, original.subarray(0, original.length - 1000));
    expect((await verifyBackup(repository, manifest, { level: "quick" })).objects[0]!.code).toBe(
      "OBJECT_TRUNCATED",
    );
    await expect(
      drain(repository.openObject(manifest, manifest.objects[0]!, { identities })),
    ).rejects.toMatchObject({ code: "OBJECT_TRUNCATED" });

    await writeFile(file, original);
    expect((await verifyBackup(repository, manifest, { level: "full", identities })).ok).toBe(true);

    const wrong = [parseIdentity(generateIdentity().identity)];
    await expect(
      drain(repository.openObject(manifest, manifest.objects[0]!, { identities: wrong })),
    ).rejects.toMatchObject({ code: "DECRYPT_FAILED" });

    await (
      await import("node:fs/promises")
    ).rm(path.join(dir, ...manifestKey(committed.id).split("/")));
    await expect(repository.readManifest(committed.id)).rejects.toMatchObject({
      code: "BACKUP_INCOMPLETE",
    });
    const listed = await listBackups([repository]);
    expect(listed.map((b) => [b.id, b.status])).toEqual([[committed.id, "incomplete"]]);
  });

  it("falls back to the manifest copy when the manifest is damaged", async () => {
    const { repository, dir } = await newRepo();
    const committed = await runBackup(
      [repository],
      { kind: "files", encoding, operation: "test" },
      async (session) => {
        await session.addObject("x", Readable.from(["x"]));
        return {};
      },
    );
    const file = path.join(dir, ...manifestKey(committed.id).split("/"));
    await writeFile(
      file,
      (await readFile(file, "utf8")).replace('"kind": "files"', '"kind": "filez"'),
    );
    expect((await repository.readManifest(committed.id)).kind).toBe("files");
  });
});

describe("prune-incomplete", () => {
  const id1 = "20261120T020000Z-db-app-aaaaaa";
  const id2 = "20261121T020000Z-db-app-bbbbbb";
  const id3 = "20261122T020000Z-db-app-cccccc";

  it("plans leftovers only: committed and in-progress backups are kept", () => {
    const plan = planPruneIncomplete("r", {
      objects: [
        { key: `data/${id1}/dump.zst.age`, size: 10 },
        { key: `manifests/${id1}.json`, size: 1 },
        { key: `manifests/${id1}.copy.json`, size: 1 },
        { key: `data/${id2}/dump.zst.age`, size: 20 },
        { key: `data/${id2}/globals.zst.age`, size: 5 },
        { key: `manifests/${id2}.copy.json`, size: 1 },
        { key: `data/${id3}/dump.zst.age`, size: 7 },
      ],
      lockedBackupIds: new Set([id3]),
    });
    expect(plan.incomplete).toEqual([
      {
        backupId: id2,
        keys: [
          `data/${id2}/dump.zst.age`,
          `data/${id2}/globals.zst.age`,
          `manifests/${id2}.copy.json`,
        ],
        bytes: 26,
      },
    ]);
    expect(plan.inProgress).toEqual([id3]);
    expect(plan.totalBytes).toBe(26);
  });

  it("applies under an exclusive lock and refuses while a backup runs", async () => {
    const { repository, storage } = await newRepo();
    const session = await BackupSession.start([repository], {
      kind: "files",
      encoding,
      operation: "test",
    });
    await session.addObject("part", Readable.from(["half"]));
    await expect(applyPruneIncomplete(repository)).rejects.toMatchObject({ code: "LOCKED" });
    // Simulate the writer dying: its lock goes away, its data stays.
    const locks = [];
    for await (const info of storage.list("locks/")) locks.push(info.key);
    for (const key of locks) await storage.delete(key);
    const plan = await applyPruneIncomplete(repository);
    expect(plan.incomplete.map((i) => i.backupId)).toEqual([session.id]);
    const left = [];
    for await (const info of storage.list("data/")) left.push(info.key);
    expect(left).toEqual([]);
  });
});

describe("locks", () => {
  it("shared locks coexist; exclusive excludes; released locks free the repository", async () => {
    const { storage } = await newRepo();
    const a = await acquireLock(storage, { exclusive: false, operation: "backup a" });
    const b = await acquireLock(storage, { exclusive: false, operation: "backup b" });
    const error = await acquireLock(storage, { exclusive: true, operation: "prune" }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(LifeboatError);
    expect((error as LifeboatError).code).toBe("LOCKED");
    expect((error as LifeboatError).message).toContain("backup");
    await a.release();
    await b.release();
    const c = await acquireLock(storage, { exclusive: true, operation: "prune" });
    await expect(
      acquireLock(storage, { exclusive: false, operation: "backup" }),
    ).rejects.toMatchObject({ code: "LOCKED" });
    await c.release();
  });

  it("removes a stale lock of a dead process on this host", async () => {
    const { storage, dir } = await newRepo();
    const held = await acquireLock(storage, { exclusive: true, operation: "crashed prune" });
    const file = path.join(dir, "locks", `${held.document.id}.json`);
    const doc = JSON.parse(await readFile(file, "utf8")) as { pid: number };
    doc.pid = 2 ** 22 + 12345; // beyond pid_max defaults: certainly not running
    await writeFile(file, JSON.stringify(doc));
    const next = await acquireLock(storage, { exclusive: true, operation: "prune" });
    await next.release();
  });
});

function* chunks(count: number, size: number): Generator<Buffer> {
  for (let i = 0; i < count; i++) yield Buffer.alloc(size, `chunk ${i} `);
}

async function drain(stream: Promise<Readable>): Promise<void> {
  await pipeline(await stream, discard());
}

import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isLifeboatError } from "../../src/errors.js";
import { Repository } from "../../src/repository/repository.js";
import { FaultyStorage, LocalStorage } from "../../src/storage/index.js";
import { parseIdentity, generateIdentity, type AgeIdentity } from "../../src/stream/age/keys.js";
import type { EncodeSettings } from "../../src/stream/encode.js";
import { fetchWalFile } from "../../src/wal/fetch.js";
import { archiveWalFile, readWalRecord, storeWalFile, prepareWalFile } from "../../src/wal/push.js";
import { parseWalName } from "../../src/wal/layout.js";
import { enqueue, readUploaderState } from "../../src/wal/spool.js";
import { runUploader } from "../../src/wal/uploader.js";

const SEG = 1 << 20;
const SYSID = 7312345678901234567n;

/** A segment-sized file whose first page carries a real long header. */
async function segmentFile(dir: string, name: string, fill = randomBytes(SEG)): Promise<string> {
  const body = Buffer.from(fill);
  body.writeUInt16LE(0xd110, 0);
  body.writeUInt16LE(0x0002, 2);
  body.writeUInt32LE(1, 4);
  body.writeBigUInt64LE(SYSID, 24);
  body.writeUInt32LE(SEG, 32);
  body.writeUInt32LE(8192, 36);
  const file = path.join(dir, name);
  await writeFile(file, body);
  return file;
}

describe("archiving and restoring WAL files", () => {
  let dir: string;
  let repo: Repository;
  let backup: Repository;
  let identities: AgeIdentity[];
  let encoding: EncodeSettings;
  const opts = () => ({
    encoding,
    tmpDir: path.join(dir, "tmp"),
    source: "archive_command" as const,
  });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "lifeboat-wal-unit-"));
    const { identity, recipient } = generateIdentity();
    identities = [parseIdentity(identity)];
    encoding = { compression: "zstd", recipients: [recipient] };
    const encryption = { format: "age-v1" as const, recipients: [recipient] };
    repo = await Repository.init("main", new LocalStorage(path.join(dir, "repo")), encryption);
    backup = await Repository.init(
      "offsite",
      new LocalStorage(path.join(dir, "repo2")),
      encryption,
    );
    await mkdir(path.join(dir, "src"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("stores once, accepts the same content again, refuses different content", async () => {
    const file = await segmentFile(path.join(dir, "src"), "000000010000000000000003");
    const first = await archiveWalFile([repo, backup], file, opts());
    expect(first.repositories.map((r) => r.outcome)).toEqual(["stored", "stored"]);
    const again = await archiveWalFile([repo, backup], file, opts());
    expect(again.repositories.map((r) => r.outcome)).toEqual(["exists", "exists"]);

    const record = await readWalRecord(repo, parseWalName("000000010000000000000003")!);
    expect(record).toMatchObject({
      kind: "segment",
      timeline: 1,
      systemIdentifier: String(SYSID),
      segmentSize: SEG,
    });
    expect(record!.plain.bytes).toBe(SEG);

    await mkdir(path.join(dir, "elsewhere"));
    const other = await segmentFile(path.join(dir, "elsewhere"), "000000010000000000000003");
    const conflict = await archiveWalFile([repo], other, opts());
    expect(conflict.repositories[0]!.error?.code).toBe("WAL_CONFLICT");
    expect(conflict.repositories[0]!.error?.message).toMatch(/different content/);
  });

  it("restores verified bytes, and never writes the destination from a corrupt copy", async () => {
    const original = await readFile(path.join(dir, "src", "000000010000000000000003"));
    const dest = path.join(dir, "RECOVERYXLOG");
    const outcome = await fetchWalFile([repo], "000000010000000000000003", dest, { identities });
    expect(outcome).toMatchObject({ status: "found", repository: "main", partial: false });
    expect((await readFile(dest)).equals(original)).toBe(true);

    const record = (await readWalRecord(repo, parseWalName("000000010000000000000003")!))!;
    const stored = path.join(dir, "repo", record.key);
    const bytes = await readFile(stored);
    bytes[bytes.length >> 1]! ^= 0x01;
    await writeFile(stored, bytes);

    const corrupt = path.join(dir, "corrupt-dest");
    const error = await fetchWalFile([repo], "000000010000000000000003", corrupt, {
      identities,
    }).catch((e: unknown) => e);
    expect(isLifeboatError(error, "OBJECT_CORRUPT")).toBe(true);
    expect(existsSync(corrupt)).toBe(false);
    expect((await readdir(dir)).filter((f) => f.startsWith(".lifeboat-"))).toEqual([]);

    // A good copy elsewhere is used instead.
    const fallback = await fetchWalFile([repo, backup], "000000010000000000000003", corrupt, {
      identities,
    });
    expect(fallback).toMatchObject({ status: "found", repository: "offsite" });
    expect((await readFile(corrupt)).equals(original)).toBe(true);
  });

  it("answers missing only when no repository has the file", async () => {
    const outcome = await fetchWalFile(
      [repo, backup],
      "000000010000000000000099",
      path.join(dir, "x"),
      { identities },
    );
    expect(outcome).toEqual({ status: "missing" });
    const down = new FaultyStorage(repo.storage).failNext("get", 10, "STORAGE_UNREACHABLE");
    const unreachable = await Repository.open("down", new LocalStorage(path.join(dir, "repo")));
    const broken = Object.assign(
      Object.create(Object.getPrototypeOf(unreachable) as object),
      unreachable,
      { storage: down },
    ) as Repository;
    const error = await fetchWalFile(
      [broken, backup],
      "000000010000000000000099",
      path.join(dir, "x"),
      { identities },
    ).catch((e: unknown) => e);
    expect(isLifeboatError(error, "STORAGE_UNREACHABLE")).toBe(true);
  });

  it("serves a partial segment, padded, only when asked, and replaces it as it grows", async () => {
    const src = path.join(dir, "src");
    const partial = path.join(src, "000000010000000000000004.partial");
    const content = Buffer.concat([randomBytes(4096), Buffer.alloc(SEG - 4096)]);
    content.writeUInt16LE(0x0002, 2);
    content.writeUInt32LE(SEG, 32);
    content.writeUInt32LE(8192, 36);
    await writeFile(partial, content.subarray(0, SEG / 2));
    expect((await archiveWalFile([repo], partial, opts())).repositories[0]!.outcome).toBe("stored");
    const record = await readWalRecord(repo, parseWalName("000000010000000000000004.partial")!);
    expect(record!.validBytes).toBe(4096);

    const dest = path.join(dir, "partial-dest");
    expect(await fetchWalFile([repo], "000000010000000000000004", dest, { identities })).toEqual({
      status: "missing",
    });
    const served = await fetchWalFile([repo], "000000010000000000000004", dest, {
      identities,
      allowPartial: true,
    });
    expect(served).toMatchObject({ status: "found", partial: true });
    expect((await stat(dest)).size).toBe(SEG);

    content.fill(7, 4096, 8192);
    await writeFile(partial, content);
    expect((await archiveWalFile([repo], partial, opts())).repositories[0]!.outcome).toBe(
      "replaced",
    );
    const dataObjects = (await readdir(path.join(dir, "repo", "wal", "00000001"))).filter((f) =>
      f.startsWith("000000010000000000000004.partial-"),
    );
    expect(dataObjects).toHaveLength(1);
  });

  it("records the ancestry of history files", async () => {
    const file = path.join(dir, "src", "00000002.history");
    await writeFile(file, "1\t0/3000028\tno recovery target specified\n");
    const prepared = await prepareWalFile(file, opts());
    expect(await storeWalFile(repo, prepared)).toBe("stored");
    await prepared.cleanup();
    const record = await readWalRecord(repo, parseWalName("00000002.history")!);
    expect(record!.history).toEqual([
      { timeline: 1, switchLsn: "0/3000028", reason: "no recovery target specified" },
    ]);
  });
});

describe("the spool between archive_command and the repositories", () => {
  let dir: string;
  let spool: string;
  let repo: Repository;
  const encoding: EncodeSettings = { compression: "zstd", recipients: [] };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "lifeboat-spool-unit-"));
    spool = path.join(dir, "spool");
    repo = await Repository.init("main", new LocalStorage(path.join(dir, "repo")), {
      format: "none",
    });
    await mkdir(path.join(dir, "pg_wal"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("queues durably, drains in parallel, and treats a re-push as a no-op", async () => {
    const files = await Promise.all(
      ["000000010000000000000010", "000000010000000000000011", "000000010000000000000012"].map(
        (n) => segmentFile(path.join(dir, "pg_wal"), n),
      ),
    );
    for (const file of files)
      expect((await enqueue(spool, file, { maxSegments: 8 })).outcome).toBe("queued");
    expect((await enqueue(spool, files[0]!, { maxSegments: 8 })).outcome).toBe("already-queued");
    const result = await runUploader({
      spoolDir: spool,
      encoding,
      concurrency: 3,
      openRepositories: async () => [repo],
      daemon: false,
    });
    expect(result).toMatchObject({ status: "drained", uploaded: 3, failures: 0 });
    expect(await readdir(path.join(spool, "queue"))).toEqual([]);
    expect((await enqueue(spool, files[1]!, { maxSegments: 8 })).outcome).toBe("already-archived");
    await mkdir(path.join(dir, "other"));
    const other = await segmentFile(path.join(dir, "other"), "000000010000000000000011");
    const error = await enqueue(spool, other, { maxSegments: 8 }).catch((e: unknown) => e);
    expect(isLifeboatError(error, "WAL_CONFLICT")).toBe(true);
  });

  it("keeps files and records the error when a repository fails; refuses pushes once full", async () => {
    const faulty = new FaultyStorage(repo.storage).failNext("put", 100, "STORAGE_UNREACHABLE");
    const broken = Object.assign(Object.create(Object.getPrototypeOf(repo) as object), repo, {
      storage: faulty,
    }) as Repository;
    const a = await segmentFile(path.join(dir, "pg_wal"), "000000010000000000000013");
    const b = await segmentFile(path.join(dir, "pg_wal"), "000000010000000000000014");
    await enqueue(spool, a, { maxSegments: 2 });
    const result = await runUploader({
      spoolDir: spool,
      encoding,
      concurrency: 2,
      openRepositories: async () => [broken],
      daemon: false,
    });
    expect(result.status).toBe("failed");
    expect((await readUploaderState(spool)).lastError?.code).toBe("STORAGE_UNREACHABLE");
    await enqueue(spool, b, { maxSegments: 2 });
    const c = await segmentFile(path.join(dir, "pg_wal"), "000000010000000000000015");
    const full = await enqueue(spool, c, { maxSegments: 2 }).catch((e: unknown) => e);
    expect(isLifeboatError(full, "WAL_SPOOL_FULL")).toBe(true);
    expect((full as Error).message).toMatch(
      /holds 2 file\(s\).*STORAGE_UNREACHABLE|injected fault/,
    );

    const drained = await runUploader({
      spoolDir: spool,
      encoding,
      concurrency: 2,
      openRepositories: async () => [repo],
      daemon: false,
    });
    expect(drained).toMatchObject({ status: "drained", uploaded: 2 });
    expect((await readUploaderState(spool)).lastError).toBeUndefined();
  });
});

// Round trip of realistic data through the whole pipeline: plaintext → sha256 → compress →
// age → sha256 → S3 and local at once (BackupSession), read back through Repository.openObject,
// and the stored S3 object decoded without lifeboat by the `age` and `zstd` / `gzip` CLIs.
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashTap, sqlDumpStream } from "../../bench/sql-dump.mjs";
import type { Manifest } from "../../src/repository/format.js";
import { Repository, type RepositoryEncryption } from "../../src/repository/repository.js";
import { runBackup } from "../../src/repository/writer.js";
import { openStorage } from "../../src/storage/index.js";
import type { CompressionAlgorithm } from "../../src/stream/compress.js";
import { generateIdentity, parseIdentity, writeIdentityFile } from "../../src/stream/age/index.js";
import {
  createTestBucket,
  deleteTestBucket,
  makeTestS3Client,
  s3TestConfig,
} from "../helpers/s3.js";

const MiB = 1024 * 1024;
const PREFIX = "roundtrip";

interface Digest {
  sha256: string;
  bytes: number;
}

const pair = generateIdentity();
const identities = [parseIdentity(pair.identity)];
const encryption: RepositoryEncryption = { format: "age-v1", recipients: [pair.recipient] };
const raw = makeTestS3Client();
let dir = "";
let bucket = "";
let local: Repository;
let offsite: Repository;

async function sha256Of(stream: Readable): Promise<Digest> {
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest("hex"), bytes };
}

function exited(child: ReturnType<typeof spawn>, name: string): Promise<number | null> {
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      if (code !== 0) reject(new Error(`${name} exited with ${code}: ${stderr.trim()}`));
      else resolve(code);
    });
  });
}

/** `age -d -i <identity> | <decompress>` on the stored bytes, hashed as it streams out. */
async function decodeWithClis(stored: Readable, decompress: string[]): Promise<Digest> {
  const identityFile = path.join(dir, "identity.txt");
  const age = spawn("age", ["-d", "-i", identityFile], { stdio: ["pipe", "pipe", "pipe"] });
  const unzip = spawn(decompress[0]!, decompress.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  const [digest] = await Promise.all([
    sha256Of(unzip.stdout),
    pipeline(stored, age.stdin),
    pipeline(age.stdout, unzip.stdin),
    exited(age, "age -d"),
    exited(unzip, decompress.join(" ")),
  ]);
  return digest;
}

/** Backs up `bytes` of dump text as one object; returns the source digest and the manifests. */
async function backUp(
  repositories: Repository[],
  bytes: number,
  compression: CompressionAlgorithm,
): Promise<{ original: Digest; manifests: { repository: Repository; manifest: Manifest }[] }> {
  const { tap, digest } = hashTap();
  const committed = await runBackup(
    repositories,
    {
      kind: "files",
      source: `roundtrip-${compression}`,
      encoding: { compression, recipients: [pair.recipient] },
      operation: "test roundtrip",
    },
    async (session) => {
      await session.addObject("dump.sql", sqlDumpStream({ bytes, seed: 7 }).pipe(tap));
      return {};
    },
  );
  expect(committed.failures).toEqual([]);
  return { original: await digest, manifests: committed.manifests };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "lifeboat-roundtrip-"));
  bucket = await createTestBucket("roundtrip");
  await writeIdentityFile(path.join(dir, "identity.txt"), pair.identity);
  const s3 = s3TestConfig();
  local = await Repository.init(
    "local",
    openStorage({ type: "local", path: path.join(dir, "repo") }),
    encryption,
  );
  offsite = await Repository.init(
    "offsite",
    openStorage({
      type: "s3",
      endpoint: s3.endpoint,
      region: s3.region,
      bucket,
      prefix: PREFIX,
      pathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    }),
    encryption,
  );
});

afterAll(async () => {
  await offsite?.storage.close?.();
  raw.destroy();
  if (bucket) await deleteTestBucket(bucket);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("round trip", () => {
  it("200 MiB of SQL dump text: zstd + age into S3 and local at once, read back identical, decodable by the age and zstd CLIs", async () => {
    const size = 200 * MiB;
    const { original, manifests } = await backUp([local, offsite], size, "zstd");
    expect(original.bytes).toBe(size);
    expect(manifests.map((m) => m.repository.name)).toEqual(["local", "offsite"]);
    const record = manifests[0]!.manifest.objects[0]!;
    expect(manifests[1]!.manifest.objects[0]).toEqual(record);
    expect(record).toMatchObject({
      plain: original,
      compression: { algorithm: "zstd", level: 3 },
      encryption: { format: "age-v1" },
    });
    expect(record.key).toMatch(/\/dump\.sql\.zst\.age$/);
    // Realistic text compresses well, but not absurdly (the generator is not trivially repetitive).
    expect(record.size).toBeLessThan(size / 2);
    expect(record.size).toBeGreaterThan(size / 10);

    // Read back through each repository: decrypted, decompressed, every checksum verified.
    for (const { repository, manifest } of manifests) {
      const object = await repository.openObject(manifest, manifest.objects[0]!, { identities });
      expect(await sha256Of(object), repository.name).toEqual(original);
    }

    // The local copy is byte-identical to the S3 copy (both match the manifest's stored digest).
    const localFile = path.join(dir, "repo", ...record.key.split("/"));
    expect(await sha256Of(createReadStream(localFile))).toEqual({
      sha256: record.sha256,
      bytes: record.size,
    });

    // Without lifeboat: download the S3 object, `age -d | zstd -d`.
    const { Body } = await raw.send(
      new GetObjectCommand({ Bucket: bucket, Key: `${PREFIX}/${record.key}` }),
    );
    const storedTap = hashTap();
    const decoded = await decodeWithClis((Body as Readable).pipe(storedTap.tap), [
      "zstd",
      "-d",
      "-c",
    ]);
    expect(await storedTap.digest).toEqual({ sha256: record.sha256, bytes: record.size });
    expect(decoded).toEqual(original);
  });

  it("gzip: 20 MiB read back identical and decodable by `age -d | gzip -d`", async () => {
    const size = 20 * MiB;
    const { original, manifests } = await backUp([local], size, "gzip");
    const { repository, manifest } = manifests[0]!;
    const record = manifest.objects[0]!;
    expect(record).toMatchObject({ plain: original, compression: { algorithm: "gzip" } });
    expect(record.key).toMatch(/\/dump\.sql\.gz\.age$/);
    const object = await repository.openObject(manifest, record, { identities });
    expect(await sha256Of(object)).toEqual(original);
    const localFile = path.join(dir, "repo", ...record.key.split("/"));
    expect(await decodeWithClis(createReadStream(localFile), ["gzip", "-d", "-c"])).toEqual(
      original,
    );
  });
});

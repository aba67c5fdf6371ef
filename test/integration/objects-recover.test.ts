import { randomBytes } from "node:crypto";
import {
  DeleteObjectCommand,
  GetBucketCorsCommand,
  GetBucketPolicyCommand,
  GetBucketTaggingCommand,
  PutBucketCorsCommand,
  PutBucketPolicyCommand,
  PutBucketTaggingCommand,
} from "@aws-sdk/client-s3";
import { afterAll, describe, expect, it } from "vitest";
import { listBackups } from "../../src/engine/catalog.js";
import { collect, getVersioning } from "../../src/objects/list.js";
import { protectBucket, readLifecycleRules } from "../../src/objects/protect.js";
import { recoverBucket } from "../../src/objects/recover.js";
import { normaliseLifecycleRules } from "../../src/objects/settings.js";
import { restoreBucket } from "../../src/objects/restore.js";
import {
  findSnapshot,
  latestSettings,
  readSnapshotLines,
  saveSettingsIfChanged,
  snapshotBucket,
} from "../../src/objects/snapshot.js";
import { syncBuckets } from "../../src/objects/sync.js";
import { objectVersions } from "../../src/objects/versions.js";
import { Repository } from "../../src/repository/repository.js";
import { LocalStorage } from "../../src/storage/index.js";
import { generateIdentity, parseIdentity } from "../../src/stream/age/index.js";
import {
  getBytes,
  head,
  parallel,
  pause,
  put,
  s3,
  sha256,
  testTarget,
} from "../helpers/objects.js";
import { createTestBucket, deleteTestBucket } from "../helpers/s3.js";
import { tempDir } from "../helpers/tmp.js";

const buckets: string[] = [];
afterAll(async () => {
  for (const name of buckets) await deleteTestBucket(name);
});

const pair = generateIdentity();
const identities = [parseIdentity(pair.identity)];
const encoding = { compression: "zstd" as const, recipients: [pair.recipient] };

describe("bucket snapshot, settings backup and recovery of a lost bucket", () => {
  it("recreates a deleted bucket from the secondary: objects byte-identical, settings re-applied", async () => {
    const primary = await createTestBucket("lb-recover", { versioning: true });
    const secondary = await createTestBucket("lb-recover-dr", { versioning: true });
    buckets.push(primary, secondary);
    const repository = await Repository.init("local", new LocalStorage(await tempDir()), {
      format: "age-v1",
      recipients: [pair.recipient],
    });
    const target = testTarget(primary, "documents");
    const dr = testTarget(secondary);

    // The first user's bucket: versioned with 90-day history, CORS for the web app, tags, a policy.
    await protectBucket(target);
    const cors = [
      {
        AllowedMethods: ["GET", "PUT"],
        AllowedOrigins: ["https://app.example.co.uk"],
        AllowedHeaders: ["*"],
        MaxAgeSeconds: 3000,
      },
    ];
    await s3().send(
      new PutBucketCorsCommand({ Bucket: primary, CORSConfiguration: { CORSRules: cors } }),
    );
    const tags = [{ Key: "data-class", Value: "kyc" }];
    await s3().send(new PutBucketTaggingCommand({ Bucket: primary, Tagging: { TagSet: tags } }));
    const policy = JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Deny",
          Principal: "*",
          Action: ["s3:PutBucketWebsite"],
          Resource: [`arn:aws:s3:::${primary}`],
        },
      ],
    });
    await s3().send(new PutBucketPolicyCommand({ Bucket: primary, Policy: policy }));
    const content = new Map<string, Buffer>();
    for (let i = 0; i < 30; i++)
      content.set(`onboarding/s${i % 6}/doc-${i}.pdf`, randomBytes(100 + i * 97));
    content.set("generated/large.pdf", randomBytes(9 * 1024 * 1024));
    await parallel([...content.keys()], 8, (k) => put(primary, k, content.get(k)!));
    await put(primary, "onboarding/old/deleted.pdf", "deleted before the snapshot");
    await s3().send(
      new DeleteObjectCommand({ Bucket: primary, Key: "onboarding/old/deleted.pdf" }),
    );

    // Snapshot: the listing plus settings, as an encrypted backup.
    const { committed, details } = await snapshotBucket([repository], encoding, target);
    expect(details).toMatchObject({ keys: 31, deleteMarkers: 1, versioning: "Enabled" });
    const listed = await listBackups([repository], { kind: "bucket-snapshot" });
    expect(listed.map((b) => b.id)).toEqual([committed.id]);
    const snapshot = (await findSnapshot([repository], primary, { at: new Date() }))!;
    const lines = await collect(readSnapshotLines(snapshot, identities));
    expect(
      lines
        .filter((l) => !l.deleteMarker)
        .map((l) => l.key)
        .sort(),
    ).toEqual([...content.keys()].sort());
    expect(lines.find((l) => l.key === "generated/large.pdf")).toMatchObject({
      size: 9 * 1024 * 1024,
      isLatest: true,
    });

    // Daily sync; its settings copy is skipped because the snapshot already holds the same.
    expect(await syncBuckets(target, dr)).toMatchObject({ copied: 31, failed: [] });
    expect(await saveSettingsIfChanged([repository], encoding, target)).toEqual({
      id: committed.id,
      changed: false,
    });

    // Disaster: every version of the primary is gone, and so is the bucket.
    await deleteTestBucket(primary);
    expect(await head(secondary, "generated/large.pdf")).toBeDefined();

    const saved = await latestSettings([repository], primary, identities);
    expect(saved?.backupId).toBe(committed.id);
    const dry = await recoverBucket(target, dr, { saved: saved!, dryRun: true });
    expect(dry).toMatchObject({ created: true, objects: { count: 31 } });
    const recovered = await recoverBucket(target, dr, { saved: saved!, verify: true });
    expect(recovered.sync).toMatchObject({
      copied: 31,
      failed: [],
      verify: { ok: 31, problems: [] },
    });
    expect(recovered.settings).toMatchObject({ source: "backup", skipped: [] });

    for (const [key, bytes] of content)
      expect(sha256(await getBytes(primary, key))).toBe(sha256(bytes));
    expect(await getVersioning(target)).toBe("Enabled");
    expect((await s3().send(new GetBucketCorsCommand({ Bucket: primary }))).CORSRules).toEqual(
      cors,
    );
    expect(normaliseLifecycleRules(await readLifecycleRules(target))).toEqual(
      saved!.settings.lifecycle,
    );
    expect(saved!.settings.lifecycle?.[0]?.NoncurrentVersionExpiration?.NoncurrentDays).toBe(90);
    expect((await s3().send(new GetBucketTaggingCommand({ Bucket: primary }))).TagSet).toEqual(
      tags,
    );
    expect(
      JSON.parse((await s3().send(new GetBucketPolicyCommand({ Bucket: primary }))).Policy!),
    ).toEqual(JSON.parse(policy));

    // Recover refuses a live bucket rather than mixing old and new content.
    await expect(recoverBucket(target, dr, { saved: saved! })).rejects.toMatchObject({
      code: "USAGE",
    });

    // The recreated bucket's versions start now; the snapshot still reaches back before them.
    await pause();
    await put(primary, "onboarding/s1/doc-1.pdf", "overwritten after recovery");
    await s3().send(new DeleteObjectCommand({ Bucket: primary, Key: "onboarding/s2/doc-2.pdf" }));
    await put(primary, "onboarding/new.pdf", "new after recovery");
    const takenAt = new Date(details.takenAt);
    const baseline = async () => ({ id: snapshot.manifest.id, takenAt, lines });
    await expect(
      restoreBucket(target, { at: takenAt, prefix: "onboarding/" }),
    ).rejects.toMatchObject({
      code: "BUCKET_HISTORY_TOO_SHORT",
    });
    const rolled = await restoreBucket(target, { at: takenAt, prefix: "onboarding/", baseline });
    expect(rolled).toMatchObject({
      snapshot: { id: snapshot.manifest.id },
      restored: 2,
      deleted: 1,
      missing: [],
    });
    expect(rolled.unchanged).toBe(28);
    expect(await getBytes(primary, "onboarding/s1/doc-1.pdf")).toEqual(
      content.get("onboarding/s1/doc-1.pdf"),
    );
    expect(await getBytes(primary, "onboarding/s2/doc-2.pdf")).toEqual(
      content.get("onboarding/s2/doc-2.pdf"),
    );
    expect(await head(primary, "onboarding/new.pdf")).toBeUndefined();

    // A key whose every version has expired: the snapshot knows it existed, the secondary has it.
    const lostKey = "onboarding/s3/doc-3.pdf";
    for (const v of await objectVersions(target, lostKey)) {
      await s3().send(
        new DeleteObjectCommand({ Bucket: primary, Key: lostKey, VersionId: v.versionId }),
      );
    }
    const unfound = await restoreBucket(target, {
      at: takenAt,
      prefix: "onboarding/s3/",
      baseline,
      dryRun: true,
    });
    expect(unfound.missing.map((m) => m.key)).toEqual([lostKey]);
    const found = await restoreBucket(target, {
      at: takenAt,
      prefix: "onboarding/s3/",
      baseline,
      secondary: dr,
    });
    expect(found).toMatchObject({
      missing: [],
      restored: 1,
      restore: [{ key: lostKey, fromSecondary: { bucket: secondary } }],
    });
    expect(await getBytes(primary, lostKey)).toEqual(content.get(lostKey));
  });
});

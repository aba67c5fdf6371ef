import { writeFile } from "node:fs/promises";
import path from "node:path";
import {
  DeleteBucketPolicyCommand,
  DeleteObjectCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketPolicyCommand,
  PutBucketVersioningCommand,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { main } from "../../src/cli/main.js";
import { getVersioning } from "../../src/objects/list.js";
import {
  bucketStatus,
  protectBucket,
  PROTECT_RULE_ID,
  readLifecycleRules,
} from "../../src/objects/protect.js";
import { restoreBucket } from "../../src/objects/restore.js";
import { objectVersions, restoreObject } from "../../src/objects/versions.js";
import { getBytes, head, pause, put, s3, testTarget } from "../helpers/objects.js";
import { createTestBucket, deleteTestBucket, s3TestConfig, testBucketName } from "../helpers/s3.js";
import { tempDir } from "../helpers/tmp.js";

const buckets: string[] = [];
async function bucket(prefix: string, versioning = false): Promise<string> {
  const name = await createTestBucket(prefix, { versioning });
  buckets.push(name);
  return name;
}

afterAll(async () => {
  for (const name of buckets) {
    await s3()
      .send(new DeleteBucketPolicyCommand({ Bucket: name }))
      .catch(() => undefined);
    await deleteTestBucket(name);
  }
});

describe("bucket protect and single-object recovery", () => {
  let name: string;
  beforeAll(async () => {
    name = await bucket("lb-protect");
    await s3().send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket: name,
        LifecycleConfiguration: {
          Rules: [
            { ID: "tmp", Status: "Enabled", Filter: { Prefix: "tmp/" }, Expiration: { Days: 7 } },
          ],
        },
      }),
    );
  });

  it("protects: dry run changes nothing, apply merges the rule, a rerun is a no-op", async () => {
    const target = testTarget(name);
    const dry = await protectBucket(target, { dryRun: true, days: 30 });
    expect(dry).toMatchObject({ changes: 2, applied: false, versioning: { from: "Off" } });
    expect(await getVersioning(target)).toBe("Off");

    expect(await protectBucket(target, { days: 30 })).toMatchObject({ applied: true });
    const rules = await readLifecycleRules(target);
    expect(rules.map((r) => r.ID).sort()).toEqual([PROTECT_RULE_ID, "tmp"]);
    expect(
      rules.find((r) => r.ID === PROTECT_RULE_ID)?.NoncurrentVersionExpiration?.NoncurrentDays,
    ).toBe(30);
    expect(await protectBucket(target, { days: 30 })).toMatchObject({ changes: 0, applied: false });
    const status = await bucketStatus(target);
    expect(status).toMatchObject({
      versioning: "Enabled",
      protected: true,
      lifecycle: { noncurrentDays: 30 },
    });
  });

  it("undeletes an object and rolls an overwritten one back to a chosen version, keeping history", async () => {
    const target = testTarget(name);
    const key = "onboarding/s1/passport.pdf";
    const v1 = await put(name, key, "passport v1");
    await put(name, key, "passport v2 (overwritten)");
    await s3().send(new DeleteObjectCommand({ Bucket: name, Key: key }));
    expect(await head(name, key)).toBeUndefined();

    const undeleted = await restoreObject(target, key, {});
    expect(undeleted.plan.action).toBe("restore");
    expect((await getBytes(name, key)).toString()).toBe("passport v2 (overwritten)");

    const rolled = await restoreObject(target, key, { versionId: v1! });
    expect(rolled.plan).toMatchObject({ action: "restore", from: { versionId: v1 } });
    expect((await getBytes(name, key)).toString()).toBe("passport v1");

    const history = await objectVersions(target, key);
    // v1, v2, the delete marker, the undelete copy and the rollback copy: nothing was destroyed.
    expect(history).toHaveLength(5);
    expect(history.filter((v) => v.deleteMarker)).toHaveLength(1);
    expect((await getBytes(name, key, v1)).toString()).toBe("passport v1");
    expect(history[0]).toMatchObject({ isLatest: true, versionId: rolled.newVersionId });
    expect(await restoreObject(target, key, { versionId: v1! })).toMatchObject({
      plan: { action: "none" },
    });
  });
});

describe("bucket restore as of a time", () => {
  it("rolls a prefix back: new keys re-deleted, changed ones restored, untouched ones left alone", async () => {
    const name = await bucket("lb-rollback", true);
    const target = testTarget(name);
    await put(name, "p/changed", "changed: before");
    await put(name, "p/deleted", "deleted: before");
    const untouched = await put(name, "p/untouched", "untouched");
    await put(name, "q/outside", "outside: before");
    await pause();
    const T = new Date();
    await pause();
    await put(name, "p/changed", "changed: AFTER");
    await s3().send(new DeleteObjectCommand({ Bucket: name, Key: "p/deleted" }));
    await put(name, "p/created", "created after T");
    await put(name, "q/outside", "outside: AFTER");

    const plan = await restoreBucket(target, { at: T, prefix: "p/", dryRun: true });
    expect(plan.restore.map((r) => r.key)).toEqual(["p/changed", "p/deleted"]);
    expect(plan.delete.map((r) => r.key)).toEqual(["p/created"]);
    expect(plan).toMatchObject({ unchanged: 1, absent: 0, restored: 0, deleted: 0 });
    expect((await getBytes(name, "p/changed")).toString()).toBe("changed: AFTER"); // dry run

    const done = await restoreBucket(target, { at: T, prefix: "p/" });
    expect(done).toMatchObject({ restored: 2, deleted: 1, failed: [] });
    expect(await getBytes(name, "p/changed")).toEqual(Buffer.from("changed: before"));
    expect(await getBytes(name, "p/deleted")).toEqual(Buffer.from("deleted: before"));
    expect(await head(name, "p/created")).toBeUndefined();
    const untouchedVersions = await objectVersions(target, "p/untouched");
    expect(untouchedVersions.map((v) => v.versionId)).toEqual([untouched]); // not rewritten
    expect((await getBytes(name, "q/outside")).toString()).toBe("outside: AFTER");
    expect((await objectVersions(target, "p/created")).map((v) => v.deleteMarker)).toEqual([
      true,
      false,
    ]);

    const again = await restoreBucket(target, { at: T, prefix: "p/", dryRun: true });
    expect(again).toMatchObject({ restore: [], delete: [], unchanged: 3, absent: 1 });
  });
});

describe("bad input: clear errors, nothing half-done", () => {
  it("an unknown bucket is STORAGE_NO_BUCKET everywhere", async () => {
    const target = testTarget(testBucketName("lb-missing"));
    for (const run of [
      () => bucketStatus(target),
      () => protectBucket(target),
      () => restoreBucket(target, { at: new Date() }),
      () => restoreObject(target, "k", {}),
    ]) {
      await expect(run()).rejects.toMatchObject({ code: "STORAGE_NO_BUCKET" });
    }
  });

  it("refuses buckets without versioning, or with it suspended", async () => {
    const name = await bucket("lb-unversioned");
    await put(name, "k", "only copy");
    const target = testTarget(name);
    await expect(restoreBucket(target, { at: new Date() })).rejects.toMatchObject({
      code: "BUCKET_NOT_VERSIONED",
    });
    await s3().send(
      new PutBucketVersioningCommand({
        Bucket: name,
        VersioningConfiguration: { Status: "Enabled" },
      }),
    );
    await s3().send(
      new PutBucketVersioningCommand({
        Bucket: name,
        VersioningConfiguration: { Status: "Suspended" },
      }),
    );
    await expect(restoreObject(target, "k", {})).rejects.toMatchObject({
      code: "BUCKET_NOT_VERSIONED",
      message: expect.stringMatching(/suspended/),
    });
  });

  it("refuses a time before the bucket's history and names the earliest restorable time", async () => {
    const name = await bucket("lb-early", true);
    await put(name, "k", "v1");
    const target = testTarget(name);
    const error = await restoreBucket(target, { at: new Date("2001-01-01T00:00:00Z") }).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({
      code: "BUCKET_HISTORY_TOO_SHORT",
      data: { earliest: expect.any(String) },
    });
    expect((error as Error).message).toMatch(/earliest restorable time is 20/);
    expect((await objectVersions(target, "k")).length).toBe(1);
  });

  it("reports permission problems and what (if anything) was changed", async () => {
    const name = await bucket("lb-denied");
    const deny = (actions: string[]) =>
      s3().send(
        new PutBucketPolicyCommand({
          Bucket: name,
          Policy: JSON.stringify({
            Version: "2012-10-17",
            Statement: [
              {
                Effect: "Deny",
                Principal: "*",
                Action: actions,
                Resource: [`arn:aws:s3:::${name}`],
              },
            ],
          }),
        }),
      );
    const target = testTarget(name);
    await deny(["s3:PutBucketVersioning", "s3:PutLifecycleConfiguration"]);
    await expect(protectBucket(target)).rejects.toMatchObject({ code: "STORAGE_DENIED" });
    expect(await getVersioning(target)).toBe("Off"); // nothing was changed

    await deny(["s3:PutLifecycleConfiguration"]);
    const error = await protectBucket(target).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "STORAGE_DENIED",
      data: { versioningEnabled: true, lifecycleSet: false },
    });
    expect((error as Error).message).toMatch(
      /versioning WAS enabled; the lifecycle rule was NOT set/,
    );
  });
});

describe("CLI", () => {
  it("prints --json results and exits with the error's status", async () => {
    const name = await bucket("lb-cli", true);
    const dr = await bucket("lb-cli-dr", true);
    await put(name, "onboarding/s9/passport.pdf", "v1");
    const c = s3TestConfig();
    const dir = await tempDir();
    const file = path.join(dir, "lifeboat.yaml");
    await writeFile(
      file,
      `repositories: { local: { type: local, path: ${JSON.stringify(path.join(dir, "repo"))} } }
encryption: { disabled: true }
buckets:
  documents:
    bucket: ${name}
    endpoint: ${c.endpoint}
    region: ${c.region}
    credentials: { accessKeyId: "\${TEST_KEY}", secretAccessKey: "\${TEST_SECRET}" }
    secondary: { bucket: ${dr} }
`,
    );
    vi.stubEnv("TEST_KEY", c.accessKeyId);
    vi.stubEnv("TEST_SECRET", c.secretAccessKey);
    const output: string[] = [];
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      output.push(String(chunk));
      return true;
    });
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const run = async (...args: string[]) => {
        output.length = 0;
        process.exitCode = undefined;
        const code = await main(["node", "lifeboat", "--config", file, "--json", ...args]);
        return { code, json: JSON.parse(output.join("")) as Record<string, unknown> };
      };
      const versions = await run("object", "versions", "documents", "onboarding/s9/passport.pdf");
      expect(versions.code).toBe(0);
      expect(versions.json).toMatchObject({
        key: "onboarding/s9/passport.pdf",
        versions: [{ isLatest: true }],
      });
      const status = await run("bucket", "status", name);
      expect(status.json).toMatchObject({ bucket: name, versioning: "Enabled", objects: 1 });
      expect(await run("bucket", "protect", "documents", "--dry-run")).toMatchObject({
        code: 0,
        json: { dryRun: true, changes: 1, lifecycle: { action: "add" } },
      });
      expect(await run("repo", "init")).toMatchObject({ code: 0 });
      const snapshot = await run("bucket", "snapshot", "documents");
      expect(snapshot).toMatchObject({ code: 0, json: { ok: true, details: { keys: 1 } } });
      const sync = await run("bucket", "sync", "documents");
      expect(sync).toMatchObject({
        code: 0,
        json: { copied: 1, settings: { id: snapshot.json.id, changed: false } },
      });
      const refused = await run("bucket", "recover", "documents", "--dry-run");
      expect(refused).toMatchObject({ code: 2, json: { error: { code: "USAGE" } } });
      const early = await run("bucket", "restore", "documents", "--at", "2001-01-01T00:00:00Z");
      expect(early.json).toMatchObject({ ok: false, error: { code: "BUCKET_HISTORY_TOO_SHORT" } });
      expect(early.code).toBe(1);
      expect(early.json).toMatchObject({ ok: false, error: { code: "BUCKET_HISTORY_TOO_SHORT" } });
    } finally {
      spy.mockRestore();
      stderr.mockRestore();
      vi.unstubAllEnvs();
      process.exitCode = undefined;
    }
  });
});

import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../src/config/load.js";
import {
  parseTime,
  resolveBucket,
  resolveSecondary,
  sameService,
  type BucketTarget,
} from "../../src/objects/client.js";
import type { ListingEntry, VersionEntry } from "../../src/objects/list.js";
import { planProtect, protectBucket, PROTECT_RULE_ID } from "../../src/objects/protect.js";
import { historyLimit, planBucketRestore } from "../../src/objects/restore.js";
import { normaliseLifecycleRules } from "../../src/objects/settings.js";
import { keysNeedingMetadata, planSync, sameContent } from "../../src/objects/sync.js";
import { planObjectRestore } from "../../src/objects/versions.js";

const entry = (key: string, size: number, etag: string, extra: Partial<ListingEntry> = {}) => ({
  key,
  size,
  etag,
  lastModified: "2026-01-01T00:00:00.000Z",
  ...extra,
});

describe("planSync", () => {
  it("copies new and changed objects, skips identical ones, keeps destination-only ones", () => {
    const source = [
      entry("a", 1, "e1"),
      entry("b", 2, "e2"),
      entry("c", 3, "e3"),
      entry("d", 4, "e4"),
    ];
    const destination = [
      entry("a", 1, "e1"),
      entry("b", 2, "other"),
      entry("c", 9, "e3"),
      entry("z", 5, "e5"),
    ];
    const plan = planSync(source, destination);
    expect(plan.copy.map((c) => [c.key, c.reason])).toEqual([
      ["b", "changed"],
      ["c", "changed"],
      ["d", "new"],
    ]);
    expect(plan).toMatchObject({ skipped: 1, skippedBytes: 1, copyBytes: 9, kept: 1, delete: [] });
  });

  it("deletes destination-only objects only when asked", () => {
    const plan = planSync([entry("a", 1, "e1")], [entry("a", 1, "e1"), entry("z", 5, "e5")], {
      propagateDeletes: true,
    });
    expect(plan.delete.map((d) => d.key)).toEqual(["z"]);
    expect(plan.kept).toBe(0);
  });

  it("recognises copies by recorded sha256 or source ETag when ETags differ (multipart)", () => {
    const s = entry("k", 10, "abc-2");
    expect(sameContent(s, entry("k", 10, "def-3"))).toBe(false);
    expect(sameContent(s, entry("k", 10, "def-3", { sourceEtag: "abc-2" }))).toBe(true);
    expect(sameContent(s, entry("k", 10, "def-3", { sourceEtag: "old-2" }))).toBe(false);
    expect(sameContent({ ...s, sha256: "x" }, entry("k", 10, "d", { sha256: "x" }))).toBe(true);
    expect(sameContent({ ...s, sha256: "x" }, entry("k", 10, "d", { sha256: "y" }))).toBe(false);
    expect(sameContent(s, entry("k", 11, "abc-2"))).toBe(false);
  });

  it("asks for metadata only where the listing cannot decide", () => {
    const source = [
      entry("a", 1, "e1"),
      entry("b", 2, "e2"),
      entry("c", 3, "e3"),
      entry("d", 4, "e4"),
    ];
    const destination = [entry("a", 1, "e1"), entry("b", 2, "x"), entry("c", 4, "x")];
    expect(keysNeedingMetadata(source, destination)).toEqual(["b"]);
  });
});

const T0 = Date.parse("2026-03-01T10:00:00.000Z");
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();
function version(
  key: string,
  id: string,
  seconds: number,
  etag: string,
  extra: Partial<VersionEntry> = {},
): VersionEntry {
  return {
    key,
    versionId: id,
    isLatest: false,
    deleteMarker: false,
    lastModified: at(seconds),
    size: etag.length,
    etag,
    ...extra,
  };
}
const marker = (key: string, id: string, seconds: number, latest = false): VersionEntry => ({
  ...version(key, id, seconds, ""),
  size: 0,
  deleteMarker: true,
  isLatest: latest,
});

describe("planBucketRestore", () => {
  const T = new Date(T0 + 100_000);
  const versions: VersionEntry[] = [
    // untouched since before T
    version("p/same", "s1", 10, "aaa", { isLatest: true }),
    // overwritten after T
    version("p/changed", "c1", 10, "old"),
    version("p/changed", "c2", 200, "new!", { isLatest: true }),
    // created after T
    version("p/created", "n1", 200, "fresh", { isLatest: true }),
    // deleted after T
    version("p/deleted", "d1", 10, "gone"),
    marker("p/deleted", "dm", 200, true),
    // deleted before T and still deleted
    version("p/dead", "x1", 5, "dead"),
    marker("p/dead", "xm", 50, true),
    // overwritten after T with identical content
    version("p/rewritten", "r1", 10, "same"),
    version("p/rewritten", "r2", 300, "same", { isLatest: true }),
    // outside the prefix
    version("q/other", "o1", 200, "zzz", { isLatest: true }),
  ];

  it("restores changed and deleted keys, re-deletes created ones, leaves the rest alone", () => {
    const plan = planBucketRestore(versions, T, "p/");
    expect(plan.restore.map((r) => [r.key, r.from?.versionId])).toEqual([
      ["p/changed", "c1"],
      ["p/deleted", "d1"],
    ]);
    expect(plan.delete.map((d) => d.key)).toEqual(["p/created"]);
    expect(plan.unchanged).toBe(2); // p/same, p/rewritten (same content: not rewritten)
    expect(plan.absent).toBe(1); // p/dead
    expect(plan.missing).toEqual([]);
    expect(plan.restoreBytes).toBe(3 + 4);
  });

  it("uses a snapshot as the state at its time, with newer versions up to T on top", () => {
    const expired = versions.filter((v) => v.versionId !== "c1" && v.versionId !== "d1");
    const baseline = {
      id: "snap",
      takenAt: new Date(T0 + 20_000),
      lines: [
        {
          key: "p/changed",
          versionId: "c1",
          size: 3,
          etag: "old",
          lastModified: at(10),
          isLatest: true as const,
        },
        {
          key: "p/deleted",
          versionId: "d1",
          size: 4,
          etag: "gone",
          lastModified: at(10),
          isLatest: true as const,
        },
        {
          key: "p/same",
          versionId: "s1",
          size: 3,
          etag: "aaa",
          lastModified: at(10),
          isLatest: true as const,
        },
      ],
    };
    const plan = planBucketRestore(expired, T, "p/", baseline);
    // c1 and d1 have expired: their content is reported missing, not silently skipped.
    expect(plan.missing.map((m) => m.key)).toEqual(["p/changed", "p/deleted"]);
    expect(plan.delete.map((d) => d.key)).toEqual(["p/created", "p/rewritten"]);
    expect(plan.snapshot?.id).toBe("snap");
  });

  it("finds the content of an expired version in another version with the same ETag", () => {
    const vs = [
      version("k", "v1", 10, "abc"),
      version("k", "v2", 200, "xyz"),
      version("k", "v3", 300, "abc", { isLatest: false }),
      version("k", "v4", 400, "new", { isLatest: true }),
    ];
    const baseline = {
      id: "s",
      takenAt: new Date(T0 + 20_000),
      lines: [
        {
          key: "k",
          versionId: "gone",
          size: 3,
          etag: "abc",
          lastModified: at(10),
          isLatest: true as const,
        },
      ],
    };
    const plan = planBucketRestore(
      vs.filter((v) => v.versionId !== "v1"),
      new Date(T0 + 50_000),
      "",
      baseline,
    );
    expect(plan.restore.map((r) => r.from?.versionId)).toEqual(["v3"]);
  });
});

describe("historyLimit", () => {
  const vs = [
    version("a", "1", 100, "x", { isLatest: true }),
    version("b", "2", 200, "y", { isLatest: true }),
  ];
  it("refuses times before the oldest version and names the earliest restorable time", () => {
    expect(historyLimit(vs, new Date(T0 + 50_000))?.earliest).toBe(at(100));
    expect(historyLimit(vs, new Date(T0 + 150_000))).toBeUndefined();
  });
  it("accounts for noncurrent expiry and unversioned writes", () => {
    const now = new Date(T0 + 10 * 86_400_000);
    expect(historyLimit(vs, new Date(T0 + 150_000), { noncurrentDays: 5, now })?.reason).toMatch(
      /expire after 5/,
    );
    const withNull = [...vs, version("c", "null", 300, "z", { isLatest: true })];
    expect(historyLimit(withNull, new Date(T0 + 250_000))?.reason).toMatch(/without versioning/);
  });
});

describe("planObjectRestore", () => {
  const vs = [
    version("k", "v1", 10, "one"),
    version("k", "v2", 20, "two"),
    marker("k", "m", 30, true),
  ];
  it("undeletes to the newest real version", () => {
    expect(planObjectRestore("k", vs)).toMatchObject({
      action: "restore",
      from: { versionId: "v2" },
    });
  });
  it("restores a chosen version or the state at a time", () => {
    expect(planObjectRestore("k", vs, { versionId: "v1" })).toMatchObject({
      from: { versionId: "v1" },
    });
    expect(planObjectRestore("k", vs, { at: new Date(T0 + 15_000) })).toMatchObject({
      from: { versionId: "v1" },
    });
  });
  it("rejects delete markers, unknown versions and times before the first version", () => {
    expect(() => planObjectRestore("k", vs, { versionId: "m" })).toThrow(/delete marker/);
    expect(() => planObjectRestore("k", vs, { versionId: "nope" })).toThrow(/no version nope/);
    expect(() => planObjectRestore("k", vs, { at: new Date(T0) })).toThrow(
      expect.objectContaining({ code: "BUCKET_HISTORY_TOO_SHORT" }),
    );
  });
  it("does nothing when the object is current and not deleted", () => {
    const live = [version("k", "v1", 10, "one", { isLatest: true })];
    expect(planObjectRestore("k", live)).toMatchObject({ action: "none" });
    expect(planObjectRestore("k", live, { versionId: "v1" })).toMatchObject({ action: "none" });
  });
});

describe("planProtect", () => {
  it("adds lifeboat's rule next to existing ones and converts legacy prefixes", () => {
    const existing = [
      { ID: "logs", Status: "Enabled", Prefix: "logs/", Expiration: { Days: 30 } },
    ] as never[];
    const plan = planProtect("b", "Off", existing, 90);
    expect(plan.changes).toBe(2);
    expect(plan.lifecycle.action).toBe("add");
    expect(plan.lifecycle.rules).toEqual([
      { ID: "logs", Status: "Enabled", Filter: { Prefix: "logs/" }, Expiration: { Days: 30 } },
      expect.objectContaining({
        ID: PROTECT_RULE_ID,
        NoncurrentVersionExpiration: { NoncurrentDays: 90 },
      }),
    ]);
  });
  it("is a no-op when already protected, an update when the days differ", () => {
    const ours = planProtect("b", "Off", [], 90).lifecycle.rules;
    expect(planProtect("b", "Enabled", ours, 90).changes).toBe(0);
    expect(planProtect("b", "Enabled", ours, 30).lifecycle.action).toBe("update");
    expect(normaliseLifecycleRules(ours)).toEqual(ours);
  });
});

describe("bucket configuration and references", () => {
  const config = parseConfigText(
    `
repositories: { l: { type: local, path: /tmp/x } }
encryption: { disabled: true }
buckets:
  documents:
    bucket: acme-docs
    endpoint: http://127.0.0.1:7480
    credentials: { accessKeyId: "\${K}", secretAccessKey: "\${S}" }
    secondary: { bucket: acme-docs-dr, region: eu-west-1 }
`,
    "lifeboat.yaml",
    { K: "key", S: "secret" },
  );

  it("applies defaults and lets the secondary inherit the primary's connection", () => {
    const documents = config.buckets.documents!;
    expect(documents).toMatchObject({
      region: "eu-west-2",
      noncurrentVersionDays: 90,
      syncConcurrency: 16,
    });
    const primary = resolveBucket(config, "documents");
    const secondary = resolveSecondary(config, primary);
    expect(secondary.bucket).toBe("acme-docs-dr");
    expect(secondary.connection).toMatchObject({
      region: "eu-west-1",
      endpoint: "http://127.0.0.1:7480",
    });
    expect(sameService(primary, secondary)).toBe(true);
    expect(resolveBucket(config, "acme-docs").name).toBe("documents");
    // A raw name borrows the first configured bucket's connection.
    expect(resolveBucket(config, "other-bucket").connection.credentials?.accessKeyId).toBe("key");
    expect(() => resolveBucket(config, "Not_A_Bucket")).toThrow(/neither a configured bucket/);
  });

  it("parses times: ISO (UTC by default) and durations ago; refuses the future", () => {
    const now = new Date("2026-05-01T12:00:00Z");
    expect(parseTime("2026-05-01 10:00", now).toISOString()).toBe("2026-05-01T10:00:00.000Z");
    expect(parseTime("2026-05-01T10:00:00+01:00", now).toISOString()).toBe(
      "2026-05-01T09:00:00.000Z",
    );
    expect(parseTime("90m ago", now).toISOString()).toBe("2026-05-01T10:30:00.000Z");
    expect(() => parseTime("2027-01-01T00:00:00Z", now)).toThrow(/future/);
    expect(() => parseTime("yesterday", now)).toThrow(/not a time/);
  });
});

describe("protect on a service without versioning", () => {
  /** A target whose client answers from a table of command names. */
  function fakeTarget(answers: Record<string, () => unknown>) {
    const sent: string[] = [];
    const s3 = {
      send: async (command: { constructor: { name: string } }) => {
        const name = command.constructor.name;
        sent.push(name);
        const answer = answers[name];
        if (!answer) throw new Error(`unexpected ${name}`);
        return answer();
      },
    };
    const target = {
      name: "b",
      bucket: "b",
      connection: { region: "x" },
      location: "s3://b",
      s3,
    } as unknown as BucketTarget;
    return { target, sent };
  }
  const notImplemented = () => {
    throw Object.assign(new Error("NotImplemented"), {
      name: "NotImplemented",
      $metadata: { httpStatusCode: 501 },
    });
  };
  const noLifecycle = () => {
    throw Object.assign(new Error("none"), { name: "NoSuchLifecycleConfiguration" });
  };

  it("fails clearly and sets no lifecycle rule when versioning is not implemented", async () => {
    const { target, sent } = fakeTarget({
      GetBucketVersioningCommand: () => ({}),
      GetBucketLifecycleConfigurationCommand: noLifecycle,
      PutBucketVersioningCommand: notImplemented,
    });
    await expect(protectBucket(target)).rejects.toMatchObject({
      code: "BUCKET_NOT_VERSIONED",
      message: expect.stringMatching(/does not support versioning/),
    });
    expect(sent).not.toContain("PutBucketLifecycleConfigurationCommand");
  });

  it("fails when the service accepts versioning but does not turn it on", async () => {
    const { target, sent } = fakeTarget({
      GetBucketVersioningCommand: () => ({}),
      GetBucketLifecycleConfigurationCommand: noLifecycle,
      PutBucketVersioningCommand: () => ({}),
    });
    await expect(protectBucket(target)).rejects.toMatchObject({ code: "BUCKET_NOT_VERSIONED" });
    expect(sent).not.toContain("PutBucketLifecycleConfigurationCommand");
  });
});

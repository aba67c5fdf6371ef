import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  DeleteBucketLifecycleCommand,
  PutBucketVersioningCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CheckResult } from "../../src/checks/types.js";
import { parseConfigText } from "../../src/config/load.js";
import type { LifeboatConfig } from "../../src/config/schema.js";
import { runCheck } from "../../src/engine/check.js";
import { initRepositories } from "../../src/engine/repo-admin.js";
import { openRepositories } from "../../src/engine/repositories.js";
import { appendRun, HISTORY_PREFIX } from "../../src/repository/history.js";
import type { Repository } from "../../src/repository/repository.js";
import { generateIdentity } from "../../src/stream/age/keys.js";
import { lifeboat, ok, type Run } from "../helpers/lifeboat.js";
import { fabricateDbBackup, putBack, takeAway, type SavedObject } from "../helpers/monitoring.js";
import {
  createTestBucket,
  deleteTestBucket,
  makeTestS3Client,
  s3TestConfig,
} from "../helpers/s3.js";
import { EVENTS_TABLE, freePort, startWalBed, type WalBed } from "../helpers/wal.js";

/**
 * `lifeboat check` acceptance: every check passes on a healthy setup, and each one fails for its
 * own reason when exactly that thing is broken (and passes again once it is repaired).
 * Backups are fabricated on past days (runBackup with a clock), so the engine runs with a `now`
 * ten days after the repositories were created; the CLI part uses the real clock.
 */

const DAY = 86_400_000;
const HOUR = 3_600_000;
/** Ten days ahead at noon UTC: the repositories exist for every day the checks look at. */
const NOW = new Date(Math.floor(Date.now() / DAY) * DAY + 10 * DAY + 12 * HOUR);
const utcDay = (d: Date) => d.toISOString().slice(0, 10);
const s3 = s3TestConfig();

let dir: string;
let repoBucket: string;
let assetsBucket: string;
let configFile: string;
let config: LifeboatConfig;
let identity: { identity: string; recipient: string };
const backups: Record<string, string> = {};
let client: S3Client;

function configText(extra = ""): string {
  const credentials = `{ accessKeyId: ${s3.accessKeyId}, secretAccessKey: ${s3.secretAccessKey} }`;
  return `
repositories:
  local: { type: local, path: ${path.join(dir, "local")} }
  offsite:
    type: s3
    endpoint: ${s3.endpoint}
    region: ${s3.region}
    bucket: ${repoBucket}
    prefix: lifeboat/
    pathStyle: true
    credentials: ${credentials}
${extra}
storage: { retryAttempts: 1, retryBaseDelayMs: 10 }
encryption: { recipients: [${identity.recipient}], identityFile: ${path.join(dir, "identity.txt")} }
databases:
  app: { port: 1, database: app }
buckets:
  assets:
    bucket: ${assetsBucket}
    endpoint: ${s3.endpoint}
    region: ${s3.region}
    pathStyle: true
    credentials: ${credentials}
objectives: { rpo: 48h }
monitoring: { backupDays: 3, sizeHistory: 2 }
notifications: { stateFile: ${path.join(dir, "alerts.json")} }
`;
}

const parse = (text: string) => parseConfigText(text, "check-test.yaml", {});
const cli = (args: string[], file = configFile): Promise<Run> =>
  lifeboat(dir, ["--config", file, ...args], { XDG_STATE_HOME: path.join(dir, "state") });

async function repositories(): Promise<Repository[]> {
  return openRepositories(config, []);
}
const repo = async (name: string) => (await repositories()).find((r) => r.name === name)!;

async function check(
  options: Partial<Parameters<typeof runCheck>[1]> = {},
  withConfig = config,
): Promise<CheckResult[]> {
  const run = await runCheck(withConfig, { now: NOW, notify: false, ...options });
  return run.results;
}

/** "id subject" of every result that does not pass. */
const failing = (results: CheckResult[]) =>
  results.filter((r) => r.status !== "pass").map((r) => `${r.id} ${r.subject ?? ""}`.trim());
const find = (results: CheckResult[], id: string, subject?: string) =>
  results.find((r) => r.id === id && (subject === undefined || r.subject === subject));

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "lifeboat-check-"));
  [repoBucket, assetsBucket] = await Promise.all([
    createTestBucket("check-repo"),
    createTestBucket("check-assets"),
  ]);
  client = makeTestS3Client();
  identity = generateIdentity();
  await writeFile(path.join(dir, "identity.txt"), `${identity.identity}\n`, { mode: 0o600 });
  configFile = path.join(dir, "lifeboat.yaml");
  await writeFile(configFile, configText());
  config = parse(configText());
  const init = await initRepositories(config, []);
  expect(init.map((r) => r.status)).toEqual(["created", "created"]);

  const both = await repositories();
  // A backup today and on each of the four days before, 1 h before NOW's time of day.
  for (let day = 0; day <= 4; day++) {
    backups[`day${day}`] = await fabricateDbBackup(
      config,
      both,
      new Date(NOW.getTime() - day * DAY - HOUR),
      4096,
    );
  }
  for (const r of both)
    await appendRun(r, {
      operation: "restore-test",
      result: "ok",
      startedAt: new Date(NOW.getTime() - 2 * DAY - 60_000),
      finishedAt: new Date(NOW.getTime() - 2 * DAY),
      source: "app",
      backupId: backups.day2!,
      details: { restoreMs: 42_000 },
    });
  ok(await cli(["bucket", "protect", "assets"]));
});

afterAll(async () => {
  await Promise.all([repoBucket, assetsBucket].map((b) => b && deleteTestBucket(b)));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("check (engine): healthy, then each thing broken on its own", () => {
  it("passes every check on a healthy setup", async () => {
    const results = await check();
    expect(failing(results)).toEqual([]);
    expect([...new Set(results.map((r) => r.id))].sort()).toEqual([
      "backups.daily",
      "backups.fresh",
      "backups.integrity",
      "backups.offsite",
      "backups.size",
      "buckets.protection",
      "config.sanity",
      "objectives.rpo",
      "restore-test.recent",
    ]);
    // One result per repository (and database) where that is the unit.
    expect(results.filter((r) => r.id === "backups.daily").map((r) => r.subject)).toEqual([
      "local/app",
      "offsite/app",
    ]);
    expect(find(results, "backups.integrity", "offsite")?.message).toMatch(
      /3 recent backup\(s\) intact \(quick check\)/,
    );
  });

  it("backups.daily: yesterday's backup deleted", async () => {
    const both = await repositories();
    const saved: [Repository, SavedObject[]][] = [];
    for (const r of both) saved.push([r, await takeAway(r, backups.day1!)]);
    try {
      const results = await check();
      expect(failing(results)).toEqual(["backups.daily local/app", "backups.daily offsite/app"]);
      const yesterday = utcDay(new Date(NOW.getTime() - DAY));
      const daily = find(results, "backups.daily", "local/app")!;
      expect(daily.details).toEqual({ missing: [yesterday] });
      expect(daily.message).toBe(`no backup on 1 of the last 3 days: ${yesterday}`);
      expect(daily.hint).toMatch(/scheduler/);
    } finally {
      for (const [r, objects] of saved) await putBack(r, objects);
    }
    expect(failing(await check())).toEqual([]);
  });

  it("backups.fresh: the newest backup is older than interval + grace", async () => {
    // 30 h later nothing new arrived: the newest (from 1 h before NOW) is 31 h old, limit 30 h.
    const results = await check({ now: new Date(NOW.getTime() + 30 * HOUR) });
    expect(failing(results)).toEqual(["backups.fresh local/app", "backups.fresh offsite/app"]);
    expect(find(results, "backups.fresh", "local/app")!.message).toBe(
      `newest backup ${backups.day0} is 31.0h old (limit 30.0h)`,
    );
    expect(failing(await check({ now: new Date(NOW.getTime() + 28 * HOUR) }))).toEqual([]);
  });

  it("backups.integrity: a truncated object fails the quick check; a flipped byte only the deep one", async () => {
    const local = await repo("local");
    const manifest = await local.readManifest(backups.day0!);
    const file = path.join(dir, "local", manifest.objects[0]!.key);
    const original = await readFile(file);
    try {
      await writeFile(file, original.subarray(0, original.length - 10));
      let results = await check();
      expect(failing(results)).toEqual(["backups.integrity local"]);
      expect(find(results, "backups.integrity", "local")!.message).toBe(
        `1 damaged: ${backups.day0} (dump.pgcustom: OBJECT_TRUNCATED)`,
      );

      const flipped = Buffer.from(original);
      flipped[flipped.length >> 1]! ^= 0x01;
      await writeFile(file, flipped);
      expect(failing(await check())).toEqual([]); // same size: the quick check cannot tell
      results = await check({ deep: true });
      expect(failing(results)).toEqual(["backups.integrity local"]);
      expect(find(results, "backups.integrity", "local")!.message).toBe(
        `1 damaged: ${backups.day0} (dump.pgcustom: OBJECT_CORRUPT)`,
      );
      expect(find(results, "backups.integrity", "offsite")!.message).toMatch(
        /intact \(stored check\)/,
      );
    } finally {
      await writeFile(file, original);
    }
    expect(failing(await check({ deep: true }))).toEqual([]);
  });

  it("backups.offsite: the offsite copy of today's backup deleted", async () => {
    const offsite = await repo("offsite");
    const saved = await takeAway(offsite, backups.day0!);
    try {
      const results = await check();
      expect(failing(results)).toEqual(["backups.offsite offsite"]);
      expect(find(results, "backups.offsite", "offsite")!.message).toBe(
        `${backups.day0} missing (present in "local")`,
      );
      expect(find(results, "backups.offsite", "local")!.status).toBe("pass");
    } finally {
      await putBack(offsite, saved);
    }
    expect(failing(await check())).toEqual([]);
  });

  it("backups.size: a shrunk dump fails, a much larger one warns", async () => {
    const both = await repositories();
    const shrunk = await fabricateDbBackup(config, both, new Date(NOW.getTime() - HOUR / 2), 100);
    try {
      const results = await check();
      expect(failing(results)).toEqual(["backups.size local/app", "backups.size offsite/app"]);
      const size = find(results, "backups.size", "local/app")!;
      expect(size.status).toBe("fail");
      expect(size.message).toBe("newest backup is -98% versus the median of the previous 2");
      expect(size.details).toEqual({ backupId: shrunk, bytes: 100 });
    } finally {
      for (const r of both) await takeAway(r, shrunk);
    }
    const grown = await fabricateDbBackup(config, both, new Date(NOW.getTime() - HOUR / 2), 20_000);
    try {
      const results = await check();
      expect(results.filter((r) => r.status === "warn").map((r) => r.subject)).toEqual([
        "local/app",
        "offsite/app",
      ]);
      expect(find(results, "backups.size", "local/app")!.message).toMatch(
        /^newest backup is \+388%/,
      );
      expect(failing(results)).toEqual(["backups.size local/app", "backups.size offsite/app"]);
    } finally {
      for (const r of both) await takeAway(r, grown);
    }
    expect(failing(await check())).toEqual([]);
  });

  it("restore-test.recent: the last restore test failed, or is too old", async () => {
    const local = await repo("local");
    const record = await appendRun(local, {
      operation: "restore-test",
      result: "failed",
      startedAt: new Date(NOW.getTime() - 2 * HOUR),
      finishedAt: new Date(NOW.getTime() - HOUR),
      source: "app",
      backupId: backups.day0!,
      details: { restoreMs: 1000 },
    });
    const key = `${HISTORY_PREFIX}${record.finishedAt.slice(0, 7)}/${record.id}.json`;
    try {
      const results = await check();
      expect(failing(results)).toEqual(["restore-test.recent app"]);
      expect(find(results, "restore-test.recent")!.message).toBe(
        `the last restore test (${record.finishedAt}, backup ${backups.day0}) failed`,
      );
    } finally {
      await local.storage.delete(key);
    }
    const passed = find(await check(), "restore-test.recent")!;
    expect(passed.message).toBe(
      `last restore test passed 2.0d ago (backup ${backups.day2}, restore 42s)`,
    );
    // 40 days on, the passing test is too old: a warning (fresh backups keep the rest quiet there).
    const late = await check({ now: new Date(NOW.getTime() + 40 * DAY), only: ["restore-test"] });
    expect(late.map((r) => r.status)).toEqual(["warn"]);
  });

  it("buckets.protection: versioning suspended behind lifeboat's back", async () => {
    const versioning = (Status: "Enabled" | "Suspended") =>
      client.send(
        new PutBucketVersioningCommand({
          Bucket: assetsBucket,
          VersioningConfiguration: { Status },
        }),
      );
    await versioning("Suspended");
    try {
      const results = await check();
      expect(failing(results)).toEqual([`buckets.protection assets (${assetsBucket})`]);
      const result = find(results, "buckets.protection")!;
      expect(result.status).toBe("fail");
      expect(result.message).toBe("versioning is Suspended");
      expect(result.hint).toBe("run `lifeboat bucket protect assets`");
    } finally {
      await versioning("Enabled");
    }
    expect(find(await check(), "buckets.protection")!.message).toMatch(
      /^versioning Enabled, \d+ lifecycle rule\(s\)$/,
    );

    // Lifecycle rules removed: versions pile up forever, a warning rather than a failure.
    await client.send(new DeleteBucketLifecycleCommand({ Bucket: assetsBucket }));
    const results = await check();
    expect(failing(results)).toEqual([`buckets.protection assets (${assetsBucket})`]);
    expect(find(results, "buckets.protection")).toMatchObject({
      status: "warn",
      message: "no lifecycle rule for noncurrent versions",
    });
    ok(await cli(["bucket", "protect", "assets"]));
    expect(failing(await check())).toEqual([]);
  });

  it("objectives.rpo: the newest recoverable point is older than the objective", async () => {
    const strict = parse(configText().replace("rpo: 48h", "rpo: 30m"));
    const results = await check({}, strict);
    expect(failing(results)).toEqual(["objectives.rpo app"]);
    expect(find(results, "objectives.rpo")!.message).toBe(
      `newest recoverable point is 1.0h old via backup ${backups.day0} in "local" (objective 30m)`,
    );
  });

  it("config.sanity: an identity file that matches no recipient", async () => {
    const other = generateIdentity();
    const otherFile = path.join(dir, "other-identity.txt");
    await writeFile(otherFile, `${other.identity}\n`, { mode: 0o600 });
    const results = await check(
      {},
      parse(configText().replace(path.join(dir, "identity.txt"), otherFile)),
    );
    expect(failing(results)).toEqual(["config.sanity encryption"]);
    expect(find(results, "config.sanity", "encryption")!.message).toMatch(
      /matches none of the configured recipients/,
    );
  });

  it("an unreachable repository is one failing result; every other result is still reported", async () => {
    const port = await freePort();
    const broken = parse(
      configText(`  broken:
    type: s3
    endpoint: http://127.0.0.1:${port}
    region: ${s3.region}
    bucket: nowhere
    pathStyle: true
    credentials: { accessKeyId: x, secretAccessKey: y }`),
    );
    const healthy = await check();
    const started = Date.now();
    const results = await check({}, broken);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(failing(results)).toEqual(["config.sanity broken"]);
    expect(find(results, "config.sanity", "broken")!.message).toMatch(
      /^repository unreachable: STORAGE_UNREACHABLE: .*127\.0\.0\.1/,
    );
    expect(results.length).toBe(healthy.length + 1);
  });
});

describe("check (CLI): exit codes 0/1/2 and --json", () => {
  let cliDir: string;
  let cliConfig: string;
  let backupId: string;

  beforeAll(async () => {
    cliDir = path.join(dir, "cli");
    cliConfig = path.join(dir, "cli.yaml");
    const text = `
repositories:
  main: { type: local, path: ${cliDir} }
encryption: { recipients: [${identity.recipient}] }
databases:
  app: { port: 1, database: app }
`;
    await writeFile(cliConfig, text);
    const cliParsed = parse(text);
    await initRepositories(cliParsed, []);
    backupId = await fabricateDbBackup(
      cliParsed,
      await openRepositories(cliParsed, []),
      new Date(Date.now() - HOUR),
      2048,
    );
  });

  it("exits 0 when every selected check passes, with one JSON document", async () => {
    const run = await cli(["--json", "check", "backups", "--no-notify"], cliConfig);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as { status: string; results: CheckResult[] };
    expect(report.status).toBe("pass");
    expect(report.results.map((r) => `${r.id} ${r.status}`)).toEqual([
      "backups.daily pass",
      "backups.fresh pass",
      "backups.integrity pass",
      "backups.size pass",
    ]);
  });

  it("exits 1 on warnings (no restore test yet) and says what to do", async () => {
    const run = await cli(["check", "restore-test", "--no-notify"], cliConfig);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toMatch(/warn\s+restore-test\.recent\s+app\s+no restore test has been run/);
    expect(run.stdout).toContain("restore-test.recent (app): run `lifeboat verify --restore-test`");
    expect(run.stdout).toMatch(/overall: warn$/m);
  });

  it("exits 2 on failures, and on a group that matches nothing", async () => {
    const manifest = JSON.parse(
      await readFile(path.join(cliDir, "manifests", `${backupId}.json`), "utf8"),
    ) as { objects: { key: string }[] };
    await rm(path.join(cliDir, manifest.objects[0]!.key));
    const run = await cli(["--json", "check", "backups", "--no-notify"], cliConfig);
    expect(run.code, run.stderr).toBe(2);
    const report = JSON.parse(run.stdout) as { status: string; results: CheckResult[] };
    expect(report.status).toBe("fail");
    expect(find(report.results, "backups.integrity")).toMatchObject({
      status: "fail",
      message: `1 damaged: ${backupId} (dump.pgcustom: OBJECT_MISSING)`,
    });
    const human = await cli(["check", "backups", "--no-notify"], cliConfig);
    expect(human.code).toBe(2);
    expect(human.stdout).toMatch(/FAIL\s+backups\.integrity\s+main/);
    expect(human.stdout).toMatch(/overall: FAIL$/m);

    const none = await cli(["check", "nosuch"], cliConfig);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/error\[USAGE\]: no check matches nosuch/);
  });

  it("an unreachable repository: check reports it and everything else; history lists the rest", async () => {
    const port = await freePort();
    const brokenConfig = path.join(dir, "cli-broken.yaml");
    await writeFile(
      brokenConfig,
      (await readFile(cliConfig, "utf8")).replace(
        "encryption:",
        `  broken: { type: s3, endpoint: "http://127.0.0.1:${port}", bucket: nowhere, pathStyle: true, credentials: { accessKeyId: x, secretAccessKey: y } }
storage: { retryAttempts: 1, retryBaseDelayMs: 10 }
encryption:`,
      ),
    );
    const run = await cli(["--json", "check", "--no-notify"], brokenConfig);
    expect(run.code, run.stderr).toBe(2);
    const report = JSON.parse(run.stdout) as { results: CheckResult[] };
    expect(find(report.results, "config.sanity", "broken")?.message).toMatch(
      /^repository unreachable: STORAGE_UNREACHABLE/,
    );
    expect(find(report.results, "config.sanity", "main")?.status).toBe("pass");
    for (const id of ["backups.daily", "backups.fresh", "restore-test.recent", "objectives.rpo"])
      expect(find(report.results, id), id).toBeDefined();

    const history = await cli(["--json", "history"], brokenConfig);
    expect(history.code, history.stderr).toBe(0);
    const runs = JSON.parse(history.stdout) as { operation: string; repository: string }[];
    expect(runs.some((r) => r.operation === "check" && r.repository === "main")).toBe(true);
    expect(history.stderr).toMatch(
      /warning: repository "broken" is unreachable \(STORAGE_UNREACHABLE: .*\); its runs are not listed/,
    );
  });
});

describe("check wal: archiving stopped", () => {
  let bed: WalBed;

  const walCheck = async (args: string[]) => {
    const run = await lifeboat(
      bed.dir,
      ["--config", bed.configFile, "--json", "check", "wal", "--no-notify", ...args],
      { XDG_STATE_HOME: path.join(bed.dir, "state") },
    );
    return {
      run,
      results: (JSON.parse(run.stdout) as { results: CheckResult[] }).results,
    };
  };
  const archiver = async () => {
    const c = await bed.client();
    try {
      const { rows } = await c.query<{ archived: string | null; failed: string | null }>(
        "SELECT last_archived_time::text AS archived, last_failed_time::text AS failed FROM pg_stat_archiver",
      );
      return rows[0]!;
    } finally {
      await c.end();
    }
  };
  const waitFor = async (what: string, condition: () => Promise<boolean>) => {
    const deadline = Date.now() + 20_000;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(200);
    }
  };
  const sql = async (statements: string[]) => {
    const c = await bed.client();
    try {
      for (const statement of statements) await c.query(statement);
    } finally {
      await c.end();
    }
  };

  beforeAll(async () => {
    bed = await startWalBed({ archiveTimeout: "60s" });
    await sql([EVENTS_TABLE]);
    const base = await lifeboat(bed.dir, ["--config", bed.configFile, "backup", "base"]);
    expect(base.code, base.stderr).toBe(0);
  });
  afterAll(async () => {
    await bed?.destroy();
  });

  it("passes while archiving works, fails once archive_command fails, passes once repaired", async () => {
    // A forced switch seen arriving proves the pipeline and leaves nothing waiting.
    const proven = await walCheck(["--switch", "30s"]);
    expect(proven.run.code, proven.run.stdout + proven.run.stderr).toBe(0);
    expect(proven.results.map((r) => `${r.id} ${r.status}`)).toEqual([
      "wal.settings pass",
      "wal.archiving pass",
      "wal.end-to-end pass",
    ]);

    await sql(["ALTER SYSTEM SET archive_command = '/bin/false'", "SELECT pg_reload_conf()"]);
    try {
      await sleep(300);
      await sql(["INSERT INTO events (note) VALUES ('lost?')", "SELECT pg_switch_wal()"]);
      await waitFor("a failed archive", async () => {
        const state = await archiver();
        return Boolean(state.failed && (!state.archived || state.failed > state.archived));
      });
      const stopped = await walCheck(["--no-switch"]);
      expect(stopped.run.code).toBe(2);
      const archiving = find(stopped.results, "wal.archiving")!;
      expect(archiving.status).toBe("fail");
      expect(archiving.message).toMatch(/^archive_command is failing: [0-9A-F]{24} failed at /);
      expect(archiving.message).not.toMatch(/base backup|gap|spool/);
      expect(find(stopped.results, "wal.settings")).toMatchObject({
        status: "fail",
        message: expect.stringContaining("archive_command is '/bin/false'"),
      });
    } finally {
      await sql(["ALTER SYSTEM RESET archive_command", "SELECT pg_reload_conf()"]);
    }
    await waitFor("the failed segment to be archived", async () => {
      const state = await archiver();
      return Boolean(state.archived && state.failed && state.archived > state.failed);
    });
    const repaired = await walCheck(["--no-switch"]);
    expect(repaired.run.code, repaired.run.stdout).toBe(0);
  });
});

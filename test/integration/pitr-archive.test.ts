import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopPostgres } from "../../src/postgres/cluster.js";
import { makeTestS3Client } from "../helpers/s3.js";
import {
  EVENTS_TABLE,
  freePort,
  startWalBed,
  startWorkload,
  stopSpoolProcesses,
  type WalBed,
} from "../helpers/wal.js";

/**
 * The acceptance scenario for archive mode: a workload commits timestamped rows continuously;
 * base backup; keep writing; note T; keep writing; destroy the cluster (and its spool). PITR to
 * T must hold exactly the rows committed up to T; PITR --latest loses at most archive_timeout
 * plus upload time. A corrupted stored segment stops recovery with a clear error.
 */
describe("point-in-time recovery from archived WAL", () => {
  let bed: WalBed;
  let commits: { id: number; ts: Date }[] = [];
  let target = "";
  let pointTime = "";
  const restored: string[] = [];

  beforeAll(async () => {
    bed = await startWalBed({ archiveTimeout: "1s" });
  });
  afterAll(async () => {
    for (const dir of restored) {
      await stopPostgres(dir, "immediate").catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      await rm(`${dir}.log`, { force: true });
    }
    await bed?.destroy();
  });

  it("takes a base backup while a workload writes, then loses the cluster", async () => {
    const client = await bed.client();
    await client.query(EVENTS_TABLE);
    const workload = startWorkload(client);
    await sleep(1000);
    const backup = await bed.cli(["--json", "backup", "base"]);
    expect(backup.code, backup.stderr).toBe(0);
    const manifest = JSON.parse(backup.stdout).manifest;
    expect(manifest.kind).toBe("base");
    expect(manifest.details.verified.files).toBeGreaterThan(100);
    expect(manifest.details.systemIdentifier).toMatch(/^\d+$/);
    await sleep(2000);
    target = new Date().toISOString();
    await sleep(1000);
    // A named restore point with the workload held, so the rows before it are known exactly.
    await workload.pause();
    const point = await bed.cli(["--json", "restore-point", "create", "before-release"]);
    expect(point.code, point.stderr).toBe(0);
    pointTime = JSON.parse(point.stdout).createdAt;
    workload.resume();
    await sleep(1500);
    await workload.stop();
    const rows = await client.query<{ id: string; ts: Date }>(
      "SELECT id, pg_xact_commit_timestamp(xmin) AS ts FROM events ORDER BY id",
    );
    commits = rows.rows.map((r) => ({ id: Number(r.id), ts: r.ts }));
    await client.end();
    // The disaster: the server dies, and the spool with it (same host).
    await bed.cluster.stop("immediate");
    await stopSpoolProcesses(bed.spoolDir);
    await rm(path.join(bed.spoolDir, "queue"), { recursive: true, force: true });
    expect(commits.length).toBeGreaterThan(100);
  });

  it("restores to time T: every row committed up to T, none after", async () => {
    const dir = path.join(bed.dir, "pitr-time");
    restored.push(dir);
    const port = await freePort();
    const result = await bed.cli([
      "--json",
      "restore",
      "pitr",
      "--target-dir",
      dir,
      "--time",
      target,
      "--port",
      String(port),
    ]);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.recovered.state).toBe("promoted");
    expect(report.validation.ok).toBe(true);
    const ids = await restoredIds(port);
    const expected = commits.filter((c) => c.ts.getTime() <= Date.parse(target)).map((c) => c.id);
    expect(ids).toEqual(expected);
    expect(commits.length).toBeGreaterThan(expected.length);
    console.log(
      `PITR to ${target}: ${ids.length} rows recovered, last commit ${report.recovered.lastTransactionAt} (${report.gapBeforeTargetSeconds} s before T); ${report.fetch.served} WAL files, ${report.fetch.fromCache} prefetched`,
    );
    await stopPostgres(dir, "fast");
  });

  it("restores --latest, losing at most archive_timeout plus upload time", async () => {
    const dir = path.join(bed.dir, "pitr-latest");
    restored.push(dir);
    const port = await freePort();
    const result = await bed.cli([
      "--json",
      "restore",
      "pitr",
      "--target-dir",
      dir,
      "--latest",
      "--port",
      String(port),
    ]);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    const ids = await restoredIds(port);
    // A prefix of the committed rows: no hole, nothing invented.
    expect(ids).toEqual(commits.slice(0, ids.length).map((c) => c.id));
    const lastRecovered = commits[ids.length - 1]!.ts.getTime();
    const lastCommitted = commits[commits.length - 1]!.ts.getTime();
    const windowSeconds = (lastCommitted - lastRecovered) / 1000;
    console.log(
      `archive mode --latest: ${commits.length - ids.length} of ${commits.length} rows lost; measured data-loss window ${windowSeconds.toFixed(3)} s (archive_timeout 1 s)`,
    );
    expect(windowSeconds).toBeLessThan(1 + 4);
    await stopPostgres(dir, "fast");
  });

  it("restores to a named restore point and pauses there for inspection", async () => {
    const dir = path.join(bed.dir, "pitr-name");
    restored.push(dir);
    const port = await freePort();
    const result = await bed.cli([
      "--json",
      "restore",
      "pitr",
      "--target-dir",
      dir,
      "--name",
      "before-release",
      "--pause",
      "--port",
      String(port),
    ]);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.recovered.state).toBe("paused");
    expect(report.target).toMatchObject({ kind: "name", name: "before-release" });
    const ids = await restoredIds(port);
    expect(ids).toEqual(
      commits.filter((c) => c.ts.getTime() < Date.parse(pointTime)).map((c) => c.id),
    );
    const conf = await readFile(path.join(dir, "postgresql.auto.conf"), "utf8");
    expect(conf).toMatch(/restore_command = '\S+ \S+bin\.js --config \S+ wal fetch %f %p'/);
    await stopPostgres(dir, "fast");
  });

  it("follows the new timeline of a restored primary on the next recovery", async () => {
    // Restore to T as the new primary (archiving kept): it promotes onto timeline 2 and archives it.
    const primary = path.join(bed.dir, "new-primary");
    restored.push(primary);
    const port = await freePort();
    const result = await bed.cli([
      "--json",
      "restore",
      "pitr",
      "--target-dir",
      primary,
      "--time",
      target,
      "--port",
      String(port),
      "--archive",
    ]);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    expect(JSON.parse(result.stdout).recovered.timeline).toBe(2);
    const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "app" });
    await client.connect();
    for (let i = 0; i < 20; i++)
      await client.query("INSERT INTO events (note) VALUES ('timeline 2')");
    const { rows } = await client.query<{ segment: string }>(
      "SELECT pg_walfile_name(pg_switch_wal()) AS segment",
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      const fetched = await bed.cli([
        "wal",
        "fetch",
        rows[0]!.segment,
        path.join(bed.dir, "probe"),
      ]);
      if (fetched.code === 0) break;
      expect(Date.now()).toBeLessThan(deadline);
      await sleep(500);
    }
    await client.end();
    await stopPostgres(primary, "fast");

    // From the same base backup (timeline 1), --latest now ends on timeline 2.
    const dir = path.join(bed.dir, "pitr-after-failover");
    restored.push(dir);
    const port2 = await freePort();
    const latest = await bed.cli([
      "--json",
      "restore",
      "pitr",
      "--target-dir",
      dir,
      "--latest",
      "--port",
      String(port2),
    ]);
    expect(latest.code, latest.stderr + latest.stdout).toBe(0);
    expect(JSON.parse(latest.stdout).recovered.timeline).toBe(3);
    const check = new pg.Client({
      host: "127.0.0.1",
      port: port2,
      user: "postgres",
      database: "app",
    });
    await check.connect();
    const notes = await check.query<{ note: string; n: string }>(
      "SELECT note, count(*) AS n FROM events GROUP BY note ORDER BY note",
    );
    await check.end();
    const beforeT = commits.filter((c) => c.ts.getTime() <= Date.parse(target)).length;
    expect(notes.rows.map((r) => [r.note, Number(r.n)])).toEqual([
      ["timeline 2", 20],
      ["w", beforeT],
    ]);
    await stopPostgres(dir, "fast");
  });

  it("stops recovery with a clear error when a stored segment is corrupt", async () => {
    const s3 = makeTestS3Client();
    const listing = await s3.send(
      new ListObjectsV2Command({ Bucket: bed.bucket, Prefix: "wal/00000001/" }),
    );
    const show = JSON.parse((await bed.cli(["--json", "backups", "show", "latest"])).stdout);
    const walStop: string = show.manifest.details.walStop;
    // The segment right after the base backup: every recovery from it reads this one.
    const victim = (listing.Contents ?? [])
      .map((o) => o.Key!)
      .filter(
        (k) =>
          /\/[0-9A-F]{24}-[0-9a-f]{16}\.zst\.age$/.test(k) &&
          path.basename(k).slice(0, 24) > walStop,
      )
      .sort()[0]!;
    const original = Buffer.from(
      await (
        await s3.send(new GetObjectCommand({ Bucket: bed.bucket, Key: victim }))
      ).Body!.transformToByteArray(),
    );
    const damaged = Buffer.from(original);
    damaged[Math.floor(damaged.length / 2)]! ^= 0xff;
    await s3.send(new PutObjectCommand({ Bucket: bed.bucket, Key: victim, Body: damaged }));

    const name = path.basename(victim).split("-")[0]!;
    const fetch = await bed.cli(["wal", "fetch", name, path.join(bed.dir, "fetched")]);
    expect(fetch.code).toBe(255);
    expect(fetch.stderr).toMatch(/error\[OBJECT_CORRUPT\]/);

    const dir = path.join(bed.dir, "pitr-corrupt");
    restored.push(dir);
    const result = await bed.cli(["restore", "pitr", "--target-dir", dir, "--time", target]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/RECOVERY_FAILED/);
    expect(result.stderr).toContain(name);
    expect(result.stderr).toMatch(/OBJECT_CORRUPT/);
  });
});

async function restoredIds(port: number): Promise<number[]> {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "app" });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>("SELECT id FROM events ORDER BY id");
    return rows.map((r) => Number(r.id));
  } finally {
    await client.end();
  }
}

import { copyFile, readdir, readFile, writeFile } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { s3TestConfig } from "../helpers/s3.js";
import { EVENTS_TABLE, freePort, startWalBed, type WalBed } from "../helpers/wal.js";

/**
 * archive_command end to end against a real server and radosgw: setup and check, idempotent
 * pushes, conflicts, and an outage of the repository (through a TCP proxy the test cuts): pushes
 * fail so PostgreSQL keeps its WAL, status and check report the lag, and the backlog drains
 * when the repository comes back.
 */

class CuttableProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  constructor(
    readonly port: number,
    private readonly upstream: { host: string; port: number },
  ) {}

  async open(): Promise<void> {
    this.server = createServer((client) => {
      const remote = connect(this.upstream.port, this.upstream.host);
      for (const s of [client, remote]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => undefined);
      }
      client.pipe(remote).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, "127.0.0.1", resolve));
  }

  async cut(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

describe("WAL archiving through archive_command", () => {
  let bed: WalBed;
  let proxy: CuttableProxy;

  beforeAll(async () => {
    const upstream = new URL(s3TestConfig().endpoint);
    proxy = new CuttableProxy(await freePort(), {
      host: upstream.hostname,
      port: Number(upstream.port),
    });
    await proxy.open();
    bed = await startWalBed({
      endpoint: `http://127.0.0.1:${proxy.port}`,
      spoolMaxSegments: 3,
      archiveTimeout: "60s",
    });
  });
  afterAll(async () => {
    await bed?.destroy();
    await proxy?.cut();
  });

  it("prints the settings, and proves archiving end to end with a forced switch", async () => {
    const setup = await bed.cli(["--json", "setup", "wal"]);
    expect(setup.code, setup.stderr).toBe(0);
    const settings = JSON.parse(setup.stdout).settings as {
      name: string;
      value: string;
      ok: boolean;
    }[];
    expect(settings.map((s) => s.name)).toEqual([
      "wal_level",
      "archive_mode",
      "archive_command",
      "archive_timeout",
      "max_wal_senders",
    ]);
    expect(settings.find((s) => s.name === "archive_command")!.value).toMatch(
      /wal-push\.js %p --spool .* --config /,
    );
    // The test cluster was started with exactly these settings.
    expect(settings.filter((s) => !s.ok)).toEqual([]);

    const client = await bed.client();
    await client.query(EVENTS_TABLE);
    await client.end();
    expect((await bed.cli(["backup", "base"])).code).toBe(0);
    const check = await bed.cli(["--json", "wal", "check", "--timeout", "30s"]);
    const report = JSON.parse(check.stdout);
    const endToEnd = report.checks.find((c: { name: string }) => c.name === "end to end");
    expect(endToEnd, check.stdout).toMatchObject({ ok: true });
    console.log(`check wal: ${endToEnd.detail}`);
    // The same proof inside the checklist (`lifeboat check wal`, src/checks/wal.ts).
    const checklist = await bed.cli(["--json", "check", "wal", "--no-notify"]);
    expect(checklist.code, checklist.stdout + checklist.stderr).toBe(0);
    const ids = JSON.parse(checklist.stdout).results.map((r: { id: string }) => r.id);
    expect(ids).toContain("wal.end-to-end");
  });

  it("accepts the same segment twice and refuses different content under its name", async () => {
    const pgWal = path.join(bed.cluster.dataDir, "pg_wal");
    const segment = (await readdir(pgWal)).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort()[0]!;
    // A name PostgreSQL will never archive itself, so the test cannot collide with the server.
    const copy = path.join(bed.dir, "0000000900000000000000F0");
    await copyFile(path.join(pgWal, segment), copy);
    const first = await bed.cli(["--json", "wal", "push", "--direct", copy]);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout).repositories[0].outcome).toBe("stored");
    const again = await bed.cli(["--json", "wal", "push", "--direct", copy]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).repositories[0].outcome).toBe("exists");

    const bytes = await readFile(copy);
    bytes[100_000]! ^= 0xff;
    await writeFile(copy, bytes);
    const different = await bed.cli(["wal", "push", "--direct", copy]);
    expect(different.code).toBe(3);
    expect(different.stderr).toMatch(
      /error\[WAL_CONFLICT\]: 0000000900000000000000F0 is already archived in "main" with different content/,
    );
  });

  it("fails pushes while the repository is unreachable, reports the lag, and drains when it returns", async () => {
    const client = await bed.client();
    const switchSegment = async () => {
      await client.query("INSERT INTO events (note) VALUES ('x')");
      await client.query("SELECT pg_switch_wal()");
    };
    await proxy.cut();
    for (let i = 0; i < 6; i++) {
      await switchSegment();
      await sleep(700);
    }
    const status = await bed.cli(["--json", "wal", "status"]);
    expect(status.code).toBe(1);
    const report = JSON.parse(status.stdout);
    expect(report.spool.pending).toBe(3);
    expect(report.server.ready).toBeGreaterThanOrEqual(2);
    expect(report.lag.segments).toBeGreaterThanOrEqual(5);
    expect(report.server.failedCount).toBeGreaterThan(0);
    expect(report.problems.join("\n")).toMatch(/archive_command is failing/);
    const check = await bed.cli(["wal", "check", "--no-switch"]);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/FAIL archive lag/);
    console.log(
      `outage: ${report.lag.segments} segment(s) waiting (${report.server.ready} in pg_wal, ${report.spool.pending} in the spool)`,
    );

    await proxy.open();
    const started = Date.now();
    let drained:
      | { lag: { segments: number }; repositories: { gap?: unknown; latest?: { lsn: string } }[] }
      | undefined;
    while (Date.now() - started < 45_000) {
      await switchSegment(); // wakes the archiver, which retries what is .ready
      await sleep(1000);
      const now = JSON.parse((await bed.cli(["--json", "wal", "status"])).stdout);
      if (now.lag.segments === 0) {
        drained = now;
        break;
      }
    }
    expect(drained, "backlog did not drain").toBeDefined();
    expect(drained!.repositories[0]!.gap).toBeUndefined();
    console.log(
      `backlog drained ${((Date.now() - started) / 1000).toFixed(1)} s after the repository came back`,
    );
    await client.end();

    // Everything archived is needed by the base backup (or young): prune keeps it all.
    const prune = await bed.cli(["--json", "wal", "prune", "--dry-run"]);
    expect(prune.code, prune.stderr).toBe(0);
    const [plan] = JSON.parse(prune.stdout);
    expect(plan.deletions).toEqual([]);
    expect(plan.keptFiles).toBeGreaterThan(5);
  });
});

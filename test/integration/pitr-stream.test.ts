import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopPostgres } from "../../src/postgres/cluster.js";
import {
  CLI,
  EVENTS_TABLE,
  freePort,
  startWalBed,
  startWorkload,
  type WalBed,
} from "../helpers/wal.js";

/**
 * Streaming mode: `lifeboat wal stream` receives WAL over a replication slot and uploads the
 * segment being written every partialInterval (500 ms here). After losing the server and the
 * streamer at once (the worst case: same host), PITR --latest loses only seconds.
 */
describe("streaming WAL over a replication slot", () => {
  let bed: WalBed;
  let streamer: ChildProcess | undefined;
  const dirs: string[] = [];

  beforeAll(async () => {
    bed = await startWalBed({ mode: "stream", settings: { archive_mode: "off" } });
  });
  afterAll(async () => {
    streamer?.kill("SIGKILL");
    await killReceiver(bed);
    for (const dir of dirs) {
      await stopPostgres(dir, "immediate").catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      await rm(`${dir}.log`, { force: true });
    }
    await bed?.destroy();
  });

  it("recovers --latest to within seconds of the loss", async () => {
    const client = await bed.client();
    await client.query(EVENTS_TABLE);
    streamer = spawn(process.execPath, [CLI, "--config", bed.configFile, "wal", "stream"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    streamer.stderr!.pipe(createWriteStream(path.join(bed.dir, "stream.log")));
    await waitFor(async () => {
      const { rows } = await client.query(
        "SELECT active FROM pg_replication_slots WHERE slot_name = 'lifeboat'",
      );
      return rows[0]?.active === true;
    }, 20_000);

    const workload = startWorkload(client);
    await sleep(500);
    const backup = await bed.cli(["backup", "base"]);
    expect(backup.code, backup.stderr).toBe(0);
    await sleep(3000);
    const status = JSON.parse((await bed.cli(["--json", "status"])).stdout);
    const latest = status.repositories[0].latest;
    expect(latest.partial).toBe(true);
    console.log(
      `stream mode status: latest recoverable ${latest.time} (LSN ${latest.lsn}), ${latest.exposureSeconds.toFixed(1)} s ago`,
    );
    await sleep(1000);
    await workload.stop();
    const rows = await client.query<{ id: string; ts: Date }>(
      "SELECT id, pg_xact_commit_timestamp(xmin) AS ts FROM events ORDER BY id",
    );
    const commits = rows.rows.map((r) => ({ id: Number(r.id), ts: r.ts }));
    await client.end();
    // The disaster takes the server and the streamer (same host) at once.
    streamer.kill("SIGKILL");
    await killReceiver(bed);
    await bed.cluster.stop("immediate");

    const dir = path.join(bed.dir, "pitr-latest");
    dirs.push(dir);
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
    const report = JSON.parse(result.stdout);
    expect(report.archiveReach.partial).toBe(true);
    expect(report.fetch.partialServed).toMatch(/^[0-9A-F]{24}$/);
    const restored = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "app" });
    await restored.connect();
    const ids = (
      await restored.query<{ id: string }>("SELECT id FROM events ORDER BY id")
    ).rows.map((r) => Number(r.id));
    await restored.end();
    expect(ids).toEqual(commits.slice(0, ids.length).map((c) => c.id));
    const windowSeconds =
      (commits.at(-1)!.ts.getTime() - commits[ids.length - 1]!.ts.getTime()) / 1000;
    console.log(
      `stream mode --latest: ${commits.length - ids.length} of ${commits.length} rows lost; measured data-loss window ${windowSeconds.toFixed(3)} s (partialInterval 0.5 s)`,
    );
    expect(windowSeconds).toBeLessThan(3);
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(200);
  }
}

/** pg_receivewal outlives a killed streamer; stop it by the pid the streamer recorded. */
async function killReceiver(bed: WalBed | undefined): Promise<void> {
  if (!bed) return;
  const state = await readFile(path.join(bed.spoolDir, "stream.json"), "utf8").catch(() => "{}");
  const pid = (JSON.parse(state) as { receiverPid?: number }).receiverPid;
  if (pid) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

// WAL and base backup benchmark (see bench/README.md, "WAL archiving and base backups").
//
//   npm run build && node bench/wal.mjs            # scale 30 (~450 MB), pgbench 60 s
//   BENCH_SCALE=100 BENCH_SECONDS=120 node bench/wal.mjs
//
// On one throwaway cluster with default 16 MiB segments:
//   1. base backup: `pg_basebackup -Ft -X fetch -D - | zstd -T2 -3` vs `lifeboat backup base`
//      (zstd 3 + age, into a local repository): wall time, size, peak RSS of each process;
//   2. archive_command latency: the fast entry (dist/cli/wal-push.js) and `lifeboat wal push`;
//   3. sustained archiving under `pgbench -c 4`: WAL rate, archive lag over time, drain time;
//   4. ceiling: WAL of a bulk load (BENCH_BURST_MB, 512) and how fast it is all archived.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { startThrowawayCluster } = await import(path.join(root, "dist/postgres/cluster.js"));
const { unprivilegedRunAs } = await import(path.join(root, "dist/postgres/local-server.js"));
const { generateIdentity } = await import(path.join(root, "dist/stream/age/keys.js"));

const SCALE = Number(process.env.BENCH_SCALE ?? 30);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const BURST_MB = Number(process.env.BENCH_BURST_MB ?? 512);
const BIN = "/usr/lib/postgresql/15/bin";
const CLI = path.join(root, "dist/cli/bin.js");
const PUSH = path.join(root, "dist/cli/wal-push.js");

const dir = mkdtempSync(path.join(tmpdir(), "lifeboat-walbench-"));
chmodSync(dir, 0o755);
const runAs = unprivilegedRunAs();
const spool = path.join(dir, "spool");
const repo = path.join(dir, "repo");
mkdirSync(spool);
const { identity, recipient } = generateIdentity();
writeFileSync(path.join(dir, "identity.txt"), `${identity}\n`, { mode: 0o600 });
const log = (line) => console.error(`[bench] ${line}`);
const results = {};

const cluster = await startThrowawayCluster({
  settings: {
    wal_level: "replica",
    max_wal_size: "2GB",
    synchronous_commit: "off",
    archive_mode: "on",
    // Archiving is switched on after the base backup part (ALTER SYSTEM + reload).
    archive_command: "/bin/true",
    archive_timeout: "60s",
  },
});
try {
  const config = path.join(dir, "lifeboat.yaml");
  writeFileSync(
    config,
    `repositories:\n  local: { type: local, path: ${repo} }\nencryption:\n  recipients: [${recipient}]\n  identityFile: ${path.join(dir, "identity.txt")}\n` +
      `databases:\n  app: { host: 127.0.0.1, port: ${cluster.port}, user: postgres, database: postgres, keyTables: [pgbench_accounts] }\n` +
      `wal:\n  database: app\n  spoolDir: ${spool}\n  uploadConcurrency: 4\n`,
  );
  const cli = (...args) =>
    execFileSync(process.execPath, [CLI, "--config", config, ...args], { encoding: "utf8" });
  cli("repo", "init");
  if (runAs) execFileSync("chown", ["-R", `${runAs.uid}:${runAs.gid}`, spool, repo]);

  log(`pgbench -i -s ${SCALE}`);
  execFileSync(
    path.join(BIN, "pgbench"),
    [
      "-i",
      "-q",
      "-s",
      String(SCALE),
      "-h",
      "127.0.0.1",
      "-p",
      String(cluster.port),
      "-U",
      "postgres",
      "postgres",
    ],
    { stdio: "ignore" },
  );
  const dbBytes = Number(await cluster.psql("SELECT sum(pg_database_size(oid)) FROM pg_database"));
  results.cluster = { scale: SCALE, bytes: dbBytes };

  // 1. Base backups, side by side.
  const out = path.join(dir, "pgbasebackup.tar.zst");
  const pgEnv = {
    ...process.env,
    PGHOST: "127.0.0.1",
    PGPORT: String(cluster.port),
    PGUSER: "postgres",
  };
  let started = Date.now();
  const shell = `/usr/bin/time -f 'pg_basebackup %e s %M KB' ${BIN}/pg_basebackup -D - -Ft -X fetch -c fast | /usr/bin/time -f 'zstd %e s %M KB' zstd -q -T2 -3 > ${out}`;
  const timing = spawnSyncStderr("bash", ["-o", "pipefail", "-c", shell], pgEnv);
  results.pgBasebackupZstd = {
    seconds: (Date.now() - started) / 1000,
    bytes: statSync(out).size,
    peakRssKiB: Object.fromEntries(
      [...timing.matchAll(/(\w+) [\d.]+ s (\d+) KB/g)].map((m) => [m[1], Number(m[2])]),
    ),
  };
  log(`pg_basebackup | zstd: ${JSON.stringify(results.pgBasebackupZstd)}`);

  started = Date.now();
  const ours = spawnSyncStderr(
    "/usr/bin/time",
    [
      "-f",
      "lifeboat %e s %M KB",
      process.execPath,
      CLI,
      "--config",
      config,
      "--json",
      "backup",
      "base",
    ],
    process.env,
    true,
  );
  const manifest = JSON.parse(ours.stdout).manifest;
  results.lifeboatBackupBase = {
    seconds: (Date.now() - started) / 1000,
    bytes: manifest.totals.storedBytes,
    plainBytes: manifest.totals.plainBytes,
    verifiedFiles: manifest.details.verified?.files,
    peakRssKiB: { lifeboat: Number(/lifeboat [\d.]+ s (\d+) KB/.exec(ours.stderr)?.[1]) },
  };
  log(`lifeboat backup base: ${JSON.stringify(results.lifeboatBackupBase)}`);
  if (runAs) execFileSync("chown", ["-R", `${runAs.uid}:${runAs.gid}`, repo]);

  // 2. archive_command latency per call, on copies of a real 16 MiB segment.
  const pgWal = path.join(cluster.dataDir, "pg_wal");
  const segment = readdirSync(pgWal)
    .filter((f) => /^[0-9A-F]{24}$/.test(f))
    .sort()[0];
  const latencies = (argsFor, count) => {
    const times = [];
    for (let i = 0; i < count; i++) {
      const name = `000000FF${(0x100 + i).toString(16).toUpperCase().padStart(16, "0")}`;
      const file = path.join(dir, name);
      copyFileSync(path.join(pgWal, segment), file);
      const t = process.hrtime.bigint();
      execFileSync(process.execPath, argsFor(file), { stdio: "ignore" });
      times.push(Number(process.hrtime.bigint() - t) / 1e6);
      rmSync(file);
    }
    times.sort((a, b) => a - b);
    return {
      calls: count,
      medianMs: times[count >> 1],
      p90Ms: times[Math.floor(count * 0.9)],
      maxMs: times[count - 1],
    };
  };
  const pushSpool = path.join(dir, "latency-spool");
  results.pushLatency = {
    fastEntry: latencies((f) => [PUSH, f, "--spool", pushSpool, "--max-segments", "1000"], 20),
    fullCli: latencies((f) => [CLI, "--config", config, "wal", "push", f], 10),
  };
  rmSync(pushSpool, { recursive: true, force: true });
  log(`push latency: ${JSON.stringify(results.pushLatency)}`);
  // The full-CLI pushes went into the configured spool; let them drain before the load test.
  cli("wal", "upload");
  if (runAs) execFileSync("chown", ["-R", `${runAs.uid}:${runAs.gid}`, spool, repo]);

  // 3. Sustained archiving under pgbench -c 4.
  const command = `${process.execPath} ${PUSH} %p --spool ${spool} --max-segments 64 --config ${config}`;
  await cluster.psql(`ALTER SYSTEM SET archive_command = '${command}'`);
  await cluster.psql("SELECT pg_reload_conf()");
  const lsn = async () =>
    BigInt(await cluster.psql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"));
  const lag = async () => {
    const ready = Number(
      await cluster.psql(
        "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
      ),
    );
    const queued = readdirSync(path.join(spool, "queue")).filter((f) => !f.startsWith(".")).length;
    return { ready, queued };
  };
  const startLsn = await lsn();
  const samples = [];
  log(`pgbench -c 4 -j 2 -T ${SECONDS}`);
  started = Date.now();
  const bench = spawn(
    path.join(BIN, "pgbench"),
    [
      "-c",
      "4",
      "-j",
      "2",
      "-T",
      String(SECONDS),
      "-h",
      "127.0.0.1",
      "-p",
      String(cluster.port),
      "-U",
      "postgres",
      "postgres",
    ],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  let benchOut = "";
  bench.stdout.on("data", (d) => (benchOut += d));
  const benchDone = new Promise((resolve) => bench.on("close", resolve));
  let running = true;
  benchDone.then(() => (running = false));
  while (running) {
    await sleep(2000);
    samples.push({ t: (Date.now() - started) / 1000, ...(await lag()) });
  }
  const endLsn = await lsn();
  const walBytes = Number(endLsn - startLsn);
  const benchSeconds = (Date.now() - started) / 1000;
  const drainStart = Date.now();
  await cluster.psql("SELECT pg_switch_wal()");
  let drained;
  while (Date.now() - drainStart < 300_000) {
    const l = await lag();
    if (l.ready === 0 && l.queued === 0) {
      drained = (Date.now() - drainStart) / 1000;
      break;
    }
    await sleep(500);
  }
  const archived = await cluster.psql(
    "SELECT archived_count || ' ' || failed_count FROM pg_stat_archiver",
  );
  results.sustained = {
    seconds: benchSeconds,
    tps: Number(/tps = ([\d.]+)/.exec(benchOut)?.[1]),
    walBytes,
    walMiBPerSecond: walBytes / benchSeconds / 2 ** 20,
    segmentsPerSecond: walBytes / benchSeconds / 2 ** 24,
    maxLagSegments: Math.max(...samples.map((s) => s.ready + s.queued)),
    lagAtEnd: samples.at(-1),
    drainSeconds: drained,
    archivedAndFailed: archived,
    samples,
  };
  log(`sustained: ${JSON.stringify({ ...results.sustained, samples: undefined })}`);

  // 4. Ceiling: a bulk load writes WAL as fast as the server can; how fast does it get archived?
  const burstRows = Math.round((BURST_MB * 2 ** 20) / 260);
  const burstStart = await lsn();
  started = Date.now();
  await cluster.psql(
    `CREATE TABLE burst AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, ${burstRows}) g`,
  );
  const written = (Date.now() - started) / 1000;
  await cluster.psql("SELECT pg_switch_wal()");
  const burstBytes = Number((await lsn()) - burstStart);
  let archivedAfter;
  while (Date.now() - started < 600_000) {
    const l = await lag();
    if (l.ready === 0 && l.queued === 0) {
      archivedAfter = (Date.now() - started) / 1000;
      break;
    }
    await sleep(250);
  }
  results.burst = {
    walBytes: burstBytes,
    writeSeconds: written,
    archivedSeconds: archivedAfter,
    archivedMiBPerSecond: archivedAfter ? burstBytes / archivedAfter / 2 ** 20 : undefined,
  };
  log(`burst: ${JSON.stringify(results.burst)}`);
  console.log(JSON.stringify(results, null, 2));
} finally {
  await cluster.destroy();
  try {
    const pid = Number(
      execFileSync("cat", [path.join(spool, "uploader.pid")], { encoding: "utf8" }).trim(),
    );
    if (pid > 0) process.kill(pid, "SIGTERM");
  } catch {
    // no uploader running
  }
  rmSync(dir, { recursive: true, force: true });
}

function spawnSyncStderr(command, args, env, wantStdout = false) {
  const result = spawnSync(command, args, { env, encoding: "utf8", maxBuffer: 64 << 20 });
  if (result.status !== 0) throw new Error(`${command} failed: ${result.stderr}`);
  return wantStdout ? result : result.stderr;
}

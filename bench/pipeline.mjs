#!/usr/bin/env node
// Pipeline benchmark (see bench/README.md). Generates realistic SQL dump text once, then measures
// throughput (MB/s of plaintext, 10^6 bytes) and peak RSS of:
//   lifeboat-local   runBackup: sha256 + zstd-3 (1 worker thread, the default) + age + sha256 into a local repository (fsync'd)
//   lifeboat-s3      the same into S3 (radosgw from .services/s3.env or LIFEBOAT_TEST_S3_*)
//   cli-encode       reference: zstd -3 -c file | age -r <recipient> > out
//   lifeboat-decode  Repository.openObject: stored sha256 + age -d + zstd -d + plaintext sha256
//   cli-decode       reference: age -d -i identity out | zstd -d > /dev/null
//   lifeboat-cli     `lifeboat backup files <file>` then `lifeboat cat … > /dev/null` (real CLI)
//   zstd-mt1, -mt2   experiment: lifeboat-local's stages with libzstd worker threads (nbWorkers)
// Each lifeboat variant runs in its own process, so its peak RSS is its own.
//
//   npm run bench -- [--size-mib 1024] [--runs 3] [--only lifeboat-local,cli-encode] [--cpu-prof]
import { spawn } from "node:child_process";
import { createReadStream, createWriteStream, existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { sqlDumpStream } from "./sql-dump.mjs";
import { cleanupBucket, createBucket, s3Settings } from "./s3.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = (file) => pathToFileURL(path.join(ROOT, "dist", file)).href;
const MB = 1e6;
const MiB = 1024 * 1024;
const VARIANTS = [
  "lifeboat-local",
  "lifeboat-s3",
  "cli-encode",
  "lifeboat-decode",
  "cli-decode",
  "lifeboat-cli",
  "zstd-mt1",
  "zstd-mt2",
];

const { values: options } = parseArgs({
  options: {
    "size-mib": { type: "string", default: "1024" },
    runs: { type: "string", default: "3" },
    only: { type: "string" },
    "cpu-prof": { type: "boolean", default: false },
    child: { type: "string" },
    work: { type: "string" },
  },
});

// ---- child processes: one lifeboat variant each --------------------------------------------------

async function child(variant, work) {
  const settings = JSON.parse(await readFile(path.join(work, "settings.json"), "utf8"));
  const { Repository } = await import(dist("repository/repository.js"));
  const { runBackup } = await import(dist("repository/writer.js"));
  const { openStorage } = await import(dist("storage/index.js"));
  const encryption = { format: "age-v1", recipients: [settings.recipient] };
  if (variant === "lifeboat-decode") {
    const { loadIdentityFile } = await import(dist("stream/age/index.js"));
    const { discard } = await import(dist("repository/verify.js"));
    const identities = await loadIdentityFile(settings.identityFile);
    const repository = await Repository.open(
      "local",
      openStorage({ type: "local", path: path.join(work, "repo-local") }),
    );
    const [id] = await repository.listBackupIds();
    const manifest = await repository.readManifest(id);
    const started = await startClock();
    await pipeline(
      await repository.openObject(manifest, manifest.objects[0], { identities }),
      discard(),
    );
    return await measured(started, manifest.objects[0].plain.bytes, manifest.objects[0].size);
  }
  if (variant.startsWith("zstd-mt"))
    return zstdWorkersExperiment(Number(variant.slice(7)), settings);
  let storage;
  if (variant === "lifeboat-local") {
    await rm(path.join(work, "repo-local"), { recursive: true, force: true });
    storage = openStorage({ type: "local", path: path.join(work, "repo-local") });
  } else {
    const s3 = settings.s3;
    storage = openStorage({
      type: "s3",
      endpoint: s3.endpoint,
      region: s3.region,
      bucket: settings.bucket,
      prefix: `run-${Date.now()}`,
      pathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      ...(process.env.BENCH_PART_MIB ? { partSize: Number(process.env.BENCH_PART_MIB) * MiB } : {}),
      ...(process.env.BENCH_QUEUE ? { queueSize: Number(process.env.BENCH_QUEUE) } : {}),
    });
  }
  const repository = await Repository.init(variant, storage, encryption);
  const started = await startClock();
  const committed = await runBackup(
    [repository],
    {
      kind: "files",
      source: "bench",
      encoding: {
        compression: "zstd",
        level: 3,
        threads: Number(process.env.BENCH_THREADS ?? 1),
        recipients: [settings.recipient],
      },
      operation: "bench",
    },
    async (session) => {
      await session.addObject("dump.sql", createReadStream(settings.file, { highWaterMark: MiB }));
      return {};
    },
  );
  const record = committed.manifests[0].manifest.objects[0];
  const result = await measured(started, record.plain.bytes, record.size);
  await storage.close?.();
  return result;
}

/**
 * Not what lifeboat ships: encode()'s stages (sha256, zstd-3, age, sha256) with zstd-napi's
 * CompressStream given `nbWorkers`, so compression runs on libzstd threads instead of the main
 * thread that also hashes and encrypts. Stored through LocalStorage like lifeboat-local.
 */
async function zstdWorkersExperiment(nbWorkers, settings) {
  const { CompressStream } = await import("zstd-napi");
  const { chain } = await import(dist("stream/encode.js"));
  const { DigestStage } = await import(dist("stream/digest.js"));
  const { createEncryptStream } = await import(dist("stream/age/index.js"));
  const { LocalStorage } = await import(dist("storage/index.js"));
  const dir = path.join(path.dirname(settings.file), "repo-mt");
  await rm(dir, { recursive: true, force: true });
  const started = await startClock();
  const plain = new DigestStage();
  const stored = new DigestStage();
  const output = chain(
    [
      createReadStream(settings.file, { highWaterMark: MiB }),
      plain,
      new CompressStream({ compressionLevel: 3, checksumFlag: true, nbWorkers }),
      createEncryptStream([settings.recipient]),
      stored,
    ],
    (error) => error,
  );
  await new LocalStorage(dir).put("dump.sql.zst.age", output);
  return await measured(started, plain.result().bytes, stored.result().bytes);
}

let profiler;

/** Starts the clock (and, with --cpu-prof, a CPU profile of just the measured work). */
async function startClock() {
  if (options["cpu-prof"]) {
    const { Session } = await import("node:inspector/promises");
    profiler = new Session();
    profiler.connect();
    await profiler.post("Profiler.enable");
    await profiler.post("Profiler.start");
  }
  return performance.now();
}

async function measured(started, plainBytes, storedBytes) {
  const ms = performance.now() - started;
  if (profiler) {
    const { profile } = await profiler.post("Profiler.stop");
    const dir = path.join(options.work, "prof", options.child);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, `${Date.now()}.cpuprofile`), JSON.stringify(profile));
  }
  return { ms, plainBytes, storedBytes, peakRss: peakRss() };
}

/**
 * VmHWM, not resourceUsage().maxRSS: on Linux getrusage carries the pre-exec high-water mark over
 * exec, so a child would report the RSS its parent had when it was forked.
 */
function peakRss() {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
  return match ? Number(match[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

// ---- the parent: set up, run every variant, summarise ----------------------------------------

function run(command, args, { stdout = "pipe", env = process.env } = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const proc = spawn(command, args, { stdio: ["ignore", stdout, "pipe"], env });
    let out = "";
    let err = "";
    proc.stdout?.on("data", (chunk) => (out += chunk));
    proc.stderr.on("data", (chunk) => (err += chunk));
    proc.once("error", reject);
    proc.once("close", (code) => {
      if (code !== 0) reject(new Error(`${command} ${args.join(" ")} exited ${code}: ${err}`));
      else resolve({ out, err, ms: performance.now() - started });
    });
  });
}

/** Peak RSS of the processes of a shell pipeline, via GNU time when it is installed. */
const GNU_TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;

async function shellPipeline(work, stages, output) {
  const rssFiles = stages.map((_, index) => path.join(work, `rss-${index}`));
  const script = stages
    .map((stage, index) => (GNU_TIME ? `${GNU_TIME} -f %M -o ${rssFiles[index]} ${stage}` : stage))
    .join(" | ");
  const { ms } = await run("bash", ["-o", "pipefail", "-c", `${script} > ${output}`]);
  const peaks = GNU_TIME
    ? await Promise.all(rssFiles.map(async (f) => Number(await readFile(f, "utf8")) * 1024))
    : [];
  return { ms, peakRss: peaks.length ? Math.max(...peaks) : undefined };
}

async function runVariant(variant, ctx) {
  const { work, settings, plainBytes } = ctx;
  const outFile = path.join(work, "cli.zst.age");
  switch (variant) {
    case "cli-encode": {
      const r = await shellPipeline(
        work,
        [`zstd -3 -q -c ${settings.file}`, `age -r ${settings.recipient}`],
        outFile,
      );
      return { ...r, plainBytes, storedBytes: (await stat(outFile)).size };
    }
    case "cli-decode": {
      const r = await shellPipeline(
        work,
        [`age -d -i ${settings.identityFile} ${outFile}`, "zstd -d -q"],
        "/dev/null",
      );
      return { ...r, plainBytes };
    }
    case "lifeboat-cli":
      return lifeboatCli(ctx);
    default: {
      const { out } = await run(process.execPath, [
        fileURLToPath(import.meta.url),
        ...["--child", variant, "--work", work],
        ...(options["cpu-prof"] ? ["--cpu-prof"] : []),
      ]);
      return JSON.parse(out.trim().split("\n").pop());
    }
  }
}

async function lifeboatCli({ work, settings, plainBytes }) {
  const config = path.join(work, "cli.yaml");
  const repo = path.join(work, "repo-cli");
  await rm(repo, { recursive: true, force: true });
  await writeFile(
    config,
    `repositories:\n  local: { type: local, path: ${repo} }\n` +
      `encryption: { recipients: [${settings.recipient}], identityFile: ${settings.identityFile} }\n`,
  );
  const cli = (rss, args, stdout = "pipe") =>
    run(
      process.execPath,
      [
        ...["--require", path.join(ROOT, "test", "fixtures", "max-rss.cjs")],
        ...[path.join(ROOT, "dist", "cli", "bin.js"), "-c", config, ...args],
      ],
      { env: { ...process.env, LIFEBOAT_MAX_RSS_FILE: path.join(work, rss) }, stdout },
    );
  await cli("rss-init", ["repo", "init"]);
  const backup = await cli("rss-backup", ["--json", "backup", "files", settings.file]);
  const { id } = JSON.parse(backup.out);
  // stdout "ignore" is /dev/null: the plaintext is verified by lifeboat itself on the way out.
  const cat = await cli("rss-cat", ["cat", id, path.basename(settings.file)], "ignore");
  const rss = async (f) => Number(await readFile(path.join(work, f), "utf8"));
  return {
    ms: backup.ms,
    plainBytes,
    peakRss: await rss("rss-backup"),
    extra: `cat: ${mbps(plainBytes, cat.ms)} MB/s, peak RSS ${mib(await rss("rss-cat"))} MiB`,
  };
}

const mbps = (bytes, ms) => (bytes / MB / (ms / 1000)).toFixed(0);
const mib = (bytes) => (bytes === undefined ? "n/a" : (bytes / MiB).toFixed(0));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function summariseProfile(dir) {
  const files = existsSync(dir) ? await readdir(dir) : [];
  const self = new Map();
  let total = 0;
  for (const file of files) {
    const profile = JSON.parse(readFileSync(path.join(dir, file), "utf8"));
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const parent = new Map();
    for (const node of profile.nodes) for (const id of node.children ?? []) parent.set(id, node);
    profile.samples.forEach((id, index) => {
      // Native code (zstd, sha256, chacha20) is charged to the JavaScript function calling it.
      let node = byId.get(id);
      while (node.callFrame.url === "" && parent.get(node.id)?.callFrame.url)
        node = parent.get(node.id);
      const { functionName, url, lineNumber } = node.callFrame;
      const key = `${functionName || "(anonymous)"} ${url.split("/").slice(-2).join("/")}:${lineNumber + 1}`;
      const dt = profile.timeDeltas[index] ?? 0;
      self.set(key, (self.get(key) ?? 0) + dt);
      total += dt;
    });
  }
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([key, us]) => `    ${((100 * us) / total).toFixed(1).padStart(5)}%  ${key}`);
}

async function main() {
  const size = Number(options["size-mib"]) * MiB;
  const runs = Number(options.runs);
  const only = options.only ? options.only.split(",") : VARIANTS;
  const work = await mkdtemp(path.join(tmpdir(), "lifeboat-bench-"));
  const s3 = s3Settings(ROOT);
  let bucket;
  try {
    const { generateIdentity, writeIdentityFile } = await import(dist("stream/age/index.js"));
    const { identity, recipient } = generateIdentity();
    const identityFile = path.join(work, "identity.txt");
    await writeIdentityFile(identityFile, identity);
    const file = path.join(work, "dump.sql");
    let started = performance.now();
    await pipeline(sqlDumpStream({ bytes: size, seed: 42 }), createWriteStream(file));
    console.log(
      `generated ${mib(size)} MiB of SQL dump text in ${((performance.now() - started) / 1000).toFixed(1)} s (${work})`,
    );
    if (only.includes("lifeboat-s3")) {
      if (s3) bucket = await createBucket(s3, "lifeboat-bench");
      else
        console.log("lifeboat-s3 skipped: no S3 endpoint (.services/s3.env or LIFEBOAT_TEST_S3_*)");
    }
    const settings = { file, recipient, identityFile, s3, bucket };
    await writeFile(path.join(work, "settings.json"), JSON.stringify(settings));
    const ctx = { work, settings, plainBytes: size };
    const rows = [];
    // Encode variants first: the decode variants read what they wrote.
    for (const variant of VARIANTS.filter((v) => only.includes(v))) {
      if (variant === "lifeboat-s3" && !bucket) continue;
      const results = [];
      for (let i = 0; i < runs; i++) {
        started = performance.now();
        const result = await runVariant(variant, ctx);
        results.push(result);
        const line = `  ${variant} run ${i + 1}: ${mbps(result.plainBytes, result.ms)} MB/s, peak RSS ${mib(result.peakRss)} MiB`;
        console.log(result.extra ? `${line}; ${result.extra}` : line);
      }
      const ms = median(results.map((r) => r.ms));
      const stored = results[0].storedBytes;
      rows.push({
        variant,
        mbps: mbps(size, ms),
        runs: results.map((r) => mbps(size, r.ms)).join(" / "),
        rss: mib(Math.max(...results.map((r) => r.peakRss ?? 0)) || undefined),
        ratio: stored ? (size / stored).toFixed(2) : "",
        extra: results.at(-1).extra ?? "",
      });
      if (options["cpu-prof"] && existsSync(path.join(work, "prof", variant))) {
        console.log(`  ${variant}: self time by function (all runs)`);
        for (const line of await summariseProfile(path.join(work, "prof", variant)))
          console.log(line);
      }
    }
    console.log(
      `\n${mib(size)} MiB, ${runs} run(s) each, median; ${cpus().length} CPUs (${cpus()[0]?.model}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`,
    );
    console.log("| variant | MB/s (median) | runs | peak RSS MiB | ratio | notes |");
    console.log("| --- | --- | --- | --- | --- | --- |");
    for (const r of rows)
      console.log(`| ${r.variant} | ${r.mbps} | ${r.runs} | ${r.rss} | ${r.ratio} | ${r.extra} |`);
  } finally {
    if (bucket) await cleanupBucket(s3, bucket);
    await rm(work, { recursive: true, force: true });
  }
}

if (options.child) {
  process.stdout.write(`${JSON.stringify(await child(options.child, options.work))}\n`);
  process.exit(0);
} else {
  await main();
}

// Database backup/restore benchmark (issue #3): on one throwaway cluster with pgbench data plus
// the sample accountancy tables, side by side in one run:
//   seed pipeline      pg_dump -Fc -b | gzip > file          (what the first user does today)
//   raw pg_dump        pg_dump -Fc -Z0 > /dev/null           (the floor: dump speed itself)
//   lifeboat local     lifeboat backup db --repo local
//   lifeboat S3        lifeboat backup db --repo offsite     (radosgw from .services/s3.env)
//   pg_restore -j2     from a local -Fc file
//   lifeboat restore   lifeboat restore db --repo offsite --jobs 2
// Wall time and peak RSS come from GNU time (%e, %M). Usage: npm run build && node bench/db.mjs [scale]
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startThrowawayCluster } from "../dist/postgres/cluster.js";
import { sampleDataSql, sampleSchemaSql } from "../dist/demo/sample.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = path.join(root, "dist/cli/bin.js");
const pgbin = "/usr/lib/postgresql/15/bin";
const scale = Number(process.argv[2] ?? 50);
const work = mkdtempSync(path.join(tmpdir(), "lifeboat-bench-db-"));
const s3env = Object.fromEntries(
  readFileSync(path.join(root, ".services/s3.env"), "utf8")
    .split("\n")
    .filter((l) => l.includes("="))
    .map((l) => l.split("=", 2)),
);

function timed(label, command, env = {}) {
  const out = path.join(work, "time.txt");
  const result = spawnSync(
    "/usr/bin/time",
    ["-f", "%e %M", "-o", out, "/bin/bash", "-o", "pipefail", "-c", command],
    {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  if (result.status !== 0) throw new Error(`${label} failed: ${result.stderr}`);
  const [seconds, kb] = readFileSync(out, "utf8").trim().split("\n").pop().split(" ").map(Number);
  return { label, seconds, rssMiB: kb / 1024 };
}

const cluster = await startThrowawayCluster({
  settings: { shared_buffers: "256MB", max_wal_size: "4GB", checkpoint_timeout: "30min" },
});
try {
  const env = {
    ...cluster.connectionEnv("bench"),
    S3_KEY: s3env.LIFEBOAT_TEST_S3_ACCESS_KEY,
    S3_SECRET: s3env.LIFEBOAT_TEST_S3_SECRET_KEY,
  };
  await cluster.psql("CREATE DATABASE bench");
  console.error(`loading pgbench scale ${scale} + sample tables…`);
  execFileSync(path.join(pgbin, "pgbench"), ["-i", "-q", "-s", String(scale), "bench"], {
    env: { ...process.env, ...env },
    stdio: "ignore",
  });
  await cluster.psql(sampleSchemaSql() + sampleDataSql(scale), {
    database: "bench",
  });
  const size = Number(await cluster.psql("SELECT pg_database_size('bench')"));

  const id = execFileSync("node", [bin, "key", "generate", "--out", path.join(work, "id.txt")], {
    encoding: "utf8",
  }).trim();
  const bucket = `bench-db-${Date.now().toString(36)}`;
  writeFileSync(
    path.join(work, "lifeboat.yaml"),
    `repositories:
  local: { type: local, path: ${path.join(work, "repo")} }
  offsite:
    type: s3
    endpoint: ${s3env.LIFEBOAT_TEST_S3_ENDPOINT}
    region: ${s3env.LIFEBOAT_TEST_S3_REGION}
    bucket: ${bucket}
    pathStyle: true
    credentials: { accessKeyId: "\${S3_KEY}", secretAccessKey: "\${S3_SECRET}" }
encryption: { recipients: [${id}], identityFile: ${path.join(work, "id.txt")} }
databases:
  app: { port: ${cluster.port}, database: bench, jobs: 2 }
`,
  );
  execFileSync("/usr/bin/env", [
    "bash",
    "-c",
    `cd ${work} && node -e "
    const {S3Client,CreateBucketCommand}=require('${root}/node_modules/@aws-sdk/client-s3');
    new S3Client({endpoint:'${s3env.LIFEBOAT_TEST_S3_ENDPOINT}',region:'${s3env.LIFEBOAT_TEST_S3_REGION}',forcePathStyle:true,credentials:{accessKeyId:'${s3env.LIFEBOAT_TEST_S3_ACCESS_KEY}',secretAccessKey:'${s3env.LIFEBOAT_TEST_S3_SECRET_KEY}'}}).send(new CreateBucketCommand({Bucket:'${bucket}'})).then(()=>process.exit(0),e=>{console.error(e);process.exit(1)})"`,
  ]);
  execFileSync("node", [bin, "repo", "init"], { cwd: work, env: { ...process.env, ...env } });

  const lb = (args) => `cd ${work} && node ${bin} ${args}`;
  const rows = [
    timed(
      "seed: pg_dump -Fc -b | gzip",
      `${pgbin}/pg_dump -Fc -b bench | gzip > ${work}/seed.dump.gz`,
      env,
    ),
    timed("raw: pg_dump -Fc -Z0 > /dev/null", `${pgbin}/pg_dump -Fc -Z0 bench > /dev/null`, env),
    timed("lifeboat backup db (local)", lb("backup db --repo local"), env),
    timed("lifeboat backup db (S3)", lb("backup db --repo offsite"), env),
  ];
  execFileSync("/bin/bash", ["-c", `${pgbin}/pg_dump -Fc -Z0 bench > ${work}/plain.dump`], {
    env: { ...process.env, ...env },
  });
  await cluster.psql("CREATE DATABASE r1");
  await cluster.psql("CREATE DATABASE r4");
  rows.push(
    timed("pg_restore -j2 (local file)", `${pgbin}/pg_restore -j2 -d r1 ${work}/plain.dump`, env),
  );
  rows.push(
    timed(
      "lifeboat restore db -j2 (from S3)",
      lb("restore db latest --repo offsite --into r2 --jobs 2"),
      env,
    ),
  );
  rows.push(
    timed(
      "lifeboat restore db (S3, streamed)",
      lb("restore db latest --repo offsite --into r3 --jobs 1"),
      env,
    ),
  );
  rows.push(
    timed("pg_restore (local file, 1 job)", `${pgbin}/pg_restore -d r4 ${work}/plain.dump`, {
      ...env,
      PGDATABASE: "postgres",
    }),
  );
  rows.push(
    timed(
      "lifeboat restore db (local repo, streamed)",
      lb("restore db latest --repo local --into r5"),
      env,
    ),
  );

  const stored = JSON.parse(
    execFileSync("node", [bin, "--json", "backups", "list", "--repo", "local"], {
      cwd: work,
      env: { ...process.env, ...env },
      encoding: "utf8",
    }),
  )[0];
  const seedSize = statSync(path.join(work, "seed.dump.gz")).size;
  console.log(
    `\ndatabase: ${(size / 2 ** 20).toFixed(0)} MiB (pgbench scale ${scale} + sample tables), PostgreSQL ${await cluster.psql("SHOW server_version")}`,
  );
  console.log(
    `seed .dump.gz: ${(seedSize / 2 ** 20).toFixed(1)} MiB; lifeboat stored: ${(stored.storedBytes / 2 ** 20).toFixed(1)} MiB (dump ${(stored.plainBytes / 2 ** 20).toFixed(1)} MiB)\n`,
  );
  console.log("| run | wall s | peak RSS MiB |");
  console.log("|---|---:|---:|");
  for (const r of rows)
    console.log(`| ${r.label} | ${r.seconds.toFixed(2)} | ${r.rssMiB.toFixed(0)} |`);
  const raw = rows[1].seconds;
  const seed = rows[0].seconds;
  const restoreBase = rows[4].seconds;
  console.log(
    `\nbackup local / raw pg_dump: ${(rows[2].seconds / raw).toFixed(2)}x (target <= 1.10); / seed: ${(rows[2].seconds / seed).toFixed(2)}x (target <= 0.6)`,
  );
  console.log(
    `backup S3 / raw pg_dump: ${(rows[3].seconds / raw).toFixed(2)}x; restore -j2 from S3 / pg_restore -j2: ${(rows[5].seconds / restoreBase).toFixed(2)}x (target <= 1.10)`,
  );
} finally {
  await cluster.destroy();
  if (existsSync(work)) rmSync(work, { recursive: true, force: true });
}

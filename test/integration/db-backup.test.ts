import { spawn } from "node:child_process";
import { readdir, rm } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleDataSql, sampleSchemaSql, SAMPLE_ROLE } from "../../src/demo/sample.js";
import type { ThrowawayCluster } from "../../src/postgres/cluster.js";
import { withCluster } from "../helpers/pg.js";
import { createTestBucket, deleteTestBucket, s3TestConfig } from "../helpers/s3.js";
import { BIN, lifeboat, ok, workspace, writeConfig } from "../helpers/lifeboat.js";

const source = withCluster();
const fresh = withCluster();
let ws: { dir: string; recipient: string; identityFile: string };
let bucket: string;
const s3 = () => s3TestConfig();
const env = () => ({ S3_KEY: s3().accessKeyId, S3_SECRET: s3().secretAccessKey });

const TABLES = [
  "users",
  "clients",
  "kyc_verifications",
  "onboarding_sessions",
  "activity_logs",
  "engagement_letters",
];

async function fingerprint(
  cluster: ThrowawayCluster,
  database: string,
): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const table of TABLES) {
    result[table] = await cluster.psql(
      `SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM ${table} t`,
      { database },
    );
  }
  result.sequence = await cluster.psql("SELECT last_value FROM invoice_number_seq", { database });
  result.indexes = await cluster.psql(
    "SELECT string_agg(indexdef, ';' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'",
    { database },
  );
  result.constraints = await cluster.psql(
    "SELECT string_agg(conname || '=' || pg_get_constraintdef(oid), ';' ORDER BY conname) FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
    { database },
  );
  result.largeObject = await cluster.psql("SELECT md5(lo_get(letter)) FROM engagement_letters", {
    database,
  });
  return result;
}

function config(port: number, extra = "") {
  return `
repositories:
  local: { type: local, path: ${path.join(ws.dir, "repo")} }
  offsite:
    type: s3
    endpoint: ${s3().endpoint}
    region: ${s3().region}
    bucket: ${bucket}
    prefix: lifeboat/
    pathStyle: true
    credentials: { accessKeyId: "\${S3_KEY}", secretAccessKey: "\${S3_SECRET}" }
encryption: { recipients: [${ws.recipient}], identityFile: ${ws.identityFile} }
databases:
  app:
    port: ${port}
    database: accountancy
${extra}`;
}

const run = (args: string[], extraEnv: Record<string, string> = {}) =>
  lifeboat(ws.dir, args, { ...env(), ...extraEnv });

beforeAll(async () => {
  ws = await workspace();
  bucket = await createTestBucket("db");
  await source().psql("CREATE DATABASE accountancy");
  await source().psql(sampleSchemaSql() + sampleDataSql(2), { database: "accountancy" });
  await writeConfig(ws.dir, config(source().port));
  ok(await run(["repo", "init"]));
});

afterAll(async () => {
  await deleteTestBucket(bucket);
  await rm(ws.dir, { recursive: true, force: true });
});

describe("backup db and restore", () => {
  let backupId: string;

  it("backs up to local and S3 with globals and snapshot-consistent facts", async () => {
    const result = ok(await run(["--json", "backup", "db"]));
    const report = JSON.parse(result.stdout) as {
      id: string;
      repositories: string[];
      manifest: { details: Record<string, unknown>; objects: { name: string }[] };
    };
    backupId = report.id;
    expect(report.repositories.sort()).toEqual(["local", "offsite"]);
    expect(report.manifest.objects.map((o) => o.name)).toEqual(["dump.pgcustom", "globals.sql"]);
    const details = report.manifest.details as {
      server: { major: number };
      lsn: string;
      tables: { table: string; rows: number }[];
      tools: { pgDump: string };
    };
    expect(details.server.major).toBe(15);
    expect(details.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(details.tools.pgDump).toContain("pg_dump (PostgreSQL) 15");
    expect(details.tables.find((t) => t.table === "activity_logs")?.rows).toBe(40_000);
    const listed = JSON.parse(ok(await run(["--json", "backups", "list"])).stdout) as {
      id: string;
      status: string;
      repository: string;
    }[];
    expect(
      listed
        .filter((b) => b.id === backupId)
        .map((b) => `${b.repository}:${b.status}`)
        .sort(),
    ).toEqual(["local:complete", "offsite:complete"]);
  });

  it("verifies down to pg_restore --list, and restore-tests into a scratch database", async () => {
    const result = ok(await run(["--json", "verify", backupId, "--restore-test"]));
    const report = JSON.parse(result.stdout) as {
      ok: boolean;
      reports: { extra: { name: string; ok: boolean }[] }[];
    };
    expect(report.ok).toBe(true);
    expect(report.reports[0]!.extra.map((e) => e.name)).toEqual([
      "pg_restore --list",
      "globals script",
      "restore test",
    ]);
    expect(
      await source().psql(
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'lifeboat_restore_test%'",
      ),
    ).toBe("0");
  });

  it("restores from S3 into a new database: contents, sequence, indexes, constraints, large object equal", async () => {
    const result = ok(
      await run([
        "--json",
        "restore",
        "db",
        backupId,
        "--repo",
        "offsite",
        "--into",
        "copy_from_s3",
      ]),
    );
    const report = JSON.parse(result.stdout) as {
      ok: boolean;
      backup: { repository: string };
      restore: { ownership: string };
    };
    expect(report.ok).toBe(true);
    expect(report.backup.repository).toBe("offsite");
    expect(report.restore.ownership).toBe("restored");
    expect(await fingerprint(source(), "copy_from_s3")).toEqual(
      await fingerprint(source(), "accountancy"),
    );
  });

  it("restores onto a fresh server with --with-globals: the role and its grants come back", async () => {
    const url = `postgres://postgres@127.0.0.1:${fresh().port}/accountancy`;
    const result = ok(
      await run(["restore", "db", "latest", "--target-url", url, "--with-globals", "--jobs", "2"]),
    );
    expect(result.stdout).toContain("validation: passed");
    expect(
      await fresh().psql(`SELECT has_table_privilege('${SAMPLE_ROLE}', 'public.users', 'SELECT')`, {
        database: "accountancy",
      }),
    ).toBe("t");
    expect(
      await fresh().psql("SELECT tableowner FROM pg_tables WHERE tablename = 'users'", {
        database: "accountancy",
      }),
    ).toBe("postgres");
    expect(await fingerprint(fresh(), "accountancy")).toEqual(
      await fingerprint(source(), "accountancy"),
    );
  });

  it("refuses to restore over an existing database without --in-place, dropping nothing", async () => {
    const before = await fingerprint(source(), "accountancy");
    const result = await run(["restore", "db", "latest", "--into", "accountancy"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^error\[USAGE\]: database "accountancy" already exists/m);
    expect(await fingerprint(source(), "accountancy")).toEqual(before);
  });

  it("break-glass: age + zstd + pg_restore alone restore the backup", async () => {
    const dataDir = path.join(ws.dir, "repo", "data", backupId);
    const files = await readdir(dataDir);
    expect(files.sort()).toEqual(["dump.pgcustom.zst.age", "globals.sql.zst.age"]);
    await fresh().psql("CREATE DATABASE breakglass");
    const script = `age -d -i ${ws.identityFile} ${path.join(dataDir, "dump.pgcustom.zst.age")} | zstd -d | /usr/lib/postgresql/15/bin/pg_restore --no-owner -d breakglass`;
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn("/bin/bash", ["-o", "pipefail", "-c", script], {
        env: { ...process.env, ...fresh().connectionEnv("breakglass") },
        stdio: "inherit",
      });
      child.once("close", resolve);
    });
    expect(code).toBe(0);
    expect(await fingerprint(fresh(), "breakglass")).toEqual(
      await fingerprint(source(), "accountancy"),
    );
  });
});

describe("directory format", () => {
  it("dumps in parallel (-Fd -j2), uploads files as they complete, verifies and restores", async () => {
    await writeConfig(
      ws.dir,
      config(source().port).replace(
        "database: accountancy",
        "database: accountancy\n    format: directory\n    jobs: 2",
      ),
    );
    try {
      const backup = JSON.parse(
        ok(await run(["--json", "backup", "db", "--repo", "local"])).stdout,
      ) as { id: string; manifest: { objects: { name: string }[]; details: { format: string } } };
      expect(backup.manifest.details.format).toBe("directory");
      const names = backup.manifest.objects.map((o) => o.name);
      expect(names).toContain("dump/toc.dat");
      expect(names.filter((n) => /^dump\/\d+\.dat$/.test(n)).length).toBeGreaterThanOrEqual(6);
      expect(
        JSON.parse(ok(await run(["--json", "verify", backup.id, "--repo", "local"])).stdout).ok,
      ).toBe(true);
      ok(
        await run([
          "restore",
          "db",
          backup.id,
          "--repo",
          "local",
          "--into",
          "copy_from_dir",
          "--jobs",
          "2",
        ]),
      );
      expect(await fingerprint(source(), "copy_from_dir")).toEqual(
        await fingerprint(source(), "accountancy"),
      );
    } finally {
      await writeConfig(ws.dir, config(source().port));
    }
  });
});

describe("several databases", () => {
  it("backup db --all backs up each one; a failing database does not cost the others", async () => {
    const two = config(source().port).replace(
      "databases:\n  app:\n    port: " + source().port + "\n    database: accountancy\n",
      `databases:\n  app:\n    port: ${source().port}\n    database: accountancy\n  copy:\n    port: ${source().port}\n    database: copy_from_s3\n  gone:\n    port: 1\n    database: nowhere\n`,
    );
    expect(two).toContain("copy_from_s3");
    await writeConfig(ws.dir, two);
    try {
      const result = await run(["--json", "backup", "db", "--all", "--repo", "local"]);
      expect(result.code).toBe(6);
      const rows = JSON.parse(result.stdout) as {
        database: string;
        ok: boolean;
        id?: string;
        error?: { code: string };
      }[];
      expect(rows.map((r) => `${r.database}:${r.ok}`)).toEqual([
        "app:true",
        "copy:true",
        "gone:false",
      ]);
      expect(rows[2]!.error?.code).toBe("PG_CONNECT");
      expect(result.stderr).toMatch(/^error\[PG_CONNECT\]: .*\(database "gone": not backed up\)$/m);
      const listed = JSON.parse(
        ok(await run(["--json", "backups", "list", "--repo", "local"])).stdout,
      ) as { id: string; source: string }[];
      expect(listed.find((b) => b.id === rows[1]!.id)?.source).toBe("copy");
    } finally {
      await writeConfig(ws.dir, config(source().port));
    }
  });
});

describe("in-place restore", () => {
  it("takes and verifies an emergency backup, restores, validates and swaps", async () => {
    const good = await fingerprint(source(), "accountancy");
    await source().psql("DELETE FROM activity_logs WHERE id % 2 = 0", { database: "accountancy" });
    const result = ok(
      await run(["--json", "restore", "db", "latest", "--in-place", "--yes", "--repo", "local"]),
    );
    const report = JSON.parse(result.stdout) as {
      ok: boolean;
      emergencyBackupId: string;
      mode: string;
    };
    expect(report.ok).toBe(true);
    expect(report.mode).toBe("in-place");
    expect(await fingerprint(source(), "accountancy")).toEqual(good);
    const emergency = JSON.parse(
      ok(await run(["--json", "backups", "show", report.emergencyBackupId, "--repo", "local"]))
        .stdout,
    ) as {
      manifest: {
        labels: Record<string, string>;
        details: { tables: { table: string; rows: number }[] };
      };
    };
    expect(emergency.manifest.labels.reason).toBe("emergency-before-restore");
    expect(emergency.manifest.details.tables.find((t) => t.table === "activity_logs")?.rows).toBe(
      20_000,
    );
    expect(
      await source().psql(
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'accountancy__lifeboat%'",
      ),
    ).toBe("0");
  });

  it("runs the stop and start hooks around the swap, then the smoke checks", async () => {
    const { createServer } = await import("node:http");
    const { readFile } = await import("node:fs/promises");
    const server = createServer((_req, res) => res.writeHead(204).end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    const log = path.join(ws.dir, "hooks.log");
    await writeConfig(
      ws.dir,
      `${config(source().port)}application:
  stopCommand: "echo stopped >> ${log}"
  startCommand: "echo started >> ${log}"
  smokeChecks: [{ url: "http://127.0.0.1:${port}/health" }]
`,
    );
    try {
      const report = JSON.parse(
        ok(
          await run([
            "--json",
            "restore",
            "db",
            "latest",
            "--in-place",
            "--yes",
            "--repo",
            "local",
          ]),
        ).stdout,
      ) as {
        ok: boolean;
        hooks: { name: string; ok: boolean }[];
      };
      expect(report.hooks.map((h) => `${h.name}:${h.ok}`)).toEqual([
        "stop application:true",
        "start application:true",
        `GET http://127.0.0.1:${port}/health:true`,
      ]);
      expect((await readFile(log, "utf8")).split("\n").filter(Boolean)).toEqual([
        "stopped",
        "started",
      ]);
    } finally {
      server.close();
      await writeConfig(ws.dir, config(source().port));
    }
  });

  it("a corrupted backup fails the restore, leaves the live database intact and names the emergency backup", async () => {
    const id = JSON.parse(ok(await run(["--json", "backup", "db", "--repo", "local"])).stdout)
      .id as string;
    const file = path.join(ws.dir, "repo", "data", id, "dump.pgcustom.zst.age");
    const { readFile, writeFile } = await import("node:fs/promises");
    const bytes = await readFile(file);
    bytes[Math.floor(bytes.length * 0.6)]! ^= 0xff;
    await writeFile(file, bytes);
    await source().psql(
      "INSERT INTO users (email, full_name, role) VALUES ('late@practice.example', 'Late', 'admin')",
      { database: "accountancy" },
    );
    const before = await fingerprint(source(), "accountancy");
    const result = await run(["restore", "db", id, "--in-place", "--yes", "--repo", "local"]);
    expect(result.code).not.toBe(0);
    const line = result.stderr.trim().split("\n").pop()!;
    expect(line).toMatch(
      /^error\[OBJECT_(CORRUPT|TRUNCATED)\]: restore failed before the switch: .* — database "accountancy" is unchanged; emergency backup \S+ holds it/,
    );
    expect(await fingerprint(source(), "accountancy")).toEqual(before);
    expect(
      await source().psql(
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'accountancy__lifeboat%'",
      ),
    ).toBe("0");

    // The same corrupted backup restored --into a new name: nothing is left under that name.
    const into = await run(["restore", "db", id, "--into", "bad_copy", "--repo", "local"]);
    expect(into.code).not.toBe(0);
    expect(
      await source().psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'bad_copy%'"),
    ).toBe("0");
  });
});

describe("failures", () => {
  it("a killed backup is never listed as good, and the next run succeeds", async () => {
    await source().psql("CREATE DATABASE bulky");
    await source().psql(
      "CREATE TABLE blob AS SELECT g, md5(g::text) || repeat(md5((g * 7)::text), 30) AS payload FROM generate_series(1, 400000) g",
      { database: "bulky" },
    );
    await writeConfig(
      ws.dir,
      config(source().port).replace("database: accountancy", "database: bulky"),
    );
    try {
      const child = spawn(process.execPath, [BIN, "backup", "db", "--repo", "local"], {
        cwd: ws.dir,
        env: { ...process.env, ...env() },
        stdio: "ignore",
      });
      const dataRoot = path.join(ws.dir, "repo", "data");
      const before = new Set(await readdir(dataRoot));
      for (let i = 0; i < 200 && (await readdir(dataRoot)).every((d) => before.has(d)); i++)
        await new Promise((r) => setTimeout(r, 20));
      child.kill("SIGKILL");
      await new Promise((r) => child.once("close", r));
      const listed = JSON.parse(
        ok(await run(["--json", "backups", "list", "--repo", "local"])).stdout,
      ) as { id: string; status: string; source?: string }[];
      // Killed mid-dump: the object never committed (atomic put), so at most an incomplete entry.
      expect(listed.filter((b) => !before.has(b.id) && b.status === "complete")).toEqual([]);
      const killed = listed.filter((b) => !before.has(b.id));
      expect(killed.every((b) => b.status === "incomplete")).toBe(true);
      // The dead process's lock is recognised as stale: the next run needs no manual unlock.
      const next = JSON.parse(
        ok(await run(["--json", "backup", "db", "--repo", "local"])).stdout,
      ) as { ok: boolean; id: string };
      expect(next.ok).toBe(true);
      const plan = JSON.parse(
        ok(await run(["--json", "repo", "prune-incomplete", "--repo", "local"])).stdout,
      ) as { plans: { incomplete: { backupId: string }[] }[] };
      expect(plan.plans[0]!.incomplete.map((i) => i.backupId)).not.toContain(next.id);
      expect(plan.plans[0]!.incomplete.map((i) => i.backupId).sort()).toEqual(
        killed.map((k) => k.id).sort(),
      );
    } finally {
      await writeConfig(ws.dir, config(source().port));
    }
  });

  it("unreachable server, wrong password and a too-old pg_dump give clear errors", async () => {
    await writeConfig(ws.dir, config(1));
    let result = await run(["backup", "db", "--repo", "local"]);
    expect(result.code).toBe(6);
    expect(result.stderr).toMatch(
      /^error\[PG_CONNECT\]: cannot connect to PostgreSQL postgres@127\.0\.0\.1:1\/accountancy/m,
    );

    await source().psql("CREATE ROLE backup_user LOGIN PASSWORD 'right-password' SUPERUSER");
    await source().psql("ALTER SYSTEM SET password_encryption = 'scram-sha-256'");
    const { appendFile, readFile, writeFile } = await import("node:fs/promises");
    const hba = path.join(source().dataDir, "pg_hba.conf");
    const original = await readFile(hba, "utf8");
    await writeFile(hba, `host all backup_user 127.0.0.1/32 scram-sha-256\n${original}`);
    await source().psql("SELECT pg_reload_conf()");
    try {
      await writeConfig(
        ws.dir,
        config(source().port).replace(
          "database: accountancy",
          'database: accountancy\n    user: backup_user\n    password: "${DB_PASSWORD}"',
        ),
      );
      result = await run(["backup", "db", "--repo", "local"], { DB_PASSWORD: "wrong-password" });
      expect(result.code).toBe(6);
      expect(result.stderr).toMatch(/^error\[PG_CONNECT\]: .*password authentication failed/m);
      expect(result.stderr + result.stdout).not.toContain("wrong-password");
      ok(await run(["backup", "db", "--repo", "local"], { DB_PASSWORD: "right-password" }));
    } finally {
      await writeFile(hba, original);
      await source().psql("SELECT pg_reload_conf()");
    }

    const fakeBin = path.join(ws.dir, "oldbin");
    const { mkdir, chmod } = await import("node:fs/promises");
    await mkdir(fakeBin, { recursive: true });
    await appendFile(
      path.join(fakeBin, "pg_dump"),
      "#!/bin/sh\necho 'pg_dump (PostgreSQL) 13.9'\n",
    );
    await chmod(path.join(fakeBin, "pg_dump"), 0o755);
    await writeConfig(
      ws.dir,
      config(source().port).replace(
        "database: accountancy",
        `database: accountancy\n    binDir: ${fakeBin}`,
      ),
    );
    result = await run(["backup", "db", "--repo", "local"]);
    expect(result.code).toBe(6);
    expect(result.stderr).toMatch(
      /^error\[TOOL_MISSING\]: .*pg_dump is version 13, older than the server \(15\)/m,
    );
    await writeConfig(ws.dir, config(source().port));
  });
});

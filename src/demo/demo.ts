import { mkdtemp, rm, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { configSchema, type LifeboatConfig } from "../config/schema.js";
import { backupDatabase } from "../engine/database.js";
import "../engine/db-verify.js";
import { restoreIntoNewDatabase, type RestoreIntoResult } from "../engine/restore-db.js";
import { withClient } from "../postgres/connection.js";
import { startThrowawayCluster, type ThrowawayCluster } from "../postgres/cluster.js";
import { Repository } from "../repository/repository.js";
import { verifyBackup, type VerifyReport } from "../repository/verify.js";
import { LocalStorage } from "../storage/index.js";
import { generateIdentity, parseIdentity } from "../stream/age/index.js";
import { sampleDataSql, sampleSchemaSql } from "./sample.js";

export interface DemoOptions {
  scale: number;
  /** Keep the repository and identity here instead of deleting them. */
  keepDir?: string;
  onStep?: (message: string) => void;
}

export interface DemoReport {
  ok: boolean;
  postgres: { version: string; port: number };
  database: { name: string; sizeBytes: number; tables: number };
  backup: {
    id: string;
    plainBytes: number;
    storedBytes: number;
    ms: number;
    throughputMBps: number;
  };
  verify: { ok: boolean; ms: number; checks: string[] };
  restore: { database: string; ms: number; validation: RestoreIntoResult["validation"] };
  contentsMatch: { table: string; ok: boolean }[];
  repository?: string;
  totalMs: number;
}

const DATABASE = "accountancy";
const TABLES = [
  "users",
  "clients",
  "kyc_verifications",
  "onboarding_sessions",
  "activity_logs",
  "engagement_letters",
];

/**
 * The main job on embedded defaults: a throwaway PostgreSQL with a realistic sample of the first
 * user's database, a fresh key and a local repository; back up, verify, restore into a new
 * database, prove the copy equals the original, report, clean up.
 */
export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const step = options.onStep ?? (() => undefined);
  const started = Date.now();
  const workDir = options.keepDir ?? (await mkdtemp(path.join(tmpdir(), "lifeboat-demo-")));
  let cluster: ThrowawayCluster | undefined;
  try {
    step("starting a throwaway PostgreSQL");
    cluster = await startThrowawayCluster({});
    await cluster.psql(`CREATE DATABASE ${DATABASE}`);
    step(`loading a sample accountancy database (scale ${options.scale})`);
    await cluster.psql(sampleSchemaSql() + sampleDataSql(options.scale), { database: DATABASE });
    const version = await cluster.psql("SHOW server_version");

    const { identity, recipient } = generateIdentity();
    const config = demoConfig(workDir, recipient, cluster.port);
    const repository = await Repository.init(
      "local",
      new LocalStorage(path.join(workDir, "repository")),
      {
        format: "age-v1",
        recipients: [recipient],
      },
    );
    if (options.keepDir) {
      const { writeIdentityFile } = await import("../stream/age/index.js");
      await writeIdentityFile(path.join(workDir, "identity.txt"), identity);
    }
    await chmod(workDir, 0o700);

    step("backing up (pg_dump → zstd → age → repository)");
    const backupStarted = Date.now();
    const committed = await backupDatabase(config, "app", [repository]);
    const backupMs = Date.now() - backupStarted;
    const manifest = committed.manifests[0]!.manifest;

    step("verifying (checksums, decryption, pg_restore --list)");
    const verifyStarted = Date.now();
    const identities = [parseIdentity(identity)];
    const verified: VerifyReport = await verifyBackup(repository, manifest, {
      level: "full",
      identities,
    });
    const verifyMs = Date.now() - verifyStarted;

    step("restoring into a new database and validating");
    const restored = await restoreIntoNewDatabase({
      repository,
      manifest,
      identities,
      target: {
        host: "127.0.0.1",
        port: cluster.port,
        user: cluster.superuser,
        database: DATABASE,
      },
      database: `${DATABASE}_restored`,
      jobs: 1,
      withGlobals: false,
      checks: config.databases.app!.checks,
    });
    const contentsMatch = await compareContents(cluster, DATABASE, `${DATABASE}_restored`);
    const size = await withClient(
      { host: "127.0.0.1", port: cluster.port, user: cluster.superuser, database: DATABASE },
      async (client) =>
        Number(
          (await client.query<{ s: string }>("SELECT pg_database_size(current_database()) AS s"))
            .rows[0]!.s,
        ),
    );

    return {
      ok: verified.ok && restored.validation.ok && contentsMatch.every((c) => c.ok),
      postgres: { version, port: cluster.port },
      database: { name: DATABASE, sizeBytes: size, tables: TABLES.length },
      backup: {
        id: committed.id,
        plainBytes: manifest.totals.plainBytes,
        storedBytes: manifest.totals.storedBytes,
        ms: backupMs,
        throughputMBps: manifest.totals.plainBytes / 1e6 / Math.max(0.001, backupMs / 1000),
      },
      verify: {
        ok: verified.ok,
        ms: verifyMs,
        checks: [...verified.objects, ...verified.extra].map(
          (c) => `${c.name}: ${c.ok ? "ok" : c.problem}`,
        ),
      },
      restore: {
        database: restored.database,
        ms: restored.restoreMs,
        validation: restored.validation,
      },
      contentsMatch,
      ...(options.keepDir ? { repository: path.join(workDir, "repository") } : {}),
      totalMs: Date.now() - started,
    };
  } finally {
    step("cleaning up");
    await cluster?.destroy().catch(() => undefined);
    if (!options.keepDir) await rm(workDir, { recursive: true, force: true });
  }
}

function demoConfig(workDir: string, recipient: string, port: number): LifeboatConfig {
  return configSchema.parse({
    repositories: { local: { type: "local", path: path.join(workDir, "repository") } },
    encryption: { recipients: [recipient] },
    databases: {
      app: {
        host: "127.0.0.1",
        port,
        user: "postgres",
        database: DATABASE,
        checks: [
          {
            name: "every KYC check belongs to a client",
            sql: "SELECT NOT EXISTS (SELECT 1 FROM kyc_verifications k LEFT JOIN clients c ON c.id = k.client_id WHERE c.id IS NULL)",
          },
          {
            name: "invoice sequence survived",
            sql: "SELECT last_value >= 100000 FROM invoice_number_seq",
          },
          {
            name: "engagement letter (large object) readable",
            sql: "SELECT length(lo_get(letter)) > 0 FROM engagement_letters LIMIT 1",
          },
        ],
      },
    },
  });
}

/** md5 over every row in primary-key order: equal sums mean equal contents, not just counts. */
async function compareContents(
  cluster: ThrowawayCluster,
  original: string,
  copy: string,
): Promise<{ table: string; ok: boolean }[]> {
  const results = [];
  for (const table of TABLES) {
    const sql = `SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM ${table} t`;
    const [a, b] = await Promise.all([
      cluster.psql(sql, { database: original }),
      cluster.psql(sql, { database: copy }),
    ]);
    results.push({ table, ok: a === b && a.length === 32 });
  }
  return results;
}

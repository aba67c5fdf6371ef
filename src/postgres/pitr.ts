import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { LifeboatError, toLifeboatError } from "../errors.js";
import type { Repository } from "../repository/repository.js";
import type { AgeIdentity } from "../stream/age/index.js";
import { onExit, runTool, toolFailed } from "../util/process.js";
import { extractTar, freePort, prepareTargetDir, writeRecoveryBlock } from "./datadir.js";
import { reachOf, segmentSet } from "../wal/chain.js";
import { distPath, restoreCommand, shellWord, type WalContext } from "../wal/config.js";
import { startFetchBroker, type BrokerStats } from "../wal/broker.js";
import {
  baseBackups,
  committedNames,
  readRestorePoint,
  walInventory,
  type BaseBackupInfo,
} from "../wal/inventory.js";
import { formatLsn, parseLsn, restorePointKey } from "../wal/layout.js";
import { chooseBaseBackup, recoveryTargetSettings, type PitrTarget } from "../wal/target.js";
import { BASE_OBJECT } from "./basebackup.js";
import { requirePgBin } from "./binaries.js";
import { startPostgresOnDataDir, stopPostgres, type RunningPostgres } from "./cluster.js";
import { connect } from "./connection.js";
import { stopSync, unprivilegedRunAs } from "./local-server.js";
import { collectTableStats, type TableStats } from "./stats.js";

/**
 * Point-in-time restore into a new data directory: choose the base backup, stream its tar out of
 * the repository into `tar -x`, check it with pg_verifybackup, write recovery settings whose
 * restore_command asks this process (the fetch broker) for WAL, start PostgreSQL, wait until it
 * reaches the target and promotes (or pauses), then run the validation queries.
 */

export interface PitrOptions {
  context: WalContext;
  configFile: string;
  repositories: Repository[];
  identities: readonly AgeIdentity[];
  target: PitrTarget;
  targetDir: string;
  /** Leave the server running on this port; without it a free port is used and the server stopped. */
  port?: number;
  pause?: boolean;
  backupId?: string;
  /** Keep the restored cluster's archive_command (it becomes the new primary). */
  keepArchiving?: boolean;
  verify?: boolean;
  prefetch: number;
  timeoutMs?: number;
  log?: (message: string) => void;
}

export interface PitrResult {
  backup: { id: string; repository: string; stopLsn: string; stopTime: string; reason: string };
  target: PitrTarget;
  archiveReach: { lsn: string; partial: boolean };
  recovered: {
    state: "promoted" | "paused";
    lsn: string;
    lastTransactionAt: string | null;
    timeline: number;
  };
  /** For a time target: how far before it the last recovered transaction lies. */
  gapBeforeTargetSeconds?: number;
  validation: { ok: boolean; tables: TableStats[]; problems: string[] };
  fetch: BrokerStats;
  timings: { extractMs: number; recoveryMs: number; totalMs: number };
  server: { running: boolean; port: number; dataDir: string; logFile: string };
}

export async function restorePitr(options: PitrOptions): Promise<PitrResult> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const { context } = options;
  let target = options.target;
  const candidates: BaseBackupInfo[] = [];
  for (const repository of options.repositories) {
    const have = new Set(candidates.map((c) => c.id));
    for (const base of await baseBackups(repository, context.databaseName)) {
      if (!have.has(base.id)) candidates.push(base);
    }
    if (target.kind === "name" && !target.lsn) {
      const point = await readRestorePoint(repository, restorePointKey(target.name));
      if (point) target = { ...target, lsn: point.lsn };
    }
  }
  const choice = chooseBaseBackup(candidates, target, options.backupId);
  const base = choice.base;
  const repository = base.repository;
  const inventory = await walInventory(repository);
  const segmentSize = base.segmentSize ?? inventory.segmentSize;
  const reach = reachOf(
    base,
    segmentSet(committedNames(inventory), segmentSize),
    inventory.histories,
    segmentSize,
  );
  if (!reach.consistent) {
    throw new LifeboatError(
      "WAL_GAP",
      `base backup ${base.id} cannot become consistent: WAL is missing from "${repository.name}"`,
    );
  }
  if (target.kind === "lsn" && parseLsn(target.lsn) > reach.endLsn && !reach.end.partial) {
    throw new LifeboatError(
      "WAL_GAP",
      `target ${target.lsn} is beyond the archived WAL (ends at ${formatLsn(reach.endLsn)})`,
    );
  }
  log(
    `base backup ${base.id} from "${repository.name}" (${choice.reason}); archive reaches ${formatLsn(reach.endLsn)}`,
  );

  const dataDir = path.resolve(options.targetDir);
  await prepareTargetDir(dataDir);
  const record = base.manifest.objects.find((o) => o.name === BASE_OBJECT);
  if (!record) throw new LifeboatError("OBJECT_MISSING", `backup ${base.id} has no ${BASE_OBJECT}`);
  await extractTar(
    await repository.openObject(base.manifest, record, { identities: options.identities }),
    dataDir,
  );
  const extractMs = Date.now() - started;
  if (options.verify !== false && existsSync(path.join(dataDir, "backup_manifest"))) {
    const verify = requirePgBin("pg_verifybackup", { allowNewer: true });
    const args = [...(base.walIncluded ? [] : ["-n"]), "-q", dataDir];
    const result = await runTool(verify.path, args);
    if (result.code !== 0)
      throw toolFailed(verify.path, result, { context: `restored ${base.id}` });
  }

  const owner = unprivilegedRunAs();
  const socketDir = await mkdtemp(path.join(tmpdir(), "lifeboat-pitr-"));
  const broker = await startFetchBroker({
    repositories: [repository, ...options.repositories.filter((r) => r !== repository)],
    identities: options.identities,
    socketDir,
    dataDir,
    prefetch: options.prefetch,
    allowPartial: target.kind === "latest",
    ...(owner ? { owner } : {}),
    log,
  });
  const fetchCommand = [process.execPath, distPath("wal", "fetch-client.js"), broker.socketPath]
    .map(shellWord)
    .concat(["%f", "%p"])
    .join(" ");
  await writeRecoveryBlock(dataDir, {
    restore_command: fetchCommand,
    recovery_target_timeline: "latest",
    ...recoveryTargetSettings(target, Boolean(options.pause)),
    ...(options.keepArchiving ? {} : { archive_mode: "off" }),
  });
  await writeFile(path.join(dataDir, "recovery.signal"), "");
  await rm(path.join(dataDir, "standby.signal"), { force: true });

  const port = options.port ?? (await freePort());
  const logFile = `${dataDir}.log`;
  let server: RunningPostgres | undefined;
  const major = Number.parseInt(await readFile(path.join(dataDir, "PG_VERSION"), "utf8"), 10);
  const binDir = requirePgBin("pg_ctl", { major }).binDir;
  // Without this process (the broker) the server cannot go on recovering: never leave it half-way.
  const unregister = onExit(() => stopSync(dataDir, binDir, owner));
  const recoveryStarted = Date.now();
  try {
    try {
      server = await startPostgresOnDataDir(dataDir, {
        port,
        binDir,
        logFile,
        stopOnExit: false,
        timeoutSeconds: Math.ceil((options.timeoutMs ?? 3600_000) / 1000),
      });
    } catch (error) {
      throw await recoveryFailure(logFile, broker.stats, error);
    }
    const recovered = await waitForTarget(
      options,
      port,
      Boolean(options.pause),
      logFile,
      broker.stats,
    );
    const recoveryMs = Date.now() - recoveryStarted;
    const validation = await validate(options, port, target);
    if (recovered.state === "promoted") {
      await writeRecoveryBlock(dataDir, options.keepArchiving ? {} : { archive_mode: "off" });
    } else {
      // Resuming later (pg_wal_replay_resume) must not depend on this process: fetch directly.
      await writeRecoveryBlock(dataDir, {
        restore_command: restoreCommand(options.configFile),
        recovery_target_timeline: "latest",
        ...recoveryTargetSettings(target, true),
        ...(options.keepArchiving ? {} : { archive_mode: "off" }),
      });
      await query(options, port, "SELECT pg_reload_conf()");
    }
    if (options.port === undefined) await server.stop("fast");
    const lastAt = recovered.lastTransactionAt;
    return {
      backup: {
        id: base.id,
        repository: repository.name,
        stopLsn: formatLsn(base.stopLsn),
        stopTime: base.stopTime,
        reason: choice.reason,
      },
      target,
      archiveReach: { lsn: formatLsn(reach.endLsn), partial: Boolean(reach.end.partial) },
      recovered,
      ...(target.kind === "time" && lastAt
        ? { gapBeforeTargetSeconds: (Date.parse(target.time) - Date.parse(lastAt)) / 1000 }
        : {}),
      validation,
      fetch: broker.stats,
      timings: { extractMs, recoveryMs, totalMs: Date.now() - started },
      server: { running: options.port !== undefined, port, dataDir, logFile },
    };
  } catch (error) {
    if (server || existsSync(path.join(dataDir, "postmaster.pid")))
      await stopPostgres(dataDir, "immediate").catch(() => undefined);
    throw error;
  } finally {
    unregister();
    await broker.close();
    await rm(socketDir, { recursive: true, force: true });
  }
}

async function query<T extends Record<string, unknown>>(
  options: PitrOptions,
  port: number,
  sql: string,
  database = options.context.database.database,
): Promise<T[]> {
  const client = await connect(
    { ...options.context.connection, host: "127.0.0.1", port },
    database,
  );
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function waitForTarget(
  options: PitrOptions,
  port: number,
  pause: boolean,
  logFile: string,
  stats: BrokerStats,
): Promise<PitrResult["recovered"]> {
  const deadline = Date.now() + (options.timeoutMs ?? 3600_000);
  for (;;) {
    let rows: {
      rec: boolean;
      paused: string | null;
      lsn: string | null;
      at: Date | null;
      tli: number;
    }[];
    try {
      rows = await query(
        options,
        port,
        `SELECT pg_is_in_recovery() AS rec,
                CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END AS paused,
                pg_last_wal_replay_lsn()::text AS lsn, pg_last_xact_replay_timestamp() AS at,
                CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())
                     ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS tli`,
        "postgres",
      );
    } catch (error) {
      if (!existsSync(path.join(options.targetDir, "postmaster.pid")))
        throw await recoveryFailure(logFile, stats, error);
      rows = [];
    }
    const row = rows[0];
    const done = row && (pause ? row.paused === "paused" : !row.rec);
    if (row && done) {
      return {
        state: row.rec ? "paused" : "promoted",
        lsn: row.lsn ?? "",
        lastTransactionAt: row.at ? row.at.toISOString() : null,
        timeline: row.tli,
      };
    }
    if (Date.now() > deadline)
      throw new LifeboatError("RECOVERY_FAILED", "recovery did not reach its target in time");
    await sleep(300);
  }
}

async function validate(
  options: PitrOptions,
  port: number,
  target: PitrTarget,
): Promise<PitrResult["validation"]> {
  const client = await connect(
    { ...options.context.connection, host: "127.0.0.1", port },
    options.context.database.database,
  );
  try {
    const tables = await collectTableStats(client, options.context.database.keyTables);
    const problems: string[] = [];
    if (target.kind === "time") {
      for (const t of tables) {
        if (t.latest && Date.parse(t.latest) > Date.parse(target.time)) {
          problems.push(
            `${t.table}: newest ${t.timestampColumn} ${t.latest} is after the target ${target.time}`,
          );
        }
      }
    }
    return { ok: problems.length === 0, tables, problems };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Names what stopped recovery: lifeboat's own fetch errors first, then the server's FATAL lines. */
async function recoveryFailure(
  logFile: string,
  stats: BrokerStats,
  cause: unknown,
): Promise<LifeboatError> {
  const text = await readFile(logFile, "utf8").catch(() => "");
  const lines = text
    .split("\n")
    .filter((l) => /FATAL|PANIC|lifeboat wal fetch/.test(l))
    .slice(-6);
  const fetchError = stats.errors[stats.errors.length - 1];
  const reason = fetchError
    ? `restoring ${fetchError.name} failed: error[${fetchError.code}] ${fetchError.message}`
    : (lines[lines.length - 1] ?? toLifeboatError(cause).message);
  return new LifeboatError(
    "RECOVERY_FAILED",
    `PostgreSQL stopped recovery: ${reason}${lines.length > 0 ? `\n${lines.join("\n")}` : ""}`,
    {
      cause,
      data: { logFile, ...(fetchError ? { fetchError } : {}) },
      ...(/recovery ended before configured recovery target was reached/.test(text)
        ? { hint: "the archived WAL ends before the target: choose an earlier target, or --latest" }
        : {}),
    },
  );
}

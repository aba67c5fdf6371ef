import { readFile } from "node:fs/promises";
import path from "node:path";
import { durationSeconds } from "../config/schema.js";
import { toLifeboatError, type ErrorCode } from "../errors.js";
import { withClient } from "../postgres/connection.js";
import type { Repository } from "../repository/repository.js";
import { reachOf, segmentSet, type Reach } from "./chain.js";
import type { WalContext } from "./config.js";
import { baseBackups, committedNames, walInventory, type BaseBackupInfo } from "./inventory.js";
import { formatLsn, parseWalName, segmentName, segmentStartLsn } from "./layout.js";
import { readWalRecord } from "./push.js";
import {
  PID_FILE,
  pendingFiles,
  readUploaderState,
  runningPid,
  type UploaderState,
} from "./spool.js";

/**
 * Archive lag and recoverability. Lag is everything not yet in the repositories: segments
 * PostgreSQL still has to hand over (`.ready` files in pg_wal) plus segments waiting in the spool.
 * Recoverability is measured from the repositories alone: earliest and latest point a PITR can reach.
 */

export interface RecoverablePoint {
  lsn: string;
  /** For the earliest point: when the base backup became consistent. For the latest: when PostgreSQL last wrote the newest WAL file. */
  time?: string;
  timeline: number;
  baseBackup: string;
}

export interface RepositoryRecoverability {
  repository: string;
  ok: boolean;
  error?: { code: ErrorCode; message: string };
  baseBackups?: number;
  walFiles?: number;
  walBytes?: number;
  timelines?: number[];
  earliest?: RecoverablePoint;
  latest?: RecoverablePoint & { partial: boolean; exposureSeconds?: number };
  /** Where the chain from the newest base backup stops short of newer WAL in the archive. */
  gap?: { after: string; missing: string };
}

export async function recoverability(
  repository: Repository,
  source: string,
  now = new Date(),
): Promise<RepositoryRecoverability> {
  try {
    const [inventory, bases] = await Promise.all([
      walInventory(repository),
      baseBackups(repository, source),
    ]);
    const segmentSize = bases.at(-1)?.segmentSize ?? inventory.segmentSize;
    const names = committedNames(inventory);
    const set = segmentSet(names, segmentSize);
    const reaches = bases
      .map((base) => ({ base, reach: reachOf(base, set, inventory.histories, segmentSize) }))
      .filter((r) => r.reach.consistent);
    const report: RepositoryRecoverability = {
      repository: repository.name,
      ok: true,
      baseBackups: bases.length,
      walFiles: names.length,
      walBytes: [...inventory.files.values()].reduce(
        (sum, e) => sum + e.dataKeys.reduce((s, d) => s + d.size, 0),
        0,
      ),
      timelines: [...new Set([...inventory.files.values()].map((e) => e.name.timeline))].sort(
        (a, b) => a - b,
      ),
    };
    const oldest = reaches[0];
    if (oldest) {
      report.earliest = {
        lsn: formatLsn(oldest.base.stopLsn),
        time: oldest.base.stopTime,
        timeline: oldest.base.timeline,
        baseBackup: oldest.base.id,
      };
    }
    const best = reaches.reduce<{ base: BaseBackupInfo; reach: Reach } | undefined>(
      (winner, r) => (!winner || r.reach.endLsn >= winner.reach.endLsn ? r : winner),
      undefined,
    );
    if (best) {
      report.latest = await latestPoint(repository, best.base, best.reach, segmentSize, now);
      // Only timelines on the recovery path count: others are branches nobody recovers along.
      const onPath = new Set(best.reach.path.map((step) => step.timeline));
      const newestSegment = names
        .map((n) => parseWalName(n))
        .filter((n) => n?.kind === "segment" && onPath.has(n.timeline))
        .sort((a, b) => (a!.name.slice(8) < b!.name.slice(8) ? 1 : -1))[0];
      const missing = segmentName(
        best.reach.targetTimeline,
        best.reach.end.firstMissing,
        segmentSize,
      );
      if (newestSegment && newestSegment.name.slice(8) > missing.slice(8)) {
        report.gap = {
          after: segmentName(
            best.reach.end.lastTimeline ?? best.reach.targetTimeline,
            best.reach.end.lastSegment,
            segmentSize,
          ),
          missing,
        };
      }
    }
    return report;
  } catch (error) {
    const failure = toLifeboatError(error);
    return {
      repository: repository.name,
      ok: false,
      error: { code: failure.code, message: failure.message },
    };
  }
}

async function latestPoint(
  repository: Repository,
  base: BaseBackupInfo,
  reach: Reach,
  segmentSize: number,
  now: Date,
): Promise<NonNullable<RepositoryRecoverability["latest"]>> {
  const { end } = reach;
  if (end.partial) {
    const name = parseWalName(
      `${segmentName(end.partial.timeline, end.partial.segno, segmentSize)}.partial`,
    )!;
    const record = await readWalRecord(repository, name).catch(() => undefined);
    if (record) {
      return {
        lsn: formatLsn(
          segmentStartLsn(end.partial.segno, segmentSize) + BigInt(record.validBytes ?? 0),
        ),
        time: record.modifiedAt,
        timeline: end.partial.timeline,
        baseBackup: base.id,
        partial: true,
        exposureSeconds: (now.getTime() - Date.parse(record.modifiedAt)) / 1000,
      };
    }
  }
  if (end.lastTimeline === undefined) {
    // Only the WAL inside the base backup: the latest point is its end.
    return {
      lsn: formatLsn(base.stopLsn),
      time: base.stopTime,
      timeline: base.timeline,
      baseBackup: base.id,
      partial: false,
      exposureSeconds: (now.getTime() - Date.parse(base.stopTime)) / 1000,
    };
  }
  const last = parseWalName(segmentName(end.lastTimeline, end.lastSegment, segmentSize))!;
  const record = await readWalRecord(repository, last).catch(() => undefined);
  return {
    lsn: formatLsn(reach.endLsn),
    ...(record ? { time: record.modifiedAt } : {}),
    timeline: end.lastTimeline,
    baseBackup: base.id,
    partial: false,
    ...(record ? { exposureSeconds: (now.getTime() - Date.parse(record.modifiedAt)) / 1000 } : {}),
  };
}

export interface ServerArchiveState {
  ok: boolean;
  error?: string;
  inRecovery?: boolean;
  walLevel?: string;
  archiveMode?: string;
  archiveCommand?: string;
  archiveTimeoutSeconds?: number;
  segmentSize?: number;
  currentLsn?: string;
  currentSegment?: string;
  archivedCount?: number;
  lastArchived?: string;
  lastArchivedAt?: string;
  failedCount?: number;
  lastFailed?: string;
  lastFailedAt?: string;
  /** `.ready` files: segments PostgreSQL holds in pg_wal because archiving has not taken them. */
  ready?: number;
  oldestReadyAt?: string;
  slot?: {
    name: string;
    active: boolean;
    restartLsn?: string;
    lagBytes?: number;
    walStatus?: string;
  };
}

export async function serverArchiveState(context: WalContext): Promise<ServerArchiveState> {
  try {
    return await withClient(context.connection, async (client) => {
      const { rows } = await client.query<Record<string, string | number | boolean | Date | null>>(
        `SELECT pg_is_in_recovery() AS in_recovery,
                current_setting('wal_level') AS wal_level,
                current_setting('archive_mode') AS archive_mode,
                current_setting('archive_command') AS archive_command,
                (SELECT setting::int FROM pg_settings WHERE name = 'archive_timeout') AS archive_timeout,
                (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size,
                CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END::text AS lsn,
                CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS segment,
                a.archived_count::int, a.last_archived_wal, a.last_archived_time,
                a.failed_count::int, a.last_failed_wal, a.last_failed_time
           FROM pg_stat_archiver a`,
      );
      const r = rows[0]!;
      const state: ServerArchiveState = {
        ok: true,
        inRecovery: Boolean(r.in_recovery),
        walLevel: String(r.wal_level),
        archiveMode: String(r.archive_mode),
        archiveCommand: String(r.archive_command),
        archiveTimeoutSeconds: Number(r.archive_timeout),
        segmentSize: Number(r.segment_size),
        ...(r.lsn ? { currentLsn: String(r.lsn) } : {}),
        ...(r.segment ? { currentSegment: String(r.segment) } : {}),
        archivedCount: Number(r.archived_count),
        ...(r.last_archived_wal ? { lastArchived: String(r.last_archived_wal) } : {}),
        ...(r.last_archived_time
          ? { lastArchivedAt: (r.last_archived_time as Date).toISOString() }
          : {}),
        failedCount: Number(r.failed_count),
        ...(r.last_failed_wal ? { lastFailed: String(r.last_failed_wal) } : {}),
        ...(r.last_failed_time ? { lastFailedAt: (r.last_failed_time as Date).toISOString() } : {}),
      };
      // Needs superuser or pg_monitor; without it the lag is reported from the spool only.
      const ready = await client
        .query<{ ready: number; oldest: Date | null }>(
          `SELECT count(*)::int AS ready, min(modification) AS oldest
             FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'`,
        )
        .catch(() => undefined);
      if (ready) {
        state.ready = ready.rows[0]!.ready;
        if (ready.rows[0]!.oldest) state.oldestReadyAt = ready.rows[0]!.oldest.toISOString();
      }
      if (context.wal.mode === "stream") {
        const slot = await client.query<{
          active: boolean;
          restart_lsn: string | null;
          lag: string | null;
          wal_status: string | null;
        }>(
          `SELECT active, restart_lsn::text, wal_status,
                  (CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) END)::bigint::text AS lag
             FROM pg_replication_slots WHERE slot_name = $1`,
          [context.wal.slot],
        );
        const s = slot.rows[0];
        state.slot = s
          ? {
              name: context.wal.slot,
              active: s.active,
              ...(s.restart_lsn ? { restartLsn: s.restart_lsn } : {}),
              ...(s.lag ? { lagBytes: Number(s.lag) } : {}),
              ...(s.wal_status ? { walStatus: s.wal_status } : {}),
            }
          : { name: context.wal.slot, active: false };
      }
      return state;
    });
  } catch (error) {
    return { ok: false, error: toLifeboatError(error).message };
  }
}

export interface SpoolStatus {
  dir: string;
  pending: number;
  pendingBytes: number;
  oldestPendingAt?: string;
  uploader: { running: boolean; pid?: number };
  state: UploaderState;
  stream?: Record<string, unknown>;
}

export async function spoolStatus(spoolDir: string): Promise<SpoolStatus> {
  const files = await pendingFiles(spoolDir);
  const pid = await runningPid(path.join(spoolDir, PID_FILE));
  const oldest = files.reduce<Date | undefined>(
    (min, f) => (!min || f.modifiedAt < min ? f.modifiedAt : min),
    undefined,
  );
  const stream = await readFile(path.join(spoolDir, "stream.json"), "utf8")
    .then((t) => JSON.parse(t) as Record<string, unknown>)
    .catch(() => undefined);
  return {
    dir: spoolDir,
    pending: files.length,
    pendingBytes: files.reduce((sum, f) => sum + f.bytes, 0),
    ...(oldest ? { oldestPendingAt: oldest.toISOString() } : {}),
    uploader: { running: pid !== undefined, ...(pid ? { pid } : {}) },
    state: await readUploaderState(spoolDir),
    ...(stream ? { stream } : {}),
  };
}

export interface WalStatusReport {
  mode: "archive" | "stream";
  healthy: boolean;
  problems: string[];
  lag: { segments: number; bytes: number; oldestAt?: string; oldestAgeSeconds?: number };
  server: ServerArchiveState;
  spool: SpoolStatus;
  repositories: RepositoryRecoverability[];
}

/** Everything `wal status` and `check wal` report; `problems` empty means healthy. */
export async function walStatus(
  context: WalContext,
  repositories: Repository[],
  options: { rpo: string; now?: Date; skipRepositories?: boolean } = { rpo: "1h" },
): Promise<WalStatusReport> {
  const now = options.now ?? new Date();
  const [server, spool, repos] = await Promise.all([
    serverArchiveState(context),
    spoolStatus(context.spoolDir),
    options.skipRepositories
      ? Promise.resolve([])
      : Promise.all(repositories.map((r) => recoverability(r, context.databaseName, now))),
  ]);
  const segmentSize = server.segmentSize ?? 16 << 20;
  const oldestCandidates = [server.oldestReadyAt, spool.oldestPendingAt].filter((t): t is string =>
    Boolean(t),
  );
  const oldestAt = oldestCandidates.sort()[0];
  const lag = {
    segments: (server.ready ?? 0) + spool.pending,
    bytes: (server.ready ?? 0) * segmentSize + spool.pendingBytes,
    ...(oldestAt
      ? { oldestAt, oldestAgeSeconds: (now.getTime() - Date.parse(oldestAt)) / 1000 }
      : {}),
  };
  const problems: string[] = [];
  const rpoSeconds = durationSeconds(options.rpo);
  const timeout = durationSeconds(context.wal.archiveTimeout);
  if (!server.ok) problems.push(`cannot query the server: ${server.error}`);
  if (
    server.lastFailedAt &&
    (!server.lastArchivedAt || server.lastFailedAt > server.lastArchivedAt)
  ) {
    problems.push(
      `archive_command is failing: ${server.lastFailed} failed at ${server.lastFailedAt}`,
    );
  }
  if (spool.state.conflict)
    problems.push(`archiving stopped by a conflict: ${spool.state.conflict.message}`);
  if (spool.state.lastError && spool.pending > 0) {
    problems.push(
      `uploads are failing (${spool.state.lastError.at}): ${spool.state.lastError.message}`,
    );
  }
  if (spool.pending > 0 && !spool.uploader.running && context.wal.mode === "archive") {
    problems.push(`${spool.pending} file(s) wait in the spool and no uploader runs`);
  }
  if (lag.oldestAgeSeconds !== undefined && lag.oldestAgeSeconds > Math.max(2 * timeout, 120)) {
    problems.push(
      `the oldest WAL not yet in the repositories is ${Math.round(lag.oldestAgeSeconds)} s old (${lag.segments} file(s), ${lag.bytes} bytes)${lag.oldestAgeSeconds > rpoSeconds ? ` — beyond the RPO of ${options.rpo}` : ""}`,
    );
  }
  if (context.wal.mode === "stream" && server.ok && !server.slot?.active) {
    problems.push(
      `replication slot ${context.wal.slot} is not active: is \`lifeboat wal stream\` running?`,
    );
  }
  for (const repo of repos) {
    if (!repo.ok) problems.push(`repository "${repo.repository}": ${repo.error?.message}`);
    else if (repo.gap)
      problems.push(
        `repository "${repo.repository}": WAL gap after ${repo.gap.after} (${repo.gap.missing} missing)`,
      );
    else if (repo.baseBackups === 0)
      problems.push(
        `repository "${repo.repository}": no base backup, so no point in time is recoverable`,
      );
  }
  return {
    mode: context.wal.mode,
    healthy: problems.length === 0,
    problems,
    lag,
    server,
    spool,
    repositories: repos,
  };
}

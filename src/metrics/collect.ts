import { Gauge, Registry } from "prom-client";
import type { LifeboatConfig } from "../config/schema.js";
import { mapLimited } from "../engine/catalog.js";
import { dbDetails } from "../engine/database.js";
import type { Manifest } from "../repository/format.js";
import { readRuns, type RunRecord } from "../repository/history.js";
import type { Repository } from "../repository/repository.js";
import type { RepositoryFailure } from "../repository/writer.js";
import { walContext } from "../wal/config.js";
import { walStatus } from "../wal/status.js";

const CHECK_VALUE = { pass: 0, warn: 1, fail: 2 } as const;

/** Builds a fresh registry from the repositories and their run history (stateless: any host can scrape). */
export async function collectMetrics(
  repositories: Repository[],
  unreachable: RepositoryFailure[] = [],
  config?: LifeboatConfig,
): Promise<Registry> {
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[]) =>
    new Gauge({ name, help, labelNames, registers: [registry] });
  const up = gauge("lifeboat_repository_up", "1 when the repository could be opened", [
    "repository",
  ]);
  const count = gauge("lifeboat_backups", "Complete backups in the repository", [
    "repository",
    "kind",
    "source",
  ]);
  const lastSuccess = gauge(
    "lifeboat_backup_last_success_timestamp_seconds",
    "End time of the newest complete backup",
    ["repository", "kind", "source"],
  );
  const lastDuration = gauge(
    "lifeboat_backup_last_duration_seconds",
    "Duration of the newest complete backup",
    ["repository", "kind", "source"],
  );
  const lastSize = gauge(
    "lifeboat_backup_last_size_bytes",
    "Stored size of the newest complete backup",
    ["repository", "kind", "source"],
  );
  const lastPlain = gauge(
    "lifeboat_backup_last_plain_bytes",
    "Uncompressed size of the newest complete backup",
    ["repository", "kind", "source"],
  );
  const earliest = gauge(
    "lifeboat_recovery_point_earliest_timestamp_seconds",
    "Oldest point that can be restored",
    ["repository", "source"],
  );
  const latest = gauge(
    "lifeboat_recovery_point_latest_timestamp_seconds",
    "Newest point that can be restored",
    ["repository", "source"],
  );
  const restoreTestTime = gauge(
    "lifeboat_restore_test_last_timestamp_seconds",
    "When the last restore test finished",
    ["repository", "source"],
  );
  const restoreTestOk = gauge(
    "lifeboat_restore_test_last_success",
    "1 when the last restore test passed",
    ["repository", "source"],
  );
  const restoreTestSeconds = gauge(
    "lifeboat_restore_test_last_restore_seconds",
    "Measured restore time of the last restore test",
    ["repository", "source"],
  );
  const checkStatus = gauge(
    "lifeboat_check_status",
    "Last `lifeboat check` result: 0 pass, 1 warn, 2 fail",
    ["check", "subject"],
  );
  const checkTime = gauge(
    "lifeboat_check_last_timestamp_seconds",
    "When `lifeboat check` last ran",
    [],
  );
  const failures = gauge(
    "lifeboat_run_last_failure_timestamp_seconds",
    "Newest failed run per operation",
    ["repository", "operation"],
  );

  for (const failure of unreachable) up.set({ repository: failure.repository }, 0);
  const checkRuns: RunRecord[] = [];
  for (const repository of repositories) {
    up.set({ repository: repository.name }, 1);
    const ids = await repository.listBackupIds();
    const manifests = (
      await mapLimited(ids, 8, (id) => repository.readManifest(id).catch(() => undefined))
    ).filter((m): m is Manifest => Boolean(m));
    const groups = new Map<string, Manifest[]>();
    for (const manifest of manifests) {
      const key = `${manifest.kind}\u0000${manifest.source ?? ""}`;
      groups.set(key, [...(groups.get(key) ?? []), manifest]);
    }
    for (const group of groups.values()) {
      const newest = group[0]!;
      const labels = {
        repository: repository.name,
        kind: newest.kind,
        source: newest.source ?? "",
      };
      count.set(labels, group.length);
      lastSuccess.set(labels, Date.parse(newest.finishedAt) / 1000);
      lastDuration.set(labels, newest.durationMs / 1000);
      lastSize.set(labels, newest.totals.storedBytes);
      lastPlain.set(labels, newest.totals.plainBytes);
      if (newest.kind === "db") {
        const point = (m: Manifest) =>
          Date.parse(dbDetails(m.details).snapshotTime ?? m.startedAt) / 1000;
        const sourceLabels = { repository: repository.name, source: newest.source ?? "" };
        latest.set(sourceLabels, point(newest));
        earliest.set(sourceLabels, point(group[group.length - 1]!));
      }
    }
    const runs = await readRuns(repository).catch(() => [] as RunRecord[]);
    const seenTests = new Set<string>();
    for (const run of runs) {
      if (run.operation === "restore-test" && !seenTests.has(run.source ?? "")) {
        seenTests.add(run.source ?? "");
        const labels = { repository: repository.name, source: run.source ?? "" };
        restoreTestTime.set(labels, Date.parse(run.finishedAt) / 1000);
        restoreTestOk.set(labels, run.result === "ok" ? 1 : 0);
        restoreTestSeconds.set(labels, Number(run.details.restoreMs ?? run.durationMs) / 1000);
      }
      if (run.operation === "check") checkRuns.push(run);
      if (run.result === "failed") {
        const labels = { repository: repository.name, operation: run.operation };
        const seconds = Date.parse(run.finishedAt) / 1000;
        if (
          ((await failures.get()).values.find(
            (v) =>
              v.labels.repository === labels.repository && v.labels.operation === labels.operation,
          )?.value ?? 0) < seconds
        ) {
          failures.set(labels, seconds);
        }
      }
    }
  }
  // Each result from the newest run that has it: `check wal` every hour must not hide what the
  // nightly full `check` found (a vanished failing series would look like a resolved alert).
  checkRuns.sort((a, b) => Date.parse(b.finishedAt) - Date.parse(a.finishedAt));
  if (checkRuns[0]) checkTime.set(Date.parse(checkRuns[0].finishedAt) / 1000);
  const seenResults = new Set<string>();
  for (const run of checkRuns) {
    const results = (run.details.results ?? []) as {
      id: string;
      subject?: string;
      status: keyof typeof CHECK_VALUE;
    }[];
    for (const result of results) {
      const labels = { check: result.id, subject: result.subject ?? "" };
      const key = `${labels.check}\u0000${labels.subject}`;
      if (seenResults.has(key)) continue;
      seenResults.add(key);
      checkStatus.set(labels, CHECK_VALUE[result.status] ?? 2);
    }
  }
  if (config?.wal) await collectWal(registry, config, repositories, { earliest, latest });
  return registry;
}

/** WAL archive lag, and the recoverable points point-in-time recovery adds. */
async function collectWal(
  registry: Registry,
  config: LifeboatConfig,
  repositories: Repository[],
  points: { earliest: Gauge; latest: Gauge },
): Promise<void> {
  const gauge = (name: string, help: string, labelNames: string[]) =>
    new Gauge({ name, help, labelNames, registers: [registry] });
  const lagSegments = gauge(
    "lifeboat_wal_archive_lag_segments",
    "WAL files not yet in the repositories (waiting in pg_wal or in the spool)",
    ["database"],
  );
  const lagBytes = gauge(
    "lifeboat_wal_archive_lag_bytes",
    "Bytes of WAL not yet in the repositories",
    ["database"],
  );
  const lagAge = gauge(
    "lifeboat_wal_archive_lag_seconds",
    "Age of the oldest WAL file not yet in the repositories (0 when none waits)",
    ["database"],
  );
  const healthy = gauge(
    "lifeboat_wal_archive_healthy",
    "1 when WAL archiving reports no problem (see `lifeboat wal status`)",
    ["database"],
  );
  const lastArchived = gauge(
    "lifeboat_wal_last_archived_timestamp_seconds",
    "When the server last archived a WAL file",
    ["database"],
  );
  const wal = walContext(config);
  const labels = { database: wal.databaseName };
  const report = await walStatus(wal, repositories, { rpo: config.objectives.rpo }).catch(
    () => undefined,
  );
  if (!report) {
    healthy.set(labels, 0);
    return;
  }
  lagSegments.set(labels, report.lag.segments);
  lagBytes.set(labels, report.lag.bytes);
  lagAge.set(labels, report.lag.oldestAgeSeconds ?? 0);
  healthy.set(labels, report.healthy ? 1 : 0);
  if (report.server.lastArchivedAt)
    lastArchived.set(labels, Date.parse(report.server.lastArchivedAt) / 1000);
  const current = async (g: Gauge, l: Record<string, string>) =>
    (await g.get()).values.find(
      (v) => v.labels.repository === l.repository && v.labels.source === l.source,
    )?.value;
  for (const repo of report.repositories) {
    const l = { repository: repo.repository, source: wal.databaseName };
    if (repo.earliest?.time) {
      const seconds = Date.parse(repo.earliest.time) / 1000;
      const known = await current(points.earliest, l);
      if (known === undefined || seconds < known) points.earliest.set(l, seconds);
    }
    if (repo.latest?.time) {
      const seconds = Date.parse(repo.latest.time) / 1000;
      const known = await current(points.latest, l);
      if (known === undefined || seconds > known) points.latest.set(l, seconds);
    }
  }
}

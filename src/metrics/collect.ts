import { Gauge, Registry } from "prom-client";
import { mapLimited } from "../engine/catalog.js";
import { dbDetails } from "../engine/database.js";
import type { Manifest } from "../repository/format.js";
import { readRuns, type RunRecord } from "../repository/history.js";
import type { Repository } from "../repository/repository.js";
import type { RepositoryFailure } from "../repository/writer.js";

/**
 * Extra gauges from other modules (WAL archive lag, bucket protection) register here and are
 * filled on every collection.
 */
export type MetricsContributor = (registry: Registry, repositories: Repository[]) => Promise<void>;
const contributors: MetricsContributor[] = [];
export function registerMetricsContributor(contributor: MetricsContributor): void {
  contributors.push(contributor);
}

const CHECK_VALUE = { pass: 0, warn: 1, fail: 2 } as const;

/** Builds a fresh registry from the repositories and their run history (stateless: any host can scrape). */
export async function collectMetrics(
  repositories: Repository[],
  unreachable: RepositoryFailure[] = [],
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
  let newestCheck: RunRecord | undefined;
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
      if (run.operation === "check" && (!newestCheck || run.finishedAt > newestCheck.finishedAt))
        newestCheck = run;
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
  if (newestCheck) {
    checkTime.set(Date.parse(newestCheck.finishedAt) / 1000);
    const results = (newestCheck.details.results ?? []) as {
      id: string;
      subject?: string;
      status: keyof typeof CHECK_VALUE;
    }[];
    for (const result of results)
      checkStatus.set(
        { check: result.id, subject: result.subject ?? "" },
        CHECK_VALUE[result.status] ?? 2,
      );
  }
  for (const contributor of contributors)
    await contributor(registry, repositories).catch(() => undefined);
  return registry;
}

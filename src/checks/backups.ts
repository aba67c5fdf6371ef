import { durationSeconds } from "../config/schema.js";
import { mapLimited } from "../engine/catalog.js";
import { DB_KIND, dbDetails } from "../engine/database.js";
import type { Manifest } from "../repository/format.js";
import { readRuns } from "../repository/history.js";
import type { Repository } from "../repository/repository.js";
import { verifyBackup } from "../repository/verify.js";
import type { CheckContext, CheckDefinition, CheckResult } from "./types.js";

const DAY = 86_400_000;

/** Complete db backups of each repository, newest first (read once per check run). */
const catalogs = new WeakMap<Repository, Promise<Manifest[]>>();
function dbBackups(repository: Repository): Promise<Manifest[]> {
  let cached = catalogs.get(repository);
  if (!cached) {
    cached = repository.listBackupIds().then(async (ids) => {
      const manifests = await mapLimited(ids, 8, (id) =>
        repository.readManifest(id).catch(() => undefined),
      );
      return manifests.filter((m): m is Manifest => m !== undefined && m.kind === DB_KIND);
    });
    catalogs.set(repository, cached);
  }
  return cached;
}

function each(context: CheckContext): { repository: Repository; database: string }[] {
  return context.repositories.flatMap((repository) =>
    Object.keys(context.config.databases).map((database) => ({ repository, database })),
  );
}

const takenAt = (m: Manifest) => new Date(dbDetails(m.details).snapshotTime ?? m.startedAt);
const utcDay = (d: Date) => d.toISOString().slice(0, 10);

export const dailyBackups: CheckDefinition = {
  id: "backups.daily",
  title: "a backup for each recent day",
  async run(context) {
    const days = context.config.monitoring.backupDays;
    const results: CheckResult[] = [];
    for (const { repository, database } of each(context)) {
      const backups = (await dbBackups(repository)).filter((m) => m.source === database);
      const have = new Set(backups.map((m) => utcDay(takenAt(m))));
      const createdDay = utcDay(new Date(repository.config.createdAt));
      const missing: string[] = [];
      for (let i = 1; i <= days; i++) {
        const day = utcDay(new Date(context.now.getTime() - i * DAY));
        if (day >= createdDay && !have.has(day)) missing.push(day);
      }
      const subject = `${repository.name}/${database}`;
      results.push(
        missing.length === 0
          ? {
              id: this.id,
              title: this.title,
              subject,
              status: "pass",
              message: `backups on each of the last ${days} days (since the repository exists)`,
            }
          : {
              id: this.id,
              title: this.title,
              subject,
              status: "fail",
              message: `no backup on ${missing.length} of the last ${days} days: ${missing.join(", ")}`,
              hint: "check the scheduler (cron/systemd timer) and the backup logs; run `lifeboat backup db` now",
              details: { missing },
            },
      );
    }
    return results;
  },
};

export const freshBackup: CheckDefinition = {
  id: "backups.fresh",
  title: "newest backup within the schedule",
  async run(context) {
    const limitMs =
      (durationSeconds(context.config.monitoring.backupInterval) +
        durationSeconds(context.config.monitoring.grace)) *
      1000;
    const results: CheckResult[] = [];
    for (const { repository, database } of each(context)) {
      const newest = (await dbBackups(repository)).find((m) => m.source === database);
      const subject = `${repository.name}/${database}`;
      if (!newest) {
        results.push({
          id: this.id,
          title: this.title,
          subject,
          status: "fail",
          message: "no backup at all",
          hint: "run `lifeboat backup db`",
        });
        continue;
      }
      const age = context.now.getTime() - takenAt(newest).getTime();
      results.push({
        id: this.id,
        title: this.title,
        subject,
        status: age <= limitMs ? "pass" : "fail",
        message: `newest backup ${newest.id} is ${hours(age)} old (limit ${hours(limitMs)})`,
        ...(age <= limitMs
          ? {}
          : {
              hint: "the scheduled backup did not run or failed; run `lifeboat backup db` and check its logs",
            }),
        details: { backupId: newest.id, ageSeconds: Math.round(age / 1000) },
      });
    }
    return results;
  },
};

export const backupIntegrity: CheckDefinition = {
  id: "backups.integrity",
  title: "stored bytes match the manifests",
  async run(context) {
    const since = context.now.getTime() - context.config.monitoring.backupDays * DAY;
    const level = !context.deep ? "quick" : context.identities.length > 0 ? "full" : "stored";
    const results: CheckResult[] = [];
    for (const repository of context.repositories) {
      const recent = (await dbBackups(repository)).filter((m) => takenAt(m).getTime() >= since);
      const bad: string[] = [];
      for (const manifest of recent) {
        const report = await verifyBackup(repository, manifest, {
          level,
          identities: context.identities,
        });
        if (!report.ok)
          bad.push(
            `${manifest.id} (${[...report.objects, ...report.extra]
              .filter((o) => !o.ok)
              .map((o) => `${o.name}: ${o.code}`)
              .join(", ")})`,
          );
      }
      results.push({
        id: this.id,
        title: this.title,
        subject: repository.name,
        status: bad.length === 0 ? "pass" : "fail",
        message:
          bad.length === 0
            ? `${recent.length} recent backup(s) intact (${level} check)`
            : `${bad.length} damaged: ${bad.join("; ")}`,
        ...(bad.length === 0
          ? {}
          : {
              hint: "restore from another repository or backup; run `lifeboat verify --all` for details",
            }),
      });
    }
    return results;
  },
};

export const offsiteCopies: CheckDefinition = {
  id: "backups.offsite",
  title: "every recent backup is in every repository",
  async run(context) {
    if (context.repositories.length + context.unreachable.length < 2) return [];
    const since = context.now.getTime() - context.config.monitoring.backupDays * DAY;
    const byRepo = await Promise.all(
      context.repositories.map(async (r) => ({ repository: r, backups: await dbBackups(r) })),
    );
    const results: CheckResult[] = [];
    for (const { repository, backups } of byRepo) {
      const problems: string[] = [];
      for (const other of byRepo) {
        if (other.repository === repository) continue;
        for (const manifest of other.backups.filter(
          (m) => takenAt(m).getTime() >= since && !m.labels.reason,
        )) {
          const mine = backups.find((m) => m.id === manifest.id);
          if (!mine)
            problems.push(`${manifest.id} missing (present in "${other.repository.name}")`);
          else if (
            mine.objects.map((o) => o.sha256).join() !==
            manifest.objects.map((o) => o.sha256).join()
          ) {
            problems.push(`${manifest.id} differs from "${other.repository.name}"`);
          }
        }
      }
      const unique = [...new Set(problems)];
      results.push({
        id: this.id,
        title: this.title,
        subject: repository.name,
        status: unique.length === 0 ? "pass" : "fail",
        message:
          unique.length === 0
            ? "matches the other repositories"
            : unique.slice(0, 5).join("; ") +
              (unique.length > 5 ? ` (+${unique.length - 5} more)` : ""),
        ...(unique.length === 0
          ? {}
          : {
              hint: "this repository was unreachable during those backups; take a new backup now",
            }),
      });
    }
    return results;
  },
};

export const backupSizes: CheckDefinition = {
  id: "backups.size",
  title: "backup sizes are sane versus history",
  async run(context) {
    const { sizeDropTolerance, sizeGrowthTolerance, sizeHistory } = context.config.monitoring;
    const results: CheckResult[] = [];
    for (const { repository, database } of each(context)) {
      const backups = (await dbBackups(repository)).filter(
        (m) => m.source === database && !m.labels.reason,
      );
      const newest = backups[0];
      if (!newest) continue;
      const subject = `${repository.name}/${database}`;
      const size = newest.totals.plainBytes;
      const previous = backups.slice(1, 1 + sizeHistory).map((m) => m.totals.plainBytes);
      const base = {
        id: this.id,
        title: this.title,
        subject,
        details: { backupId: newest.id, bytes: size },
      };
      if (size === 0) {
        results.push({
          ...base,
          status: "fail",
          message: `newest backup ${newest.id} is empty`,
          hint: "the dump produced nothing: check pg_dump's permissions and the database",
        });
        continue;
      }
      if (previous.length === 0) {
        results.push({
          ...base,
          status: "pass",
          message: `first backup (${size} bytes); no history to compare yet`,
        });
        continue;
      }
      const median = medianOf(previous);
      const change = (size - median) / median;
      const percent = `${change >= 0 ? "+" : ""}${Math.round(change * 100)}%`;
      if (change < -sizeDropTolerance) {
        results.push({
          ...base,
          status: "fail",
          message: `newest backup is ${percent} versus the median of the previous ${previous.length}`,
          hint: "a sudden drop usually means a broken or partial dump (dropped tables, permissions); inspect it before trusting it",
        });
      } else if (change > sizeGrowthTolerance) {
        results.push({
          ...base,
          status: "warn",
          message: `newest backup is ${percent} versus the median of the previous ${previous.length}`,
          hint: "confirm the growth is expected (a data import?)",
        });
      } else {
        results.push({
          ...base,
          status: "pass",
          message: `${percent} versus the median of the previous ${previous.length}`,
        });
      }
    }
    return results;
  },
};

export const restoreTests: CheckDefinition = {
  id: "restore-test.recent",
  title: "the last restore test passed and is recent",
  async run(context) {
    const maxAgeMs = durationSeconds(context.config.monitoring.restoreTestMaxAge) * 1000;
    const results: CheckResult[] = [];
    for (const database of Object.keys(context.config.databases)) {
      const runs = (
        await Promise.all(
          context.repositories.map((r) =>
            readRuns(r, { operation: "restore-test" }).catch(() => []),
          ),
        )
      )
        .flat()
        .filter((run) => run.source === database)
        .sort((a, b) => Date.parse(b.finishedAt) - Date.parse(a.finishedAt));
      const last = runs[0];
      const base = { id: this.id, title: this.title, subject: database };
      if (!last) {
        results.push({
          ...base,
          status: "warn",
          message: "no restore test has been run",
          hint: "run `lifeboat verify --restore-test` (schedule it monthly or more often)",
        });
      } else if (last.result !== "ok") {
        results.push({
          ...base,
          status: "fail",
          message: `the last restore test (${last.finishedAt}, backup ${last.backupId}) failed`,
          hint: "run `lifeboat verify --restore-test` and read its report",
        });
      } else {
        const age = context.now.getTime() - Date.parse(last.finishedAt);
        results.push({
          ...base,
          status: age <= maxAgeMs ? "pass" : "warn",
          message: `last restore test passed ${hours(age)} ago (backup ${last.backupId}, restore ${Math.round(Number(last.details.restoreMs ?? 0) / 1000)}s)`,
          ...(age <= maxAgeMs ? {} : { hint: "run `lifeboat verify --restore-test`" }),
        });
      }
    }
    return results;
  },
};

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function hours(ms: number): string {
  const h = ms / 3_600_000;
  return h < 1
    ? `${Math.round(ms / 60_000)}m`
    : h < 48
      ? `${h.toFixed(1)}h`
      : `${(h / 24).toFixed(1)}d`;
}

export { dbBackups, takenAt };

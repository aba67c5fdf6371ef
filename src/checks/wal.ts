import { walContext } from "../wal/config.js";
import { setupWal, switchAndWait } from "../wal/setup.js";
import { walStatus } from "../wal/status.js";
import { hours } from "./backups.js";
import { registerRecoveryPointSource } from "./objectives.js";
import type { CheckContext, CheckDefinition, CheckResult } from "./types.js";

/**
 * WAL archiving in the checklist: server settings, archive lag against the RPO, the chain from the
 * newest base backup, and (with `check wal` or --switch) a forced segment switch seen arriving.
 */
export function walCheck(options: { switchTimeoutMs?: number } = {}): CheckDefinition {
  return {
    id: "wal.archiving",
    title: "WAL archiving healthy",
    async run(context: CheckContext): Promise<CheckResult[]> {
      if (!context.config.wal) return [];
      const wal = walContext(context.config);
      const base = { id: this.id, title: this.title, subject: wal.databaseName };
      const results: CheckResult[] = [];
      const setup = await setupWal(wal, "(configuration)", false);
      const wrong = setup.settings.filter((s) => !s.ok);
      results.push(
        wrong.length === 0
          ? {
              ...base,
              id: "wal.settings",
              title: "server settings for archiving",
              status: "pass",
              message: "wal_level, archive_mode, archive_command and archive_timeout as required",
            }
          : {
              ...base,
              id: "wal.settings",
              title: "server settings for archiving",
              status: "fail",
              message: wrong
                .map((s) => `${s.name} is '${s.current}', want '${s.value}'`)
                .join("; "),
              hint: "run `lifeboat setup wal --apply` (wal_level and archive_mode need a restart)",
            },
      );
      const report = await walStatus(wal, context.repositories, {
        rpo: context.config.objectives.rpo,
        now: context.now,
      });
      results.push(
        report.healthy
          ? {
              ...base,
              status: "pass",
              message: `${report.lag.segments} segment(s) waiting${report.lag.oldestAgeSeconds ? `, oldest ${hours(report.lag.oldestAgeSeconds * 1000)}` : ""}`,
              details: { lag: report.lag },
            }
          : {
              ...base,
              status: "fail",
              message: report.problems.join("; "),
              hint: "check `lifeboat wal status`; pg_wal grows until archiving works again",
              details: { lag: report.lag },
            },
      );
      for (const repo of report.repositories) {
        if (repo.gap) {
          results.push({
            ...base,
            id: "wal.chain",
            title: "WAL chain complete from the newest base backup",
            subject: `${repo.repository}/${wal.databaseName}`,
            status: "fail",
            message: `gap after ${repo.gap.after}: ${repo.gap.missing} is missing`,
            hint: "take a new base backup (`lifeboat backup base`) so point-in-time recovery works again",
          });
        }
      }
      if (options.switchTimeoutMs) {
        try {
          const arrived = await switchAndWait(wal, context.repositories, options.switchTimeoutMs);
          results.push({
            ...base,
            id: "wal.end-to-end",
            title: "a forced segment switch arrives",
            status: "pass",
            message: `${arrived.segment} arrived in ${arrived.repositories.length} repository(ies) after ${Math.round(arrived.arrivedAfterMs)} ms`,
          });
        } catch (error) {
          results.push({
            ...base,
            id: "wal.end-to-end",
            title: "a forced segment switch arrives",
            status: "fail",
            message: (error as Error).message,
            hint: "check archive_command and `lifeboat wal status`",
          });
        }
      }
      return results;
    },
  };
}

/** The newest WAL in the archive is a recoverable point for the RPO estimate. */
registerRecoveryPointSource(async (context, database) => {
  if (!context.config.wal || context.config.wal.database !== database) return undefined;
  const wal = walContext(context.config);
  const report = await walStatus(wal, context.repositories, {
    rpo: context.config.objectives.rpo,
    now: context.now,
  });
  const latest = report.repositories
    .map((r) => r.latest)
    .filter((l): l is NonNullable<typeof l> => Boolean(l?.time))
    .sort((a, b) => Date.parse(b.time!) - Date.parse(a.time!))[0];
  return latest?.time ? { time: new Date(latest.time), via: `WAL up to ${latest.lsn}` } : undefined;
});

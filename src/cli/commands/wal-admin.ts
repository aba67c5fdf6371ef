import type { Command } from "commander";
import { durationSeconds } from "../../config/schema.js";
import { EXIT, LifeboatError, toLifeboatError } from "../../errors.js";
import { openRepositoriesTolerant } from "../../engine/repositories.js";
import { walContext } from "../../wal/config.js";
import { createRestorePoint, setupWal, switchAndWait, type SwitchResult } from "../../wal/setup.js";
import {
  walStatus,
  type RepositoryRecoverability,
  type WalStatusReport,
} from "../../wal/status.js";
import { action, type Context } from "../context.js";
import { formatBytes, formatDuration } from "../output.js";
import { collect } from "./repo.js";

/** `wal status`, `wal check`, `setup wal`, `restore-point create` and `status`. */
export function registerWalAdminCommands(program: Command, wal: Command): void {
  wal
    .command("status")
    .description(
      "archive lag (segments and bytes not yet in the repositories, age of the oldest) and recoverable points",
    )
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .action(
      action(async (context, options: { repo: string[] }) => {
        const report = await statusReport(context, options.repo);
        context.out.result(report, () => renderStatus(report));
        if (!report.healthy) process.exitCode = EXIT.failure;
      }),
    );

  program
    .command("status")
    .description(
      "recoverability at a glance: earliest and latest recoverable point per repository, archive lag",
    )
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .action(
      action(async (context, options: { repo: string[] }) => {
        const report = await statusReport(context, options.repo);
        context.out.result(report, () => renderStatus(report));
      }),
    );

  const setup = program.command("setup").description("prepare a server for lifeboat");
  setup
    .command("wal")
    .description(
      "print the server settings continuous archiving needs; --apply sets them with ALTER SYSTEM",
    )
    .option(
      "--apply",
      "apply with ALTER SYSTEM and reload (wal_level and archive_mode need a restart)",
    )
    .action(
      action(async (context, options: { apply?: boolean }) => {
        const { config, file } = await context.config();
        const result = await setupWal(walContext(config), file, Boolean(options.apply));
        context.out.result(result, () => [
          ...result.settings.map(
            (s) =>
              `${s.ok ? context.out.color.green("ok  ") : context.out.color.yellow("set ")} ${s.name} = '${s.value}'${s.ok ? "" : `   (now: '${s.current}')`}\n      # ${s.why}`,
          ),
          ...(result.slot
            ? [
                `replication slot ${result.slot.name}: ${result.slot.created ? "created" : "exists"}`,
              ]
            : []),
          ...(result.applied.length > 0 ? [`applied: ${result.applied.join(", ")}`] : []),
          ...(result.restartNeeded
            ? ["restart PostgreSQL for the settings marked pending to take effect"]
            : []),
          ...(!options.apply && result.settings.some((s) => !s.ok)
            ? ["run again with --apply to set them (ALTER SYSTEM), or put them in postgresql.conf"]
            : []),
        ]);
      }),
    );

  // `lifeboat check wal` (the checklist's WAL group) is the main entry; this is the detailed view.
  wal
    .command("check")
    .description(
      "settings right, archiving healthy, and a forced segment switch arrives in every repository",
    )
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("--timeout <duration>", "how long to wait for the switched segment", "2m")
    .option("--no-switch", "do not force a segment switch (status checks only)")
    .action(
      action(async (context, options: { repo: string[]; timeout: string; switch: boolean }) => {
        const { config, file } = await context.config();
        const walCtx = walContext(config);
        const checks: { name: string; ok: boolean; detail: string }[] = [];
        const setup = await setupWal(walCtx, file, false).catch((error: unknown) =>
          toLifeboatError(error),
        );
        if (setup instanceof LifeboatError)
          checks.push({ name: "settings", ok: false, detail: setup.message });
        else {
          for (const s of setup.settings) {
            checks.push({
              name: `setting ${s.name}`,
              ok: Boolean(s.ok),
              detail: s.ok
                ? String(s.current)
                : `is '${s.current}', want '${s.value}'${s.pendingRestart ? " (pending restart)" : ""}`,
            });
          }
        }
        const report = await statusReport(context, options.repo);
        checks.push({
          name: "archive lag",
          ok: report.healthy,
          detail: report.healthy
            ? `${report.lag.segments} file(s) waiting`
            : report.problems.join("; "),
        });
        if (options.switch) {
          const { repositories } = await openRepositoriesTolerant(config, options.repo);
          const arrived = await switchAndWait(
            walCtx,
            repositories,
            durationSeconds(options.timeout) * 1000,
          ).catch((error: unknown) => toLifeboatError(error));
          checks.push(
            arrived instanceof LifeboatError
              ? { name: "end to end", ok: false, detail: arrived.message }
              : { name: "end to end", ok: true, detail: describeSwitch(arrived) },
          );
        }
        const ok = checks.every((c) => c.ok);
        context.out.result({ ok, checks, status: report }, () => [
          ...checks.map(
            (c) =>
              `${c.ok ? context.out.color.green("ok  ") : context.out.color.red("FAIL")} ${c.name}: ${c.detail}`,
          ),
          ok ? "WAL archiving works" : "WAL archiving has problems",
        ]);
        if (!ok) process.exitCode = EXIT.failure;
      }),
    );

  program
    .command("restore-point")
    .description("named restore points")
    .command("create")
    .description(
      "create a named restore point (pg_create_restore_point) and record it in the repositories",
    )
    .argument("<name>", "restore point name")
    .option(
      "--no-switch",
      "do not force a segment switch (the point is then archived within archive_timeout)",
    )
    .action(
      action(async (context, name: string, options: { switch: boolean }) => {
        const { config } = await context.config();
        const { repositories } = await openRepositoriesTolerant(config, []);
        const point = await createRestorePoint(
          walContext(config),
          repositories,
          name,
          options.switch,
        );
        context.out.result(
          point,
          () =>
            `restore point "${point.name}" at ${point.lsn} (timeline ${point.timeline}, ${point.createdAt}); restore with \`lifeboat restore pitr --name ${point.name}\``,
        );
      }),
    );
}

async function statusReport(context: Context, repo: string[]): Promise<WalStatusReport> {
  const { config } = await context.config();
  const { repositories, failures } = await openRepositoriesTolerant(config, repo).catch(
    (error: unknown) => ({
      repositories: [],
      failures: [{ repository: "*", error: toLifeboatError(error) }],
    }),
  );
  const report = await walStatus(walContext(config), repositories, { rpo: config.objectives.rpo });
  for (const failure of failures) {
    report.repositories.push({
      repository: failure.repository,
      ok: false,
      error: { code: failure.error.code, message: failure.error.message },
    });
    report.problems.push(`repository "${failure.repository}": ${failure.error.message}`);
    report.healthy = false;
  }
  return report;
}

function describeSwitch(s: SwitchResult): string {
  return `${s.segment} reached ${s.repositories.join(", ")} ${formatDuration(s.arrivedAfterMs)} after the switch`;
}

function renderStatus(report: WalStatusReport): string[] {
  const lines = [`WAL archiving (${report.mode} mode): ${report.healthy ? "healthy" : "PROBLEMS"}`];
  const s = report.server;
  if (s.ok) {
    lines.push(
      `  server: at ${s.currentLsn ?? "?"}${s.currentSegment ? ` (${s.currentSegment})` : ""}; last archived ${s.lastArchived ?? "none"}${s.lastArchivedAt ? ` at ${s.lastArchivedAt}` : ""}; ${s.failedCount ?? 0} failure(s)${s.lastFailed ? `, last ${s.lastFailed} at ${s.lastFailedAt}` : ""}`,
    );
  }
  const age = report.lag.oldestAgeSeconds;
  lines.push(
    `  lag: ${report.lag.segments} file(s), ${formatBytes(report.lag.bytes)} not yet in the repositories${age !== undefined ? `, oldest ${formatDuration(age * 1000)}` : ""} (pg_wal ready: ${s.ready ?? "?"}, spool: ${report.spool.pending}; uploader ${report.spool.uploader.running ? `running (pid ${report.spool.uploader.pid})` : "idle"})`,
  );
  for (const repo of report.repositories) lines.push(...renderRepository(repo));
  for (const problem of report.problems) lines.push(`  problem: ${problem}`);
  return lines;
}

function renderRepository(repo: RepositoryRecoverability): string[] {
  if (!repo.ok) return [`  ${repo.repository}: ${repo.error?.message}`];
  const point = (p?: { lsn: string; time?: string; timeline: number }) =>
    p ? `${p.time ?? "?"} (LSN ${p.lsn}, timeline ${p.timeline})` : "none";
  return [
    `  ${repo.repository}: ${repo.baseBackups} base backup(s), ${repo.walFiles} WAL file(s) (${formatBytes(repo.walBytes ?? 0)})`,
    `    earliest recoverable: ${point(repo.earliest)}`,
    `    latest recoverable:   ${point(repo.latest)}${repo.latest?.partial ? " (partial segment)" : ""}${repo.latest?.exposureSeconds !== undefined ? `, ${formatDuration(repo.latest.exposureSeconds * 1000)} ago` : ""}`,
  ];
}

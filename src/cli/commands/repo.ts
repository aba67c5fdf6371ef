import type { Command } from "commander";
import { LifeboatError } from "../../errors.js";
import {
  describeRepository,
  initRepositories,
  pruneIncomplete,
  unlock,
} from "../../engine/repo-admin.js";
import { action } from "../context.js";
import { formatBytes, renderTable } from "../output.js";

export const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerRepoCommands(program: Command): void {
  const repo = program.command("repo").description("create and maintain repositories");

  repo
    .command("init")
    .description("create the configured repositories (all, or those named with --repo)")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .action(
      action(async (context, options: { repo: string[] }) => {
        const { config } = await context.config();
        const results = await initRepositories(config, options.repo);
        context.out.result(results, () =>
          results.map((r) =>
            r.status === "failed"
              ? `${r.repository}: FAILED ${r.error?.code}: ${r.error?.message}`
              : `${r.repository}: ${r.status === "created" ? "created" : "already initialised"} at ${r.location} (id ${r.id ?? "?"})`,
          ),
        );
        const failed = results.filter((r) => r.status === "failed");
        if (failed.length > 0) {
          const first = failed[0]!.error!;
          throw new LifeboatError(first.code, `${failed[0]!.repository}: ${first.message}`, {
            data: { failed: failed.map((f) => f.repository) },
          });
        }
      }),
    );

  repo
    .command("info")
    .description("show format, id, encryption, backup count and locks of each repository")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .action(
      action(async (context, options: { repo: string[] }) => {
        const infos = await Promise.all(
          (await context.repositories(options.repo)).map(describeRepository),
        );
        context.out.result(infos, () =>
          infos.flatMap((info) => [
            `${info.repository}  ${info.location}`,
            `  id ${info.id}, format v${info.format}, created ${info.createdAt}`,
            `  encryption: ${info.encryption}; backups: ${info.backups}; locks: ${info.locks.length}`,
            ...info.locks.map(
              (l) =>
                `    ${l.key} ${l.lock ? `${l.lock.operation} on ${l.lock.host} pid ${l.lock.pid}` : "unreadable"}${l.stale ? ` (stale: ${l.reason})` : ""}`,
            ),
          ]),
        );
      }),
    );

  repo
    .command("prune-incomplete")
    .description("remove leftovers of backups that never finished (no manifest)")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("-n, --dry-run", "show what would be removed, remove nothing")
    .action(
      action(async (context, options: { repo: string[]; dryRun?: boolean }) => {
        const plans = await pruneIncomplete(
          await context.repositories(options.repo),
          Boolean(options.dryRun),
        );
        context.out.result({ dryRun: Boolean(options.dryRun), plans }, () =>
          plans.flatMap((plan) => [
            `${plan.repository}: ${plan.incomplete.length} incomplete backup(s), ${formatBytes(plan.totalBytes)} ${options.dryRun ? "would be removed" : "removed"}`,
            ...renderTable(
              [
                { header: "backup", value: (e: (typeof plan.incomplete)[number]) => e.backupId },
                { header: "objects", value: (e) => String(e.keys.length), align: "right" },
                { header: "size", value: (e) => formatBytes(e.bytes), align: "right" },
              ],
              plan.incomplete,
            ).map((line) => `  ${line}`),
            ...plan.inProgress.map((id) => `  ${id}: being written now (locked), left alone`),
          ]),
        );
      }),
    );

  repo
    .command("unlock")
    .description("remove stale locks (dead processes, or not refreshed for 30 minutes)")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("--all", "remove every lock, also live ones (only when no lifeboat is running)")
    .action(
      action(async (context, options: { repo: string[]; all?: boolean }) => {
        const results: { repository: string; removed: string[] }[] = [];
        for (const repository of await context.repositories(options.repo)) {
          results.push({
            repository: repository.name,
            removed: await unlock(repository, Boolean(options.all)),
          });
        }
        context.out.result(results, () =>
          results.map((r) => `${r.repository}: removed ${r.removed.length} lock(s)`),
        );
      }),
    );
}

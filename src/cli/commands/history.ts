import type { Command } from "commander";
import { openForChecks } from "../../engine/check.js";
import { readRuns, type RunRecord } from "../../repository/history.js";
import { action } from "../context.js";
import { formatDuration, renderTable } from "../output.js";
import { collect } from "./repo.js";

export function registerHistoryCommand(program: Command): void {
  program
    .command("history")
    .description(
      "list recorded runs (backup, restore, verify, restore-test, prune, check), newest first",
    )
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("--operation <name>", "only this operation")
    .option("--since <time>", "only runs since this ISO time")
    .option("-n, --limit <n>", "at most this many runs", "50")
    .action(
      action(
        async (
          context,
          options: { repo: string[]; operation?: string; since?: string; limit: string },
        ) => {
          const since = options.since ? new Date(options.since) : undefined;
          const rows: (RunRecord & { repository: string })[] = [];
          // Like `check`: one unreachable repository must not hide the others' history.
          const { config } = await context.config();
          const { repositories, unreachable } = await openForChecks(config, options.repo);
          if (repositories.length === 0 && unreachable[0]) throw unreachable[0].error;
          for (const failure of unreachable)
            context.out.warn(
              `repository "${failure.repository}" is unreachable (${failure.error.code}: ${failure.error.message}); its runs are not listed`,
            );
          for (const repository of repositories) {
            const runs = await readRuns(repository, {
              ...(since && !Number.isNaN(since.getTime()) ? { since } : {}),
              ...(options.operation ? { operation: options.operation } : {}),
            });
            rows.push(...runs.map((run) => ({ ...run, repository: repository.name })));
          }
          rows.sort((a, b) => Date.parse(b.finishedAt) - Date.parse(a.finishedAt));
          const shown = rows.slice(0, Math.max(1, Number(options.limit) || 50));
          context.out.result(shown, () =>
            shown.length === 0
              ? "no runs recorded"
              : renderTable(
                  [
                    {
                      header: "finished",
                      value: (r: (typeof shown)[number]) => r.finishedAt.replace(/\.\d+Z$/, "Z"),
                    },
                    { header: "operation", value: (r) => r.operation },
                    { header: "result", value: (r) => r.result },
                    { header: "repo", value: (r) => r.repository },
                    { header: "took", value: (r) => formatDuration(r.durationMs), align: "right" },
                    {
                      header: "subject",
                      value: (r) => [r.source, r.backupId].filter(Boolean).join(" "),
                    },
                    {
                      header: "error",
                      value: (r) => (r.error ? `${r.error.code}: ${r.error.message}` : ""),
                    },
                  ],
                  shown,
                ),
          );
        },
      ),
    );
}

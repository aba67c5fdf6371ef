import type { Command } from "commander";
import { LifeboatError } from "../../errors.js";
import { prune, type PruneResult } from "../../engine/prune.js";
import { action } from "../context.js";
import { formatBytes } from "../output.js";
import { collect } from "./repo.js";

export function registerPruneCommand(program: Command): void {
  program
    .command("prune")
    .description("apply the retention policy: remove backups it no longer keeps (per repository)")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("-n, --dry-run", "print the plan (what is kept and why, what goes), change nothing")
    .option("--keep-days <n>", "override retention.keepDays")
    .option("--keep-last <n>", "override retention.keepLast")
    .action(
      action(
        async (
          context,
          options: { repo: string[]; dryRun?: boolean; keepDays?: string; keepLast?: string },
        ) => {
          const { config } = await context.config();
          const policy = {
            ...config.retention,
            ...(options.keepDays !== undefined
              ? { keepDays: nonNegative(options.keepDays, "--keep-days") }
              : {}),
            ...(options.keepLast !== undefined
              ? { keepLast: nonNegative(options.keepLast, "--keep-last") }
              : {}),
          };
          const results: PruneResult[] = [];
          for (const repository of await context.repositories(options.repo)) {
            results.push(await prune(repository, policy, { dryRun: Boolean(options.dryRun) }));
          }
          context.out.result(results, () =>
            results.flatMap((r) => [
              `${r.repository}: keep ${r.plan.keep.length}, ${r.dryRun ? "would remove" : "removed"} ${r.plan.remove.length} (${formatBytes(r.removedBytes)})`,
              ...r.plan.keep.map((d) => `  keep   ${d.id}  ${d.reasons.join("; ")}`),
              ...r.plan.remove.map((d) => `  ${r.dryRun ? "remove" : "gone  "} ${d.id}`),
            ]),
          );
        },
      ),
    );
}

function nonNegative(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) {
    throw new LifeboatError("USAGE", `${flag} must be a non-negative integer`);
  }
  return value;
}

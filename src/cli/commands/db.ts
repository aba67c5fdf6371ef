import type { Command } from "commander";
import { databaseConfig, backupDatabase } from "../../engine/database.js";
import { openRepositoriesTolerant } from "../../engine/repositories.js";
import { action } from "../context.js";
import { progressLine } from "../progress.js";
import { collect } from "./repo.js";
import { describeBackup, parseLabels, reportBackup, reportRepositoryFailures } from "./files.js";
import { LifeboatError, formatErrorLine, toLifeboatError } from "../../errors.js";
import { registerRestoreDb } from "./restore-db.js";

export function registerDbCommands(backup: Command, restore: Command): void {
  backup
    .command("db")
    .description(
      "logical backup of a database (pg_dump custom format + roles and grants) into every repository",
    )
    .argument("[databases...]", "configured database names (default: the only one)")
    .option("--all", "every configured database, one backup each")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("-l, --label <key=value>", "label to record in the manifest (repeatable)", collect, [])
    .action(
      action(
        async (
          context,
          names: string[],
          options: { all?: boolean; repo: string[]; label: string[] },
        ) => {
          const { config } = await context.config();
          if (options.all && names.length > 0)
            throw new LifeboatError("USAGE", "name databases or pass --all, not both");
          const selected = options.all
            ? Object.keys(config.databases)
            : names.length > 0
              ? names.map((n) => databaseConfig(config, n).name)
              : [databaseConfig(config, undefined).name];
          if (selected.length === 0)
            throw new LifeboatError("CONFIG_INVALID", "no databases are configured");
          const { repositories, failures } = await openRepositoriesTolerant(
            config,
            options.repo,
            (m) => context.out.detail(m),
          );
          if (selected.length === 1) {
            const committed = await backupDatabase(config, selected[0]!, repositories, {
              labels: parseLabels(options.label),
              onProgress: progressLine(`backup db ${selected[0]}`),
            });
            reportBackup(context, committed, failures);
            return;
          }
          // Several databases: one failing database must not cost the others their backup.
          const results: Record<string, unknown>[] = [];
          const lines: string[] = [];
          let firstError: LifeboatError | undefined;
          for (const name of selected) {
            try {
              const committed = await backupDatabase(config, name, repositories, {
                labels: parseLabels(options.label),
                onProgress: progressLine(`backup db ${name}`),
              });
              const described = describeBackup(committed, failures);
              results.push({ database: name, ...described.json });
              lines.push(...described.lines);
              reportRepositoryFailures(context, described.failures);
            } catch (error) {
              const failure = toLifeboatError(error);
              firstError ??= failure;
              results.push({
                database: name,
                ok: false,
                error: { code: failure.code, message: failure.message, hint: failure.hint },
              });
              context.out.note(`${formatErrorLine(failure)} (database "${name}": not backed up)`);
            }
          }
          context.out.result(results, () => lines);
          if (firstError)
            process.exitCode = Math.max(firstError.exitStatus, Number(process.exitCode ?? 0));
        },
        { notify: "backup" },
      ),
    );

  registerRestoreDb(restore);
}

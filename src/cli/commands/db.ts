import type { Command } from "commander";
import { databaseConfig, backupDatabase } from "../../engine/database.js";
import { openRepositoriesTolerant } from "../../engine/repositories.js";
import { action } from "../context.js";
import { progressLine } from "../progress.js";
import { collect } from "./repo.js";
import { parseLabels, reportBackup } from "./files.js";
import { registerRestoreDb } from "./restore-db.js";

export function registerDbCommands(backup: Command, restore: Command): void {
  backup
    .command("db")
    .description(
      "logical backup of a database (pg_dump custom format + roles and grants) into every repository",
    )
    .argument("[database]", "configured database name (default: the only one)")
    .option("-r, --repo <name>", "only this repository (repeatable)", collect, [])
    .option("-l, --label <key=value>", "label to record in the manifest (repeatable)", collect, [])
    .action(
      action(
        async (context, name: string | undefined, options: { repo: string[]; label: string[] }) => {
          const { config } = await context.config();
          const { name: dbName } = databaseConfig(config, name);
          const { repositories, failures } = await openRepositoriesTolerant(
            config,
            options.repo,
            (m) => context.out.detail(m),
          );
          const committed = await backupDatabase(config, dbName, repositories, {
            labels: parseLabels(options.label),
            onProgress: progressLine(`backup db ${dbName}`),
          });
          reportBackup(context, committed, failures);
        },
        { notify: "backup" },
      ),
    );

  registerRestoreDb(restore);
}

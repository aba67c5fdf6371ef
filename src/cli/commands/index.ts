import type { Command } from "commander";
import { registerConfigCommands } from "./config.js";
import { registerKeyCommands } from "./key.js";
import { registerRepoCommands } from "./repo.js";
import { registerBackupsCommands } from "./backups.js";
import { registerVerifyCommand } from "./verify.js";
import { registerFilesCommands } from "./files.js";
import { registerWalCommands } from "./wal.js";
import { registerBucketCommands } from "./bucket.js";
import { registerDbCommands } from "./db.js";
import { registerPruneCommand } from "./prune.js";
import { registerDemoCommand } from "./demo.js";
import { registerCheckCommand } from "./check.js";
import { registerMetricsCommands } from "./metrics.js";
import { registerHistoryCommand } from "./history.js";

/** Every command, in the order `lifeboat --help` lists them. */
export function registerCommands(program: Command): void {
  const backup = program
    .command("backup")
    .description("take a backup (into every configured repository)");
  const restore = program.command("restore").description("restore from a backup");
  registerDbCommands(backup, restore);
  registerFilesCommands(backup, restore, program);
  registerWalCommands(backup, restore, program);
  registerBucketCommands(program);
  registerBackupsCommands(program);
  registerVerifyCommand(program);
  registerPruneCommand(program);
  registerCheckCommand(program);
  registerHistoryCommand(program);
  registerMetricsCommands(program);
  registerRepoCommands(program);
  registerKeyCommands(program);
  registerConfigCommands(program);
  registerDemoCommand(program);
}

import type { Command } from "commander";
import { registerConfigCommands } from "./config.js";
import { registerKeyCommands } from "./key.js";
import { registerRepoCommands } from "./repo.js";
import { registerBackupsCommands } from "./backups.js";
import { registerVerifyCommand } from "./verify.js";
import { registerFilesCommands } from "./files.js";

/** Every command, in the order `lifeboat --help` lists them. */
export function registerCommands(program: Command): void {
  const backup = program
    .command("backup")
    .description("take a backup (into every configured repository)");
  const restore = program.command("restore").description("restore from a backup");
  registerFilesCommands(backup, restore, program);
  registerBackupsCommands(program);
  registerVerifyCommand(program);
  registerRepoCommands(program);
  registerKeyCommands(program);
  registerConfigCommands(program);
}

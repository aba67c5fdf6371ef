import type { Command } from "commander";

interface Groups {
  program: Command;
  backup: Command;
  restore: Command;
}

/**
 * Command modules, loaded only when their commands can run: each pulls in its engines (the AWS
 * SDK, prom-client, pg...) and loading all of them costs about half a second per invocation.
 */
const MODULES = {
  db: async (g: Groups) => (await import("./db.js")).registerDbCommands(g.backup, g.restore),
  files: async (g: Groups) =>
    (await import("./files.js")).registerFilesCommands(g.backup, g.restore, g.program),
  wal: async (g: Groups) =>
    (await import("./wal.js")).registerWalCommands(g.backup, g.restore, g.program),
  bucket: async (g: Groups) => (await import("./bucket.js")).registerBucketCommands(g.program),
  backups: async (g: Groups) => (await import("./backups.js")).registerBackupsCommands(g.program),
  verify: async (g: Groups) => (await import("./verify.js")).registerVerifyCommand(g.program),
  prune: async (g: Groups) => (await import("./prune.js")).registerPruneCommand(g.program),
  check: async (g: Groups) => (await import("./check.js")).registerCheckCommand(g.program),
  history: async (g: Groups) => (await import("./history.js")).registerHistoryCommand(g.program),
  metrics: async (g: Groups) => (await import("./metrics.js")).registerMetricsCommands(g.program),
  repo: async (g: Groups) => (await import("./repo.js")).registerRepoCommands(g.program),
  key: async (g: Groups) => (await import("./key.js")).registerKeyCommands(g.program),
  config: async (g: Groups) => (await import("./config.js")).registerConfigCommands(g.program),
  demo: async (g: Groups) => (await import("./demo.js")).registerDemoCommand(g.program),
} as const;

type ModuleName = keyof typeof MODULES;

/** Which modules define each top-level command (the order `lifeboat --help` lists them). */
const TOP_LEVEL: Record<string, ModuleName[]> = {
  backup: ["db", "files", "wal"],
  restore: ["db", "files", "wal"],
  cat: ["files"],
  wal: ["wal"],
  setup: ["wal"],
  status: ["wal"],
  "restore-point": ["wal"],
  bucket: ["bucket"],
  object: ["bucket"],
  backups: ["backups"],
  verify: ["verify"],
  prune: ["prune"],
  check: ["check"],
  history: ["history"],
  metrics: ["metrics"],
  serve: ["metrics"],
  repo: ["repo"],
  key: ["key"],
  config: ["config"],
  demo: ["demo"],
};

/** Global options that take a value, so the command name is found after them. */
const VALUE_OPTIONS = new Set(["-c", "--config"]);

/** The top-level command named in argv (after node and the script), if any. */
export function commandNameOf(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (VALUE_OPTIONS.has(arg)) i++;
    else if (!arg.startsWith("-")) return arg;
  }
  return undefined;
}

/**
 * Registers the commands `args` can reach — every command when `args` is omitted (help, the
 * generated reference) or names none we know (commander then reports the unknown command).
 */
export async function registerCommands(program: Command, args?: readonly string[]): Promise<void> {
  const groups: Groups = {
    program,
    backup: program
      .command("backup")
      .description("take a backup (into every configured repository)"),
    restore: program.command("restore").description("restore from a backup"),
  };
  const name = args ? commandNameOf(args) : undefined;
  const versionOnly =
    !name && args !== undefined && (args.includes("--version") || args.includes("-V"));
  const wanted = new Set<ModuleName>(
    versionOnly
      ? []
      : name && TOP_LEVEL[name]
        ? TOP_LEVEL[name]
        : (Object.keys(MODULES) as ModuleName[]),
  );
  for (const module of Object.keys(MODULES) as ModuleName[]) {
    if (wanted.has(module)) await MODULES[module](groups);
  }
}

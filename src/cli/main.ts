import { Command, CommanderError } from "commander";
import {
  EXIT,
  LifeboatError,
  formatCauseChain,
  formatErrorLine,
  toLifeboatError,
} from "../errors.js";
import { TOOL } from "../version.js";
import { colorWanted } from "./output.js";
import { registerCommands } from "./commands/index.js";

/**
 * The program with every command (help, the generated reference), or with only what `args` can
 * reach (a normal run: see commands/index.ts for why).
 */
export async function buildProgram(args?: readonly string[]): Promise<Command> {
  const program = new Command("lifeboat")
    .description(
      "Backup and disaster recovery for applications on PostgreSQL + S3-compatible storage.",
    )
    .version(TOOL.version, "-V, --version")
    .option(
      "-c, --config <file>",
      "configuration file (default: $LIFEBOAT_CONFIG, then ./lifeboat.yaml)",
    )
    .option("--json", "print the result as JSON on stdout")
    .option("-v, --verbose", "show details and the cause chain of errors")
    .option("--no-color", "disable colours (also when NO_COLOR is set or stdout is not a terminal)")
    // Usage errors go through reportError like every other error: one `error[USAGE]: …` line
    // (whose hint points at --help) and, with --json, a JSON document. Subcommands inherit this.
    .configureOutput({ outputError: () => undefined })
    .addHelpText(
      "after",
      `
Exit codes: 0 ok, 1 failed, 2 usage or configuration error, 3 integrity problem (corrupt,
truncated or undecryptable data), 4 storage unreachable or denied, 5 repository locked,
6 external tool or database error, 70 internal error. See docs/cli.md.`,
    );
  program.exitOverride();
  await registerCommands(program, args);
  for (const command of allCommands(program)) command.exitOverride();
  return program;
}

function allCommands(command: Command): Command[] {
  return command.commands.flatMap((child) => [child, ...allCommands(child)]);
}

export async function main(argv = process.argv): Promise<number> {
  const args = argv.slice(2);
  // --help lists every command; a bare `lifeboat` too.
  const complete =
    args.length === 0 || args.includes("--help") || args.includes("-h") || args[0] === "help";
  let program: Command;
  try {
    program = await buildProgram(complete ? undefined : args);
  } catch (error) {
    process.stderr.write(`${formatErrorLine(toLifeboatError(error))}\n`);
    return toLifeboatError(error).exitStatus;
  }
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : EXIT.ok;
  } catch (error) {
    return reportError(error, program);
  }
}

function reportError(error: unknown, program: Command): number {
  if (error instanceof CommanderError) {
    // Help and version "errors" are commander's way of stopping after printing.
    if (error.code === "commander.helpDisplayed" || error.code === "commander.version") {
      return EXIT.ok;
    }
    // Help printed because a command group was run without a subcommand is a usage error:
    // a script calling `lifeboat backup` must not read it as success.
    if (error.code === "commander.help") return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    error = new LifeboatError("USAGE", error.message.replace(/^error: /, ""));
  }
  const options = program.opts<{ json?: boolean; verbose?: boolean; color?: boolean }>();
  const failure = toLifeboatError(error);
  if (options.json) {
    process.stdout.write(
      `${JSON.stringify({ ok: false, error: { code: failure.code, message: failure.message, hint: failure.hint, ...(failure.data ? { data: failure.data } : {}) } }, null, 2)}\n`,
    );
  }
  const red = colorWanted(options.color, process.env, Boolean(process.stderr.isTTY))
    ? "\u001b[31m"
    : "";
  const reset = red ? "\u001b[0m" : "";
  process.stderr.write(`${red}${formatErrorLine(failure)}${reset}\n`);
  if (options.verbose) {
    for (const line of formatCauseChain(failure)) process.stderr.write(`  ${line}\n`);
    if (failure.code === "INTERNAL" && error instanceof Error && error.stack)
      process.stderr.write(`${error.stack}\n`);
  }
  return failure.exitStatus;
}

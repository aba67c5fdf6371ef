import type { Argument, Command, Option } from "commander";
import { ERROR_TABLE, EXIT, type ErrorCode } from "../errors.js";
import { buildProgram } from "./main.js";

/**
 * docs/cli.md, generated from the command definitions and the error table so the reference
 * cannot disagree with what the CLI accepts; test/unit/cli-reference.test.ts fails when the
 * committed copy drifts. Tables are padded the way prettier formats them.
 */

export const CLI_DOC_PATH = "docs/cli.md";

const EXIT_MEANING: Record<keyof typeof EXIT, string> = {
  ok: "success",
  failure: "the operation failed (e.g. no such backup, restored data failed validation)",
  usage: "usage or configuration error: bad arguments, invalid or missing configuration or key",
  integrity: "integrity problem: corrupt, truncated or undecryptable data, incomplete backup",
  storage: "storage unreachable, denied or failing",
  locked: "the repository is locked by another run",
  external: "an external tool or the database failed",
  internal: "a bug in lifeboat",
};

export async function renderCliReference(): Promise<string> {
  const program = await buildProgram();
  const commands = allCommands(program);
  const lines = [
    "# CLI reference",
    "",
    "<!-- Generated from src/cli/ and src/errors.ts by `npm run generate`. Do not edit by hand. -->",
    "",
    "```",
    `${program.name()} [global options] <command> [options] [arguments]`,
    "```",
    "",
    text(program.description()),
    "Every command accepts `-h, --help`. Global options go before or after the command.",
    "",
    "## Global options",
    "",
    ...optionsTable(program.options),
    "",
    "## Commands",
    "",
    ...commands.map(
      (command) => `- [\`${fullName(command)}\`](#${anchor(command)}): ${text(summary(command))}`,
    ),
    "",
    ...commands.flatMap(renderCommand),
    ...renderExitCodes(),
    ...renderJsonOutput(),
  ];
  // No trailing spaces (a command without a description), one blank line between blocks.
  const joined = lines
    .join("\n")
    .replace(/[ \t]+$/gm, "")
    .replace(/\n{3,}/g, "\n\n");
  return `${joined.trimEnd()}\n`;
}

function renderCommand(command: Command): string[] {
  const lines = [
    `### ${fullName(command)}`,
    "",
    "```",
    `${fullName(command)} ${command.usage()}`.trimEnd(),
    "```",
    "",
    text(command.description()),
    "",
  ];
  if (command.commands.length > 0) {
    lines.push(
      "Subcommands:",
      "",
      ...command.commands.map((child) => `- \`${fullName(child)}\`: ${text(summary(child))}`),
      "",
    );
  }
  const args = command.registeredArguments;
  if (args.length > 0) {
    lines.push(
      ...table(
        ["argument", "required", "description"],
        args.map((arg) => [code(argumentName(arg)), arg.required ? "yes" : "no", describe(arg)]),
      ),
      "",
    );
  }
  if (command.options.length > 0) lines.push(...optionsTable(command.options), "");
  return lines;
}

function renderExitCodes(): string[] {
  const statuses = Object.entries(EXIT) as [keyof typeof EXIT, number][];
  const codes = Object.entries(ERROR_TABLE) as [ErrorCode, { exit: number; hint: string }][];
  return [
    "## Exit codes",
    "",
    "Every failure prints one line on stderr, `error[CODE]: message — hint`, and exits with the",
    "status of its code. `--verbose` adds the cause chain. Codes are stable: scripts may match them.",
    "",
    ...table(
      ["status", "name", "meaning"],
      statuses.map(([name, status]) => [String(status), code(name), EXIT_MEANING[name]]),
    ),
    "",
    ...table(
      ["code", "exit", "hint"],
      codes.map(([name, spec]) => [code(name), String(spec.exit), text(spec.hint)]),
    ),
    "",
  ];
}

function renderJsonOutput(): string[] {
  return [
    "## JSON output",
    "",
    "With `--json`, a command prints its result as one JSON document on stdout; notes and",
    "progress stay on stderr, so `lifeboat --json … | jq` always parses. A failure prints",
    "",
    "```json",
    '{ "ok": false, "error": { "code": "STORAGE_UNREACHABLE", "message": "…", "hint": "…" } }',
    "```",
    "",
    "on stdout (plus `data` with machine-readable details for some codes) and the usual line on",
    "stderr. Reports that can partly fail (`verify`, `backup`) carry a top-level `ok`;",
    "`verify` adds an `error` (`VERIFY_FAILED`) next to its `reports` when a backup fails.",
    "`cat` writes the object itself to stdout, never JSON.",
    "",
  ];
}

function optionsTable(options: readonly Option[]): string[] {
  return table(
    ["option", "description", "default"],
    options.map((option) => [
      code(option.flags),
      describe(option) + (option.mandatory ? " (required)" : ""),
      defaultOf(option),
    ]),
  );
}

function defaultOf(option: Option): string {
  const value: unknown = option.defaultValue;
  if (value === undefined || option.negate) return "";
  if (Array.isArray(value) && value.length === 0) return "";
  return code(JSON.stringify(value));
}

function describe(item: Option | Argument): string {
  return text(item.description ?? "");
}

function argumentName(arg: Argument): string {
  const name = `${arg.name()}${arg.variadic ? "..." : ""}`;
  return arg.required ? `<${name}>` : `[${name}]`;
}

function allCommands(command: Command): Command[] {
  return command.commands.flatMap((child) => [child, ...allCommands(child)]);
}

function fullName(command: Command): string {
  const names: string[] = [];
  for (let at: Command | null = command; at; at = at.parent) names.unshift(at.name());
  return names.join(" ");
}

function summary(command: Command): string {
  return command.summary() || command.description();
}

/** GitHub's heading anchors: lowercase, spaces to dashes, punctuation dropped. */
function anchor(command: Command): string {
  return fullName(command)
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, "")
    .replace(/ /g, "-");
}

function code(value: string): string {
  return `\`${value}\``;
}

/** Prose for a cell or line: `<…>` outside code spans would read as HTML, pipes end cells. */
function text(value: string): string {
  return value
    .split(/(`[^`]*`)/)
    .map((part, index) =>
      index % 2 === 1 ? part : part.replace(/</g, "&lt;").replace(/>/g, "&gt;"),
    )
    .join("")
    .replace(/\|/g, "\\|")
    .replace(/\s*\n\s*/g, " ");
}

/** A Markdown table padded like prettier pads it, so the generated file is already formatted. */
function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((title, column) =>
    Math.max(3, title.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(" | ")} |`;
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)];
}
